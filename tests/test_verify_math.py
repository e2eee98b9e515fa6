import json
import time
from collections import Counter
from pathlib import Path

import pytest

from rlvr.records import Verdict
from rlvr.verify import get_verifier
from rlvr.verify.math import equivalent, grade, verify, verify_batch

CASES_PATH = Path(__file__).parent / "data" / "math_cases.jsonl"
CASES = [json.loads(line) for line in CASES_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def table_verdicts() -> dict[str, Verdict]:
    items = [{"completion": c["completion"], "answer": c["gold"], "id": c["id"]} for c in CASES]
    return dict(zip((c["id"] for c in CASES), verify_batch(items, workers=2, timeout=TIMEOUT), strict=True))


def test_table_is_large_and_covers_every_category():
    assert len(CASES) >= 150
    assert len({c["id"] for c in CASES}) == len(CASES)
    counts = Counter(c["category"] for c in CASES)
    for category in (
        "number", "fraction", "symbolic", "equation", "set", "tuple", "interval", "units", "percent",
        "text", "hedge", "extraction", "unparsable", "near_miss", "blowup", "hostile",
    ):  # fmt: skip
        assert counts[category] >= 3, category
    assert {c["expected"] for c in CASES} == {"correct", "incorrect", "unparsable"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_labelled_case(case, table_verdicts):
    v = table_verdicts[case["id"]]
    assert v.status == case["expected"], f"gold={case['gold']!r} completion={case['completion']!r}: {v}"
    assert v.reward == (1.0 if case["expected"] == "correct" else 0.0)
    assert v.elapsed_ms < TIMEOUT * 1000
    if case["expected"] != "unparsable":
        assert v.extracted, "a graded answer must say what it graded"
    assert v.reason


def test_hostile_answers_are_refused_quickly(table_verdicts):
    hostile = [c["id"] for c in CASES if c["category"] == "hostile"]
    assert len(hostile) >= 5
    slow = {i: table_verdicts[i].elapsed_ms for i in hostile if table_verdicts[i].elapsed_ms > 1500}
    assert not slow, f"hostile answers should be refused well within the limit: {slow}"


def test_verdict_fields_for_a_correct_answer():
    v = verify("The area is $\\boxed{\\dfrac{3}{4}}$.", "0.75")
    assert (v.reward, v.status, v.extracted) == (1.0, "correct", "\\dfrac{3}{4}")
    assert 0 <= v.elapsed_ms < 5000 and v.reason


def test_registered_and_ignores_foreign_options():
    fn = get_verifier("math")
    out = fn(
        [{"id": "a", "completion": "\\boxed{2}", "answer": "2", "extra": 1}],
        workers=1,
        unsafe_no_sandbox=True,
    )
    assert out[0].status == "correct"
    assert fn([], workers=2) == []


def test_bad_item_types_are_errors_not_crashes():
    out = verify_batch(
        [
            {"completion": None, "answer": "1"},
            {"completion": "\\boxed{1}", "answer": None},
            {"completion": "\\boxed{1}", "answer": 1},
        ]
    )
    assert [v.status for v in out] == ["error", "error", "correct"]
    assert "completion" in out[0].reason and "answer" in out[1].reason
    mixed = verify_batch(["not a dict", {"completion": "\\boxed{1}", "answer": "1"}])
    assert [v.status for v in mixed] == ["error", "correct"] and "not a dict" in mixed[0].reason


def test_megabyte_completion_gets_zero_with_reason_fast():
    t0 = time.monotonic()
    v = verify("x" * 1_000_000 + "\\boxed{5}", "5", timeout=TIMEOUT)
    assert v.status == "incorrect" and v.reward == 0.0 and "too long" in v.reason
    assert time.monotonic() - t0 < TIMEOUT


def test_deeply_nested_braces_get_zero_with_reason():
    deep = "\\boxed{" + "{" * 50_000 + "1" + "}" * 50_000 + "}"
    v = verify(deep, "1")
    assert v.reward == 0.0 and v.status == "incorrect" and "nested" in v.reason
    unclosed = verify("\\boxed{" + "{" * 30, "1")
    assert unclosed.reward == 0.0 and unclosed.status == "unparsable" and unclosed.reason


def test_long_final_answer_is_refused():
    v = verify("\\boxed{" + "1+" * 2000 + "1}", "2001")
    assert v.status == "incorrect" and "too long" in v.reason


def test_blowups_end_quickly_and_batch_continues():
    items = [
        {"completion": "\\boxed{9^{9^{9^9}}}", "answer": "1"},
        {"completion": "\\boxed{1000000!}", "answer": "1"},
        {"completion": "\\boxed{(10^{10})!}", "answer": "1"},
        {"completion": "\\boxed{2}", "answer": "2"},
    ]
    t0 = time.monotonic()
    out = verify_batch(items, workers=2, timeout=TIMEOUT)
    assert time.monotonic() - t0 < TIMEOUT
    assert [v.status for v in out[:3]] == ["incorrect"] * 3 and out[3].status == "correct"
    assert all("digits" in v.reason for v in out[:3])


def test_hard_timeout_kills_slow_cas_work_and_others_complete():
    # sin(10^50000) passes the size guard but takes the CAS most of a second to evaluate.
    items = [{"completion": "\\boxed{\\sin(10^{50000})}", "answer": "1"}] + [
        {"completion": f"\\boxed{{{i}}}", "answer": str(i)} for i in range(20)
    ]
    # Start the pool's workers first: the bound below is about the timeout, not worker start-up
    # (slower under forkserver, which the pool uses once the test process has threads).
    verify_batch(items[1:3], workers=2, timeout=0.25)
    t0 = time.monotonic()
    out = verify_batch(items, workers=2, timeout=0.25)
    assert time.monotonic() - t0 < 3.0
    assert out[0].status == "timeout" and out[0].reward == 0.0 and "0.25" in out[0].reason
    assert out[0].extracted == "\\sin(10^{50000})"
    assert all(v.status == "correct" for v in out[1:])


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("\\frac{1}{3}", "0.33", False),
        ("(1,2]", "(1,2)", False),
        ("\\{1,2\\}", "\\{2,1\\}", True),
        ("50\\%", "50", True),
        ("\\pi", "\\pi + 10^{-300}", False),
    ],
)
def test_equivalent_on_answer_strings(gold, pred, expected):
    assert equivalent(gold, pred) is expected


