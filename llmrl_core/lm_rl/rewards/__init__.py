"""Reward functions for RL fine-tuning, with TRL's interface, and their registry.

    fn(prompts=[...], completions=[...], **columns) -> [float | None, ...]

`build_reward(spec)` makes one from a plain dict (`{"type": "vader", "name": ..., "weight": ...,
**params}`); `build_reward_set(specs)` makes a weighted `RewardSet` whose `score()` returns
per-reward arrays and the weighted total. Plain TRL reward functions drop in through
`RewardSet.from_callables`. `REWARD_TYPES` lists every type with its parameters for the UI.
"""

from llmrl_core.lm_rl.rewards.base import (
    NamedReward,
    RewardError,
    RewardFn,
    RewardScores,
    RewardSet,
    RewardType,
)
from llmrl_core.lm_rl.rewards.registry import REWARD_TYPES, build_reward, build_reward_set, parse_spec

__all__ = [
    "REWARD_TYPES",
    "NamedReward",
    "RewardError",
    "RewardFn",
    "RewardScores",
    "RewardSet",
    "RewardType",
    "build_reward",
    "build_reward_set",
    "parse_spec",
]
