"""The language model as a policy over a few action words, with a value head (TWOSOME and GLAM).

An action's score is the model's log-probability of the action's tokens after the prompt,
normalised per action as TWOSOME does (arXiv 2401.14151, section 4.2: divided by its number of
tokens, or of words), and the policy is the softmax of the scores over the valid actions. The
value is one linear layer on the last hidden state of the prompt's last token (GLAM, arXiv
2302.02662).

The instruction is the same at every step, so its key/value cache is computed once (one forward
of the prefix, batch 1) and expanded over the batch; a step then runs only the state's tokens
(and, when an action word has several tokens, all but its last). Rows are padded on the right,
which a causal model never attends to from a real token, so no attention mask is needed and the
positions follow the prefix. With LoRA on the attention projections the cache depends on the
adapters, so it is recomputed after every optimiser step (`refresh_prefix`), and with gradients
when the loss needs them (`compute_prefix_kv`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from llmrl_core.agent.text_env import format_action_text
from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.algorithms.ppo import ValueHead

PrefixKV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer (keys, values), each (1, n_kv_heads, P, head_dim)."""


@dataclass
class PolicyOutput:
    """One batched forward: per-action scores, the action distribution, the value."""

    scores: torch.Tensor
    """(B, A) normalised log-probabilities of each action's text"""
    logp: torch.Tensor
    """(B, A) log-probabilities of the policy (log_softmax of the scores)"""
    value: torch.Tensor
    """(B,) value head's estimate"""


def get_backbone(model: Any) -> tuple[Any, Any]:
    """(decoder stack, lm_head) of a causal LM, also through a peft wrapper (its adapters sit inside the layers)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


class TextPolicy(nn.Module):
    """Scores action words after a prompt; `forward_states` is one batched forward for all environments."""

    def __init__(self, model: Any, tokenizer: Any, instruction: str, action_words: Sequence[str],
                 normalisation: str = "token", device: Any = "cpu") -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.action_words = list(action_words)
        self.normalisation = normalisation
        self.prefix_ids = self.encode(instruction)
        self.action_ids = [self.encode(format_action_text(w)) for w in self.action_words]
        self.single_token = all(len(ids) == 1 for ids in self.action_ids)
        self.decoder, self.lm_head = get_backbone(model)
        hidden = int(getattr(model.config, "hidden_size", None) or self.lm_head.weight.shape[1])
        self.value_head = ValueHead(hidden).to(self.device)
        self._cache_kw = "cache" if "cache" in inspect.signature(self.decoder.forward).parameters else "past_key_values"
        self._prefix_kv: PrefixKV | None = None

    # ------------------------------------------------------------------ text

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens (pieces are tokenised apart, so the prefix never changes)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_states(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each state text."""
        return [self.encode(t) for t in texts]

    def compute_normalisers(self) -> torch.Tensor:
        """(A,) what each action's summed log-prob is divided by: its tokens, its words, or 1."""
        if self.normalisation == "token":
            counts = [len(ids) for ids in self.action_ids]
        elif self.normalisation == "word":
            counts = [len(w.split()) for w in self.action_words]
        else:
            counts = [1 for _ in self.action_ids]
        return torch.tensor(counts, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------ the cached prefix

    def compute_prefix_kv(self) -> PrefixKV:
        """The instruction's key/value cache (batch 1); with gradients when grad mode is on."""
        ids = torch.tensor([self.prefix_ids], device=self.device)  # (1, P)
        out = self.decoder(input_ids=ids, use_cache=True)
        cache = getattr(out, "cache", None)  # transformers >= 5.2 names it 'cache'; reading the old name warns
        if cache is None:
            cache = out.past_key_values
        return [(layer.keys, layer.values) for layer in cache.layers]

    def refresh_prefix(self) -> None:
        """Forget the cached prefix (after the weights changed); the next no-grad forward recomputes it."""
        self._prefix_kv = None

    def cached_prefix(self) -> PrefixKV:
        """The prefix cache kept between steps (computed without gradients)."""
        if self._prefix_kv is None:
            with torch.no_grad():
                self._prefix_kv = [(k.detach(), v.detach()) for k, v in self.compute_prefix_kv()]
        return self._prefix_kv

    def _expand(self, prefix_kv: PrefixKV, batch: int) -> Any:
        """A fresh cache holding the prefix for `batch` rows (expanded views; the forward appends by copying)."""
        from transformers import DynamicCache

        data = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in prefix_kv]
        return DynamicCache(ddp_cache_data=data, config=self.model.config)

    # ------------------------------------------------------------------ the forward

    def forward_states(self, state_ids: Sequence[Sequence[int]], use_cache: bool = True,
                       prefix_kv: PrefixKV | None = None, detach_value: bool = False) -> PolicyOutput:
        """Score every action for every state in one forward pass.

        use_cache: run only the state tokens over the prefix cache (`prefix_kv`, or the kept one);
        off: run the whole prompt (instruction + state) as one sequence, the reference computation.
        detach_value: the value head reads the hidden state without passing its gradient to the model.
        """
        n_actions, batch = len(self.action_ids), len(state_ids)
        prefix = [] if use_cache else self.prefix_ids
        # Rows: one per state when every action is a single token (its log-prob is read at the
        # state's last position); else one per (state, action), holding the action's tokens but its last.
        if self.single_token:
            rows = [prefix + list(s) for s in state_ids]
        else:
            rows = [prefix + list(s) + ids[:-1] for s in state_ids for ids in self.action_ids]
        width = max(len(r) for r in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)  # (R, L), right-padded
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r, device=self.device)
        kwargs: dict[str, Any] = {}
        if use_cache:
            kv = prefix_kv if prefix_kv is not None else self.cached_prefix()
            kwargs = {self._cache_kw: self._expand(kv, len(rows)), "use_cache": True}
        hidden = self.decoder(input_ids=input_ids, **kwargs).last_hidden_state  # (R, L, H)

        # Positions whose next-token distribution scores an action token, and the token it must be.
        row_idx, pos_idx, tok_idx, owner = [], [], [], []  # owner: flat index b * A + a
        last_state = [len(prefix) + len(s) - 1 for s in state_ids]  # (B,) the state's last position
        for b in range(batch):
            for a, ids in enumerate(self.action_ids):
                row = b if self.single_token else b * n_actions + a
                for j, tok in enumerate(ids):
                    row_idx.append(row)
                    pos_idx.append(last_state[b] + j)
                    tok_idx.append(tok)
                    owner.append(b * n_actions + a)
        picked = hidden[torch.tensor(row_idx, device=self.device), torch.tensor(pos_idx, device=self.device)]  # (N, H)
        logits = self.lm_head(picked).float()  # (N, V)
        token_logp = logits.gather(-1, torch.tensor(tok_idx, device=self.device).unsqueeze(-1)).squeeze(-1) \
            - torch.logsumexp(logits, dim=-1)  # (N,)
        summed = torch.zeros(batch * n_actions, device=self.device).index_add(
            0, torch.tensor(owner, device=self.device), token_logp)  # (B * A,)
        scores = summed.view(batch, n_actions) / self.compute_normalisers()  # (B, A)
        state_rows = torch.tensor([b if self.single_token else b * n_actions for b in range(batch)], device=self.device)
        last_hidden = hidden[state_rows, torch.tensor(last_state, device=self.device)]  # (B, H)
        value = self.value_head(last_hidden.detach() if detach_value else last_hidden)  # (B,)
        return PolicyOutput(scores=scores, logp=torch.log_softmax(scores, dim=-1), value=value)

    def check_tokenised(self, example_state: str, context_length: int) -> dict[str, int]:
        """Raise InputError when action words share a token sequence or the prompt cannot fit the context."""
        return check_token_ids(self.action_words, self.action_ids, len(self.prefix_ids), len(self.encode(example_state)),
                               context_length)


