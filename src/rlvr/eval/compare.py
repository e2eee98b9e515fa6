"""Paired comparison of two evaluation runs on the same problems (``rlvr compare A.jsonl B.jsonl``).

Each run is per-sample rows ``{"problem_id", "correct", ...}``. Results are paired by problem: each
problem's accuracy is its share of correct samples, and only problems present in both runs count.

Reported:
  * both accuracies (mean per-problem accuracy on the shared problems) and their difference A - B
    with a paired percentile bootstrap 95% interval over problems;
  * an exact McNemar p-value on per-problem outcomes: the single sample when every problem has one,
    otherwise "majority correct" (per-problem accuracy > 1/2);
  * with several samples per problem, also the exact sign test and the Wilcoxon signed-rank test on
    the per-problem accuracy differences (zeros dropped), which use every sample.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rlvr.eval.stats import load_sample_rows, mcnemar_exact, paired_bootstrap, sign_test, wilcoxon_signed_rank
from rlvr.io import DataError


def per_problem_accuracy(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """``problem_id -> (n_samples, n_correct)``."""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        n, c = out.get(str(r["problem_id"]), (0, 0))
        out[str(r["problem_id"])] = (n + 1, c + int(r["correct"]))
    return out


def select_model(
    rows: list[dict[str, Any]], path: str | os.PathLike, model: str | None
) -> list[dict[str, Any]]:
    """The rows of ``model``; without one, the file must hold a single model (or rows with none)."""
    models = sorted({str(r["model"]) for r in rows if r.get("model") is not None})
    if model is not None:
        chosen = [r for r in rows if str(r.get("model")) == model]
        if not chosen:
            raise DataError(
                f"{path}: no rows of model {model!r}; models present: {', '.join(models) or 'none'}"
            )
        return chosen
    if len(models) > 1:
        shown = ", ".join(models[:5]) + (", ..." if len(models) > 5 else "")
        raise DataError(
            f"{path}: rows of {len(models)} models ({shown}); choose one with --model-a/--model-b"
        )
    return rows


def compare_rows(
    rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], n_boot: int = 10000, seed: int = 0
) -> dict[str, Any]:
    """Paired statistics of two runs' per-sample rows (see the module docstring)."""
    acc_a, acc_b = per_problem_accuracy(rows_a), per_problem_accuracy(rows_b)
    shared = sorted(set(acc_a) & set(acc_b))
    only_a = sorted(set(acc_a) - set(acc_b))
    only_b = sorted(set(acc_b) - set(acc_a))
    if not shared:
        raise DataError("the two runs share no problem_id; nothing to compare")
    a = np.array([acc_a[p][1] / acc_a[p][0] for p in shared])
    b = np.array([acc_b[p][1] / acc_b[p][0] for p in shared])
    delta, lo, hi = paired_bootstrap(a, b, n_boot=n_boot, seed=seed)
    multi = any(acc_a[p][0] > 1 or acc_b[p][0] > 1 for p in shared)
    out: dict[str, Any] = {
        "n_shared_problems": len(shared),
        "only_in_a": only_a,
        "only_in_b": only_b,
        "a": _side(acc_a, a),
        "b": _side(acc_b, b),
        "delta": delta,
        "ci95_bootstrap": [lo, hi],
        "n_boot": n_boot,
        "mcnemar": {
            "basis": "per-problem majority correct (accuracy > 1/2)"
            if multi
            else "single sample per problem",
            "a_only_correct": int(np.sum((a > 0.5) & (b <= 0.5))),
            "b_only_correct": int(np.sum((b > 0.5) & (a <= 0.5))),
            "p_value": mcnemar_exact(a > 0.5, b > 0.5),
        },
        "problems_a_better": int(np.sum(a > b)),
        "problems_b_better": int(np.sum(b > a)),
        "problems_tied": int(np.sum(a == b)),
    }
    if multi:
        out["sign_test_p_value"] = sign_test(a - b)
        out["wilcoxon_p_value"] = wilcoxon_signed_rank(a - b)
    return out


def _side(acc: dict[str, tuple[int, int]], shared_acc: np.ndarray) -> dict[str, Any]:
    n = np.array([v[0] for v in acc.values()])
    return {
        "accuracy": float(shared_acc.mean()),
        "n_problems": len(acc),
        "n_samples": int(n.sum()),
        "samples_per_problem": {"min": int(n.min()), "max": int(n.max())},
    }


def compare_files(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    model_a: str | None = None,
    model_b: str | None = None,
    n_boot: int = 10000,
    seed: int = 0,
) -> dict[str, Any]:
    rows_a = select_model(load_sample_rows(path_a), path_a, model_a)
    rows_b = select_model(load_sample_rows(path_b), path_b, model_b)
    out = compare_rows(rows_a, rows_b, n_boot=n_boot, seed=seed)
    out["a"] = {"file": str(path_a), "model": model_a, **out["a"]}
    out["b"] = {"file": str(path_b), "model": model_b, **out["b"]}
    return out
