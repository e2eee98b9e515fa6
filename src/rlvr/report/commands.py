"""`rlvr report`: one self-contained HTML page for a run or eval folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        run_dir: Annotated[Path, typer.Argument(help="Training run or eval folder.")],
        out: Annotated[
            Path | None, typer.Option("--out", help="Output HTML file (default RUN_DIR/report.html).")
        ] = None,
    ) -> None:
        """Training curves, accuracy with intervals, pass@k, scaling, robustness, contamination, audits."""
        from rich.console import Console

        from rlvr.io import DataError
        from rlvr.report.report import build_report

        console = Console()
        try:
            path = build_report(run_dir, out)
        except (DataError, FileNotFoundError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        console.print(f"report -> {path}")
