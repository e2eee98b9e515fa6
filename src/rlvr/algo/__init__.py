"""Pure functions of the RL update: advantage estimators, policy losses, KL, filters, recipes."""

from rlvr.algo.advantages import compute_advantages, dr_grpo, grpo, reinforce_pp, rloo
from rlvr.algo.config import RECIPES, AlgoConfig, recipe, resolve
from rlvr.algo.filters import (
    format_reward,
    keep_groups_with_variance,
    overlong_mask,
    soft_overlong_penalty,
    verdict_rewards,
)
from rlvr.algo.losses import aggregate, kl_estimate, policy_loss

__all__ = [
    "RECIPES",
    "AlgoConfig",
    "aggregate",
    "compute_advantages",
    "dr_grpo",
    "format_reward",
    "grpo",
    "keep_groups_with_variance",
    "kl_estimate",
    "overlong_mask",
    "policy_loss",
    "recipe",
    "reinforce_pp",
    "resolve",
    "rloo",
    "soft_overlong_penalty",
    "verdict_rewards",
]
