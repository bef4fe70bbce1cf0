"""Batched sampling with per-token log-probs, top alternatives and live streaming.

Generation goes through `model.generate` (the well-kept sampler: KV cache, temperature,
top-p, top-k, greedy) with `output_logits=True`, so each token's log-prob and its top
alternatives come from the model's raw distribution (temperature 1, before top-p/top-k).
A small streamer hands every step's tokens to a callback, which is how the Playground
shows text while it is produced, for any batch size (transformers' own text streamers
only take batch size 1).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from llmrl_core.core.errors import InputError

# A prompt is raw text, or a chat as a list of {"role", "content"} messages.
Prompt = str | Sequence[dict]
# on_step(step, new_token_ids): called once per generated position with one id per sequence.
StepFn = Callable[[int, list[int]], None]

_SEED_LOCK = threading.Lock()  # torch's global RNG: seeded generations must not interleave


@dataclass
class SamplingConfig:
    """How to sample; validated on creation with messages that say what to change."""

    max_new_tokens: int = 64  # completion budget per sample
    temperature: float = 0.7  # 0 < T; ignored when greedy
    top_p: float = 0.95  # nucleus mass kept; 1.0 turns it off
    top_k: int = 50  # 0 turns it off
    n: int = 1  # samples per prompt
    seed: int | None = None  # None: a fresh random draw each time
    greedy: bool = False  # argmax decoding; n must then be 1
    min_new_tokens: int = 0  # suppress end-of-sequence before this many tokens (fixed-length benches)

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise InputError(f"max new tokens must be a whole number of at least 1 (got {self.max_new_tokens!r}).")
        if not self.greedy and not 0 < self.temperature < float("inf"):
            raise InputError(f"temperature must be above 0 and finite (got {self.temperature!r}); use greedy for deterministic output.")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63):
            raise InputError(f"The seed must be a whole number from 0 to {2**63 - 1} (got {self.seed!r}), or blank for a random one.")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top-p must be in (0, 1] (got {self.top_p!r}).")
        if self.top_k < 0:
            raise InputError(f"top-k must be 0 (off) or more (got {self.top_k!r}).")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise InputError(f"min new tokens must be between 0 and max new tokens (got {self.min_new_tokens!r}).")
        if self.n < 1 or self.n > 64:
            raise InputError(f"number of samples must be between 1 and 64 (got {self.n!r}).")


@dataclass
class Completion:
    """One generated sample: its text, tokens and per-token log-probs."""

    prompt_index: int
    sample_index: int
    text: str
    token_ids: list[int]
    tokens: list[str]  # each token decoded on its own, for the token view
    logprobs: list[float]  # log p(token | prefix) under the raw model distribution
    top_alternatives: list[list[tuple[str, float]]] = field(default_factory=list)  # top-k per position
    finish_reason: str = "length"  # 'eos' or 'length'


@dataclass
class GenerationResult:
    """All completions of one call, prompt-major, with timing."""

    completions: list[Completion]
    prompt_texts: list[str]
    seconds: float
    new_tokens: int

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens (all samples) per wall-clock second."""
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


class _StepStreamer:
    """A `generate` streamer that forwards each step's new token ids, whatever the batch size."""

    def __init__(self, on_step: StepFn) -> None:
        self._on_step = on_step
        self._seen_prompt = False
        self._step = 0

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:  # the first call carries the prompt ids
            self._seen_prompt = True
            return
        self._on_step(self._step, value.reshape(-1).tolist())
        self._step += 1

    def end(self) -> None:
        pass


