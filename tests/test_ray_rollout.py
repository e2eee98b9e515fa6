"""Rollouts on a local 2-CPU Ray cluster with a tiny model: order, seeds, weights, dying and hung workers."""

import os
import sys
import time

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")
from ray import cloudpickle  # noqa: E402
from tiny_model import make_tiny_model  # noqa: E402

from rlvr.models import SamplingParams, load_backend  # noqa: E402
from rlvr.models.ray_rollout import RayRolloutPool, WorkerFailed, _RolloutWorker  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])

PROMPTS = [
    "What is 2+3?",
    [{"role": "user", "content": "Solve for x: 3x + 4 = 19."}],
    "def add(a, b):",
    [{"role": "user", "content": "Answer: 42"}],
    "Let me think step by step.",
]  # 5 prompts on 2 workers: chunks of 3 and 2


class FaultyWorker(_RolloutWorker):
    """A rollout actor that can be told to die or hang on its next chunk (its replacement is healthy)."""

    fault: str | None = None

    def arm(self, fault: str) -> None:
        self.fault = fault

    def generate(self, prompts, params):
        fault, self.fault = self.fault, None
        if fault == "die":
            os._exit(1)
        if fault == "hang":
            time.sleep(3600)
        return super().generate(prompts, params)


class FaultyPool(RayRolloutPool):
    worker_cls = FaultyWorker


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def local(model_path):
    return load_backend(model_path)


@pytest.fixture(scope="module")
def perturbed(model_path):
    """A local backend with perturbed weights, and those weights."""
    backend = load_backend(model_path)
    gen = torch.Generator().manual_seed(1)
    weights = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in backend.state_dict().items()}
    backend.load_weights(weights)
    return backend, backend.state_dict()  # tied embeddings: the head's noise was overwritten


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(ray_cluster, model_path):
    with FaultyPool(str(model_path), workers=2, cpus_per_worker=0.5, timeout=60, seed=0) as p:
        yield p


def check_shape(gens, n):
    assert len(gens) == len(PROMPTS) * n
    assert [g.prompt_index for g in gens] == [i for i in range(len(PROMPTS)) for _ in range(n)]


def test_generate_is_prompt_major_seeded_and_scored_like_the_local_model(pool, local):
    pool.load_weights(local.state_dict())
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=123)
    gens = pool.generate(PROMPTS, params, step=0)
    check_shape(gens, 3)
    for g in gens:
        assert g.prompt_ids == local.encode_prompt(PROMPTS[g.prompt_index])
        assert len(g.logprobs) == len(g.completion_ids) > 0
    again = pool.generate(PROMPTS, params, step=1)
    assert [(g.completion_ids, g.text) for g in again] == [(g.completion_ids, g.text) for g in gens]
    other = pool.generate(PROMPTS, SamplingParams(n=3, max_new_tokens=12, seed=124))
    assert [g.completion_ids for g in other] != [g.completion_ids for g in gens]
    # The sampling log-probabilities (temperature 1, no top-p) are the model's, as scored locally.
    expected = local.logprobs([g.prompt_ids for g in gens], [g.completion_ids for g in gens])
    for g, want in zip(gens, expected, strict=True):
        assert torch.allclose(torch.tensor(g.logprobs), torch.tensor(want), atol=1e-4)
    scored = pool.logprobs([g.prompt_ids for g in gens[:4]], [g.completion_ids for g in gens[:4]])
    for got, want in zip(scored, expected[:4], strict=True):
        assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-4)
    assert pool.generate([], params) == []


def test_load_weights_reaches_every_worker_and_save(pool, local, perturbed, tmp_path):
    backend, weights = perturbed
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=10)
    before = pool.generate(PROMPTS, greedy)
    pool.load_weights(weights)
    after = pool.generate(PROMPTS, greedy, step=2)
    check_shape(after, 1)
    assert [g.completion_ids for g in after] == [g.completion_ids for g in backend.generate(PROMPTS, greedy)]
    assert [g.completion_ids for g in after] != [g.completion_ids for g in before]
    ids = ([g.prompt_ids for g in after], [g.completion_ids for g in after])
    for actor in pool._actors:  # each worker scores with the new weights
        got = ray.get(actor.logprobs.remote(*ids), timeout=30)
        for row, want in zip(got, backend.logprobs(*ids), strict=True):
            assert torch.allclose(torch.tensor(row), torch.tensor(want), atol=1e-4)
    pool.save(str(tmp_path / "ckpt"))
    saved = load_backend(tmp_path / "ckpt").state_dict()
    assert all(torch.equal(saved[k], weights[k]) for k in saved)


def test_load_weights_replaces_a_dead_worker(pool, local):
    pids, replaced = pool.worker_pids(), pool.replaced
    ray.kill(pool._actors[1], no_restart=True)
    pool.load_weights(local.state_dict())
    new_pids = pool.worker_pids()
    assert pool.replaced == replaced + 1 and new_pids[0] == pids[0] and new_pids[1] != pids[1]
    ids = ([local.encode_prompt(PROMPTS[0])], [[5, 6, 7, 8]])
    got = ray.get(pool._actors[1].logprobs.remote(*ids), timeout=30)
    assert torch.allclose(torch.tensor(got[0]), torch.tensor(local.logprobs(*ids)[0]), atol=1e-4)


