"""Training configuration: pydantic models loaded from a YAML recipe plus dotted command-line overrides.

A recipe is a YAML mapping with the sections ``model``, ``data``, ``sampling``, ``algo``, ``optim``,
``train`` and ``log``. ``algo.recipe: dapo`` starts the algorithm section from a named preset
(:func:`rlvr.algo.config.recipe`); the other ``algo`` keys and the overrides then apply on top::

    cfg = load_config("recipes/grpo_addition.yaml", ["train.lr=1e-6", "algo.clip_high=0.28"])

Every error (unknown key, wrong type, impossible batch arithmetic) is raised as :class:`ConfigError`
before any model is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlvr.algo.config import AlgoConfig, recipe


class ConfigError(ValueError):
    """A recipe or override that cannot be run; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = "default"  # anything rlvr.models.load_backend accepts: "default", a HF folder, a .gguf file
    dtype: Literal["float32", "bfloat16"] = "float32"  # weight dtype (keep float32 to train: AdamW needs it)
    autocast: Literal["none", "bfloat16"] = "none"  # mixed precision for forward passes (generation + loss)
    device: str = "cpu"
    system_prompt: str | None = None


class DataConfig(_Section):
    task: str = "addition"  # a spec rlvr.data.load_task understands
    n: int | None = Field(default=None, gt=0)  # number of training prompts (None: the task's default)
    seed: int | None = None  # task-generation seed (None: train.seed)
    options: dict[str, Any] = Field(default_factory=dict)  # extra keyword arguments for load_task


class SamplingConfig(_Section):
    group_size: int = Field(default=8, ge=1)  # G: completions per prompt
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=256, ge=1)
    stop: list[str] = Field(default_factory=list)


class OptimConfig(_Section):
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float | None = Field(default=1.0, gt=0)  # None: no clipping (the norm is still logged)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)  # floor of linear/cosine decay, as a fraction of lr


class TrainConfig(_Section):
    objective: Literal["rl", "rft"] = "rl"  # rft: cross-entropy on verified-correct samples only
    steps: int = Field(default=100, ge=1)
    lr: float = Field(default=1e-6, gt=0)
    prompts_per_step: int = Field(default=8, ge=1)
    ppo_epochs: int = Field(default=1, ge=1)  # passes over each rollout batch
    minibatch_size: int | None = Field(default=None, ge=1)  # rollouts per optimizer step (None: all)
    micro_batch_size: int | None = Field(
        default=None, ge=1
    )  # rollouts per forward/backward (None: minibatch)
    old_logp: Literal["auto", "recompute", "sampling"] = "auto"
    seed: int = 0
    save_every: int = Field(default=0, ge=0)  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = Field(default=2, ge=1)
    verify_workers: int = Field(default=2, ge=1)
    verify_timeout: float = Field(default=10.0, gt=0)
    verify_on: Literal["local", "ray"] = "local"  # a local process pool, or verify_workers Ray actors
    parallel: Literal["ddp", "fsdp2"] = "ddp"  # under torchrun: data-parallel or sharded
    threads: int | None = Field(default=None, ge=1)  # torch intra-op threads (None: leave as is)


class RolloutConfig(_Section):
    """Where completions are sampled, and whether sampling overlaps the update."""

    engine: Literal["local", "ray", "vllm"] = "local"  # the policy itself, Ray actors, or a vLLM engine
    workers: int = Field(default=2, ge=1)  # Ray rollout actors
    threads_per_worker: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)  # Ray CPU reservation per rollout actor
    ray_address: str | None = None  # None: a local Ray cluster; "auto" or "ray://host:port" joins one
    timeout: float = Field(default=600.0, gt=0)  # seconds per remote generation call
    vllm: dict[str, Any] = Field(default_factory=dict)  # extra VLLMBackend arguments
    # One-step off-policy: step t+1's rollouts are sampled (by the weights before step t's update)
    # while step t's update runs; the truncated importance-sampling correction is then required.
    asynchronous: bool = False


class LogConfig(_Section):
    jsonl: bool = True  # always on in practice; kept for symmetry with the other sinks
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "rlvr"
    progress: bool = True
    entropy: bool = True  # compute the policy entropy on the training pass (one extra vocab reduction)
    print_samples: int = Field(default=0, ge=0)  # completions printed per step


