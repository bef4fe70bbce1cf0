"""The fast rollout sampler against `model.generate`: greedy tokens equal, sampling from the same distribution."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from llmrl_core.lm.fast_generate import filter_logits, sample_completions_fast, use_weights_dtype

PROMPTS = ["Hello there", "The sky is very", "Once", "A long time ago in a galaxy"]


def _batch(lm, prompts, samples=1):
    enc = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    assert lm.tokenizer.padding_side == "left"
    return enc["input_ids"].repeat_interleave(samples, 0), enc["attention_mask"].repeat_interleave(samples, 0)


def _generate(lm, ids, mask, eos, **kw):
    with torch.inference_mode():
        out = lm.model.generate(input_ids=ids, attention_mask=mask, pad_token_id=lm.tokenizer.pad_token_id,
                                eos_token_id=eos, **kw)
    return out[:, ids.shape[1]:]


def _fast(lm, ids, mask, eos, **kw):
    return sample_completions_fast(lm.model, ids, mask, eos_token_ids=eos, pad_token_id=lm.tokenizer.pad_token_id, **kw)


@pytest.mark.parametrize(("samples", "share"), [(1, False), (3, False), (3, True)])
def test_greedy_equals_generate_with_left_padding(tiny_lm, samples, share):
    """In float32 even the shared prefill gives generate's tokens on the tiny model (bf16 rounding can differ)."""
    ids, mask = _batch(tiny_lm, PROMPTS, samples)
    assert (mask == 0).any()  # some rows are left-padded
    eos = [tiny_lm.tokenizer.eos_token_id]
    plain = _generate(tiny_lm, ids, mask, eos, do_sample=False, max_new_tokens=12)
    fast = _fast(tiny_lm, ids, mask, eos, do_sample=False, max_new_tokens=12, share_prefill=share)
    assert fast.shape == plain.shape and torch.equal(fast, plain)


def test_greedy_equals_generate_when_rows_end_early(tiny_lm):
    ids, mask = _batch(tiny_lm, PROMPTS, 2)
    free = _generate(tiny_lm, ids, mask, [], do_sample=False, max_new_tokens=10)  # (8, 10) no EOS at all
    # end row 0 at its 3rd token and every row that emits the same token; others run on
    eos = [int(free[0, 2]), tiny_lm.tokenizer.eos_token_id]
    plain = _generate(tiny_lm, ids, mask, eos, do_sample=False, max_new_tokens=10)
    fast = _fast(tiny_lm, ids, mask, eos, do_sample=False, max_new_tokens=10)
    assert torch.equal(fast, plain)
    assert (fast[0, 3:] == tiny_lm.tokenizer.pad_token_id).all()
    # every row ends: decoding stops early, as generate does
    all_end = [int(t) for t in free[:, 1]]
    plain = _generate(tiny_lm, ids, mask, all_end, do_sample=False, max_new_tokens=10)
    fast = _fast(tiny_lm, ids, mask, all_end, do_sample=False, max_new_tokens=10)
    assert fast.shape[1] == plain.shape[1] <= 2 and torch.equal(fast, plain)


