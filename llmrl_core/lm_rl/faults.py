"""What ends an RL run with advice instead of a traceback: a diverged loss, and an out-of-memory.

Each error's message names the setting to change. Out of memory names the batch settings to
lower for the phase it struck (sampling holds the whole batch; the update one micro-batch);
every step recorded before stays, and so do earlier checkpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from llmrl_core.core.errors import WorkbenchError

if TYPE_CHECKING:
    from llmrl_core.lm_rl.config import RLConfig


class TrainingDivergedError(WorkbenchError):
    """The loss or the gradient stopped being a finite number."""


class OutOfMemoryTrainingError(WorkbenchError):
    """The accelerator ran out of memory while sampling or updating."""


# torch.OutOfMemoryError (torch >= 2.5) is what torch.cuda.OutOfMemoryError names today.
_OOM_ERRORS = tuple({torch.cuda.OutOfMemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)})


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError MPS raises for the same thing."""
    return isinstance(err, _OOM_ERRORS) or (isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def check_finite(value: torch.Tensor, what: str, step: int, lr: float, mixed_precision: bool) -> None:
    """Raise TrainingDivergedError, with advice, when `value` (the loss, the gradient norm) is NaN or infinite."""
    if torch.isfinite(value).all():
        return
    raise TrainingDivergedError(
        f"The {what} became {float(value)} at step {step}: training diverged. "
        f"Lower learning_rate (now {lr:g}; try {lr / 10:g}), keep max_grad_norm at 1.0 or below"
        + (", or set mixed_precision to 'no'." if mixed_precision else ".")
    )


def make_out_of_memory_error(cfg: "RLConfig", device: torch.device, phase: str, step: int) -> OutOfMemoryTrainingError:
    """The error to raise for an out-of-memory in `phase` ('generation' or 'the update') of step `step`."""
    if device.type == "cuda":
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
        f"Out of memory ({device}) during {phase} at step {step} "
        f"({cfg.batch_size} completions of up to {cfg.max_new_tokens} tokens). {advice} "
        "Steps and checkpoints saved so far are kept; resume from the last checkpoint with the smaller settings."
    )
