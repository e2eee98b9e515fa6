"""Advantage estimators: pure functions from group rewards to per-completion advantages.

``rewards`` has shape ``[N, G]``: N prompts, G sampled completions each. ``valid`` (same shape,
bool, optional) marks completions that take part; masked ones (e.g. a verifier ``timeout`` under
``failures: mask``) get advantage 0 and do not enter any statistic.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _valid(rewards: Tensor, valid: Tensor | None) -> Tensor:
    return torch.ones_like(rewards, dtype=torch.bool) if valid is None else valid.bool()


def _group_mean(rewards: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Per-group mean over valid entries and the per-group valid count, both shaped [N, 1]."""
    w = valid.to(rewards.dtype)
    count = w.sum(dim=1, keepdim=True)
    mean = (rewards * w).sum(dim=1, keepdim=True) / count.clamp(min=1)
    return mean, count


def grpo(rewards: Tensor, valid: Tensor | None = None, eps: float = 1e-4) -> Tensor:
    """GRPO (Shao et al., 2024, DeepSeekMath): ``(r - mean_group) / (std_group + eps)``.

    The standard deviation is the unbiased sample one (as in TRL); groups with fewer than two
    valid completions get advantage 0.
    """
    v = _valid(rewards, valid)
    mean, count = _group_mean(rewards, v)
    w = v.to(rewards.dtype)
    var = (((rewards - mean) ** 2) * w).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    adv = (rewards - mean) / (var.sqrt() + eps)
    return torch.where(v & (count >= 2), adv, torch.zeros_like(adv))


def dr_grpo(rewards: Tensor, valid: Tensor | None = None) -> Tensor:
    """Dr. GRPO (Liu et al., 2025): ``r - mean_group``, no division by the std (removes its bias)."""
    v = _valid(rewards, valid)
    mean, count = _group_mean(rewards, v)
    adv = rewards - mean
    return torch.where(v & (count >= 2), adv, torch.zeros_like(adv))


def rloo(rewards: Tensor, valid: Tensor | None = None) -> Tensor:
    """RLOO (Ahmadian et al., 2024): ``r_i - mean of the other valid completions of the group``."""
    v = _valid(rewards, valid)
    w = v.to(rewards.dtype)
    total = (rewards * w).sum(dim=1, keepdim=True)
    count = w.sum(dim=1, keepdim=True)
    baseline = (total - rewards) / (count - 1).clamp(min=1)
    adv = rewards - baseline
    return torch.where(v & (count >= 2), adv, torch.zeros_like(adv))


def reinforce_pp(
    rewards: Tensor, valid: Tensor | None = None, group_baseline: bool = False, eps: float = 1e-6
) -> Tensor:
    """REINFORCE++ (Hu, 2025): advantages normalised over the whole batch, ``(r - mean_B) / std_B``.

    ``group_baseline=True`` first subtracts each group's mean (the paper's "REINFORCE++-baseline"
    variant for several samples per prompt).
    """
    v = _valid(rewards, valid)
    r = rewards
    if group_baseline:
        mean, _ = _group_mean(rewards, v)
        r = rewards - mean
    vals = r[v]
    if vals.numel() < 2:
        return torch.zeros_like(rewards)
    adv = (r - vals.mean()) / (vals.std() + eps)
    return torch.where(v, adv, torch.zeros_like(adv))


ESTIMATORS = {"grpo": grpo, "dr_grpo": dr_grpo, "rloo": rloo, "reinforce_pp": reinforce_pp}


def compute_advantages(name: str, rewards: Tensor, valid: Tensor | None = None, **kwargs) -> Tensor:
    try:
        fn = ESTIMATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown advantage estimator {name!r}; choose one of {sorted(ESTIMATORS)}"
        ) from None
    return fn(rewards, valid, **kwargs)
