import itertools
import json
import math
import random
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.eval import majority
from rlvr.eval.stats import (
    bootstrap_two_level,
    chi2_homogeneity,
    family_stats,
    intraclass_correlation,
    load_sample_rows,
    mcnemar_exact,
    paired_bootstrap,
    pass_at_k,
    plan_sample_size,
    samples_for_width,
    summarise_rows,
    wilson_interval,
    wilson_width,
)
from rlvr.io import DataError, write_jsonl

# ---------------------------------------------------------------------------------------------------
# Closed forms against independent computations


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (37, 120), (500, 501)])
@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy_and_closed_form(k, n, conf):
    lo, hi = wilson_interval(k, n, conf)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)
    # The Wilson interval is the set of p whose score test does not reject: |p_hat - p| <= z sqrt(p(1-p)/n).
    z = sps.norm.ppf(0.5 + conf / 2)
    a, b, c = 1 + z * z / n, -(2 * k / n + z * z / n), (k / n) ** 2
    roots = sorted(np.roots([a, b, c]).real)
    assert lo == pytest.approx(max(0.0, roots[0]), abs=1e-9)
    assert hi == pytest.approx(min(1.0, roots[1]), abs=1e-9)


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_pass_at_k_matches_enumeration_of_subsets():
    for n in range(1, 8):
        for c in range(n + 1):
            outcomes = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(outcomes, k))
                brute = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_for_large_n():
    exact = 1 - math.comb(900, 50) / math.comb(1000, 50)
    assert pass_at_k(1000, 100, 50) == pytest.approx(exact, rel=1e-10)
    assert pass_at_k(200, 0, 100) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(5, 2, 6)


def test_mcnemar_matches_binomial_test_on_discordant_pairs():
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(1, 60)
        a = [rng.random() < 0.6 for _ in range(n)]
        b = [rng.random() < 0.4 for _ in range(n)]
        only_a = sum(x and not y for x, y in zip(a, b, strict=True))
        only_b = sum(y and not x for x, y in zip(a, b, strict=True))
        expected = 1.0 if only_a + only_b == 0 else sps.binomtest(only_a, only_a + only_b, 0.5).pvalue
        assert mcnemar_exact(a, b) == pytest.approx(expected, abs=1e-12)
    assert mcnemar_exact([True, False], [True, False]) == 1.0


def test_chi2_matches_scipy_and_hand_computation():
    table = [[12, 8], [5, 15], [9, 11]]
    got = chi2_homogeneity(table)
    ref = sps.chi2_contingency(np.array(table), correction=False)
    assert got["statistic"] == pytest.approx(ref.statistic)
    assert got["p_value"] == pytest.approx(ref.pvalue)
    assert got["dof"] == 2
    # By hand: expected = row total * column share; statistic = sum (O - E)^2 / E.
    cols = [sum(r[j] for r in table) for j in range(2)]
    total = sum(cols)
    stat = sum(
        (r[j] - sum(r) * cols[j] / total) ** 2 / (sum(r) * cols[j] / total) for r in table for j in range(2)
    )
    assert got["statistic"] == pytest.approx(stat)
    assert got["p_value"] == pytest.approx(sps.chi2.sf(stat, 2))


def test_chi2_degenerate_tables():
    assert chi2_homogeneity([[10, 0], [7, 0]]) == {"statistic": 0.0, "dof": 1, "p_value": 1.0}
    assert chi2_homogeneity([[0, 4], [0, 9], [0, 1]]) == {"statistic": 0.0, "dof": 2, "p_value": 1.0}
    assert chi2_homogeneity([[3, 4]])["p_value"] == 1.0


# ---------------------------------------------------------------------------------------------------
# Bootstrap: coverage and agreement with a plain reference implementation