def test_grade_runs_in_process_too():
    v = grade({"completion": "Answer: 3/4", "answer": "0.75"})
    assert v.status == "correct" and v.extracted == "3/4"


def test_cli_verify_math(tmp_path):
    from rlvr.io import read_jsonl, write_jsonl
    from rlvr.verify.commands import verify_file

    rows = [
        {"id": "a", "completion": "\\boxed{4}", "answer": "4"},
        {"id": "b", "completion": "\\boxed{5}", "answer": "4"},
        {"id": "c", "completion": "no idea", "answer": "4"},
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    summary = verify_file("math", tmp_path / "in.jsonl", tmp_path / "out.jsonl", workers=2, timeout=5)
    assert summary["counts"]["correct"] == 1 and summary["counts"]["incorrect"] == 1
    assert summary["counts"]["unparsable"] == 1
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == ["a", "b", "c"] and out[0]["extracted"] == "4"


@pytest.mark.slow
def test_multithreaded_parent_uses_forkserver_workers():
    """A training process has threads; its pool must not fork them, and grading must still work."""
    import threading

    import rlvr.verify.math as math_verifier

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        math_verifier._shared.close()
        out = verify_batch(
            [
                {"completion": "\\boxed{(x-1)(x+1)}", "answer": "x^2-1"},
                {"completion": "\\boxed{3}", "answer": "4"},
            ],
            workers=2,
            timeout=60,
        )
        assert math_verifier._shared.current._ctx.get_start_method() == "forkserver"
        assert [v.status for v in out] == ["correct", "incorrect"]
    finally:
        stop.set()
        thread.join()
        math_verifier._shared.close()
