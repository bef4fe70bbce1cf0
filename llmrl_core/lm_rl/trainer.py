"""The language-model RL step: `RLTrainer(cfg).train_step()` samples, scores and updates once.

It returns the step's metrics (TRL's names) and samples (with per-token log-probs, ratios, KL,
advantages and the update's push on each token for the token view), so the loop can be driven by the 'lm_rl' job (job.py), the CLI, a
test or a notebook. The trainer only sets the parts up and runs them in order:

  1.-2. rollout.py: take prompts_per_step prompts, sample num_generations completions each, score
        them with the reward set;
  3.-4. update.py: the algorithm's advantages (llmrl_core/lm_rl/algorithms/), then num_epochs
        AdamW updates in grad_accum_steps micro-batches;
  then the metrics of the whole batch and the stored samples (samples.py).

Each phase is timed: time/generation, time/scoring, time/old_logprobs (forwards before the
update), time/update. The models come from policy.py; checkpoints from checkpoints.py.

Several processes (num_processes > 1, started by `accelerate launch`, llmrl_core/runs/launch.py):
each process samples and scores its contiguous slice of the prompt-major batch; advantages and
loss weights are computed over the gathered whole batch (distributed.py). One process runs the
same code with `LocalCollective`, whose gathers are the identity. Only the main process writes.

Faults end the run with a message that says what to change (faults.py): out of memory names the
batch settings to lower, a diverged loss the learning rate; a full disk stops at the checkpoint
being written (checkpoints.DiskFullError). Every step recorded before stays, and so do checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from llmrl_core.core.errors import InputError
from llmrl_core.lm.generation import get_eos_ids
from llmrl_core.lm.precision import resolve_precision
from llmrl_core.lm_rl import distributed
from llmrl_core.lm_rl.algorithms import compute_group_reward_stats, get_algorithm
from llmrl_core.lm_rl.checkpoints import check_checkpoint, load_trainer_state, make_checkpoint_dir, save_checkpoint
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.lm_rl.faults import is_out_of_memory, make_out_of_memory_error
from llmrl_core.lm_rl.policy import load_policy
from llmrl_core.lm_rl.rollout import (
    PromptStream,
    Rollout,
    encode_prompts,
    gather_rollout,
    make_rollout,
    sample_with_fast_loop,
    sample_with_generate,
    score_rollout,
)
from llmrl_core.lm_rl.samples import TokenStats, make_samples
from llmrl_core.lm_rl.update import PolicyUpdater

LogFn = Callable[[str], None]


def expected_metric_keys(cfg: RLConfig, reward_names: list[str]) -> set[str]:
    """Every metric key a step of this config logs (the UI can lay out its charts from this)."""
    keys = {
        "reward", "reward_std", "frac_reward_zero_std", "entropy", "loss/policy",
        "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
        "completions/mean_length", "completions/min_length", "completions/max_length", "completions/clipped_ratio",
        "step_time", "tokens_per_second", "lr", "grad_norm", "num_tokens",
        "time/generation", "time/scoring", "time/old_logprobs", "time/update", "advantage/std",
    }
    for name in reward_names:
        keys |= {f"rewards/{name}/mean", f"rewards/{name}/std"}
    if cfg.needs_reference:
        keys.add("kl")
    return keys | get_algorithm(cfg.algorithm).metric_keys


@dataclass
class StepResult:
    """What one training step produced: its number, scalar metrics and stored samples."""

    step: int
    metrics: dict[str, float]
    samples: list[dict] = field(default_factory=list)


def _build_reward_set(cfg: RLConfig) -> Any:
    """The reward set named by cfg.rewards (llmrl_core.lm_rl.rewards)."""
    from llmrl_core.lm_rl.rewards import build_reward_set

    return build_reward_set(cfg.rewards, allow_custom_code=cfg.allow_custom_code)


def _load_prompts(cfg: RLConfig) -> Any:
    """The prompt set as a DataFrame with a 'prompt' column (llmrl_core.lm_rl.prompts)."""
    from llmrl_core.lm_rl.prompts import load_prompt_set

    return load_prompt_set(cfg.prompt_set, limit=cfg.prompt_limit, seed=cfg.seed)


class RLTrainer:
    """Holds the policy, the updater (optimizer, algorithm state), the reward set and the prompt stream."""

    def __init__(self, cfg: RLConfig, loaded: Any = None, reward_set: Any = None, prompts: Any = None,
                 log: LogFn | None = None) -> None:
        self.cfg = cfg
        self.log = log or (lambda message: None)
        self.step_count = 0
        self.num_tokens = 0
        _seed_everything(cfg.seed)
        self.comm = distributed.make_collective(cfg.device)  # LocalCollective unless launched on several processes
        if cfg.batch_size % self.comm.num_processes:
            raise InputError(f"The {cfg.batch_size} completions per step do not split over the "
                             f"{self.comm.num_processes} launched processes; set num_processes to a divisor of it.")
        if self.comm.num_processes > 1:
            cfg = self.cfg = dataclasses.replace(cfg, device=str(self.comm.accelerator.device))  # cuda:<rank>, or cpu

        resume = check_checkpoint(cfg.resume_from) if cfg.resume_from else None
        models = load_policy(cfg, resume, loaded, self.log)  # after seeding: LoRA's init and the value head draw from it
        self.loaded, self.tokenizer, self.device = models.loaded, models.loaded.tokenizer, models.loaded.device
        self.precision = resolve_precision(cfg.mixed_precision, self.device)  # 'auto': bf16 where the hardware has it
        self.log(f"Precision: {self.precision.describe(cfg.mixed_precision)}.")
        self.policy, self.ref_model, self.value_head = models.model, models.ref_model, models.value_head
        self.updater = PolicyUpdater(cfg, models, self.comm, self.precision)
        self.eos_ids = sorted(get_eos_ids(self.loaded))
        self.reward_set = reward_set if reward_set is not None else _build_reward_set(cfg)
        frame = prompts if prompts is not None else _load_prompts(cfg)
        if frame is None or len(frame) == 0 or "prompt" not in frame.columns:
            raise InputError(f"The prompt set {cfg.prompt_set!r} has no prompts (it needs a 'prompt' column with rows).")
        self.prompt_frame = frame.reset_index(drop=True)
        self.prompts = PromptStream(self.prompt_frame, cfg.seed, cfg.prompts_per_step)
        if resume is not None:
            self._restore_state(load_trainer_state(resume))
            self.log(f"Resumed from {resume} at step {self.step_count}.")
        if self.comm.num_processes > 1:  # a prompt's samples on two processes must not be sampled from the same stream
            torch.manual_seed(cfg.seed + 7919 * self.comm.process_index + 104_729 * self.step_count)

    # what the update owns, under the names callers know
    optimizer = property(lambda self: self.updater.optimizer)
    scheduler = property(lambda self: self.updater.scheduler)
    params = property(lambda self: self.updater.params)
    algorithm = property(lambda self: self.updater.algorithm)
    algorithm_state = property(lambda self: self.updater.algorithm_state)
    train_model = property(lambda self: self.updater.train_model)

    @property
    def is_main_process(self) -> bool:
        """True on the one process that writes metrics, samples, checkpoints and logs (always on one process)."""
        return self.comm.is_main_process

    @property
    def is_sharded(self) -> bool:
        """True when each process holds only a shard of the weights (FSDP, ZeRO-3)."""
        return self.comm.num_processes > 1 and self.cfg.distributed_strategy in ("fsdp", "zero3")

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
            **self.prompts.state_dict(),  # order, cursor, epoch
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
        self.prompts.load_state_dict(state)
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])

    def save_checkpoint(self, root: Any) -> Any:
        """Save weights (or the LoRA adapter) and trainer state under root/checkpoint-<step>; return the folder.

        Every process calls it (sharded weights are gathered collectively); only the main process
        writes, and the others get None. Sharded runs save no optimizer state: each process holds
        only its shard of it, so a resumed run starts AdamW afresh (and says so).
        """
        model = self.policy
        if self.is_sharded:  # the full weights, gathered onto the main process
            model = _WithStateDict(self.policy, self.comm.get_state_dict(self.train_model))
        if not self.is_main_process:
            return None
        state = self.state_dict()
        if self.is_sharded:
            state["optimizer"] = None
        folder = make_checkpoint_dir(root, self.step_count)
        return save_checkpoint(folder, model, self.tokenizer, state, self.cfg.to_yaml())

    # ------------------------------------------------------------------ 1.-2. sampling and scoring

    @torch.no_grad()
    def generate_rollout(self) -> Rollout:
        """Sample num_generations completions for each of the next prompts (this process's slice of them)."""
        cfg = self.cfg
        frame = self.prompt_frame.iloc[self.prompts.next_rows()]
        rows_here = distributed.get_sample_slice(cfg.batch_size, self.comm.num_processes, self.comm.process_index)
        prompt_ids, prompt_mask = encode_prompts(cfg, self.tokenizer, list(frame["prompt"]), rows_here, self.device,
                                                 self.loaded.context_length)  # (b, P) each
        start = time.perf_counter()
        self.policy.eval()
        # The fast loop casts the weights itself, once per rollout; plain generate runs under autocast on CUDA
        # only (on a CPU autocast re-casts every weight at every decode step: slower than float32 there).
        fast = self.uses_fast_sampling
        autocast = self.updater.autocast() if self.device.type == "cuda" and not fast else contextlib.nullcontext()
        try:
            with torch.inference_mode(), autocast:
                completion_ids = self.sample_completions(prompt_ids, prompt_mask, rows_here.start)  # (b, T)
        except RuntimeError as err:
            if "inf" in str(err) or "nan" in str(err):  # sampling from NaN probabilities: the weights blew up
                self.updater.check_finite(torch.tensor(float("nan")), "sampling distribution", self.step_count + 1)
            raise
        seconds = time.perf_counter() - start
        return make_rollout(cfg, self.tokenizer, frame, rows_here, prompt_ids, prompt_mask,
                            completion_ids.clone(), self.eos_ids, seconds)  # clone leaves inference mode

    def sample_completions(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, first_index: int) -> torch.Tensor:
        """Completion token ids (b, T) for left-padded prompts (b, P): the fast loop, or `model.generate`.

        `first_index` is the global index of the first row in the step's batch (0 on one process);
        generation does not use it, but a test can override this method to give every sample fixed
        tokens by its global index, the same on one process and on several.
        """
        if self.uses_fast_sampling:
            dtype = self.precision.dtype if self.precision.use_autocast else None
            return sample_with_fast_loop(self.policy, self.cfg, self.tokenizer, self.eos_ids, prompt_ids, prompt_mask, dtype)
        return sample_with_generate(self.policy, self.cfg, self.tokenizer, self.eos_ids, prompt_ids, prompt_mask,
                                    synced_gpus=self.is_sharded)

    @property
    def uses_fast_sampling(self) -> bool:
        """The lean sampling loop, unless the config asks for generate or the weights are sharded (gathered in lockstep)."""
        return self.cfg.generation_backend == "fast" and not self.is_sharded

    # ------------------------------------------------------------------ 3.-4. advantages and update

    def update_policy(self, ro: Rollout, rewards: torch.Tensor) -> tuple[dict[str, float], TokenStats]:
        """Advantages and num_epochs optimizer steps on one scored rollout: the update's metrics and per-token results."""
        stats, token, _ = self.updater.update(ro, rewards, self.step_count + 1)
        return stats, token

    # ------------------------------------------------------------------ one step

    def train_step(self) -> StepResult:
        """Sample, score, update once; return the step's metrics (TRL names) and samples."""
        cfg = self.cfg
        start = time.perf_counter()
        ro = self._run_phase("generation", self.generate_rollout)
        scores, rewards, scoring_seconds = score_rollout(self.reward_set, ro, self.device, self.log)
        stats, token, timings = self._run_phase("the update", self.updater.update, ro, rewards, self.step_count + 1)
        self.step_count += 1
        # metrics and samples over the whole batch, as one process would report them (the identity on one)
        ro, scores, rewards = gather_rollout(self.comm, ro, scores, rewards, self.tokenizer.pad_token_id or 0, self.device)
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
            "num_tokens": float(self.num_tokens), "time/generation": ro.seconds, "time/scoring": scoring_seconds,
            **timings,
        })
        samples = make_samples(self.tokenizer, ro, scores.per_reward, total, token, cfg.samples_per_step,
                               cfg.num_generations, kl_scale=cfg.beta or 1.0)
        return StepResult(self.step_count, metrics, samples)

    def _run_phase(self, phase: str, fn: Callable, *args: Any) -> Any:
        """fn(*args), with an out-of-memory turned into advice naming the batch settings of `phase`."""
        oom = False  # the error is raised after the except block, once its frames (and tensors) are freed
        try:
            return fn(*args)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            oom = True
        if oom:
            self.optimizer.zero_grad(set_to_none=True)
            raise make_out_of_memory_error(self.cfg, self.device, phase, self.step_count + 1)


class _WithStateDict:
    """A model whose save_pretrained writes a given (gathered) state dict: sharded runs' checkpoints."""

    def __init__(self, model: Any, state_dict: dict) -> None:
        self.model, self.state = model, state_dict

    def save_pretrained(self, path: Any, **kwargs: Any) -> None:
        self.model.save_pretrained(path, state_dict=self.state, **kwargs)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
