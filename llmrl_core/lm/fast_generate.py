"""Rollout sampling without `model.generate`'s per-step overhead: same tokens, same distribution.

`sample_completions_fast(model, prompt_ids, prompt_mask, ...)` returns what
`model.generate(...)[:, P:]` returns for left-padded prompts (b, P): completion ids (b, T), with
`pad_token_id` after each row's end-of-sequence token, T the step at which every row ended or
`max_new_tokens`. It calls the model's own forward with a KV cache, so a greedy decode gives the
very tokens `generate` gives; only the loop around it is leaner:
  * with `share_prefill=True`, each distinct prompt is run once and its KV cache copied to its
    samples (the prefill does 1/n of the work). Off by default: a matmul over 4 rows rounds
    differently from one over 16 in bf16, and on the bundled model greedy tokens then part from
    generate's after 16 tokens (the same distribution, not the same tokens);
  * no logits-processor stack or stopping-criteria objects: temperature, top-k and top-p are
    applied in place, top-p only over the top-k candidates when top-k is on (no full-vocabulary
    sort), with the same rules as transformers' TemperatureLogitsWarper, TopKLogitsWarper and
    TopPLogitsWarper (ties at the k-th logit kept; at least one token kept);
  * positions and masks grow in place in preallocated buffers;
  * the draw is inverse-CDF sampling (`draw_from_logits`), not torch.multinomial's exponential race,
    about 10x cheaper per token on the CPU; the same distribution, other draws for a given seed.
`use_weights_dtype(model, torch.bfloat16)` runs the model with bf16 weights for the duration:
under CPU autocast every decode step re-casts every weight (measured: 56% of a step's time in
`aten::copy_`), while one cast per rollout costs about as much as a single decode step.
Measured in bench/bench_generate.py.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Iterator, Sequence

import torch


def _cache_kwarg(model: torch.nn.Module) -> str:
    """The forward keyword for the KV cache: 'cache' in transformers 5.2x, 'past_key_values' before.

    Read from the underlying model, since a PEFT wrapper's forward passes keywords through.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _group_rows(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (u,) of the first row of each run of identical rows, and each row's run (b,)."""
    same = (prompt_ids[1:] == prompt_ids[:-1]).all(dim=1) & (prompt_mask[1:] == prompt_mask[:-1]).all(dim=1)  # (b-1,)
    starts = torch.cat([same.new_ones(1), ~same])  # (b,) True where a new prompt begins
    return starts.nonzero().squeeze(1), starts.long().cumsum(0) - 1


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits (b, C) of the candidate tokens and their vocabulary ids (b, C), or None when C is the vocabulary.

    Same rules as transformers' warpers, in their order (temperature, top-k, top-p): top-k keeps
    every token whose logit ties the k-th; top-p drops, from the least likely up, tokens whose
    cumulative probability stays at or below 1 - top_p, and always keeps the most likely. Dropped
    candidates get -inf. `logits` is float32 and may be changed in place.
    """
    if temperature != 1.0:
        logits.div_(temperature)  # (b, V)
    vocab = logits.shape[-1]
    ids = None
    if top_k and 0 < top_k < vocab:
        values, ids = torch.topk(logits, top_k, dim=-1)  # (b, k) descending
        if (logits >= values[:, -1:]).sum(dim=-1).gt(top_k).any():  # a tie at the k-th logit: keep them all
            logits.masked_fill_(logits < values[:, -1:], float("-inf"))
            ids = None
        else:
            logits = values
    if top_p is not None and top_p < 1.0:
        ascending, order = torch.sort(logits, dim=-1)  # (b, C)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)  # (b, C)
        drop = cumulative <= 1 - top_p  # (b, C)
        drop[:, -1] = False  # the most likely token always stays
        logits = logits.scatter(-1, order, ascending.masked_fill(drop, float("-inf")))  # (b, C)
    return logits, ids


