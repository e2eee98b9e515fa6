"""Rollouts on Ray actors: a generation backend whose sampling runs on N workers, each with its own model.

Every actor loads the same model (``load_backend``) and, with ``sampling_dtype="bfloat16"``, samples
from a bf16 copy of its weights. ``generate`` cuts the prompts into contiguous chunks (one per
worker) and gives each chunk a seed derived from the call's seed and the chunk's first prompt index,
so the samples do not depend on which worker ran a chunk. The fault-tolerance design is the one of
:mod:`rlvr.verify.ray_pool`:

* each chunk's result is taken once: a retried chunk that also comes back late is ignored, so no
  rollout is lost or counted twice;
* a chunk whose actor died is retried on a replacement actor, at most ``max_retries`` times;
* the weights of the last ``load_weights`` are kept in the object store (one ``ray.put``), and a
  replacement actor loads them before it samples anything;
* every remote call has a deadline (``timeout``); a hung call raises :class:`WorkerFailed` naming
  the worker (actor index and pid) and the step, and the hung actor is replaced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from rlvr.models import DTYPES
from rlvr.models.base import Generation, SamplingParams
from rlvr.verify.ray_pool import WorkerFailed, init_ray, kill_actors

__all__ = ["RayRolloutPool", "WorkerFailed", "chunk_seed"]

Prompt = list[dict[str, str]] | str


def chunk_seed(seed: int, first_prompt: int) -> int:
    """The sampling seed of the chunk that starts at prompt ``first_prompt`` of a call seeded ``seed``."""
    digest = hashlib.blake2b(f"{seed}:{first_prompt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # non-negative, fits torch's manual_seed


class _RolloutWorker:
    """Runs inside a Ray actor: one `HFBackend`, optionally given the current weights at start."""

    def __init__(
        self,
        model: str,
        dtype: str,
        sampling_dtype: str | None,
        threads: int,
        seed: int,
        weights: dict[str, Any] | None,
    ) -> None:
        import torch

        from rlvr.models import load_backend

        torch.set_num_threads(threads)
        self.backend = load_backend(model, dtype=dtype, seed=seed)
        if sampling_dtype is not None:
            self.backend.set_sampling_dtype(getattr(torch, sampling_dtype))
        if weights is not None:
            self.backend.load_weights(weights)

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        return self.backend.generate(prompts, params)

    def load_weights(self, weights: dict[str, Any]) -> None:
        self.backend.load_weights(weights)  # also syncs the sampling copy

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        return self.backend.logprobs(prompt_ids, completion_ids)

    def save(self, path: str) -> None:
        self.backend.save(path)

    def pid(self) -> int:
        import os

        return os.getpid()


def _died() -> tuple[type[BaseException], ...]:
    from ray.exceptions import RayActorError, WorkerCrashedError

    return (RayActorError, WorkerCrashedError)  # ActorDiedError / ActorUnavailableError included


def _cause(e: BaseException) -> str:
    """A one-line reason: the exception a task raised, or why its actor died."""
    cause = getattr(e, "cause", None)
    if cause is not None:  # RayTaskError
        return f"raised {cause!r}"
    lines = [line for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    if getattr(e, "actor_init_failed", False):  # the traceback's last line is the exception
        return f"failed to start: {lines[-1].strip()}"
    return f"died: {lines[0].strip()}" if isinstance(e, _died()) else lines[0].strip()


class RayRolloutPool:
    """`Backend` (generate / logprobs / load_weights / save) over ``workers`` Ray actors."""

    #: The actor class (a test can substitute a subclass that misbehaves on purpose).
    worker_cls: type = _RolloutWorker

    def __init__(
        self,
        model: str,
        *,
        workers: int = 2,
        dtype: str = "float32",
        sampling_dtype: str | None = None,
        address: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 1,
        cpus_per_worker: float = 1,
        threads_per_worker: int = 1,
        seed: int = 0,
    ) -> None:
        import ray

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        for name, value in (("dtype", dtype), ("sampling_dtype", sampling_dtype)):
            if value is not None and value not in DTYPES:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(DTYPES)}")
        init_ray(address)
        self.model = str(model)
        self.timeout = timeout
        self.max_retries = max_retries
        self.replaced = 0
        self._config = (self.model, dtype, sampling_dtype, threads_per_worker, seed)
        self._actor_cls = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(self.worker_cls)
        self._rng = random.Random(seed)  # seeds of calls that give none
        self._weights: Any = None  # ObjectRef of the last load_weights
        self._next = 0  # round-robin slot for single-actor calls
        self._actors: list[Any] = [None] * workers
        self._pid_refs: list[Any] = [None] * workers  # each actor's pid() call, made as it was spawned
        for slot in range(workers):
            self._spawn(slot)
        try:
            self.worker_pids()  # fail here, clearly, if the model cannot be loaded
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ actors

    def _spawn(self, slot: int) -> None:
        actor = self._actor_cls.remote(*self._config, self._weights)
        self._actors[slot] = actor
        self._pid_refs[slot] = actor.pid.remote()  # answered once the actor is up

    def _replace(self, slot: int) -> None:
        kill_actors([self._actors[slot]])
        self._spawn(slot)
        self.replaced += 1

    def _check_open(self) -> None:
        if not self._actors:
            raise RuntimeError("this RayRolloutPool is closed")

    def _name(self, slot: int) -> str:
        """'rollout worker 1 (pid 1234)', or '(pid unknown)' for an actor that never came up."""
        import ray

        try:
            pid = ray.get(self._pid_refs[slot], timeout=0)
        except Exception:
            return f"rollout worker {slot} (pid unknown)"
        return f"rollout worker {slot} (pid {pid})"

    def worker_pids(self) -> list[int]:
        """The process id of every actor (waits for actors still starting, up to ``timeout``)."""
        import ray
        from ray.exceptions import GetTimeoutError

        pids = []
        deadline = time.monotonic() + self.timeout
        for slot, ref in enumerate(self._pid_refs):
            try:
                pids.append(ray.get(ref, timeout=max(0.0, deadline - time.monotonic())))
            except GetTimeoutError as e:
                raise WorkerFailed(f"rollout worker {slot} did not start within {self.timeout:g}s") from e
            except Exception as e:
                raise WorkerFailed(f"rollout worker {slot} {_cause(e)}") from e
        return pids

    # ------------------------------------------------------------------ generation

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, *, step: int | None = None
    ) -> list[Generation]:
        """``params.n`` completions of every prompt, prompt-major, ``prompt_index`` into ``prompts``.

        A call without ``params.seed`` gets one from the pool's own generator (seeded by ``seed``).
        ``step`` only labels errors.
        """
        import ray

        self._check_open()
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        prompts = list(prompts)
        if not prompts:
            return []
        seed = params.seed if params.seed is not None else self._rng.getrandbits(62)
        size = -(-len(prompts) // len(self._actors))
        starts = list(range(0, len(prompts), size))
        results: dict[int, list[Generation]] = {}  # chunk start -> its generations, taken once
        attempts = dict.fromkeys(starts, 0)
        queue, idle = deque(starts), deque(range(len(self._actors)))
        running: dict[Any, tuple[int, int, float]] = {}  # ref -> (chunk start, slot, dispatched)
        where = f"step {step}" if step is not None else "generation"

        def chunk_name(start: int) -> str:
            return f"{where}: chunk of prompts {start}..{min(start + size, len(prompts)) - 1}"

        while queue or running:
            while queue and idle:
                start, slot = queue.popleft(), idle.popleft()
                chunk_params = dataclasses.replace(params, seed=chunk_seed(seed, start))
                ref = self._actors[slot].generate.remote(prompts[start : start + size], chunk_params)
                running[ref] = (start, slot, time.monotonic())
            oldest = min(t for _, _, t in running.values())
            wait_for = max(0.0, oldest + self.timeout - time.monotonic())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=wait_for)
            for ref in ready:
                start, slot, _ = running.pop(ref)
                what = chunk_name(start)
                try:
                    gens = ray.get(ref, timeout=self.timeout)
                except _died() as e:
                    name = self._name(slot)
                    self._replace(slot)
                    idle.append(slot)
                    attempts[start] += 1
                    if attempts[start] > self.max_retries:
                        raise WorkerFailed(
                            f"{what} failed on {attempts[start]} workers; last: {name} {_cause(e)}"
                        ) from e
                    queue.appendleft(start)
                    continue
                except Exception as e:  # the chunk itself raised: retrying would raise again
                    raise WorkerFailed(f"{what}: {self._name(slot)} {_cause(e)}") from e
                idle.append(slot)
                if start in results:
                    continue  # a late duplicate: the retry already counted
                expected = min(size, len(prompts) - start) * params.n
                if len(gens) != expected:
                    raise WorkerFailed(f"{what}: {self._name(slot)} returned {len(gens)} of {expected}")
                for g in gens:
                    g.prompt_index += start
                results[start] = gens
            now = time.monotonic()
            for start, slot, dispatched in running.values():
                if now - dispatched >= self.timeout:
                    name = self._name(slot)
                    self._replace(slot)  # stop the hung actor; the pool stays usable
                    raise WorkerFailed(f"{chunk_name(start)}: {name} gave no answer within {self.timeout:g}s")
        return [g for start in starts for g in results[start]]

    # ------------------------------------------------------------------ single-actor calls

    def _call_one(self, method: str, *args: Any) -> Any:
        """Run ``method`` on one actor (round robin); on another after a death, ``max_retries`` times."""
        import ray
        from ray.exceptions import GetTimeoutError

        self._check_open()
        for attempt in range(self.max_retries + 1):
            slot = self._next % len(self._actors)
            self._next += 1
            ref = getattr(self._actors[slot], method).remote(*args)
            try:
                return ray.get(ref, timeout=self.timeout)
            except GetTimeoutError as e:
                name = self._name(slot)
                self._replace(slot)
                raise WorkerFailed(f"{method}: {name} gave no answer within {self.timeout:g}s") from e
            except _died() as e:
                name = self._name(slot)
                self._replace(slot)
                if attempt == self.max_retries:
                    raise WorkerFailed(
                        f"{method} failed on {attempt + 1} workers; last: {name} {_cause(e)}"
                    ) from e
            except Exception as e:
                raise WorkerFailed(f"{method}: {self._name(slot)} {_cause(e)}") from e

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        """Per-token log-probabilities of each completion (temperature 1), like `HFBackend.logprobs`."""
        return self._call_one("logprobs", prompt_ids, completion_ids)

    def save(self, path: str) -> None:
        """Have one actor write the checkpoint (``path`` must be on a filesystem that actor sees)."""
        self._call_one("save", str(path))

    # ------------------------------------------------------------------ weights

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Load ``state_dict`` into every actor: one copy in the object store, which replacements load too."""
        import ray

        self._check_open()
        self._weights = ray.put(
            {k: v.detach().cpu() if hasattr(v, "detach") else v for k, v in state_dict.items()}
        )
        running = {self._actors[s].load_weights.remote(self._weights): s for s in range(len(self._actors))}
        deadline = time.monotonic() + self.timeout
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                names = [self._name(s) for s in running.values()]
                for s in running.values():
                    self._replace(s)  # the replacements load the new weights as they start
                raise WorkerFailed(
                    f"load_weights: {', '.join(names)} gave no answer within {self.timeout:g}s"
                )
            slot = running.pop(ready[0])
            try:
                ray.get(ready[0], timeout=self.timeout)
            except _died():
                self._replace(slot)  # the replacement loads the new weights as it starts
            except Exception as e:
                raise WorkerFailed(f"load_weights: {self._name(slot)} {_cause(e)}") from e

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Kill every actor."""
        kill_actors(self._actors)
        self._actors, self._pid_refs = [], []

    def __enter__(self) -> RayRolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
