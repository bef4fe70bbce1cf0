"""The language-model policy: TWOSOME action probabilities, the cached instruction prefix, the value head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrl_core.agent.config import AgentConfig
from llmrl_core.agent.policy import TextPolicy
from llmrl_core.agent.text_env import get_adapter, render_state
from llmrl_core.core.errors import InputError


def _policy(lm, words=("left", "right"), normalisation="token") -> TextPolicy:
    cfg = AgentConfig(action_words=list(words), instruction=f"Push the cart {' or '.join(words)}.\n")
    return TextPolicy(lm.model, lm.tokenizer, cfg.instruction, cfg.action_words, normalisation, "cpu")


def _states(lm, n=3) -> list[str]:
    adapter = get_adapter("CartPole-v1")
    rng = np.random.default_rng(0)
    return [render_state(adapter, adapter.state_template, rng.normal(0, 0.1, 4)) for _ in range(n)]


def _direct_scores(lm, policy: TextPolicy, state: str) -> torch.Tensor:
    """Each action's summed token log-prob from one plain forward of the full prompt + action, per token count."""
    scores = []
    for ids in policy.action_ids:
        prompt = policy.prefix_ids + policy.encode(state)
        full = torch.tensor([prompt + ids])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(full).logits[0].float(), dim=-1)  # (L, V)
        total = sum(float(logp[len(prompt) - 1 + j, tok]) for j, tok in enumerate(ids))
        scores.append(total / len(ids))
    return torch.tensor(scores)


def test_action_probabilities_sum_to_one_and_match_a_direct_computation(tiny_lm) -> None:
    policy = _policy(tiny_lm)
    states = _states(tiny_lm)
    with torch.no_grad():
        out = policy.forward_states(policy.encode_states(states))
    probs = out.logp.exp()
    assert probs.shape == (3, 2)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    for b, state in enumerate(states):
        expected = torch.softmax(_direct_scores(tiny_lm, policy, state), dim=-1)
        torch.testing.assert_close(probs[b], expected, atol=1e-5, rtol=1e-5)


def test_multi_token_action_words_are_normalised_per_token(tiny_lm) -> None:
    policy = _policy(tiny_lm, words=("zorblaxwise", "right"))
    assert not policy.single_token and len(policy.action_ids[0]) > 1
    states = _states(tiny_lm, 2)
    with torch.no_grad():
        out = policy.forward_states(policy.encode_states(states))
    for b, state in enumerate(states):
        torch.testing.assert_close(out.scores[b], _direct_scores(tiny_lm, policy, state), atol=1e-5, rtol=1e-5)
    word = _policy(tiny_lm, words=("zorblaxwise", "right"), normalisation="none")
    with torch.no_grad():
        summed = word.forward_states(word.encode_states(states)).scores
    # 'none' keeps the sum: the multi-token word's score is its token count times the per-token one.
    torch.testing.assert_close(summed[:, 0], out.scores[:, 0] * len(policy.action_ids[0]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("words", [("left", "right"), ("zorblaxwise", "right")])
def test_cached_prefix_gives_the_same_action_logprobs_as_uncached(tiny_lm, words) -> None:
    policy = _policy(tiny_lm, words=words)
    ids = policy.encode_states(_states(tiny_lm, 4))
    with torch.no_grad():
        cached = policy.forward_states(ids, use_cache=True)
        uncached = policy.forward_states(ids, use_cache=False)
    assert (cached.logp - uncached.logp).abs().max() < 1e-5
    assert (cached.value - uncached.value).abs().max() < 1e-5


def test_gradients_flow_through_the_prefix_cache(tiny_lm) -> None:
    """With a prefix computed under grad, the loss reaches the weights that made the prefix's keys."""
    policy = _policy(tiny_lm)
    ids = policy.encode_states(_states(tiny_lm, 2))
    out = policy.forward_states(ids, prefix_kv=policy.compute_prefix_kv())
    out.logp[:, 0].sum().backward()
    grad = policy.decoder.layers[0].self_attn.k_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_action_words_with_one_token_sequence_are_refused(tiny_lm) -> None:
    policy = _policy(tiny_lm, words=("left", "right"))
    policy.action_ids[1] = list(policy.action_ids[0])  # as if two words tokenised alike
    with pytest.raises(InputError, match="same token sequence"):
        policy.check_tokenised("x", 256)


def test_a_template_over_the_context_is_refused(tiny_lm) -> None:
    cfg = AgentConfig(instruction="Push the cart left or right. " + "Keep the pole up. " * 60 + "\n")
    policy = TextPolicy(tiny_lm.model, tiny_lm.tokenizer, cfg.instruction, cfg.action_words, "token", "cpu")
    with pytest.raises(InputError, match="more than the model's context of 256"):
        policy.check_tokenised(_states(tiny_lm, 1)[0], tiny_lm.context_length)
