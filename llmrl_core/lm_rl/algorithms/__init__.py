"""RL algorithms for language models: pure tensor math per algorithm, and a registry of them.

Each module reads top to bottom in one sitting and ends with its `Algorithm` (spec.py): what it
needs, its config checks, its advantages and its loss. The update (llmrl_core/lm_rl/update.py)
does the model calls, feeds these functions plain tensors, and picks the algorithm with
`get_algorithm(cfg.algorithm)` (registry.py). Shapes: B sequences, T completion tokens.
"""

from llmrl_core.lm_rl.algorithms.common import (
    compute_clip_stats,
    compute_clipped_push,
    compute_clipped_surrogate,
    compute_entropy,
    compute_kl,
    compute_kl_push,
    compute_token_logprobs,
    compute_token_weights,
    masked_mean,
    masked_whiten,
)
from llmrl_core.lm_rl.algorithms.grpo import compute_grpo_advantages, compute_group_reward_stats
from llmrl_core.lm_rl.algorithms.ppo import ValueHead, compute_gae, compute_ppo_rewards, compute_value_loss
from llmrl_core.lm_rl.algorithms.registry import ALGORITHMS, REGISTRY, get_algorithm
from llmrl_core.lm_rl.algorithms.reinforce import compute_reinforce_advantages, compute_reinforce_loss, update_baseline
from llmrl_core.lm_rl.algorithms.rloo import compute_rloo_advantages
from llmrl_core.lm_rl.algorithms.spec import AdvantageInputs, Advantages, Algorithm, Loss, LossInputs

__all__ = [
    "ALGORITHMS", "AdvantageInputs", "Advantages", "Algorithm", "Loss", "LossInputs", "REGISTRY", "ValueHead",
    "compute_clip_stats", "compute_clipped_push", "compute_clipped_surrogate", "compute_entropy", "compute_gae", "compute_group_reward_stats",
    "compute_grpo_advantages", "compute_kl", "compute_kl_push", "compute_ppo_rewards", "compute_reinforce_advantages",
    "compute_reinforce_loss", "compute_rloo_advantages", "compute_token_logprobs", "compute_token_weights",
    "compute_value_loss", "get_algorithm", "masked_mean", "masked_whiten", "update_baseline",
]
