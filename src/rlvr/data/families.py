"""Variation families: one logical template, many variations (other numbers, names or premise order).

A family draws ``Problem`` variations from a seeded RNG. Each Sample carries

- ``family_id``: the template and the prompt type, e.g. ``"aiw [THINKING]"``;
- ``variation_id``: the numbers/names/order of this variation, e.g. ``"n3-m2"`` (the same variation
  under another prompt type keeps its ``variation_id``);
- ``difficulty``: a number defined per family (see each family's description).

Accuracy spread across the variations of one family measures how robust a model is to changes that
leave the reasoning untouched (the point of the AIW study, arXiv:2406.02061).

Prompt types follow the AIW paper: ``STANDARD`` (just solve), ``THINKING`` (think step by step and
double-check), ``RESTRICTED`` (output only the answer). Every prompt ends with the answer-format
instruction: ``\\boxed{}`` by default, or the paper's ``### Answer:`` form with ``answer_format="hash"``.

Train and test variations are disjoint: a hash of (family, variation_id) assigns each variation to one
split for good; the seed picks which variations of the split are drawn and their order.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlvr.records import Sample

PROMPT_TYPES = ("STANDARD", "THINKING", "RESTRICTED")
TEST_SHARE = 0.2


@dataclass(frozen=True)
class Problem:
    """One variation of a family: the question (without the prompt-type suffix) and its answer."""

    variation_id: str
    question: str
    answer: int
    difficulty: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    draw: Callable[[random.Random], Problem]


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def prompt_suffix(prompt_type: str, answer_format: str = "boxed") -> str:
    """The instruction that follows the question for a prompt type; it ends with the answer format."""
    if answer_format == "boxed":
        form = "in the form \\boxed{<answer>}"
    elif answer_format == "hash":
        form = 'in the following form: "### Answer: <answer>"'
    else:
        raise ValueError(f"answer_format must be 'boxed' or 'hash', got {answer_format!r}")
    if prompt_type == "STANDARD":
        return f"Solve this problem and give the final answer {form}."
    if prompt_type == "THINKING":
        return (
            "Before answering, think carefully step by step and double-check the path to the correct "
            f"solution for any mistakes. Then give the final answer {form}."
        )
    if prompt_type == "RESTRICTED":
        return f"Do not output any text except the final answer, {form}."
    raise ValueError(f"unknown prompt_type {prompt_type!r}; expected one of {', '.join(PROMPT_TYPES)}")


def split_of(family: str, variation_id: str) -> str:
    h = int.from_bytes(hashlib.sha256(f"family:{family}:{variation_id}".encode()).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_SHARE else "train"


def family_names() -> list[str]:
    _load_builtin_families()
    return sorted(FAMILIES)


def load_family(
    name: str,
    *,
    n: int | None = None,
    seed: int = 0,
    split: str = "train",
    prompt_type: str = "STANDARD",
    answer_format: str = "boxed",
) -> list[Sample]:
    """``n`` distinct variations of family ``name`` from ``split``, drawn by ``seed``.

    ``n=None`` asks for 100, or for every variation of the split when it has fewer.
    """
    _load_builtin_families()
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r}; available: {', '.join(sorted(FAMILIES))}")
    if split not in ("train", "test"):
        raise ValueError(f"family:{name}: unknown split {split!r}; expected 'train' or 'test'")
    suffix = prompt_suffix(prompt_type, answer_format)
    family = FAMILIES[name]
    wanted = 100 if n is None else n
    rng = random.Random(f"{name}:{split}:{seed}")
    problems: dict[str, Problem] = {}
    attempts = 0
    while len(problems) < wanted:
        attempts += 1
        if attempts > 100 * wanted + 1000:
            if n is None:
                break
            raise ValueError(
                f"family:{name}: found only {len(problems)} distinct {split} variations, asked for {n}"
            )
        p = family.draw(rng)
        if p.variation_id not in problems and split_of(name, p.variation_id) == split:
            problems[p.variation_id] = p
    return [
        Sample(
            id=f"{name}-{prompt_type.lower()}-{p.variation_id}",
            prompt=f"{p.question} {suffix}",
            verifier="math",
            gold=str(p.answer),
            family_id=f"{name} [{prompt_type}]",
            variation_id=p.variation_id,
            difficulty=p.difficulty,
            meta={"task": f"family:{name}", "prompt_type": prompt_type, "params": p.params},
        )
        for p in problems.values()
    ]


def _load_builtin_families() -> None:
    import rlvr.data.aiw  # noqa: F401  (registers the AIW families)


# ---------------------------------------------------------------------------------------------------
# Arithmetic word problems

PEOPLE = [
    ("Maya", "she"), ("Liam", "he"), ("Sofia", "she"), ("Noah", "he"), ("Aisha", "she"), ("Mateo", "he"),
    ("Yuki", "she"), ("Omar", "he"), ("Elena", "she"), ("Kwame", "he"), ("Priya", "she"), ("Lucas", "he"),
    ("Ines", "she"), ("Tariq", "he"), ("Hana", "she"), ("Felix", "he"), ("Zara", "she"), ("Diego", "he"),
]  # fmt: skip
ITEMS = [
    "apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "coins", "cards", "beads",
]  # fmt: skip
PLACES = ["the market", "the school fair", "a bookshop", "the corner shop", "a flea market"]


def draw_renamed(rng: random.Random) -> Problem:
    """Has a, buys b, gives c away: a + b - c. Names and items vary along with the numbers."""
    (name, pron), (friend, _) = rng.sample(PEOPLE, 2)
    item = rng.choice(ITEMS)
    a, b = rng.randint(5, 60), rng.randint(2, 40)
    c = rng.randint(1, a + b - 1)
    question = (
        f"{name} has {a} {item}. {pron.capitalize()} buys {b} more {item} and then gives {c} {item} "
        f"to {friend}. How many {item} does {name} have now?"
    )
    return Problem(
        variation_id=f"{name}-{friend}-{item}-{a}-{b}-{c}",
        question=question,
        answer=a + b - c,
        difficulty=2.0,
        params={"name": name, "friend": friend, "item": item, "a": a, "b": b, "c": c},
    )


DISTRACTORS = [
    "{friend} has {x} {other} at home.",
    "{name}'s favourite colour is blue, and {pron} is {x} years old.",
    "The shop at {place} had {x} visitors last Sunday.",
    "Last week {friend} read {x} pages of a book.",
    "{name}'s bag weighs {x} kilograms.",
]


def draw_distractor(rng: random.Random) -> Problem:
    """The renamed problem with 0-3 irrelevant facts inserted; difficulty is the number of distractors."""
    (name, pron), (friend, _) = rng.sample(PEOPLE, 2)
    item, other = rng.sample(ITEMS, 2)
    place = rng.choice(PLACES)
    a, b = rng.randint(5, 60), rng.randint(2, 40)
    c = rng.randint(1, a + b - 1)
    k = rng.randint(0, 3)
    chosen = sorted(rng.sample(range(len(DISTRACTORS)), k))
    values = [rng.randint(2, 90) for _ in chosen]
    facts = [
        DISTRACTORS[i].format(name=name, pron=pron, friend=friend, other=other, place=place, x=x)
        for i, x in zip(chosen, values, strict=True)
    ]
    sentences = [
        f"{name} has {a} {item}.",
        f"{name} buys {b} more {item} at {place}.",
        f"Then {name} gives {c} {item} to {friend}.",
    ]
    for fact in facts:
        sentences.insert(rng.randint(0, len(sentences)), fact)
    slots = [sentences.index(fact) for fact in facts]
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    dvar = ".".join(f"{i}x{x}@{s}" for i, x, s in zip(chosen, values, slots, strict=True)) or "none"
    return Problem(
        variation_id=f"{name}-{friend}-{item}-{a}-{b}-{c}-{dvar}",
        question=question,
        answer=a + b - c,
        difficulty=float(k),
        params={"name": name, "friend": friend, "item": item, "a": a, "b": b, "c": c, "distractors": facts},
    )


def draw_reordered(rng: random.Random) -> Problem:
    """Boxes of x pens, k boxes bought, y pens before, z given away: k*x + y - z, premises in any order.

    Difficulty is the number of premise pairs out of their natural order (0..6).
    """
    (name, _), (friend, _) = rng.sample(PEOPLE, 2)
    x, k, y = rng.randint(3, 12), rng.randint(2, 9), rng.randint(0, 30)
    z = rng.randint(1, k * x + y - 1)
    premises = [
        f"Each box holds {x} pens.",
        f"{name} bought {k} boxes of pens.",
        f"Before buying the boxes, {name} already had {y} loose pens.",
        f"After buying the boxes, {name} gave {z} pens to {friend}.",
    ]
    order = list(range(len(premises)))
    rng.shuffle(order)
    inversions = sum(1 for i, j in itertools.combinations(range(len(order)), 2) if order[i] > order[j])
    question = " ".join(premises[i] for i in order) + f" How many pens does {name} have now?"
    return Problem(
        variation_id=f"{name}-{friend}-{x}-{k}-{y}-{z}-o{''.join(map(str, order))}",
        question=question,
        answer=k * x + y - z,
        difficulty=float(inversions),
        params={"name": name, "friend": friend, "x": x, "k": k, "y": y, "z": z, "order": order},
    )


register_family(
    Family(
        "renamed", "word problem a+b-c with renamed people and items (difficulty 2: two steps)", draw_renamed
    )
)
register_family(
    Family(
        "distractor",
        "the renamed word problem with 0-3 irrelevant facts inserted (difficulty: number of distractors)",
        draw_distractor,
    )
)
register_family(
    Family(
        "reordered",
        "boxes-of-pens problem k*x+y-z with its four premises shuffled (difficulty: inversions, 0-6)",
        draw_reordered,
    )
)
