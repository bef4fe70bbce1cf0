"""Sentiment with VADER (Hutto & Gilbert 2014): a rule-based scorer, offline and instant on the CPU.

The compound score lies in [-1, 1]; it is the classic steering target ("make the model
write positive text") without downloading a classifier.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from llmrl_core.lm_rl.rewards.base import RewardFn


@lru_cache(maxsize=1)
def load_vader() -> Any:
    """The VADER analyzer, built once per process (reads its lexicon)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def make_vader_reward(params: dict[str, Any]) -> RewardFn:
    """VADER's compound score, negated when the target is 'negative'; in [-1, 1]."""
    sign = -1.0 if params["target"] == "negative" else 1.0
    analyzer = load_vader()

    def vader_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [sign * analyzer.polarity_scores(text)["compound"] for text in completions]

    return vader_reward
