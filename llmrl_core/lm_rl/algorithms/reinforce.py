"""REINFORCE with a moving-average baseline: the plain policy gradient (Williams 1992).

grad J = E[(R - b) * grad log pi(completion)], where b is an exponential moving average of
past batches' mean reward. Subtracting b lowers the variance without biasing the gradient,
because b does not depend on the current sample. No ratio, no clipping: one update per batch.
"""

from __future__ import annotations

from typing import Any

import torch

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.algorithms.spec import AdvantageInputs, Advantages, Algorithm, AlgorithmConfig, Loss, LossInputs



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


# ---------------------------------------------------------------------- the algorithm, for the trainer


def validate(cfg: AlgorithmConfig) -> None:
    """REINFORCE has no ratio to clip, so it cannot reuse a batch: one epoch only."""
    if cfg.num_epochs != 1:
        raise InputError("REINFORCE is on-policy (no ratio, no clipping): set num_epochs to 1, or choose grpo, rloo or ppo for several update epochs.")


def init_state() -> dict[str, Any]:
    """The moving-average baseline; None until the first batch."""
    return {"baseline": None}


def compute_advantages(cfg: AlgorithmConfig, batch: AdvantageInputs, state: dict[str, Any]) -> Advantages:
    """R - b per completion (B,), then the baseline moves toward this batch's mean (in `state`)."""
    advantages = compute_reinforce_advantages(batch.rewards, state["baseline"])  # (B,)
    state["baseline"] = update_baseline(state["baseline"], batch.rewards, cfg.baseline_decay)
    return Advantages(advantages, metrics={"baseline": float(state["baseline"])})


def compute_loss(cfg: AlgorithmConfig, mb: LossInputs) -> Loss:
    """-(R - b) * log pi per token, plus beta * KL per token; the ratio is only reported."""
    per_token = compute_reinforce_loss(mb.logp, mb.advantages)  # (b, T)
    ratio = torch.exp(mb.logp.detach() - mb.old_logp)  # (b, T)
    if mb.kl is not None:
        per_token = per_token + cfg.beta * mb.kl  # (b, T)
    policy_loss = (per_token * mb.weights).sum()
    return Loss(loss=policy_loss, policy_loss=policy_loss, ratio=ratio)


REINFORCE = Algorithm(
    name="reinforce",
    label="REINFORCE",
    description="The plain policy gradient with a moving-average reward baseline; one sample per prompt is "
                "enough, one epoch per batch.",
    paper="Williams 1992",
    metric_keys=frozenset({"baseline"}),
    validate=validate,
    init_state=init_state,
    settings=("baseline_decay",),
    compute_advantages=compute_advantages,
    compute_loss=compute_loss,
    loss_formula=r"\mathcal{L} = -\sum_{i,t} w_{i,t}\,(R_i - b)\,\log \pi_{i,t} + \beta \sum_{i,t} w_{i,t}\,\mathrm{KL}_{i,t}",
    advantage_formula=r"A_i = R_i - b,\qquad b \leftarrow d\,b + (1-d)\,\mathrm{mean}(R)\ \text{after the step}",
    push_formula=r"c_{i,t} = -\frac{\partial \mathcal{L}}{\partial \log \pi_{i,t}} = w_{i,t}\,(R_i - b)",
)
