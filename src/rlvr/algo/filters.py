"""Reward shaping and sample filters: verdict policy, dynamic sampling, overlong handling, format reward."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from rlvr.records import Verdict


def verdict_rewards(verdicts: Sequence[Verdict], failures: str = "score") -> tuple[Tensor, Tensor]:
    """Rewards and a validity mask from verdicts.

    ``failures="score"``: ``unparsable``/``timeout``/``error`` keep their reward (0) like ``incorrect``.
    ``failures="mask"``: they are left out of the update (valid False), so a flaky grader does not
    teach the policy anything either way.
    """
    if failures not in ("score", "mask"):
        raise ValueError(f"failures must be 'score' or 'mask', got {failures!r}")
    rewards = torch.tensor([float(v.reward) for v in verdicts], dtype=torch.float32)
    valid = torch.tensor([not (failures == "mask" and v.is_failure) for v in verdicts], dtype=torch.bool)
    return rewards, valid


def keep_groups_with_variance(rewards: Tensor, valid: Tensor | None = None) -> Tensor:
    """DAPO dynamic sampling: keep groups (rows of ``[N, G]``) whose valid rewards are not all equal.

    A group where every completion scored the same has zero advantage under any group baseline
    and only dilutes the batch.
    """
    v = torch.ones_like(rewards, dtype=torch.bool) if valid is None else valid.bool()
    big = torch.finfo(rewards.dtype).max
    hi = torch.where(v, rewards, torch.full_like(rewards, -big)).amax(dim=1)
    lo = torch.where(v, rewards, torch.full_like(rewards, big)).amin(dim=1)
    return (v.sum(dim=1) >= 2) & (hi > lo)


def overlong_mask(truncated: Tensor) -> Tensor:
    """DAPO overlong filtering: completions cut by the token limit are left out of the loss."""
    return ~truncated.bool()


def soft_overlong_penalty(lengths: Tensor, max_len: int, buffer_len: int, penalty: float = 1.0) -> Tensor:
    """DAPO soft overlong punishment, added to the reward.

    0 while ``L <= max_len - buffer_len``; then falls linearly to ``-penalty`` at ``L = max_len``;
    ``-penalty`` beyond.
    """
    if not 0 < buffer_len <= max_len:
        raise ValueError(f"need 0 < buffer_len <= max_len, got buffer_len={buffer_len}, max_len={max_len}")
    lengths = lengths.to(torch.float32)
    start = max_len - buffer_len
    ramp = (start - lengths) / buffer_len
    out = torch.where(lengths <= start, torch.zeros_like(lengths), ramp)
    return penalty * out.clamp(min=-1.0)


BOXED = re.compile(r"\\boxed\s*\{")


def format_reward(completions: Sequence[str], pattern: str | re.Pattern = BOXED) -> Tensor:
    """1.0 where the completion contains the answer format (default: a ``\\boxed{...}``), else 0.0."""
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    return torch.tensor([1.0 if rx.search(c) else 0.0 for c in completions], dtype=torch.float32)
