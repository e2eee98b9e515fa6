"""IFEval instruction-following verifier: ``verify_batch(items) -> list[Verdict]``.

Each item carries ``completion``, ``instruction_id_list`` and ``kwargs`` (a list aligned with the ids,
in the original IFEval form or the Hugging Face form where every dict has every key and nulls), plus
an optional ``prompt`` for ``combination:repeat_prompt``. The reward is 1.0 when every instruction is
followed (0.0 otherwise, or the fraction followed with ``partial_credit=True``); ``reason`` lists each
instruction as ``id=ok`` or ``id=FAIL (detail)``.

``mode="strict"`` grades the response as is. ``mode="loose"`` is IFEval's loose accuracy: an
instruction counts as followed if any of eight variants passes (the response, without its first line,
without its last line, without both, and each of those with every ``*`` removed).

Items are graded in worker processes from :mod:`rlvr.verify.pool` with a hard ``timeout`` per item
(``workers=0`` grades in this process, without the hard limit). Completions longer than ``max_chars``
characters are not graded (status ``error``); every check runs in linear time below that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.records import Verdict
from rlvr.verify.ifeval.checkers import (
    INSTRUCTIONS,
    LANGUAGE_INSTRUCTIONS,
    InstructionError,
    detect_language,
    prepare,
)

__all__ = ["INSTRUCTIONS", "loose_variants", "verify_batch", "verify_one"]

MODES = ("strict", "loose")
DEFAULT_MAX_CHARS = 100_000


@dataclass(frozen=True)
class _Options:
    mode: str = "strict"
    partial_credit: bool = False
    fix_nth_paragraph: bool = False
    max_chars: int = DEFAULT_MAX_CHARS


def loose_variants(response: str) -> list[tuple[str, str]]:
    """IFEval's eight loose variants of ``response`` as ``(name, text)``, the response itself first."""
    lines = response.split("\n")
    no_first = "\n".join(lines[1:]).strip()
    no_last = "\n".join(lines[:-1]).strip()
    no_both = "\n".join(lines[1:-1]).strip()
    return [
        ("as is", response),
        ("without *", response.replace("*", "")),
        ("without first line", no_first),
        ("without last line", no_last),
        ("without first and last lines", no_both),
        ("without first line and *", no_first.replace("*", "")),
        ("without last line and *", no_last.replace("*", "")),
        ("without first and last lines and *", no_both.replace("*", "")),
    ]


