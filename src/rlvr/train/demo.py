"""`rlvr demo`: GRPO on the embedded SmolLM2-135M-Instruct on 2-digit addition, on a laptop CPU.

1. evaluate the model greedily on held-out prompts (disjoint from the training prompts);
2. train with the settings of ``recipes/demo.yaml``;
3. evaluate again on the same prompts; an exact McNemar test on the paired outcomes says whether
   the change is more than chance;
4. ``--control``: the same training from the same start, with the verifier's rewards replaced by coin
   flips of the same mean (Bernoulli(p), p = the real run's mean correctness reward), evaluated the same way.

Writes ``DIR/summary.json``, ``DIR/reward.png``, the training run under ``DIR/train`` (and ``DIR/control``)
and the evaluation rows under ``DIR/eval_*``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import yaml

from rlvr.io import atomic_write_json
from rlvr.train.config import ConfigError, RunConfig, apply_overrides, build_config

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "demo.yaml"


def load_demo_config(path: Path = RECIPE, overrides: list[str] = ()) -> tuple[RunConfig, dict[str, Any]]:
    """The training config and the ``demo`` section (evaluation settings) of the demo recipe."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the demo recipe: {e.strerror or e}") from None
    demo = dict(raw.pop("demo", {}) or {})
    unknown = set(demo) - {"eval_n", "eval_batch_size", "eval_max_new_tokens"}
    if unknown:
        raise ConfigError(f"{path}: demo: unknown key(s) {', '.join(sorted(unknown))}")
    cfg = build_config(apply_overrides(raw, list(overrides)), str(path))
    return cfg, demo


