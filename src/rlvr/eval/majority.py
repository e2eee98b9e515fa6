"""Majority voting (maj@k) with answers clustered by verifier equivalence rather than by string.

``1/2``, ``0.5`` and ``\\frac{1}{2}`` are one answer. The equivalence is the math verifier's
(``rlvr.verify.math.equivalent``: exact rationals, sets, symbolic expressions via sympy), else the
``math_verify`` library's, else (only if neither is importable) normalised string equality;
``equivalence_backend()`` says which. Answers equal as normalised strings are one answer without
asking the verifier; an answer the verifier cannot compare (an exception) is treated as different.
Rows graded by another verifier (``verifier`` field not ``math``) are clustered by string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

Equivalence = Callable[[str, str], bool]


def normalise_answer(s: str) -> str:
    """Lowercase, drop ``$``/spaces and a surrounding ``\\boxed{}``: the string fallback's key."""
    s = re.sub(r"[\s$]+", "", s.lower()).rstrip(".")
    m = re.fullmatch(r"\\boxed\{(.*)\}", s)
    return m.group(1) if m else s


def _string_equivalent(a: str, b: str) -> bool:
    return normalise_answer(a) == normalise_answer(b)


def _math_verify_equivalent() -> Equivalence | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        return None

    @cache
    def parsed(s: str) -> tuple:
        out = parse(s)
        if not out and "$" not in s:
            out = parse(f"${s}$")
        return tuple(out)

    def equivalent(a: str, b: str) -> bool:
        pa, pb = parsed(a), parsed(b)
        if not pa or not pb:
            return _string_equivalent(a, b)
        try:
            return bool(verify(list(pa), list(pb)))
        except Exception:  # a parse the library cannot compare is not an equivalence
            return False

    return equivalent


@cache
def _resolve() -> tuple[str, Equivalence]:
    try:
        from rlvr.verify import math as rlvr_math
    except ImportError:
        rlvr_math = None
    for name in ("answers_equivalent", "equivalent"):
        fn = getattr(rlvr_math, name, None)
        if callable(fn):
            return f"rlvr.verify.math.{name}", fn
    mv = _math_verify_equivalent()
    if mv is not None:
        return "math_verify", mv
    return "normalised string equality (no math verifier available)", _string_equivalent


def equivalence_backend() -> str:
    """The name of the equivalence used to cluster answers."""
    return _resolve()[0]


def cluster_answers(answers: Sequence[str | None], equivalent: Equivalence | None = None) -> list[int | None]:
    """Cluster label per answer, in order; ``None`` (no answer) gets no label.

    Each answer joins the first earlier cluster whose representative it is equivalent to, so the
    labels of a prefix equal the clustering of that prefix alone. Identical strings are compared once.
    """
    eq = equivalent or _resolve()[1]
    reps: list[str] = []
    label_of: dict[str, int] = {}
    labels: list[int | None] = []
    for ans in answers:
        if ans is None or not str(ans).strip():
            labels.append(None)
            continue
        ans = str(ans)
        if ans not in label_of:
            label_of[ans] = next((i for i, rep in enumerate(reps) if _safe_eq(eq, rep, ans)), len(reps))
            if label_of[ans] == len(reps):
                reps.append(ans)
        labels.append(label_of[ans])
    return labels


def _safe_eq(eq: Equivalence, a: str, b: str) -> bool:
    if normalise_answer(a) == normalise_answer(b):
        return True
    try:
        return bool(eq(a, b))
    except Exception:
        return False


def majority_correct(labels: Sequence[int | None], correct: Sequence[bool], k: int) -> bool:
    """Whether the majority cluster among the first ``k`` samples is correct.

    Ties go to the cluster seen first; the winning cluster is scored by its first member's ``correct``.
    No answer at all among the first ``k`` counts as wrong.
    """
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, lab in enumerate(labels[:k]):
        if lab is None:
            continue
        counts[lab] = counts.get(lab, 0) + 1
        first.setdefault(lab, i)
    if not counts:
        return False
    winner = max(counts, key=lambda lab: (counts[lab], -first[lab]))
    return bool(correct[first[winner]])


def maj_at_k(problems: Sequence[Sequence[dict[str, Any]]], ks: Sequence[int]) -> dict[str, float]:
    """maj@k over problems, each a list of sample rows (in sample order) with ``answer`` and ``correct``.

    A problem counts for ``k`` when it has at least ``k`` samples. Answers of rows graded by another
    verifier than ``math`` (their ``verifier`` field) are clustered by normalised string equality.
    """
    math_eq = _resolve()[1]
    hits = {k: [] for k in ks}
    for samples in problems:
        is_math = all(s.get("verifier") in (None, "math") for s in samples)
        labels = cluster_answers(
            [s.get("answer") for s in samples], math_eq if is_math else _string_equivalent
        )
        correct = [bool(s["correct"]) for s in samples]
        for k in ks:
            if len(samples) >= k:
                hits[k].append(majority_correct(labels, correct, k))
    return {str(k): sum(h) / len(h) for k, h in hits.items() if h}
