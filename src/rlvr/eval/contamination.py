"""Train/eval contamination by word n-gram overlap (``rlvr contamination``).

Text is normalised to word tokens: lowercased, punctuation (and underscores) act as separators,
whitespace collapses. Every ``n``-gram of the training texts (13 by default) is hashed to 64 bits
into a sorted array; each eval item's n-grams are looked up there, the matching ones are merged
into contiguous spans of the item (reported as the item's own text) and the item counts as
contaminated when at least ``threshold`` of its n-grams match (any match when the threshold is 0).
Items with fewer than ``n`` tokens have no n-grams and are counted apart.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.io import DataError, iter_jsonl

TEXT_FIELDS = ("prompt", "question", "problem", "messages", "text")
_TOKEN = re.compile(r"[^\W_]+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the rolling hash


def iter_records(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line or index, record)`` from a JSONL file, or from a JSON file holding a list of objects."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        yield from iter_jsonl(path)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot open: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: item {i}: expected a JSON object, got {type(rec).__name__}")
        yield i, rec


def _where(path: str | os.PathLike, pos: int) -> str:
    """``file:line`` for JSONL, ``file: item i`` for a JSON list."""
    return f"{path}: item {pos}" if Path(path).suffix.lower() == ".json" else f"{path}:{pos}"


def _flatten(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):  # chat messages
        return "\n".join(str(m.get("content", "")) for m in value)
    return None


def record_text(rec: dict[str, Any], where: str, field: str | None = None) -> str:
    """The text of a record: ``field`` if given, else the first of ``TEXT_FIELDS`` it has."""
    fields = (field,) if field else TEXT_FIELDS
    for name in fields:
        if name in rec:
            text = _flatten(rec[name])
            if text is None:
                raise DataError(f"{where}: field {name!r} is neither text nor a list of chat messages")
            return text
    raise DataError(
        f"{where}: no text field (looked for {', '.join(map(repr, fields))}); choose one with --field"
    )


def tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection on 64-bit integers that spreads token ids over all bits."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _sorted_unique(h: np.ndarray) -> np.ndarray:
    h = np.sort(h)
    return h[np.concatenate(([True], h[1:] != h[:-1]))] if h.size else h


class NgramIndex:
    """The set of 64-bit hashes of every word ``n``-gram in a corpus, as a sorted array."""

    _UNKNOWN = np.uint64(2**64 - 1)  # id of a token the corpus never had: its n-grams cannot match

    def __init__(self, n: int = 13) -> None:
        if n < 1:
            raise ValueError(f"n-gram length must be >= 1, got {n}")
        self.n = n
        self._ids: dict[str, int] = {}  # token -> id, in order of first appearance
        self.hashes = np.empty(0, dtype=np.uint64)
        self.n_texts = 0

    def _codes(self, toks: list[str], add: bool) -> np.ndarray:
        ids = self._ids
        if add:
            it = (ids.setdefault(t, len(ids)) for t in toks)
        else:
            unknown = int(self._UNKNOWN)
            it = (ids.get(t, unknown) for t in toks)
        return _mix(np.fromiter(it, dtype=np.uint64, count=len(toks)))

    def _hashes(self, codes: np.ndarray, lengths: list[int]) -> np.ndarray:
        """Hashes of the n-grams of texts laid end to end (``lengths`` tokens each), none across two."""
        m = len(codes) - self.n + 1
        if m <= 0:
            return np.empty(0, dtype=np.uint64)
        h = np.zeros(m, dtype=np.uint64)
        for j in range(self.n):  # h = sum_j code[i + j] * MULT^(n - 1 - j), modulo 2^64
            h = h * _MULT + codes[j : j + m]
        text_of = np.repeat(np.arange(len(lengths)), lengths)
        return h[text_of[:m] == text_of[self.n - 1 :]]

    def add_texts(self, texts: Iterable[str], batch: int = 20000) -> None:
        """Add texts; n-grams never span two texts."""
        parts = [self.hashes]
        toks: list[str] = []
        lengths: list[int] = []
        for text in texts:
            t = tokens(text)
            toks += t
            lengths.append(len(t))
            self.n_texts += 1
            if len(lengths) == batch:
                parts.append(self._hashes(self._codes(toks, add=True), lengths))
                toks, lengths = [], []
        parts.append(self._hashes(self._codes(toks, add=True), lengths))
        self.hashes = _sorted_unique(np.concatenate(parts))

    def matches(self, toks: list[str]) -> np.ndarray:
        """Boolean per n-gram start of ``toks``: is that n-gram in the index?"""
        h = self._hashes(self._codes(toks, add=False), [len(toks)])
        if h.size == 0 or self.hashes.size == 0:
            return np.zeros(h.size, dtype=bool)
        pos = np.searchsorted(self.hashes, h).clip(max=self.hashes.size - 1)
        return self.hashes[pos] == h


def overlap_spans(text: str, index: NgramIndex) -> tuple[int, int, list[str]]:
    """``(n_ngrams, n_matched, spans)``: the merged runs of matched n-grams as slices of ``text``."""
    found = list(_TOKEN.finditer(text))
    hit = index.matches([m.group().lower() for m in found])
    if not hit.any():
        return hit.size, 0, []
    # A token is covered when some matched n-gram contains it: +1 at a match start, -1 n tokens later.
    edges = np.zeros(len(found) + 1, dtype=np.int64)
    starts = np.flatnonzero(hit)
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + index.n, -1)
    covered = np.cumsum(edges[:-1]) > 0
    spans, i = [], 0
    while i < len(found):
        if covered[i]:
            j = i
            while j + 1 < len(found) and covered[j + 1]:
                j += 1
            spans.append(text[found[i].start() : found[j].end()])
            i = j + 1
        else:
            i += 1
    return hit.size, int(hit.sum()), spans


def build_index(paths: Iterable[str | os.PathLike], n: int = 13, field: str | None = None) -> NgramIndex:
    index = NgramIndex(n)
    for path in paths:
        index.add_texts(record_text(rec, _where(path, line), field) for line, rec in iter_records(path))
    return index


def contamination_report(
    train: Iterable[str | os.PathLike],
    eval_path: str | os.PathLike,
    n: int = 13,
    threshold: float = 0.0,
    field: str | None = None,
) -> dict[str, Any]:
    """Per eval item overlap with the training texts, and a summary (see the module docstring)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a share in [0, 1], got {threshold}")
    train = [Path(p) for p in train]
    index = build_index(train, n, field)
    items = []
    for line, rec in iter_records(eval_path):
        text = record_text(rec, _where(eval_path, line), field)
        n_ngrams, n_matched, spans = overlap_spans(text, index)
        share = n_matched / n_ngrams if n_ngrams else 0.0
        items.append(
            {
                "id": rec.get("id", rec.get("problem_id", line)),
                "line": line,
                "n_ngrams": n_ngrams,
                "n_matched": n_matched,
                "share": share,
                "contaminated": n_matched > 0 and share >= threshold,
                "spans": spans,
            }
        )
    n_contaminated = sum(it["contaminated"] for it in items)
    return {
        "summary": {
            "train": [str(p) for p in train],
            "eval": str(eval_path),
            "n": n,
            "threshold": threshold,
            "train_texts": index.n_texts,
            "train_unique_ngrams": int(index.hashes.size),
            "eval_items": len(items),
            "too_short": sum(it["n_ngrams"] == 0 for it in items),
            "contaminated": n_contaminated,
            "contaminated_share": n_contaminated / len(items) if items else 0.0,
        },
        "items": items,
    }
