"""Per-step metrics to ``DIR/log.jsonl`` (appended and flushed), TensorBoard, optional wandb, and a progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rlvr.io import append_jsonl, atomic_write_text


class MetricsLogger:
    """Writes one record per step to every enabled sink."""

    def __init__(
        self,
        run_dir: Path,
        *,
        tensorboard: bool = True,
        wandb: bool = False,
        wandb_project: str = "rlvr",
        config: dict[str, Any] | None = None,
        enabled: bool = True,
    ):
        """``enabled=False`` (the other processes of a torchrun run) writes nothing."""
        self.path = Path(run_dir) / "log.jsonl"
        self.enabled = enabled
        self.tb = None
        self.wandb = None
        if tensorboard and enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        if wandb and enabled:
            try:
                import wandb as wandb_lib
            except ImportError:
                raise RuntimeError(
                    "log.wandb=true but wandb is not installed (pip install 'rlvr[wandb]')"
                ) from None
            self.wandb = wandb_lib.init(
                project=wandb_project, dir=str(run_dir), config=config, resume="allow"
            )

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (they were logged after the checkpoint a resume starts from)."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", -1) <= step]
        atomic_write_text(self.path, "".join(kept))

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, record)
        step = int(record["step"])
        scalars = {k: v for k, v in _flatten(record).items() if k != "step" and _is_number(v)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    from rlvr.io import read_jsonl

    return read_jsonl(Path(run_dir) / "log.jsonl")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Progress:
    """A rich progress bar with ETA and the latest reward; a no-op when disabled."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, description: str = "train"):
        self.bar = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )
        self.task = self.bar.add_task(description, total=total, completed=start, status="")
        self.bar.start()

    def update(self, record: dict[str, Any]) -> None:
        if self.bar is None:
            return
        status = (
            f"reward {record['reward/mean']:.3f}  acc {record['accuracy']:.3f}  "
            f"len {record['response_length/mean']:.0f}  {record['time/step']:.1f}s/step"
        )
        self.bar.update(self.task, advance=1, status=status)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
