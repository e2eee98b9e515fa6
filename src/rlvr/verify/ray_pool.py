"""Verification on Ray actors: a pool that replaces dying workers, retries their work, never hangs.

``ray.init()`` starts a local cluster by default; ``address="auto"`` or ``"ray://host:port"``
joins an existing one. Work is cut into chunks; each chunk's result is taken once (a retried chunk
that also comes back from a presumed-dead worker is ignored), so no verdict is lost or counted
twice. Every remote call has a deadline; a chunk that fails on ``max_retries + 1`` workers raises
:class:`WorkerFailed` naming the worker and the step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.records import Sample, Verdict
from rlvr.verify import _REGISTRY, sample_item


class WorkerFailed(RuntimeError):
    """A chunk of work could not be completed by any worker within its retries."""


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start (or join, with ``address``) a Ray cluster once per process."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    ray.init(**kwargs)


def kill_actors(actors: list[Any]) -> None:
    """Kill Ray actors, ignoring those already gone."""
    import ray

    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:
            pass


class _VerifierWorker:
    """Runs inside a Ray actor: grades chunks with the named verifier."""

    def __init__(self, options: dict[str, Any]):
        self.options = options

    def verify(self, verifier: str, items: list[dict[str, Any]], fn: Any = None) -> list[dict[str, Any]]:
        """Grade with ``fn`` when given (a verifier registered as a callable in the caller), else by name."""
        from rlvr.verify import get_verifier

        batch = fn if fn is not None else get_verifier(verifier)
        return [v.to_dict() for v in batch(items, **self.options)]

    def pid(self) -> int:
        import os

        return os.getpid()


@dataclass
class _Chunk:
    chunk_id: int
    verifier: str
    indices: list[int]
    items: list[dict[str, Any]]
    attempts: int = 0


class RayVerifierPool:
    def __init__(
        self,
        num_workers: int = 2,
        *,
        address: str | None = None,
        call_timeout: float = 120.0,
        max_retries: int = 2,
        chunk_size: int = 16,
        verifier_options: dict[str, Any] | None = None,
        num_cpus_per_worker: float = 1.0,
    ):
        import ray

        init_ray(address)
        self._actor_cls = ray.remote(num_cpus=num_cpus_per_worker, max_restarts=0)(_VerifierWorker)
        self._options = {"workers": 1, **(verifier_options or {})}
        self.call_timeout = call_timeout
        self.max_retries = max_retries
        self.chunk_size = chunk_size
        self.replaced = 0
        self._generation = 0
        self.workers = [self._spawn() for _ in range(num_workers)]

    def _spawn(self):
        self._generation += 1
        return self._actor_cls.remote(self._options)

    def _replace(self, slot: int) -> None:
        kill_actors([self.workers[slot]])
        self.workers[slot] = self._spawn()
        self.replaced += 1

    def verify_samples(
        self, samples: Sequence[Sample], completions: Sequence[str], step: int | None = None
    ) -> list[Verdict]:
        """Grade ``completions[i]`` against ``samples[i]`` on the pool, order preserved."""
        if len(samples) != len(completions):
            raise ValueError(f"{len(samples)} samples but {len(completions)} completions")
        by_verifier: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            by_verifier.setdefault(s.verifier, []).append(i)
        queue: deque[_Chunk] = deque()
        for name, idx in by_verifier.items():
            for start in range(0, len(idx), self.chunk_size):
                part = idx[start : start + self.chunk_size]
                items = [sample_item(samples[i], completions[i]) for i in part]
                queue.append(_Chunk(len(queue), name, part, items))
        return self._run(queue, len(samples), step)

    def _run(self, queue: deque[_Chunk], n: int, step: int | None) -> list[Verdict]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        out: list[Verdict | None] = [None] * n
        done: set[int] = set()
        idle = deque(range(len(self.workers)))
        running: dict[Any, tuple[_Chunk, int, float]] = {}  # ref -> (chunk, slot, started)
        where = f"step {step}" if step is not None else "verification"

        def fail_or_retry(chunk: _Chunk, slot: int, why: str) -> None:
            self._replace(slot)
            idle.append(slot)
            chunk.attempts += 1
            if chunk.attempts > self.max_retries:
                raise WorkerFailed(
                    f"{where}: chunk {chunk.chunk_id} ({len(chunk.items)} {chunk.verifier} items) failed on "
                    f"{chunk.attempts} workers; last: verifier worker {slot}: {why}"
                )
            queue.appendleft(chunk)

        while queue or running:
            while queue and idle:
                chunk, slot = queue.popleft(), idle.popleft()
                # A verifier registered as a callable in this process travels with the call.
                fn = _REGISTRY.get(chunk.verifier)
                ref = self.workers[slot].verify.remote(
                    chunk.verifier, chunk.items, fn if callable(fn) else None
                )
                running[ref] = (chunk, slot, time.monotonic())
            oldest = min(started for _, _, started in running.values())
            wait_for = max(0.0, oldest + self.call_timeout - time.monotonic())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=wait_for)
            for ref in ready:
                chunk, slot, _ = running.pop(ref)
                try:
                    results = ray.get(ref)
                except RayActorError as e:
                    fail_or_retry(chunk, slot, f"died ({type(e).__name__})")
                    continue
                except RayTaskError as e:
                    fail_or_retry(chunk, slot, f"raised {e.cause!r}" if e.cause else str(e).splitlines()[0])
                    continue
                idle.append(slot)
                if chunk.chunk_id in done:
                    continue  # a late duplicate: the retry already counted
                done.add(chunk.chunk_id)
                for i, d in zip(chunk.indices, results, strict=True):
                    out[i] = Verdict.from_dict(d)
            now = time.monotonic()
            for ref, (chunk, slot, started) in list(running.items()):
                if now - started >= self.call_timeout:
                    running.pop(ref)
                    fail_or_retry(chunk, slot, f"no answer within {self.call_timeout:.0f}s")
        return out  # type: ignore[return-value]

    def shutdown(self) -> None:
        kill_actors(self.workers)
        self.workers = []
