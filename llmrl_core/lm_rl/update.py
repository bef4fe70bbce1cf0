"""Steps 3 and 4 of an RL step: the algorithm's advantages, then num_epochs AdamW updates of the policy.

`PolicyUpdater(cfg, models, comm, use_bf16).update(ro, rewards, step)` takes a scored Rollout and
returns the update's metrics (TRL's names), its per-token results for the stored samples, and its
timings. The maths per algorithm lives in llmrl_core/lm_rl/algorithms/ (`get_algorithm(cfg.algorithm)`):
this module does the model calls and hands the algorithm plain tensors.

  1. log-probs before the update, without gradient, only where they are needed:
     the reference's when beta > 0 (the frozen copy, or with LoRA the same model with its adapters
     switched off); the policy's own ("old") and its values only with several epochs or a value head.
     With one epoch the old log-probs are the training forward's own, detached (as TRL does): the
     ratio is exactly 1 and no separate forward runs. A value head needs its old values before the
     advantages, so with one epoch and one micro-batch the training forward runs first and its
     detached log-probs and values serve as the old ones (with several micro-batches that would keep
     every micro-batch's graph alive at once, so a separate forward without gradient runs instead);
  2. advantages and loss weights over the whole batch (gathered from every process);
  3. per epoch: forward and backward each of grad_accum_steps micro-batches, clip, AdamW step.

Precision (llmrl_core.lm.precision): the forwards run under autocast in the chosen dtype when
there is one (weights and optimizer stay float32); fp16 adds a gradient scaler, whose overflowing
steps are skipped (and the scale lowered) rather than reported as a divergence.

Logits are kept only for completion tokens (`logits_to_keep`), never for the prompt (vocab ~49k).
Everything recorded for metrics and samples is detached, so it stays out of the backward graph.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from llmrl_core.lm_rl import distributed
from llmrl_core.lm_rl.algorithms import (
    AdvantageInputs,
    Advantages,
    LossInputs,
    compute_clip_stats,
    compute_entropy,
    compute_kl,
    compute_kl_push,
    compute_token_logprobs,
    compute_token_weights,
    get_algorithm,
    masked_mean,
)
from llmrl_core.lm_rl.faults import check_finite
from llmrl_core.lm_rl.rollout import Rollout
from llmrl_core.lm_rl.samples import TokenStats

if TYPE_CHECKING:
    from llmrl_core.lm.precision import PrecisionChoice
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.lm_rl.policy import Policy


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


@dataclass
class UpdateBatch:
    """One scored rollout made ready for the update: this process's b rows, and the whole batch's B rows."""

    ro: Rollout
    chunks: list[torch.Tensor]  # row indices of each micro-batch
    mask: torch.Tensor  # (b, T) completion mask
    advantages: torch.Tensor  # (b,) per completion or (b, T) per token
    weights: torch.Tensor  # (b, T) each token's share of the batch's policy loss
    value_weights: torch.Tensor  # (b, T) each token's share of the value loss (a token mean)
    old_logp: torch.Tensor | None = None  # (b, T) before the update; None: each forward's own, detached
    ref_logp: torch.Tensor | None = None  # (b, T) the reference's, only when beta > 0
    old_values: torch.Tensor | None = None  # (b, T) the value head before the update, only with one
    returns: torch.Tensor | None = None  # (b, T) value targets, only with a value head
    whole: AdvantageInputs | None = None  # (B, ...) every process's inputs, for the metrics
    whole_weights: torch.Tensor | None = None  # (B, T) every process's token weights, for the samples
    adv: Advantages | None = None  # the algorithm's output over the whole batch, for the metrics


@dataclass
class EpochTotals:
    """What one epoch's micro-batches add up: loss sums and, on the last epoch, per-token results (detached)."""

    policy_loss: float = 0.0
    value_loss: float = 0.0
    value_clipfrac: float = 0.0
    logps: list[torch.Tensor] = field(default_factory=list)  # (b_i, T) per micro-batch
    ratios: list[torch.Tensor] = field(default_factory=list)  # (b_i, T)
    entropies: list[torch.Tensor] = field(default_factory=list)  # (b_i, T)
    kls: list[torch.Tensor] = field(default_factory=list)  # (b_i, T), only when beta > 0
    pushes: list[torch.Tensor] = field(default_factory=list)  # (b_i, T) -dL/d(log pi_t) of the policy term
    kl_pushes: list[torch.Tensor] = field(default_factory=list)  # (b_i, T) the KL term's, only when it is in the loss
    clipped: list[torch.Tensor] = field(default_factory=list)  # (b_i, T) 1.0 where the ratio was clipped


