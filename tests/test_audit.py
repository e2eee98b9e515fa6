import json

import pytest

from rlvr.eval import audit as A
from rlvr.io import DataError


def _log(steps=40, acc=(0.2, 0.6), length=(200, 180), entropy=(1.0, 0.8), trunc=(0.05, 0.05)):
    def lerp(a, b, i):
        return a + (b - a) * i / (steps - 1)

    return [
        {
            "step": i,
            "reward_mean": lerp(*acc, i),
            "accuracy": lerp(*acc, i),
            "response_length": lerp(*length, i),
            "entropy": lerp(*entropy, i),
            "truncation_rate": lerp(*trunc, i),
            "status_counts": {"correct": 3, "incorrect": 5},
        }
        for i in range(steps)
    ]


def _names(sec):
    return {f["name"] for f in sec["flags"]}


def _row(completion, status="incorrect", **kw):
    return {
        "problem_id": "p",
        "sample_id": 0,
        "completion": completion,
        "status": status,
        "correct": status == "correct",
        **kw,
    }


def test_window_means():
    log = [{"x": float(i)} for i in range(8)] + [{"y": 1}]
    assert A.window_means(log, "x") == (0.5, 6.5)  # window 8 // 4 = 2
    assert A.window_means(log, "y") is None
    assert A.window_means(log, "x", window=1) == (0.0, 7.0)


def test_control_flags_only_when_control_gains_as_much():
    real = _log(acc=(0.2, 0.6))
    sec = A.control_audit(real, _log(acc=(0.2, 0.22)))
    assert sec["flags"] == []
    assert sec["figures"]["train_accuracy"]["real_gain"] > 0.3
    sec = A.control_audit(real, _log(acc=(0.2, 0.55)))
    assert _names(sec) == {"control_gains_train_accuracy"}
    # The control's own (random) rewards drifting up is not a warning; its accuracy is what counts.
    noisy = [dict(r, reward_mean=0.3 + 0.2 * r["step"] / 40) for r in _log(acc=(0.2, 0.21))]
    sec = A.control_audit(real, noisy)
    assert sec["flags"] == [] and sec["figures"]["train_reward_mean"]["control_gain"] > 0.1
    # Neither run learns: a flat control is not a warning.
    assert A.control_audit(_log(acc=(0.3, 0.3)), _log(acc=(0.3, 0.3)))["flags"] == []
    assert "no control run" in A.control_audit(real, [])["note"]


def test_control_from_demo_summary():
    s = {"before": {"accuracy": 0.30}, "after": {"accuracy": 0.50}, "control": {"accuracy": 0.31}}
    sec = A.control_audit(summary=s)
    assert sec["figures"]["heldout_accuracy"]["control_gain"] == pytest.approx(0.01)
    assert sec["flags"] == []
    s["control"] = {"before": 0.30, "after": 0.48}
    assert _names(A.control_audit(summary=s)) == {"control_gains_heldout_accuracy"}


def test_failure_rates():
    ok = [_row("x", "correct")] * 90 + [_row("y", "unparsable")] * 10
    sec = A.failure_audit(ok)
    assert sec["flags"] == [] and sec["figures"]["rates"]["unparsable"] == pytest.approx(0.1)
    bad = [_row("x", "correct")] * 70 + [_row("", "unparsable")] * 25 + [_row("", "timeout")] * 5
    assert _names(A.failure_audit(bad)) == {"high_unparsable", "high_timeout"}
    steady = [{"status": {"correct": 9, "unparsable": 1}}] * 20
    sec = A.failure_audit(ok, steady)
    assert sec["flags"] == [] and sec["figures"]["training_failure_rate"] == {"first": 0.1, "last": 0.1}
    rising = steady[:10] + [{"status": {"correct": 6, "unparsable": 4}}] * 10
    assert _names(A.failure_audit(ok, rising)) == {"rising_failures"}
    log = [{"status_counts": {"correct": 10, "error": 1}}]
    sec = A.failure_audit([], log)
    assert sec["figures"]["source"] == "training log" and _names(sec) == {"high_error"}


@pytest.mark.parametrize(
    "text, kinds",
    [
        ("So the answer is \\boxed{42}.", []),
        ("Maybe \\boxed{42}, no wait, \\boxed{ 42 }.", []),
        ("It is \\boxed{41} or perhaps \\boxed{42}.", ["multiple_boxed"]),
        ("Final answer: 41 or 42", ["or_between_numbers"]),
        ("The answer is \\boxed{41 \\text{ or } 42}", ["or_between_numbers"]),
        ("$x = 3$ or $x = -3$", ["or_between_numbers"]),
        ("The answer is 4, or in words four", []),
        ("The answer is \\boxed{41 or 42}", ["or_between_numbers"]),
        ("either 3 or more steps\nFinal answer: 7", []),
        ("Candidates:\n1, 2, 3, 4, 5, 6, 7, 8", ["number_list"]),
        ("23 + 45 = 68, so \\boxed{68}", []),
        ("\\boxed{\\frac{1}{2}} and \\boxed{3}", ["multiple_boxed"]),
    ],
)
def test_hedge_kinds(text, kinds):
    assert A.hedge_kinds(text) == kinds


def test_boxed_contents_nested():
    assert A.boxed_contents("a \\boxed{\\frac{1}{2}} b \\boxed{x^{2}} \\boxed{open") == [
        "\\frac{1}{2}",
        "x^{2}",
    ]


def test_hedging_audit():
    honest = [_row("\\boxed{5}", "correct")] * 50
    assert A.hedging_audit(honest)["flags"] == []
    spray = honest + [_row("\\boxed{4} \\boxed{5}", "correct")] * 10
    sec = A.hedging_audit(spray)
    assert _names(sec) == {"hedging"}
    assert sec["figures"]["rewarded"] == 10 and sec["figures"]["kinds"] == {"multiple_boxed": 10}
    assert len(sec["examples"]) == 3