def accuracy_block(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from rlvr.eval.stats import wilson_interval

    k, n = sum(bool(r["correct"]) for r in rows), len(rows)
    lo, hi = wilson_interval(k, n)
    return {"accuracy": k / n, "n": n, "correct": k, "ci95": [lo, hi]}


def paired_block(before: list[dict[str, Any]], after: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    from rlvr.eval.stats import mcnemar_exact, paired_bootstrap

    a = {r["problem_id"]: bool(r["correct"]) for r in before}
    b = {r["problem_id"]: bool(r["correct"]) for r in after}
    ids = sorted(a)
    x, y = [a[i] for i in ids], [b[i] for i in ids]
    delta, lo, hi = paired_bootstrap([float(v) for v in y], [float(v) for v in x], n_boot=10000, seed=seed)
    return {
        "delta": delta,
        "ci95": [lo, hi],
        "p_value": mcnemar_exact(x, y),
        "improved": sum(1 for u, v in zip(x, y, strict=True) if v and not u),
        "regressed": sum(1 for u, v in zip(x, y, strict=True) if u and not v),
    }


def _evaluate(
    cfg: RunConfig, backend: Any, samples, demo: dict[str, Any], out_dir: Path
) -> list[dict[str, Any]]:
    from rlvr.eval.runner import evaluate
    from rlvr.train.loop import autocast

    with torch.no_grad(), autocast(cfg):
        return evaluate(
            backend,
            samples,
            n=1,
            temperature=0.0,
            max_new_tokens=int(demo.get("eval_max_new_tokens", cfg.sampling.max_new_tokens)),
            batch_size=int(demo.get("eval_batch_size", 50)),
            out_dir=out_dir,
            progress=False,
            system=cfg.model.system_prompt,
        )


def coin_flip_rewards(p: float, seed: int):
    """reward_fn for the control run: Bernoulli(p) per completion, independent of the text."""

    def fn(batch, step: int) -> torch.Tensor:
        from rlvr.train.loop import derived_seed

        g = torch.Generator().manual_seed(derived_seed(seed, step, 104729))
        return torch.bernoulli(torch.full((len(batch),), p), generator=g)

    return fn


def plot_rewards(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, log in runs.items():
        steps = [r["step"] for r in log]
        acc = [r["reward/correctness"] for r in log]
        window = max(1, len(acc) // 10)
        smooth = [
            sum(acc[max(0, i - window + 1) : i + 1]) / len(acc[max(0, i - window + 1) : i + 1])
            for i in range(len(acc))
        ]
        (line,) = ax.plot(steps, acc, alpha=0.3)
        ax.plot(steps, smooth, color=line.get_color(), label=f"{label} (moving mean of {window})")
    ax.set_xlabel("training step")
    ax.set_ylabel("mean verifier reward of the step's samples")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("rlvr demo: GRPO on 2-digit addition (SmolLM2-135M-Instruct)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def run_demo(
    out: Path,
    *,
    control: bool = False,
    steps: int | None = None,
    seed: int = 0,
    eval_n: int | None = None,
    console: Any = None,
    recipe: Path = RECIPE,
    overrides: list[str] = (),
) -> dict[str, Any]:
    from rlvr.data import load_task
    from rlvr.models import load_backend
    from rlvr.train.logging import read_log
    from rlvr.train.loop import prepare_backend, train

    def say(msg: str) -> None:
        if console is not None:
            console.print(msg)

    t_start = time.perf_counter()
    extra = [f"train.seed={seed}"] + ([f"train.steps={steps}"] if steps is not None else []) + list(overrides)
    cfg, demo = load_demo_config(recipe, extra)
    out = Path(out)
    if (out / "train" / "log.jsonl").exists():
        raise FileExistsError(f"{out} already holds a demo run; pick another --out")
    n_eval = eval_n or int(demo.get("eval_n", 200))
    held_out = load_task(cfg.data.task, n=n_eval, seed=cfg.data_seed, split="test", **cfg.data.options)

    say(
        f"[bold]rlvr demo[/bold]: {cfg.algo.recipe or cfg.algo.advantage} on {cfg.data.task}, model {cfg.model.name}"
    )
    say(cfg.batch_summary())
    backend = prepare_backend(
        cfg, load_backend(cfg.model.name, dtype=cfg.model.dtype, device=cfg.model.device, seed=seed)
    )
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    say(f"evaluating {len(held_out)} held-out prompts (greedy) before training ...")
    before = _evaluate(cfg, backend, held_out, demo, out / "eval_before")
    say(f"before: {accuracy_block(before)['accuracy']:.3f}")

    result = train(cfg, out / "train", backend=backend, console=console)
    after = _evaluate(cfg, result.backend, held_out, demo, out / "eval_after")
    wall = time.perf_counter() - t_start
    log = read_log(out / "train")
    summary: dict[str, Any] = {
        "model": cfg.model.name,
        "task": cfg.data.task,
        "algorithm": cfg.algo.recipe or cfg.algo.advantage,
        "steps": cfg.train.steps,
        "seed": seed,
        "wall_seconds": round(wall, 1),
        "train_seconds": round(sum(r["time/step"] for r in log), 1),
        "before": accuracy_block(before),
        "after": accuracy_block(after),
        "paired": paired_block(before, after, seed),
        "control": None,
    }
    del result, backend
    runs = {"verifier rewards": log}

    if control:
        t0 = time.perf_counter()
        p = sum(r["reward/correctness"] for r in log) / len(log)
        say(f"control: the same training with Bernoulli({p:.3f}) rewards ...")
        backend = prepare_backend(
            cfg, load_backend(cfg.model.name, dtype=cfg.model.dtype, device=cfg.model.device, seed=seed)
        )
        ctrl = train(
            cfg, out / "control", backend=backend, console=console, reward_fn=coin_flip_rewards(p, seed)
        )
        ctrl_after = _evaluate(cfg, ctrl.backend, held_out, demo, out / "eval_control")
        ctrl_log = read_log(out / "control")
        summary["control"] = {
            "rewards": f"Bernoulli(p={p:.4f}) per completion, p = the real run's mean correctness reward",
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "after": accuracy_block(ctrl_after),
            "paired": paired_block(before, ctrl_after, seed),
        }
        runs["random rewards (control)"] = ctrl_log

    plot_rewards(runs, out / "reward.png")
    atomic_write_json(out / "summary.json", summary)
    return summary


def summary_table(summary: dict[str, Any]):
    from rich.table import Table

    t = Table(title=f"rlvr demo: {summary['algorithm']} on {summary['task']}, {summary['steps']} steps")
    t.add_column("run")
    t.add_column("held-out accuracy (greedy)")
    t.add_column("95% CI")
    t.add_column("paired delta vs before")
    t.add_column("McNemar p")

    def row(name: str, acc: dict[str, Any], paired: dict[str, Any] | None) -> None:
        lo, hi = acc["ci95"]
        t.add_row(
            name,
            f"{acc['accuracy']:.3f} ({acc['correct']}/{acc['n']})",
            f"[{lo:.3f}, {hi:.3f}]",
            "" if paired is None else f"{paired['delta']:+.3f}",
            "" if paired is None else f"{paired['p_value']:.2g}",
        )

    row("before", summary["before"], None)
    row("after GRPO", summary["after"], summary["paired"])
    if summary.get("control"):
        row("after random rewards", summary["control"]["after"], summary["control"]["paired"])
    return t
