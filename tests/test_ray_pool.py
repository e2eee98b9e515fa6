"""Verification on a local 2-CPU Ray cluster: order, dying workers, hung workers."""

import sys
import threading
import time

import pytest

ray = pytest.importorskip("ray")
from ray import cloudpickle  # noqa: E402

from rlvr.records import Sample, Verdict  # noqa: E402
from rlvr.verify import _REGISTRY, register_verifier  # noqa: E402
from rlvr.verify.ray_pool import RayVerifierPool, WorkerFailed  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def parity_verifier(items, **options):
    """Correct when the completion is the gold number doubled; sleeps `delay` per item."""
    out = []
    for it in items:
        time.sleep(float(it.get("delay", 0)))
        if it.get("hang"):
            time.sleep(3600)
        ok = it["completion"] == str(2 * int(it["answer"]))
        out.append(Verdict(float(ok), "correct" if ok else "incorrect", extracted=it["completion"]))
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_verifier("parity_test", parity_verifier)
    yield
    _REGISTRY.pop("parity_test", None)
    ray.shutdown()


def make(n, **gold):
    samples = [
        Sample(id=str(i), prompt="p", verifier="parity_test", gold={"answer": str(i), **gold})
        for i in range(n)
    ]
    completions = [str(2 * i) if i % 3 else "wrong" for i in range(n)]
    return samples, completions


def test_pool_grades_in_order(ray_cluster):
    pool = RayVerifierPool(2, chunk_size=4, num_cpus_per_worker=0.5)
    try:
        samples, completions = make(23)
        verdicts = pool.verify_samples(samples, completions, step=0)
        assert [v.correct for v in verdicts] == [i % 3 != 0 for i in range(23)]
        assert [v.extracted for v in verdicts] == completions
        assert pool.replaced == 0
    finally:
        pool.shutdown()


def test_worker_killed_mid_step_is_replaced_and_nothing_lost_or_doubled(ray_cluster):
    pool = RayVerifierPool(2, chunk_size=2, num_cpus_per_worker=0.5)
    try:
        samples, completions = make(12, delay=0.25)
        victim = pool.workers[0]
        killer = threading.Timer(0.4, lambda: ray.kill(victim, no_restart=True))
        killer.start()
        t0 = time.monotonic()
        verdicts = pool.verify_samples(samples, completions, step=3)
        killer.join()
        assert pool.replaced >= 1
        assert len(verdicts) == 12 and all(isinstance(v, Verdict) for v in verdicts)
        assert [v.correct for v in verdicts] == [i % 3 != 0 for i in range(12)]
        assert time.monotonic() - t0 < 60
    finally:
        pool.shutdown()


def test_hung_worker_times_out_with_a_clear_error(ray_cluster):
    pool = RayVerifierPool(1, chunk_size=1, call_timeout=1.5, max_retries=1, num_cpus_per_worker=0.5)
    try:
        samples, completions = make(1, hang=True)
        t0 = time.monotonic()
        with pytest.raises(WorkerFailed, match=r"step 7: chunk 0 .* verifier worker 0: no answer within"):
            pool.verify_samples(samples, completions, step=7)
        assert time.monotonic() - t0 < 30
        assert pool.replaced == 2
    finally:
        pool.shutdown()


def test_pool_with_the_math_verifier(ray_cluster):
    pool = RayVerifierPool(2, chunk_size=3, num_cpus_per_worker=0.5)
    try:
        samples = [Sample(id=str(i), prompt="p", verifier="math", gold=str(i + 1)) for i in range(6)]
        completions = [f"so \\boxed{{{i + 1 if i % 2 else i + 7}}}" for i in range(6)]
        verdicts = pool.verify_samples(samples, completions, step=1)
        assert [v.status for v in verdicts] == ["incorrect", "correct"] * 3
    finally:
        pool.shutdown()