def test_trainer_metric_names():
    rec = {
        "reward/mean": 0.5,
        "response_length/mean": 12.0,
        "truncated/rate": 0.0,
        "entropy": None,
        "status": {"correct": 2, "timeout": 1},
        "kl": {"mean": 0.1},
    }
    assert A.metric(rec, "reward_mean") == 0.5 and A.metric(rec, "response_length") == 12.0
    assert A.metric(rec, "entropy") is None and A.metric(rec, "kl") == 0.1
    assert A.status_counts(rec) == {"correct": 2, "timeout": 1}
    log = [{"step": i, "response_length/mean": 100.0 if i < 10 else 20.0} for i in range(40)]
    assert _names(A.collapse_audit(log)) == {"length_collapse"}


def test_collapse_audit():
    assert A.collapse_audit(_log())["flags"] == []
    sec = A.collapse_audit(_log(length=(200, 30), entropy=(1.0, 0.1)))
    assert _names(sec) == {"length_collapse", "entropy_collapse"}
    assert sec["figures"]["response_length"]["ratio"] < 0.5
    assert _names(A.collapse_audit(_log(trunc=(0.1, 0.9)))) == {"length_blowup"}
    assert "no training log" in A.collapse_audit([])["note"]
    # Three steps are too few to speak of a trend.
    assert A.collapse_audit(_log(steps=3, entropy=(1.0, 0.1)))["flags"] == []
    assert _names(A.collapse_audit(_log(steps=4, entropy=(1.0, 0.1)))) == {"entropy_collapse"}


def test_loops():
    normal = (
        "First add the tens, then the units. Twenty plus forty is sixty, three plus five is eight, so 68."
    )
    assert not A.is_looping(normal)
    assert A.is_looping("the answer is " + "and then we add one more " * 12)
    assert A.is_looping("Result: " + "7" * 30)
    rows = [_row(normal)] * 8 + [_row("so so so so " * 20)] * 2
    assert _names(A.loop_audit(rows)) == {"repetition_loops"}
    assert A.loop_audit([_row(normal)] * 10)["flags"] == []


def test_code_audit():
    clean = _row(
        "```python\ndef f(x):\n    return x + 1\n```", "correct", verifier="code", reason="3/3 tests passed"
    )
    assert A.code_audit([clean] * 5)["flags"] == []
    assert (
        A.code_audit([_row("import sys; sys.exit(0)", verifier="math")])["note"]
        == "no code completions found"
    )
    hostile = [
        _row("```python\nimport sys\ndef f(x):\n    sys.exit(0)\n```", "correct", verifier="code"),
        _row("```python\nclass A:\n    def __eq__(self, o): return True\n```", "correct", verifier="code"),
        _row("```python\nimport gc\nprint(gc.get_objects())\n```", verifier="code"),
        _row("```python\nos._exit(0)\n```", verifier="code", reason="sandbox violation: blocked syscall"),
        _row(
            "```python\nprint(1)\n```",
            verifier="code",
            reason="no valid test report: the harness exited with status 0; stderr: x",
        ),
    ]
    sec = A.code_audit([clean, *hostile])
    assert _names(sec) == {"hostile_code", "sandbox_violations"}
    assert sec["figures"]["calls"] == {"sys.exit": 1, "__eq__": 1, "gc": 1, "os._exit": 1}
    assert sec["figures"]["hostile_rewarded"] == 2 and sec["figures"]["violation_reasons"] == 2
    unsandboxed = _row(
        "```python\ndef f(x): return x\n```",
        "correct",
        verifier="code",
        reason="all tests passed (3 visible) (run WITHOUT the sandbox)",
    )
    assert A.code_audit([unsandboxed])["flags"] == []
    # Words that merely contain the names do not count.
    assert A.hostile_calls("def exit_code(): return 'logic'  # inspected, sockets") == []


def test_audit_dir_run_with_control(tmp_path):
    run = tmp_path / "run"
    (run / "control").mkdir(parents=True)
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _log(length=(200, 40))))
    (run / "control" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _log(acc=(0.2, 0.58))))
    (run / "eval_after").mkdir()
    rows = [_row("\\boxed{1} or \\boxed{2}", "correct")] * 3 + [_row("\\boxed{1}", "correct")] * 7
    (run / "eval_after" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = A.audit_dir(run)
    assert json.loads((run / "audit.json").read_text()) == json.loads(json.dumps(result))
    names = {f["name"] for f in result["flags"]}
    assert {"control_gains_train_accuracy", "length_collapse", "hedging"} <= names
    assert "entropy_collapse" not in names and "repetition_loops" not in names
    assert result["sources"]["n_completions"] == 10


def test_audit_dir_eval_with_rollouts_and_errors(tmp_path):
    rollout = {
        "sample_id": "p1",
        "group": 0,
        "completion": "\\boxed{3}",
        "verdict": {"reward": 1.0, "status": "correct", "reason": "", "extracted": "3"},
    }
    (tmp_path / "rollouts.jsonl").write_text(json.dumps(rollout) + "\n")
    result = A.audit_dir(tmp_path, write=False)
    assert result["audits"]["failures"]["figures"]["rates"]["correct"] == 1.0
    assert not (tmp_path / "audit.json").exists()
    (tmp_path / "rollouts.jsonl").write_text(json.dumps(rollout) + "\n{bad\n" + json.dumps(rollout) + "\n")
    with pytest.raises(DataError, match=r"rollouts\.jsonl:2"):
        A.audit_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        A.audit_dir(tmp_path / "missing")
