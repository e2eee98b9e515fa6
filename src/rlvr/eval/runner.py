"""The evaluation runner: sample n completions per problem, verify them, write per-sample rows + a summary.

Rows go to ``OUT/samples.jsonl`` one batch at a time (appended and fsynced), so an interrupted run
resumes where it stopped: on restart the (problem_id, sample_id) pairs already on disk are skipped and
a truncated last line is dropped. Problems are cut into batches in a fixed order and each batch gets
its own seed, so a resumed run regenerates an unfinished batch exactly as the first run would have
(on a backend that is deterministic for a given seed), and keeps only the rows still missing.
When every pair is done the file is rewritten atomically in canonical order (problem, then sample).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr.io import DataError, append_jsonl, atomic_write_json, iter_jsonl, write_jsonl
from rlvr.records import STATUSES, Sample, Verdict

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "eval_config.json"


def evaluate(
    backend: Any,
    samples: Sequence[Sample],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    system: str | None = None,
    workers: int = 2,
    timeout: float | None = None,
    config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Sample ``n`` completions of every sample's prompt with ``backend``, verify them, return the rows.

    ``batch_size`` counts completions per ``backend.generate`` call (``batch_size // n`` prompts, at
    least one). With ``out_dir`` the rows are streamed to ``out_dir/samples.jsonl`` (resuming any rows
    already there) and ``out_dir/summary.json`` is written at the end; ``config`` adds entries (model,
    task, ...) to the recorded settings. ``system``, ``workers`` and ``timeout`` go to the prompt and
    the verifiers.
    """
    from rlvr.models.base import SamplingParams
    from rlvr.verify import verify_samples

    if not samples:
        raise ValueError("no problems to evaluate")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = [s.id for s in samples]
    dupes = sorted(k for k, c in Counter(ids).items() if c > 1)
    if dupes:
        raise ValueError(f"duplicate problem ids: {', '.join(map(repr, dupes[:5]))}")

    settings = {
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "batch_size": batch_size,
        "n_problems": len(samples),
        "problems_sha256": hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest(),
        **(config or {}),
    }
    samples_path = Path(out_dir) / SAMPLES_FILE if out_dir is not None else None
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if samples_path is not None:
        _check_resume_config(Path(out_dir) / CONFIG_FILE, settings)
        atomic_write_json(Path(out_dir) / CONFIG_FILE, settings)
        done = {(r["problem_id"], r["sample_id"]): r for r in load_rows(samples_path, repair=True)}
        unknown = {pid for pid, _ in done} - set(ids)
        if unknown:
            raise DataError(
                f"{samples_path}: rows for problems not in this evaluation, e.g. {min(unknown)!r}"
            )

    per_call = max(1, batch_size // n)
    batches = [list(samples[i : i + per_call]) for i in range(0, len(samples), per_call)]
    total = len(samples) * n

    with _progress(progress, total, len(done)) as advance:
        for b, batch in enumerate(batches):
            missing = {(s.id, k) for s in batch for k in range(n)} - done.keys()
            if not missing:
                continue
            params = SamplingParams(
                n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed + b
            )
            gens = backend.generate([s.messages(system) for s in batch], params)
            by_prompt: dict[int, list[Any]] = defaultdict(list)
            for g in gens:
                by_prompt[g.prompt_index].append(g)
            todo = []
            for i, s in enumerate(batch):
                if len(by_prompt[i]) != n:
                    raise RuntimeError(
                        f"backend returned {len(by_prompt[i])} completions for prompt {i}, expected {n}"
                    )
                todo += [(s, k, g) for k, g in enumerate(by_prompt[i]) if (s.id, k) in missing]
            opts: dict[str, Any] = {"workers": workers}
            if timeout is not None:
                opts["timeout"] = timeout
            verdicts = verify_samples([s for s, _, _ in todo], [g.text for _, _, g in todo], **opts)
            new_rows = [_row(s, k, g, v) for (s, k, g), v in zip(todo, verdicts, strict=True)]
            if samples_path is not None:
                append_jsonl(samples_path, new_rows)  # one write per batch, fsynced
            for r in new_rows:
                done[(r["problem_id"], r["sample_id"])] = r
            advance(len(new_rows))

    rows = [done[(s.id, k)] for s in samples for k in range(n)]
    if out_dir is not None:
        write_jsonl(samples_path, rows)
        atomic_write_json(Path(out_dir) / SUMMARY_FILE, summarize(rows, settings))
    return rows


def _row(sample: Sample, sample_id: int, gen: Any, verdict: Verdict) -> dict[str, Any]:
    return {
        "problem_id": sample.id,
        "family_id": sample.family_id,
        "variation_id": sample.variation_id,
        "sample_id": sample_id,
        "verifier": sample.verifier,
        "completion": gen.text,
        **verdict.to_dict(),
        "correct": verdict.correct,
        "answer": verdict.extracted,
        "tokens": len(gen.completion_ids),
        "prompt_tokens": len(gen.prompt_ids),
        "truncated": bool(gen.truncated),
    }


ROW_FIELDS = ("problem_id", "sample_id", "completion", "status")


def load_rows(
    path: str | os.PathLike, repair: bool = False, required: Sequence[str] = ROW_FIELDS
) -> list[dict[str, Any]]:
    """Read ``samples.jsonl``; a missing file is empty.

    An incomplete last line (a run killed mid-write) is tolerated: it is dropped, and with ``repair``
    the file is rewritten without it. Bad JSON anywhere else raises DataError naming file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = [rec for _, rec in iter_jsonl(path, required, torn_tail_ok=True)]
    if repair and path.stat().st_size:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        if torn:
            write_jsonl(path, rows)
    return rows


def _check_resume_config(path: Path, settings: dict[str, Any]) -> None:
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    # Every recorded setting (sampling, problems, model, task, system prompt, ...) must match.
    keys = list(dict.fromkeys([*old, *settings]))
    changed = [f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in keys if old.get(k) != settings.get(k)]
    if changed:
        raise DataError(
            f"{path}: this folder holds an evaluation with other settings ({'; '.join(changed)}); "
            "use a new --out folder or delete the old one"
        )


class _progress:
    """A rich progress bar over completions (or nothing when disabled)."""

    def __init__(self, enabled: bool, total: int, completed: int) -> None:
        self.enabled, self.total, self.completed = enabled, total, completed

    def __enter__(self):
        if not self.enabled:
            return lambda k: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.bar.start()
        task = self.bar.add_task("evaluating", total=self.total, completed=self.completed)
        return lambda k: self.bar.advance(task, k)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()


# ----------------------------------------------------------------------------- summaries


def summarize(rows: Sequence[dict[str, Any]], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``summary.json`` of an evaluation.

    Accuracy with its Wilson interval, pass@k and maj@k (k = 1, 2, 4, ... up to the samples per
    problem), verdict status counts, tokens spent, and under ``stats`` the full ``stats.json`` layout of
    ``rlvr.eval.stats.summarise_rows`` (bootstrap interval, per-family robustness, sample-size plan).
    """
    from rlvr.eval.stats import summarise_rows

    if not rows:
        raise ValueError("no rows to summarise")
    n_samples = len(rows)
    statuses = Counter(r["status"] for r in rows)
    tokens = [int(r.get("tokens", 0)) for r in rows]
    stats = summarise_rows(list(rows))
    group = stats["groups"]["all"]
    return {
        "settings": settings or {},
        "n_problems": group["accuracy"]["n_problems"],
        "n_samples": n_samples,
        "samples_per_problem": group["samples_per_problem"]["min"],
        "accuracy": group["accuracy"]["mean"],
        "accuracy_ci95": group["accuracy"]["ci95"],
        "n_correct": sum(bool(r["correct"]) for r in rows),
        "pass_at_k": group["pass_at_k"],
        "maj_at_k": group.get("maj_at_k", {}),
        "status_counts": {s: statuses.get(s, 0) for s in STATUSES},
        "mean_reward": sum(float(r["reward"]) for r in rows) / n_samples,
        "tokens_total": sum(tokens),
        "tokens_mean": sum(tokens) / n_samples,
        "prompt_tokens_total": sum(int(r.get("prompt_tokens", 0)) for r in rows),
        "truncation_rate": sum(bool(r.get("truncated")) for r in rows) / n_samples,
        "stats": stats,
    }
