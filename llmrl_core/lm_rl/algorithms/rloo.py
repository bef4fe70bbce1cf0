"""RLOO: REINFORCE Leave-One-Out (Ahmadian et al. 2024, arXiv 2402.14740, eq. 6).

Sample k completions per prompt; each completion's baseline is the mean reward of the
*other* k - 1 completions of the same prompt. The baseline does not depend on the sample
itself, so the gradient stays unbiased, and no value network is needed. The trainer feeds
these advantages to the same clipped-ratio loss as GRPO (with one update epoch the ratio is
1 and the loss is exactly REINFORCE with this baseline).
"""

from __future__ import annotations

from typing import Any

import torch

from llmrl_core.lm_rl.algorithms.grpo import (CLIPPED_LOSS_FORMULA, CLIPPED_PUSH_FORMULA, check_groups,
                                             compute_clipped_loss, compute_push)
from llmrl_core.lm_rl.algorithms.spec import AdvantageInputs, Advantages, Algorithm, AlgorithmConfig



def compute_rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Leave-one-out advantages: rewards (B,) prompt-major in groups of k = `group_size` -> (B,).

    A_i = r_i - (sum_j r_j - r_i) / (k - 1), which equals k / (k - 1) * (r_i - mean).
    """
    if group_size < 2:
        raise ValueError("RLOO needs at least 2 samples per prompt (the baseline uses the others).")
    grouped = rewards.view(-1, group_size)  # (n_prompts, k)
    others_mean = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)  # (n_prompts, k)
    return (grouped - others_mean).reshape(-1)  # (B,)


# ---------------------------------------------------------------------- the algorithm, for the trainer


def compute_advantages(cfg: AlgorithmConfig, batch: AdvantageInputs, state: dict[str, Any]) -> Advantages:
    """RLOO's leave-one-out advantages, one per completion (B,)."""
    return Advantages(compute_rloo_advantages(batch.rewards, cfg.num_generations))


RLOO = Algorithm(
    name="rloo",
    label="RLOO",
    description="REINFORCE Leave-One-Out: each sample's reward minus the mean of its prompt's other samples "
                "(needs num_generations >= 2); no value model.",
    paper="arXiv 2402.14740",
    needs_groups=True,
    validate=check_groups,
    compute_advantages=compute_advantages,
    compute_loss=compute_clipped_loss,  # GRPO's clipped ratio plus beta * KL
    compute_push=compute_push,
    loss_formula=CLIPPED_LOSS_FORMULA,
    advantage_formula=r"A_i = R_i - \frac{1}{k-1}\sum_{j \ne i} R_j",
    push_formula=CLIPPED_PUSH_FORMULA,
)
