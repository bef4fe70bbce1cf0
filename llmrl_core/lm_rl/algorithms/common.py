"""Math shared by every algorithm: token log-probs, entropy, KL estimators, the clipped ratio, loss weights.

All functions are pure: tensors in, tensors out, no model calls. Shapes use B for sequences
(prompts x samples) and T for completion positions; `mask` is 1.0 on real completion tokens
(up to and including EOS) and 0.0 on padding after it.

References: PPO clipped surrogate, arXiv 1707.06347; KL estimators k1/k3, J. Schulman,
"Approximating KL divergence" (2020); loss aggregation names as in TRL's GRPOConfig.loss_type.
"""

from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
KL_ESTIMATORS = ("k1", "k3")


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where mask is 1 (over everything, or along `dim`); 0 where the mask is empty."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Shift and scale `values` to zero mean, unit variance over the masked entries (PPO advantages)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def compute_token_logprobs(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """log p(token) for each chosen token: logits (B, T, V), token_ids (B, T) -> (B, T), in float32.

    Uses gather minus logsumexp instead of a full log_softmax, so no second (B, T, V) tensor is kept.
    """
    logits = logits.float()
    chosen = logits.gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return chosen - torch.logsumexp(logits, dim=-1)  # (B, T)


@torch.no_grad()
def compute_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's next-token distribution: logits (B, T, V) -> (B, T)."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    return -(logp.exp() * logp).sum(-1)  # (B, T)


def compute_kl(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from sampled tokens' log-probs (B, T) -> (B, T).

    k1 = log pi - log ref: unbiased, can be negative per token.
    k3 = exp(log ref - log pi) - (log ref - log pi) - 1: unbiased, always >= 0, lower variance (GRPO's choice).
    """
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k3":
        log_ratio = ref_logp - logp
        return torch.exp(log_ratio) - log_ratio - 1.0
    raise ValueError(f"Unknown KL estimator {estimator!r}; use one of {KL_ESTIMATORS}.")


def compute_clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped policy loss per token (arXiv 1707.06347, eq. 7), negated for minimisation.

    logp, old_logp: (B, T); advantages: (B,) per sequence or (B, T) per token.
    Returns (per-token loss (B, T), ratio (B, T)).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # (B, 1): one advantage for every token of a sequence
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    return -torch.min(unclipped, clipped), ratio


@torch.no_grad()
def compute_clip_stats(
    ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, eps_low: float, eps_high: float
) -> dict[str, float]:
    """Fractions of tokens whose ratio was clipped, with TRL's names (low, high, region).

    Low: ratio below 1 - eps where the advantage is negative; high: above 1 + eps where it is positive.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    low = (ratio < 1.0 - eps_low) & (advantages < 0)
    high = (ratio > 1.0 + eps_high) & (advantages > 0)
    return {
        "clip_ratio/low_mean": float(masked_mean(low.float(), mask)),
        "clip_ratio/high_mean": float(masked_mean(high.float(), mask)),
        "clip_ratio/region_mean": float(masked_mean((low | high).float(), mask)),
    }


def compute_token_weights(mask: torch.Tensor, loss_type: str, max_completion_length: int) -> torch.Tensor:
    """Weights (B, T) such that loss = sum(weights * per_token_loss), for TRL's three aggregations.

    grpo:    mean over each sequence's tokens, then mean over sequences (long answers weigh less per token).
    dapo:    mean over all tokens of the batch (every token counts the same; TRL's default).
    dr_grpo: sum over tokens / (B * max_completion_length) (no length bias at all; arXiv 2503.20783).
    Weights are computed for the whole batch, so micro-batches can sum their share and add up exactly.
    """
    n_seq = mask.shape[0]
    if loss_type == "grpo":
        return mask / mask.sum(1, keepdim=True).clamp(min=1.0) / n_seq
    if loss_type == "dapo":
        return mask / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return mask / (n_seq * max_completion_length)
    raise ValueError(f"Unknown loss type {loss_type!r}; use one of {LOSS_TYPES}.")


# ---------------------------------------------------------------------- what the update does to each token
#
# The "push" on a token is minus the gradient of the loss with respect to that token's log-prob,
# -dL/d(log pi_t): positive means this update makes the token more likely, negative less likely. Gradient
# descent moves log pi_t by about lr x push_t x |d log pi_t / d theta|^2, so the push is the part of the update
# the loss decides, token by token (the model's geometry decides the rest). tests/unit/test_token_push.py
# checks every formula below against autograd on the algorithms' own losses.


def compute_clipped_push(ratio: torch.Tensor, advantages: torch.Tensor, weights: torch.Tensor, eps_low: float,
                         eps_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-dL/d(log pi_t) of the clipped surrogate sum_t w_t * -min(r_t A, clip(r_t) A): (push (B, T), clipped (B, T)).

    d(r_t A)/d(log pi_t) = r_t A where the unclipped term is the smaller one; where the ratio has left the trust
    region in the advantage's direction (r > 1 + eps_high with A > 0, r < 1 - eps_low with A < 0) the clipped
    constant wins and the token gets no gradient. ratio, weights: (B, T); advantages (B,) or (B, T).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # (B, 1)
    clipped = ((ratio > 1.0 + eps_high) & (advantages > 0)) | ((ratio < 1.0 - eps_low) & (advantages < 0))  # (B, T)
    push = torch.where(clipped, torch.zeros_like(ratio), weights * ratio * advantages)  # (B, T)
    return push, clipped


def compute_kl_push(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str, beta: float,
                    weights: torch.Tensor) -> torch.Tensor:
    """-dL/d(log pi_t) of the KL term sum_t w_t * beta * KL_t (B, T): always toward the reference.

    k1 = log pi - log ref: d/d(log pi) = 1, so every token is pushed down by beta * w.
    k3 = e^(log ref - log pi) - (log ref - log pi) - 1: d/d(log pi) = 1 - pi_ref / pi, which pushes a token
    up where the reference likes it more than the policy does, and down where it likes it less.
    """
    if estimator == "k1":
        grad = torch.ones_like(logp)
    elif estimator == "k3":
        grad = 1.0 - torch.exp(ref_logp - logp)
    else:
        raise ValueError(f"Unknown KL estimator {estimator!r}; use one of {KL_ESTIMATORS}.")
    return -beta * weights * grad  # (B, T)
