"""The run manifest: what is needed to re-run a run (config, seeds, data hashes, versions, git state)."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rlvr.records import RunManifest, Sample

PACKAGES = (
    "rlvr",
    "torch",
    "transformers",
    "accelerate",
    "numpy",
    "math-verify",
    "sympy",
    "pydantic",
    "datasets",
)


def samples_hash(samples: Sequence[Sample]) -> str:
    """sha256 over the samples' canonical JSON, in order."""
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps(s.to_dict(), sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state(path: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository holding ``path`` (the rlvr sources by default); (None, None) outside git."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.strip())


def build_manifest(
    config: dict[str, Any],
    *,
    command: Sequence[str] | None,
    seeds: dict[str, int],
    datasets: dict[str, Sequence[Sample]],
    extra: dict[str, Any] | None = None,
) -> RunManifest:
    commit, dirty = git_state()
    return RunManifest(
        command=list(command if command is not None else sys.argv),
        config=config,
        seeds=dict(seeds),
        data_hashes={name: samples_hash(samples) for name, samples in datasets.items()},
        packages=package_versions(),
        git_commit=commit,
        git_dirty=dirty,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        python=sys.version.split()[0],
        platform=platform.platform(),
        extra=dict(extra or {}),
    )