def test_greedy_equal_with_bf16_weights_and_weights_restored(tiny_lm):
    ids, mask = _batch(tiny_lm, PROMPTS, 2)
    eos = [tiny_lm.tokenizer.eos_token_id]
    params = list(tiny_lm.model.parameters())
    before = [p.detach().clone() for p in params]
    with use_weights_dtype(tiny_lm.model, torch.bfloat16):
        assert all(p.dtype == torch.bfloat16 for p in tiny_lm.model.parameters())
        plain = _generate(tiny_lm, ids, mask, eos, do_sample=False, max_new_tokens=8)
        fast = _fast(tiny_lm, ids, mask, eos, do_sample=False, max_new_tokens=8)
    assert torch.equal(fast, plain)
    after = list(tiny_lm.model.parameters())
    assert all(a is b for a, b in zip(params, after))  # the same Parameter objects (optimizer references)
    assert all(p.dtype == torch.float32 and torch.equal(p, q) for p, q in zip(after, before))


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [
    (1.0, 0, 1.0), (0.7, 0, 1.0), (1.0, 5, 1.0), (1.3, 0, 0.9), (0.8, 20, 0.8), (1.0, 3, 0.5), (2.0, 50, 0.95),
])
def test_filter_keeps_the_distribution_of_transformers_warpers(temperature, top_k, top_p):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 500, generator=gen) * 3  # (b, V)
    logits[0, :8] = 10.0  # a tie at the top that top-k must keep whole
    expected = logits.clone()
    for warper in ([TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []) + \
            ([TopKLogitsWarper(top_k)] if top_k else []) + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else []):
        expected = warper(None, expected)
    expected_probs = expected.softmax(-1)  # (b, V)
    cand, ids = filter_logits(logits.clone(), temperature, top_k, top_p)
    probs = torch.zeros_like(expected_probs)
    if ids is None:
        probs = cand.softmax(-1)
    else:
        probs.scatter_(1, ids, cand.softmax(-1))
    # rows 1-5 have no ties: the same probabilities token by token
    torch.testing.assert_close(probs[1:], expected_probs[1:], atol=1e-6, rtol=1e-5)
    # row 0's tied top tokens may lose a different one of them to top-p (an arbitrary tie order): same values
    torch.testing.assert_close(probs[0].sort().values, expected_probs[0].sort().values, atol=1e-6, rtol=1e-5)


def test_same_seed_same_samples(tiny_lm):
    ids, mask = _batch(tiny_lm, PROMPTS, 4)
    eos = [tiny_lm.tokenizer.eos_token_id]
    kw = dict(max_new_tokens=10, temperature=0.9, top_k=40, top_p=0.95)
    a = _fast(tiny_lm, ids, mask, eos, generator=torch.Generator().manual_seed(5), **kw)
    b = _fast(tiny_lm, ids, mask, eos, generator=torch.Generator().manual_seed(5), **kw)
    c = _fast(tiny_lm, ids, mask, eos, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(11)  # without a generator: the global RNG, as generate
    d = _fast(tiny_lm, ids, mask, eos, **kw)
    torch.manual_seed(11)
    assert torch.equal(d, _fast(tiny_lm, ids, mask, eos, **kw))
    assert len({tuple(r) for r in a[:4].tolist()}) > 1  # the 4 samples of one prompt differ


def test_a_vanishing_top_p_is_greedy(tiny_lm):
    ids, mask = _batch(tiny_lm, PROMPTS, 2)
    eos = [tiny_lm.tokenizer.eos_token_id]
    greedy = _generate(tiny_lm, ids, mask, eos, do_sample=False, max_new_tokens=8)
    sampled = _fast(tiny_lm, ids, mask, eos, max_new_tokens=8, temperature=1.0, top_p=1e-6, top_k=0)
    assert torch.equal(sampled, greedy)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.7, 6, 1.0), (1.5, 30, 0.6), (1.0, 10, 0.9)])
