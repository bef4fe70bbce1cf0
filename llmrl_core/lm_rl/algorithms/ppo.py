"""PPO for language models in the classic RLHF form (Ziegler et al. 2019; Ouyang et al. 2022).

* The reward is given per token: -beta * KL(policy || reference) at every token, plus the
  scalar reward of the whole completion at its last token (compute_ppo_rewards).
* A value head (one linear layer on the policy's last hidden state) predicts the return.
* Advantages come from GAE (Schulman et al. 2015, arXiv 1506.02438) and are whitened.
* The policy loss is the clipped ratio (arXiv 1707.06347, eq. 7, in common.py); the value
  loss is clipped around the old values, as in the reference PPO implementations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmrl_core.lm_rl.algorithms.common import (compute_clipped_push, compute_clipped_surrogate, compute_kl, masked_mean,
                                               masked_whiten)
from llmrl_core.lm_rl.algorithms.spec import AdvantageInputs, Advantages, Algorithm, AlgorithmConfig, Loss, LossInputs



class ValueHead(nn.Module):
    """Maps hidden states (B, T, H) to values (B, T); starts at zero so early advantages are the rewards."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def get_value(self, hidden: torch.Tensor) -> torch.Tensor:
        """Value of each position: (B, T, H) -> (B, T) in float32."""
        return self.linear(hidden.float()).squeeze(-1)

    forward = get_value


def compute_ppo_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards (B, T): -beta * kl on every real token, plus the sequence score on its last token."""
    rewards = -beta * kl * mask  # (B, T)
    last = (mask.sum(1).long() - 1).clamp(min=0)  # (B,) index of each completion's last real token
    rewards[torch.arange(rewards.shape[0]), last] += scores
    return rewards


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation over completion tokens (arXiv 1506.02438, eq. 16).

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1}; the value after
    the last real token is 0 (the episode ends there). rewards, values, mask: (B, T).
    Returns (advantages (B, T), returns = advantages + values (B, T)), zero on padding.
    """
    values = values * mask
    rewards = rewards * mask
    n_steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)  # (B, T)
    last_gae = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(n_steps)):
        next_value = values[:, t + 1] if t + 1 < n_steps else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = (delta + gamma * lam * last_gae) * mask[:, t]
        advantages[:, t] = last_gae
    returns = (advantages + values) * mask
    return advantages, returns


def compute_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float) -> tuple[torch.Tensor, float]:
    """Clipped value loss 0.5 * max((V - R)^2, (clip(V, V_old +- clip) - R)^2) per token (B, T).

    Returns (per-token loss (B, T), fraction of tokens where the clipped term was larger).
    """
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped - returns) ** 2
    frac = float(masked_mean((loss_clipped > loss_unclipped).float(), mask))
    return 0.5 * torch.max(loss_unclipped, loss_clipped), frac


# ---------------------------------------------------------------------- the algorithm, for the trainer


def validate(cfg: AlgorithmConfig) -> None:
    """Nothing PPO-specific to refuse: beta = 0 (no KL penalty) is pure score maximisation, and allowed."""


def compute_advantages(cfg: AlgorithmConfig, batch: AdvantageInputs, state: dict[str, Any]) -> Advantages:
    """GAE over per-token rewards (score at the last token, -beta * KL on every token), optionally whitened."""
    mask = batch.mask  # (B, T)
    if batch.ref_logp is not None:
        kl_old = compute_kl(batch.old_logp, batch.ref_logp, cfg.kl_estimator)  # (B, T)
    else:
        kl_old = torch.zeros_like(mask)
    token_rewards = compute_ppo_rewards(batch.rewards, kl_old, mask, cfg.beta)  # (B, T)
    advantages, returns = compute_gae(token_rewards, batch.old_values, mask, cfg.gamma, cfg.lam)  # (B, T) each
    if cfg.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    return Advantages(advantages, returns=returns)


def compute_loss(cfg: AlgorithmConfig, mb: LossInputs) -> Loss:
    """Clipped ratio per token (the KL is already in the rewards) plus vf_coef x the clipped value loss."""
    per_token, ratio = compute_clipped_surrogate(mb.logp, mb.old_logp, mb.advantages, cfg.epsilon, cfg.clip_high)  # (b, T)
    policy_loss = (per_token * mb.weights).sum()
    value_tok, clipfrac = compute_value_loss(mb.values, mb.old_values, mb.returns, mb.mask, cfg.cliprange_value)  # (b, T)
    value_loss = (value_tok * mb.value_weights).sum()
    return Loss(loss=policy_loss + cfg.vf_coef * value_loss, policy_loss=policy_loss, ratio=ratio.detach(),
                value_loss=value_loss, value_clipfrac=clipfrac)


def compute_push(cfg: AlgorithmConfig, mb: LossInputs, ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-dL/d(log pi_t) of the policy term: w_t * r_t * A_t (one GAE advantage per token), 0 where clipped.

    The value loss does not depend on log pi_t, and the KL is in the rewards, so it reaches tokens through A_t."""
    return compute_clipped_push(ratio, mb.advantages, mb.weights, cfg.epsilon, cfg.clip_high)


PPO = Algorithm(
    name="ppo",
    label="PPO",
    description="Proximal Policy Optimization as in classic RLHF: a value head, GAE over per-token rewards, "
                "the KL penalty folded into the reward.",
    paper="arXiv 1707.06347, GAE arXiv 1506.02438",
    needs_value_head=True,
    settings=("vf_coef", "cliprange_value", "gamma", "lam", "whiten_advantages"),
    metric_keys=frozenset({"loss/value", "value/mean", "value/clipfrac"}),
    validate=validate,
    compute_advantages=compute_advantages,
    compute_loss=compute_loss,
    compute_push=compute_push,
    kl_in_loss=False,
    loss_formula=r"\mathcal{L} = -\sum_{i,t} w_{i,t}\,\min\big(r_{i,t} A_{i,t},\ \mathrm{clip}(r_{i,t},\,1-\varepsilon_{low},\,"
                 r"1+\varepsilon_{high})\,A_{i,t}\big) + c_v\,\mathcal{L}_V",
    advantage_formula=r"A_{i,t} = \sum_{l \ge 0} (\gamma\lambda)^l \delta_{i,t+l},\quad \delta_{i,t} = \rho_{i,t} + "
                      r"\gamma V_{i,t+1} - V_{i,t},\quad \rho_{i,t} = -\beta\,\mathrm{KL}_{i,t} + R_i [t = \text{last}]",
    push_formula=r"c_{i,t} = -\frac{\partial \mathcal{L}}{\partial \log \pi_{i,t}} = w_{i,t}\, r_{i,t}\, A_{i,t}"
                 r"\quad(0 \text{ where } r_{i,t} \text{ is clipped})",
)
