"""`rlvr verify {math,code,ifeval}`: grade a JSONL file, write verdicts, print a summary."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from rlvr.io import DataError, iter_jsonl, write_jsonl
from rlvr.records import STATUSES

REQUIRED = {
    "math": ("id", "completion", "answer"),
    "code": ("id", "completion", "tests"),
    "ifeval": ("id", "completion", "instruction_id_list", "kwargs"),
}


def verify_file(
    kind: str,
    input_path: Path,
    output_path: Path,
    workers: int = 2,
    timeout: float | None = None,
    **options,
) -> dict:
    """Grade every line of ``input_path`` and write ``id`` + Verdict fields to ``output_path``."""
    from rlvr.verify import get_verifier

    if kind not in REQUIRED:
        raise DataError(f"unknown verifier {kind!r}; choose one of {', '.join(REQUIRED)}")
    rows = [rec for _, rec in iter_jsonl(input_path, REQUIRED[kind])]
    kwargs = dict(options, workers=workers)
    if timeout is not None:
        kwargs["timeout"] = timeout
    t0 = time.perf_counter()
    verdicts = get_verifier(kind)(rows, **kwargs)
    elapsed = time.perf_counter() - t0
    write_jsonl(output_path, ({"id": r["id"], **v.to_dict()} for r, v in zip(rows, verdicts, strict=True)))
    counts = Counter(v.status for v in verdicts)
    return {
        "n": len(rows),
        "counts": {s: counts.get(s, 0) for s in STATUSES},
        "mean_reward": sum(v.reward for v in verdicts) / len(verdicts) if verdicts else 0.0,
        "seconds": elapsed,
        "per_second": len(rows) / elapsed if elapsed > 0 else float("inf"),
    }


def parse_options(pairs: list[str]) -> dict:
    """``["mode=loose", "partial_credit=true"]`` -> ``{"mode": "loose", "partial_credit": True}``."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def register(app: typer.Typer) -> None:
    @app.command()
    def verify(
        kind: Annotated[str, typer.Argument(help="Verifier: math, code or ifeval.")],
        input: Annotated[Path, typer.Option("--input", "-i", help="Input JSONL.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL (id + verdict).")],
        workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = 2,
        timeout: Annotated[float | None, typer.Option(help="Wall-clock limit per sample, seconds.")] = None,
        unsafe_no_sandbox: Annotated[
            bool, typer.Option("--unsafe-no-sandbox", help="code: run without bubblewrap (dangerous).")
        ] = False,
        option: Annotated[
            list[str] | None,
            typer.Option(
                "--option",
                "-O",
                help="Verifier option KEY=VALUE (repeatable; VALUE parsed as JSON if it can be), "
                "e.g. -O mode=loose -O partial_credit=true for ifeval.",
            ),
        ] = None,
    ) -> None:
        """Grade a JSONL file of completions and write one verdict per line."""
        from rich.console import Console
        from rich.table import Table

        console = Console()
        try:
            options = parse_options(option or [])
            if unsafe_no_sandbox:
                options["unsafe_no_sandbox"] = True
            summary = verify_file(kind, input, output, workers=workers, timeout=timeout, **options)
        except (DataError, RuntimeError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        table = Table(title=f"rlvr verify {kind}: {input}")
        table.add_column("status")
        table.add_column("count", justify="right")
        table.add_column("share", justify="right")
        for status, c in summary["counts"].items():
            table.add_row(status, str(c), f"{c / max(summary['n'], 1):.1%}")
        console.print(table)
        console.print(
            f"{summary['n']} samples in {summary['seconds']:.2f}s ({summary['per_second']:.1f}/s), "
            f"mean reward {summary['mean_reward']:.3f} -> {output}"
        )
