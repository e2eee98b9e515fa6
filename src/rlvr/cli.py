"""The `rlvr` command. Each stage registers its own sub-commands; heavy imports happen inside them."""

from __future__ import annotations

import typer

from rlvr.data import commands as data_commands
from rlvr.eval import commands as eval_commands
from rlvr.report import commands as report_commands
from rlvr.train import commands as train_commands
from rlvr.verify import commands as verify_commands

app = typer.Typer(
    name="rlvr",
    help="Reinforcement learning with verifiable rewards: verify, train, evaluate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """Reinforcement learning with verifiable rewards: verify, train, evaluate, report."""


for _module in (verify_commands, data_commands, train_commands, eval_commands, report_commands):
    _module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
