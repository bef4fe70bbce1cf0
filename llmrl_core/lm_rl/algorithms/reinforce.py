"""REINFORCE with a moving-average baseline: the plain policy gradient (Williams 1992).

grad J = E[(R - b) * grad log pi(completion)], where b is an exponential moving average of
past batches' mean reward. Subtracting b lowers the variance without biasing the gradient,
because b does not depend on the current sample. No ratio, no clipping: one update per batch.
"""

from __future__ import annotations

import torch


def compute_reinforce_advantages(rewards: torch.Tensor, baseline: float | None) -> torch.Tensor:
    """Advantages R - b for rewards (B,); with no baseline yet (first batch) b is this batch's mean."""
    b = float(rewards.mean()) if baseline is None else baseline
    return rewards - b  # (B,)


def update_baseline(baseline: float | None, rewards: torch.Tensor, decay: float) -> float:
    """Exponential moving average of the batch mean reward: b <- decay * b + (1 - decay) * mean(R)."""
    batch_mean = float(rewards.mean())
    if baseline is None:
        return batch_mean
    return decay * baseline + (1.0 - decay) * batch_mean


def compute_reinforce_loss(logp: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Per-token REINFORCE loss -(R - b) * log pi(token): logp (B, T), advantages (B,) -> (B, T)."""
    return -advantages.unsqueeze(1) * logp
