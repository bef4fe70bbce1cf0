"""The RL math against hand-computed tensors: advantages, GAE, clipped losses, KL estimators, weights."""

from __future__ import annotations

import math

import pytest
import torch

from llmrl_core.lm_rl.algorithms import (
    compute_clip_stats,
    compute_clipped_surrogate,
    compute_entropy,
    compute_gae,
    compute_group_reward_stats,
    compute_grpo_advantages,
    compute_kl,
    compute_ppo_rewards,
    compute_reinforce_advantages,
    compute_reinforce_loss,
    compute_rloo_advantages,
    compute_token_logprobs,
    compute_token_weights,
    compute_value_loss,
    masked_mean,
    masked_whiten,
    update_baseline,
)
from llmrl_core.lm_rl.update import compute_lr_factor


def close(a: torch.Tensor, b: list, tol: float = 1e-4) -> bool:
    return torch.allclose(a.float(), torch.tensor(b, dtype=torch.float32), atol=tol)


def test_grpo_advantages_scaled_by_group_std():
    rewards = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    adv = compute_grpo_advantages(rewards, group_size=3)
    # group 1: mean 2, sample std 1 -> (r - 2) / (1 + 1e-4); group 2 is flat -> 0
    assert close(adv, [-1 / 1.0001, 0.0, 1 / 1.0001, 0.0, 0.0, 0.0], tol=1e-6)


def test_grpo_advantages_without_std_scaling():
    rewards = torch.tensor([1.0, 5.0, 2.0, 2.0])
    adv = compute_grpo_advantages(rewards, group_size=2, scale_rewards=False)
    assert close(adv, [-2.0, 2.0, 0.0, 0.0])


def test_group_reward_stats():
    stats = compute_group_reward_stats(torch.tensor([1.0, 3.0, 2.0, 2.0]), group_size=2)
    assert stats["reward_std"] == pytest.approx(math.sqrt(2) / 2)  # (sqrt(2) + 0) / 2
    assert stats["frac_reward_zero_std"] == pytest.approx(0.5)


def test_rloo_leave_one_out_baseline():
    adv = compute_rloo_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0, 4.0]), group_size=3)
    # 1 - (2+3)/2 = -1.5; 2 - (1+3)/2 = 0; 3 - (1+2)/2 = 1.5; a flat group gives 0
    assert close(adv, [-1.5, 0.0, 1.5, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="at least 2"):
        compute_rloo_advantages(torch.tensor([1.0]), group_size=1)


def test_reinforce_moving_baseline():
    rewards = torch.tensor([1.0, 3.0])
    assert close(compute_reinforce_advantages(rewards, None), [-1.0, 1.0])  # first batch: its own mean
    assert close(compute_reinforce_advantages(rewards, 0.5), [0.5, 2.5])
    assert update_baseline(None, rewards, 0.9) == pytest.approx(2.0)
    assert update_baseline(1.0, rewards, 0.9) == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)
    loss = compute_reinforce_loss(torch.tensor([[-1.0, -2.0]]), torch.tensor([0.5]))
    assert close(loss, [[0.5, 1.0]])


def test_gae_hand_computed():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.4, 0.6]])
    adv, ret = compute_gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.5)
    # t2: 1 - 0.6 = 0.4; t1: 0.9*0.6 - 0.4 = 0.14, + 0.45*0.4 = 0.32; t0: 0.9*0.4 - 0.2 = 0.16, + 0.45*0.32 = 0.304
    assert close(adv, [[0.304, 0.32, 0.4]])
    assert close(ret, [[0.504, 0.72, 1.0]])


def test_gae_stops_at_padding():
    rewards = torch.tensor([[0.0, 1.0, 5.0]])
    values = torch.tensor([[0.2, 0.4, 9.0]])
    adv, ret = compute_gae(rewards, values, torch.tensor([[1.0, 1.0, 0.0]]), gamma=0.9, lam=0.5)
    # the padded position counts for nothing: t1: 1 - 0.4 = 0.6; t0: 0.16 + 0.45*0.6 = 0.43
    assert close(adv, [[0.43, 0.6, 0.0]])
    assert close(ret, [[0.63, 1.0, 0.0]])


