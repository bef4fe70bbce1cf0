"""RL algorithms for language models as pure tensor math: advantages, losses, KL, GAE.

Each module reads top to bottom in one sitting; the trainer (llmrl_core/lm_rl/trainer.py) does the
model calls and feeds these functions plain tensors. Shapes: B sequences, T completion tokens.
"""

from llmrl_core.lm_rl.algorithms.common import (
    compute_clip_stats,
    compute_clipped_surrogate,
    compute_entropy,
    compute_kl,
    compute_token_logprobs,
    compute_token_weights,
    masked_mean,
    masked_whiten,
)
from llmrl_core.lm_rl.algorithms.grpo import compute_grpo_advantages, compute_group_reward_stats
from llmrl_core.lm_rl.algorithms.ppo import ValueHead, compute_gae, compute_ppo_rewards, compute_value_loss
from llmrl_core.lm_rl.algorithms.reinforce import compute_reinforce_advantages, compute_reinforce_loss, update_baseline
from llmrl_core.lm_rl.algorithms.rloo import compute_rloo_advantages

ALGORITHMS = ("grpo", "rloo", "reinforce", "ppo")

__all__ = [
    "ALGORITHMS", "ValueHead", "compute_clip_stats", "compute_clipped_surrogate", "compute_entropy", "compute_gae",
    "compute_group_reward_stats", "compute_grpo_advantages", "compute_kl", "compute_ppo_rewards",
    "compute_reinforce_advantages", "compute_reinforce_loss", "compute_rloo_advantages", "compute_token_logprobs",
    "compute_token_weights", "compute_value_loss", "masked_mean", "masked_whiten", "update_baseline",
]