def test_worker_dying_mid_generate_is_replaced_with_current_weights(pool, perturbed):
    backend, weights = perturbed
    pool.load_weights(weights)
    greedy = SamplingParams(n=2, temperature=0.0, max_new_tokens=10)
    pids, replaced = pool.worker_pids(), pool.replaced
    ray.get(pool._actors[0].arm.remote("die"), timeout=30)  # dies on its chunk of the next call
    gens = pool.generate(PROMPTS, greedy, step=3)
    check_shape(gens, 2)  # every rollout exactly once
    assert [g.completion_ids for g in gens] == [g.completion_ids for g in backend.generate(PROMPTS, greedy)]
    new_pids = pool.worker_pids()
    assert pool.replaced == replaced + 1 and new_pids[0] != pids[0] and new_pids[1] == pids[1]
    # The replacement started with the perturbed weights, not the checkpoint's.
    ids = ([g.prompt_ids for g in gens], [g.completion_ids for g in gens])
    got = ray.get(pool._actors[0].logprobs.remote(*ids), timeout=30)
    for row, want in zip(got, backend.logprobs(*ids), strict=True):
        assert torch.allclose(torch.tensor(row), torch.tensor(want), atol=1e-4)


def test_bf16_sampling_copy_follows_loaded_weights(ray_cluster, model_path, perturbed):
    backend, weights = perturbed
    with RayRolloutPool(str(model_path), workers=1, sampling_dtype="bfloat16", cpus_per_worker=0.5) as bf16:
        bf16.load_weights(weights)
        gens = bf16.generate(PROMPTS, SamplingParams(n=1, temperature=0.0, max_new_tokens=8))
        ids = ([g.prompt_ids for g in gens], [g.completion_ids for g in gens])
        exact = backend.logprobs(*ids)
        for got, want in zip(bf16.logprobs(*ids), exact, strict=True):  # scoring stays fp32
            assert got == pytest.approx(want, abs=1e-4)
        diff = max(
            abs(a - b)
            for g, want in zip(gens, exact, strict=True)
            for a, b in zip(g.logprobs, want, strict=True)
        )
        assert 0 < diff < 0.1  # sampled from a bf16 copy of the perturbed weights


def test_unloadable_model_fails_at_start(ray_cluster, tmp_path):
    with pytest.raises(
        WorkerFailed, match=r"rollout worker 0 failed to start: FileNotFoundError: model folder not found"
    ):
        RayRolloutPool(str(tmp_path / "missing"), workers=1, cpus_per_worker=0.5, timeout=60)


def test_hung_worker_raises_within_the_deadline_naming_worker_and_step(pool):
    pid, replaced = pool.worker_pids()[1], pool.replaced
    params = SamplingParams(n=1, max_new_tokens=4, seed=0)
    ray.get(pool._actors[1].arm.remote("hang"), timeout=30)
    pool.timeout = 2.0
    try:
        t0 = time.monotonic()
        with pytest.raises(WorkerFailed, match=rf"step 5: .*rollout worker 1 \(pid {pid}\) gave no answer"):
            pool.generate(PROMPTS, params, step=5)
        assert time.monotonic() - t0 < 2.0 + 5
    finally:
        pool.timeout = 60.0
    assert pool.replaced == replaced + 1  # the hung actor was killed and a fresh one is starting


def test_trainer_samples_on_ray_workers_and_pushes_weights(ray_cluster, model_path, tmp_path, monkeypatch):
    """`rollout.engine=ray`, `train.verify_on=ray`: the same recipe trains with its rollouts sampled and
    graded on Ray actors. The rollout actors get the weights after every update: step 2's samples
    score exactly like the updated policy's own (truncated-IS weight 1), though the update moved the
    weights."""
    from tiny_model import parity_run_config

    from rlvr.verify.ray_pool import RayVerifierPool

    graded_steps = []
    original = RayVerifierPool.verify_samples

    def spy(self, samples, completions, step=None):
        graded_steps.append(step)
        return original(self, samples, completions, step=step)

    monkeypatch.setattr(RayVerifierPool, "verify_samples", spy)

    from rlvr.train.logging import read_log
    from rlvr.train.loop import train

    cfg = parity_run_config(
        model_path,
        {"engine": "ray", "workers": 2, "cpus_per_worker": 0.25, "timeout": 120},
        verify_on="ray",  # and graded on a Ray verifier actor
    )
    result = train(cfg, tmp_path / "run")
    log = read_log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2] and all(r["rollouts/generated"] == 4 for r in log)
    assert all(r["tis_weight"] == pytest.approx(1.0, abs=1e-3) for r in log)
    assert graded_steps == [0, 1]
    start = load_backend(model_path).state_dict()
    assert any(not torch.allclose(v, result.backend.state_dict()[k]) for k, v in start.items())
