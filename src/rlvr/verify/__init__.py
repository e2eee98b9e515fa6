"""Verifiers: turn a completion into a Verdict (reward, status, reason, extracted answer, time).

Every verifier exposes one batch function with the same signature::

    verify_batch(items: list[dict], *, workers: int = 2, timeout: float = ..., **options) -> list[Verdict]

``items`` are the records of ``rlvr verify`` input lines (``completion`` plus the verifier's gold
fields: ``answer`` for math, ``tests`` for code, ``instruction_id_list``/``kwargs`` for ifeval).
A slow or hostile item yields a ``timeout``/``error`` verdict; it never stops the batch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from rlvr.records import Sample, Verdict

BatchFn = Callable[..., list[Verdict]]

# name -> "module:function" (imported lazily so `rlvr --help` stays fast) or a callable.
_REGISTRY: dict[str, str | BatchFn] = {
    "math": "rlvr.verify.math:verify_batch",
    "code": "rlvr.verify.code:verify_batch",
    "ifeval": "rlvr.verify.ifeval:verify_batch",
    "reasoning_gym": "rlvr.data.gym:verify_batch",
}


def register_verifier(name: str, fn: str | BatchFn) -> None:
    """Register a task-specific verifier (a batch function or a ``"module:function"`` path)."""
    _REGISTRY[name] = fn


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_verifier(name: str) -> BatchFn:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown verifier {name!r}; available: {', '.join(available())}") from None
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    _REGISTRY[name] = fn
    return fn


def sample_item(sample: Sample, completion: str) -> dict[str, Any]:
    """The verifier input record for a completion of ``sample``.

    A dict gold is spread into the record (code tests, IFEval instructions, task-specific data);
    any other gold is the reference ``answer``.
    """
    if isinstance(sample.gold, dict):
        return {**sample.gold, "completion": completion}
    return {"answer": sample.gold, "completion": completion}


def verify_samples(samples: Sequence[Sample], completions: Sequence[str], **options: Any) -> list[Verdict]:
    """Grade ``completions[i]`` against ``samples[i]``, batching by verifier, order preserved."""
    if len(samples) != len(completions):
        raise ValueError(f"{len(samples)} samples but {len(completions)} completions")
    out: list[Verdict | None] = [None] * len(samples)
    by_verifier: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_verifier.setdefault(s.verifier, []).append(i)
    for name, idx in by_verifier.items():
        verdicts = get_verifier(name)([sample_item(samples[i], completions[i]) for i in idx], **options)
        for i, v in zip(idx, verdicts, strict=True):
            out[i] = v
    return out  # type: ignore[return-value]
