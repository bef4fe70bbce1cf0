"""PPO for language models in the classic RLHF form (Ziegler et al. 2019; Ouyang et al. 2022).

* The reward is given per token: -beta * KL(policy || reference) at every token, plus the
  scalar reward of the whole completion at its last token (compute_ppo_rewards).
* A value head (one linear layer on the policy's last hidden state) predicts the return.
* Advantages come from GAE (Schulman et al. 2015, arXiv 1506.02438) and are whitened.
* The policy loss is the clipped ratio (arXiv 1707.06347, eq. 7, in common.py); the value
  loss is clipped around the old values, as in the reference PPO implementations.
"""

from __future__ import annotations

import torch
from torch import nn

from llmrl_core.lm_rl.algorithms.common import masked_mean


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
