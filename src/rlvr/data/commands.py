"""`rlvr tasks`: list the built-in tasks and the task specs `load_task` accepts."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def tasks() -> None:
        """List built-in tasks, variation families and the accepted task specs."""
        from rich.console import Console
        from rich.table import Table

        from rlvr.data import list_tasks

        table = Table(title="rlvr tasks (use with --task or data.task)")
        table.add_column("spec")
        table.add_column("description")
        for name, description in list_tasks().items():
            table.add_row(name, description)
        Console().print(table)
