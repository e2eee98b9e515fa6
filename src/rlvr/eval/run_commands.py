"""`rlvr eval` (sample + verify + summarise a model on a task) and `rlvr audit` (reward-hacking checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        model: Annotated[str, typer.Option("--model", help="Model folder, Hub id or 'default'.")],
        task: Annotated[
            str, typer.Option("--task", help="Task spec (see `rlvr.data.list_tasks`) or a file.")
        ],
        out: Annotated[Path, typer.Option("--out", help="Output folder (resumed if it holds a run).")],
        samples: Annotated[int, typer.Option("--samples", "-n", help="Completions per problem.")] = 1,
        temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 0.0,
        top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
        max_new_tokens: Annotated[int, typer.Option(help="Completion length limit in tokens.")] = 256,
        n_problems: Annotated[int | None, typer.Option(help="Number of problems (all when omitted).")] = None,
        split: Annotated[str, typer.Option(help="Task split.")] = "test",
        seed: Annotated[int, typer.Option(help="Seed of problem choice and sampling.")] = 0,
        batch_size: Annotated[int, typer.Option(help="Completions per generate call.")] = 16,
        dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
        device: Annotated[str, typer.Option(help="Torch device (cpu, cuda).")] = "cpu",
        system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
        workers: Annotated[int, typer.Option(help="Verifier worker processes.")] = 2,
        timeout: Annotated[float | None, typer.Option(help="Verifier limit per sample, seconds.")] = None,
    ) -> None:
        """Sample completions with a model, verify them, write samples.jsonl and summary.json."""
        from rich.console import Console

        from rlvr.data import load_task
        from rlvr.eval.runner import evaluate
        from rlvr.io import DataError
        from rlvr.models import load_backend

        console = Console()
        try:
            problems = load_task(task, n=n_problems, seed=seed, split=split)
        except (DataError, KeyError, ValueError, OSError) as e:
            console.print(f"[red]error:[/red] {_message(e)}")
            raise typer.Exit(2) from None
        console.print(f"{len(problems)} problems from {task!r} ({split}); loading {model!r}")
        try:
            backend = load_backend(model, dtype=dtype, device=device, seed=seed)
        except (ValueError, OSError) as e:
            console.print(f"[red]error:[/red] {_message(e)}")
            raise typer.Exit(2) from None
        config = {"model": model, "task": task, "split": split, "system": system}
        try:
            rows = evaluate(
                backend,
                problems,
                n=samples,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                seed=seed,
                out_dir=out,
                system=system,
                workers=workers,
                timeout=timeout,
                config=config,
            )
        except (DataError, ValueError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        _print_summary(console, out, len(rows))

    @app.command("audit")
    def audit_command(
        run_dir: Annotated[Path, typer.Argument(help="Training run or eval folder.")],
        control: Annotated[
            Path | None, typer.Option(help="Control run folder (default: RUN_DIR/control if present).")
        ] = None,
    ) -> None:
        """Reward-hacking audits of a run or eval folder; writes RUN_DIR/audit.json."""
        from rich.console import Console
        from rich.table import Table

        from rlvr.eval.audit import audit_dir
        from rlvr.io import DataError

        console = Console()
        try:
            result = audit_dir(run_dir, control=control)
        except (DataError, FileNotFoundError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        table = Table(title=f"rlvr audit: {run_dir}")
        for col in ("audit", "flag", "explanation"):
            table.add_column(col)
        for name, section in result["audits"].items():
            if not section.get("flags"):
                status = "[green]ok[/green]" if section.get("figures") else "[dim]no data[/dim]"
                table.add_row(name, status, section.get("note", ""))
            for flag in section.get("flags", []):
                table.add_row(name, f"[yellow]{flag['name']}[/yellow]", flag["explanation"])
        console.print(table)
        console.print(f"{len(result['flags'])} flag(s) -> {Path(run_dir) / 'audit.json'}")


def _message(e: Exception) -> str:
    """An exception's message (a KeyError's without the quotes str() adds)."""
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _print_summary(console, out: Path, n_rows: int) -> None:
    import json

    from rich.table import Table

    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    lo, hi = s["accuracy_ci95"]
    table = Table(title=f"rlvr eval -> {out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("problems x samples", f"{s['n_problems']} x {s['samples_per_problem']} = {n_rows}")
    table.add_row("accuracy (95% Wilson)", f"{s['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]")
    for k, v in s["pass_at_k"].items():
        table.add_row(f"pass@{k}", f"{v:.3f}")
    for status, c in s["status_counts"].items():
        table.add_row(f"status {status}", str(c))
    table.add_row("completion tokens", f"{s['tokens_total']} ({s['tokens_mean']:.1f} per sample)")
    table.add_row("truncated", f"{s['truncation_rate']:.1%}")
    console.print(table)