def test_first_token_distribution_matches_generate(tiny_lm, temperature, top_k, top_p):
    """Draw the first token 3000 times with each sampler; both match the warped distribution (and each other)."""
    n = 3000
    ids, mask = _batch(tiny_lm, ["The sky is very"], n)
    eos = [tiny_lm.tokenizer.eos_token_id]
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=1)
    torch.manual_seed(0)
    plain = _generate(tiny_lm, ids[:1].expand(n, -1), mask[:1].expand(n, -1), eos, do_sample=True, **kw)[:, 0]
    fast = _fast(tiny_lm, ids, mask, eos, generator=torch.Generator().manual_seed(1), **kw)[:, 0]
    with torch.inference_mode():
        logits = tiny_lm.model(input_ids=ids[:1], attention_mask=mask[:1]).logits[:, -1].float()  # (1, V)
    cand, cand_ids = filter_logits(logits.clone(), temperature, top_k, top_p)
    probs = torch.zeros_like(logits).scatter_(1, cand_ids, cand.softmax(-1)) if cand_ids is not None else cand.softmax(-1)
    support = set(probs[0].nonzero().squeeze(1).tolist())
    assert 2 <= len(support) <= top_k
    for drawn in (plain, fast):
        assert set(drawn.tolist()) <= support  # never a token top-k/top-p removed
        freq = torch.bincount(drawn, minlength=probs.shape[1]).float() / n
        tv = 0.5 * (freq - probs[0]).abs().sum()  # total variation; sampling noise here is about 0.02-0.05
        assert tv < 0.08, (tv, drawn)
    tv_between = 0.5 * (torch.bincount(plain, minlength=probs.shape[1]) - torch.bincount(fast, minlength=probs.shape[1])).abs().sum() / n
    assert tv_between < 0.1


def test_use_threads_sets_and_restores():
    from llmrl_core.lm.threads import use_threads

    before = torch.get_num_threads()
    with use_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with use_threads(None):
        assert torch.get_num_threads() == before


def test_greedy_equals_generate_through_a_lora_wrapper(tiny_lm):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_lm.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    ids, mask = _batch(tiny_lm, PROMPTS, 2)
    eos = [tiny_lm.tokenizer.eos_token_id]
    with torch.inference_mode():
        plain = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=6,
                               pad_token_id=tiny_lm.tokenizer.pad_token_id, eos_token_id=eos)[:, ids.shape[1]:]
    fast = sample_completions_fast(model, ids, mask, max_new_tokens=6, eos_token_ids=eos,
                                   pad_token_id=tiny_lm.tokenizer.pad_token_id, do_sample=False)
    assert torch.equal(fast, plain)


def test_draw_from_logits_follows_the_softmax_and_never_draws_minus_inf():
    """Inverse-CDF draws against softmax probabilities computed by hand, on a row with -inf entries."""
    from llmrl_core.lm.fast_generate import draw_from_logits

    # exp of the logits 0, ln 2, ln 3 (and -inf): probabilities 1/6, 2/6, 3/6 and 0
    inf = float("inf")
    row = torch.tensor([-inf, 0.0, math.log(2.0), -inf, math.log(3.0), -inf])
    n = 60_000
    draws = draw_from_logits(row.expand(n, -1).clone(), torch.Generator().manual_seed(0))  # (n,)
    freq = torch.bincount(draws, minlength=6).double() / n
    assert freq[[0, 3, 5]].sum() == 0  # a -inf logit (a filtered token) is never drawn, the first one included
    torch.testing.assert_close(freq[[1, 2, 4]], torch.tensor([1 / 6, 2 / 6, 3 / 6], dtype=torch.float64),
                               atol=0.01, rtol=0)  # binomial sd at n=60k: under 0.0021
    again = draw_from_logits(row.expand(n, -1).clone(), torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_draw_from_logits_keeps_a_rare_token_at_the_end_of_a_large_vocabulary():
    """A token of probability ~1/2 placed after 49151 tokens of tiny weight is drawn about half the time,
    and a single large-logit token is always drawn (no rounding in the cumulative sum moves the mass)."""
    from llmrl_core.lm.fast_generate import draw_from_logits

    vocab = 49_152
    logits = torch.full((4000, vocab), -12.0)
    logits[:, -1] = torch.logsumexp(torch.full((vocab - 1,), -12.0), 0)  # the last token holds half the mass
    freq_last = (draw_from_logits(logits, torch.Generator().manual_seed(1)) == vocab - 1).double().mean()
    assert abs(freq_last - 0.5) < 0.03  # sd 0.008 at 4000 draws
    peaked = torch.full((8, vocab), -1e4)
    peaked[torch.arange(8), torch.arange(8) * 1000] = 0.0
    assert draw_from_logits(peaked).tolist() == [i * 1000 for i in range(8)]
