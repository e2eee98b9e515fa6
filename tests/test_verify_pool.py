import os
import time

import pytest

from rlvr.verify.pool import ErrorMarker, TimeoutMarker, WorkerPool, run_with_timeouts


def _sleep_or_square(x):
    if x < 0:
        time.sleep(60)
    return x * x


def _fail_on_three(x):
    if x == 3:
        raise ValueError("three is not allowed")
    if x == 4:
        os._exit(7)  # the worker dies without a word
    return x


def _pid(_):
    return os.getpid()


def _is_mp_helper(pid: int) -> bool:
    """multiprocessing's forkserver / resource tracker (long-lived by design, not pool workers)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read()
    except OSError:
        return False
    return b"forkserver" in cmd or b"resource_tracker" in cmd


def _children() -> set[int]:
    """Live or zombie child processes of this test process (Linux /proc)."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and not _is_mp_helper(int(entry)):
                found.add(int(entry))
    return found


def test_order_preserved_and_values():
    items = list(range(200))
    assert run_with_timeouts(_sleep_or_square, items, workers=2, timeout=5) == [x * x for x in items]


def test_sleeping_task_times_out_others_complete_no_zombies():
    before = _children()
    items = [1, 2, -1, 3, 4, 5, 6, -2, 7]
    t0 = time.monotonic()
    out = run_with_timeouts(_sleep_or_square, items, workers=2, timeout=0.5)
    elapsed = time.monotonic() - t0
    assert out[2] == TimeoutMarker(2, 0.5) and out[7] == TimeoutMarker(7, 0.5)
    assert [out[i] for i in (0, 1, 3, 4, 5, 6, 8)] == [1, 4, 9, 16, 25, 36, 49]
    assert elapsed < 3.0, f"two 0.5 s timeouts took {elapsed:.1f}s"
    assert _children() <= before, "worker processes were left behind"


def test_errors_and_dead_workers_become_markers():
    with WorkerPool(_fail_on_three, workers=2, timeout=5) as pool:
        out = pool.map([1, 2, 3, 4, 5])
        assert out[:2] == [1, 2] and out[4] == 5
        assert isinstance(out[2], ErrorMarker) and "three is not allowed" in out[2].message
        assert isinstance(out[3], ErrorMarker) and "exit code 7" in out[3].message
        assert pool.restarts == 1
        assert pool.map([5, 6]) == [5, 6]  # the replaced worker serves the next call


def test_workers_are_reused_not_spawned_per_item():
    with WorkerPool(_pid, workers=2, timeout=5) as pool:
        pids = set(pool.map(range(100)))
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_timeout_clock_starts_when_worker_reaches_task():
    # Six 0.2 s tasks on one worker take 1.2 s in all, yet none may be charged for the queue ahead of it.
    out = run_with_timeouts(time.sleep, [0.2] * 6, workers=1, timeout=0.6, chunk_size=6)
    assert out == [None] * 6


def test_memory_limit_turns_blowup_into_error():
    out = run_with_timeouts(bytearray, [10, 4 * 1024**3], workers=1, timeout=10, memory_mb=256)
    assert out[0] == bytearray(10)
    assert isinstance(out[1], ErrorMarker) and "MemoryError" in out[1].message


def test_forkserver_start_method():
    assert run_with_timeouts(abs, [-1, 2, -3], workers=2, timeout=10, start_method="forkserver") == [1, 2, 3]


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        WorkerPool(_pid, workers=0)
    with pytest.raises(ValueError, match="timeout"):
        WorkerPool(_pid, timeout=0)
    assert run_with_timeouts(_pid, [], workers=2) == []


def _double(x):
    return x * 2


def test_large_items_and_results_do_not_deadlock():
    # 30 kB items and 60 kB results, 8 per chunk: more than a socket buffer holds in either direction.
    items = [str(i % 10) * 30_000 for i in range(60)]
    out = run_with_timeouts(_double, items, workers=2, timeout=20, chunk_size=8)
    assert out == [x * 2 for x in items]


def test_pool_recovers_from_an_interrupted_call_and_an_idle_worker_death():
    import signal

    with WorkerPool(_sleep_or_square, workers=2, timeout=5, chunk_size=1) as pool:
        with pytest.raises(Exception, match="pickle"):
            pool.map([1, 2, 3, lambda: 0, 5])  # the lambda cannot be sent: the call fails midway
        assert pool.map([4, 5, 6]) == [16, 25, 36]  # no stale results from the failed call
        os.kill(pool._workers[0].proc.pid, signal.SIGKILL)
        pool._workers[0].proc.join()
        assert pool.map([7, 8, 9]) == [49, 64, 81]


def _slow_start():
    time.sleep(0.6)


def test_initializer_time_is_not_charged_to_tasks():
    out = run_with_timeouts(_sleep_or_square, [1, 2, 3], workers=1, timeout=0.3, initializer=_slow_start)
    assert out == [1, 4, 9]
    stuck = run_with_timeouts(
        _sleep_or_square, [1, 2], workers=1, timeout=0.3, initializer=_slow_start, startup_timeout=0.2
    )
    assert isinstance(stuck[0], ErrorMarker) and "not ready" in stuck[0].message


def test_shared_pool_reuses_rebuilds_and_is_not_inherited():
    from rlvr.verify.pool import SharedPool

    shared = SharedPool()
    try:
        a = shared.get((1,), lambda: WorkerPool(abs, workers=1, timeout=5))
        assert shared.get((1,), lambda: WorkerPool(abs, workers=1, timeout=5)) is a
        b = shared.get((2,), lambda: WorkerPool(abs, workers=2, timeout=5))
        assert b is not a and not a._workers and b.map([-3]) == [3]
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # a forked child sees no pool of its parent's
            os.write(write, b"1" if shared.current is None else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
    finally:
        shared.close()
    assert shared.current is None
