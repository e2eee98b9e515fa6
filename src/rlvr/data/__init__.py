"""Tasks and datasets: ``load_task(spec, n=, seed=, split=)`` -> ``list[Sample]``.

See ``rlvr.data.registry`` for the accepted specs and ``list_tasks()`` for the built-in tasks.
Importing this package registers the task-specific verifiers (``reasoning_gym``).
"""

from rlvr.data.registry import list_tasks, load_task, register_task
from rlvr.verify import register_verifier

register_verifier("reasoning_gym", "rlvr.data.gym:verify_batch")

__all__ = ["list_tasks", "load_task", "register_task"]
