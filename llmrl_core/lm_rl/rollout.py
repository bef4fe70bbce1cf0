"""Steps 1 and 2 of an RL step: sample completions for the next prompts, then score them.

A `Rollout` is one step's sampled batch, prompt-major (prompt 0's num_generations samples first),
with what the update's forward passes need (the full token ids, attention mask and positions)
and what the rewards and the stored samples read (prompts, columns, texts). On several processes
each one samples and scores its contiguous slice of the batch (llmrl_core.lm_rl.distributed),
and `gather_rollout` puts the slices back together for the metrics and samples.

Nothing here builds an autograd graph: sampling runs in inference mode and scoring on text.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from llmrl_core.core.errors import InputError
from llmrl_core.lm.generation import render_prompt, template_adds_bos
from llmrl_core.lm_rl import distributed

if TYPE_CHECKING:
    from llmrl_core.lm_rl.config import RLConfig

# sample(prompt_ids (b, P), prompt_mask (b, P), first_index) -> completion ids (b, T)
SampleFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class Rollout:
    """One step's sampled batch, prompt-major (prompt 0's samples first). B completions, T positions."""

    prompts: list  # (B,) the raw prompt of each completion (string or chat messages)
    columns: dict[str, list]  # extra prompt-set columns, each (B,), for the rewards
    input_ids: torch.Tensor  # (B, P + T) left-padded prompt, then completion
    attention_mask: torch.Tensor  # (B, P + T)
    position_ids: torch.Tensor  # (B, P + T) positions as generate() used them (left padding skipped)
    completion_ids: torch.Tensor  # (B, T)
    completion_mask: torch.Tensor  # (B, T) 1.0 up to and including EOS
    texts: list[str]  # (B,) decoded completions
    clipped: torch.Tensor  # (B,) True where the completion hit max_new_tokens without EOS
    seconds: float


class PromptStream:
    """The prompt set's rows in a fresh seeded shuffle each pass; `next_rows()` gives the next step's."""

    def __init__(self, frame: Any, seed: int, per_step: int) -> None:
        self.frame, self.seed, self.per_step = frame, seed, per_step
        self.order: list[int] = []
        self.cursor = 0
        self.epoch = 0

    def next_rows(self) -> list[int]:
        """The next `per_step` row indices (the first pass is random.Random(seed * 1_000_003) over the rows)."""
        rows = []
        for _ in range(self.per_step):
            if self.cursor >= len(self.order):
                rng = random.Random(self.seed * 1_000_003 + self.epoch)
                self.order = list(range(len(self.frame)))
                rng.shuffle(self.order)
                self.cursor, self.epoch = 0, self.epoch + 1
            rows.append(self.order[self.cursor])
            self.cursor += 1
        return rows

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands, for checkpoints."""
        return {"order": self.order, "cursor": self.cursor, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where a checkpoint's stream stood; a fresh pass when the prompt set changed since."""
        self.order, self.cursor, self.epoch = list(state["order"]), int(state["cursor"]), int(state["epoch"])
        if len(self.order) != len(self.frame):
            self.order, self.cursor = [], 0


def encode_prompts(cfg: "RLConfig", tokenizer: Any, raw_prompts: list, rows_here: slice, device: torch.device,
                   context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's left-padded prompt ids and mask (b, P), each prompt repeated num_generations times."""
    chat = {"auto": None, "chat": True, "raw": False}[cfg.chat]
    texts = [render_prompt(tokenizer, p, chat=chat, system=cfg.system_prompt) for p in raw_prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not template_adds_bos(tokenizer, texts))
    prompt_ids = enc["input_ids"].repeat_interleave(cfg.num_generations, dim=0)[rows_here].to(device)  # (b, P)
    prompt_mask = enc["attention_mask"].repeat_interleave(cfg.num_generations, dim=0)[rows_here].to(device)  # (b, P)
    if prompt_ids.shape[1] + cfg.max_new_tokens > context_length:
        raise InputError(f"Prompts of {prompt_ids.shape[1]} tokens plus max_new_tokens ({cfg.max_new_tokens}) exceed the "
                         f"model's context of {context_length}; lower max_new_tokens or use shorter prompts.")
    return prompt_ids, prompt_mask


def sample_with_generate(model: Any, cfg: "RLConfig", tokenizer: Any, eos_ids: list[int], prompt_ids: torch.Tensor,
                         prompt_mask: torch.Tensor, synced_gpus: bool = False) -> torch.Tensor:
    """Completion token ids (b, T) for left-padded prompts (b, P), sampled with `model.generate` (KV cache).

    `synced_gpus`: sharded weights are gathered layer by layer in lockstep, so every process decodes to the end.
    """
    out = model.generate(
        input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=cfg.temperature,
        top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids, **({"synced_gpus": True} if synced_gpus else {}),
    )
    return out[:, prompt_ids.shape[1]:]  # (b, T)


def sample_with_fast_loop(model: Any, cfg: "RLConfig", tokenizer: Any, eos_ids: list[int], prompt_ids: torch.Tensor,
                          prompt_mask: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Completion token ids (b, T) from the lean sampling loop (llmrl_core/lm/fast_generate.py).

    Same contract and distribution as `sample_with_generate`. `dtype` (the run's autocast dtype, or
    None in fp32) casts the weights once for the whole rollout: under autocast every decode step would
    re-cast every weight (most of a bf16 decode step's time on a CPU, measured in bench_generate.py).
    """
    import contextlib

    from llmrl_core.lm.fast_generate import sample_completions_fast, use_weights_dtype

    cast = use_weights_dtype(model, dtype) if dtype is not None else contextlib.nullcontext()
    with cast:
        return sample_completions_fast(
            model, prompt_ids, prompt_mask, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
            top_p=cfg.top_p, top_k=cfg.top_k, eos_token_ids=eos_ids, pad_token_id=tokenizer.pad_token_id,
        )


def make_rollout(cfg: "RLConfig", tokenizer: Any, frame: Any, rows_here: slice, prompt_ids: torch.Tensor,
                 prompt_mask: torch.Tensor, completion_ids: torch.Tensor, eos_ids: list[int],
                 seconds: float) -> Rollout:
    """The Rollout of sampled `completion_ids` (b, T): masks cut after the first EOS, positions, decoded texts.

    `frame` holds this step's prompt rows (a 'prompt' column and the extra columns the rewards read).
    """
    device = completion_ids.device
    n_pos = completion_ids.shape[1]
    is_eos = torch.isin(completion_ids, torch.tensor(eos_ids, device=device))  # (b, T)
    has_eos = is_eos.any(dim=1)  # (b,)
    first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, n_pos, dtype=torch.long))
    positions = torch.arange(n_pos, device=device).unsqueeze(0)  # (1, T)
    completion_mask = (positions <= first_eos.unsqueeze(1)).float()  # (b, T) EOS included
    attention_mask = torch.cat([prompt_mask, completion_mask.long()], dim=1)  # (b, P + T)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # (b, P + T)
    lengths = completion_mask.sum(1).long().tolist()
    decoded = tokenizer.batch_decode([ids[:n] for ids, n in zip(completion_ids.tolist(), lengths)],
                                     skip_special_tokens=True)
    repeat = cfg.num_generations
    columns = {c: [v for v in frame[c].tolist() for _ in range(repeat)][rows_here] for c in frame.columns if c != "prompt"}
    return Rollout(
        prompts=[p for p in frame["prompt"] for _ in range(repeat)][rows_here], columns=columns,
        input_ids=torch.cat([prompt_ids, completion_ids], dim=1), attention_mask=attention_mask,
        position_ids=position_ids, completion_ids=completion_ids, completion_mask=completion_mask,
        texts=decoded, clipped=~has_eos, seconds=seconds,
    )


def score_rollout(reward_set: Any, ro: Rollout, device: torch.device,
                  log: Callable[[str], None]) -> tuple[Any, torch.Tensor, float]:
    """Score each completion with the reward set (TRL's signature: prompts, completions, columns).

    Returns (the RewardScores with a finite total, the totals as a (b,) float32 tensor, seconds).
    A completion no reward scored (None/NaN) counts as 0 in the total, and the log says so.
    """
    start = time.perf_counter()
    lengths = ro.completion_mask.sum(1).long().tolist()
    completion_ids = [ids[:n] for ids, n in zip(ro.completion_ids.tolist(), lengths)]
    scores = reward_set.score(ro.prompts, ro.texts, completion_ids=completion_ids, **ro.columns)
    seconds = time.perf_counter() - start
    total = np.asarray(scores.total, dtype=np.float64)
    if not np.isfinite(total).all():
        total = np.nan_to_num(total, nan=0.0, posinf=0.0, neginf=0.0)
        log("Some completions got no reward (None/NaN); they count as 0 in the total.")
    scores = dataclasses.replace(scores, total=total)
    return scores, torch.tensor(total, dtype=torch.float32, device=device), seconds  # (b,)


def gather_rollout(comm: distributed.Collective, ro: Rollout, scores: Any, rewards: torch.Tensor, pad_id: int,
                   device: torch.device) -> tuple[Rollout, Any, torch.Tensor]:
    """Every process's completions, scores and rewards (B rows, prompt-major) for the metrics and samples.

    Only the fields reporting reads are gathered (completions, masks, texts, prompts, columns);
    input_ids, attention_mask and position_ids stay this process's. On one process it is the identity.
    """
    width = distributed.gather_max_int(comm, ro.completion_ids.shape[1])
    completion_ids = distributed.pad_width(ro.completion_ids, width, value=pad_id)
    ro = dataclasses.replace(
        ro, completion_ids=comm.gather(completion_ids).to(device),
        completion_mask=distributed.gather_rows(comm, ro.completion_mask, width).to(device),
        clipped=comm.gather(ro.clipped).to(device), texts=comm.gather_objects(ro.texts),
        prompts=comm.gather_objects(ro.prompts),
        columns={name: comm.gather_objects(values) for name, values in ro.columns.items()},
    )
    scores = dataclasses.replace(
        scores, total=np.asarray(comm.gather_objects(list(scores.total)), dtype=np.float64),
        per_reward={name: np.asarray(comm.gather_objects(list(values)), dtype=np.float64)
                    for name, values in scores.per_reward.items()},
    )
    return ro, scores, comm.gather(rewards).to(device)
