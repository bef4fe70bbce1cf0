"""LM RL on several processes: how a step's batch is split, gathered back and kept in step.

The run is the ordinary trainer started by ``accelerate launch`` (llmrl_core/runs/launch.py) on
N processes. The batch is split as TRL splits it: a step's prompts x num_generations samples are
ordered prompt-major and process i takes the contiguous slice [i * B/N, (i + 1) * B/N) of them, so
one prompt's samples may sit on two processes. Each process generates and scores its slice; the
advantage inputs (rewards, masks, old and reference log-probs, values) are gathered so advantages
and loss weights are computed over the whole batch exactly as one process would, and each process
keeps its rows. Its loss is then its share of the global loss; DDP averages gradients over N, so
`AcceleratorCollective.backward` multiplies the loss by N and the update equals one process's update on the whole batch
(up to the order of floating-point sums).

`Collective` is the handful of collective operations the trainer's maths needs. Two classes do
them, with one interface, so the trainer never asks whether it runs alone:
`AcceleratorCollective` with an Accelerator (gloo on CPUs, NCCL on GPUs), and `LocalCollective`,
the single process, where every gather and all-reduce is the identity and backward is plain
`loss.backward()`. `make_collective(device)` picks one. Tests pass a fake to check the maths on one process.

Joining the process group itself is the launch's business (llmrl_core.runs.launch).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from llmrl_core.lm_rl.algorithms import AdvantageInputs
from llmrl_core.runs.launch import is_distributed_launch, make_accelerator, uses_cpu


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


class LocalCollective:
    """One process: gathers and broadcasts are the identity, and the training hooks are the plain calls."""

    num_processes = 1
    process_index = 0
    is_main_process = True
    description = "1 process"

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def gather_objects(self, items: list) -> list:
        return list(items)

    def broadcast_flag(self, flag: bool) -> bool:
        return flag

    def prepare(self, model: Any, optimizer: Any, per_process_batch: int) -> tuple[Any, Any]:
        """The model and optimizer as they are (no wrapper)."""
        return model, optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def no_sync(self, model: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def clip_grad_norm(self, params: list[torch.Tensor], max_norm: float) -> torch.Tensor | None:
        """torch's clip_grad_norm_: the total norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def get_state_dict(self, model: Any) -> dict:
        return model.state_dict()

    def wait_for_everyone(self) -> None:
        pass

    def end_training(self) -> None:
        pass


@dataclass
class AcceleratorCollective:
    """`Collective` on an Accelerator's process group, with the training hooks DDP, FSDP and ZeRO need."""

    accelerator: Any

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.process_index == 0

    @property
    def description(self) -> str:
        return f"{self.num_processes} processes ({self.accelerator.distributed_type}, {self.accelerator.device.type})"

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.gather(tensor.to(self.accelerator.device).contiguous())

    def gather_objects(self, items: list) -> list:
        from accelerate.utils import gather_object

        return gather_object(list(items))

    def broadcast_flag(self, flag: bool) -> bool:
        value = torch.tensor([1 if flag else 0], device=self.accelerator.device)  # (1,)
        torch.distributed.broadcast(value, src=0)
        return bool(value.item())

    def prepare(self, model: Any, optimizer: Any, per_process_batch: int) -> tuple[Any, Any]:
        """The DDP/FSDP/ZeRO-wrapped model and optimizer; DDP copies rank 0's weights (e.g. a random LoRA
        init) to every process."""
        deepspeed = self.accelerator.state.deepspeed_plugin
        if deepspeed is not None:  # no dataloader is prepared, so DeepSpeed is told the per-process batch (as TRL does)
            deepspeed.deepspeed_config["train_micro_batch_size_per_gpu"] = per_process_batch
        return self.accelerator.prepare(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of this process's share of the batch loss, times N: DDP averages gradients over the N
        processes, so the average becomes the sum, the gradient of the whole batch's loss."""
        self.accelerator.backward(loss * self.num_processes)

    def no_sync(self, model: Any) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce (every micro-batch but the last)."""
        return self.accelerator.no_sync(model)

    def clip_grad_norm(self, params: list[torch.Tensor], max_norm: float) -> torch.Tensor | None:
        """The total norm before clipping; None under DeepSpeed, which clips by its own config."""
        return self.accelerator.clip_grad_norm_(params, max_norm)

    def get_state_dict(self, model: Any) -> dict:
        """The full weights, gathered onto the main process (sharded runs)."""
        return self.accelerator.get_state_dict(model)

    def wait_for_everyone(self) -> None:
        self.accelerator.wait_for_everyone()

    def end_training(self) -> None:
        """Destroy the process group (a gloo process that skips it can abort at exit; runs/launch.py)."""
        self.accelerator.end_training()


def make_collective(device: str = "auto") -> LocalCollective | AcceleratorCollective:
    """The collective of this process: an Accelerator's under ``accelerate launch``, else the local one."""
    if not is_distributed_launch():
        return LocalCollective()
    return AcceleratorCollective(make_accelerator(cpu=uses_cpu(device)))


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


def sync_stop(comm: Collective, stop: bool) -> bool:
    """Every process stops at the same step boundary: the main process's answer, sent to all."""
    return comm.broadcast_flag(stop)


def average_gradients(comm: Collective, params: list[torch.Tensor]) -> None:
    """Average the gradients of parameters DDP does not reduce (the value head), over the processes."""
    if comm.num_processes == 1:
        return
    for param in params:
        if param.grad is not None:
            param.grad.copy_(comm.gather(param.grad.unsqueeze(0)).mean(dim=0).to(param.grad.device))


def sum_over_processes(comm: Collective, value: float) -> float:
    """The sum of a float over the processes."""
    return float(comm.gather(torch.tensor([float(value)], dtype=torch.float64)).sum())