def _reference_two_level(per_problem, n_boot, seed, conf=0.95):
    rng = random.Random(seed)
    stats = []
    for _ in range(n_boot):
        drawn = [per_problem[rng.randrange(len(per_problem))] for _ in per_problem]
        samples = []
        for outcomes in drawn:
            samples += [outcomes[rng.randrange(len(outcomes))] for _ in outcomes]
        stats.append(sum(samples) / len(samples))
    stats.sort()
    alpha = (1 - conf) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def test_two_level_bootstrap_matches_reference_implementation():
    rng = np.random.default_rng(1)
    per_problem = [
        list(rng.random(m) < p) for p, m in zip(rng.beta(2, 2, 25), rng.integers(2, 9, 25), strict=True)
    ]
    lo, hi = bootstrap_two_level(per_problem, n_boot=4000, seed=0)
    rlo, rhi = _reference_two_level(per_problem, n_boot=4000, seed=1)
    assert lo == pytest.approx(rlo, abs=0.02)
    assert hi == pytest.approx(rhi, abs=0.02)
    # Per-sample dict rows give the same interval as per-problem outcome lists.
    rows = [{"problem_id": i, "correct": bool(o)} for i, outs in enumerate(per_problem) for o in outs]
    assert bootstrap_two_level(rows, n_boot=4000, seed=0) == (lo, hi)


def test_two_level_bootstrap_covers_the_truth():
    rng = np.random.default_rng(7)
    a, b, n_problems, m = 2.0, 3.0, 40, 4
    truth = a / (a + b)  # mean problem difficulty of the population
    covered = 0
    trials = 150
    for t in range(trials):
        p = rng.beta(a, b, n_problems)
        outcomes = [list(rng.random(m) < pi) for pi in p]
        lo, hi = bootstrap_two_level(outcomes, n_boot=800, seed=t)
        covered += lo <= truth <= hi
    assert 0.88 <= covered / trials <= 1.0


def test_paired_bootstrap_matches_reference_and_covers():
    rng = np.random.default_rng(3)
    a = rng.random(60)
    b = np.clip(a - 0.05 + rng.normal(0, 0.1, 60), 0, 1)
    delta, lo, hi = paired_bootstrap(a, b, n_boot=4000, seed=0)
    assert delta == pytest.approx(float(np.mean(a - b)))
    ref_rng = random.Random(5)
    ref = sorted(
        sum(a[j] - b[j] for j in (ref_rng.randrange(60) for _ in range(60))) / 60 for _ in range(4000)
    )
    assert lo == pytest.approx(np.quantile(ref, 0.025), abs=0.006)
    assert hi == pytest.approx(np.quantile(ref, 0.975), abs=0.006)

    covered, trials = 0, 150
    for t in range(trials):
        x = rng.random(50) < 0.6
        y = rng.random(50) < 0.5
        _, lo, hi = paired_bootstrap(x.astype(float), y.astype(float), n_boot=800, seed=t)
        covered += lo <= 0.1 <= hi
    assert 0.88 <= covered / trials <= 0.99


# ---------------------------------------------------------------------------------------------------
# Sample-size planning


def test_samples_for_width_is_the_smallest_n():
    for rate in (0.0, 0.05, 0.3, 0.5, 0.97):
        for width in (0.02, 0.05, 0.1):
            n = samples_for_width(rate, width)
            assert wilson_width(rate, n) <= width < wilson_width(rate, n - 1) if n > 1 else True
    # The normal approximation 4 z^2 p(1-p) / w^2 is close in the middle of the range.
    assert samples_for_width(0.5, 0.05) == pytest.approx(4 * 1.959964**2 * 0.25 / 0.05**2, rel=0.01)


def test_icc_estimate_and_design_effect():
    rng = np.random.default_rng(0)
    a, b = 1.0, 1.0  # beta-binomial: ICC = 1 / (a + b + 1) = 1/3
    p = rng.beta(a, b, 3000)
    n = np.full(3000, 8)
    c = rng.binomial(n, p)
    assert intraclass_correlation(n, c) == pytest.approx(1 / 3, abs=0.03)
    # Independent outcomes: no within-problem correlation, and one sample per problem needs n_eff problems.
    c0 = rng.binomial(n, 0.4)
    assert intraclass_correlation(n, c0) < 0.02
    plan = plan_sample_size(n, c, target_width=0.05)
    assert plan["problems_needed_by_samples"]["1"] == plan["effective_samples_needed"]
    deff = 1 + 7 * plan["icc"]
    assert plan["problems_needed"] == math.ceil(plan["effective_samples_needed"] * deff / 8)
    assert (
        plan["problems_needed_by_samples"]["16"]
        < plan["problems_needed"]
        < plan["problems_needed_by_samples"]["4"]
    )