def test_ppo_rewards_fold_kl_and_score():
    rewards = compute_ppo_rewards(torch.tensor([2.0]), torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([[1.0, 1.0, 0.0]]), beta=0.5)
    assert close(rewards, [[-0.05, 1.9, 0.0]])


def test_clipped_surrogate_positive_and_negative_advantage():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[0.5, 1.0, 1.5]]))  # ratios 0.5, 1, 1.5
    loss, ratio = compute_clipped_surrogate(logp, old, torch.tensor([1.0]), 0.2, 0.2)
    assert close(ratio, [[0.5, 1.0, 1.5]])
    assert close(loss, [[-0.5, -1.0, -1.2]])  # min(r A, clip(r) A) with A = 1
    loss, _ = compute_clipped_surrogate(logp, old, torch.tensor([-1.0]), 0.2, 0.2)
    assert close(loss, [[0.8, 1.0, 1.5]])  # A = -1: min(-0.5, -0.8), -1, min(-1.5, -1.2)
    loss, _ = compute_clipped_surrogate(logp, old, torch.tensor([1.0]), 0.2, 0.28)
    assert close(loss, [[-0.5, -1.0, -1.28]])  # asymmetric (DAPO) upper bound


def test_clip_stats_low_high_region():
    ratio = torch.tensor([[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]])
    adv = torch.tensor([1.0, -1.0])
    stats = compute_clip_stats(ratio, adv, torch.ones(2, 3), 0.2, 0.2)
    assert stats["clip_ratio/high_mean"] == pytest.approx(1 / 6)  # ratio 1.5 with A > 0
    assert stats["clip_ratio/low_mean"] == pytest.approx(1 / 6)  # ratio 0.5 with A < 0
    assert stats["clip_ratio/region_mean"] == pytest.approx(2 / 6)


def test_kl_estimators_k1_k3():
    logp = torch.log(torch.tensor([0.5, 0.25]))
    ref = torch.log(torch.tensor([0.25, 0.25]))
    assert close(compute_kl(logp, ref, "k1"), [math.log(2), 0.0])
    # k3 = exp(ref - logp) - (ref - logp) - 1 = 0.5 + log 2 - 1
    assert close(compute_kl(logp, ref, "k3"), [0.5 + math.log(2) - 1, 0.0])
    with pytest.raises(ValueError):
        compute_kl(logp, ref, "k2")


def test_token_weights_for_each_loss_type():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert close(compute_token_weights(mask, "grpo", 3), [[0.25, 0.25, 0.0], [0.5, 0.0, 0.0]])
    assert close(compute_token_weights(mask, "dapo", 3), [[1 / 3, 1 / 3, 0.0], [1 / 3, 0.0, 0.0]])
    assert close(compute_token_weights(mask, "dr_grpo", 3), [[1 / 6, 1 / 6, 0.0], [1 / 6, 0.0, 0.0]])


def test_value_loss_clipped():
    loss, frac = compute_value_loss(torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([[2.0]]), torch.ones(1, 1), 0.2)
    # clipped value 0.7: (0.7 - 2)^2 = 1.69 > (1 - 2)^2 = 1 -> 0.5 * 1.69
    assert close(loss, [[0.845]])
    assert frac == pytest.approx(1.0)


def test_logprobs_entropy_and_masked_helpers():
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    logp = compute_token_logprobs(logits, torch.tensor([[1, 1]]))
    assert close(logp, [[math.log(0.5), math.log(0.75)]])
    assert close(compute_entropy(logits)[:, :1], [[math.log(2)]])
    mask = torch.tensor([[1.0, 0.0]])
    assert float(masked_mean(torch.tensor([[2.0, 100.0]]), mask)) == pytest.approx(2.0)
    white = masked_whiten(torch.tensor([[1.0, 3.0, 50.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
    assert close(white, [[-1.0, 1.0, 0.0]], tol=1e-3)


def test_lr_schedule():
    assert compute_lr_factor(0, 2, 10, "constant") == pytest.approx(0.5)
    assert compute_lr_factor(1, 2, 10, "constant") == pytest.approx(1.0)
    assert compute_lr_factor(6, 2, 10, "linear") == pytest.approx(0.5)
    assert compute_lr_factor(6, 2, 10, "cosine") == pytest.approx(0.5)
    assert compute_lr_factor(10, 2, 10, "cosine") == pytest.approx(0.0)