class RunConfig(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @property
    def rollouts_per_step(self) -> int:
        return self.train.prompts_per_step * self.sampling.group_size

    @property
    def minibatch_size(self) -> int:
        return self.train.minibatch_size or self.rollouts_per_step

    @property
    def micro_batch_size(self) -> int:
        return self.train.micro_batch_size or self.minibatch_size

    @property
    def data_seed(self) -> int:
        return self.train.seed if self.data.seed is None else self.data.seed

    @model_validator(mode="after")
    def _check_batch_arithmetic(self) -> RunConfig:
        rollouts = self.rollouts_per_step
        if rollouts % self.minibatch_size:
            raise ValueError(
                f"train.minibatch_size={self.minibatch_size} does not divide the {rollouts} rollouts per step "
                f"(train.prompts_per_step={self.train.prompts_per_step} x sampling.group_size={self.sampling.group_size})"
            )
        if self.minibatch_size % self.micro_batch_size:
            raise ValueError(
                f"train.micro_batch_size={self.micro_batch_size} does not divide "
                f"the minibatch of {self.minibatch_size} rollouts"
            )
        if (
            self.train.objective == "rl"
            and self.sampling.group_size < 2
            and self.algo.advantage != "reinforce_pp"
        ):
            raise ValueError(
                f"algo.advantage={self.algo.advantage!r} compares completions within a group: "
                "sampling.group_size must be at least 2"
            )
        if self.algo.kl_coef < 0:
            raise ValueError("algo.kl_coef must be >= 0")
        if self.rollout.asynchronous and self.algo.tis_cap is None and self.train.objective == "rl":
            raise ValueError(
                "rollout.asynchronous=true trains on rollouts of the previous weights: set algo.tis_cap "
                "(e.g. 2.0) for the truncated importance-sampling correction"
            )
        return self

    def batch_summary(self) -> str:
        """The batch arithmetic in one readable block."""
        r, mb, micro = self.rollouts_per_step, self.minibatch_size, self.micro_batch_size
        n_mb = r // mb
        tokens = r * self.sampling.max_new_tokens
        kl = (
            "off (no reference model)"
            if self.algo.kl_coef == 0
            else f"{self.algo.kl_coef} as {self.algo.kl_mode}"
        )
        return "\n".join(
            [
                f"objective        {self.train.objective}"
                + (f" ({self.algo.recipe})" if self.algo.recipe and self.train.objective == "rl" else ""),
                f"rollouts/step    {self.train.prompts_per_step} prompts x {self.sampling.group_size} samples "
                f"= {r} rollouts",
                f"updates/step     {self.train.ppo_epochs} epoch(s) x {n_mb} minibatch(es) of {mb} rollouts "
                f"= {self.train.ppo_epochs * n_mb} optimizer step(s); "
                f"{mb // micro} micro-batch(es) of {micro} per minibatch",
                f"tokens/step      <= {tokens} completion tokens ({r} x {self.sampling.max_new_tokens} max new)",
                f"steps            {self.train.steps} (lr {self.train.lr:g}, {self.optim.schedule}, "
                f"warmup {self.optim.warmup_steps})",
                f"kl               {kl}",
                f"rollouts         {self.rollout.engine}"
                + (f" ({self.rollout.workers} Ray workers)" if self.rollout.engine == "ray" else "")
                + (", one step off-policy (async)" if self.rollout.asynchronous else ", synchronous"),
            ]
        )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=0.28"`` -> ``(["a", "b"], 0.28)``; the value is parsed as YAML (numbers, bools, lists).

    YAML reads ``1e-6`` as a string; the pydantic fields convert it to a number when validating.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: cannot parse the value: {e}") from None
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted key in the nested dict (creating sub-dicts); unknown keys fail later, in validation."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def build_config(raw: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a nested dict (recipe presets expanded) into a RunConfig, or raise ConfigError."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    algo = raw.get("algo", {})
    if not isinstance(algo, dict):
        raise ConfigError(f"{source}: 'algo' must be a mapping, got {type(algo).__name__}")
    name = algo.get("recipe")
    if name is not None:
        try:
            base = recipe(str(name)).model_dump()
        except ValueError as e:
            raise ConfigError(f"{source}: algo.recipe: {e}") from None
        raw["algo"] = {**base, **algo}
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: invalid config:\n{_format_errors(e)}") from None


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML recipe (or start from defaults when ``path`` is None) and apply dotted overrides."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {type(loaded).__name__}")
        raw = loaded
    raw = apply_overrides(raw, list(overrides))
    if overrides:
        source += " + overrides"
    return build_config(raw, source)


def _format_errors(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key")
        else:
            lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
