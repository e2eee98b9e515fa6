"""The embedded SmolLM2-135M-Instruct end to end: GGUF conversion, fast reload, chat template, an answer."""

from __future__ import annotations

import json
import time

import pytest
import torch

from rlvr.models import SamplingParams, embedded, load_backend

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh rlvr cache, so the test exercises the conversion itself."""
    try:
        embedded.smollm2_gguf()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("rlvr-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("RLVR_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def converted(cache):
    folder = embedded.smollm2_path()
    return folder


def test_conversion_is_complete(converted, cache):
    assert converted == cache / "models" / embedded.SMOLLM2_NAME
    assert embedded.is_converted(converted)
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_second_load_is_fast_and_has_chat_template(converted):
    start = time.perf_counter()
    backend = load_backend("default", seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 15, f"loading the converted model took {elapsed:.1f}s"  # ~1 s on an idle machine
    assert backend.name == "smollm2-135m-instruct"
    assert sum(p.numel() for p in backend.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    text = backend.apply_chat_template([{"role": "user", "content": "hi"}])
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert backend.tokenizer.eos_token == "<|im_end|>"
    assert backend.tokenizer.convert_tokens_to_ids("<|im_end|>") in backend.eos_token_ids


def test_answers_simple_arithmetic(converted):
    backend = load_backend("default")
    question = [{"role": "user", "content": "What is 2+3?"}]
    g = backend.generate([question], SamplingParams(temperature=0.0, max_new_tokens=48))[0]
    assert "5" in g.text, g.text
    assert not g.truncated and g.completion_ids[-1] in backend.eos_token_ids


def test_bfloat16_scores_close_to_float32(converted):
    fp32 = load_backend("default")
    bf16 = load_backend("default", dtype="bfloat16")
    question = [{"role": "user", "content": "What is the capital of France?"}]
    g = fp32.generate([question], SamplingParams(temperature=0.0, max_new_tokens=24))[0]
    lp32, mask, _ = fp32.sequence_logprobs([g.prompt_ids], [g.completion_ids])
    lp16, _, _ = bf16.sequence_logprobs([g.prompt_ids], [g.completion_ids])
    torch.testing.assert_close(lp32[0], torch.tensor(g.logprobs), atol=1e-3, rtol=1e-3)
    gap = ((lp32 - lp16).abs() * mask).sum() / mask.sum()
    assert gap < 0.2, f"mean |logp fp32 - logp bf16| = {gap:.3f}"