# ---------------------------------------------------------------------------------------------------
# maj@k clustering


def test_majority_clusters_equivalent_answers():
    labels = majority.cluster_answers(["1/2", "0.5", "\\frac{1}{2}", "3", "3", None])
    assert labels[:3] == [0, 0, 0]
    assert labels[3] == labels[4] == 1
    assert labels[5] is None
    # By plain strings, 1/2 would lose to 3 (two votes); with equivalence its cluster wins 3 to 2.
    rows = [
        {"answer": "3", "correct": False},
        {"answer": "1/2", "correct": True},
        {"answer": "3", "correct": False},
        {"answer": "0.5", "correct": True},
        {"answer": "\\frac{1}{2}", "correct": True},
    ]
    assert majority.maj_at_k([rows], [1, 2, 4]) == {"1": 0.0, "2": 0.0, "4": 0.0}
    assert majority.maj_at_k([rows], [5]) == {"5": 1.0}
    string_labels = majority.cluster_answers(["1/2", "0.5", "1/2 "], majority._string_equivalent)
    assert string_labels == [0, 1, 0]
    # Rows of another verifier are not math answers: clustered by string, 3 (two votes) wins.
    code_rows = [dict(r, verifier="code") for r in rows]
    assert majority.maj_at_k([code_rows], [5]) == {"5": 0.0}


def test_every_equivalence_backend_clusters_numbers():
    assert majority.equivalence_backend().startswith("rlvr.verify.math")
    math_verify_eq = majority._math_verify_equivalent()
    assert majority.cluster_answers(["1/2", "0.5", "\\frac{1}{2}", "2"], math_verify_eq) == [0, 0, 0, 1]
    assert majority._string_equivalent("$\\boxed{7}$", " 7.") and not majority._string_equivalent("7", "07")


def test_majority_ties_and_abstentions():
    assert majority.majority_correct([0, 1], [False, True], 2) is False  # tie: first seen wins
    assert majority.majority_correct([None, None], [True, True], 2) is False
    assert majority.majority_correct([None, 1, 1], [False, True, True], 3) is True


# ---------------------------------------------------------------------------------------------------
# Rows -> stats.json


def _rows():
    rows = []
    # family F: variations v1 (3/4 correct), v2 (1/4 correct); samples 0..3 of each.
    outcomes = {"v1": [1, 1, 1, 0], "v2": [1, 0, 0, 0]}
    for var, outs in outcomes.items():
        for s, o in enumerate(outs):
            rows.append(
                {
                    "problem_id": f"F-{var}",
                    "family_id": "F",
                    "variation_id": var,
                    "sample_id": s,
                    "correct": bool(o),
                }
            )
    for s, o in enumerate([1, 0]):  # a problem outside any family, only 2 samples
        rows.append({"problem_id": "solo", "sample_id": s, "correct": bool(o)})
    return rows


def test_summary_layout_and_values():
    res = summarise_rows(_rows(), n_boot=500)
    g = res["groups"]["all"]
    acc = g["accuracy"]
    assert acc["mean"] == pytest.approx(5 / 10)
    assert acc["ci95"] == pytest.approx(list(wilson_interval(5, 10)))
    assert acc["n_problems"] == 3 and acc["n_samples"] == 10
    assert acc["ci95_bootstrap"][0] <= 0.5 <= acc["ci95_bootstrap"][1]
    # k only up to the fewest samples of a problem (2), each problem with its own n.
    assert set(g["pass_at_k"]) == {"1", "2"}
    expected = (pass_at_k(4, 3, 2) + pass_at_k(4, 1, 2) + pass_at_k(2, 1, 2)) / 3
    assert g["pass_at_k"]["2"] == pytest.approx(expected)
    fam = g["families"]["F"]
    assert fam["variations"]["v1"] == {
        "n": 4,
        "correct": 3,
        "rate": 0.75,
        "ci95": list(wilson_interval(3, 4)),
    }
    assert fam["spread"] == pytest.approx(0.5)
    ref = sps.chi2_contingency(np.array([[3, 1], [1, 3]]), correction=False)
    assert fam["chi2"]["statistic"] == pytest.approx(ref.statistic)
    # Instances (sample index across variations): 0 -> (1, 1) all correct; 1..3 -> not.
    assert fam["all_variants_correct_rate"] == pytest.approx(1 / 4)
    assert "maj_at_k" not in g
    assert set(g["planner"]) >= {"problems_needed", "icc", "effective_samples_needed", "target_width"}


