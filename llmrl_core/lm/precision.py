"""Which floating-point precision to train and sample in, on the device at hand, and why.

`resolve_precision(requested, device)` turns the config's `mixed_precision` ('auto', 'no'/'fp32',
'bf16', 'fp16') into a `PrecisionChoice`: the dtype, whether to autocast, whether a gradient
scaler is needed, and one sentence that says why (the CLI and the RL page show it).

'auto' picks bf16 only where the hardware computes it natively, because emulated bf16 is a trap:
  * CUDA with bf16 support (Ampere and later): bf16 autocast;
  * older CUDA: fp16 autocast with a gradient scaler (fp16's narrow range underflows gradients);
  * a CPU whose torch capability or /proc/cpuinfo shows AVX512_BF16 or AMX: bf16 autocast
    (bench/bench_rl_step.py: 6.80 s against 8.78 s per GRPO step in fp32 on such a CPU);
  * any other CPU: fp32 (on an AMD Zen 2 one GRPO update took 130 s in bf16 against 5 s in fp32);
  * Apple MPS: fp32, since autocast there is not exercised by this project's tests.
An explicit choice always wins; bf16 on a CPU without native support says in its reason that it
is emulated (lm_rl/preflight.py warns about it before a run starts, with the same probe: core/hardware.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from llmrl_core.core.errors import InputError
from llmrl_core.core.hardware import has_native_bf16, read_cpu_flags

PRECISIONS = ("auto", "no", "fp32", "bf16", "fp16")  # 'no' is the config's old spelling of fp32


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses: its name, compute dtype, and how the trainer applies it."""

    name: str  # 'fp32', 'bf16' or 'fp16'
    dtype: torch.dtype  # the compute dtype under autocast (float32 when there is none)
    use_autocast: bool  # wrap forward passes in torch.autocast(device.type, dtype)
    use_grad_scaler: bool  # fp16 only: scale the loss so small gradients do not underflow
    reason: str  # one short sentence: why this precision, e.g. "this CPU runs bf16 natively (AMX)"

    def describe(self, requested: str = "auto") -> str:
        """One line for the CLI and the page, e.g. 'bf16 (auto: this CPU runs bf16 natively (AMX))'."""
        how = "auto" if requested == "auto" else "chosen"
        return f"{self.name} ({how}: {self.reason})"


@dataclass(frozen=True)
class HardwareProbes:
    """How to ask the hardware about bf16; tests swap these for fakes."""

    cuda_bf16_supported: Callable[[], bool] = lambda: bool(torch.cuda.is_bf16_supported())
    cpu_capability: Callable[[], str] = lambda: str(torch.backends.cpu.get_cpu_capability())
    cpu_flags: Callable[[], frozenset] = lambda: read_cpu_flags()[1]


def describe_cpu_bf16(capability: str, flags: frozenset) -> str:
    """Why a CPU does or does not run bf16 natively, e.g. 'AMX' or 'AVX2, no avx512_bf16 or amx_bf16'."""
    if not has_native_bf16(capability, flags):
        return f"{capability or 'unknown ISA'}, no avx512_bf16 or amx_bf16"
    if capability.upper() in ("AMX", "AVX512_BF16"):
        return capability.upper()
    return "AMX" if "amx_bf16" in flags else "avx512_bf16"


def _fp32(reason: str) -> PrecisionChoice:
    return PrecisionChoice("fp32", torch.float32, use_autocast=False, use_grad_scaler=False, reason=reason)


def _bf16(reason: str) -> PrecisionChoice:
    return PrecisionChoice("bf16", torch.bfloat16, use_autocast=True, use_grad_scaler=False, reason=reason)


def _fp16(reason: str) -> PrecisionChoice:
    return PrecisionChoice("fp16", torch.float16, use_autocast=True, use_grad_scaler=True, reason=reason)


def resolve_precision(requested: str, device: torch.device | str, probes: HardwareProbes | None = None) -> PrecisionChoice:
    """The precision for `requested` ('auto', 'no'/'fp32', 'bf16', 'fp16') on `device`; see the module docstring."""
    probes = probes or HardwareProbes()
    kind = torch.device(device).type
    req = (requested or "auto").lower()
    if req not in PRECISIONS:
        raise InputError(f"mixed_precision must be one of {', '.join(PRECISIONS)} (got {requested!r}).")
    if req in ("no", "fp32"):
        return _fp32("asked for")
    if kind == "cuda":
        bf16_ok = probes.cuda_bf16_supported()
        if req == "bf16":
            return _bf16("asked for" if bf16_ok else "asked for, but this GPU emulates bf16; expect it slow")
        if req == "fp16":
            return _fp16("asked for; a gradient scaler keeps small gradients from underflowing")
        if bf16_ok:
            return _bf16("this GPU runs bf16 natively")
        return _fp16("this GPU has no bf16, so fp16 with a gradient scaler")
    if req == "fp16":
        raise InputError(f"mixed_precision 'fp16' needs a CUDA GPU (this run is on {kind}); use 'auto', 'bf16' or 'no'.")
    if kind == "mps":
        if req == "bf16":
            return _bf16("asked for")
        return _fp32("autocast on Apple MPS is not tested here; set mixed_precision to 'bf16' to try it")
    capability, flags = probes.cpu_capability(), frozenset(probes.cpu_flags())
    native = has_native_bf16(capability, flags)
    cpu = describe_cpu_bf16(capability, flags)
    if req == "bf16":
        if native:
            return _bf16(f"asked for; this CPU runs it natively ({cpu})")
        return _bf16(f"asked for, but this CPU ({cpu}) emulates it in software: expect it many times slower than fp32")
    if native:
        return _bf16(f"this CPU runs bf16 natively ({cpu})")
    return _fp32(f"this CPU ({cpu}) would emulate bf16 in software, many times slower")


def describe_config_precision(requested: str, device: str = "auto") -> str:
    """'precision: bf16 (auto: this CPU runs bf16 natively (AMX))' for a config's mixed_precision and device.

    Cheap (no weights loaded), for the CLI's `train` and the RL page next to Start.
    """
    from llmrl_core.lm.models import pick_device

    choice = resolve_precision(requested, pick_device(device))
    return f"precision: {choice.describe(requested)}"
