"""Advantage estimators, losses, KL and filters against hand-computed values."""

import math

import pytest
import torch

from rlvr.algo import (
    AlgoConfig,
    aggregate,
    compute_advantages,
    dr_grpo,
    format_reward,
    grpo,
    keep_groups_with_variance,
    kl_estimate,
    overlong_mask,
    policy_loss,
    recipe,
    reinforce_pp,
    resolve,
    rloo,
    soft_overlong_penalty,
    verdict_rewards,
)
from rlvr.records import Verdict

T = torch.tensor


def close(a, b, tol=1e-5):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol
    )


# --- advantages -------------------------------------------------------------------------------


def test_grpo_hand_values():
    # mean 0.5, unbiased std sqrt(1/3) -> +-0.5 / 0.57735 = +-0.866025
    adv = grpo(T([[1.0, 0.0, 0.0, 1.0]]), eps=0.0)
    assert close(adv, [[0.866025, -0.866025, -0.866025, 0.866025]])


def test_grpo_zero_variance_group_is_zero():
    adv = grpo(T([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]))
    assert close(adv[0], [0.0, 0.0, 0.0])
    assert adv[1, 1] > 0 > adv[1, 0]


def test_grpo_valid_mask_excludes_entries():
    # valid rewards [1, 0, 0]: mean 1/3, unbiased var 1/3 -> (2/3)/0.57735 = 1.154701, -(1/3)/0.57735
    r = T([[1.0, 0.0, 5.0, 0.0]])
    v = T([[True, True, False, True]])
    assert close(grpo(r, v, eps=0.0), [[1.154701, -0.577350, 0.0, -0.577350]])


def test_grpo_single_valid_entry_gets_zero():
    assert close(grpo(T([[1.0, 0.0]]), T([[True, False]])), [[0.0, 0.0]])


def test_dr_grpo_hand_values():
    assert close(dr_grpo(T([[1.0, 0.0, 0.0, 1.0]])), [[0.5, -0.5, -0.5, 0.5]])
    assert close(dr_grpo(T([[3.0, 0.0, 0.0]])), [[2.0, -1.0, -1.0]])


def test_rloo_hand_values():
    # r0: 1 - mean(0, 0) = 1; r1: 0 - mean(1, 0) = -0.5
    assert close(rloo(T([[1.0, 0.0, 0.0]])), [[1.0, -0.5, -0.5]])
    # masked entry ignored: group is [2, 4] -> [2-4, 4-2]
    assert close(rloo(T([[2.0, 9.0, 4.0]]), T([[True, False, True]])), [[-2.0, 0.0, 2.0]])


def test_reinforce_pp_batch_normalised():
    # batch [1, 0, 1, 1]: mean 0.75, unbiased std 0.5
    adv = reinforce_pp(T([[1.0, 0.0], [1.0, 1.0]]), eps=0.0)
    assert close(adv, [[0.5, -1.5], [0.5, 0.5]])


def test_reinforce_pp_group_baseline():
    # group-centred [0.5, -0.5, 0, 0]: mean 0, unbiased std sqrt(0.5/3)
    adv = reinforce_pp(T([[1.0, 0.0], [1.0, 1.0]]), group_baseline=True, eps=0.0)
    s = math.sqrt(0.5 / 3)
    assert close(adv, [[0.5 / s, -0.5 / s], [0.0, 0.0]])


def test_compute_advantages_dispatch_and_error():
    r = T([[1.0, 0.0]])
    assert close(compute_advantages("dr_grpo", r), dr_grpo(r))
    with pytest.raises(ValueError, match="unknown advantage"):
        compute_advantages("ppo", r)


# --- aggregation and losses ----------------------------------------------------------------------

