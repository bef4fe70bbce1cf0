"""The language-model RL loop, one step at a time: sample, score, compute advantages, update.

`RLTrainer(cfg).train_step()` does one step and returns its metrics (TRL's names) and samples
(with per-token log-probs, ratios, KL and advantages for the token view), so the loop can be
driven by the run manager (`run_lm_rl_job`, job kind 'lm_rl'), the CLI, a test or a notebook.

One step:
  1. take `prompts_per_step` prompts and sample `num_generations` completions each with
     `model.generate` (KV cache, inference mode);
  2. score them with the reward set (TRL's reward signature: prompts, completions, columns);
  3. advantages from the algorithm (`get_algorithm(cfg.algorithm)`, llmrl_core/lm_rl/algorithms/):
     GRPO group-normalised, RLOO leave-one-out, REINFORCE minus a moving baseline, or PPO's GAE
     over per-token rewards with a value head;
  4. `num_epochs` AdamW updates over the batch in `grad_accum_steps` micro-batches, each with
     the algorithm's loss.

The models (policy with or without LoRA, reference, value head) come from
llmrl_core.lm_rl.policy.load_policy; the stored samples from llmrl_core.lm_rl.samples.

Where the time goes on a CPU, and what is skipped:
  * logits only for completion tokens (`logits_to_keep`), never for the prompt (vocab is ~49k);
  * with one epoch the ratio is exactly 1, so the old log-probs are the training forward's own,
    detached: one forward and one backward per micro-batch, no separate scoring pass;
  * the reference model runs only when beta > 0; with LoRA it is the same model with the
    adapters switched off (peft's disable_adapter), otherwise a frozen copy.

Several processes (num_processes > 1, started by `accelerate launch`, llmrl_core/runs/launch.py):
each process samples and scores its contiguous slice of the prompt-major batch; advantages and
loss weights are computed over the gathered global batch, and each process's loss is scaled so
DDP's averaged gradient equals one process's gradient on the whole batch (llmrl_core/lm_rl/distributed.py).
Only the main process writes to the store; a stop flag is broadcast every step.

Faults end the run with a message that says what to change: out of GPU memory names the batch
settings to lower (OutOfMemoryTrainingError), a full disk stops at the checkpoint being written
(checkpoints.DiskFullError); every step recorded before stays, and so do earlier checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from llmrl_core.lm_rl.algorithms import (
    AdvantageInputs,
    LossInputs,
    compute_clip_stats,
    compute_entropy,
    compute_group_reward_stats,
    compute_kl,
    compute_token_logprobs,
    compute_token_weights,
    get_algorithm,
    masked_mean,
)
from llmrl_core.lm_rl.checkpoints import (
    check_checkpoint,
    load_trainer_state,
    make_checkpoint_dir,
    prune_checkpoints,
    save_checkpoint,
)
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.lm_rl import distributed
from llmrl_core.lm_rl.policy import load_policy
from llmrl_core.lm_rl.samples import TokenStats, make_samples
from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.lm.generation import get_eos_ids, template_adds_bos, render_prompt

LogFn = Callable[[str], None]


class TrainingDivergedError(WorkbenchError):
    """The loss or the gradient stopped being a finite number."""


class OutOfMemoryTrainingError(WorkbenchError):
    """The accelerator ran out of memory while sampling or updating."""


# torch.OutOfMemoryError (torch >= 2.5) is what torch.cuda.OutOfMemoryError names today.
_OOM_ERRORS = tuple({torch.cuda.OutOfMemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)})


def _is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError MPS raises for the same thing."""
    return isinstance(err, _OOM_ERRORS) or (isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def compute_lr_factor(step: int, warmup_steps: int, total_steps: int, kind: str) -> float:
    """Learning-rate multiplier for optimizer step `step` (0-based): linear warm-up, then the schedule."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def expected_metric_keys(cfg: RLConfig, reward_names: list[str]) -> set[str]:
    """Every metric key a step of this config logs (the UI can lay out its charts from this)."""
    keys = {
        "reward", "reward_std", "frac_reward_zero_std", "entropy", "loss/policy",
        "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
        "completions/mean_length", "completions/min_length", "completions/max_length", "completions/clipped_ratio",
        "step_time", "tokens_per_second", "lr", "grad_norm", "num_tokens",
        "time/generation", "time/reward", "time/update", "advantage/std",
    }
    for name in reward_names:
        keys |= {f"rewards/{name}/mean", f"rewards/{name}/std"}
    if cfg.needs_reference:
        keys.add("kl")
    return keys | get_algorithm(cfg.algorithm).metric_keys


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


@dataclass
class StepResult:
    """What one training step produced: its number, scalar metrics and stored samples."""

    step: int
    metrics: dict[str, float]
    samples: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------- rewards and prompts (other modules)


def _build_reward_set(cfg: RLConfig) -> Any:
    """The reward set named by cfg.rewards (llmrl_core.lm_rl.rewards)."""
    from llmrl_core.lm_rl.rewards import build_reward_set

    return build_reward_set(cfg.rewards, allow_custom_code=cfg.allow_custom_code)


def _load_prompts(cfg: RLConfig) -> Any:
    """The prompt set as a DataFrame with a 'prompt' column (llmrl_core.lm_rl.prompts)."""
    from llmrl_core.lm_rl.prompts import load_prompt_set

    return load_prompt_set(cfg.prompt_set, limit=cfg.prompt_limit, seed=cfg.seed)


# ---------------------------------------------------------------------- the trainer


class RLTrainer:
    """Holds the policy, optimizer, reward set and prompt stream; `train_step()` runs one step."""

    def __init__(self, cfg: RLConfig, loaded: Any = None, reward_set: Any = None, prompts: Any = None,
                 log: LogFn | None = None) -> None:
        self.cfg = cfg
        self.algorithm = get_algorithm(cfg.algorithm)
        self.algorithm_state = self.algorithm.init_state()  # e.g. REINFORCE's baseline; kept in checkpoints
        self.log = log or (lambda message: None)
        self.step_count = 0
        self.num_tokens = 0
        self._seed_everything(cfg.seed)
        self.accelerator = self.comm = None  # set on a multi-process launch
        if distributed.is_distributed_launch():
            self.accelerator = distributed.make_accelerator(cpu=distributed.uses_cpu(cfg.device))
            self.comm = distributed.AcceleratorCollective(self.accelerator)
            if cfg.batch_size % self.comm.num_processes:
                raise InputError(f"The {cfg.batch_size} completions per step do not split over the "
                                 f"{self.comm.num_processes} launched processes; set num_processes to a divisor of it.")
            cfg = dataclasses.replace(cfg, device=str(self.accelerator.device))  # cuda:<local rank>, or cpu
            self.cfg = cfg

        resume = check_checkpoint(cfg.resume_from) if cfg.resume_from else None
        models = load_policy(cfg, resume, loaded, self.log)
        self.loaded = models.loaded
        self.tokenizer = models.loaded.tokenizer
        self.device = models.loaded.device
        self.use_bf16 = cfg.mixed_precision == "bf16" or (
            cfg.mixed_precision == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        )
        self.policy, self.ref_model, self.value_head = models.model, models.ref_model, models.value_head
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        if self.value_head is not None:
            self.params += list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: compute_lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.lr_scheduler)
        )
        self.train_model = self.policy  # what the update's forward runs: the DDP/FSDP/ZeRO wrapper on several processes
        if self.accelerator is not None:  # DDP copies rank 0's weights (e.g. a random LoRA init) to every process
            deepspeed = self.accelerator.state.deepspeed_plugin
            if deepspeed is not None:  # no dataloader is prepared, so DeepSpeed is told the per-process batch (as TRL does)
                deepspeed.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size // self.comm.num_processes
            self.train_model, self.optimizer = self.accelerator.prepare(self.policy, self.optimizer)
        self.eos_ids = sorted(get_eos_ids(self.loaded))
        self.reward_set = reward_set if reward_set is not None else _build_reward_set(cfg)
        frame = prompts if prompts is not None else _load_prompts(cfg)
        if frame is None or len(frame) == 0 or "prompt" not in frame.columns:
            raise InputError(f"The prompt set {cfg.prompt_set!r} has no prompts (it needs a 'prompt' column with rows).")
        self.prompt_frame = frame.reset_index(drop=True)
        self._order: list[int] = []
        self._cursor = 0
        self._epoch = 0
        if resume is not None:
            self._restore_state(load_trainer_state(resume))
            self.log(f"Resumed from {resume} at step {self.step_count}.")
        if self.comm is not None:  # a prompt's samples on two processes must not be sampled from the same stream
            torch.manual_seed(cfg.seed + 7919 * self.comm.process_index + 104_729 * self.step_count)

    @property
    def is_main_process(self) -> bool:
        """True on the one process that writes metrics, samples, checkpoints and logs (always on one process)."""
        return self.comm is None or self.comm.process_index == 0

    def _sample_slice(self) -> slice:
        """This process's rows of the step's prompt-major batch (all of them on one process)."""
        if self.comm is None:
            return slice(None)
        return distributed.get_sample_slice(self.cfg.batch_size, self.comm.num_processes, self.comm.process_index)

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast when mixed precision is on, else nothing."""
        if not self.use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    # ------------------------------------------------------------------ state for checkpoints

    def state_dict(self) -> dict:
        """Everything besides the weights that a resumed run needs."""
        return {
            "step": self.step_count,
            "num_tokens": self.num_tokens,
            **self.algorithm_state,  # REINFORCE: "baseline"
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "value_head": self.value_head.state_dict() if self.value_head is not None else None,
            "order": self._order,
            "cursor": self._cursor,
            "epoch": self._epoch,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }

    def _restore_state(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.num_tokens = int(state.get("num_tokens", 0))
        for key in self.algorithm_state:
            self.algorithm_state[key] = state.get(key, self.algorithm_state[key])
        try:
            if state.get("optimizer") is not None:
                self.optimizer.load_state_dict(state["optimizer"])
            else:  # retention keeps the optimizer only in a run's newest checkpoint
                self.log("This checkpoint has no optimizer state (only a run's newest checkpoint keeps it): "
                         "AdamW starts afresh, so the first steps may move a little differently than in the original run.")
        except ValueError as err:
            raise InputError(f"The checkpoint's optimizer does not match this config ({err}); resume with the same "
                             "algorithm, use_lora and LoRA settings as the original run.") from err
        self.scheduler.load_state_dict(state["scheduler"])
        if self.value_head is not None and state.get("value_head") is not None:
            self.value_head.load_state_dict(state["value_head"])
        self._order, self._cursor, self._epoch = list(state["order"]), int(state["cursor"]), int(state["epoch"])
        if len(self._order) != len(self.prompt_frame):  # the prompt set changed since: start a fresh pass
            self._order, self._cursor = [], 0
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])

    @property
    def is_sharded(self) -> bool:
        """True when each process holds only a shard of the weights (FSDP, ZeRO-3)."""
        return self.accelerator is not None and self.cfg.distributed_strategy in ("fsdp", "zero3")

    def save_checkpoint(self, root: Any) -> Any:
        """Save weights (or the LoRA adapter) and trainer state under root/checkpoint-<step>; return the folder.

        Every process calls it (sharded weights are gathered collectively); only the main process
        writes, and the others get None. Sharded runs save no optimizer state: each process holds
        only its shard of it, so a resumed run starts AdamW afresh (and says so).
        """
        model = self.policy
        if self.is_sharded:  # accelerator.get_state_dict gathers the full weights onto the main process
            model = _WithStateDict(self.policy, self.accelerator.get_state_dict(self.train_model))
        if not self.is_main_process:
            return None
        state = self.state_dict()
        if self.is_sharded:
            state["optimizer"] = None
        folder = make_checkpoint_dir(root, self.step_count)
        return save_checkpoint(folder, model, self.tokenizer, state, self.cfg.to_yaml())

    def _out_of_memory(self, phase: str) -> OutOfMemoryTrainingError:
        """The error to raise for an out-of-memory in `phase`, naming the batch settings to lower."""
        cfg = self.cfg
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        batch = (f"prompts_per_step (now {cfg.prompts_per_step}), num_generations (now {cfg.num_generations}) "
                 f"or max_new_tokens (now {cfg.max_new_tokens})")
        if phase == "generation":
            advice = f"Lower {batch}: sampling holds all {cfg.batch_size} completions at once."
        else:
            advice = (f"Raise grad_accum_steps (now {cfg.grad_accum_steps}, at most {cfg.batch_size}) to update in smaller "
                      f"micro-batches, or lower {batch}"
                      + ("" if cfg.use_lora else "; use_lora=true also frees the optimizer's memory")
                      + ("; beta > 0 keeps a reference model in memory" if cfg.needs_reference and not cfg.use_lora else "")
                      + ".")
        return OutOfMemoryTrainingError(
            f"Out of memory ({self.device}) during {phase} at step {self.step_count + 1} "
            f"({cfg.batch_size} completions of up to {cfg.max_new_tokens} tokens). {advice} "
            "Steps and checkpoints saved so far are kept; resume from the last checkpoint with the smaller settings."
        )

    # ------------------------------------------------------------------ 1. sampling

    def _next_prompt_rows(self) -> list[int]:
        """The next prompts_per_step row indices, cycling through a fresh shuffle each pass."""
        rows = []
        for _ in range(self.cfg.prompts_per_step):
            if self._cursor >= len(self._order):
                rng = random.Random(self.cfg.seed * 1_000_003 + self._epoch)
                self._order = list(range(len(self.prompt_frame)))
                rng.shuffle(self._order)
                self._cursor, self._epoch = 0, self._epoch + 1
            rows.append(self._order[self._cursor])
            self._cursor += 1
        return rows

    @torch.no_grad()
    def generate_rollout(self) -> Rollout:
        """Sample num_generations completions for each of the next prompts (step 1)."""
        cfg, tok = self.cfg, self.tokenizer
        rows = self._next_prompt_rows()
        frame = self.prompt_frame.iloc[rows]
        raw_prompts = list(frame["prompt"])
        chat = {"auto": None, "chat": True, "raw": False}[cfg.chat]
        texts = [render_prompt(tok, p, chat=chat, system=cfg.system_prompt) for p in raw_prompts]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=not template_adds_bos(tok, texts))
        rows_here = self._sample_slice()  # several processes: this one's contiguous samples (b = B / N rows)
        prompt_ids = enc["input_ids"].repeat_interleave(cfg.num_generations, dim=0)[rows_here].to(self.device)  # (b, P)
        prompt_mask = enc["attention_mask"].repeat_interleave(cfg.num_generations, dim=0)[rows_here].to(self.device)  # (b, P)
        if prompt_ids.shape[1] + cfg.max_new_tokens > self.loaded.context_length:
            raise InputError(f"Prompts of {prompt_ids.shape[1]} tokens plus max_new_tokens ({cfg.max_new_tokens}) exceed the "
                             f"model's context of {self.loaded.context_length}; lower max_new_tokens or use shorter prompts.")
        start = time.perf_counter()
        self.policy.eval()
        # On a CPU, bf16 autocast slows decoding (16-row matmuls re-cast the weights; measured in
        # bench/bench_rl_step.py), so sampling stays in float32 there; on CUDA it is the faster choice.
        autocast = self._autocast() if self.device.type == "cuda" else contextlib.nullcontext()
        try:
            with torch.inference_mode(), autocast:
                completion_ids = self.sample_completions(prompt_ids, prompt_mask, rows_here.start or 0)  # (B, T)
        except RuntimeError as err:
            if "inf" in str(err) or "nan" in str(err):  # sampling from NaN probabilities: the weights blew up
                self._check_finite(torch.tensor(float("nan")), "sampling distribution")
            raise
        seconds = time.perf_counter() - start
        completion_ids = completion_ids.clone()  # (B, T); clone leaves inference mode
        n_pos = completion_ids.shape[1]
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_ids, device=self.device))  # (B, T)
        has_eos = is_eos.any(dim=1)  # (B,)
        first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, n_pos, dtype=torch.long))
        positions = torch.arange(n_pos, device=self.device).unsqueeze(0)  # (1, T)
        completion_mask = (positions <= first_eos.unsqueeze(1)).float()  # (B, T) EOS included
        attention_mask = torch.cat([prompt_mask, completion_mask.long()], dim=1)  # (B, P + T)
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # (B, P + T)
        lengths = completion_mask.sum(1).long().tolist()
        decoded = tok.batch_decode([ids[:n] for ids, n in zip(completion_ids.tolist(), lengths)], skip_special_tokens=True)
        columns = {
            c: [v for v in frame[c].tolist() for _ in range(cfg.num_generations)][rows_here]
            for c in self.prompt_frame.columns if c != "prompt"
        }
        return Rollout(
            prompts=[p for p in raw_prompts for _ in range(cfg.num_generations)][rows_here], columns=columns,
            input_ids=torch.cat([prompt_ids, completion_ids], dim=1), attention_mask=attention_mask,
            position_ids=position_ids, completion_ids=completion_ids, completion_mask=completion_mask,
            texts=decoded, clipped=~has_eos, seconds=seconds,
        )

    def sample_completions(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, first_index: int) -> torch.Tensor:
        """Completion token ids (b, T) for left-padded prompts (b, P), sampled with `model.generate`.

        `first_index` is the global index of the first row in the step's batch (0 on one process);
        generation does not use it, but a test can override this method to give every sample fixed
        tokens by its global index, the same on one process and on several.
        """
        cfg = self.cfg
        out = self.policy.generate(
            input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=cfg.temperature,
            top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_ids,
            # sharded weights are gathered layer by layer in lockstep, so every process decodes to the end
            **({"synced_gpus": True} if self.comm is not None and cfg.distributed_strategy in ("fsdp", "zero3") else {}),
        )
        return out[:, prompt_ids.shape[1]:]  # (b, T)

    # ------------------------------------------------------------------ forward passes

    def _forward(self, model: Any, ro: Rollout, idx: torch.Tensor, want_values: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-probs (b, T), completion logits (b, T, V) and optionally values (b, T) for rows `idx`."""
        n_pos = ro.completion_ids.shape[1]
        with self._autocast():
            out = model(
                input_ids=ro.input_ids[idx], attention_mask=ro.attention_mask[idx], position_ids=ro.position_ids[idx],
                logits_to_keep=n_pos + 1,  # lm_head only on the positions that predict completion tokens
                output_hidden_states=want_values, use_cache=False,
            )
        logits = out.logits[:, :-1, :].float()  # (b, T, V)
        if self.cfg.temperature != 1.0:
            logits = logits / self.cfg.temperature  # the distribution the tokens were sampled from
        logp = compute_token_logprobs(logits, ro.completion_ids[idx])  # (b, T)
        values = None
        if want_values:
            hidden = out.hidden_states[-1][:, -n_pos - 1:-1, :]  # (b, T, H) states that predict each token
            values = self.value_head.get_value(hidden)  # (b, T)
        return logp, logits, values

    @torch.no_grad()
    def _reference_logprobs(self, ro: Rollout, chunks: list[torch.Tensor]) -> torch.Tensor:
        """Reference log-probs (B, T): the base model with adapters off (LoRA) or the frozen copy."""
        parts = []
        for idx in chunks:
            if self.ref_model is not None:
                parts.append(self._forward(self.ref_model, ro, idx)[0])
            else:
                with self.policy.disable_adapter():
                    parts.append(self._forward(self.policy, ro, idx)[0])
        return torch.cat(parts)

    @torch.no_grad()
    def _old_logprobs_and_values(self, ro: Rollout, chunks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs (B, T) and values (B, T) before any update (needed for several epochs, and by PPO)."""
        want_values = self.value_head is not None
        logps, values = [], []
        for idx in chunks:
            logp, _, value = self._forward(self.policy, ro, idx, want_values)
            logps.append(logp)
            values.append(value)
        return torch.cat(logps), (torch.cat(values) if want_values else None)

    # ------------------------------------------------------------------ 3.-4. advantages and update

    def _check_finite(self, value: torch.Tensor, what: str) -> None:
        """Stop the run with advice when the loss or gradient is NaN or infinite."""
        if torch.isfinite(value).all():
            return
        lr = self.optimizer.param_groups[0]["lr"]
        raise TrainingDivergedError(
            f"The {what} became {float(value)} at step {self.step_count + 1}: training diverged. "
            f"Lower learning_rate (now {lr:g}; try {lr / 10:g}), keep max_grad_norm at 1.0 or below"
            + (", or set mixed_precision to 'no'." if self.use_bf16 else ".")
        )

    def update_policy(self, ro: Rollout, rewards: torch.Tensor) -> tuple[dict[str, float], TokenStats]:
        """Compute the algorithm's advantages and run num_epochs optimizer steps on one rollout.

        Returns the update's metrics and its per-token results (for the stored samples).
        """
        cfg, algo = self.cfg, self.algorithm
        mask = ro.completion_mask  # (B, T)
        n_seq = mask.shape[0]
        chunks = list(torch.arange(n_seq, device=self.device).chunk(cfg.grad_accum_steps))
        has_values = self.value_head is not None
        self.policy.train()
        ref_logp = self._reference_logprobs(ro, chunks) if cfg.needs_reference else None  # (B, T)
        old_logp = old_values = None
        if cfg.num_epochs > 1 or has_values:  # several epochs need a fixed pi_old; a value head its old values
            old_logp, old_values = self._old_logprobs_and_values(ro, chunks)  # (B, T) each
        batch = AdvantageInputs(rewards, mask, old_logp, ref_logp, old_values)
        comm, width = self.comm, mask.shape[1]
        if comm is not None:  # advantages and loss weights over the whole batch (B rows of every process)
            batch, _ = distributed.gather_advantage_inputs(comm, batch)
        adv = algo.compute_advantages(cfg, batch, self.algorithm_state)
        weights = compute_token_weights(batch.mask, cfg.loss_type, cfg.max_new_tokens)  # (B, T)
        value_weights = batch.mask / batch.mask.sum().clamp(min=1.0)  # (B, T) token mean for the value loss
        global_mask, global_advantages, global_old_values = batch.mask, adv.advantages, batch.old_values
        returns = adv.returns
        advantages = adv.advantages  # (B,) or (B, T)
        if comm is not None:  # keep this process's rows: its loss is its share of the global batch loss
            advantages, weights, value_weights, returns = (distributed.take_local(comm, t, width)
                                                           for t in (advantages, weights, value_weights, returns))
        # DDP averages gradients over the N processes; scaling each share by N makes that average the sum,
        # which is the gradient of the whole batch's loss (1 on one process: the loss as is)
        loss_scale = comm.num_processes if comm is not None else 1

        lr = self.optimizer.param_groups[0]["lr"]
        for epoch in range(cfg.num_epochs):
            last_epoch = epoch == cfg.num_epochs - 1
            acc: dict[str, Any] = {"policy": 0.0, "value": 0.0, "clipfrac": 0.0,
                                   "logps": [], "ratios": [], "entropies": [], "kls": []}
            for i, idx in enumerate(chunks):
                # several processes: gradients are all-reduced on the last micro-batch only
                sync = (self.accelerator.no_sync(self.train_model) if comm is not None and i < len(chunks) - 1
                        else contextlib.nullcontext())
                with sync:
                    self._accumulate_chunk(ro, idx, old_logp, ref_logp, advantages, weights, mask, old_values,
                                           returns, value_weights, loss_scale, last_epoch, n_seq, acc)
            if comm is not None and self.value_head is not None:  # the value head is outside DDP's wrapper
                distributed.average_gradients(comm, list(self.value_head.parameters()))
            policy_loss_sum, value_loss_sum, value_clipfrac = acc["policy"], acc["value"], acc["clipfrac"]
            logps, ratios, entropies, kls = acc["logps"], acc["ratios"], acc["entropies"], acc["kls"]
            max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
            if self.accelerator is not None:  # None under DeepSpeed, which clips by its own config
                grad_norm = self.accelerator.clip_grad_norm_(self.params, max_norm)
                if grad_norm is None:
                    grad_norm = torch.tensor(float("nan"))  # logged as NaN: DeepSpeed keeps the norm to itself
                else:
                    self._check_finite(grad_norm, "gradient norm")
            else:
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
                self._check_finite(grad_norm, "gradient norm")
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.policy.eval()
        return self._summarize_update(mask, global_mask, global_advantages, global_old_values, ratios, entropies,
                                      kls, logps, policy_loss_sum, value_loss_sum, value_clipfrac, grad_norm, lr, adv)

    def _accumulate_chunk(self, ro: Rollout, idx: torch.Tensor, old_logp: Any, ref_logp: Any, advantages: torch.Tensor,
                          weights: torch.Tensor, mask: torch.Tensor, old_values: Any, returns: Any,
                          value_weights: torch.Tensor, loss_scale: int, last_epoch: bool, n_seq: int,
                          acc: dict) -> None:
        """Forward and backward one micro-batch of rows `idx`; add its losses and per-token results to `acc`."""
        cfg, algo = self.cfg, self.algorithm
        logp, logits, values = self._forward(self.train_model, ro, idx, want_values=self.value_head is not None)  # (b, T), (b, T, V)
        old = old_logp[idx] if old_logp is not None else logp.detach()  # ratio 1 on a single epoch
        kl = compute_kl(logp, ref_logp[idx], cfg.kl_estimator) if ref_logp is not None else None  # (b, T)
        part = algo.compute_loss(cfg, LossInputs(
            logp=logp, old_logp=old, advantages=advantages[idx], weights=weights[idx], kl=kl, mask=mask[idx],
            values=values, old_values=_rows(old_values, idx), returns=_rows(returns, idx),
            value_weights=value_weights[idx],
        ))
        self._check_finite(part.loss.detach(), "loss")
        if self.accelerator is None:
            part.loss.backward()
        else:
            self.accelerator.backward(part.loss * loss_scale)
        acc["policy"] += float(part.policy_loss.detach())
        if part.value_loss is not None:
            acc["value"] += float(part.value_loss.detach())
            acc["clipfrac"] += part.value_clipfrac * len(idx) / n_seq
        if last_epoch:
            acc["logps"].append(logp.detach())
            acc["ratios"].append(part.ratio)
            acc["entropies"].append(compute_entropy(logits.detach()))
            if kl is not None:
                acc["kls"].append(kl.detach())

    def _summarize_update(self, mask: torch.Tensor, global_mask: torch.Tensor, advantages: torch.Tensor,
                          old_values: Any, ratios: list, entropies: list, kls: list, logps: list,
                          policy_loss_sum: float, value_loss_sum: float, value_clipfrac: float, grad_norm: torch.Tensor,
                          lr: float, adv: Any) -> tuple[dict[str, float], TokenStats]:
        """The update's metrics and per-token results over the whole batch (gathered from every process)."""
        cfg, comm, has_values = self.cfg, self.comm, self.value_head is not None
        ratio_all = torch.cat(ratios)  # (b, T)
        entropy_all = torch.cat(entropies)  # (b, T)
        logp_all = torch.cat(logps)  # (b, T)
        token_kl = torch.cat(kls) if kls else None  # (b, T)
        if comm is not None:  # every process's rows, padded to the longest completion: (B, T)
            width = global_mask.shape[1]
            ratio_all, entropy_all, logp_all, token_kl = (distributed.gather_rows(comm, t, width)
                                                          for t in (ratio_all, entropy_all, logp_all, token_kl))
            policy_loss_sum = distributed.sum_over_processes(comm, policy_loss_sum)  # the shares add up to the loss
            value_loss_sum = distributed.sum_over_processes(comm, value_loss_sum)
            value_clipfrac = distributed.sum_over_processes(comm, value_clipfrac) / comm.num_processes
            mask = global_mask
        n_seq = mask.shape[0]
        stats: dict[str, Any] = {}
        if advantages.dim() == 2:  # one per token: the spread over real tokens
            advantage_std = float(advantages[mask.bool()].std())
        else:
            advantage_std = float(advantages.std()) if n_seq > 1 else 0.0
        stats.update(compute_clip_stats(ratio_all, advantages, mask, cfg.epsilon, cfg.clip_high))
        stats.update({
            "loss/policy": policy_loss_sum, "grad_norm": float(grad_norm), "lr": lr,
            "entropy": float(masked_mean(entropy_all, mask)), "advantage/std": advantage_std,
        })
        if token_kl is not None:
            stats["kl"] = float(masked_mean(token_kl, mask))
        if has_values:
            stats.update({"loss/value": value_loss_sum, "value/mean": float(masked_mean(old_values, mask)),
                          "value/clipfrac": value_clipfrac})
        stats.update(adv.metrics)
        token = TokenStats(logp=logp_all, ratio=ratio_all, advantages=advantages, kl=token_kl, values=old_values)
        return stats, token

    # ------------------------------------------------------------------ one step

    def train_step(self) -> StepResult:
        """Sample, score, update once; return the step's metrics (TRL names) and samples."""
        cfg = self.cfg
        start = time.perf_counter()
        oom_in = None  # the error is raised after the except block, once its frames (and tensors) are freed
        try:
            ro = self.generate_rollout()
        except Exception as err:
            if not _is_out_of_memory(err):
                raise
            oom_in = "generation"
        if oom_in:
            raise self._out_of_memory(oom_in)

        reward_start = time.perf_counter()
        lengths_list = ro.completion_mask.sum(1).long().tolist()
        completion_ids = [ids[:n] for ids, n in zip(ro.completion_ids.tolist(), lengths_list)]
        scores = self.reward_set.score(ro.prompts, ro.texts, completion_ids=completion_ids, **ro.columns)
        reward_seconds = time.perf_counter() - reward_start
        total = np.asarray(scores.total, dtype=np.float64)
        if not np.isfinite(total).all():
            total = np.nan_to_num(total, nan=0.0, posinf=0.0, neginf=0.0)
            self.log("Some completions got no reward (None/NaN); they count as 0 in the total.")
        scores = dataclasses.replace(scores, total=total)
        rewards = torch.tensor(total, dtype=torch.float32, device=self.device)  # (B,)

        update_start = time.perf_counter()
        try:
            stats, token = self.update_policy(ro, rewards)
        except Exception as err:
            if not _is_out_of_memory(err):
                raise
            oom_in = "the update"
        if oom_in:
            self.optimizer.zero_grad(set_to_none=True)
            raise self._out_of_memory(oom_in)
        update_seconds = time.perf_counter() - update_start
        self.step_count += 1
        if self.comm is not None:  # metrics and samples over the whole batch, as one process would report them
            ro, scores, rewards = self._gather_for_report(ro, scores, rewards)
            total = scores.total  # (B,)
        step_time = time.perf_counter() - start

        lengths = ro.completion_mask.sum(1)  # (B,)
        n_tokens = int(lengths.sum())
        self.num_tokens += n_tokens
        metrics = scores.summarize()  # reward, reward_std, rewards/<name>/mean and /std
        if cfg.num_generations > 1:  # TRL's reward_std: the mean of each prompt's std
            metrics.update(compute_group_reward_stats(rewards.cpu(), cfg.num_generations))
        else:
            metrics["frac_reward_zero_std"] = float(metrics["reward_std"] < 1e-8)
        metrics.update(stats)
        metrics.update({
            "completions/mean_length": float(lengths.mean()), "completions/min_length": float(lengths.min()),
            "completions/max_length": float(lengths.max()), "completions/clipped_ratio": float(ro.clipped.float().mean()),
            "step_time": step_time, "tokens_per_second": n_tokens / step_time if step_time > 0 else 0.0,
            "num_tokens": float(self.num_tokens), "time/generation": ro.seconds, "time/reward": reward_seconds,
            "time/update": update_seconds,
        })
        samples = make_samples(self.tokenizer, ro, scores.per_reward, total, token, cfg.samples_per_step,
                               cfg.num_generations)
        return StepResult(self.step_count, metrics, samples)


    def _gather_for_report(self, ro: Rollout, scores: Any, rewards: torch.Tensor) -> tuple[Rollout, Any, torch.Tensor]:
        """Every process's completions, scores and rewards (B rows, prompt-major) for the metrics and samples.

        Only the fields reporting reads are gathered (completions, masks, texts, prompts, columns);
        input_ids, attention_mask and position_ids stay this process's.
        """
        comm = self.comm
        width = distributed.gather_max_int(comm, ro.completion_ids.shape[1])
        completion_ids = distributed.pad_width(ro.completion_ids, width, value=self.tokenizer.pad_token_id or 0)
        ro = dataclasses.replace(
            ro, completion_ids=comm.gather(completion_ids).to(self.device),
            completion_mask=distributed.gather_rows(comm, ro.completion_mask, width).to(self.device),
            clipped=comm.gather(ro.clipped).to(self.device), texts=comm.gather_objects(ro.texts),
            prompts=comm.gather_objects(ro.prompts),
            columns={name: comm.gather_objects(values) for name, values in ro.columns.items()},
        )
        scores = dataclasses.replace(
            scores, total=np.asarray(comm.gather_objects(list(scores.total)), dtype=np.float64),
            per_reward={name: np.asarray(comm.gather_objects(list(values)), dtype=np.float64)
                        for name, values in scores.per_reward.items()},
        )
        return ro, scores, comm.gather(rewards).to(self.device)


class _WithStateDict:
    """A model whose save_pretrained writes a given (gathered) state dict: sharded runs' checkpoints."""

    def __init__(self, model: Any, state_dict: dict) -> None:
        self.model, self.state = model, state_dict

    def save_pretrained(self, path: Any, **kwargs: Any) -> None:
        self.model.save_pretrained(path, state_dict=self.state, **kwargs)


def _rows(values: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    """values[idx], or None when there are no values."""
    return None if values is None else values[idx]


# ---------------------------------------------------------------------- the job


def run_lm_rl_job(ctx: Any, on_step: Callable[[StepResult], None] | None = None) -> dict:
    """Job kind 'lm_rl': train cfg.steps steps, reporting each to the store; checkpoint as configured.

    Honours stop and pause between steps (ctx.should_stop), so a stop takes effect within one step.
    `on_step(result)` lets the CLI draw a progress bar.
    """
    cfg = RLConfig.from_dict(ctx.config)
    trainer = RLTrainer(cfg, log=ctx.log)
    try:
        return _train_until_done(ctx, trainer, on_step)
    finally:
        close = getattr(trainer.reward_set, "close", None)
        if callable(close):
            close()  # custom-code rewards hold a worker process


def _train_until_done(ctx: Any, trainer: RLTrainer, on_step: Callable[[StepResult], None] | None) -> dict:
    """The body of run_lm_rl_job: the step loop, checkpoints and the summary."""
    from llmrl_core.core.paths import get_artifact_dir

    cfg = trainer.cfg
    first_step = trainer.step_count
    if trainer.is_main_process:
        ctx.set_progress(first_step, cfg.steps)
    if trainer.comm is not None and trainer.is_main_process:
        ctx.log(f"{trainer.comm.num_processes} processes ({trainer.accelerator.distributed_type}, "
                f"{trainer.accelerator.device.type}) share each step: {cfg.batch_size // trainer.comm.num_processes} "
                "completions each.")
    if trainer.is_main_process:
        ctx.log(f"Training {cfg.algorithm.upper()} for {cfg.steps - first_step} steps: {cfg.prompts_per_step} prompts x "
                f"{cfg.num_generations} samples, {'LoRA' if cfg.use_lora else 'full fine-tuning'}, lr {cfg.learning_rate:g}.")
    root = get_artifact_dir(ctx.run_id)
    rewards: list[float] = []
    last_saved = None

    def save(step: int, final: bool = False) -> None:
        nonlocal last_saved
        folder = trainer.save_checkpoint(root)  # every process: sharded weights are gathered together
        if not trainer.is_main_process:  # the others only keep count
            last_saved = step
            return
        ctx.add_artifact(step, "checkpoint", folder, {
            "step": step, "lora": cfg.use_lora, "algorithm": cfg.algorithm, "model": cfg.model,
            "reward": rewards[-1] if rewards else None, "optimizer": not trainer.is_sharded,
        })
        ctx.log(f"Saved checkpoint {folder.name}.")
        last_saved = step
        # the final checkpoint comes on top of the newest save_total_limit ones
        apply_retention(ctx, root, cfg.save_total_limit + (1 if final else 0))

    main = trainer.is_main_process  # several processes: only this one writes to the store
    while trainer.step_count < cfg.steps:
        # the main process reads stop and pause; every process gets its answer, so all stop at this boundary
        stop = distributed.sync_stop(trainer.comm, ctx.should_stop() if main else False)
        if stop:
            if main:
                ctx.log(f"Stopping after step {trainer.step_count}.")
                ctx.stop_event.set()  # a stop read on the main process is the run's outcome
            break
        result = trainer.train_step()
        rewards.append(result.metrics["reward"])
        if main:
            ctx.log_metrics(result.step, result.metrics)
            ctx.add_samples(result.step, result.samples)
            ctx.set_progress(result.step, cfg.steps)
            if on_step is not None:
                on_step(result)
        if cfg.save_every and result.step % cfg.save_every == 0:
            save(result.step)
    if cfg.save_final and trainer.step_count > first_step and last_saved != trainer.step_count:
        save(trainer.step_count, final=True)
    if trainer.accelerator is not None:
        trainer.accelerator.wait_for_everyone()  # no process leaves while another still saves
    window = min(10, len(rewards))
    return {
        "steps": trainer.step_count,
        "reward_first": float(np.mean(rewards[:window])) if rewards else None,
        "reward_last": float(np.mean(rewards[-window:])) if rewards else None,
        "checkpoint": str(make_checkpoint_dir(root, last_saved)) if last_saved is not None else None,
    }


def apply_retention(ctx: Any, root: Any, keep: int) -> None:
    """Keep the newest `keep` checkpoints of the run, optimizer state only in the newest; update
    the run's artifact rows and log what was dropped (llmrl_core.lm_rl.checkpoints.prune_checkpoints)."""
    deleted, stripped = prune_checkpoints(root, keep)
    if deleted:
        ctx.store.remove_artifacts(ctx.run_id, deleted)
        ctx.log(f"Deleted {len(deleted)} older checkpoint(s) ({', '.join(p.name for p in deleted)}): "
                f"save_total_limit keeps the newest {keep}.")
    if stripped:
        ctx.store.update_artifact_meta(ctx.run_id, stripped, {"optimizer": False})
        ctx.log(f"Dropped the optimizer state from {', '.join(p.name for p in stripped)} (only the newest checkpoint "
                "keeps it; the others still load as models and resume with a fresh optimizer).")

