"""Algorithm settings and the named recipes that combine them.

A recipe is a preset of :class:`AlgoConfig`; every field can still be overridden.

| recipe | advantage | loss | paper |
|---|---|---|---|
| ``grpo`` | group mean/std | token ratio, clip 0.2, seq-mean of token-mean | Shao et al. 2024, DeepSeekMath (arXiv:2402.03300) |
| ``dr_grpo`` | group mean only | token ratio, constant normaliser | Liu et al. 2025, Understanding R1-Zero-Like Training (arXiv:2503.20783) |
| ``dapo`` | group mean/std | clip-higher 0.2/0.28, token-mean, dynamic sampling, soft overlong | Yu et al. 2025, DAPO (arXiv:2503.14476) |
| ``gspo`` | group mean/std | sequence ratio, clip 3e-4/4e-4 | Zheng et al. 2025, GSPO (arXiv:2507.18071) |
| ``rloo`` | leave-one-out | seq-mean of token-sum | Ahmadian et al. 2024, Back to Basics (arXiv:2402.14740) |
| ``reinforce_pp`` | batch-normalised | token-mean, clip 0.2 | Hu 2025, REINFORCE++ (arXiv:2501.03262) |

KL to a reference model is off in every recipe (``kl_coef: 0``): no reference model is loaded
then. The original GRPO used ``kl_coef=0.04`` with the k3 estimator in the loss; set it to
reproduce that.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AlgoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: str | None = Field(None, description="The preset these settings started from.")
    advantage: Literal["grpo", "dr_grpo", "rloo", "reinforce_pp"] = "grpo"
    group_baseline: bool = Field(False, description="reinforce_pp: subtract the group mean first.")
    loss_level: Literal["token", "sequence"] = "token"
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "constant"] = (
        "seq_mean_token_mean"
    )
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.2, ge=0)
    constant_norm: float | None = Field(
        None, gt=0, description="'constant' aggregation; default max_new_tokens."
    )
    kl_coef: float = Field(0.0, ge=0)
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    kl_mode: Literal["loss", "reward"] = "loss"
    dynamic_sampling: bool = False
    max_resample_rounds: int = Field(3, ge=0)
    overlong_filter: bool = False
    soft_overlong_buffer: float | None = Field(
        None, gt=0, le=1, description="DAPO soft overlong punishment: buffer as a fraction of max_new_tokens."
    )
    soft_overlong_penalty: float = Field(1.0, ge=0)
    failures: Literal["score", "mask"] = "score"
    tis_cap: float | None = Field(None, gt=0, description="Truncated importance-sampling cap (off if None).")
    format_reward_weight: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> AlgoConfig:
        if self.loss_level == "sequence" and self.clip_low >= 1:
            raise ValueError("clip_low must be < 1")
        return self

    @property
    def needs_reference(self) -> bool:
        return self.kl_coef > 0


RECIPES: dict[str, dict[str, Any]] = {
    "grpo": {},
    "dr_grpo": {"advantage": "dr_grpo", "loss_agg": "constant"},
    "dapo": {
        "loss_agg": "token_mean",
        "clip_low": 0.2,
        "clip_high": 0.28,
        "dynamic_sampling": True,
        "soft_overlong_buffer": 0.2,
    },
    "gspo": {"loss_level": "sequence", "clip_low": 3e-4, "clip_high": 4e-4},
    "rloo": {"advantage": "rloo", "loss_agg": "seq_mean_token_sum"},
    "reinforce_pp": {"advantage": "reinforce_pp", "loss_agg": "token_mean"},
}


def recipe(name: str, **overrides: Any) -> AlgoConfig:
    """The preset ``name`` with ``overrides`` applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown algorithm recipe {name!r}; choose one of {sorted(RECIPES)}")
    return AlgoConfig(**{**RECIPES[name], **overrides, "recipe": name})


def resolve(settings: dict[str, Any] | None) -> AlgoConfig:
    """Build an AlgoConfig from a config mapping: ``recipe`` picks a preset, other keys override it."""
    settings = dict(settings or {})
    name = settings.pop("recipe", None)
    return recipe(name, **settings) if name else AlgoConfig(**settings)
