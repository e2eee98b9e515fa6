"""A small process pool with a hard wall-clock limit per task.

Verifiers run untrusted or explosive work (a CAS asked for ``9^{9^{9^9}}``, a test suite that loops
forever). Signals and threads cannot stop a C extension that never returns, so every task runs in a
worker process; when a task overruns its limit the worker is killed (SIGKILL), the task gets a
:class:`TimeoutMarker`, and a fresh worker takes its place. The other tasks carry on.

Workers are long-lived: tasks are sent to them in small chunks over a pipe (no process per item), and
results come back in input order from :meth:`WorkerPool.map`. Each task's clock starts when its worker
reaches it, not when its chunk was sent, so a queue behind a slow task is never charged for it.

    results = run_with_timeouts(grade, items, workers=2, timeout=5.0)
    # -> [result | TimeoutMarker | ErrorMarker, ...] in the order of items

``fn`` must be a module-level function when the pool cannot fork (it is pickled then). The default start
method is ``fork`` while the parent has a single thread, else ``forkserver`` (forking a multi-threaded
process can deadlock the child).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = ["ErrorMarker", "SharedPool", "TimeoutMarker", "WorkerPool", "run_with_timeouts"]

_SAFE_SEND_BYTES = 16 * 1024  # far below a Unix socket's buffer


@dataclass(frozen=True)
class TimeoutMarker:
    """The task at ``index`` ran past ``timeout`` seconds; its worker was killed."""

    index: int
    timeout: float


@dataclass(frozen=True)
class ErrorMarker:
    """The task at ``index`` raised (``message`` names the exception) or its worker died."""

    index: int
    message: str


def _limit_memory(extra_mb: int) -> None:
    """Cap the worker's address space at its current size plus ``extra_mb`` (MemoryError beyond)."""
    import resource

    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as fh:
        current = int(fh.read().split()[0]) * page
    limit = current + extra_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


_READY = -1  # the index of the message a worker sends once its initializer has run


def _worker_loop(
    conn: Connection, fn: Callable[[Any], Any], memory_mb: int | None, initializer: Callable[[], Any] | None
) -> None:
    """Set up, say ready, then receive chunks of ``(index, item)`` and send back
    ``(index, ok, result_or_message)`` one task at a time."""
    if memory_mb is not None and os.path.exists("/proc/self/statm"):
        _limit_memory(memory_mb)
    if initializer is not None:
        initializer()
    conn.send((_READY, True, None))
    while True:
        try:
            chunk = pickle.loads(conn.recv_bytes())
        except (EOFError, KeyboardInterrupt):
            return
        if chunk is None:
            return
        for index, item in chunk:
            try:
                reply = (index, True, fn(item))
            except MemoryError:
                reply = (index, False, "MemoryError: worker memory limit exceeded")
            except Exception as e:  # the task's failure, reported to the caller
                reply = (index, False, f"{type(e).__name__}: {e}"[:500])
            try:
                conn.send(reply)
            except Exception as e:  # e.g. an unpicklable result
                conn.send((index, False, f"cannot send result: {type(e).__name__}: {e}"[:500]))


