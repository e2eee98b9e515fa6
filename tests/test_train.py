"""Training loop, config, checkpoints and manifest, on a tiny random model and a toy verifiable task.

The toy task's verifier grades a completion by its length in characters (mod 3: correct / incorrect /
unparsable), so a random model gets a mix of rewards in every group and every code path has signal.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from tiny_model import make_tiny_model
from typer.testing import CliRunner

from rlvr.data import register_task
from rlvr.records import Sample, Verdict
from rlvr.train.checkpoint import latest_checkpoint, list_checkpoints
from rlvr.train.config import ConfigError, build_config, load_config
from rlvr.train.logging import read_log
from rlvr.train.loop import PromptStream, RunExistsError, lr_lambda, train
from rlvr.verify import register_verifier

REPO = Path(__file__).resolve().parent.parent
TIME_KEYS = ("time/", "throughput/")


def _length_verifier(items, **_options):
    out = []
    for it in items:
        k = len(it["completion"]) % 3
        status = ("correct", "incorrect", "unparsable")[k]
        out.append(
            Verdict(reward=1.0 if k == 0 else 0.0, status=status, extracted=str(len(it["completion"])))
        )
    return out


def _toy_task(n=None, seed=0, split="train", **_kwargs):
    n = 16 if n is None else n
    return [
        Sample(
            id=f"toy-{split}-{i}", prompt=f"Say something about {i + seed}.", verifier="toy_length", gold=""
        )
        for i in range(n)
    ]


register_verifier("toy_length", _length_verifier)
register_task("toy_length", "toy task graded by completion length (tests only)", _toy_task)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def _cfg(model: Path, *overrides: str):
    raw = {
        "model": {"name": str(model)},
        "data": {"task": "toy_length", "n": 16},
        "sampling": {"group_size": 4, "max_new_tokens": 8},
        "algo": {"recipe": "grpo"},
        "train": {"steps": 1, "lr": 1e-3, "prompts_per_step": 2, "verify_workers": 1},
        "log": {"tensorboard": False, "progress": False},
    }
    from rlvr.train.config import apply_overrides

    return build_config(apply_overrides(raw, list(overrides)))


def _weights(backend) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in backend.model.state_dict().items()}


# ------------------------------------------------------------------------------------------ config


def test_recipes_load_and_overrides_apply():
    cfg = load_config(REPO / "recipes/grpo_addition.yaml", ["train.lr=1e-6", "algo.clip_high=0.28"])
    assert cfg.train.lr == 1e-6 and cfg.algo.clip_high == 0.28 and cfg.algo.recipe == "grpo"
    dapo = load_config(REPO / "recipes/dapo_addition.yaml")
    assert dapo.algo.dynamic_sampling and dapo.algo.clip_high == 0.28 and dapo.algo.loss_agg == "token_mean"
    # a preset chosen by override, with an explicit key still winning over the preset
    cfg = load_config(REPO / "recipes/grpo_addition.yaml", ["algo.recipe=dapo", "algo.clip_high=0.3"])
    assert cfg.algo.dynamic_sampling and cfg.algo.clip_high == 0.3
    assert load_config(REPO / "recipes/rft_addition.yaml").train.objective == "rft"
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        if path.name != "demo.yaml":
            load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "train.lrr: unknown key"),
        ("algo.clip_hgh=0.3", "algo.clip_hgh: unknown key"),
        ("train.steps=many", "train.steps"),
        ("train.minibatch_size=5", "does not divide the 32 rollouts"),
        ("train.micro_batch_size=3", "micro_batch_size=3 does not divide"),
        ("algo.recipe=ppo", "unknown algorithm recipe"),
        ("sampling.group_size=1", "group_size must be at least 2"),
        ("nonsense", "section.key=value"),
    ],
)
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(REPO / "recipes/grpo_addition.yaml", [override])


def test_bad_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: 3\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(bad)


def test_cli_dry_run_prints_batch_arithmetic():
    from rlvr.cli import app

    res = CliRunner().invoke(app, ["train", str(REPO / "recipes/grpo_addition.yaml"), "train.ppo_epochs=2",
                                   "train.minibatch_size=16", "--dry-run"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "4 prompts x 8 samples = 32 rollouts" in res.output
    assert "2 epoch(s) x 2 minibatch(es) of 16 rollouts = 4 optimizer step(s)" in res.output
    ray = CliRunner().invoke(app, ["train", str(REPO / "recipes/grpo_addition.yaml"), "rollout.engine=ray",
                                   "--ray-address", "auto", "--dry-run"])  # fmt: skip
    assert ray.exit_code == 0, ray.output
    assert (
        "ray_address: auto" in ray.output
        and "rollouts         ray (2 Ray workers), synchronous" in ray.output
    )
    bad = CliRunner().invoke(app, ["train", str(REPO / "recipes/grpo_addition.yaml"), "train.bogus=1"])
    assert bad.exit_code == 2 and "train.bogus: unknown key" in bad.output


def test_lr_schedules():
    cfg = _cfg(Path("m"), "train.steps=11", "optim.warmup_steps=1", "optim.schedule=cosine")
    f = lr_lambda(cfg)
    assert (
        f(0) == 1.0
        and f(1) == pytest.approx(1.0)
        and f(6) == pytest.approx(0.5)
        and f(11) == pytest.approx(0.0)
    )
    cfg = _cfg(
        Path("m"), "train.steps=10", "optim.warmup_steps=2", "optim.schedule=linear", "optim.min_lr_ratio=0.1"
    )
    f = lr_lambda(cfg)
    assert f(0) == 0.5 and f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.1)


def test_prompt_stream_is_seeded_and_resumable():
    a = PromptStream(5, seed=3)
    first = a.take(7)
    assert sorted(first[:5]) == list(range(5))  # an epoch is a permutation
    b = PromptStream(5, seed=3)
    b.load_state_dict(a.state_dict())
    assert a.take(6) == b.take(6)
    assert PromptStream(5, seed=3).take(7) == first
    assert PromptStream(5, seed=4).take(5) != first[:5]


# ------------------------------------------------------------------------------------------ steps

VARIANTS = {
    "grpo": [],
    "dr_grpo": ["algo.recipe=dr_grpo"],
    "dapo": ["algo.recipe=dapo"],
    "gspo": ["algo.recipe=gspo"],
    "rloo": ["algo.recipe=rloo"],
    "reinforce_pp": ["algo.recipe=reinforce_pp", "algo.group_baseline=true"],
    "kl_loss_k3": ["algo.kl_coef=0.1"],
    "kl_reward_k1": ["algo.kl_coef=0.1", "algo.kl_mode=reward", "algo.kl_estimator=k1"],
    "dynamic_sampling": ["algo.dynamic_sampling=true", "algo.max_resample_rounds=2"],
    "overlong_filter": ["algo.overlong_filter=true", "sampling.stop=[e, a, o]"],
    "soft_overlong": ["algo.soft_overlong_buffer=0.5"],
    "failures_mask": ["algo.failures=mask"],
    "format_reward": ["algo.format_reward_weight=0.5"],
    "ppo_epochs_minibatches": ["train.ppo_epochs=2", "train.minibatch_size=4"],
    "grad_accumulation": ["train.micro_batch_size=2"],
    "old_logp_sampling": ["train.ppo_epochs=2", "train.old_logp=sampling"],
    "tis": ["algo.tis_cap=2.0"],
    "cosine_warmup_clip": ["optim.schedule=cosine", "optim.warmup_steps=1", "optim.max_grad_norm=0.5"],
    "rft": ["train.objective=rft"],
    "bf16_mixed": ["model.autocast=bfloat16", "train.ppo_epochs=2"],
    "asynchronous": ["rollout.asynchronous=true", "algo.tis_cap=2.0"],
    "asynchronous_bf16": ["rollout.asynchronous=true", "algo.tis_cap=2.0", "model.autocast=bfloat16"],
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_option_runs_a_step(name, tiny_model, tmp_path):
    cfg = _cfg(tiny_model, "train.steps=2", *VARIANTS[name])
    result = train(cfg, tmp_path / name)
    log = read_log(tmp_path / name)
    assert [r["step"] for r in log] == [1, 2]
    for rec in log:
        assert math.isfinite(rec["loss"]) and math.isfinite(rec["grad_norm"])
        assert rec["rollouts/generated"] >= 8 and sum(rec["status"].values()) == rec["rollouts/generated"]
        assert 0 <= rec["accuracy"] <= 1 and rec["lr"] > 0
    assert sum(r["optimizer_steps"] for r in log) >= 1, "no update happened"
    if cfg.algo.kl_coef:
        assert all(r["kl"] is not None for r in log)
        if cfg.algo.kl_estimator == "k3":
            assert all(r["kl"] >= 0 for r in log)
    if name == "ppo_epochs_minibatches":
        assert log[0]["optimizer_steps"] == 4 and log[-1]["clip_frac"] >= 0
    if name == "bf16_mixed":  # sampled from a bf16 copy of the weights, refreshed after each update
        assert result.backend.sampling_dtype == torch.bfloat16 and result.backend.dtype == torch.float32
        for p, q in zip(result.backend.model.parameters(), result.backend._sampler.parameters(), strict=True):
            assert torch.equal(q, p.detach().to(torch.bfloat16))
    assert latest_checkpoint(tmp_path / name).step == 2
    fresh = make_tiny_model(tmp_path / "fresh", seed=0)
    from rlvr.models import load_backend

    base = _weights(load_backend(fresh))
    trained = _weights(result.backend)
    assert any(not torch.equal(base[k], trained[k]) for k in base), "the weights did not change"


def test_grad_accumulation_matches_full_batch(tiny_model, tmp_path):
    """Micro-batches of 2 give the same update as one pass over the minibatch (every aggregation).

    AdamW with a huge eps makes the step proportional to the gradient (lr * g / eps), so rounding-level
    gradient differences stay rounding-level instead of being blown up to +-lr by Adam's normalisation.
    """
    from rlvr.models import load_backend

    base = _weights(load_backend(tiny_model))
    for agg in ("token_mean", "seq_mean_token_mean", "constant"):
        common = (f"algo.loss_agg={agg}", "optim.eps=1.0", "train.lr=10.0", "optim.max_grad_norm=null")
        full = train(_cfg(tiny_model, *common), tmp_path / f"full-{agg}")
        acc = train(_cfg(tiny_model, *common, "train.micro_batch_size=2"), tmp_path / f"acc-{agg}")
        a, b = _weights(full.backend), _weights(acc.backend)
        assert any(not torch.allclose(a[k], base[k], atol=1e-3) for k in a), agg
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), agg
        la, lb = read_log(tmp_path / f"full-{agg}")[0], read_log(tmp_path / f"acc-{agg}")[0]
        assert la["loss"] == pytest.approx(lb["loss"], abs=1e-5)


# ------------------------------------------------------------------------------------------ resume


def _comparable(log):
    return [{k: v for k, v in r.items() if not k.startswith(TIME_KEYS)} for r in log]


@pytest.mark.parametrize("precision", ["model.autocast=none", "model.autocast=bfloat16"])
def test_resume_is_exact(tiny_model, tmp_path, precision):
    overrides = (
        "train.steps=4",
        "train.save_every=2",
        "optim.schedule=cosine",
        "algo.recipe=dapo",
        precision,
    )
    straight = train(_cfg(tiny_model, *overrides), tmp_path / "a")

    train(_cfg(tiny_model, *overrides), tmp_path / "b", stop_after=3)  # "killed" after step 3
    assert latest_checkpoint(tmp_path / "b").step == 2  # step 3 is lost, as promised
    assert len(read_log(tmp_path / "b")) == 3
    with pytest.raises(RunExistsError):
        train(_cfg(tiny_model, *overrides), tmp_path / "b")
    resumed = train(_cfg(tiny_model, *overrides), tmp_path / "b", resume=True)

    assert _comparable(read_log(tmp_path / "a")) == _comparable(read_log(tmp_path / "b"))
    wa, wb = _weights(straight.backend), _weights(resumed.backend)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (tmp_path / "b" / "manifest.resume-2.json").exists()


def test_half_written_checkpoints_are_ignored(tiny_model, tmp_path):
    run = tmp_path / "run"
    train(_cfg(tiny_model, "train.steps=2", "train.save_every=1"), run)
    root = run / "checkpoints"
    assert [c.step for c in list_checkpoints(run)] == [1, 2]
    # a leftover temp folder from a killed save, and a renamed folder whose files are cut short
    shutil.copytree(root / "step_00000002", root / ".tmp-step_00000003-abc")
    broken = root / "step_00000004"
    shutil.copytree(root / "step_00000002", broken)
    state = json.loads((broken / "state.json").read_text())
    state["step"] = 4
    (broken / "state.json").write_text(json.dumps(state))
    opt = broken / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[:100])
    no_state = root / "step_00000005"
    shutil.copytree(root / "step_00000002", no_state)
    (no_state / "state.json").unlink()
    assert latest_checkpoint(run).step == 2

    cfg = _cfg(tiny_model, "train.steps=3", "train.save_every=1")
    train(cfg, run, resume=True)
    assert [r["step"] for r in read_log(run)] == [1, 2, 3]


# ------------------------------------------------------------------------------------------ outputs


def test_manifest_logs_and_tensorboard(tiny_model, tmp_path):
    cfg = _cfg(tiny_model, "log.tensorboard=true", "train.seed=7")
    train(cfg, tmp_path, command=["rlvr", "train", "x.yaml"])
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["command"] == ["rlvr", "train", "x.yaml"]
    assert man["config"]["train"]["seed"] == 7 and man["config"]["algo"]["recipe"] == "grpo"
    assert man["seeds"] == {"train": 7, "data": 7}
    assert len(man["data_hashes"]["train:toy_length"]) == 64
    assert "torch" in man["packages"] and "transformers" in man["packages"]
    assert "git_commit" in man and "git_dirty" in man and man["python"]
    rec = read_log(tmp_path)[0]
    for key in ("reward/mean", "accuracy", "format_reward", "response_length/mean", "truncated/rate", "entropy",
                "clip_frac", "grad_norm", "lr", "throughput/tokens_per_s", "time/step", "time/generate",
                "time/update", "status"):  # fmt: skip
        assert key in rec, key
    assert set(rec["status"]) == {"correct", "incorrect", "unparsable", "timeout", "error"}
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_demo_recipe_loads():
    from rlvr.train.demo import load_demo_config

    cfg, demo = load_demo_config()
    assert cfg.data.task == "addition" and cfg.model.name == "default"
    assert demo["eval_n"] >= 100


# ------------------------------------------------------------------------------------------ rollouts


def test_asynchronous_mode_trains_one_step_off_policy(tiny_model, tmp_path):
    """Synchronous: the sampler is the trained policy, so the TIS weight is 1. Asynchronous: step t+1
    was sampled by the weights before step t's update, so from step 2 on the weight moves off 1."""
    common = ("train.steps=3", "algo.tis_cap=10.0", "train.lr=3e-2")
    train(_cfg(tiny_model, *common), tmp_path / "sync")
    train(_cfg(tiny_model, *common, "rollout.asynchronous=true"), tmp_path / "async")
    sync, asy = read_log(tmp_path / "sync"), read_log(tmp_path / "async")
    assert all(r["tis_weight"] == pytest.approx(1.0, abs=1e-4) for r in sync)
    assert asy[0]["tis_weight"] == pytest.approx(1.0, abs=1e-4)  # the first batch is on-policy
    assert all(abs(r["tis_weight"] - 1.0) > 1e-3 for r in asy[1:])
    assert sync[0]["reward/mean"] == asy[0]["reward/mean"]  # same seed, same first batch


def test_asynchronous_mode_needs_the_is_correction(tiny_model):
    with pytest.raises(ConfigError, match="tis_cap"):
        _cfg(tiny_model, "rollout.asynchronous=true")
