"""Sampling: shapes and order, log-probs that match a forward pass, seeds, streaming, bad input."""

from __future__ import annotations

import pytest
import torch

from llmrl_core.core.errors import InputError
from llmrl_core.lm.generation import SamplingConfig, generate, render_prompt


@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": 0}, "max new tokens"),
    ({"temperature": 0.0}, "temperature"),
    ({"top_p": 1.5}, "top-p"),
    ({"top_k": -1}, "top-k"),
    ({"n": 0}, "number of samples"),
])
def test_sampling_config_rejects_bad_values(kwargs, message):
    with pytest.raises(InputError, match=message):
        SamplingConfig(**kwargs)


def test_batch_of_prompts_and_samples_prompt_major(tiny_lm):
    result = generate(tiny_lm, ["Hello", "The sky is"], SamplingConfig(n=3, max_new_tokens=5, seed=0), chat=False)
    assert [(c.prompt_index, c.sample_index) for c in result.completions] == [(p, s) for p in range(2) for s in range(3)]
    for c in result.completions:
        assert 1 <= len(c.token_ids) <= 5
        assert len(c.tokens) == len(c.logprobs) == len(c.top_alternatives) == len(c.token_ids)
        assert all(len(a) == 5 for a in c.top_alternatives)
        assert all(lp <= 0 for lp in c.logprobs)
    assert result.new_tokens == sum(len(c.token_ids) for c in result.completions)
    assert result.tokens_per_second > 0


def test_logprobs_match_a_forward_pass(tiny_lm):
    result = generate(tiny_lm, ["Once upon a time"], SamplingConfig(max_new_tokens=6, seed=3), chat=False)
    comp = result.completions[0]
    tok = tiny_lm.tokenizer
    prompt_ids = tok("Once upon a time", return_tensors="pt")["input_ids"]
    full = torch.cat([prompt_ids, torch.tensor([comp.token_ids])], dim=1)  # (1, P + T)
    with torch.no_grad():
        logits = tiny_lm.model(full).logits  # (1, P + T, V)
    P = prompt_ids.shape[1]
    logp = torch.log_softmax(logits[0, P - 1 : -1].float(), dim=-1)  # (T, V): position t predicts token t
    expected = logp.gather(-1, torch.tensor(comp.token_ids).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(torch.tensor(comp.logprobs), expected, atol=1e-4)
    # the chosen token's alternatives list is sorted, best first
    best = comp.top_alternatives[0]
    assert best[0][1] >= best[-1][1]


def test_seed_reproduces_and_greedy_is_deterministic(tiny_lm):
    cfg = SamplingConfig(n=2, max_new_tokens=8, seed=42)
    a = generate(tiny_lm, ["abc"], cfg, chat=False)
    b = generate(tiny_lm, ["abc"], cfg, chat=False)
    assert [c.token_ids for c in a.completions] == [c.token_ids for c in b.completions]
    g1 = generate(tiny_lm, ["abc"], SamplingConfig(greedy=True, max_new_tokens=8), chat=False)
    g2 = generate(tiny_lm, ["abc"], SamplingConfig(greedy=True, max_new_tokens=8, seed=7), chat=False)
    assert g1.completions[0].token_ids == g2.completions[0].token_ids
    # greedy picks the top alternative at each position
    assert all(c.token_ids[i] is not None for c in g1.completions for i in range(len(c.token_ids)))
    top_texts = [alts[0][0] for alts in g1.completions[0].top_alternatives]
    assert top_texts == g1.completions[0].tokens


def test_streaming_calls_back_per_step(tiny_lm):
    steps: list[tuple[int, list[int]]] = []
    result = generate(tiny_lm, ["Hi"], SamplingConfig(n=2, max_new_tokens=4, seed=1), chat=False,
                      on_step=lambda s, ids: steps.append((s, ids)))
    assert [s for s, _ in steps] == list(range(len(steps)))
    assert all(len(ids) == 2 for _, ids in steps)
    assert steps[0][1] == [c.token_ids[0] for c in result.completions]


def test_empty_prompt_and_too_many_tokens(tiny_lm):
    with pytest.raises(InputError, match="empty"):
        generate(tiny_lm, ["   "], SamplingConfig(max_new_tokens=3))
    with pytest.raises(InputError, match="context of 256 tokens"):
        generate(tiny_lm, ["Hello"], SamplingConfig(max_new_tokens=1000), chat=False)
    with pytest.raises(InputError, match="empty"):
        generate(tiny_lm, [[{"role": "user", "content": ""}]], SamplingConfig(max_new_tokens=3))


def test_chat_template_renders_messages(tiny_lm):
    text = render_prompt(tiny_lm.tokenizer, "What is RL?", chat=True, system="Be brief.")
    assert "What is RL?" in text and "Be brief." in text and text.rstrip().endswith("assistant")
    assert render_prompt(tiny_lm.tokenizer, "raw text", chat=False) == "raw text"


@pytest.mark.slow
def test_bundled_model_answers_a_chat(bundled_lm):
    result = generate(bundled_lm, ["What is the capital of France?"], SamplingConfig(greedy=True, max_new_tokens=12))
    assert "Paris" in result.completions[0].text
