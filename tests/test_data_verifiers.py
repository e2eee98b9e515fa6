"""Every task's gold, written the way its prompt asks, is graded correct by the verifier it names."""

import pytest

from rlvr.data import load_task
from rlvr.io import write_jsonl
from rlvr.verify import verify_samples


def graded(samples, completions, **options):
    return [v.status for v in verify_samples(samples, completions, workers=1, **options)]


def test_math_tasks_accept_their_gold():
    samples = load_task("addition", n=3) + [
        s for name in ("aiw", "aiw-plus", "distractor") for s in load_task(f"family:{name}", n=2)
    ]
    completions = [f"Working it out... so the answer is \\boxed{{{s.gold}}}." for s in samples]
    assert graded(samples, completions) == ["correct"] * len(samples)
    wrong = [f"\\boxed{{{int(s.gold) + 1}}}" for s in samples]
    assert graded(samples, wrong) == ["incorrect"] * len(samples)
    hashed = load_task("aiw", n=2, prompt_type="RESTRICTED", answer_format="hash")
    assert graded(hashed, [f"### Answer: {s.gold}" for s in hashed]) == ["correct", "correct"]


def test_file_formats_reach_their_verifiers(tmp_path):
    rows = [
        {"question": "q", "answer": "so\n#### 1,200"},
        {"problem": "p", "solution": r"thus $\boxed{\frac{3}{4}}$"},
    ]
    write_jsonl(tmp_path / "gsm.jsonl", rows[:1])
    write_jsonl(tmp_path / "math.jsonl", rows[1:])
    samples = load_task(str(tmp_path / "gsm.jsonl")) + load_task(str(tmp_path / "math.jsonl"))
    assert graded(samples, [r"\boxed{1200}", r"\boxed{0.75}"]) == ["correct", "correct"]

    write_jsonl(
        tmp_path / "ifeval.jsonl",
        [
            {
                "key": 1,
                "prompt": "Answer in lowercase only.",
                "instruction_id_list": ["change_case:english_lowercase"],
                "kwargs": [{}],
            }
        ],
    )
    ifeval = load_task(str(tmp_path / "ifeval.jsonl"))
    assert graded(ifeval * 2, ["all lowercase here.", "Not Lowercase."]) == ["correct", "incorrect"]


def test_code_formats_reach_the_code_verifier(tmp_path):
    from rlvr.verify.sandbox import check_sandbox

    try:
        check_sandbox()
    except RuntimeError as e:
        pytest.skip(f"no sandbox: {e}")
    write_jsonl(
        tmp_path / "mbpp.jsonl",
        [
            {
                "task_id": 1,
                "text": "Add one.",
                "test_list": ["assert add_one(1) == 2"],
                "test_setup_code": "",
                "challenge_test_list": ["assert add_one(-1) == 0"],
            }
        ],
    )
    write_jsonl(
        tmp_path / "he.jsonl",
        [
            {
                "task_id": "HE/0",
                "prompt": "def add_one(x):\n",
                "test": "def check(candidate):\n    assert candidate(2) == 3\n",
                "entry_point": "add_one",
            }
        ],
    )
    write_jsonl(
        tmp_path / "io.jsonl",
        [{"id": "io", "question": "Echo n+1.", "tests": [{"input": "4\n", "output": "5\n"}]}],
    )
    samples = [s for f in ("mbpp", "he", "io") for s in load_task(str(tmp_path / f"{f}.jsonl"))]
    func = "```python\ndef add_one(x):\n    return x + 1\n```"
    prog = "```python\nprint(int(input()) + 1)\n```"
    assert graded(samples, [func, func, prog]) == ["correct"] * 3
    off_by_one = "```python\ndef add_one(x):\n    return x + 2\n```"
    assert graded(samples[:1], [off_by_one]) == ["incorrect"]
