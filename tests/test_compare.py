import json
import random
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.eval.compare import compare_files, compare_rows
from rlvr.io import DataError, write_jsonl


def _single_sample_runs(seed=0, n=80):
    rng = random.Random(seed)
    a = [{"problem_id": f"p{i}", "correct": rng.random() < 0.7} for i in range(n)]
    b = [{"problem_id": f"p{i}", "correct": rng.random() < 0.5} for i in range(n)]
    return a, b


def test_single_sample_comparison_matches_independent_tests():
    a, b = _single_sample_runs()
    a.append({"problem_id": "only-a", "correct": True})
    b.append({"problem_id": "only-b", "correct": False})
    res = compare_rows(a, b, n_boot=2000)
    assert res["n_shared_problems"] == 80
    assert res["only_in_a"] == ["only-a"] and res["only_in_b"] == ["only-b"]
    xa = np.array([r["correct"] for r in a[:80]], dtype=float)
    xb = np.array([r["correct"] for r in b[:80]], dtype=float)
    assert res["a"]["accuracy"] == pytest.approx(xa.mean())
    assert res["delta"] == pytest.approx(xa.mean() - xb.mean())
    lo, hi = res["ci95_bootstrap"]
    assert lo < res["delta"] < hi
    only_a = int(np.sum((xa == 1) & (xb == 0)))
    only_b = int(np.sum((xb == 1) & (xa == 0)))
    assert res["mcnemar"]["a_only_correct"] == only_a
    assert res["mcnemar"]["p_value"] == pytest.approx(sps.binomtest(only_a, only_a + only_b).pvalue)
    assert res["mcnemar"]["basis"] == "single sample per problem"
    assert "wilcoxon_p_value" not in res


def test_multi_sample_comparison_adds_sign_and_wilcoxon_tests():
    rng = np.random.default_rng(1)
    rows_a, rows_b, diffs = [], [], []
    for i in range(40):
        p = rng.random()
        ca = rng.random(8) < min(1, p + 0.15)
        cb = rng.random(8) < p
        rows_a += [{"problem_id": i, "sample_id": s, "correct": bool(x)} for s, x in enumerate(ca)]
        rows_b += [{"problem_id": i, "sample_id": s, "correct": bool(x)} for s, x in enumerate(cb)]
        diffs.append(ca.mean() - cb.mean())
    res = compare_rows(rows_a, rows_b, n_boot=2000)
    d = np.array(diffs)
    assert res["delta"] == pytest.approx(d.mean())
    assert res["wilcoxon_p_value"] == pytest.approx(sps.wilcoxon(d[d != 0]).pvalue)
    pos, neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    assert res["sign_test_p_value"] == pytest.approx(sps.binomtest(pos, pos + neg).pvalue)
    assert (res["problems_a_better"], res["problems_b_better"]) == (pos, neg)
    assert res["mcnemar"]["basis"].startswith("per-problem majority")


def test_identical_runs_have_no_difference():
    a, _ = _single_sample_runs()
    res = compare_rows(a, a, n_boot=500)
    assert res["delta"] == 0.0 and res["ci95_bootstrap"] == [0.0, 0.0]
    assert res["mcnemar"]["p_value"] == 1.0


def test_no_shared_problem_is_an_error():
    with pytest.raises(DataError, match="share no problem_id"):
        compare_rows([{"problem_id": 1, "correct": True}], [{"problem_id": 2, "correct": True}])


def test_compare_command_and_model_selection(tmp_path):
    a, b = _single_sample_runs()
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", b)
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(
        app, ["compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "McNemar exact p" in result.output
    saved = json.loads(out.read_text())
    assert saved["a"]["file"].endswith("a.jsonl") and saved["n_shared_problems"] == 80

    both = [dict(r, model="m1") for r in a] + [dict(r, model="m2") for r in b]
    write_jsonl(tmp_path / "both.jsonl", both)
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "both.jsonl"), str(tmp_path / "both.jsonl")])
    assert result.exit_code == 2 and "--model-a" in result.output
    res = compare_files(tmp_path / "both.jsonl", tmp_path / "both.jsonl", "m1", "m2", n_boot=500)
    assert res["delta"] == pytest.approx(saved["delta"])
    with pytest.raises(DataError, match="no rows of model 'm3'"):
        compare_files(tmp_path / "both.jsonl", tmp_path / "both.jsonl", "m3", "m2")


def test_compare_two_aiw_models(shared_dir):
    path = shared_dir / "data" / "aiw" / "aiw_samples.jsonl"
    res = compare_files(path, path, "o1-preview", "o1-mini", n_boot=1000)
    per = defaultdict(lambda: [0, 0])
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["model"] in ("o1-preview", "o1-mini"):
            per[r["model"], r["problem_id"]][0] += 1
            per[r["model"], r["problem_id"]][1] += r["correct"]
    pa = {p: c / n for (m, p), (n, c) in per.items() if m == "o1-preview"}
    pb = {p: c / n for (m, p), (n, c) in per.items() if m == "o1-mini"}
    shared = sorted(set(pa) & set(pb))
    assert res["n_shared_problems"] == len(shared)
    assert res["delta"] == pytest.approx(np.mean([pa[p] - pb[p] for p in shared]))
    assert len(res["only_in_a"]) == len(set(pa) - set(pb))