class PolicyUpdater:
    """Owns what the update changes: the optimizer, its schedule and the algorithm's state (e.g. REINFORCE's baseline)."""

    def __init__(self, cfg: "RLConfig", models: "Policy", comm: Any, precision: "PrecisionChoice") -> None:
        self.cfg, self.comm, self.precision = cfg, comm, precision
        self.algorithm = get_algorithm(cfg.algorithm)
        self.algorithm_state = self.algorithm.init_state()  # kept in checkpoints
        self.policy, self.ref_model, self.value_head = models.model, models.ref_model, models.value_head
        self.device = models.loaded.device
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        if self.value_head is not None:
            self.params += list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: compute_lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.lr_scheduler)
        )
        # what the training forward runs: the DDP/FSDP/ZeRO wrapper on several processes, the policy on one
        self.train_model, self.optimizer = comm.prepare(self.policy, self.optimizer, cfg.batch_size // comm.num_processes)
        # fp16 only: scales the loss so small gradients do not underflow (not kept in checkpoints: a resumed
        # run starts from the default scale, which settles within a few steps)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision.use_grad_scaler else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast in the chosen precision's dtype (bf16, fp16), or nothing in fp32."""
        if not self.precision.use_autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.precision.dtype)

    def check_finite(self, value: torch.Tensor, what: str, step: int) -> None:
        """Stop the run with advice when the loss or gradient norm of step `step` is NaN or infinite."""
        check_finite(value, what, step, self.optimizer.param_groups[0]["lr"], self.precision.use_autocast)

    # ------------------------------------------------------------------ forward passes

    def compute_logprobs(self, model: Any, ro: Rollout, idx: torch.Tensor, want_values: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-probs (b, T), completion logits (b, T, V) and optionally values (b, T) for rows `idx`."""
        n_pos = ro.completion_ids.shape[1]
        with self.autocast():
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
    def compute_reference_logprobs(self, ro: Rollout, chunks: list[torch.Tensor]) -> torch.Tensor:
        """Reference log-probs (b, T): the base model with adapters off (LoRA) or the frozen copy."""
        parts = []
        for idx in chunks:
            if self.ref_model is not None:
                parts.append(self.compute_logprobs(self.ref_model, ro, idx)[0])
            else:
                with self.policy.disable_adapter():
                    parts.append(self.compute_logprobs(self.policy, ro, idx)[0])
        return torch.cat(parts)

    @torch.no_grad()
    def compute_old_logprobs_and_values(self, ro: Rollout, chunks: list[torch.Tensor]
                                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs (b, T) and values (b, T) before any update (needed for several epochs, and by PPO)."""
        want_values = self.value_head is not None
        logps, values = [], []
        for idx in chunks:
            logp, _, value = self.compute_logprobs(self.policy, ro, idx, want_values)
            logps.append(logp)
            values.append(value)
        return torch.cat(logps), (torch.cat(values) if want_values else None)

    # ------------------------------------------------------------------ the update

    def prepare_batch(self, ro: Rollout, rewards: torch.Tensor, chunks: list[torch.Tensor],
                      first_forward: tuple | None = None) -> UpdateBatch:
        """The log-probs before the update (only those needed), then advantages and loss weights over the whole batch.

        `first_forward`: the training forward of the only micro-batch, already run (one epoch with a value
        head); its detached log-probs and values are the old ones.
        """
        cfg, comm = self.cfg, self.comm
        mask = ro.completion_mask  # (b, T)
        ref_logp = self.compute_reference_logprobs(ro, chunks) if cfg.needs_reference else None  # (b, T)
        old_logp = old_values = None
        if first_forward is not None:
            old_logp, old_values = first_forward[0].detach(), first_forward[2].detach()  # (b, T) each
        elif cfg.num_epochs > 1 or self.value_head is not None:  # a fixed pi_old for several epochs; old values
            old_logp, old_values = self.compute_old_logprobs_and_values(ro, chunks)  # (b, T) each
        # advantages and loss weights over the whole batch (B rows of every process; the identity on one)
        whole, width = distributed.gather_advantage_inputs(comm, AdvantageInputs(rewards, mask, old_logp, ref_logp, old_values))
        adv = self.algorithm.compute_advantages(cfg, whole, self.algorithm_state)
        whole_weights = compute_token_weights(whole.mask, cfg.loss_type, cfg.max_new_tokens)  # (B, T)
        value_weights = whole.mask / whole.mask.sum().clamp(min=1.0)  # (B, T) token mean for the value loss
        # this process's rows: its loss is its share of the whole batch's loss
        advantages, weights, value_weights, returns = (distributed.take_local(comm, t, mask.shape[1])
                                                       for t in (adv.advantages, whole_weights, value_weights, adv.returns))
        return UpdateBatch(ro=ro, chunks=chunks, mask=mask, advantages=advantages, weights=weights,
                           value_weights=value_weights, old_logp=old_logp, ref_logp=ref_logp, old_values=old_values,
                           returns=returns, whole=whole, adv=adv, whole_weights=whole_weights)

    def update(self, ro: Rollout, rewards: torch.Tensor, step: int) -> tuple[dict[str, float], TokenStats, dict[str, float]]:
        """Advantages, then num_epochs optimizer steps on one scored rollout (step `step`, 1-based, for messages).

        Returns the update's metrics, its per-token results (for the stored samples) and its timings:
        time/old_logprobs (the forwards without gradient before the update, and the advantages) and
        time/update (the training forwards, backwards and optimizer steps).
        """
        cfg = self.cfg
        self.policy.train()
        start = time.perf_counter()
        chunks = list(torch.arange(ro.completion_mask.shape[0], device=self.device).chunk(cfg.grad_accum_steps))
        first_forward = None  # (logp, logits, values) of the only micro-batch, when the old values can come from it
        if self.value_head is not None and cfg.num_epochs == 1 and len(chunks) == 1:
            first_forward = self.compute_logprobs(self.train_model, ro, chunks[0], want_values=True)
        prepare_start = time.perf_counter()
        batch = self.prepare_batch(ro, rewards, chunks, first_forward)
        epochs_start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        for epoch in range(cfg.num_epochs):
            totals = EpochTotals()
            for i, idx in enumerate(batch.chunks):
                # several processes: gradients are all-reduced on the last micro-batch only
                sync = self.comm.no_sync(self.train_model) if i < len(batch.chunks) - 1 else contextlib.nullcontext()
                with sync:
                    self.accumulate_micro_batch(batch, idx, totals, step, record=epoch == cfg.num_epochs - 1,
                                                forward=first_forward if epoch == 0 else None)
            if self.value_head is not None:  # the value head is outside DDP's wrapper
                distributed.average_gradients(self.comm, list(self.value_head.parameters()))
            grad_norm = self.clip_gradients(step)
            if self.scaler is None:
                self.optimizer.step()
            else:  # skips the step when the scaled gradients overflowed, and lowers the scale
                self.scaler.step(self.optimizer)
                self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.policy.eval()
        timings = {"time/old_logprobs": epochs_start - prepare_start,
                   "time/update": (prepare_start - start) + (time.perf_counter() - epochs_start)}
        stats, token = self.summarize(batch, totals, grad_norm, lr)
        return stats, token, timings

    def accumulate_micro_batch(self, batch: UpdateBatch, idx: torch.Tensor, totals: EpochTotals, step: int,
                               record: bool, forward: tuple | None = None) -> None:
        """Forward (unless `forward` is its result already) and backward the micro-batch of rows `idx`; add its
        losses (and, if `record`, its per-token results) to `totals`."""
        cfg = self.cfg
        if forward is None:
            forward = self.compute_logprobs(self.train_model, batch.ro, idx, want_values=self.value_head is not None)
        logp, logits, values = forward  # (b, T), (b, T, V), (b, T) or None
        old = batch.old_logp[idx] if batch.old_logp is not None else logp.detach()  # ratio 1 on a single epoch
        kl = compute_kl(logp, batch.ref_logp[idx], cfg.kl_estimator) if batch.ref_logp is not None else None  # (b, T)
        mb = LossInputs(
            logp=logp, old_logp=old, advantages=batch.advantages[idx], weights=batch.weights[idx], kl=kl,
            mask=batch.mask[idx], values=values, old_values=_rows(batch.old_values, idx),
            returns=_rows(batch.returns, idx), value_weights=batch.value_weights[idx],
        )
        part = self.algorithm.compute_loss(cfg, mb)
        self.check_finite(part.loss.detach(), "loss", step)
        self.comm.backward(part.loss if self.scaler is None else self.scaler.scale(part.loss))
        totals.policy_loss += float(part.policy_loss.detach())
        if part.value_loss is not None:
            totals.value_loss += float(part.value_loss.detach())
            totals.value_clipfrac += part.value_clipfrac * len(idx) / batch.mask.shape[0]
        if record:
            totals.logps.append(logp.detach())
            totals.ratios.append(part.ratio)
            totals.entropies.append(compute_entropy(logits.detach()))
            if kl is not None:
                totals.kls.append(kl.detach())
            self.record_push(mb, part.ratio, batch.ref_logp, idx, totals)

    @torch.no_grad()
    def record_push(self, mb: LossInputs, ratio: torch.Tensor, ref_logp: torch.Tensor | None, idx: torch.Tensor,
                    totals: EpochTotals) -> None:
        """Keep what this micro-batch's loss does to each token: -dL/d(log pi_t) of the policy term and of the KL
        term, and where the ratio was clipped (the algorithm's own formulas, from the tensors the loss just used)."""
        push, clipped = self.algorithm.compute_push(self.cfg, mb, ratio)  # (b, T) each
        totals.pushes.append(push.float())
        totals.clipped.append(clipped.float())
        if mb.kl is not None and self.algorithm.kl_in_loss:
            totals.kl_pushes.append(compute_kl_push(mb.logp.detach(), ref_logp[idx], self.cfg.kl_estimator,
                                                    self.cfg.beta, mb.weights).float())

    def clip_gradients(self, step: int) -> torch.Tensor:
        """Clip the gradients to max_grad_norm (0: no clipping) and return their norm before clipping (NaN
        under DeepSpeed, which clips by its own config and keeps the norm to itself)."""
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        grad_norm = self.comm.clip_grad_norm(self.params, max_norm)
        if grad_norm is None:
            return torch.tensor(float("nan"))
        if self.scaler is None:  # with a scaler an overflow skips the step instead (fp16)
            self.check_finite(grad_norm, "gradient norm", step)
        return grad_norm

    def summarize(self, batch: UpdateBatch, totals: EpochTotals, grad_norm: torch.Tensor,
                  lr: float) -> tuple[dict[str, float], TokenStats]:
        """The last epoch's metrics and per-token results over the whole batch (gathered from every process)."""
        cfg, comm, whole = self.cfg, self.comm, batch.whole
        width = whole.mask.shape[1]
        ratio, entropy, logp, token_kl, push, kl_push, clipped = (  # (B, T) each: every process's rows, padded
            distributed.gather_rows(comm, torch.cat(parts), width) if parts else None
            for parts in (totals.ratios, totals.entropies, totals.logps, totals.kls, totals.pushes, totals.kl_pushes,
                          totals.clipped))
        policy_loss = distributed.sum_over_processes(comm, totals.policy_loss)  # the shares add up to the loss
        mask, advantages = whole.mask, batch.adv.advantages  # (B, T), (B,) or (B, T)
        if advantages.dim() == 2:  # one per token: the spread over real tokens
            advantage_std = float(advantages[mask.bool()].std())
        else:
            advantage_std = float(advantages.std()) if mask.shape[0] > 1 else 0.0
        stats: dict[str, Any] = compute_clip_stats(ratio, advantages, mask, cfg.epsilon, cfg.clip_high)
        stats.update({
            "loss/policy": policy_loss, "grad_norm": float(grad_norm), "lr": lr,
            "entropy": float(masked_mean(entropy, mask)), "advantage/std": advantage_std,
        })
        if token_kl is not None:
            stats["kl"] = float(masked_mean(token_kl, mask))
        if self.value_head is not None:
            stats.update({"loss/value": distributed.sum_over_processes(comm, totals.value_loss),
                          "value/mean": float(masked_mean(whole.old_values, mask)),
                          "value/clipfrac": distributed.sum_over_processes(comm, totals.value_clipfrac) / comm.num_processes})
        stats.update(batch.adv.metrics)
        token = TokenStats(logp=logp, ratio=ratio, advantages=advantages, kl=token_kl, values=whole.old_values,
                           push=push, kl_push=kl_push, clipped=None if clipped is None else clipped.bool(),
                           weights=batch.whole_weights)
        return stats, token


def _rows(values: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    """values[idx], or None when there are no values."""
    return None if values is None else values[idx]