MASK = T([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
ADV = T([1.0, -1.0])


@pytest.mark.parametrize(
    "mode, expected",
    [("token_mean", 0.2), ("seq_mean_token_mean", 0.0), ("seq_mean_token_sum", 0.5), ("constant", 1 / 6)],
)
def test_on_policy_loss_aggregations(mode, expected):
    # ratio 1 -> per-token loss -A: [-1, -1, (masked)] and [1, 1, 1]
    logp = torch.zeros(2, 3)
    loss, stats = policy_loss(logp, logp, ADV, MASK, agg=mode)
    assert close(loss, expected)
    assert stats["clip_frac"] == 0.0 and close(stats["ratio_mean"], 1.0)


def test_constant_norm_and_denominator():
    x = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert close(aggregate(x, MASK, "constant", constant_norm=4), (1 + 2 + 4 + 5 + 6) / 8)
    assert close(aggregate(x, MASK, "token_mean", denominator=10), 18 / 10)
    with pytest.raises(ValueError):
        aggregate(x, MASK, "median")


def test_on_policy_gradient_is_minus_advantage_over_tokens():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, _ = policy_loss(logp, logp.detach(), ADV, MASK, agg="token_mean")
    loss.backward()
    assert close(logp.grad, [[-0.2, -0.2, 0.0], [0.2, 0.2, 0.2]])


def test_token_clipping_and_clip_higher():
    old = torch.zeros(1, 1)
    new = torch.full((1, 1), math.log(1.5))
    m = torch.ones(1, 1)
    loss, stats = policy_loss(new, old, T([1.0]), m, clip_low=0.2, clip_high=0.2)
    assert close(loss, -1.2) and stats["clip_frac"] == 1.0 and stats["clip_frac_high"] == 1.0
    loss, _ = policy_loss(new, old, T([1.0]), m, clip_low=0.2, clip_high=0.28)
    assert close(loss, -1.28)
    # negative advantage: the pessimistic (unclipped) term is taken, nothing counted as clipped
    loss, stats = policy_loss(new, old, T([-1.0]), m)
    assert close(loss, 1.5) and stats["clip_frac"] == 0.0
    # ratio 0.5 with negative advantage is clipped at 1 - clip_low
    loss, stats = policy_loss(torch.full((1, 1), math.log(0.5)), old, T([-1.0]), m, clip_low=0.2)
    assert close(loss, 0.8) and stats["clip_frac_low"] == 1.0


def test_clipped_tokens_get_no_gradient():
    new = torch.full((1, 1), math.log(1.5), requires_grad=True)
    loss, _ = policy_loss(new, torch.zeros(1, 1), T([1.0]), torch.ones(1, 1))
    loss.backward()
    assert new.grad.abs().sum() == 0


def test_sequence_level_ratio_gspo():
    # log ratios [log 2, 0] -> sequence ratio exp(log2 / 2) = sqrt(2)
    old = torch.zeros(1, 2)
    new = T([[math.log(2.0), 0.0]]).requires_grad_(True)
    m = torch.ones(1, 2)
    loss, stats = policy_loss(
        new, old, T([1.0]), m, level="sequence", clip_low=10, clip_high=10, agg="seq_mean_token_mean"
    )
    assert close(loss, -math.sqrt(2)) and close(stats["ratio_mean"], math.sqrt(2))
    loss.backward()
    # d/d logp_t of mean_t(-s * A): -s / T for each token (GSPO-token form)
    assert close(new.grad, [[-math.sqrt(2) / 2, -math.sqrt(2) / 2]])
    loss, stats = policy_loss(
        new, old, T([1.0]), m, level="sequence", clip_low=0.2, clip_high=0.2, agg="seq_mean_token_mean"
    )
    assert close(loss, -1.2) and stats["clip_frac"] == 1.0


def test_sequence_level_ignores_padding():
    old = torch.zeros(1, 3)
    new = T([[math.log(2.0), 0.0, 50.0]])
    m = T([[1.0, 1.0, 0.0]])
    _, stats = policy_loss(new, old, T([1.0]), m, level="sequence", clip_low=10, clip_high=10)
    assert close(stats["ratio_mean"], math.sqrt(2))


def test_truncated_importance_sampling_weight():
    logp = torch.zeros(1, 1)
    behaviour = torch.full((1, 1), -math.log(4.0))  # pi_old / pi_behaviour = 4, capped at 2
    loss, stats = policy_loss(logp, logp, T([1.0]), torch.ones(1, 1), behaviour_logp=behaviour, tis_cap=2.0)
    assert close(loss, -2.0) and close(stats["tis_weight_mean"], 2.0)
    loss, _ = policy_loss(logp, logp, T([1.0]), torch.ones(1, 1), behaviour_logp=behaviour, tis_cap=10.0)
    assert close(loss, -4.0)


def test_unknown_loss_level():
    z = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="loss level"):
        policy_loss(z, z, T([1.0]), torch.ones(1, 1), level="episode")


def test_kl_estimators_hand_values():
    logp, ref = T([math.log(0.5)]), T([math.log(0.25)])
    assert close(kl_estimate(logp, ref, "k1"), [math.log(2)])
    assert close(kl_estimate(logp, ref, "k2"), [0.5 * math.log(2) ** 2])
    assert close(kl_estimate(logp, ref, "k3"), [0.5 - 1 + math.log(2)])
    assert close(kl_estimate(ref, ref, "k3"), [0.0])
    with pytest.raises(ValueError):
        kl_estimate(logp, ref, "k4")


# --- filters --------------------------------------------------------------------------------------


def test_verdict_rewards_score_and_mask():
    vs = [
        Verdict(1.0, "correct"),
        Verdict(0.0, "incorrect"),
        Verdict(0.0, "timeout"),
        Verdict(0.0, "unparsable"),
    ]
    r, v = verdict_rewards(vs, "score")
    assert r.tolist() == [1.0, 0.0, 0.0, 0.0] and v.tolist() == [True] * 4
    r, v = verdict_rewards(vs, "mask")
    assert v.tolist() == [True, True, False, False]
    with pytest.raises(ValueError):
        verdict_rewards(vs, "drop")


def test_keep_groups_with_variance():
    r = T([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert keep_groups_with_variance(r).tolist() == [False, True, False]
    v = T([[True, True], [False, True], [True, True]])
    assert keep_groups_with_variance(r, v).tolist() == [False, False, False]


def test_overlong_mask():
    assert overlong_mask(T([True, False])).tolist() == [False, True]


def test_soft_overlong_penalty_hand_values():
    out = soft_overlong_penalty(T([5, 6, 8, 10, 12]), max_len=10, buffer_len=4, penalty=1.0)
    assert close(out, [0.0, 0.0, -0.5, -1.0, -1.0])
    assert close(soft_overlong_penalty(T([8]), 10, 4, penalty=0.5), [-0.25])
    with pytest.raises(ValueError):
        soft_overlong_penalty(T([1]), 10, 0)


def test_format_reward():
    assert format_reward(["so \\boxed{4}", "4", "\\boxed {x}"]).tolist() == [1.0, 0.0, 1.0]
    assert format_reward(["<answer>3</answer>", "3"], r"<answer>.*</answer>").tolist() == [1.0, 0.0]


# --- recipes ----------------------------------------------------------------------------------------


def test_recipes():
    assert recipe("dapo").clip_high == 0.28 and recipe("dapo").dynamic_sampling
    assert recipe("gspo").loss_level == "sequence"
    assert recipe("dr_grpo").advantage == "dr_grpo" and recipe("dr_grpo").loss_agg == "constant"
    assert recipe("rloo").advantage == "rloo"
    assert recipe("reinforce_pp").advantage == "reinforce_pp"
    assert recipe("grpo").kl_coef == 0.0 and not recipe("grpo").needs_reference


def test_resolve_applies_overrides_after_preset():
    cfg = resolve({"recipe": "gspo", "clip_high": 1e-3})
    assert cfg.loss_level == "sequence" and cfg.clip_high == 1e-3 and cfg.recipe == "gspo"
    assert resolve(None) == AlgoConfig()


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown algorithm recipe"):
        recipe("ppo2")
    with pytest.raises(ValueError, match="extra"):
        AlgoConfig(clip_hihg=0.3)
    with pytest.raises(ValueError):
        AlgoConfig(advantage="a2c")
