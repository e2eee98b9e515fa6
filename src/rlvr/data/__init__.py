"""Tasks and datasets: ``load_task(spec, n=, seed=, split=)`` -> ``list[Sample]``.

See ``rlvr.data.registry`` for the accepted specs and ``list_tasks()`` for the built-in tasks.
"""

from rlvr.data.registry import list_tasks, load_task, register_task

__all__ = ["list_tasks", "load_task", "register_task"]
