import itertools
import re

import pytest

from rlvr.data import list_tasks, load_task
from rlvr.data.families import PROMPT_TYPES, family_names


def num(word: str) -> int:
    return 0 if word == "no" else int(word)


def find(pattern: str, text: str) -> list[int]:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in {text!r}"
    return [num(g) for g in m.groups()]


# Each family's answer recomputed from the question text alone.
def solve_aiw(q):
    _brothers, sisters = find(r"Alice has (\d+|no) brothers? and she also has (\d+|no) sisters?\.", q)
    return sisters + 1  # Alice is one of her brother's sisters


def solve_aiw_friends(q):
    _male, female = find(r"Alice has (\d+) male friends? and (\d+) female friends?\.", q)
    return female + 1


def solve_aiw_plus(q):
    sisters, brothers = find(r"Alice has (\d+|no) sisters? and (\d+|no) brothers?\.", q)
    (aunt,) = find(r"this aunt has (\d+) nephews and nieces", q)
    uncle, own = find(
        r"brother, who has (\d+) nephews and nieces in total and (\d+|no) child(?:ren)? of his own", q
    )
    siblings = 1 + sisters + brothers
    return (aunt - siblings) + (uncle - siblings) + own


def solve_renamed(q):
    a, b, c = find(r"^\w+ has (\d+) \w+\. \w+ buys (\d+) more \w+ and then gives (\d+) \w+ to", q)
    return a + b - c


def solve_distractor(q):
    (a,) = find(r"\b\w+ has (\d+) \w+\.", q)  # the distractor "X has N things at home." does not match
    (b,) = find(r"buys (\d+) more", q)
    (c,) = find(r"gives (\d+) \w+ to", q)
    return a + b - c


def solve_reordered(q):
    (x,) = find(r"Each box holds (\d+) pens", q)
    (k,) = find(r"bought (\d+) boxes", q)
    (y,) = find(r"already had (\d+) loose pens", q)
    (z,) = find(r"gave (\d+) pens to", q)
    return k * x + y - z


SOLVERS = {
    "aiw": solve_aiw,
    "aiw-friends": solve_aiw_friends,
    "aiw-plus": solve_aiw_plus,
    "renamed": solve_renamed,
    "distractor": solve_distractor,
    "reordered": solve_reordered,
}


def question_of(sample):
    return sample.prompt.split("?")[0] + "?"


def test_every_family_is_listed_and_has_a_solver():
    assert set(family_names()) == set(SOLVERS)
    tasks = list_tasks()
    assert all(f"family:{name}" in tasks for name in SOLVERS) and "aiw" in tasks


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_family_answers_correct_by_construction(name):
    samples = load_task(f"family:{name}", n=60, seed=2)
    assert len({s.variation_id for s in samples}) == 60
    for s in samples:
        assert s.gold == str(SOLVERS[name](question_of(s))), s.prompt
        assert s.verifier == "math" and s.family_id == f"{name} [STANDARD]"
        assert isinstance(s.difficulty, float) and s.id == f"{name}-standard-{s.variation_id}"


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_family_splits_disjoint_and_seeded(name):
    train = load_task(f"family:{name}", n=30, seed=0)
    test = load_task(f"family:{name}", n=10, seed=0, split="test")
    assert not {s.variation_id for s in train} & {s.variation_id for s in test}
    assert [s.to_dict() for s in train] == [s.to_dict() for s in load_task(f"family:{name}", n=30, seed=0)]
    assert [s.id for s in train] != [s.id for s in load_task(f"family:{name}", n=30, seed=1)]


def test_aiw_variations_share_one_template():
    samples = load_task("aiw", n=50, seed=0)
    skeletons = {re.sub(r"\b(?:\d+|no) (brother|sister)s?\b", r"# \1", question_of(s)) for s in samples}
    assert len(skeletons) == 1
    assert len({s.gold for s in samples}) > 5  # the numbers really vary
    friends = load_task("family:aiw-friends", n=50, seed=0)
    names = {s.meta["params"]["friend"] for s in friends}
    skeletons = {
        re.sub(r"\b\d+ (male|female) friends?\b", r"# \1", question_of(s)).replace(
            s.meta["params"]["friend"], "X"
        )
        for s in friends
    }
    assert len(skeletons) == 1 and len(names) > 3


def test_reordered_difficulty_counts_inversions_and_order_is_real():
    samples = load_task("family:reordered", n=80, seed=0)
    for s in samples:
        order = s.meta["params"]["order"]
        inversions = sum(a > b for a, b in itertools.combinations(order, 2))
        assert s.difficulty == inversions
        markers = ["Each box holds", "bought", "Before buying", "After buying"]
        positions = [question_of(s).index(m) for m in markers]
        assert sorted(range(4), key=lambda i: positions[i]) == order
    assert len({tuple(s.meta["params"]["order"]) for s in samples}) > 10


def test_distractors_do_not_change_the_answer():
    samples = load_task("family:distractor", n=80, seed=0)
    assert {s.difficulty for s in samples} == {0.0, 1.0, 2.0, 3.0}
    for s in samples:
        p = s.meta["params"]
        assert len(p["distractors"]) == s.difficulty
        assert all(fact in s.prompt for fact in p["distractors"])
        assert s.gold == str(p["a"] + p["b"] - p["c"])


def test_aiw_prompt_types():
    by_type = {t: load_task("aiw", n=10, seed=4, prompt_type=t) for t in PROMPT_TYPES}
    ids = [[s.variation_id for s in samples] for samples in by_type.values()]
    assert ids[0] == ids[1] == ids[2]  # same variations, other instructions
    for t, samples in by_type.items():
        assert all(s.family_id == f"aiw [{t}]" and s.meta["prompt_type"] == t for s in samples)
        assert all(s.prompt.endswith("in the form \\boxed{<answer>}.") for s in samples)
    assert "step by step" in by_type["THINKING"][0].prompt
    assert "except the final answer" in by_type["RESTRICTED"][0].prompt
    assert "step by step" not in by_type["STANDARD"][0].prompt
    (h,) = load_task("aiw", n=1, prompt_type="THINKING", answer_format="hash")
    assert h.prompt.endswith('"### Answer: <answer>".')


def test_family_errors():
    with pytest.raises(ValueError, match="prompt_type"):
        load_task("aiw", n=1, prompt_type="CASUAL")
    with pytest.raises(KeyError, match="unknown family"):
        load_task("family:nope", n=1)
    with pytest.raises(ValueError, match="distinct test variations"):
        load_task("aiw", n=100, split="test")  # 144 variations, about a fifth held out
    whole = load_task("aiw", split="test")  # n=None: every test variation when there are fewer than 100
    assert 15 < len(whole) < 45 and len({s.variation_id for s in whole}) == len(whole)
    assert len(load_task("family:renamed")) == 100
    with pytest.raises(ValueError, match="answer_format"):
        load_task("aiw", n=1, answer_format="xml")
