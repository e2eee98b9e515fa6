"""Multi-process training under torchrun on CPU (gloo, 2 processes): DDP and FSDP2.

The update on a batch split across the processes must equal one process's update on the whole batch;
a recipe must train, checkpoint and resume under torchrun exactly as it does in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import make_tiny_model

from rlvr.train.checkpoint import latest_checkpoint
from rlvr.train.logging import read_log

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_split_update_equals_single_process(strategy, tiny, tmp_path):
    out = tmp_path / "result.json"
    torchrun(str(HERE / "dist_check.py"), strategy, str(tiny), str(out))
    results = json.loads(out.read_text())
    assert set(results) == {"one_pass_accumulated", "plain", "two_epochs", "clipped"}
    for name, r in results.items():
        assert r["world"] == 2
        assert r["max_weight_change"] > 0.1, name  # the update moved the weights a lot...
        assert r["max_weight_diff"] < 1e-5, name  # ...and exactly as one process would have
        assert r["grad_norm"] == pytest.approx(r["grad_norm_single"], rel=1e-5), name
        assert r["loss"] == pytest.approx(r["loss_single"], rel=1e-5, abs=1e-7), name
    assert results["two_epochs"]["optimizer_steps"] == 2
    assert results["clipped"]["grad_norm"] > 0.5  # clipping was active, and the weights still agree


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_recipe_trains_checkpoints_and_resumes_under_torchrun(strategy, tiny, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""
model: {{name: "{tiny}"}}
data: {{task: addition, n: 16}}
sampling: {{group_size: 2, max_new_tokens: 4}}
algo: {{recipe: grpo}}
train: {{steps: 2, lr: 1.0e-3, prompts_per_step: 2, save_every: 1, verify_workers: 1, parallel: {strategy}}}
log: {{tensorboard: false, progress: false}}
"""
    )
    run = tmp_path / "run"
    torchrun("-m", "rlvr.cli", "train", str(recipe), "--out", str(run))
    log = read_log(run)
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["rollouts/generated"] == 4 for r in log)  # both processes' rollouts are counted
    ckpt = latest_checkpoint(run)
    assert ckpt.step == 2 and len(ckpt.state["data_ranks"]) == 2
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["extra"]["processes"] == {"world": 2, "parallel": strategy}

    torchrun("-m", "rlvr.cli", "train", str(recipe), "--out", str(run), "--resume", "train.steps=3")
    assert [r["step"] for r in read_log(run)] == [1, 2, 3]
    assert latest_checkpoint(run).step == 3
    from rlvr.models import load_backend

    load_backend(str(latest_checkpoint(run).model_dir))  # the gathered weights load as one model
