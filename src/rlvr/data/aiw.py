"""Alice-in-Wonderland (AIW) style families (after Nezhurina et al., arXiv:2406.02061).

Simple common-sense relational problems on which strong models fail and whose accuracy swings between
variations that differ only in the numbers. The wording here is rlvr's own; the structures follow the
paper:

- ``aiw``: Alice has N brothers and M sisters; how many sisters does Alice's brother have? -> M + 1
  (Alice is a sister too). One inference step.
- ``aiw-friends``: Alice has N male and M female friends, all friends with each other; how many female
  friends does one of her male friends have? -> M + 1. One inference step.
- ``aiw-plus``: AIW+ style, more relatives: aunts and uncles given by their total number of nephews and
  nieces, which counts Alice's own family; how many cousins does Alice's sister have? Three steps.

``load_task("aiw", prompt_type="THINKING")`` loads the first; ``load_task("family:aiw-plus")`` any of them.
"""

from __future__ import annotations

import random

from rlvr.data.families import Family, Problem, register_family

MALE_FRIENDS = ["Bob", "Charlie", "David", "Ethan", "Frank", "George", "Henry", "Ivan", "Jack", "Karl"]


def count(n: int, singular: str, plural: str) -> str:
    """``"no brothers"``, ``"1 brother"``, ``"3 brothers"``."""
    if n == 0:
        return f"no {plural}"
    return f"1 {singular}" if n == 1 else f"{n} {plural}"


def draw_aiw(rng: random.Random) -> Problem:
    n, m = rng.randint(1, 12), rng.randint(1, 12)
    question = (
        f"Alice has {count(n, 'brother', 'brothers')} and she also has {count(m, 'sister', 'sisters')}. "
        "How many sisters does Alice's brother have?"
    )
    return Problem(f"n{n}-m{m}", question, m + 1, 1.0, {"brothers": n, "sisters": m})


def draw_aiw_friends(rng: random.Random) -> Problem:
    n, m = rng.randint(1, 12), rng.randint(1, 12)
    friend = rng.choice(MALE_FRIENDS)
    question = (
        f"Alice has {count(n, 'male friend', 'male friends')} and {count(m, 'female friend', 'female friends')}. "
        "All of them, Alice included, are friends with each other, and none of them has any other friends. "
        f"How many female friends does {friend}, one of Alice's male friends, have?"
    )
    return Problem(
        f"n{n}-m{m}-{friend}",
        question,
        m + 1,
        1.0,
        {"male_friends": n, "female_friends": m, "friend": friend},
    )


def draw_aiw_plus(rng: random.Random) -> Problem:
    """Cousins = (maternal aunt's nephews and nieces - Alice's family) + (paternal uncle's - Alice's
    family) + the uncle's own children; the childless aunt adds none."""
    sisters, brothers = rng.randint(1, 4), rng.randint(0, 4)
    family = 1 + sisters + brothers  # Alice and her siblings
    maternal_others = rng.randint(0, 6)  # children of the mother's brothers
    mother_brothers = rng.randint(1, 3) if maternal_others else rng.randint(0, 3)
    paternal_others = rng.randint(0, 5)  # children of the father's other siblings
    uncle_children = rng.randint(0, 4)
    aunt_nn, uncle_nn = family + maternal_others, family + paternal_others
    question = (
        f"Alice has {count(sisters, 'sister', 'sisters')} and {count(brothers, 'brother', 'brothers')}. "
        "Her mother has exactly one sister, who has no children of her own; this aunt has "
        f"{aunt_nn} nephews and nieces in total and also {count(mother_brothers, 'brother', 'brothers')}. "
        f"Alice's father has a brother, who has {uncle_nn} nephews and nieces in total and "
        f"{count(uncle_children, 'child', 'children')} of his own. How many cousins does Alice's sister have?"
    )
    return Problem(
        f"s{sisters}-b{brothers}-a{aunt_nn}-mb{mother_brothers}-u{uncle_nn}-c{uncle_children}",
        question,
        maternal_others + paternal_others + uncle_children,
        3.0,
        {
            "sisters": sisters,
            "brothers": brothers,
            "aunt_nephews_nieces": aunt_nn,
            "mother_brothers": mother_brothers,
            "uncle_nephews_nieces": uncle_nn,
            "uncle_children": uncle_children,
        },
    )


register_family(
    Family("aiw", "AIW: N brothers, M sisters; sisters of Alice's brother (difficulty 1)", draw_aiw)
)
register_family(
    Family(
        "aiw-friends",
        "AIW friends: N male, M female friends, all friends; female friends of a male friend (difficulty 1)",
        draw_aiw_friends,
    )
)
register_family(
    Family(
        "aiw-plus",
        "AIW+ style: aunt and uncle given by their nephews and nieces; cousins of Alice's sister (difficulty 3)",
        draw_aiw_plus,
    )
)
