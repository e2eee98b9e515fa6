"""The one-step off-policy (asynchronous) loop against the synchronous one, same recipe and seed.

Runs the demo recipe (GRPO, SmolLM2-135M-Instruct, 2-digit addition) twice for ``--steps`` steps:
synchronously, and with ``rollout.asynchronous=true`` (step t+1 sampled from a copy of the
pre-update weights while step t's update runs, truncated IS correction ``algo.tis_cap``). Prints
seconds per step, the speed-up, and both reward curves (training-batch accuracy per step).

    python bench/async_vs_sync.py --steps 12
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(overrides: list[str], out: Path) -> list[dict]:
    from rlvr.train.demo import load_demo_config
    from rlvr.train.logging import read_log
    from rlvr.train.loop import train

    cfg, _ = load_demo_config(
        REPO / "recipes" / "demo.yaml", ["log.tensorboard=false", "log.progress=false", *overrides]
    )
    train(cfg, out)
    return read_log(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tis-cap", type=float, default=2.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    common = [f"train.steps={args.steps}", f"train.seed={args.seed}", f"algo.tis_cap={args.tis_cap}"]
    logs = {}
    with tempfile.TemporaryDirectory() as tmp:
        logs["sync"] = run(common, Path(tmp) / "sync")
        logs["async"] = run([*common, "rollout.asynchronous=true"], Path(tmp) / "async")
    result = {}
    for name, log in logs.items():
        steps = log[1:]  # the first step loads and warms up
        result[name] = {
            "seconds_per_step": statistics.mean(r["time/step"] for r in steps),
            "accuracy_per_step": [round(r["accuracy"], 3) for r in log],
            "tis_weight_per_step": [round(r["tis_weight"] or 1.0, 4) for r in log],
            "mean_accuracy": statistics.mean(r["accuracy"] for r in log),
        }
    speedup = result["sync"]["seconds_per_step"] / result["async"]["seconds_per_step"]
    for name, r in result.items():
        print(f"{name:5s} {r['seconds_per_step']:6.2f} s/step  mean batch accuracy {r['mean_accuracy']:.3f}")
        print(f"      accuracy per step {r['accuracy_per_step']}")
    print(f"asynchronous is {speedup:.2f}x the synchronous loop's speed")
    result["speedup"] = speedup
    result["settings"] = vars(args) | {"json": str(args.json) if args.json else None}
    if args.json:
        from rlvr.io import atomic_write_json

        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
