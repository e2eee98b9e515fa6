"""The ``addition`` task: two-digit addition with one worked example in the chat.

Every (a, b) pair with a, b in 10..99 is assigned once and for all to the train or the test split by a
hash of the pair, so the two splits are disjoint whatever the seed; the seed only picks and orders
the ``n`` problems drawn from a split.
"""

from __future__ import annotations

import hashlib
import random

from rlvr.records import Sample

LOW, HIGH = 10, 99
TEST_SHARE = 0.2  # fraction of the 8,100 pairs held out for split="test"
EXAMPLE = (23, 45)  # the worked example in every prompt; kept out of both splits

INSTRUCTION = "Put your final answer in \\boxed{}."


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}? {INSTRUCTION}"


def split_of(a: int, b: int) -> str:
    """``"train"`` or ``"test"``: a fixed function of the pair (not of the seed)."""
    h = int.from_bytes(hashlib.sha256(f"add:{a}+{b}".encode()).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_SHARE else "train"


def pairs(split: str) -> list[tuple[int, int]]:
    """All (a, b) pairs of a split, in a fixed order."""
    if split not in ("train", "test"):
        raise ValueError(f"addition: unknown split {split!r}; expected 'train' or 'test'")
    return [
        (a, b)
        for a in range(LOW, HIGH + 1)
        for b in range(LOW, HIGH + 1)
        if (a, b) != EXAMPLE and split_of(a, b) == split
    ]


def carries(a: int, b: int) -> int:
    """Number of carries in the column addition of two 2-digit numbers (0, 1 or 2)."""
    units = a % 10 + b % 10 >= 10
    tens = a // 10 + b // 10 + units >= 10
    return int(units) + int(tens)


def make_sample(a: int, b: int) -> Sample:
    ea, eb = EXAMPLE
    prompt = [
        {"role": "user", "content": question(ea, eb)},
        {"role": "assistant", "content": f"{ea} + {eb} = {ea + eb}. The answer is \\boxed{{{ea + eb}}}."},
        {"role": "user", "content": question(a, b)},
    ]
    return Sample(
        id=f"add-{a}-{b}",
        prompt=prompt,
        verifier="math",
        gold=str(a + b),
        family_id="addition",
        variation_id=f"{a}-{b}",
        difficulty=float(carries(a, b)),
        meta={"task": "addition", "a": a, "b": b},
    )


def load_addition(n: int | None = None, *, seed: int = 0, split: str = "train") -> list[Sample]:
    """``n`` problems of ``split`` (all of them when ``n`` is None), shuffled by ``seed``.

    ``difficulty`` counts the carries (0, 1 or 2).
    """
    pool = pairs(split)
    random.Random(seed).shuffle(pool)
    if n is not None:
        if n < 0 or n > len(pool):
            raise ValueError(f"addition: n={n} but the {split} split has {len(pool)} problems")
        pool = pool[:n]
    return [make_sample(a, b) for a, b in pool]
