r"""The math verifier: is the final answer of a completion equal to the gold answer?

Final-answer convention
-----------------------
* The final answer is the content of the **last** ``\boxed{...}`` (or ``\fbox{...}``) in the completion.
* Without a box, it is the text after the last ``Answer:``, ``The final answer is`` or ``####`` (the
  rest of that line, up to the end of the sentence).
* No extractable answer -> ``unparsable`` (reward 0).
* A hedge is wrong -> ``incorrect``: ``3 or 4``, two boxes with different values on the final box's
  line, or several values (``\boxed{3, 4}``) where the gold answer is a single value.

Equivalence
-----------
* Numbers in any notation are compared exactly as rationals: integers, decimals, thousands
  separators, scientific notation, ``a/b``, ``\frac``/``\dfrac``, mixed numbers. Decimals are exact,
  so ``0.5 == 1/2`` but ``0.33 != 1/3``.
* ``x = 5`` equals ``5``; units, degrees, dollar signs and ``\text{...}`` around a number are ignored.
* Percent: ``50\%`` equals ``50\%`` and ``50`` (the sign is dropped), but ``0.5`` does not equal ``50\%``.
* Sets compare unordered; tuples and intervals ordered, with matching bracket kinds; a bare list
  (``1, 2``) compares unordered against a set or list, ordered against a tuple.
* Text answers compare case-insensitively (``Tuesday`` = ``tuesday``, ``(B)`` = ``B``).
* Anything else goes to sympy (via latex2sympy2_extended): symbolic expressions, equations, unions,
  matrices. See :mod:`rlvr.verify._math_sympy` for the size guard and the equality test.

Guards
------
Every item is graded in a worker process of :class:`rlvr.verify.pool.WorkerPool` with a hard
wall-clock limit (the worker is killed and replaced; the item gets ``timeout``). Expressions whose
value would have more than 100,000 digits (``9^{9^{9^9}}``, ``1000000!``) are refused before sympy
evaluates them (``incorrect``), and so are answers too long or too deeply nested for the LaTeX
grammar. Completions longer than ``max_completion_chars`` (default 200,000), final answers longer
than 1,000 characters and braces nested deeper than 40 get reward 0 with a reason.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from rlvr.records import Verdict
from rlvr.verify import _math_answer as A
from rlvr.verify.pool import ErrorMarker, SharedPool, TimeoutMarker, WorkerPool

DEFAULT_TIMEOUT = 5.0
MAX_COMPLETION_CHARS = 200_000

__all__ = ["DEFAULT_TIMEOUT", "grade", "verify", "verify_batch", "equivalent"]


# ---------------------------------------------------------------------------------------------------
# Equivalence of two answer strings
# ---------------------------------------------------------------------------------------------------


class _Refused(Exception):
    """The answer cannot be judged equal (too large, unparsable as math); the message says why."""


def _sympy_equal(gold: str, pred: str) -> bool:
    from rlvr.verify import _math_sympy as S  # imported by the parent before forking workers

    try:
        g = S.evaluate(S.parse(gold))
    except S.TooLarge:
        raise
    except Exception as e:
        raise _Refused(f"gold answer {gold[:60]!r} is not parsable math ({type(e).__name__})") from None
    try:
        p = S.evaluate(S.parse(pred))
    except S.TooLarge:
        raise
    except Exception:
        return False
    return S.equal(g, p)


def _scalar_equal(gold: A.Norm, pred: A.Norm) -> bool:
    """Two single answers (no top-level structure on the gold side)."""
    g, p = gold.text, pred.text
    if g.lower() == p.lower():
        return True
    gt, pt = A.as_text(g), A.as_text(p)
    if gt is not None or pt is not None:
        if gt is not None and pt is not None:
            return gt == pt
        if len(gt or pt or "") > 1:  # a word against math: not equal (sympy would read words as products)
            return False
    gn, pn = A.to_number(g), A.to_number(p)
    if gn is not None and pn is not None:
        return gn == pn
    return _sympy_equal(g, p)


def _same_value(a: A.Norm, b: A.Norm) -> bool:
    """Two parts of one prediction (hedge checks): equal values, where unparsable means different."""
    try:
        return _compare(a, b)[0]
    except _Refused:
        return False


def _items_equal(gold_items: Sequence[str], pred_items: Sequence[str], ordered: bool) -> bool:
    if len(gold_items) != len(pred_items) or len(gold_items) > A.MAX_ELEMENTS:
        return False
    gold_n = [A.normalise(x) for x in gold_items]
    pred_n = [A.normalise(x) for x in pred_items]
    if ordered:
        return all(_scalar_equal(g, p) for g, p in zip(gold_n, pred_n, strict=True))
    left = list(pred_n)
    for g in gold_n:
        match = next((j for j, p in enumerate(left) if _scalar_equal(g, p)), None)
        if match is None:
            return False
        left.pop(match)
    return True


def _compare(gold: A.Norm, pred: A.Norm) -> tuple[bool, str]:
    """(equal, reason) for a normalised gold and a normalised prediction."""
    if gold.percent or pred.percent:  # 50\% == 50; the sign is simply dropped on both sides
        gold, pred = A.Norm(gold.text), A.Norm(pred.text)
    if gold.text.lower() == pred.text.lower():
        return True, "same answer"
    gs, ps = A.structure(gold.text), A.structure(pred.text)
    parts = A.alternatives(pred.text)
    if len(parts) > 1:
        if gs is not None:  # "x = 1 or x = 2" lists the solutions of a gold "1, 2"
            ps = A.Structure("list", tuple(parts))
        else:
            values = [A.normalise(x) for x in parts]
            if not all(_same_value(values[0], v) for v in values[1:]):
                return False, f"hedge: {len(parts)} different alternatives"
            pred, ps = values[0], None
    if gs is None:
        if (
            ps is not None
            and len(ps.items) > 1
            and (A.to_number(gold.text) is not None or ps.kind in ("list", "set"))
        ):
            return False, f"hedge: {len(ps.items)} values for a single answer"
        ok = _scalar_equal(gold, pred)
        return ok, "equivalent" if ok else "not equivalent"
    if ps is None:
        ok = _scalar_equal(gold, pred)  # e.g. a union or an interval the string parser left whole
        return ok, "equivalent" if ok else f"expected {len(gs.items)} values"
    unordered = {"set", "list"}
    if gs.kind in unordered and (ps.kind in unordered or (gs.kind == "list" and ps.kind == "()")):
        ok = _items_equal(gs.items, ps.items, ordered=False)
    elif gs.kind == ps.kind or (gs.kind == "()" and ps.kind == "list"):
        ok = _items_equal(gs.items, ps.items, ordered=True)
    else:
        return False, f"expected {gs.kind} brackets, got {ps.kind}"
    return ok, "equivalent" if ok else "elements differ"


def equivalent(gold: str, pred: str) -> bool:
    """True when the answer strings ``pred`` and ``gold`` are equal under the rules above (no timeout)."""
    return _compare(A.normalise(gold), A.normalise(pred))[0]


# ---------------------------------------------------------------------------------------------------
# Grading one item (runs in a worker process)
# ---------------------------------------------------------------------------------------------------


def _gold_string(answer: Any) -> str:
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float, Fraction)):
        raise TypeError(f"answer must be a string or a number, got {type(answer).__name__}")
    return str(answer)


def grade(item: dict[str, Any], max_completion_chars: int = MAX_COMPLETION_CHARS) -> Verdict:
    """Grade one ``{"completion", "answer"}`` item in this process (no time limit: see verify_batch)."""
    t0 = time.perf_counter()

    def verdict(ok: bool, status: str, reason: str, extracted: str | None = None) -> Verdict:
        ms = (time.perf_counter() - t0) * 1000
        return Verdict(1.0 if ok else 0.0, status, reason, extracted, round(ms, 3))  # type: ignore[arg-type]

    completion, answer = item.get("completion"), item.get("answer")
    if not isinstance(completion, str):
        return verdict(False, "error", f"completion must be a string, got {type(completion).__name__}")
    try:
        gold = _gold_string(answer)
    except TypeError as e:
        return verdict(False, "error", str(e))
    if "\\boxed" in gold:
        gold = A.extract_final_answer(gold).answer or gold
    if len(completion) > max_completion_chars:
        return verdict(
            False, "incorrect", f"completion too long ({len(completion)} > {max_completion_chars} chars)"
        )
    ext = A.extract_final_answer(completion)
    if ext.answer is None:
        status = "incorrect" if "nested" in ext.problem else "unparsable"
        return verdict(False, status, ext.problem)
    extracted = ext.answer
    if not extracted.strip():
        return verdict(False, "unparsable", "empty final answer", extracted)
    if len(extracted) > A.MAX_ANSWER_CHARS:
        return verdict(False, "incorrect", f"final answer too long ({len(extracted)} chars)", extracted[:200])
    gold_norm = A.normalise(gold)
    gold_parts = A.structure(gold_norm.text)
    if ext.others and gold_parts is not None and len(gold_parts.items) > 1:
        extracted, ext.others = ", ".join([*ext.others, extracted]), []  # one box per value
    try:
        pred = A.normalise(extracted)
        for other in ext.others:
            if not _same_value(pred, A.normalise(other)):
                return verdict(
                    False, "incorrect", "hedge: different boxed answers on the final line", extracted
                )
        ok, reason = _compare(gold_norm, pred)
    except _Refused as e:
        return verdict(False, "error", str(e), extracted)
    except RecursionError:
        return verdict(False, "incorrect", "answer nested too deeply to parse", extracted)
    except Exception as e:
        from rlvr.verify._math_sympy import TooLarge

        if isinstance(e, TooLarge):
            return verdict(False, "incorrect", str(e), extracted)
        return verdict(False, "incorrect", f"cannot compare: {type(e).__name__}: {str(e)[:120]}", extracted)
    return verdict(ok, "correct" if ok else "incorrect", reason, extracted)


# ---------------------------------------------------------------------------------------------------
# Batch API with hard time limits
# ---------------------------------------------------------------------------------------------------

_shared = SharedPool()


_WARM_UP = (
    r"x^2+1",
    r"\frac{\sqrt{3}}{2}",
    r"2\sqrt{2}-1",
    r"\cos(\pi/12)",
    r"(x-1)(x+1)",
    r"y=3x+2",
    r"\{1, 2\}",
    r"(-\infty, 2]",
    r"e^{i\pi}",
    r"\ln 2",
    r"\frac{1}{2004!}",
    r"\binom{10}{3}",
)


def _warm_up() -> None:
    """Load sympy and warm the LaTeX parser's caches (in the parent, so that forked workers inherit them,
    and again in each worker, where it costs nothing after a fork and does the imports otherwise)."""
    from rlvr.verify import _math_sympy

    for s in _WARM_UP:
        _math_sympy.parse(s)


def _get_pool(workers: int | None, timeout: float, max_completion_chars: int) -> WorkerPool:
    """The process's pool for these settings (see `SharedPool`).

    ``workers=None`` takes the current pool whatever its size (single-item calls).
    """
    if workers is None:
        workers = _shared.current.n_workers if _shared.current is not None else 1

    def make() -> WorkerPool:
        _warm_up()
        fn = functools.partial(grade, max_completion_chars=max_completion_chars)
        return WorkerPool(fn, workers=workers, timeout=timeout, memory_mb=2048, initializer=_warm_up)

    return _shared.get((timeout, max_completion_chars, workers), make)


def verify_batch(
    items: Sequence[dict[str, Any]],
    *,
    workers: int | None = 2,
    timeout: float = DEFAULT_TIMEOUT,
    max_completion_chars: int = MAX_COMPLETION_CHARS,
    **options: Any,
) -> list[Verdict]:
    """Grade ``items`` (dicts with ``completion`` and ``answer``; other keys ignored), order preserved.

    Each item has a hard wall-clock limit of ``timeout`` seconds. Unknown ``options`` (for example
    ``unsafe_no_sandbox``, meant for other verifiers) are accepted and ignored.
    """
    del options
    items = list(items)
    if not items:
        return []
    valid = [i for i, it in enumerate(items) if isinstance(it, dict)]
    tasks = [{"completion": items[i].get("completion"), "answer": items[i].get("answer")} for i in valid]
    out: list[Verdict] = [
        Verdict(0.0, "error", f"item {i} is a {type(it).__name__}, not a dict") for i, it in enumerate(items)
    ]
    if not tasks:
        return out
    with _shared.lock:
        pool = _get_pool(
            None if workers is None else max(1, int(workers)), float(timeout), max_completion_chars
        )
        results = pool.map(tasks)
    for i, task, r in zip(valid, tasks, results, strict=True):
        if isinstance(r, TimeoutMarker):
            reason = f"grading took longer than {r.timeout:g}s"
            out[i] = Verdict(0.0, "timeout", reason, _extracted(task, max_completion_chars), r.timeout * 1000)
        elif isinstance(r, ErrorMarker):
            out[i] = Verdict(0.0, "error", r.message[:200], _extracted(task, max_completion_chars))
        else:
            out[i] = r
    return out


def _extracted(task: dict[str, Any], max_completion_chars: int) -> str | None:
    """The final answer of a task whose grading did not finish (extraction itself is linear and cheap)."""
    completion = task["completion"]
    if not isinstance(completion, str) or len(completion) > max_completion_chars:
        return None
    answer = A.extract_final_answer(completion).answer
    return answer[:200] if answer else None


def verify(completion: str, answer: Any, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> Verdict:
    """Grade one completion against one gold answer (in a worker, with a hard time limit)."""
    return verify_batch(
        [{"completion": completion, "answer": answer}], workers=None, timeout=timeout, **options
    )[0]