def test_summary_groups_by_model_and_counts_maj():
    rows = [dict(r, model="m1", answer="1/2" if r["correct"] else "7") for r in _rows()]
    rows += [dict(r, model="m2", correct=not r["correct"]) for r in _rows()]
    res = summarise_rows(rows, n_boot=200)
    assert set(res["groups"]) == {"m1", "m2"}
    assert res["groups"]["m1"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert "maj_at_k" in res["groups"]["m1"] and "maj_at_k" not in res["groups"]["m2"]
    assert "maj_at_k_equivalence" in res["meta"]


def test_family_without_variation_id_uses_problem_ids():
    rows = [
        {"problem_id": p, "family_id": "F", "correct": c} for p, c in [("a", True), ("a", True), ("b", False)]
    ]
    fam = family_stats(rows)["F"]
    assert set(fam["variations"]) == {"a", "b"}
    assert fam["spread"] == 1.0


def test_bad_rows_name_file_and_line(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"problem_id": 1, "correct": true}\n{"problem_id": 2, "correct": "yes"}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:2: 'correct' must be a bool"):
        load_sample_rows(p)
    p.write_text('{"problem_id": 1, "correct": 1}\n{"correct": 0}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:2: missing field"):
        load_sample_rows(p)
    p.write_text('{"problem_id": 1, "correct": 1}\n')
    assert load_sample_rows(p)[0]["correct"] is True


def test_stats_command_writes_json_and_rejects_bad_input(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_jsonl(data, _rows())
    result = CliRunner().invoke(app, ["stats", str(data), "--out", str(tmp_path / "o"), "--n-boot", "300"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert saved["groups"]["all"]["accuracy"]["n_samples"] == 10
    assert "spread" in result.output.lower()
    (tmp_path / "bad.jsonl").write_text(
        '{"problem_id": 1, "correct": true}\n{"problem_id": 1, "correct": 2}\n'
    )
    result = CliRunner().invoke(app, ["stats", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output
    assert not (tmp_path / "o2" / "stats.json").exists()


# ---------------------------------------------------------------------------------------------------
# Real-world data: the AIW per-sample labels


def test_aiw_samples_spreads_match_independent_recount(shared_dir, tmp_path):
    path = shared_dir / "data" / "aiw" / "aiw_samples.jsonl"
    result = CliRunner().invoke(app, ["stats", str(path), "--out", str(tmp_path), "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    groups = json.loads((tmp_path / "stats.json").read_text())["groups"]

    cells = defaultdict(lambda: [0, 0])  # (model, family, variation) -> [n, correct]
    per_model = defaultdict(lambda: [0, 0])
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in lines:
        for key, table in (((r["model"], r["family_id"], r["variation_id"]), cells), (r["model"], per_model)):
            table[key][0] += 1
            table[key][1] += r["correct"]
    assert len(lines) == 17018
    assert len(groups) == 41 == len(per_model)
    for model, (n, c) in per_model.items():
        assert groups[model]["accuracy"]["n_samples"] == n
        assert groups[model]["accuracy"]["mean"] == pytest.approx(c / n)
    rates = defaultdict(list)
    for (model, fam, _), (n, c) in cells.items():
        rates[model, fam].append(c / n)
    assert sum(len(g["families"]) for g in groups.values()) == len(rates) == 111
    for (model, fam), rs in rates.items():
        assert groups[model]["families"][fam]["spread"] == pytest.approx(max(rs) - min(rs))
    # One cell checked by hand from the file: o1-mini on the "Alice brothers" family, variation 4.
    fam = "AIW Ext, Alice and Bob combi, Alice brothers question [THINKING V2]"
    n, c = cells["o1-mini", fam, "4"]
    assert groups["o1-mini"]["families"][fam]["variations"]["4"] == {
        "n": n,
        "correct": c,
        "rate": c / n,
        "ci95": list(wilson_interval(c, n)),
    }
