"""GRPO: Group Relative Policy Optimization (Shao et al. 2024, arXiv 2402.03300, section 4.1).

Sample G completions per prompt; each completion's advantage is its reward relative to its
own group: (r - mean_group) / std_group. No value network. The policy loss is PPO's clipped
ratio (llmrl_core.lm_rl.algorithms.common.compute_clipped_surrogate) with one advantage for every
token of a completion, plus beta * KL(policy || reference) per token.

`scale_rewards=False` drops the division by the group std (Dr. GRPO, arXiv 2503.20783):
the std scaling up-weights prompts whose rewards barely differ, which biases toward easy or
hopeless prompts.
"""

from __future__ import annotations

import torch


def compute_grpo_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: bool = True,
                            eps: float = 1e-4) -> torch.Tensor:
    """Group-normalised advantages: rewards (B,) prompt-major in groups of `group_size` -> (B,).

    The std is the sample std (unbiased, as torch.std and TRL use); eps keeps a flat group at 0.
    """
    grouped = rewards.view(-1, group_size)  # (n_prompts, G)
    mean = grouped.mean(dim=1, keepdim=True)  # (n_prompts, 1)
    advantages = grouped - mean
    if scale_rewards:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
        advantages = advantages / (std + eps)
    return advantages.reshape(-1)  # (B,)


def compute_group_reward_stats(rewards: torch.Tensor, group_size: int) -> dict[str, float]:
    """TRL's reward_std (mean of per-group stds) and frac_reward_zero_std (groups with no signal)."""
    grouped = rewards.view(-1, group_size)  # (n_prompts, G)
    std = grouped.std(dim=1) if group_size > 1 else torch.zeros(grouped.shape[0])
    return {
        "reward_std": float(std.mean()),
        "frac_reward_zero_std": float((std < 1e-8).float().mean()),
    }