def _prompt_text(prompt: Any) -> str | None:
    """A plain-text prompt, or the last user turn of a chat prompt."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else None
    return None


def _parse(item: Any, opts: _Options) -> tuple[str, list[tuple[str, Callable[[str], tuple[bool, str]]]]]:
    """The completion and its bound checkers; InstructionError names what is malformed."""
    if not isinstance(item, dict):
        raise InstructionError(f"item must be an object, got {type(item).__name__}")
    completion = item.get("completion")
    if not isinstance(completion, str):
        raise InstructionError(f"'completion' must be a string, got {type(completion).__name__}")
    ids = item.get("instruction_id_list")
    if not isinstance(ids, list) or not ids:
        raise InstructionError(f"'instruction_id_list' must be a non-empty list, got {ids!r}"[:200])
    kwargs = item.get("kwargs")
    if kwargs is None:
        kwargs = [{}] * len(ids)
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise InstructionError(
            f"'kwargs' must be a list with one object per instruction ({len(ids)}), got {kwargs!r}"[:200]
        )
    prompt = _prompt_text(item.get("prompt"))
    checks = [
        (iid, prepare(iid, kw, prompt=prompt, fix_nth_paragraph=opts.fix_nth_paragraph))
        for iid, kw in zip(ids, kwargs, strict=True)
    ]
    return completion, checks


def _grade(item: Any, opts: _Options) -> Verdict:
    try:
        completion, checks = _parse(item, opts)
    except InstructionError as e:
        return Verdict(0.0, "error", str(e))
    if len(completion) > opts.max_chars:
        return Verdict(
            0.0,
            "error",
            f"completion has {len(completion)} characters; more than max_chars={opts.max_chars} are not graded",
        )
    variants = loose_variants(completion) if opts.mode == "loose" else [("as is", completion)]
    # An empty response follows nothing; a variant equal to an earlier one need not be checked again.
    unique: dict[str, str] = {}
    for name, variant in variants:
        if variant.strip() and variant not in unique:
            unique[variant] = name
    variants = [(name, variant) for variant, name in unique.items()]
    parts, followed = [], 0
    for iid, check in checks:
        ok, detail = False, "empty response"
        try:
            for name, variant in variants:
                passed, why = check(variant)
                if name == "as is":
                    detail = why
                if passed:
                    ok, detail = True, "" if name == "as is" else f"loose: {name}"
                    break
        except Exception as e:  # a checker bug must not take the batch down
            return Verdict(0.0, "error", f"{iid}: checker raised {type(e).__name__}: {e}"[:500])
        followed += ok
        if ok:
            parts.append(f"{iid}=ok ({detail})" if detail else f"{iid}=ok")
        else:
            parts.append(f"{iid}=FAIL ({detail})")
    all_ok = followed == len(checks)
    reward = followed / len(checks) if opts.partial_credit else float(all_ok)
    return Verdict(reward, "correct" if all_ok else "incorrect", "; ".join(parts))


def _grade_timed(task: tuple[Any, _Options]) -> Verdict:
    item, opts = task
    t0 = time.perf_counter()
    verdict = _grade(item, opts)
    verdict.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    return verdict


def verify_one(item: dict[str, Any], **options: Any) -> Verdict:
    """Grade one item in this process (see :func:`verify_batch` for the options)."""
    return _grade_timed((item, _options(**options)))


def _options(
    mode: str = "strict",
    partial_credit: bool = False,
    fix_nth_paragraph: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    **_ignored: Any,
) -> _Options:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return _Options(mode, bool(partial_credit), bool(fix_nth_paragraph), int(max_chars))


def verify_batch(
    items: Sequence[dict[str, Any]],
    *,
    workers: int = 2,
    timeout: float = 5.0,
    mode: str = "strict",
    partial_credit: bool = False,
    fix_nth_paragraph: bool = False,
    **options: Any,
) -> list[Verdict]:
    """Grade IFEval items; one Verdict per item, in order. Unknown options are ignored.

    ``workers`` processes grade with a hard ``timeout`` (seconds) per item; ``workers=0`` grades here.
    ``fix_nth_paragraph`` repairs the reference's paragraph indexing in
    ``length_constraints:nth_paragraph_first_word``; ``max_chars`` (option) caps the completion length.
    """
    opts = _options(mode, partial_credit, fix_nth_paragraph, options.get("max_chars", DEFAULT_MAX_CHARS))
    tasks = [(item, opts) for item in items]
    if not tasks:
        return []
    if workers <= 0:
        return [_grade_timed(t) for t in tasks]

    from rlvr.verify.pool import ErrorMarker, TimeoutMarker, run_with_timeouts

    if any(_uses_language(item) for item, _ in tasks):
        detect_language("warm up")  # load langdetect's profiles once, before the workers fork
    results = run_with_timeouts(_grade_timed, tasks, workers=workers, timeout=timeout)
    verdicts = []
    for r in results:
        if isinstance(r, TimeoutMarker):
            verdicts.append(
                Verdict(0.0, "timeout", f"grading took longer than {timeout:g}s", elapsed_ms=timeout * 1000)
            )
        elif isinstance(r, ErrorMarker):
            verdicts.append(Verdict(0.0, "error", f"grader failed: {r.message}"))
        else:
            verdicts.append(r)
    return verdicts


def _uses_language(item: Any) -> bool:
    ids = item.get("instruction_id_list") if isinstance(item, dict) else None
    return isinstance(ids, list) and any(isinstance(i, str) and i in LANGUAGE_INSTRUCTIONS for i in ids)
