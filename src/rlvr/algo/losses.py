"""Policy-gradient losses on per-token log-probabilities: pure functions on tensors.

Shapes: ``logp``, ``old_logp``, ``mask`` are ``[B, T]`` over completion tokens (mask 1 for real
tokens), ``advantages`` is ``[B]`` (one per completion).
"""

from __future__ import annotations

import torch
from torch import Tensor

AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "constant")


def aggregate(
    x: Tensor, mask: Tensor, mode: str, constant_norm: float | None = None, denominator: float | None = None
) -> Tensor:
    """Reduce per-token values to a scalar.

    - ``token_mean``: sum over all tokens / number of tokens (DAPO; long answers weigh more).
    - ``seq_mean_token_mean``: mean over sequences of each sequence's token mean (original GRPO).
    - ``seq_mean_token_sum``: mean over sequences of each sequence's token sum (REINFORCE on log p(y)).
    - ``constant``: sum over all tokens / (B * constant_norm) (Dr. GRPO; constant_norm defaults to T).

    ``denominator`` replaces the batch-level divisor (tokens for ``token_mean``, sequences for the
    others, ``B * constant_norm`` for ``constant``): with gradient accumulation, pass the count of
    the whole batch so the sum of the micro-batch losses equals the full-batch loss.
    """
    m = mask.to(x.dtype)
    if mode == "token_mean":
        return (x * m).sum() / (denominator if denominator is not None else m.sum().clamp(min=1))
    if mode == "seq_mean_token_mean":
        per_seq = (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
        return per_seq.sum() / (denominator if denominator is not None else x.shape[0])
    if mode == "seq_mean_token_sum":
        return (x * m).sum() / (denominator if denominator is not None else x.shape[0])
    if mode == "constant":
        norm = constant_norm if constant_norm is not None else x.shape[1]
        return (x * m).sum() / (denominator if denominator is not None else x.shape[0] * norm)
    raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {AGGREGATIONS}")


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    level: str = "token",
    agg: str = "token_mean",
    constant_norm: float | None = None,
    denominator: float | None = None,
    behaviour_logp: Tensor | None = None,
    tis_cap: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO-style clipped surrogate, ``-min(rho * A, clip(rho, 1 - clip_low, 1 + clip_high) * A)``.

    ``level="token"``: rho is the per-token ratio ``pi/pi_old`` (PPO, GRPO; DAPO's clip-higher is
    ``clip_high > clip_low``). ``level="sequence"``: rho is the length-normalised sequence ratio
    ``exp(mean_t log(pi/pi_old))`` shared by every token of the completion (GSPO, Zheng et al.,
    2025), written in GSPO-token form so the gradient flows through each token.

    ``behaviour_logp`` (the sampler's log-probs, e.g. from an inference engine) with ``tis_cap``
    applies truncated importance sampling: each token's loss is weighted by
    ``min(pi_old / pi_behaviour, tis_cap)``, detached.
    """
    m = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    log_ratio = (logp - old_logp) * m
    if level == "token":
        ratio = torch.exp(log_ratio)
    elif level == "sequence":
        seq_log_ratio = log_ratio.sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp(min=1)
        ratio = torch.exp(seq_log_ratio.detach() + logp - logp.detach())
    else:
        raise ValueError(f"unknown loss level {level!r}; choose 'token' or 'sequence'")
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    tis_weight = None
    if behaviour_logp is not None and tis_cap is not None:
        tis_weight = torch.exp((old_logp - behaviour_logp) * m).clamp(max=tis_cap).detach()
        per_token = per_token * tis_weight
    loss = aggregate(per_token, mask, agg, constant_norm, denominator)

    with torch.no_grad():
        is_clipped = ((ratio < 1.0 - clip_low) & (adv < 0)) | ((ratio > 1.0 + clip_high) & (adv > 0))
        n = m.sum().clamp(min=1)
        stats = {
            "clip_frac": float((is_clipped.to(m.dtype) * m).sum() / n),
            "clip_frac_low": float((((ratio < 1.0 - clip_low) & (adv < 0)).to(m.dtype) * m).sum() / n),
            "clip_frac_high": float((((ratio > 1.0 + clip_high) & (adv > 0)).to(m.dtype) * m).sum() / n),
            "ratio_mean": float((ratio * m).sum() / n),
        }
        if tis_weight is not None:
            stats["tis_weight_mean"] = float((tis_weight * m).sum() / n)
    return loss, stats


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi (Schulman, "Approximating KL").

    k1 = log(pi/pi_ref) (unbiased, high variance, can be negative); k2 = (log(pi/pi_ref))^2 / 2;
    k3 = pi_ref/pi - 1 - log(pi_ref/pi) (unbiased, always >= 0; the GRPO paper's choice).
    """
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(-log_ratio) - 1.0 + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; choose k1, k2 or k3")