STATE_TOKEN_MARGIN = 8
"""Tokens allowed on top of an example state's, since numbers in other states print longer."""


def check_state_fits(policy: TextPolicy, state_ids: Sequence[Sequence[int]], context_length: int) -> None:
    """Raise InputError when a state's prompt outgrows the context (checked at every step; cheap)."""
    longest = max(len(s) for s in state_ids) + len(policy.prefix_ids) + max(len(a) for a in policy.action_ids)
    if longest > context_length:
        raise InputError(f"A prompt reached {longest} tokens, more than the model's context of {context_length}; "
                         "shorten the instruction or the state template.")


def check_token_ids(action_words: Sequence[str], action_ids: Sequence[Sequence[int]], prefix_tokens: int,
                    state_tokens: int, context_length: int) -> dict[str, int]:
    """Raise InputError when two action words have the same token sequence (or none), or the prompt cannot fit.

    Returns the token counts (instruction, state, longest action, total) for a preview.
    """
    seen: dict[tuple[int, ...], str] = {}
    for word, ids in zip(action_words, action_ids):
        if not ids:
            raise InputError(f"The action word {word!r} has no tokens; give a real word.")
        other = seen.get(tuple(ids))
        if other is not None:
            raise InputError(f"The action words {other!r} and {word!r} tokenise to the same token sequence "
                             f"{list(ids)}, so the model cannot tell them apart; pick words that differ.")
        seen[tuple(ids)] = word
    action_tokens = max(len(ids) for ids in action_ids)
    need = prefix_tokens + state_tokens + STATE_TOKEN_MARGIN + action_tokens
    if need > context_length:
        raise InputError(f"The prompt needs about {need} tokens (instruction {prefix_tokens}, state about "
                         f"{state_tokens + STATE_TOKEN_MARGIN}, action word up to {action_tokens}), more than the "
                         f"model's context of {context_length}; shorten the instruction or the state template.")
    return {"instruction": prefix_tokens, "state": state_tokens, "action": action_tokens, "total": need}


def check_prompt_tokens(tokenizer: Any, instruction: str, action_words: Sequence[str], example_state: str,
                        context_length: int) -> dict[str, int]:
    """The tokenizer's checks of a template without a model (the page's preview, the CLI before a run)."""
    encode = lambda text: list(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return check_token_ids(action_words, [encode(format_action_text(w)) for w in action_words], len(encode(instruction)),
                           len(encode(example_state)), context_length)


def load_prompt_tokenizer(spec: str) -> tuple[Any, int] | None:
    """(tokenizer, context length) of a model spec without loading its weights; None when that needs the network."""
    from llmrl_core.lm.models import convert_gguf, resolve_spec

    resolved = resolve_spec(spec)
    if resolved.kind in {"bundled", "gguf"}:
        folder = str(convert_gguf(Path(resolved.location)))
    elif resolved.kind == "folder":
        folder = resolved.location
    else:
        return None
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    context = next((v for k in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
                    if isinstance(v := getattr(config, k, None), int) and v > 0), 2048)
    return tokenizer, int(context)