class _Worker:
    def __init__(self, ctx, fn: Callable[[Any], Any], memory_mb: int | None, initializer) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_loop, args=(child, fn, memory_mb, initializer), daemon=True)
        self.proc.start()
        child.close()
        self.spawned = time.monotonic()
        self.ready = False  # set when the worker reports that its start-up is done
        self.inflight: deque[int] = deque()  # task indices sent, in the order the worker runs them
        self.started = 0.0  # when the worker reached inflight[0] (meaningful once ready)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()

    def stop(self, grace: float = 1.0) -> None:
        try:
            self.conn.send_bytes(pickle.dumps(None))
        except OSError:
            pass
        self.proc.join(grace)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _default_start_method() -> str:
    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class WorkerPool:
    """``workers`` long-lived processes running ``fn``; each task is killed after ``timeout`` seconds.

    Use as a context manager (or call :meth:`close`); one pool can serve many :meth:`map` calls.
    ``memory_mb`` caps each worker's extra address space (a task over it gets an ErrorMarker).
    ``initializer`` runs once in each new worker (imports, caches); its time is not charged to tasks,
    but a worker that is not ready within ``startup_timeout`` seconds fails its first task.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int = 2,
        timeout: float = 5.0,
        *,
        chunk_size: int | None = None,
        memory_mb: int | None = None,
        initializer: Callable[[], Any] | None = None,
        startup_timeout: float = 60.0,
        start_method: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.fn, self.n_workers, self.timeout = fn, workers, float(timeout)
        self.chunk_size, self.memory_mb = chunk_size, memory_mb
        self.initializer, self.startup_timeout = initializer, startup_timeout
        self._ctx = mp.get_context(start_method or _default_start_method())
        self._workers = [self._spawn() for _ in range(workers)]
        self.restarts = 0  # workers replaced after a timeout or a crash

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.fn, self.memory_mb, self.initializer)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers:
            w.stop()
        self._workers = []

    def _deadline(self, w: _Worker) -> float:
        """When ``w``'s current task runs out of time (a worker still starting gets startup_timeout)."""
        return w.started + self.timeout if w.ready else w.spawned + self.startup_timeout

    def _dispatch(self, items: list[Any], pending: deque[int], chunk: int, depth: int) -> None:
        """Top up every worker's queue to ``depth`` tasks, ``chunk`` tasks per message."""
        now = time.monotonic()
        for slot, w in enumerate(self._workers):
            if not pending or len(w.inflight) >= depth:
                continue
            if not w.inflight and not w.proc.is_alive():  # died while idle (e.g. killed from outside)
                w.kill()
                w = self._workers[slot] = self._spawn()
                self.restarts += 1
            batch = [pending.popleft() for _ in range(min(chunk, len(pending), depth - len(w.inflight)))]
            data = pickle.dumps([(i, items[i]) for i in batch])
            if w.inflight and len(data) > _SAFE_SEND_BYTES:
                # A busy worker may itself be blocked sending results; only a message that fits in the
                # socket buffer may go to it, or both ends could wait on each other.
                pending.extendleft(reversed(batch))
                continue
            try:
                w.conn.send_bytes(data)
            except OSError:
                # The worker died since the last look (e.g. its current task exited the process): keep
                # the batch for later; the main loop sees the death through the worker's sentinel.
                pending.extendleft(reversed(batch))
                continue
            if not w.inflight:
                w.started = now
            w.inflight.extend(batch)

    def map(self, items: Sequence[Any] | Iterable[Any]) -> list[Any]:
        """``[fn(item) | TimeoutMarker | ErrorMarker]`` in input order."""
        if not self._workers:
            raise RuntimeError("the pool is closed")
        items = list(items)
        n = len(items)
        results: list[Any] = [None] * n
        done = [False] * n
        remaining = n
        pending: deque[int] = deque(range(n))
        # Small chunks keep dispatch cheap while leaving work to share between workers at the end.
        chunk = self.chunk_size or max(1, min(16, n // (self.n_workers * 8)))
        depth = 2 * chunk  # tasks queued per worker

        def finish(index: int, value: Any) -> None:
            nonlocal remaining
            if not done[index]:
                results[index], done[index] = value, True
                remaining -= 1

        def retire(slot: int, w: _Worker, marker: Any) -> None:
            """Kill ``w``, give its current task ``marker``, re-queue the rest, start a replacement."""
            w.kill()
            finish(w.inflight.popleft(), marker)
            pending.extendleft(reversed(w.inflight))
            self._workers[slot] = self._spawn()
            self.restarts += 1

        try:
            while remaining:
                self._dispatch(items, pending, chunk, depth)
                busy = [w for w in self._workers if w.inflight]
                if not busy:  # every send failed on dead workers: dispatch again (it replaces them)
                    continue
                deadline = min(self._deadline(w) for w in busy)
                ready = wait(
                    [w.conn for w in busy] + [w.proc.sentinel for w in busy],
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                now = time.monotonic()
                for slot, w in enumerate(self._workers):
                    if not w.inflight:
                        continue
                    if w.conn in ready or w.proc.sentinel in ready:
                        try:
                            while w.inflight and w.conn.poll():
                                index, ok, value = w.conn.recv()
                                if index == _READY:
                                    w.ready, w.started = True, now
                                    continue
                                finish(index, value if ok else ErrorMarker(index, value))
                                w.inflight.popleft()
                                w.started = now
                        except (EOFError, OSError):
                            pass
                        if w.inflight and not w.proc.is_alive():
                            code = w.proc.exitcode
                            retire(slot, w, ErrorMarker(w.inflight[0], f"worker died (exit code {code})"))
                            continue
                    if w.inflight and now >= self._deadline(w):
                        if w.ready:
                            retire(slot, w, TimeoutMarker(w.inflight[0], self.timeout))
                        else:
                            message = f"worker not ready after {self.startup_timeout:g}s"
                            retire(slot, w, ErrorMarker(w.inflight[0], message))
        except BaseException:
            # Interrupted (Ctrl-C, an unpicklable item): workers still holding tasks of this call are
            # replaced so that a later call never receives their results.
            for slot, w in enumerate(self._workers):
                if w.inflight:
                    w.kill()
                    self._workers[slot] = self._spawn()
            raise
        return results


def run_with_timeouts(
    fn: Callable[[Any], Any],
    items: Sequence[Any] | Iterable[Any],
    workers: int = 2,
    timeout: float = 5.0,
    **pool_options: Any,
) -> list[Any]:
    """Map ``fn`` over ``items`` in a fresh :class:`WorkerPool`, then shut it down (no process is left)."""
    items = list(items)
    if not items:
        return []
    with WorkerPool(fn, workers=min(workers, len(items)), timeout=timeout, **pool_options) as pool:
        return pool.map(items)


class SharedPool:
    """One process-wide `WorkerPool` kept between calls (a training loop grades every step, and the
    workers keep their imports), rebuilt when its settings ``key`` change, never used by a forked child
    (it starts its own), closed at exit. Hold ``lock`` around :meth:`get` and the pool's use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pool: WorkerPool | None = None
        self._key: Any = None
        self._pid = 0
        atexit.register(self.close)

    @property
    def current(self) -> WorkerPool | None:
        """This process's pool, if it has one."""
        return self._pool if self._pid == os.getpid() else None

    def get(self, key: Any, make: Callable[[], WorkerPool]) -> WorkerPool:
        if self.current is None or self._key != key:
            self.close()
            self._pool, self._key, self._pid = make(), key, os.getpid()
        return self._pool

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
        self._pool, self._key = None, None
