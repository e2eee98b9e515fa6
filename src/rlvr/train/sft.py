"""Rejection-sampling fine-tuning (RFT): sample, keep the completions the verifier accepts, cross-entropy on them.

It is the cheap baseline RL is compared with: the same rollouts, but every kept completion gets the
same weight and the wrong ones are simply thrown away (no negative signal, no group baseline).
Selected with ``train.objective: rft`` (see ``recipes/rft_addition.yaml``); the training loop supplies
the rollouts and calls these two functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rlvr.records import Verdict


def rft_keep(verdicts: Sequence[Verdict]) -> Tensor:
    """Bool[B]: the completions to train on (those graded correct)."""
    return torch.tensor([v.correct for v in verdicts], dtype=torch.bool)


def rft_loss(logp: Tensor, mask: Tensor, denominator: float | None = None) -> Tensor:
    """Mean negative log-likelihood per kept token (``denominator``: the minibatch's token count)."""
    m = mask.to(logp.dtype)
    return -(logp * m).sum() / (denominator if denominator is not None else m.sum().clamp(min=1))
