"""`rlvr train RECIPE [key=value ...]` and `rlvr demo`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("demo")(demo_command)


def train_command(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe (see recipes/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted overrides, e.g. train.lr=1e-6 algo.clip_high=0.28.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default runs/<recipe name>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run folder's last checkpoint.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and exit.")] = False,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Join this Ray cluster for rollouts (sets rollout.ray_address)."),
    ] = None,
) -> None:
    """Train a policy with a GRPO-family algorithm (or RFT) as the recipe says."""
    import yaml
    from rich.console import Console

    from rlvr.train.config import ConfigError, load_config

    console = Console(stderr=True, soft_wrap=True)
    try:
        extra = [f"rollout.ray_address={ray_address}"] if ray_address else []
        cfg = load_config(recipe, [*(overrides or []), *extra])
    except ConfigError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    run_dir = out or Path("runs") / recipe.stem
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).rstrip())
    typer.echo(f"\nbatch\n{cfg.batch_summary()}\nrun folder       {run_dir}")
    if dry_run:
        return

    from rlvr.train.loop import RunExistsError, train

    try:
        result = train(cfg, run_dir, resume=resume, command=sys.argv, console=console)
    except RunExistsError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    last = result.last
    if last:
        console.print(
            f"step {last['step']}: reward {last['reward/mean']:.3f}, accuracy {last['accuracy']:.3f}; "
            f"log {run_dir / 'log.jsonl'}, checkpoints {run_dir / 'checkpoints'}"
        )


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/demo"),
    control: Annotated[
        bool, typer.Option("--control", help="Also run the same training with random rewards.")
    ] = False,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Training steps (default: recipes/demo.yaml).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Run seed.")] = 0,
    eval_n: Annotated[int | None, typer.Option("--eval-n", help="Held-out prompts to evaluate.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Dotted overrides of recipes/demo.yaml, e.g. rollout.asynchronous=true algo.tis_cap=2."
        ),
    ] = None,
) -> None:
    """GRPO on the embedded SmolLM2-135M-Instruct on 2-digit addition, evaluated before and after."""
    from rich.console import Console

    from rlvr.train.config import ConfigError
    from rlvr.train.demo import run_demo, summary_table

    console = Console(stderr=True)
    try:
        summary = run_demo(
            out,
            control=control,
            steps=steps,
            seed=seed,
            eval_n=eval_n,
            console=console,
            overrides=overrides or [],
        )
    except ConfigError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    console.print(summary_table(summary))
    console.print(f"summary {out / 'summary.json'}, plot {out / 'reward.png'}")
