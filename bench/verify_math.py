"""Benchmark rlvr's math verifier against math-verify on the same cases, in one run.

Cases: the labelled suite (tests/data/math_cases.jsonl) plus generated variants with known labels:
numbers in many notations, fractions, decimals, percent, units, expressions, sets, tuples, intervals,
and wrong answers for each. Both graders see the same completion and gold answer.

* rlvr: ``rlvr.verify.math.verify_batch`` with ``--workers`` processes and its hard time limit, and
  again with one worker process for a like-for-like figure.
* math-verify: ``math_verify.parse`` on the completion and on ``$gold$`` then ``math_verify.verify``,
  with its own defaults, one item after another in a single process. That process is a one-worker
  :class:`rlvr.verify.pool.WorkerPool` with a generous ``--mv-timeout`` so that a CAS blow-up its own
  alarm cannot interrupt is cut off (counted as ``timeout``) instead of stalling the benchmark.

Both sides are warmed up (imports, parser caches, worker start) before the clock starts.

    .venv/bin/python bench/verify_math.py --workers 2 --json runs/bench_verify_math.json
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

from rlvr.io import atomic_write_json, read_jsonl
from rlvr.verify.math import verify_batch
from rlvr.verify.pool import ErrorMarker, TimeoutMarker, WorkerPool

CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "math_cases.jsonl"
TEMPLATES = (
    "Adding everything up, the result is $\\boxed{{{}}}$.",
    "Let me check once more. Yes.\nAnswer: {}",
    "Final Answer: The final answer is ${}$. I hope it is correct.",
    "So she pays that much in total.\n#### {}",
)


# ---------------------------------------------------------------------------------------------------
# Generated cases
# ---------------------------------------------------------------------------------------------------


def _frac(f: Fraction, style: str) -> str:
    sign = "-" if f < 0 else ""
    p, q = abs(f.numerator), f.denominator
    if style == "slash":
        return f"{sign}{p}/{q}"
    if style == "dfrac":
        return f"{sign}\\dfrac{{{p}}}{{{q}}}"
    if style == "scaled":
        return f"{sign}\\frac{{{3 * p}}}{{{3 * q}}}"
    if style == "mixed" and p > q:
        return f"{sign}{p // q}\\frac{{{p % q}}}{{{q}}}"
    return f"{sign}\\frac{{{p}}}{{{q}}}"


def _decimal(f: Fraction) -> str | None:
    """The exact decimal of ``f`` when it terminates, else None."""
    q = f.denominator
    for prime in (2, 5):
        while q % prime == 0:
            q //= prime
    if q != 1:
        return None
    digits = 0
    while (f * 10**digits).denominator != 1:
        digits += 1
    return f"{float(f):.{digits}f}"


def _int_forms(v: int) -> list[str]:
    forms = [str(v), f"{v}.0", f"x = {v}", f"\\${v}", f"{v} \\text{{ cm}}", f"{v}^\\circ"]
    if abs(v) >= 1000:
        forms.append(f"{v:,}")
        forms.append(f"{v:,}".replace(",", "{,}"))
    if v != 0 and v % 100 == 0:
        mant = Fraction(v, 10 ** (len(str(abs(v))) - 1))
        exp = len(str(abs(v))) - 1
        forms.append(f"{float(mant):g} \\times 10^{{{exp}}}")
        forms.append(f"{float(mant):g}e{exp}")
    return forms


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    cases: list[dict] = []

    def add(kind: str, gold: str, pred: str, expected: str) -> None:
        completion = rng.choice(TEMPLATES).format(pred)
        cases.append(
            {
                "id": f"gen-{len(cases):04d}-{kind}",
                "gold": gold,
                "completion": completion,
                "expected": expected,
            }
        )

    def integers() -> None:
        v = rng.choice([rng.randint(-50, 50), rng.randint(100, 10**6), rng.randint(1, 90) * 1000])
        add("int", str(v), rng.choice(_int_forms(v)), "correct")
        wrong = v + rng.choice([-1, 1, 10, -10])
        add("int-wrong", str(v), rng.choice(_int_forms(wrong)), "incorrect")

    def fractions() -> None:
        f = Fraction(rng.randint(-40, 40) or 1, rng.randint(2, 16))
        if f.denominator == 1:
            f += Fraction(1, 7)
        gold = _frac(f, "frac")
        styles = ["slash", "dfrac", "scaled", "mixed"]
        dec = _decimal(f)
        pred = dec if dec and rng.random() < 0.4 else _frac(f, rng.choice(styles))
        add("frac", gold, pred, "correct")
        if dec is None:  # an inexact decimal is not the fraction
            add("frac-rounded", gold, f"{float(f):.3f}", "incorrect")
        else:
            add(
                "frac-wrong", gold, _frac(f + Fraction(1, f.denominator + 1), rng.choice(styles)), "incorrect"
            )

    def percents() -> None:
        v = rng.randint(1, 99)
        add("pct", f"{v}\\%", rng.choice([f"{v}\\%", str(v), f"{v} percent"]), "correct")
        add("pct-fraction", f"{v}\\%", _decimal(Fraction(v, 100)) or "0", "incorrect")

    def expressions() -> None:
        a, b = rng.randint(2, 9), rng.randint(1, 9)
        var = rng.choice("xyztn")
        gold = f"{a}{var}+{b}"
        add(
            "expr",
            gold,
            rng.choice([f"{b}+{a}{var}", f"{a}\\cdot {var}+{b}", f"{var}\\cdot{a}+{b}"]),
            "correct",
        )
        add("expr-wrong", gold, f"{b}{var}+{a}" if a != b else f"{a}{var}-{b}", "incorrect")
        r1, r2 = rng.randint(-6, 6), rng.randint(-6, 6)
        expanded = f"{var}^2{-(r1 + r2):+d}{var}{r1 * r2:+d}".replace("+0" + var, "").replace("+0", "")
        add("poly", expanded, f"({var}-{r1})({var}-{r2})".replace("--", "+"), "correct")
        add("poly-wrong", expanded, f"({var}-{r1})({var}+{r2 + 1})".replace("--", "+"), "incorrect")

    def radicals() -> None:
        k, m = rng.randint(2, 7), rng.choice([2, 3, 5, 6, 7])
        gold = f"{k}\\sqrt{{{m}}}"
        add("sqrt", gold, f"\\sqrt{{{k * k * m}}}", "correct")
        add("sqrt-wrong", gold, f"\\sqrt{{{k * k * m + 1}}}", "incorrect")
        add("pi", f"\\frac{{{k}\\pi}}{{{m}}}", f"\\frac{{{k}}}{{{m}}}\\pi", "correct")

    def structures() -> None:
        xs = rng.sample(range(-9, 10), 3)
        shuffled = xs[:]
        rng.shuffle(shuffled)
        gold = "\\{" + ", ".join(map(str, xs)) + "\\}"
        add("set", gold, "\\{" + ", ".join(map(str, shuffled)) + "\\}", "correct")
        add("set-wrong", gold, "\\{" + ", ".join(map(str, [*xs[:2], xs[2] + 20])) + "\\}", "incorrect")
        a, b = sorted(rng.sample(range(-9, 10), 2))
        add("tuple", f"({a}, {b})", f"({a},{b})", "correct")
        add("tuple-wrong", f"({a}, {b})", f"({b}, {a})", "incorrect")
        add("interval", f"[{a}, {b})", f"[{a},{b})", "correct")
        add("interval-wrong", f"[{a}, {b})", f"({a}, {b}]", "incorrect")

    makers = [integers, integers, fractions, fractions, percents, expressions, radicals, structures]
    while len(cases) < n:
        rng.choice(makers)()
    return cases[:n]


# ---------------------------------------------------------------------------------------------------
# Graders
# ---------------------------------------------------------------------------------------------------


def math_verify_status(item: dict) -> str:
    """math-verify with its own defaults (gold in $...$ so its LaTeX extractor sees it)."""
    from math_verify import parse, verify

    pred = parse(item["completion"])
    if not pred:
        return "unparsable"
    gold = parse(f"${item['gold']}$")
    return "correct" if verify(gold, pred) else "incorrect"


def run_math_verify(cases: list[dict], timeout: float) -> tuple[list[str], float]:
    with WorkerPool(math_verify_status, workers=1, timeout=timeout) as pool:
        pool.map([{"completion": "\\boxed{1}", "gold": "1"}, {"completion": "\\boxed{x+1}", "gold": "1+x"}])
        t0 = time.perf_counter()
        out = pool.map([{"completion": c["completion"], "gold": c["gold"]} for c in cases])
        seconds = time.perf_counter() - t0
    statuses = [
        "timeout" if isinstance(r, TimeoutMarker) else "error" if isinstance(r, ErrorMarker) else r
        for r in out
    ]
    return statuses, seconds


def run_rlvr(cases: list[dict], workers: int, timeout: float) -> tuple[list[str], float]:
    verify_batch(
        [{"completion": "\\boxed{1}", "answer": "1"}], workers=workers, timeout=timeout
    )  # start + warm
    t0 = time.perf_counter()
    verdicts = verify_batch(
        [{"completion": c["completion"], "answer": c["gold"]} for c in cases],
        workers=workers,
        timeout=timeout,
    )
    return [v.status for v in verdicts], time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------


def _accuracy(statuses: list[str], cases: list[dict], binary: bool) -> float:
    def key(s: str) -> str:
        return ("correct" if s == "correct" else "not") if binary else s

    hits = sum(key(s) == key(c["expected"]) for s, c in zip(statuses, cases, strict=True))
    return hits / len(cases)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0, help="rlvr's hard limit per item, seconds")
    ap.add_argument(
        "--mv-timeout", type=float, default=10.0, help="cut-off per item for math-verify, seconds"
    )
    ap.add_argument(
        "--generated", type=int, default=1000, help="generated cases on top of the labelled suite"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--show-disagreements", type=int, default=15)
    ap.add_argument(
        "--skip-category", action="append", default=[], help="leave out a labelled category (e.g. blowup)"
    )
    args = ap.parse_args()

    labelled = read_jsonl(CASES, required=("id", "gold", "completion", "expected"))
    labelled = [c for c in labelled if c["category"] not in args.skip_category]
    generated = generate(args.generated, args.seed)
    cases = labelled + generated
    n_lab = len(labelled)

    rl, rl_s = run_rlvr(cases, args.workers, args.timeout)
    rl1, rl1_s = run_rlvr(cases, 1, args.timeout) if args.workers != 1 else (rl, rl_s)
    mv, mv_s = run_math_verify(cases, args.mv_timeout)

    agree = sum((a == "correct") == (b == "correct") for a, b in zip(rl, mv, strict=True)) / len(cases)
    rows = []
    for name, procs, st, secs in (
        ("rlvr", args.workers, rl, rl_s),
        ("rlvr", 1, rl1, rl1_s),
        ("math-verify", 1, mv, mv_s),
    ):
        if name == "rlvr" and procs == 1 and args.workers == 1 and rows:
            continue
        rows.append(
            {
                "grader": name,
                "processes": procs,
                "labelled_status_acc": _accuracy(st[:n_lab], labelled, binary=False),
                "labelled_reward_acc": _accuracy(st[:n_lab], labelled, binary=True),
                "generated_reward_acc": _accuracy(st[n_lab:], generated, binary=True),
                "cases_per_s": len(cases) / secs,
                "seconds": secs,
                "statuses": dict(Counter(st)),
            }
        )
    ratio = rows[0]["cases_per_s"] / rows[-1]["cases_per_s"]

    skipped = f", skipping {', '.join(args.skip_category)}" if args.skip_category else ""
    print(f"{len(cases)} cases: {n_lab} labelled + {len(generated)} generated (seed {args.seed}{skipped})")
    print(f"reward agreement rlvr vs math-verify: {agree:.1%}")
    header = f"{'grader':<12} {'procs':>5} {'lab.status':>10} {'lab.reward':>10} {'gen.reward':>10} {'cases/s':>9} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['grader']:<12} {r['processes']:>5} {r['labelled_status_acc']:>10.1%} {r['labelled_reward_acc']:>10.1%} "
            f"{r['generated_reward_acc']:>10.1%} {r['cases_per_s']:>9.1f} {r['seconds']:>8.2f}"
        )
    print(f"throughput ratio rlvr ({args.workers} processes) / math-verify (1 process): {ratio:.1f}x")
    for r in rows:
        print(f"{r['grader']} ({r['processes']} proc.) statuses: {r['statuses']}")
    shown = 0
    for c, a, b in zip(cases, rl, mv, strict=True):
        if (a == "correct") != (b == "correct") and shown < args.show_disagreements:
            shown += 1
            print(
                f"  {c['id']:<28} expected={c['expected']:<10} rlvr={a:<10} math-verify={b:<10} gold={c['gold']!r}"
            )
    if args.json:
        atomic_write_json(
            args.json, {"n": len(cases), "labelled": n_lab, "agreement": agree, "ratio": ratio, "rows": rows}
        )


if __name__ == "__main__":
    main()
