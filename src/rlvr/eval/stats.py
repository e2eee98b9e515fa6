"""Statistics for honest evaluation: intervals, paired tests, pass@k, family spreads, sample-size planning.

Everything here works on plain Python values (bools, counts, per-sample rows) so that any stage can call
it. ``summarise_rows`` builds the ``stats.json`` layout read by ``rlvr stats`` users::

    {"groups": {GROUP: {"accuracy": {"mean", "ci95", "ci95_bootstrap", "n_problems", "n_samples"},
                        "pass_at_k": {"1": ..., "2": ...},
                        "families": {FAMILY: {"variations": {VAR: {"n", "correct", "rate", "ci95"}},
                                              "spread", "chi2": {"statistic", "dof", "p_value"},
                                              "all_variants_correct_rate", ...}},
                        "maj_at_k": {...}, "planner": {...}}}}
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from rlvr.io import DataError, iter_jsonl

# ----------------------------------------------------------------------------------------------------
# Intervals and tests on counts


def _z(conf: float) -> float:
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {conf}")
    return float(sps.norm.ppf(0.5 + conf / 2.0))


def wilson_interval(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (``(0, 1)`` when ``n == 0``)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = _z(conf)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_width(p: float, n: float, conf: float = 0.95) -> float:
    """Width of the Wilson interval at observed rate ``p`` with ``n`` independent samples."""
    z = _z(conf)
    return 2 * z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): ``1 - C(n-c, k) / C(n, k)`` in a numerically stable form.

    ``n`` samples of which ``c`` are correct; the chance that a random ``k``-subset holds a correct one.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar test: binomial test (p = 1/2) on the discordant pairs; 1.0 when none."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes differ in length: {len(a)} vs {len(b)}")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return 1.0
    # The null distribution is symmetric, so the two-sided p-value is twice the smaller tail.
    return float(min(1.0, 2.0 * sps.binom.cdf(min(only_a, only_b), n, 0.5)))


def sign_test(diffs: Sequence[float]) -> float:
    """Two-sided exact sign test on paired differences (zeros dropped); 1.0 when all are zero."""
    pos = sum(1 for d in diffs if d > 0)
    neg = sum(1 for d in diffs if d < 0)
    if pos + neg == 0:
        return 1.0
    return float(min(1.0, 2.0 * sps.binom.cdf(min(pos, neg), pos + neg, 0.5)))


def wilcoxon_signed_rank(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value on paired differences (zeros dropped); 1.0 when all zero."""
    d = np.asarray(diffs, dtype=float)
    if not np.any(d != 0):
        return 1.0
    return float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def chi2_homogeneity(table: Sequence[Sequence[int]]) -> dict[str, float | int]:
    """Pearson chi-square test of homogeneity on an ``r x c`` table of counts (no continuity correction).

    A degenerate table (one row, or a column that is all zero, e.g. everything correct) has nothing
    to test: statistic 0, p-value 1.
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-d table, got shape {t.shape}")
    t = t[t.sum(axis=1) > 0]
    dof = max(0, (t.shape[0] - 1) * (t.shape[1] - 1))
    if t.shape[0] < 2 or np.any(t.sum(axis=0) == 0):
        return {"statistic": 0.0, "dof": dof, "p_value": 1.0}
    res = sps.chi2_contingency(t, correction=False)
    return {"statistic": float(res.statistic), "dof": int(res.dof), "p_value": float(res.pvalue)}


# ----------------------------------------------------------------------------------------------------
# Bootstrap


def _percentile_interval(values: np.ndarray, conf: float) -> tuple[float, float]:
    alpha = (1.0 - conf) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_boot: int = 10000, seed: int = 0, conf: float = 0.95
) -> tuple[float, float, float]:
    """Mean difference ``mean(a) - mean(b)`` and its percentile bootstrap interval.

    ``a[i]`` and ``b[i]`` are the two systems' accuracies on problem ``i``; problems are resampled
    together, which keeps the pairing.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values must be aligned 1-d sequences, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("paired_bootstrap needs at least one problem")
    d = x - y
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    chunk = max(1, 2_000_000 // d.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        boots[start:stop] = d[idx].mean(axis=1)
    lo, hi = _percentile_interval(boots, conf)
    return float(d.mean()), lo, hi


def _per_problem_counts(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(n_i, c_i)`` per problem from per-sample dicts or from per-problem outcome sequences."""
    if rows and isinstance(rows[0], Mapping):
        by_problem: dict[Any, list[int]] = {}
        for r in rows:
            nc = by_problem.setdefault(r["problem_id"], [0, 0])
            nc[0] += 1
            nc[1] += int(bool(r["correct"]))
        counts = list(by_problem.values())
    else:
        counts = [[len(outcomes), sum(int(bool(o)) for o in outcomes)] for outcomes in rows]
    arr = np.asarray(counts, dtype=np.int64).reshape(-1, 2)
    if np.any(arr[:, 0] == 0):
        raise ValueError("every problem needs at least one sample")
    return arr[:, 0], arr[:, 1]


def bootstrap_two_level(
    rows: Sequence[Any], n_boot: int = 10000, seed: int = 0, conf: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of accuracy under a two-level bootstrap: problems, then samples within them.

    ``rows`` is either per-sample dicts with ``problem_id`` and ``correct`` or one sequence of
    outcomes (bools) per problem. Accuracy is the pooled share of correct samples. Resampling the
    ``n_i`` samples of problem ``i`` with replacement gives ``Binomial(n_i, c_i / n_i)`` correct ones,
    which is how the inner level is drawn.
    """
    n, c = _per_problem_counts(rows)
    return bootstrap_two_level_counts(n, c, n_boot, seed, conf)


def bootstrap_two_level_counts(
    n: Sequence[int], c: Sequence[int], n_boot: int = 10000, seed: int = 0, conf: float = 0.95
) -> tuple[float, float]:
    """``bootstrap_two_level`` from per-problem sample counts ``n`` and correct counts ``c``."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    if n.size == 0:
        raise ValueError("bootstrap_two_level needs at least one problem")
    p = c / n
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n.size, size=(stop - start, n.size))
        correct = rng.binomial(n[idx], p[idx])
        boots[start:stop] = correct.sum(axis=1) / n[idx].sum(axis=1)
    return _percentile_interval(boots, conf)


# ----------------------------------------------------------------------------------------------------
# Sample-size planning


def intraclass_correlation(n: Sequence[int], c: Sequence[int]) -> float:
    """One-way ANOVA estimate of the within-problem correlation of binary outcomes, clipped to [0, 1]."""
    n_arr = np.asarray(n, dtype=float)
    c_arr = np.asarray(c, dtype=float)
    k, total = n_arr.size, n_arr.sum()
    if k < 2 or total - k <= 0:
        return 0.0
    p = c_arr / n_arr
    grand = c_arr.sum() / total
    msb = float(np.sum(n_arr * (p - grand) ** 2) / (k - 1))
    msw = float(np.sum(c_arr - n_arr * p**2) / (total - k))  # sum of within-problem squared deviations
    m0 = (total - np.sum(n_arr**2) / total) / (k - 1)
    denom = msb + (m0 - 1) * msw
    if denom <= 0:
        return 0.0
    return float(min(1.0, max(0.0, (msb - msw) / denom)))


def samples_for_width(rate: float, target_width: float, conf: float = 0.95) -> int:
    """Fewest independent samples whose Wilson interval at ``rate`` is at most ``target_width`` wide."""
    if not 0.0 < target_width < 1.0:
        raise ValueError(f"target width must be in (0, 1), got {target_width}")
    rate = min(1.0, max(0.0, rate))
    lo, hi = 1, 2
    while wilson_width(rate, hi, conf) > target_width:
        lo, hi = hi, hi * 2
    while lo < hi:  # smallest n in (lo, hi] with a narrow enough interval; width falls as n grows
        mid = (lo + hi) // 2
        if wilson_width(rate, mid, conf) <= target_width:
            hi = mid
        else:
            lo = mid + 1
    return hi


def plan_sample_size(
    n: Sequence[int], c: Sequence[int], target_width: float = 0.05, conf: float = 0.95
) -> dict[str, Any]:
    """How many problems (and samples per problem) an accuracy interval of ``target_width`` needs.

    ``n_eff`` independent samples give a Wilson interval of that width at the observed rate. With
    ``m`` correlated samples per problem (intraclass correlation ``rho``) each problem is worth
    ``m / (1 + (m - 1) rho)`` independent samples (the design effect), so ``n_eff * deff / m``
    problems are needed; even infinitely many samples per problem need ``n_eff * rho`` problems.
    """
    n_arr = np.asarray(n, dtype=float)
    c_arr = np.asarray(c, dtype=float)
    rate = float(c_arr.sum() / n_arr.sum())
    rho = intraclass_correlation(n_arr, c_arr)
    n_eff = samples_for_width(rate, target_width, conf)
    m_obs = max(1, round(float(n_arr.mean())))

    def problems(m: int) -> int:
        return math.ceil(n_eff * (1 + (m - 1) * rho) / m)

    options = sorted({1, 4, 16, m_obs})
    return {
        "target_width": target_width,
        "rate": rate,
        "icc": rho,
        "effective_samples_needed": n_eff,
        "samples_per_problem": m_obs,
        "design_effect": 1 + (m_obs - 1) * rho,
        "problems_needed": problems(m_obs),
        "problems_needed_by_samples": {str(m): problems(m) for m in options},
        "min_problems_any_samples": math.ceil(n_eff * rho) if rho > 0 else None,
        "current_problems": int(n_arr.size),
        "current_width": _current_width(rate, n_arr, rho, conf),
    }


def _current_width(rate: float, n_arr: np.ndarray, rho: float, conf: float) -> float:
    deff = 1 + (float(n_arr.mean()) - 1) * rho
    return wilson_width(rate, float(n_arr.sum()) / deff, conf)


# ----------------------------------------------------------------------------------------------------
# Per-sample rows -> stats.json

ALL_VARIANTS_DEFINITION = (
    "an instance is the set of rows of one family that share a sample index (sample_id, else the "
    "row's order within its problem) across the family's variations; only instances with a row in "
    "every variation count, and the rate is the share of those whose rows are all correct"
)


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: 'correct' must be a bool (or 0/1), got {value!r}")


def load_sample_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Per-sample rows with ``problem_id`` and a boolean ``correct``; other fields are kept."""
    rows = []
    for lineno, rec in iter_jsonl(path, required=("problem_id", "correct")):
        rec["correct"] = _as_bool(rec["correct"], f"{path}:{lineno}")
        rows.append(rec)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def group_rows(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by their ``model`` value; ``"all"`` when rows carry none."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        model = r.get("model")
        groups.setdefault("all" if model is None else str(model), []).append(r)
    return groups


def problems_of(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by problem, each problem's rows in sample order (``sample_id`` if every row has one)."""
    problems: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        problems.setdefault(str(r["problem_id"]), []).append(r)
    for samples in problems.values():
        if all(isinstance(s.get("sample_id"), int | float) for s in samples):
            samples.sort(key=lambda s: s["sample_id"])  # stable: equal ids keep file order
    return problems


def _sample_index(problem_rows: Sequence[dict[str, Any]]) -> list[Any]:
    if all(s.get("sample_id") is not None for s in problem_rows):
        return [s["sample_id"] for s in problem_rows]
    return list(range(len(problem_rows)))


def family_stats(rows: Sequence[dict[str, Any]], conf: float = 0.95) -> dict[str, Any]:
    """Per family: per-variation counts, spread of rates, chi-square homogeneity, all-variants rate.

    A row's variation is its ``variation_id`` (its ``problem_id`` when absent); rows without a
    ``family_id`` are left out.
    """
    families: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("family_id") is not None:
            families.setdefault(str(r["family_id"]), []).append(r)
    out: dict[str, Any] = {}
    for fam, fam_rows in families.items():
        variations: dict[str, list[dict[str, Any]]] = {}
        for r in fam_rows:
            var = r.get("variation_id")
            variations.setdefault(str(r["problem_id"] if var is None else var), []).append(r)
        var_stats = {}
        instances: dict[Any, dict[str, list[bool]]] = {}  # sample index -> variation -> outcomes
        for var in sorted(variations, key=_natural_key):
            var_rows = variations[var]
            k = sum(r["correct"] for r in var_rows)
            lo, hi = wilson_interval(k, len(var_rows), conf)
            var_stats[var] = {"n": len(var_rows), "correct": k, "rate": k / len(var_rows), "ci95": [lo, hi]}
            for problem_rows in problems_of(var_rows).values():
                for idx, r in zip(_sample_index(problem_rows), problem_rows, strict=True):
                    instances.setdefault(idx, {}).setdefault(var, []).append(r["correct"])
        rates = [v["rate"] for v in var_stats.values()]
        complete = [inst for inst in instances.values() if len(inst) == len(variations)]
        all_ok = sum(all(all(o) for o in inst.values()) for inst in complete)
        out[fam] = {
            "variations": var_stats,
            "n_variations": len(var_stats),
            "min_rate": min(rates),
            "max_rate": max(rates),
            "spread": max(rates) - min(rates),
            "chi2": chi2_homogeneity([[v["correct"], v["n"] - v["correct"]] for v in var_stats.values()]),
            "all_variants_correct_rate": all_ok / len(complete) if complete else None,
            "n_instances": len(complete),
        }
    return out


def _natural_key(s: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t)


def powers_of_two_up_to(n: int) -> list[int]:
    return [2**i for i in range(int(math.log2(n)) + 1)] if n >= 1 else []


def group_stats(
    rows: Sequence[dict[str, Any]],
    *,
    n_boot: int = 10000,
    seed: int = 0,
    conf: float = 0.95,
    target_width: float = 0.05,
) -> dict[str, Any]:
    """The stats of one group of per-sample rows (see the module docstring for the layout)."""
    problems = problems_of(rows)
    n = np.array([len(s) for s in problems.values()])
    c = np.array([sum(r["correct"] for r in s) for s in problems.values()])
    k_total, n_total = int(c.sum()), int(n.sum())
    lo, hi = wilson_interval(k_total, n_total, conf)
    blo, bhi = bootstrap_two_level_counts(n, c, n_boot, seed, conf)
    ks = powers_of_two_up_to(int(n.min()))
    out: dict[str, Any] = {
        "accuracy": {
            "mean": k_total / n_total,
            "ci95": [lo, hi],
            "ci95_bootstrap": [blo, bhi],
            "n_problems": len(problems),
            "n_samples": n_total,
        },
        "samples_per_problem": {"min": int(n.min()), "max": int(n.max()), "mean": float(n.mean())},
        "pass_at_k": {
            str(k): float(np.mean([pass_at_k(int(ni), int(ci), k) for ni, ci in zip(n, c, strict=True)]))
            for k in ks
        },
    }
    if any("answer" in r for r in rows):
        from rlvr.eval.majority import maj_at_k

        out["maj_at_k"] = maj_at_k(list(problems.values()), ks)
    out["families"] = family_stats(rows, conf)
    out["planner"] = plan_sample_size(n, c, target_width, conf)
    return out


def summarise_rows(
    rows: Sequence[dict[str, Any]],
    *,
    n_boot: int = 10000,
    seed: int = 0,
    conf: float = 0.95,
    target_width: float = 0.05,
) -> dict[str, Any]:
    """``{"groups": {GROUP: group_stats(...)}, "meta": {...}}`` for per-sample rows grouped by model."""
    groups = group_rows(rows)
    meta: dict[str, Any] = {
        "n_rows": len(rows),
        "confidence": conf,
        "n_boot": n_boot,
        "seed": seed,
        "all_variants_definition": ALL_VARIANTS_DEFINITION,
        "pass_at_k": "unbiased estimator of Chen et al. (2021), k = 1, 2, 4, ... <= fewest samples of a problem",
    }
    if any("answer" in r for r in rows):
        from rlvr.eval.majority import equivalence_backend

        meta["maj_at_k_equivalence"] = equivalence_backend()
    return {
        "groups": {
            g: group_stats(r, n_boot=n_boot, seed=seed, conf=conf, target_width=target_width)
            for g, r in groups.items()
        },
        "meta": meta,
    }
