"""Checkpoints that appear complete or not at all.

A checkpoint is a folder ``DIR/checkpoints/step_00000012/`` holding the model (a loadable Hugging Face
folder), the optimizer and scheduler states, the RNG states (python, numpy, torch), the data position,
the step and the resolved config. It is written into a hidden temporary folder and renamed into place
once every file is on disk, and ``state.json`` (written last) must name every file with its size, so a
run killed mid-write leaves either a leftover temp folder or an incomplete folder, and both are ignored.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlvr.io import atomic_write_json

STATE_FILE = "state.json"
PREFIX = "step_"


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]  # step, data position, config, files

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def load_torch(self, name: str) -> Any:
        return torch.load(self.path / name, map_location="cpu", weights_only=False)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    backend: Any,
    optimizer_state: dict[str, Any],
    scheduler: Any,
    extra_state: dict[str, Any],
    keep: int = 2,
    model_state: dict[str, torch.Tensor] | None = None,
    rng: Any = None,
) -> Path:
    """Write the checkpoint of ``step`` atomically and keep only the newest ``keep`` ones.

    ``model_state`` replaces the model's own weights (the gathered ones of a sharded model); ``rng``
    replaces this process's RNG states (a list of every process's under torchrun).
    """
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{final.name}-"))
    try:
        backend.save(str(tmp / "model"), state_dict=model_state)
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state() if rng is None else rng, tmp / "rng.pt")
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        for name in files:
            _fsync(tmp / name)
        atomic_write_json(tmp / STATE_FILE, {"step": step, "files": files, **extra_state})
        if final.exists():  # a previous attempt at the same step, e.g. after a resume: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first. Temp folders and folders with missing/short files are skipped."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if not path.is_dir() or not path.name.startswith(PREFIX):
            continue
        ckpt = _read_complete(path)
        if ckpt is not None:
            found.append(ckpt)
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def _read_complete(path: Path) -> Checkpoint | None:
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        files = state["files"]
        step = int(state["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for name, size in files.items():
        f = path / name
        if not f.is_file() or f.stat().st_size != size:
            return None
    return Checkpoint(path=path, step=step, state=state)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync(path)
    except OSError:  # some file systems do not allow fsync on folders
        pass
