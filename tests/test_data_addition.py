import pytest

from rlvr.data import list_tasks, load_task
from rlvr.data.arithmetic import EXAMPLE, carries


def test_addition_prompt_and_gold():
    (s,) = load_task("addition", n=1, seed=3)
    a, b = s.meta["a"], s.meta["b"]
    assert s.id == f"add-{a}-{b}" and s.verifier == "math" and s.gold == str(a + b)
    roles = [m["role"] for m in s.prompt]
    assert roles == ["user", "assistant", "user"]
    assert "\\boxed{" in s.prompt[1]["content"] and f"{a} + {b}" in s.prompt[2]["content"]
    assert 10 <= a <= 99 and 10 <= b <= 99


def test_addition_splits_are_disjoint_and_cover_all_pairs():
    train = {s.id for s in load_task("addition", split="train")}
    test = {s.id for s in load_task("addition", split="test")}
    assert not train & test
    assert len(train) + len(test) == 90 * 90 - 1  # every pair except the worked example
    assert f"add-{EXAMPLE[0]}-{EXAMPLE[1]}" not in train | test
    assert 0.1 < len(test) / (len(train) + len(test)) < 0.3
    # The split is a property of the pair, not of the seed.
    assert {s.id for s in load_task("addition", split="test", seed=7)} == test


def test_addition_deterministic_by_seed():
    a = [s.id for s in load_task("addition", n=20, seed=1)]
    assert a == [s.id for s in load_task("addition", n=20, seed=1)]
    assert a != [s.id for s in load_task("addition", n=20, seed=2)]
    assert len(set(a)) == 20


def test_addition_carries_match_digit_sums():
    for a, b, c in [
        (11, 22, 0),
        (15, 25, 1),
        (55, 55, 2),
        (45, 45, 1),
        (99, 99, 2),
        (95, 15, 2),
        (90, 10, 1),
    ]:
        assert carries(a, b) == c


def test_addition_errors_and_listing():
    with pytest.raises(ValueError, match="split"):
        load_task("addition", split="validation")
    with pytest.raises(ValueError, match="n=100000"):
        load_task("addition", n=100_000)
    with pytest.raises(KeyError, match="unknown task"):
        load_task("no-such-task")
    assert "addition" in list_tasks()
