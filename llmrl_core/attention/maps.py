"""Attention maps of a causal LM: every layer and every query head, for a text or a prompt plus completion.

What the page explains is scaled dot-product attention (Vaswani et al. 2017, arXiv 1706.03762):

    A = softmax(Q K^T / sqrt(d_k) + M),   output = A V

where M is the causal mask (minus infinity above the diagonal, so a token never sees later ones) and
Q, K carry rotary position embeddings (RoPE, arXiv 2104.09864) in Llama-style models. Grouped-query
models (arXiv 2305.13245; SmolLM2-135M has 9 query heads sharing 3 key/value heads) are shown per
query head: each query head has its own map, even when it shares keys with its neighbours.

Maps come from the model's own `output_attentions`, which only the eager implementation returns
(sdpa returns none), so the page loads its own eager copy of a spec with :func:`load_attention_model`
and never flips the shared model. :func:`recompute_layer_attention` rebuilds one layer's maps from
hooked queries and keys with the formula above; the tests check it against the model to 1e-5.

Aggregates: the mean over heads per layer, and attention rollout (Abnar & Zuidema 2020,
arXiv 2005.00928), which multiplies the layers' head-mean maps, each mixed half-and-half with the
identity for the residual stream, to estimate how much each input token feeds each position.

Maps are kept as float16 numpy arrays (30 layers x 9 heads x 512 x 512 is 141 MB in float16) and
texts are capped at :data:`MAX_TOKENS` tokens with a message saying so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from llmrl_core.core.errors import InputError

MAX_TOKENS = 512  # longest text mapped; 30 x 9 x 512^2 float16 weights are 141 MB


@dataclass
class AttentionMaps:
    """Attention weights of every layer and query head for one token sequence."""

    tokens: list[str]  # each token decoded on its own, for labels
    token_ids: list[int]
    weights: np.ndarray  # (L, H, T, T) float16; row q holds what query token q attends to
    n_prompt: int  # tokens [0, n_prompt) are the prompt, [n_prompt, T) the generated completion
    model_name: str = ""
    n_kv_heads: int = 0  # key/value heads (fewer than query heads in grouped-query models)
    original_length: int = 0  # tokens before capping
    message: str = ""  # why the text was cut, or ''
    seconds: float = 0.0  # time the forward pass took
    extra: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        """Number of transformer layers."""
        return int(self.weights.shape[0])

    @property
    def n_heads(self) -> int:
        """Number of query heads per layer."""
        return int(self.weights.shape[1])

    @property
    def n_tokens(self) -> int:
        """Number of tokens mapped (after capping)."""
        return int(self.weights.shape[2])

    @property
    def truncated(self) -> bool:
        """True when the text was longer than the cap and only its start is mapped."""
        return self.original_length > self.n_tokens

    def head(self, layer: int, head: int) -> np.ndarray:
        """One head's map as float32, shape (T, T)."""
        self._check_layer_head(layer, head)
        return self.weights[layer, head].astype(np.float32)

    def _check_layer_head(self, layer: int, head: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise InputError(f"Layer {layer} does not exist: choose 0 to {self.n_layers - 1}.")
        if not 0 <= head < self.n_heads:
            raise InputError(f"Head {head} does not exist: choose 0 to {self.n_heads - 1}.")


# --------------------------------------------------------------------------- loading and encoding


def load_attention_model(spec: str | None, device: str = "auto", progress: Any = None):
    """Load a spec with eager attention (the only implementation that returns attention weights).

    A separate copy from the shared sdpa model: switching that one would slow down, or race with,
    the Playground generating at the same time.
    """
    from llmrl_core.lm.models import load_causal_lm

    kwargs: dict[str, Any] = {"device": device, "attn_implementation": "eager"}
    if progress is not None:
        kwargs["progress"] = progress
    return load_causal_lm(spec, **kwargs)


def check_returns_attention(model: Any) -> None:
    """Fail with a clear message unless the model runs eager attention (sdpa and flash return no weights)."""
    impl = getattr(model.config, "_attn_implementation", None) or "eager"
    if impl != "eager":
        raise InputError(
            f"This model runs {impl!r} attention, which returns no attention weights. "
            "Load it with attn_implementation='eager' (load_attention_model does)."
        )


def encode_text(tokenizer: Any, text: str, chat: bool = False) -> list[int]:
    """Token ids of a text as the model sees it; with `chat`, the text goes through the chat template first."""
    from llmrl_core.lm.generation import render_prompt

    if not text or not text.strip():
        raise InputError("The text is empty: type some text to map its attention.")
    rendered = render_prompt(tokenizer, text, chat=chat) if chat else text
    return _encode_rendered(tokenizer, rendered)


def _encode_rendered(tokenizer: Any, rendered: str) -> list[int]:
    """Encode an already rendered prompt exactly as generation does (no second BOS)."""
    bos = getattr(tokenizer, "bos_token", None)
    adds_bos = bool(bos) and rendered.startswith(bos)
    return list(tokenizer(rendered, add_special_tokens=not adds_bos)["input_ids"])


def cap_tokens(token_ids: Sequence[int], max_tokens: int = MAX_TOKENS) -> tuple[list[int], str]:
    """Keep the first `max_tokens` ids; return them with a message when some were cut ('' otherwise)."""
    if max_tokens < 1:
        raise InputError(f"The token cap must be at least 1 (got {max_tokens}).")
    ids = list(token_ids)
    if len(ids) <= max_tokens:
        return ids, ""
    return ids[:max_tokens], (
        f"The text has {len(ids)} tokens; attention is mapped for the first {max_tokens} only "
        f"(maps grow with the square of the length). Shorten the text to see the rest."
    )


# --------------------------------------------------------------------------- extraction


@torch.no_grad()
def extract_attention_ids(
    loaded: Any, token_ids: Sequence[int], n_prompt: int | None = None, max_tokens: int = MAX_TOKENS
) -> AttentionMaps:
    """Attention weights of every layer and query head for a token sequence (capped at `max_tokens`)."""
    model, tok = loaded.model, loaded.tokenizer
    check_returns_attention(model)
    original = len(token_ids)
    if original == 0:
        raise InputError("The text has no tokens: type some text to map its attention.")
    ids, message = cap_tokens(token_ids, max_tokens)
    limit = getattr(loaded, "context_length", None)
    if limit and len(ids) > limit:
        ids = ids[:limit]
        message = (f"The text has {original} tokens, more than this model's context of {limit}; "
                   f"attention is mapped for the first {limit} only. Shorten the text to see the rest.")
    input_ids = torch.tensor([ids], device=loaded.device)  # (1, T)
    start = time.perf_counter()
    out = model(input_ids=input_ids, output_attentions=True, use_cache=False)
    if not out.attentions or out.attentions[0] is None:
        raise InputError("The model returned no attention weights; load it with eager attention.")
    # out.attentions: L tensors of (1, H, T, T); keep float16 on the CPU.
    weights = np.stack([a[0].float().cpu().numpy().astype(np.float16) for a in out.attentions])  # (L, H, T, T)
    seconds = time.perf_counter() - start
    cfg = model.config
    n_prompt = len(ids) if n_prompt is None else min(max(int(n_prompt), 0), len(ids))
    return AttentionMaps(
        tokens=[tok.decode([i]) for i in ids],
        token_ids=ids,
        weights=weights,
        n_prompt=n_prompt,
        model_name=loaded.resolved.display_name if hasattr(loaded, "resolved") else "",
        n_kv_heads=int(getattr(cfg, "num_key_value_heads", None) or weights.shape[1]),
        original_length=original,
        message=message,
        seconds=seconds,
        extra={"token_strings": tok.convert_ids_to_tokens(ids)},
    )


def extract_attention(loaded: Any, text: str, chat: bool = False, max_tokens: int = MAX_TOKENS) -> AttentionMaps:
    """Attention maps for a text alone (a prompt with no completion)."""
    return extract_attention_ids(loaded, encode_text(loaded.tokenizer, text, chat=chat), max_tokens=max_tokens)


def generate_and_extract(
    loaded: Any, prompt: str, sampling: Any = None, chat: bool | None = None, max_tokens: int = MAX_TOKENS
) -> AttentionMaps:
    """Generate one completion for `prompt`, then map attention over prompt + completion.

    The completion is sampled with the same model (eager attention is slower than sdpa but exact),
    and the maps come from one forward pass over the whole sequence, which gives the same weights
    as the incremental decoding steps did.
    """
    from llmrl_core.lm.generation import SamplingConfig, generate

    sampling = sampling or SamplingConfig(max_new_tokens=24, greedy=True)
    if sampling.n != 1:
        raise InputError("Attention maps take one completion: set the number of samples to 1.")
    result = generate(loaded, [prompt], sampling, chat=chat, top_alternatives=0)
    prompt_ids = _encode_rendered(loaded.tokenizer, result.prompt_texts[0])
    completion = result.completions[0]
    maps = extract_attention_ids(loaded, prompt_ids + list(completion.token_ids), n_prompt=len(prompt_ids), max_tokens=max_tokens)
    maps.extra["completion_text"] = completion.text
    maps.extra["finish_reason"] = completion.finish_reason
    return maps


# --------------------------------------------------------------------------- aggregates


def compute_head_mean(weights: np.ndarray) -> np.ndarray:
    """Mean over heads per layer: (L, H, T, T) -> (L, T, T) float32."""
    return weights.astype(np.float32).mean(axis=1)


def compute_rollout(weights: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (arXiv 2005.00928) up to each layer: (L, H, T, T) -> (L, T, T) float32.

    Each layer's head-mean map is mixed with the identity for the residual connection,
    A_hat = residual * I + (1 - residual) * A, rows renormalised, and the layers are multiplied
    from the bottom up: R_l = A_hat_l @ R_{l-1}. Row q of R_l says how much each input token
    flows into position q after layer l. Causal maps stay lower triangular.
    """
    if not 0.0 <= residual < 1.0:
        raise InputError(f"The residual share must be in [0, 1) (got {residual}).")
    mean = compute_head_mean(weights)  # (L, T, T)
    eye = np.eye(mean.shape[-1], dtype=np.float32)
    out = np.empty_like(mean)
    rolled = eye
    for layer in range(mean.shape[0]):
        mixed = residual * eye + (1.0 - residual) * mean[layer]  # (T, T)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        rolled = mixed @ rolled  # (T, T)
        out[layer] = rolled
    return out


def compute_row_entropy(weights: np.ndarray) -> np.ndarray:
    """Entropy in nats of each query row: (..., T, T) -> (..., T)."""
    w = weights.astype(np.float32)
    return -(w * np.log(np.clip(w, 1e-12, None))).sum(axis=-1)


def compute_entropy_contrast(weights: np.ndarray, max_queries: int = 128) -> np.ndarray:
    """How unevenly each head focuses across queries: (L, H, T, T) -> (L, H).

    Row entropy is divided by its maximum, log(q + 1) for query q (query 0 can only see itself
    and is skipped), and the score is its standard deviation over queries: high when a head is
    sharp for some tokens and diffuse for others, the heads with the most visible structure.
    A head that puts everything on the first token scores low, as does a uniform one.
    Long texts use `max_queries` evenly spaced query rows (a 512-token text: 4x less work).
    """
    n = weights.shape[-1]
    if n < 3:
        return np.zeros(weights.shape[:2], dtype=np.float32)
    rows = np.unique(np.linspace(1, n - 1, min(max_queries, n - 1)).astype(int))  # query indices >= 1
    ent = compute_row_entropy(weights[:, :, rows, :])  # (L, H, Q)
    ent = ent / np.log(rows + 1.0).astype(np.float32)  # normalised to [0, 1]
    return ent.std(axis=-1)


def pick_default_head(maps: AttentionMaps) -> tuple[int, int]:
    """The last layer, and in it the head with the highest entropy contrast."""
    layer = maps.n_layers - 1
    contrast = compute_entropy_contrast(maps.weights[layer : layer + 1])[0]  # (H,)
    return layer, int(np.argmax(contrast))


def compute_attention_difference(a: AttentionMaps, b: AttentionMaps) -> np.ndarray:
    """b - a per layer and head, (L, H, T, T) float16; both must map the same tokens with the same shape."""
    if a.token_ids != b.token_ids:
        raise InputError(
            "The two models tokenize the text differently, so their maps cannot be compared cell by cell. "
            "Compare models that share a tokenizer (a base model and its fine-tuned checkpoint)."
        )
    if a.weights.shape != b.weights.shape:
        raise InputError(
            f"The two models have different shapes ({a.n_layers} layers x {a.n_heads} heads vs "
            f"{b.n_layers} x {b.n_heads}); compare a model with a checkpoint of itself."
        )
    return (b.weights.astype(np.float32) - a.weights.astype(np.float32)).astype(np.float16)


def extract_attention_like(loaded: Any, reference: AttentionMaps) -> AttentionMaps:
    """The same token sequence as `reference`, mapped under another model (for the compare view).

    The second model must read the ids as the same tokens; otherwise the cells would not line up.
    """
    ids = reference.token_ids
    theirs = loaded.tokenizer.convert_ids_to_tokens(ids) if max(ids) < len(loaded.tokenizer) else None
    mine = reference.extra.get("token_strings")
    if theirs is None or (mine is not None and list(mine) != list(theirs)):
        raise InputError(
            "The second model's tokenizer reads these ids as different tokens, so the maps cannot be compared "
            "cell by cell. Compare models that share a tokenizer (a base model and its fine-tuned checkpoint)."
        )
    maps = extract_attention_ids(loaded, ids, n_prompt=reference.n_prompt, max_tokens=max(len(ids), 1))
    maps.extra["token_strings"] = theirs
    return maps


def summarize_difference(diff: np.ndarray) -> np.ndarray:
    """Mean absolute difference per layer and head over the causal cells: (L, H, T, T) -> (L, H)."""
    n = diff.shape[-1]
    cells = n * (n + 1) / 2
    return np.abs(diff.astype(np.float32)).sum(axis=(-1, -2)) / cells


# --------------------------------------------------------------------------- the formula, step by step


def find_attention_modules(model: Any) -> list[Any]:
    """The self-attention module of every decoder layer, in order (Llama-style models)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        raise InputError("This model has no model.layers[i].self_attn; the formula check supports Llama-style models.")
    return [layer.self_attn for layer in layers]


@torch.no_grad()
def capture_query_key(loaded: Any, token_ids: Sequence[int], layer: int) -> dict:
    """Run the model once and hook one layer's queries, keys and rotary tables, plus its own weights.

    Returns q (1, H, T, d) and k (1, KV, T, d) straight from the projections (before rotary),
    cos and sin (1, T, d) exactly as the model passed them to that layer, and the model's own
    attention weights for that layer (1, H, T, T).
    """
    model = loaded.model
    check_returns_attention(model)
    attn = find_attention_modules(model)[layer]
    captured: dict[str, Any] = {}
    head_dim = attn.head_dim

    def keep_q(_m: Any, _inp: Any, out: torch.Tensor) -> None:
        captured["q"] = out.view(*out.shape[:-1], -1, head_dim).transpose(1, 2)  # (1, H, T, d)

    def keep_k(_m: Any, _inp: Any, out: torch.Tensor) -> None:
        captured["k"] = out.view(*out.shape[:-1], -1, head_dim).transpose(1, 2)  # (1, KV, T, d)

    def keep_rotary(_m: Any, _args: Any, kwargs: dict) -> None:
        captured["cos"], captured["sin"] = kwargs["position_embeddings"]  # (1, T, d) each

    hooks = [
        attn.q_proj.register_forward_hook(keep_q),
        attn.k_proj.register_forward_hook(keep_k),
        attn.register_forward_pre_hook(keep_rotary, with_kwargs=True),
    ]
    try:
        out = model(input_ids=torch.tensor([list(token_ids)], device=loaded.device), output_attentions=True, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    captured["attentions"] = out.attentions[layer]  # (1, H, T, T)
    captured["scaling"] = float(getattr(attn, "scaling", head_dim**-0.5))
    return captured


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension's two halves, the RoPE rotation by 90 degrees."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each position's vector by its angle: x * cos + rotate_half(x) * sin; x (B, H, T, d), cos/sin (B, T, d)."""
    return x * cos.unsqueeze(1) + rotate_half(x) * sin.unsqueeze(1)


def compute_attention_from_qk(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, scaling: float | None = None
) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k) + causal mask) for every query head: q (B, H, T, d), k (B, KV, T, d) -> (B, H, T, T).

    Keys are shared by groups of H / KV query heads (grouped-query attention): query head h reads
    key head h // (H / KV).
    """
    n_heads, n_kv, n_tok, d = q.shape[1], k.shape[1], q.shape[2], q.shape[3]
    q = apply_rotary(q.float(), cos.float(), sin.float())  # (B, H, T, d)
    k = apply_rotary(k.float(), cos.float(), sin.float())  # (B, KV, T, d)
    k = k.repeat_interleave(n_heads // n_kv, dim=1)  # (B, H, T, d)
    scale = d**-0.5 if scaling is None else scaling
    scores = (q @ k.transpose(-1, -2)) * scale  # (B, H, T, T)
    future = torch.triu(torch.ones(n_tok, n_tok, dtype=torch.bool, device=q.device), diagonal=1)  # (T, T)
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1)  # (B, H, T, T)


def recompute_layer_attention(loaded: Any, token_ids: Sequence[int], layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's weights rebuilt from hooked Q and K with the formula, next to the model's own: both (H, T, T)."""
    cap = capture_query_key(loaded, token_ids, layer)
    mine = compute_attention_from_qk(cap["q"], cap["k"], cap["cos"], cap["sin"], cap["scaling"])
    return mine[0], cap["attentions"][0].float()
