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

from typing import Any

import torch

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.algorithms.common import compute_clipped_push, compute_clipped_surrogate
from llmrl_core.lm_rl.algorithms.spec import AdvantageInputs, Advantages, Algorithm, AlgorithmConfig, Loss, LossInputs



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


# ---------------------------------------------------------------------- the algorithm, for the trainer


def check_groups(cfg: AlgorithmConfig) -> None:
    """Algorithms that compare the samples of one prompt (GRPO, RLOO) need at least two of them."""
    if cfg.num_generations < 2:
        raise InputError(
            f"{cfg.algorithm.upper()} compares samples of the same prompt: set num_generations to 2 or more "
            f"(got {cfg.num_generations}), or choose reinforce or ppo for one sample per prompt."
        )


def compute_advantages(cfg: AlgorithmConfig, batch: AdvantageInputs, state: dict[str, Any]) -> Advantages:
    """GRPO's group-normalised advantages, one per completion (B,)."""
    return Advantages(compute_grpo_advantages(batch.rewards, cfg.num_generations, cfg.scale_rewards))


def compute_clipped_loss(cfg: AlgorithmConfig, mb: LossInputs) -> Loss:
    """PPO's clipped ratio with one advantage per completion, plus beta * KL per token (GRPO and RLOO).

    The loss is sum(weights * per-token loss), so the micro-batches of a batch add up to its loss.
    """
    per_token, ratio = compute_clipped_surrogate(mb.logp, mb.old_logp, mb.advantages, cfg.epsilon, cfg.clip_high)  # (b, T)
    if mb.kl is not None:
        per_token = per_token + cfg.beta * mb.kl  # (b, T)
    policy_loss = (per_token * mb.weights).sum()
    return Loss(loss=policy_loss, policy_loss=policy_loss, ratio=ratio.detach())


def compute_push(cfg: AlgorithmConfig, mb: LossInputs, ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-dL/d(log pi_t) of the clipped ratio term (GRPO and RLOO): w_t * r_t * A, 0 where clipped."""
    return compute_clipped_push(ratio, mb.advantages, mb.weights, cfg.epsilon, cfg.clip_high)


CLIPPED_LOSS_FORMULA = (
    r"\mathcal{L} = -\sum_{i,t} w_{i,t}\,\min\big(r_{i,t} A_i,\ \mathrm{clip}(r_{i,t},\,1-\varepsilon_{low},\,"
    r"1+\varepsilon_{high})\,A_i\big) + \beta \sum_{i,t} w_{i,t}\,\mathrm{KL}_{i,t}")
CLIPPED_PUSH_FORMULA = (
    r"c_{i,t} = -\frac{\partial \mathcal{L}}{\partial \log \pi_{i,t}} = w_{i,t}\, r_{i,t}\, A_i"
    r"\quad(0 \text{ where } r_{i,t} \text{ is clipped})")


GRPO = Algorithm(
    name="grpo",
    label="GRPO",
    description="Group Relative Policy Optimization: each sample's reward against its prompt's other samples "
                "(needs num_generations >= 2); no value model.",
    paper="arXiv 2402.03300",
    needs_groups=True,
    settings=("scale_rewards",),
    validate=check_groups,
    compute_advantages=compute_advantages,
    compute_loss=compute_clipped_loss,
    compute_push=compute_push,
    loss_formula=CLIPPED_LOSS_FORMULA,
    advantage_formula=r"A_i = \frac{R_i - \mathrm{mean}(R_{\text{group}})}{\mathrm{std}(R_{\text{group}}) + 10^{-4}}"
                      r"\quad(\text{scale\_rewards off: } A_i = R_i - \mathrm{mean}(R_{\text{group}}))",
    push_formula=CLIPPED_PUSH_FORMULA,
)
