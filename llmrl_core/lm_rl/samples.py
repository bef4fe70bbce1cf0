"""A step's stored samples: completions with their rewards and the per-token data of the token view.

The trainer keeps up to samples_per_step completions per step (the run store's samples table);
their `extras` are what llmrl_core.present.lm_rl.token_values colours tokens by: the decoded
tokens, log-probs, ratios, the advantage (one per completion, or one per token with a value head,
then with the values too), the KL to the reference when beta > 0, and what the update did to each
token: its push -dL/d(log pi_t) and the KL term's push (float16, scaled to order 1: `read_push` reads them),
the clipped positions and the sample's aggregation weight (one per completion: constant over its tokens
for every loss type).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llmrl_core.lm_rl.rollout import Rollout


@dataclass
class TokenStats:
    """Per-token results of one update, for the samples (B completions, T positions)."""

    logp: torch.Tensor  # (B, T) log-probs of the sampled tokens (last epoch)
    ratio: torch.Tensor  # (B, T) pi / pi_old (last epoch)
    advantages: torch.Tensor  # (B,) per completion or (B, T) per token
    kl: torch.Tensor | None = None  # (B, T) KL to the reference, only when beta > 0
    values: torch.Tensor | None = None  # (B, T) the value head before the update, only with one
    push: torch.Tensor | None = None  # (B, T) -dL/d(log pi_t) of the policy term: > 0 makes the token more likely
    kl_push: torch.Tensor | None = None  # (B, T) the same for the KL term, only when it is in the loss (beta > 0)
    clipped: torch.Tensor | None = None  # (B, T) bool: the ratio was clipped there (no policy gradient)
    weights: torch.Tensor | None = None  # (B, T) each token's share of the batch loss (the aggregation weight)


def describe_prompt(prompt: Any) -> str:
    """A prompt as text for the samples table (the last user message of a chat)."""
    if isinstance(prompt, str):
        return prompt
    try:
        users = [m.get("content", "") for m in prompt if m.get("role") == "user"]
        return str(users[-1] if users else prompt)
    except (TypeError, AttributeError):
        return str(prompt)


def round_values(values: torch.Tensor, digits: int = 4) -> list[float]:
    """A 1-D tensor as a short JSON-friendly list."""
    return [round(float(v), digits) for v in values.tolist()]


F16_MAX = 65504.0  # the largest finite float16


def encode_scaled_f16(values: torch.Tensor, scale: float) -> str:
    """values / scale (T,) as base64 of little-endian float16: 2.7 characters a token instead of ~10 as JSON text.

    Why scaled: a push is w x r x A, with w as small as 1/(B x max_new_tokens); divided by w it is r x A, of order 1,
    where float16 keeps 3 significant digits (unscaled, values under 6e-5 would fall into float16's subnormals).
    Values beyond float16's range saturate at +-65504 (only a KL push with pi_ref / pi above 65505 gets there).
    """
    scaled = (values.double() / scale).clamp(-F16_MAX, F16_MAX).to(torch.float16)  # (T,)
    return base64.b64encode(scaled.numpy().astype("<f2").tobytes()).decode("ascii")


def decode_scaled_f16(text: str, scale: float) -> list[float]:
    """The inverse of encode_scaled_f16: the values as floats."""
    return (np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float64) * scale).tolist()


def read_push(extras: dict) -> tuple[list[float] | None, list[float] | None]:
    """A stored sample's push per token and its KL term's push (None where not recorded)."""
    weight = float(extras.get("token_weight") or 0.0)
    push = decode_scaled_f16(extras["push_f16"], weight) if extras.get("push_f16") is not None else None
    kl_scale = weight * float(extras.get("kl_push_scale") or 0.0)
    kl_push = decode_scaled_f16(extras["kl_push_f16"], kl_scale) if extras.get("kl_push_f16") is not None else None
    return push, kl_push


def make_samples(tokenizer: Any, ro: Rollout, per_reward: dict[str, Any], total: np.ndarray, token: TokenStats,
                 limit: int, num_generations: int, kl_scale: float = 1.0) -> list[dict]:
    """Up to `limit` completions of rollout `ro` with each reward, the total, and per-token extras (`kl_scale`:
    the KL coefficient beta, by which the KL term's push is scaled before it is stored)."""
    n = min(limit, len(ro.texts))
    if n == 0:
        return []
    lengths = ro.completion_mask.sum(1).long().tolist()
    pieces = tokenizer.batch_decode([[i] for row in range(n) for i in ro.completion_ids[row, :lengths[row]].tolist()])
    per_reward = {name: np.asarray(values, dtype=np.float64) for name, values in per_reward.items()}
    samples, offset = [], 0
    advantages = token.advantages
    for row in range(n):
        length = lengths[row]
        rewards = {name: (None if not np.isfinite(v[row]) else float(v[row])) for name, v in per_reward.items()}
        rewards["total"] = float(total[row])
        extras: dict[str, Any] = {
            "tokens": pieces[offset:offset + length],
            "logprobs": round_values(token.logp[row, :length]),
            "ratio": round_values(token.ratio[row, :length]),
            "prompt_index": row // num_generations,
            "sample_index": row % num_generations,
            "finish_reason": "length" if bool(ro.clipped[row]) else "eos",
        }
        if advantages.dim() == 2:  # one advantage per token (a value head's GAE)
            extras["token_advantages"] = round_values(advantages[row, :length])
            extras["advantage"] = round(float(advantages[row, :length].mean()), 4) if length else 0.0
            extras["values"] = round_values(token.values[row, :length])
        else:
            extras["advantage"] = round(float(advantages[row]), 4)
        if token.kl is not None:
            extras["kl"] = round_values(token.kl[row, :length])
        if token.push is not None and length:  # what the update did to each token (issue 21): see read_push
            weight = float(token.weights[row, 0])  # the same for every token of a completion, for each loss type
            extras["token_weight"] = weight
            extras["push_f16"] = encode_scaled_f16(token.push[row, :length], weight)
            extras["clipped"] = token.clipped[row, :length].nonzero().squeeze(1).tolist()  # indices, usually none
            if token.kl_push is not None:  # scaled by w x beta: 1 - pi_ref / pi, of order 1
                extras["kl_push_scale"] = kl_scale
                extras["kl_push_f16"] = encode_scaled_f16(token.kl_push[row, :length], weight * kl_scale)
        offset += length
        samples.append({"prompt": describe_prompt(ro.prompts[row]), "completion": ro.texts[row],
                        "rewards": rewards, "extras": extras})
    return samples