def render_prompt(tokenizer: Any, prompt: Prompt, chat: bool | None = None, system: str | None = None) -> str:
    """Turn a prompt into the exact text the model sees.

    A message list always goes through the chat template; a plain string does when `chat` is
    True, or when `chat` is None and the tokenizer has a template (an instruct model).
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InputError("The prompt is empty: type some text to continue.")
        use_chat = has_template if chat is None else chat
        if not use_chat:
            return prompt
        messages: list[dict] = [{"role": "user", "content": prompt}]
    else:
        messages = [dict(m) for m in prompt]
        if not messages or not any(str(m.get("content", "")).strip() for m in messages):
            raise InputError("The chat is empty: write at least one message.")
    if system:
        messages = [{"role": "system", "content": system}] + [m for m in messages if m.get("role") != "system"]
    if not has_template:
        raise InputError("This model has no chat template; switch the prompt to raw text.")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _decode_each(tokenizer: Any, ids: list[int]) -> list[str]:
    """Decode tokens one by one (for display); byte-level pieces may show as replacement chars."""
    return [tokenizer.decode([i]) for i in ids]


@torch.no_grad()
def generate(
    loaded: Any,
    prompts: Sequence[Prompt],
    cfg: SamplingConfig | None = None,
    chat: bool | None = None,
    system: str | None = None,
    on_step: StepFn | None = None,
    top_alternatives: int = 5,
) -> GenerationResult:
    """Sample `cfg.n` completions for each prompt in one batch.

    `loaded` is a :class:`llmrl_core.lm.models.LoadedModel`. Completions come back prompt-major:
    prompt 0's samples, then prompt 1's, and so on. `on_step(step, ids)` is called as tokens
    are produced, with one id per sequence in the same order.
    """
    cfg = cfg or SamplingConfig()
    if not prompts:
        raise InputError("No prompt given: type a prompt to continue.")
    tok, model = loaded.tokenizer, loaded.model
    texts = [render_prompt(tok, p, chat=chat, system=system) for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=not template_adds_bos(tok, texts))
    prompt_len = enc["input_ids"].shape[1]
    limit = loaded.context_length
    if prompt_len + cfg.max_new_tokens > limit:
        raise InputError(
            f"The prompt ({prompt_len} tokens) plus max new tokens ({cfg.max_new_tokens}) exceeds this model's "
            f"context of {limit} tokens; lower max new tokens to at most {max(limit - prompt_len, 0)} or shorten the prompt."
        )
    enc = {k: v.to(loaded.device) for k, v in enc.items()}
    kwargs: dict[str, Any] = dict(
        max_new_tokens=cfg.max_new_tokens,
        min_new_tokens=cfg.min_new_tokens or None,
        num_return_sequences=cfg.n,
        return_dict_in_generate=True,
        output_logits=True,  # raw logits: per-token log-probs and alternatives
        pad_token_id=tok.pad_token_id,
    )
    if cfg.greedy:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or None)
    if on_step is not None:
        kwargs["streamer"] = _StepStreamer(on_step)

    start = time.perf_counter()
    with _SEED_LOCK:
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        out = model.generate(**enc, **kwargs)
    seconds = time.perf_counter() - start

    sequences = out.sequences[:, prompt_len:]  # (B*n, T_new)
    logits = torch.stack(out.logits, dim=1).float()  # (B*n, T_new, V) raw, before processors
    logp = torch.log_softmax(logits, dim=-1)  # (B*n, T_new, V)
    chosen = logp.gather(-1, sequences.unsqueeze(-1)).squeeze(-1)  # (B*n, T_new)
    if top_alternatives > 0:
        top_vals, top_ids = logp.topk(top_alternatives, dim=-1)  # (B*n, T_new, k)
    eos_ids = get_eos_ids(loaded)
    completions: list[Completion] = []
    new_tokens = 0
    for row in range(sequences.shape[0]):
        ids = sequences[row].tolist()
        finish = "length"
        for pos, token_id in enumerate(ids):
            if token_id in eos_ids:
                ids, finish = ids[: pos + 1], "eos"
                break
        n_tok = len(ids)
        new_tokens += n_tok
        alts: list[list[tuple[str, float]]] = []
        if top_alternatives > 0:
            for pos in range(n_tok):
                pairs = zip(top_ids[row, pos].tolist(), top_vals[row, pos].tolist())
                alts.append([(tok.decode([i]), float(v)) for i, v in pairs])
        completions.append(
            Completion(
                prompt_index=row // cfg.n,
                sample_index=row % cfg.n,
                text=tok.decode(ids, skip_special_tokens=True),
                token_ids=ids,
                tokens=_decode_each(tok, ids),
                logprobs=chosen[row, :n_tok].tolist(),
                top_alternatives=alts,
                finish_reason=finish,
            )
        )
    return GenerationResult(completions=completions, prompt_texts=texts, seconds=seconds, new_tokens=new_tokens)


def get_eos_ids(loaded: Any) -> set[int]:
    """Token ids that end a completion (the tokenizer's eos plus the generation config's)."""
    ids: set[int] = set()
    if loaded.tokenizer.eos_token_id is not None:
        ids.add(int(loaded.tokenizer.eos_token_id))
    gen_eos = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, (list, tuple)):
        ids.update(int(i) for i in gen_eos)
    return ids


def template_adds_bos(tokenizer: Any, texts: list[str]) -> bool:
    """True when the rendered text already starts with the BOS token (avoid adding it twice)."""
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and all(t.startswith(bos) for t in texts)
