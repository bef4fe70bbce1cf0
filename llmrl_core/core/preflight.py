"""Preflight: settings that are valid but ruinous on this machine, caught before a run starts.

`check_rl_config(cfg, device_info)` returns a list of `PreflightWarning`s (field, message, fix,
severity); the CLI prints them as `warning: ...` lines and the RL page shows them above Start.
It is cheap on purpose: it reads the model's config.json (never its weights), /proc/cpuinfo and
/proc/meminfo (or torch.cuda.mem_get_info), and does arithmetic.

What it catches:
  * bf16 autocast on a CPU without native bfloat16 (no AVX512_BF16 or AMX): torch emulates it,
    and on an AMD Zen 2 one GRPO update took 130 s in bf16 against 5 s in fp32;
  * a model whose weights, gradients and AdamW state alone exceed the free memory;
  * a batch whose activations push the estimate past the free memory.

The memory estimate (bytes) for RL fine-tuning as llmrl_core/lm_rl/trainer.py does it (weights in float32):
  weights     = P x 4                       (P: parameters, counted from config.json)
  reference   = P x 4 when beta > 0 and full fine-tuning (LoRA disables its adapters instead)
  gradients   = T x 4,  AdamW state = T x 8 (T: trainable parameters: P, or the LoRA matrices)
  activations = b x s x L x (34 h + 5 a s) x e / 2  +  2 x b x s x V x 4
where b is the micro-batch (prompts_per_step x num_generations / grad_accum_steps), s the sequence
(PROMPT_TOKENS_GUESS + max_new_tokens), L layers, h hidden size, a attention heads, V the vocabulary
and e the bytes of an activation (4 in fp32, 2 under bf16 autocast). The first term is Korthikanti
et al.'s activation memory per transformer layer (arXiv 2205.05198, eq. 1: s b h (34 + 5 a s / h)
bytes in 16-bit); the second the float32 logits and their log-softmax over the vocabulary.
It is a rough upper estimate: good to a factor of about 1.5, enough to tell "fits" from "will not".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROMPT_TOKENS_GUESS = 64  # prompt length assumed for the estimate (prompt sets here are short sentences)
ACTIVATION_FACTOR = 34  # bytes per hidden unit per token per layer at 16 bits (arXiv 2205.05198, eq. 1)
ATTENTION_FACTOR = 5  # bytes per attention score per head at 16 bits (same equation)
HEADROOM = 0.9  # warn when the estimate exceeds this share of the free memory (the OS and the app need some)
BF16_CPU_CAPABILITIES = ("AVX512_BF16", "AMX")  # torch.backends.cpu.get_cpu_capability() values with native bf16
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags with native bf16
LORA_TARGETS_ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class PreflightWarning:
    """One setting that will hurt on this machine: what, why, and what to change."""

    field: str  # the RLConfig field to change
    message: str  # what will happen, with the measured or estimated cost
    fix: str  # what to change
    severity: str = "warning"  # "warning": slow or risky; "error": will almost surely run out of memory

    def __str__(self) -> str:
        return f"{self.field}: {self.message} Fix: {self.fix}"


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


@dataclass(frozen=True)
class ModelShape:
    """A causal LM's size as its config.json states it (no weights read)."""

    n_params: int
    hidden: int
    layers: int
    heads: int
    kv_dim: int  # key/value width: kv_heads x head_dim
    intermediate: int
    vocab: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, by part (see the module docstring for the formulas)."""

    weights: int
    reference: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def static(self) -> int:
        """What the run holds whatever the batch: weights, reference, gradients, optimizer state."""
        return self.weights + self.reference + self.gradients + self.optimizer

    @property
    def total(self) -> int:
        return self.static + self.activations


# ----------------------------------------------------------------------------- measuring the machine


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


# ----------------------------------------------------------------------------- the model's size


def find_model_config(spec: str) -> dict | None:
    """The config.json of a model spec without loading it: a folder's, the converted bundled/GGUF folder's
    (None until converted once), a LoRA adapter's base, or a hub id's from the local HF cache."""
    from llmrl_core.core.errors import WorkbenchError
    from llmrl_core.lm.models import make_gguf_cache_key, resolve_spec
    from llmrl_core.core.paths import get_cache_dir

    try:
        resolved = resolve_spec(spec)
    except WorkbenchError:
        return None  # validation names a bad spec; preflight only measures good ones
    folder: Path | None = None
    if resolved.kind == "folder":
        folder = Path(resolved.location)
    elif resolved.kind in ("bundled", "gguf"):
        folder = get_cache_dir("models") / make_gguf_cache_key(Path(resolved.location))
    elif resolved.kind == "adapter":
        try:
            base = json.loads((Path(resolved.location) / "adapter_config.json").read_text(encoding="utf-8"))
            return find_model_config(str(base.get("base_model_name_or_path") or ""))
        except (OSError, ValueError, AttributeError):
            return None
    elif resolved.kind == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(resolved.location, "config.json")
            folder = Path(cached).parent if isinstance(cached, str) else None
        except Exception:  # no cache, odd id: nothing to measure
            return None
    if folder is None or not (folder / "config.json").is_file():
        return None
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def compute_model_shape(config: dict) -> ModelShape | None:
    """Parameters and sizes of a decoder-only transformer from its config.json (Llama, Mistral, Qwen2, GPT-2 keys).

    Llama layout per layer: q and o (h x h), k and v (h x kv), gate, up and down (h x I), two norms (h);
    plus the embedding (V x h), the final norm (h) and an untied LM head (V x h).
    """
    def get(*keys: str) -> Any:
        for key in keys:
            value = config.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    hidden, layers, vocab = get("hidden_size", "n_embd", "d_model"), get("num_hidden_layers", "n_layer"), get("vocab_size")
    heads = get("num_attention_heads", "n_head")
    if not (hidden and layers and vocab and heads):
        return None
    kv_heads = get("num_key_value_heads") or heads
    head_dim = get("head_dim") or hidden // heads
    kv = kv_heads * head_dim
    q = heads * head_dim
    if config.get("model_type") == "gpt2" or "n_embd" in config:  # GPT-2: fused qkv, 2-matrix MLP with biases
        inter = get("n_inner") or 4 * hidden
        per_layer = (hidden * 3 * hidden + 3 * hidden) + (hidden * hidden + hidden) + 2 * hidden * inter + inter + hidden + 4 * hidden
        positions = (get("n_positions") or 0) * hidden
        n = vocab * hidden + positions + layers * per_layer + 2 * hidden
        return ModelShape(n, hidden, layers, heads, kv, inter, vocab)
    inter = get("intermediate_size") or 4 * hidden
    attention = hidden * q + 2 * hidden * kv + q * hidden
    if config.get("attention_bias"):
        attention += q + 2 * kv + hidden
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    tied = config.get("tie_word_embeddings", True) is not False
    n = vocab * hidden + layers * per_layer + hidden + (0 if tied else vocab * hidden)
    return ModelShape(n, hidden, layers, heads, kv, inter, vocab)


def count_lora_parameters(shape: ModelShape, r: int, targets: list[str]) -> int:
    """LoRA's trainable parameters: r x (in + out) per adapted matrix per layer (attention and MLP names)."""
    q = shape.hidden  # query/output width (heads x head_dim; equal to hidden for these models)
    sizes = {
        "q_proj": (shape.hidden, q), "k_proj": (shape.hidden, shape.kv_dim), "v_proj": (shape.hidden, shape.kv_dim),
        "o_proj": (q, shape.hidden), "gate_proj": (shape.hidden, shape.intermediate),
        "up_proj": (shape.hidden, shape.intermediate), "down_proj": (shape.intermediate, shape.hidden),
    }
    names = LORA_TARGETS_ALL_LINEAR if "all-linear" in targets else targets
    per_layer = sum(r * (sizes[n][0] + sizes[n][1]) for n in names if n in sizes)
    return shape.layers * per_layer


