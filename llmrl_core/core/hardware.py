"""What this machine is: the training device, its free memory, and whether its CPU computes bfloat16 natively.

Cheap probes (/proc/cpuinfo, /proc/meminfo, torch.cuda.mem_get_info), shared by the precision
resolver (lm/precision.py: 'auto' picks bf16 only where it is native) and LM RL's preflight checks
(lm_rl/preflight.py: bf16 on a CPU that emulates it is a 12x trap), so both read the same probe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

BF16_CPU_CAPABILITIES = ("AVX512_BF16", "AMX")  # torch.backends.cpu.get_cpu_capability() values with native bf16
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags with native bf16


@dataclass(frozen=True)
class DeviceInfo:
    """The facts about the training device that preflight needs."""

    kind: str  # "cpu", "cuda" or "mps"
    name: str  # e.g. "AMD EPYC 9R14" or "NVIDIA H200"
    free_bytes: int | None  # MemAvailable (CPU) or free GPU memory; None when unknown
    total_bytes: int | None
    cpu_capability: str = ""  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "AVX512_BF16", "AMX", ...
    cpu_flags: frozenset[str] = field(default_factory=frozenset)  # /proc/cpuinfo flags (empty elsewhere)

    @property
    def bf16_native(self) -> bool:
        """True when the CPU computes bfloat16 in hardware (AVX512_BF16 or AMX)."""
        return has_native_bf16(self.cpu_capability, self.cpu_flags)

    def describe(self) -> str:
        """One line: the device, its ISA and free memory."""
        free = f", {self.free_bytes / 2**30:.1f} GiB free" if self.free_bytes is not None else ""
        isa = f" ({self.cpu_capability}, bf16 {'native' if self.bf16_native else 'emulated'})" if self.kind == "cpu" else ""
        return f"{self.kind}: {self.name}{isa}{free}"


def read_meminfo_available(path: str = "/proc/meminfo") -> int | None:
    """MemAvailable in bytes (Linux), or None where there is no /proc/meminfo."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def has_native_bf16(cpu_capability: str, cpu_flags: frozenset[str] | set[str]) -> bool:
    """True when torch's CPU capability or the /proc/cpuinfo flags show native bfloat16 (AVX512_BF16 or AMX)."""
    return cpu_capability.upper() in BF16_CPU_CAPABILITIES or any(f in cpu_flags for f in BF16_CPU_FLAGS)


def read_cpu_flags(path: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo; ('', empty) elsewhere."""
    name, flags = "", frozenset()
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def read_device_info(device: str = "auto") -> DeviceInfo:
    """Measure the device a run with `device` ('auto', 'cpu', 'cuda', 'mps') would train on."""
    import torch

    kind = device
    if device == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if kind == "cuda" and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return DeviceInfo("cuda", torch.cuda.get_device_name(), int(free), int(total))
    if kind == "mps":
        return DeviceInfo("mps", "Apple MPS", None, None)
    name, flags = read_cpu_flags()
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return DeviceInfo("cpu", name or "CPU", read_meminfo_available(), total,
                      cpu_capability=str(torch.backends.cpu.get_cpu_capability()), cpu_flags=flags)
