"""Small I/O helpers shared by every stage: JSONL that names the bad line, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Malformed input data; the message names the file and the line."""


def iter_jsonl(
    path: str | os.PathLike, required: Iterable[str] = (), torn_tail_ok: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line; raise DataError naming file:line otherwise.

    ``torn_tail_ok``: a last line that has no newline and is not valid JSON (a writer killed mid-line)
    is skipped instead of raising.
    """
    path = Path(path)
    required = tuple(required)
    try:
        fh = path.open(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot open: {e.strerror or e}") from e
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                if torn_tail_ok and not line.endswith("\n"):
                    return  # only the last line can lack its newline
                raise DataError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in required if k not in rec]
            if missing:
                raise DataError(f"{path}:{lineno}: missing field(s) {', '.join(map(repr, missing))}")
            yield lineno, rec


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    return [rec for _, rec in iter_jsonl(path, required)]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Write all records atomically (the file appears complete or not at all)."""
    text = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in records)
    atomic_write_text(path, text)


def append_jsonl(path: str | os.PathLike, record: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Append one record (or a list of them, in one write) and fsync (for logs that must survive a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = record if isinstance(record, list) else [record]
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in records))
        fh.flush()
        os.fsync(fh.fileno())


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