def draw_from_logits(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row (b,) drawn with probability softmax(logits (b, C)); -inf entries are never drawn.

    Inverse-CDF sampling: one uniform number per row, located in the row's cumulative weights. Written here
    rather than calling torch.multinomial because on the CPU multinomial draws an exponential variate for
    every vocabulary entry (the exponential race): 25 ms for 16 rows x 49152 tokens on one thread, about
    0.8 s of a 32-token rollout, against 2-3 ms this way. The cumulative sum is float64 so that a rare
    token late in a 49k vocabulary keeps its share (float32 steps of ~1e-7 x the total would round it away).
    """
    weights = (logits - logits.amax(dim=-1, keepdim=True)).exp_()  # (b, C) unnormalised, in [0, 1]
    cdf = weights.to(torch.float64).cumsum_(dim=-1)  # (b, C) non-decreasing, cdf[:, -1] >= 1
    u = torch.rand(logits.shape[0], 1, generator=generator, dtype=torch.float64, device=logits.device)  # (b, 1) in [0, 1)
    # the first index whose cumulative weight exceeds u * total: token i with probability weight_i / total;
    # a zero weight never raises the sum past u, so it is never the first (right=True: strictly greater)
    pick = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)  # (b, 1)
    return pick.squeeze(1).clamp_(max=logits.shape[-1] - 1)  # (b,)


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row (b,) drawn from softmax(filtered logits (b, V) / temperature)."""
    cand, ids = filter_logits(logits, temperature, top_k, top_p)  # (b, C), (b, C) | None
    pick = draw_from_logits(cand, generator)  # (b,)
    return pick if ids is None else ids.gather(1, pick[:, None]).squeeze(1)  # (b,)


@torch.inference_mode()
def sample_completions_fast(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float | None = 1.0,
    top_k: int | None = 0,
    eos_token_ids: Sequence[int] | int | None = None,
    pad_token_id: int | None = None,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
    share_prefill: bool = False,
) -> torch.Tensor:
    """Completion ids (b, T) for left-padded prompts (b, P): `model.generate(...)[:, P:]`'s contract.

    With `share_prefill`, rows with the same prompt share one prefill (see the module docstring). After a row's first
    end-of-sequence token it gets `pad_token_id`; decoding stops when every row has ended.
    `generator` seeds the draws (the global RNG when None); `do_sample=False` is greedy.
    """
    device = prompt_ids.device
    b, p = prompt_ids.shape
    eos = torch.tensor(sorted({eos_token_ids} if isinstance(eos_token_ids, int) else set(eos_token_ids or ())),
                       dtype=torch.long, device=device)  # (E,)
    if pad_token_id is None:
        pad_token_id = int(eos[0]) if eos.numel() else 0
    cache_kw = _cache_kwarg(model)
    from transformers import DynamicCache

    # 1. prefill (each distinct prompt once with share_prefill, its KV cache then copied to its samples)
    if share_prefill:
        firsts, row_group = _group_rows(prompt_ids, prompt_mask)  # (u,), (b,)
    else:
        firsts = row_group = torch.arange(b, device=device)  # (b,) every row its own prefill
    mask = torch.ones(b, p + max_new_tokens, dtype=prompt_mask.dtype, device=device)  # (b, P + T) grows by one per step
    mask[:, :p] = prompt_mask
    position = (prompt_mask.long().cumsum(-1) - 1).masked_fill(prompt_mask == 0, 0)  # (b, P) as generate makes them
    cache = DynamicCache(config=model.config)
    out = model(input_ids=prompt_ids[firsts], attention_mask=prompt_mask[firsts], position_ids=position[firsts],
                use_cache=True, logits_to_keep=1, **{cache_kw: cache})
    logits = out.logits[:, -1, :].float()[row_group]  # (b, V)
    if firsts.numel() < b:
        cache.reorder_cache(row_group)  # (u, ...) -> (b, ...) per layer
    next_pos = position[:, -1:] + 1  # (b, 1)

    # 2. decode: pick, mark ended rows, feed the token back
    tokens = torch.full((b, max_new_tokens), pad_token_id, dtype=torch.long, device=device)  # (b, T)
    running = torch.ones(b, dtype=torch.bool, device=device)  # (b,)
    for t in range(max_new_tokens):
        nxt = sample_next(logits, temperature, top_k, top_p, generator) if do_sample else logits.argmax(dim=-1)  # (b,)
        nxt = torch.where(running, nxt, pad_token_id)  # (b,)
        tokens[:, t] = nxt
        if eos.numel():
            running &= ~torch.isin(nxt, eos)
        if t + 1 == max_new_tokens or not bool(running.any()):
            return tokens[:, : t + 1]
        out = model(input_ids=nxt[:, None], attention_mask=mask[:, : p + t + 1], position_ids=next_pos,
                    use_cache=True, **{cache_kw: cache})
        logits = out.logits[:, -1, :].float()  # (b, V)
        next_pos = next_pos + 1
    return tokens


@contextlib.contextmanager
def use_weights_dtype(model: torch.nn.Module, dtype: torch.dtype) -> Iterator[torch.nn.Module]:
    """Run `model` with its floating-point parameters cast to `dtype`, restored on exit.

    The parameter objects stay the same (an optimizer's references stay valid); only their data
    is swapped for a cast copy and back. Buffers (e.g. RoPE frequencies, float32 by design) are
    left alone. For sampling only: nothing computed inside may be trained through.
    """
    saved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    with torch.no_grad():
        for param in model.parameters():  # tied weights appear once
            if param.is_floating_point() and param.dtype != dtype:
                saved.append((param, param.data))
                param.data = param.data.to(dtype)
    try:
        yield model
    finally:
        with torch.no_grad():
            for param, data in saved:
                param.data = data
