import hashlib
import json

import pytest

from rlvr.eval.runner import evaluate, load_rows
from rlvr.io import DataError
from rlvr.models.base import Generation, SamplingParams
from rlvr.records import Sample, Verdict
from rlvr.verify import register_verifier


def _exact_verifier(items, workers=2, timeout=None):
    """Correct when the last word of the completion is the gold answer; unparsable when empty."""
    out = []
    for it in items:
        words = it["completion"].split()
        if not words:
            out.append(Verdict(0.0, "unparsable", "empty"))
        else:
            ok = words[-1] == it["answer"]
            out.append(Verdict(float(ok), "correct" if ok else "incorrect", extracted=words[-1]))
    return out


register_verifier("exact_test", _exact_verifier)


class FakeBackend:
    """Deterministic given (prompt, seed, sample index): right about a third of the time."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[tuple[int, int]] = []  # (number of prompts, seed)
        self.fail_after = fail_after

    def generate(self, prompts, params: SamplingParams):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append((len(prompts), params.seed))
        gens = []
        for i, p in enumerate(prompts):
            text = p[-1]["content"]
            gold = text.split()[-1]
            for k in range(params.n):
                h = int(hashlib.sha256(f"{text}|{params.seed}|{k}".encode()).hexdigest(), 16)
                answer = gold if h % 3 == 0 else str(h % 97)
                completion = "" if h % 11 == 0 else f"I think the answer is {answer}"
                gens.append(
                    Generation(i, completion, [1, 2, 3], list(range(h % 7 + 1)), truncated=h % 5 == 0)
                )
        return gens


def _problems(n=10, family=False):
    out = []
    for i in range(n):
        out.append(
            Sample(
                id=f"p{i}",
                prompt=f"Say {i * 7}",
                verifier="exact_test",
                gold=str(i * 7),
                family_id=f"fam{i % 2}" if family else None,
                variation_id=f"v{i % 3}" if family else None,
            )
        )
    return out


def _strip_time(rows):
    return [{k: v for k, v in r.items() if k != "elapsed_ms"} for r in rows]


def test_evaluate_rows_and_summary(tmp_path):
    backend = FakeBackend()
    rows = evaluate(backend, _problems(family=True), n=4, batch_size=8, out_dir=tmp_path, progress=False)
    assert len(rows) == 40
    assert [(r["problem_id"], r["sample_id"]) for r in rows[:5]] == [
        ("p0", 0),
        ("p0", 1),
        ("p0", 2),
        ("p0", 3),
        ("p1", 0),
    ]
    assert backend.calls == [
        (2, 0),
        (2, 1),
        (2, 2),
        (2, 3),
        (2, 4),
    ]  # 8 // 4 prompts per call, seed per batch
    for r in rows:
        assert r["correct"] == (r["status"] == "correct") and r["answer"] == r["extracted"]
        assert {
            "reward",
            "reason",
            "elapsed_ms",
            "tokens",
            "truncated",
            "family_id",
            "variation_id",
        } <= r.keys()
    assert load_rows(tmp_path / "samples.jsonl") == rows

    s = json.loads((tmp_path / "summary.json").read_text())
    n_correct = sum(r["correct"] for r in rows)
    assert 0 < n_correct < 40
    assert s["n_problems"] == 10 and s["n_samples"] == 40 and s["samples_per_problem"] == 4
    assert s["accuracy"] == pytest.approx(n_correct / 40)
    lo, hi = s["accuracy_ci95"]
    assert lo < s["accuracy"] < hi
    assert set(s["pass_at_k"]) == {"1", "2", "4"}
    assert s["pass_at_k"]["1"] == pytest.approx(s["accuracy"])
    assert s["pass_at_k"]["4"] == pytest.approx(
        sum(any(r["correct"] for r in rows if r["problem_id"] == f"p{i}") for i in range(10)) / 10
    )
    assert s["pass_at_k"]["1"] <= s["pass_at_k"]["2"] <= s["pass_at_k"]["4"]
    assert set(s["maj_at_k"]) == {"1", "2", "4"}
    assert s["status_counts"]["unparsable"] == sum(r["status"] == "unparsable" for r in rows)
    assert sum(s["status_counts"].values()) == 40
    assert s["tokens_total"] == sum(r["tokens"] for r in rows)
    assert s["truncation_rate"] == pytest.approx(sum(r["truncated"] for r in rows) / 40)
    assert set(s["stats"]["groups"]["all"]["families"]) == {"fam0", "fam1"}
    assert s["settings"]["n"] == 4


def test_evaluate_without_out_dir_matches(tmp_path):
    a = evaluate(FakeBackend(), _problems(), n=2, batch_size=4, progress=False)
    b = evaluate(FakeBackend(), _problems(), n=2, batch_size=4, out_dir=tmp_path, progress=False)
    assert _strip_time(a) == _strip_time(b)


def test_resume_after_interruption_and_torn_line(tmp_path):
    ref = evaluate(FakeBackend(), _problems(), n=3, batch_size=6, out_dir=tmp_path / "ref", progress=False)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(FakeBackend(fail_after=3), _problems(), n=3, batch_size=6, out_dir=out, progress=False)
    path = out / "samples.jsonl"
    assert len(load_rows(path)) == 18  # 3 batches of 2 problems x 3 samples
    assert not (out / "summary.json").exists()
    # A crash in the middle of a write: the last row is torn in half.
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    assert len(load_rows(path)) == 17

    backend = FakeBackend()
    rows = evaluate(backend, _problems(), n=3, batch_size=6, out_dir=out, progress=False)
    # Batch 2 (seed 2) is redone for its one missing row; batches 0-1 are skipped.
    assert backend.calls == [(2, 2), (2, 3), (2, 4)]
    assert _strip_time(rows) == _strip_time(ref)
    assert _strip_time(load_rows(path)) == _strip_time(ref)
    assert json.loads((out / "summary.json").read_text())["accuracy"] == pytest.approx(
        json.loads((tmp_path / "ref" / "summary.json").read_text())["accuracy"]
    )

    # A finished run resumes to nothing.
    again = FakeBackend()
    evaluate(again, _problems(), n=3, batch_size=6, out_dir=out, progress=False)
    assert again.calls == []


def test_resume_refuses_other_settings(tmp_path):
    evaluate(FakeBackend(), _problems(4), n=2, out_dir=tmp_path, progress=False)
    with pytest.raises(DataError, match=r"eval_config\.json.*n: 2 -> 3"):
        evaluate(FakeBackend(), _problems(4), n=3, out_dir=tmp_path, progress=False)
    with pytest.raises(DataError, match="problems_sha256"):
        evaluate(FakeBackend(), _problems(5), n=2, out_dir=tmp_path, progress=False)


def test_bad_line_in_the_middle_names_file_and_line(tmp_path):
    evaluate(FakeBackend(), _problems(3), n=1, out_dir=tmp_path, progress=False)
    path = tmp_path / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = "{not json\n"
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"samples\.jsonl:2: invalid JSON"):
        evaluate(FakeBackend(), _problems(3), n=1, out_dir=tmp_path, progress=False)


def test_rejects_duplicate_ids_and_bad_counts():
    probs = _problems(2)
    with pytest.raises(ValueError, match="duplicate problem ids"):
        evaluate(FakeBackend(), probs + probs[:1], progress=False)
    with pytest.raises(ValueError, match="no problems"):
        evaluate(FakeBackend(), [], progress=False)
    with pytest.raises(ValueError, match="n must be"):
        evaluate(FakeBackend(), probs, n=0, progress=False)


def test_eval_command_on_a_tiny_model_resumes_identically(tmp_path):
    """`rlvr eval` end to end: a real (random) transformers model, the addition task, the math verifier."""
    from tiny_model import make_tiny_model
    from typer.testing import CliRunner

    from rlvr.cli import app

    model = make_tiny_model(tmp_path / "model")
    args = [
        "eval",
        "--model",
        str(model),
        *"--task addition --n-problems 4 --samples 2 --temperature 1.0".split(),
    ]
    # A generous verifier limit: a timeout on a loaded machine would make the two runs' verdicts differ.
    args += "--max-new-tokens 12 --batch-size 4 --seed 3 --timeout 120".split()
    runner = CliRunner()
    ref = tmp_path / "ref"
    result = runner.invoke(app, [*args, "--out", str(ref)])
    assert result.exit_code == 0, result.output
    rows = load_rows(ref / "samples.jsonl")
    assert [(r["problem_id"], r["sample_id"]) for r in rows][:2] == [
        (rows[0]["problem_id"], 0),
        (rows[0]["problem_id"], 1),
    ]
    assert len(rows) == 8 and all(r["verifier"] == "math" and 0 < r["tokens"] <= 12 for r in rows)
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["settings"]["model"] == str(model) and summary["n_samples"] == 8
    assert sum(summary["status_counts"].values()) == 8

    # Interrupted run: only the first batch and half of a row of the second are on disk.
    out = tmp_path / "out"
    out.mkdir()
    (out / "eval_config.json").write_text((ref / "eval_config.json").read_text())
    text = (ref / "samples.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:4]) + lines[4][:30])
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _strip_time(load_rows(out / "samples.jsonl")) == _strip_time(rows)

    result = runner.invoke(app, [*args, "--samples", "3", "--out", str(out)])
    assert result.exit_code == 2 and "other settings" in result.output

    result = runner.invoke(app, ["audit", str(ref)])
    assert result.exit_code == 0, result.output
    assert json.loads((ref / "audit.json").read_text())["sources"]["n_completions"] == 8


def test_eval_command_errors(tmp_path):
    from typer.testing import CliRunner

    from rlvr.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["eval", "--model", "default", "--task", "no-such-task", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "unknown task 'no-such-task'" in result.output
    missing = tmp_path / "no-model"
    args = [
        "eval",
        "--model",
        str(missing),
        "--task",
        "addition",
        "--n-problems",
        "2",
        "--out",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "model folder not found" in result.output
