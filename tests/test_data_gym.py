import re

import pytest

from rlvr.data import list_tasks, load_task
from rlvr.data.gym import (
    build_dataset,
    extract_final_answer,
    gym_curriculum,
    split_of,
    spray_audit,
    verify_batch,
)
from rlvr.verify import sample_item, verify_samples


def items(sample, *completions):
    return [sample_item(sample, c) for c in completions]


def test_gym_samples_deterministic_and_serialisable():
    a = load_task("gym:chain_sum", n=5, seed=3)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in load_task("gym:chain_sum", n=5, seed=3)]
    assert [s.prompt for s in a] != [s.prompt for s in load_task("gym:chain_sum", n=5, seed=4)]
    assert [s.prompt for s in a] != [s.prompt for s in load_task("gym:chain_sum", n=5, seed=3, split="test")]
    s = a[0]
    assert s.verifier == "reasoning_gym" and re.fullmatch(r"gym-chain_sum-s3-\d+", s.id)
    assert s.gold["dataset"] == "chain_sum" and "<answer>" in s.prompt
    assert "gym:<dataset>" in list_tasks()


def test_gym_splits_are_disjoint_by_question():
    train = {
        s.gold["question"] for seed in (0, 1) for s in load_task("gym:basic_arithmetic", n=150, seed=seed)
    }
    test = [s for seed in (0, 1) for s in load_task("gym:basic_arithmetic", n=40, seed=seed, split="test")]
    assert len(test) == 80 and not train & {s.gold["question"] for s in test}
    assert all(split_of("basic_arithmetic", s.gold["question"]) == "test" for s in test)
    with pytest.raises(ValueError, match="unknown split"):
        load_task("gym:basic_arithmetic", n=1, split="validation")


def test_gym_difficulty_follows_the_curriculum():
    levels = gym_curriculum("chain_sum")["num_terms"]["levels"]
    for level in (0, 3):
        ds = build_dataset("chain_sum", {}, seed=0, size=20, difficulty=level)
        assert ds.config.max_terms == levels[level]
        assert all(ds[i]["metadata"]["num_terms"] <= levels[level] for i in range(20))
    (s,) = load_task("gym:chain_sum", n=1, difficulty=3)
    assert s.difficulty == 3.0
    ds = build_dataset("chain_sum", {"allow_negation": True}, 0, 5, curriculum={"num_digits": 2})
    assert (
        ds.config.max_digits == gym_curriculum("chain_sum")["num_digits"]["levels"][2]
        and ds.config.allow_negation
    )
    with pytest.raises(ValueError, match="difficulty must be a level"):
        load_task("gym:chain_sum", n=1, difficulty=99)
    with pytest.raises(KeyError, match="no curriculum attribute"):
        load_task("gym:chain_sum", n=1, curriculum={"bogus": 1})
    with pytest.raises(ValueError, match="bad config option"):
        load_task("gym:chain_sum", n=1, no_such_option=3)
    with pytest.raises(KeyError, match="unknown reasoning-gym dataset"):
        load_task("gym:not_a_dataset", n=1)


def test_strict_scoring_gives_no_partial_credit():
    (s,) = load_task("gym:gcd", n=1, seed=3)
    gold = s.gold["answer"]
    ds = build_dataset("gcd", {}, s.gold["seed"], s.gold["size"])
    spray = f"The answer: {gold}"
    partial = ds.score_answer(spray, ds[s.gold["index"]])
    assert 0 < partial < 1  # reasoning-gym's own scorer rewards the spray
    exact, sprayed, boxed, missing = verify_batch(
        items(s, f"<answer>{gold}</answer>", f"<answer>{spray}</answer>", f"so \\boxed{{{gold}}}", ""),
        workers=0,
    )
    assert exact.status == "correct" and exact.reward == 1.0 and exact.extracted == gold
    assert sprayed.status == "incorrect" and sprayed.reward == 0.0 and f"{partial:.4g}" in sprayed.reason
    assert boxed.correct
    assert missing.status == "unparsable"


def test_full_credit_from_the_dataset_scorer_counts():
    (s,) = load_task("gym:products", n=1, seed=3)
    (v,) = verify_batch(items(s, f"<answer>{s.gold['answer']}.0</answer>"), workers=0)
    assert v.correct and "full credit" in v.reason


def test_scorer_exception_is_an_error_verdict(monkeypatch):
    from reasoning_gym.factory import DATASETS

    (s,) = load_task("gym:gcd", n=1, seed=3)

    def boom(self, answer, entry):
        raise RuntimeError("scorer exploded")

    monkeypatch.setattr(DATASETS["gcd"][0], "score_answer", boom)
    (v,) = verify_batch(items(s, "<answer>not the gold</answer>"), workers=0)
    assert v.status == "error" and "scorer exploded" in v.reason and v.reward == 0.0


def test_pool_path_and_rebuilt_entry_check():
    samples = load_task("gym:chain_sum", n=3, seed=5)
    good = [f"<answer>{s.gold['answer']}</answer>" for s in samples]
    assert [v.status for v in verify_samples(samples, good, workers=1)] == ["correct"] * 3
    tampered = dict(samples[0].gold, question="What is 1 + 1?")
    (v,) = verify_batch([{**tampered, "completion": good[0]}], workers=1)
    assert v.status == "error" and "differs" in v.reason


def test_extract_final_answer_order():
    assert extract_final_answer("<answer>1</answer> then <answer> 2 </answer>") == "2"
    assert extract_final_answer("x \\boxed{3}\nmore text") == "3"
    assert extract_final_answer("thinking\n\n  42  \n") == "42"
    assert extract_final_answer("  \n") is None


def test_scorer_that_accepts_anything_needs_an_exact_match():
    (s,) = load_task("gym:game_of_life_halting", n=1, seed=0)
    gold = s.gold["answer"]
    wrong = "False" if gold == "True" else "True"
    ds = build_dataset("game_of_life_halting", {}, s.gold["seed"], s.gold["size"])
    assert ds.score_answer(wrong, ds[s.gold["index"]]) == 1.0  # reasoning-gym pays the wrong answer in full
    right, sprayed = verify_batch(
        items(s, f"<answer>{gold}</answer>", f"<answer>{wrong}</answer>"), workers=0
    )
    assert right.correct
    assert sprayed.status == "incorrect" and "accepts any answer" in sprayed.reason


def test_spray_audit_reports_partial_credit():
    (row,) = spray_audit(["chain_sum"], n=6, seed=1)
    assert row["dataset"] == "chain_sum" and row["n"] == 6
    assert row["default_mean"] > 0 and row["default_paid_share"] == 1.0 and row["strict_mean"] == 0.0


def test_slow_scorer_is_a_timeout_verdict(monkeypatch):
    import time

    from reasoning_gym.factory import DATASETS

    from rlvr.data.gym import grade, pool_verdicts
    from rlvr.verify.pool import WorkerPool

    (s,) = load_task("gym:lcm", n=1, seed=3)
    monkeypatch.setattr(DATASETS["lcm"][0], "score_answer", lambda self, answer, entry: time.sleep(30))
    # fork, so that the workers see the patched scorer
    with WorkerPool(grade, workers=1, timeout=0.75, start_method="fork") as pool:
        results = pool.map(items(s, "<answer>0</answer>", f"<answer>{s.gold['answer']}</answer>"))
    slow, fast = pool_verdicts(results)
    assert slow.status == "timeout" and slow.reward == 0.0 and fast.correct