def estimate_memory(shape: ModelShape, cfg: Any) -> MemoryEstimate:
    """Bytes one training step of `cfg` (an RLConfig) needs on `shape` (formulas in the module docstring)."""
    weights = shape.n_params * 4
    trainable = count_lora_parameters(shape, cfg.lora_r, list(cfg.lora_target_modules)) if cfg.use_lora else shape.n_params
    reference = weights if (cfg.beta > 0 and not cfg.use_lora) else 0
    micro = -(-cfg.prompts_per_step * cfg.num_generations // cfg.grad_accum_steps)  # ceil
    seq = PROMPT_TOKENS_GUESS + cfg.max_new_tokens
    act_bytes = 2 if cfg.mixed_precision == "bf16" else 4
    per_layer = ACTIVATION_FACTOR * shape.hidden + ATTENTION_FACTOR * shape.heads * seq
    activations = micro * seq * shape.layers * per_layer * act_bytes // 2 + 2 * micro * seq * shape.vocab * 4
    return MemoryEstimate(weights=weights, reference=reference, gradients=trainable * 4, optimizer=trainable * 8,
                          activations=activations)


# ----------------------------------------------------------------------------- the checks


def _gib(n: int | float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_rl_config(cfg: Any, device_info: DeviceInfo, shape: ModelShape | None = None) -> list[PreflightWarning]:
    """Warnings for an RLConfig on a device: bf16 without hardware support, a model or batch that will not fit.

    `shape` defaults to the one read from the model's config.json; without one (a GGUF not yet
    converted, a hub id not in the cache) the memory checks are skipped.
    """
    warnings: list[PreflightWarning] = []
    if cfg.mixed_precision == "bf16" and device_info.kind == "cpu" and not device_info.bf16_native:
        warnings.append(PreflightWarning(
            "mixed_precision",
            f"bf16 on this CPU ({device_info.cpu_capability or 'unknown ISA'}, no avx512_bf16 or amx_bf16) is emulated "
            "in software: on an AMD Zen 2 one GRPO update took 130 s in bf16 against 5 s in fp32.",
            "set mixed_precision to 'no' (fp32), or train on a CPU with AVX512_BF16/AMX or a GPU.",
        ))
    if shape is None:
        config = find_model_config(cfg.model)
        shape = compute_model_shape(config) if config else None
    if shape is None or not device_info.free_bytes:
        return warnings
    est = estimate_memory(shape, cfg)
    budget = device_info.free_bytes * HEADROOM
    where = f"{_gib(device_info.free_bytes)} free on {device_info.kind}"
    if est.static > budget:
        fix = ("choose a smaller model" if cfg.use_lora else
               "set use_lora to true (only the adapters get gradients and AdamW state), or choose a smaller model")
        if est.reference:
            fix += "; beta 0 also drops the reference copy"
        warnings.append(PreflightWarning(
            "model",
            f"the model ({shape.n_params / 1e6:.0f} M parameters) needs about {_gib(est.static)} for weights"
            f"{', the reference copy' if est.reference else ''}, gradients and AdamW state before any batch, "
            f"with {where}.",
            fix + ".", severity="error",
        ))
    elif est.total > budget:
        room = budget - est.static
        per_sample = est.activations / max(1, -(-cfg.prompts_per_step * cfg.num_generations // cfg.grad_accum_steps))
        fits = max(1, int(room // per_sample)) if room > 0 else 1
        accum = -(-cfg.prompts_per_step * cfg.num_generations // fits)
        warnings.append(PreflightWarning(
            "grad_accum_steps",
            f"one step needs about {_gib(est.total)} ({_gib(est.activations)} of it activations for micro-batches of "
            f"{cfg.prompts_per_step * cfg.num_generations // cfg.grad_accum_steps} completions of up to "
            f"{PROMPT_TOKENS_GUESS + cfg.max_new_tokens} tokens), with {where}.",
            f"raise grad_accum_steps to {accum} (same update, less memory), or lower prompts_per_step, "
            "num_generations or max_new_tokens.", severity="error",
        ))
    return warnings


def preflight_rl_config(cfg: Any) -> list[PreflightWarning]:
    """check_rl_config on the device `cfg.device` names, measured now (what the CLI and the page call)."""
    return check_rl_config(cfg, read_device_info(cfg.device))
