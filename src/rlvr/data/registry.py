"""Task registry: ``load_task(spec)`` resolves a task name, a prefixed spec or a data file to Samples.

Specs:

- a built-in name (``addition``, ``aiw``, ...; see ``list_tasks()``);
- ``family:<name>``: a variation family (same template, other numbers/names/order);
- ``gym:<dataset>``: a procedural reasoning-gym dataset, graded strictly;
- ``hf:<org/name>`` or ``hf:<local dir>``: a Hugging Face dataset through ``datasets.load_dataset``;
- a path to a ``.jsonl``, ``.json`` or ``.parquet`` file in one of the formats of ``rlvr.data.loaders``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.records import Sample

Loader = Callable[..., list[Sample]]


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Loader  # load(n=..., seed=..., split=..., **kwargs) -> list[Sample]


_TASKS: dict[str, Task] = {}


def register_task(name: str, description: str, load: Loader) -> None:
    """Add a named task (a later registration under the same name replaces the earlier one)."""
    _TASKS[name] = Task(name, description, load)


def list_tasks() -> dict[str, str]:
    """Every built-in task spec with a one-line description, in name order.

    Prefixed specs appear as patterns: ``gym:<dataset>``, ``hf:<org/name>``, ``<file>.jsonl``.
    """
    _register_builtins()
    from rlvr.data.families import FAMILIES, family_names

    tasks = {name: _TASKS[name].description for name in _TASKS}
    tasks.update({f"family:{name}": FAMILIES[name].description for name in family_names()})
    tasks.update(PATTERNS)
    return dict(sorted(tasks.items()))


PATTERNS = {
    "gym:<dataset>": "a reasoning-gym procedural dataset (difficulty=<level>, curriculum=, config options), "
    "strict reasoning_gym verifier",
    "hf:<org/name>": "a Hugging Face dataset or local dataset folder in a known format (see rlvr.data.loaders)",
    "<file>.jsonl|.json|.parquet": "a local file in a known format: open-instruct, GSM8K, MATH, IFEval, MBPP, "
    "HumanEval, stdin/stdout code, AIW prompts.json, rlvr Samples",
}


FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def load_task(
    spec: str, *, n: int | None = None, seed: int = 0, split: str = "train", **kwargs: Any
) -> list[Sample]:
    """Resolve ``spec`` (see the module docstring) and return ``n`` samples (all when ``n`` is None)."""
    _register_builtins()
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "gym":
        from rlvr.data.gym import load_gym

        return load_gym(rest, n=n, seed=seed, split=split, **kwargs)
    if sep and prefix == "family":
        from rlvr.data.families import load_family

        return load_family(rest, n=n, seed=seed, split=split, **kwargs)
    if sep and prefix == "hf":
        from rlvr.data.loaders import load_hf

        return load_hf(rest, n=n, seed=seed, split=split, **kwargs)
    if spec in _TASKS:
        return _TASKS[spec].load(n=n, seed=seed, split=split, **kwargs)
    path = Path(spec)
    if path.suffix.lower() in FILE_SUFFIXES or path.exists():
        from rlvr.data.loaders import load_file

        return load_file(path, n=n, seed=seed, split=split, **kwargs)
    raise KeyError(
        f"unknown task {spec!r}: not a built-in task ({', '.join(sorted(_TASKS))}), "
        "not a gym:/family:/hf: spec and not a .jsonl/.json/.parquet file"
    )


_BUILTINS_DONE = False


def _register_builtins() -> None:
    global _BUILTINS_DONE
    if _BUILTINS_DONE:
        return
    _BUILTINS_DONE = True
    from rlvr.data.arithmetic import load_addition

    def addition(n: int | None = None, seed: int = 0, split: str = "train", **kwargs: Any) -> list[Sample]:
        if kwargs:
            raise TypeError(f"addition: unexpected option(s) {', '.join(sorted(kwargs))}")
        return load_addition(n, seed=seed, split=split)

    def aiw(n: int | None = None, seed: int = 0, split: str = "train", **kwargs: Any) -> list[Sample]:
        from rlvr.data.families import load_family

        return load_family("aiw", n=n, seed=seed, split=split, **kwargs)

    register_task(
        "aiw",
        "AIW problems (Alice's brother's sisters), prompt_type=STANDARD|THINKING|RESTRICTED; same as family:aiw",
        aiw,
    )
    register_task(
        "addition",
        "2-digit addition a+b (a, b in 10..99), one worked example in the chat; hash-disjoint train/test",
        addition,
    )
