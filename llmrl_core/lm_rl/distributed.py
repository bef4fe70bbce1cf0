"""LM RL on several processes: how a step's batch is split, gathered back and kept in step.

The run is the ordinary trainer started by ``accelerate launch`` (llmrl_core/runs/launch.py) on
N processes. The batch is split as TRL splits it: a step's prompts x num_generations samples are
ordered prompt-major and process i takes the contiguous slice [i * B/N, (i + 1) * B/N) of them, so
one prompt's samples may sit on two processes. Each process generates and scores its slice; the
advantage inputs (rewards, masks, old and reference log-probs, values) are gathered so advantages
and loss weights are computed over the whole batch exactly as one process would, and each process
keeps its rows. Its loss is then its share of the global loss; DDP averages gradients over N, so
the trainer multiplies the loss by N and the update equals one process's update on the whole batch
(up to the order of floating-point sums).

`Collective` is the handful of collective operations the trainer needs; `AcceleratorCollective`
does them with an Accelerator (gloo on CPUs, NCCL on GPUs). Tests pass a fake one to check the
math on one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from llmrl_core.lm_rl.algorithms import AdvantageInputs

# A collective waits at most this long for the other processes: it bounds how long other machines
# may take to join, and how long a multi-process run may stay paused (the other ranks wait in the
# stop broadcast while the main one is paused).
COLLECTIVE_TIMEOUT_S = 3 * 3600


def is_distributed_launch() -> bool:
    """True in a process started by ``accelerate launch`` / torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def is_main_rank() -> bool:
    """True on the global rank 0 (or outside a distributed launch): the one process that writes to the store."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def get_sample_slice(batch_size: int, num_processes: int, process_index: int) -> slice:
    """The contiguous rows of a prompt-major batch that process `process_index` generates and trains on."""
    if batch_size % num_processes:
        raise ValueError(f"batch of {batch_size} does not split over {num_processes} processes")
    share = batch_size // num_processes
    return slice(process_index * share, (process_index + 1) * share)


class Collective(Protocol):
    """The collective operations of a multi-process step (every process calls each one, in the same order)."""

    num_processes: int
    process_index: int

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate each process's tensor (same shape on all) along dim 0, in process order."""

    def gather_objects(self, items: list) -> list:
        """Concatenate each process's list of picklable objects, in process order."""

    def broadcast_flag(self, flag: bool) -> bool:
        """The main process's flag, on every process."""


@dataclass
class AcceleratorCollective:
    """`Collective` on an Accelerator's process group."""

    accelerator: Any

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.gather(tensor.to(self.accelerator.device).contiguous())

    def gather_objects(self, items: list) -> list:
        from accelerate.utils import gather_object

        return gather_object(list(items))

    def broadcast_flag(self, flag: bool) -> bool:
        value = torch.tensor([1 if flag else 0], device=self.accelerator.device)  # (1,)
        torch.distributed.broadcast(value, src=0)
        return bool(value.item())


def uses_cpu(device: str = "auto") -> bool:
    """True when the launched processes run on CPUs (gloo): asked for, set by the launch, or no CUDA here."""
    return (device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
            or not torch.cuda.is_available())


def init_process_group() -> Any:
    """Join the launch's process group (Accelerate's PartialState), waiting COLLECTIVE_TIMEOUT_S for the others."""
    from accelerate import PartialState

    return PartialState(cpu=uses_cpu(), timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))


def make_accelerator(cpu: bool) -> Any:
    """The Accelerator of a launched process; its process group waits COLLECTIVE_TIMEOUT_S for the others."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    return Accelerator(cpu=cpu, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))])


# ---------------------------------------------------------------------- gathering a batch


def gather_max_int(comm: Collective, value: int) -> int:
    """The largest `value` over the processes."""
    return int(comm.gather(torch.tensor([int(value)])).max().item())


def pad_width(tensor: torch.Tensor, width: int, value: float = 0.0) -> torch.Tensor:
    """Right-pad dim 1 of a (b, T) tensor to `width` columns with `value`."""
    return F.pad(tensor, (0, width - tensor.shape[1]), value=value)


def gather_rows(comm: Collective, tensor: torch.Tensor | None, width: int | None = None) -> torch.Tensor | None:
    """Gather each process's rows into the global batch; (b, T) tensors are right-padded to `width` first."""
    if tensor is None:
        return None
    if tensor.dim() == 2 and width is not None:
        tensor = pad_width(tensor, width)
    return comm.gather(tensor)


def take_local(comm: Collective, tensor: torch.Tensor | None, width: int | None = None) -> torch.Tensor | None:
    """This process's rows of a global (B, ...) tensor, and its first `width` columns of a (B, T) one."""
    if tensor is None:
        return None
    local = tensor[get_sample_slice(tensor.shape[0], comm.num_processes, comm.process_index)]
    return local[:, :width] if local.dim() == 2 and width is not None else local


def gather_advantage_inputs(comm: Collective, batch: AdvantageInputs) -> tuple[AdvantageInputs, int]:
    """The whole batch's advantage inputs (B rows, padded to the longest completion), and that width.

    Padding is where one process's completions end before another's; the mask is 0 there, as it is
    after a short completion in one process's batch, so the algorithms see the same batch one
    process would have sampled.
    """
    width = gather_max_int(comm, batch.mask.shape[1])
    return AdvantageInputs(
        rewards=gather_rows(comm, batch.rewards),
        mask=gather_rows(comm, batch.mask, width),
        old_logp=gather_rows(comm, batch.old_logp, width),
        ref_logp=gather_rows(comm, batch.ref_logp, width),
        old_values=gather_rows(comm, batch.old_values, width),
    ), width


def sync_stop(comm: Collective | None, stop: bool) -> bool:
    """Every process stops at the same step boundary: the main process's answer, sent to all."""
    return comm.broadcast_flag(stop) if comm is not None else stop


def average_gradients(comm: Collective, params: list[torch.Tensor]) -> None:
    """Average the gradients of parameters DDP does not reduce (the value head), over the processes."""
    for param in params:
        if param.grad is not None:
            param.grad.copy_(comm.gather(param.grad.unsqueeze(0)).mean(dim=0).to(param.grad.device))


def sum_over_processes(comm: Collective, value: float) -> float:
    """The sum of a float over the processes."""
    return float(comm.gather(torch.tensor([float(value)], dtype=torch.float64)).sum())
