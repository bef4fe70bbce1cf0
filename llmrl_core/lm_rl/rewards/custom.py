"""A reward written by the user as Python, run in a separate worker process (llmrl_core.core.sandbox).

Only built when the caller allows custom code (llmrl_core.core.security.custom_code_allowed
decides for the app); the worker is killed and restarted when a call runs past its limit.
"""

from __future__ import annotations

from typing import Any

from llmrl_core.lm_rl.rewards.base import RewardFn
from llmrl_core.core.sandbox import CodeSandbox

FUNCTION_NAME = "reward"
EXAMPLE_CODE = '''def reward(prompts, completions, **kwargs):
    """One number (or None) per completion; kwargs holds the prompt set's extra columns."""
    return [1.0 if "!" in c else 0.0 for c in completions]
'''


def make_custom_reward(params: dict[str, Any]) -> RewardFn:
    """Start a worker running the user's `def reward(prompts, completions, **kwargs)`; `.close()` stops it."""
    sandbox = CodeSandbox(params["code"], FUNCTION_NAME, timeout_s=params["timeout_s"])

    def custom_reward(prompts: list[str], completions: list[str], **columns: Any) -> Any:
        return sandbox(prompts=prompts, completions=completions, **columns)

    custom_reward.close = sandbox.close  # type: ignore[attr-defined]  # picked up by NamedReward
    custom_reward.sandbox = sandbox  # type: ignore[attr-defined]
    return custom_reward
