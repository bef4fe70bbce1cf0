"""Preflight: settings that are valid but ruinous on this machine, caught before a run starts.

`check_rl_config(cfg, device_info)` returns a list of `PreflightWarning`s (field, message, fix,
severity); the CLI prints them as `warning: ...` lines and the RL page shows them above Start.
It is cheap on purpose: it reads the model's config.json (never its weights), /proc/cpuinfo and
/proc/meminfo (or torch.cuda.mem_get_info), and does arithmetic.

What it catches:
  * bf16 autocast on a CPU without native bfloat16 (no AVX512_BF16 or AMX): torch emulates it,
    and on an AMD Zen 2 one GRPO update took 130 s in bf16 against 5 s in fp32;
  * a model whose weights, gradients and AdamW state alone exceed the free memory;
  * a batch whose activations push the estimate past the free memory;
  * checkpoints that the disk under the workbench home cannot hold (memory.estimate_checkpoint_bytes).

The memory estimate is llmrl_core/lm_rl/memory.py's (one formula for the page, the CLI and these
checks): the model's size comes from its config.json (`compute_model_shape`, no weights read), the
batch is split over the run's processes and grad_accum_steps, and "auto" precision counts as bf16
where the device runs bf16 natively (`memory.resolve_activation_bytes`). It is a floor, good to tell
"fits" from "will not".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrl_core.core.hardware import DeviceInfo, read_device_info  # tests patch read_device_info here
from llmrl_core.lm_rl.memory import DEFAULT_PROMPT_TOKENS, MemoryEstimate, estimate_checkpoint_bytes, estimate_from_config

HEADROOM = 0.9  # warn when the estimate exceeds this share of the free memory (the OS and the app need some)


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
class ModelShape:
    """A causal LM's size as its config.json states it (no weights read)."""

    n_params: int
    hidden: int
    layers: int
    heads: int
    kv_dim: int  # key/value width: kv_heads x head_dim
    intermediate: int
    vocab: int

    def to_facts(self) -> dict[str, Any]:
        """The model facts memory.estimate_from_config reads, with the Llama layout's linear layers
        (name -> [in, out, how many]) for counting LoRA's adapters."""
        q = self.hidden  # query/output width (heads x head_dim; equal to hidden for these models)
        shapes = {"q_proj": (self.hidden, q), "k_proj": (self.hidden, self.kv_dim), "v_proj": (self.hidden, self.kv_dim),
                  "o_proj": (q, self.hidden), "gate_proj": (self.hidden, self.intermediate),
                  "up_proj": (self.hidden, self.intermediate), "down_proj": (self.intermediate, self.hidden)}
        return {"n_params": self.n_params, "hidden_size": self.hidden, "n_layers": self.layers, "vocab_size": self.vocab,
                "linear_shapes": {name: [n_in, n_out, self.layers] for name, (n_in, n_out) in shapes.items()}}


# ----------------------------------------------------------------------------- the model's size


def find_model_config(spec: str) -> dict | None:
    """The config.json of a model spec without loading it: a folder's, the converted bundled/GGUF folder's
    (None until converted once), a LoRA adapter's base, or a hub id's from the local HF cache."""
    from llmrl_core.core.errors import WorkbenchError
    from llmrl_core.core.paths import get_cache_dir
    from llmrl_core.lm.models import make_gguf_cache_key, resolve_spec

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


def estimate_memory(shape: ModelShape, cfg: Any, bf16_native: bool = True) -> MemoryEstimate:
    """Bytes per device one training step of `cfg` (an RLConfig) needs on `shape`: memory.estimate_from_config."""
    return estimate_from_config(cfg.to_dict(), shape.to_facts(), bf16_native=bf16_native)


# ----------------------------------------------------------------------------- the checks


def _gib(n: int | float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_rl_config(cfg: Any, device_info: DeviceInfo, shape: ModelShape | None = None,
                    disk_free_bytes: int | None = None) -> list[PreflightWarning]:
    """Warnings for an RLConfig on a device: bf16 without hardware support, a model or batch that will not fit,
    checkpoints the disk under the workbench home cannot hold.

    `shape` defaults to the one read from the model's config.json; without one (a GGUF not yet
    converted, a hub id not in the cache) the memory and disk checks are skipped. `disk_free_bytes`
    defaults to the free space of the workbench home's disk, measured now.
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
    if shape is None:
        return warnings
    warnings.extend(check_checkpoint_disk(cfg, shape, disk_free_bytes))
    if not device_info.free_bytes:
        return warnings
    est = estimate_memory(shape, cfg, bf16_native=device_info.kind != "cpu" or device_info.bf16_native)
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
        per_device = -(-cfg.prompts_per_step * cfg.num_generations // est.n_processes)  # completions per process
        micro = -(-per_device // cfg.grad_accum_steps)
        fits = max(1, int(room // (est.batch / micro))) if room > 0 else 1
        accum = -(-per_device // fits)
        warnings.append(PreflightWarning(
            "grad_accum_steps",
            f"one step needs about {_gib(est.total)} ({_gib(est.batch)} of it activations and logits for micro-batches "
            f"of {micro} completions of up to {DEFAULT_PROMPT_TOKENS + cfg.max_new_tokens} tokens), with {where}.",
            f"raise grad_accum_steps to {accum} (same update, less memory), or lower prompts_per_step, "
            "num_generations or max_new_tokens.", severity="error",
        ))
    return warnings


def check_checkpoint_disk(cfg: Any, shape: ModelShape, disk_free_bytes: int | None = None) -> list[PreflightWarning]:
    """A warning when the run's checkpoints (memory.estimate_checkpoint_bytes) would not fit the free disk."""
    if disk_free_bytes is None:
        import shutil

        from llmrl_core.core.paths import get_home

        home = get_home()
        disk_free_bytes = shutil.disk_usage(home if home.exists() else home.parent).free
    need = estimate_checkpoint_bytes(cfg.to_dict(), shape.to_facts())
    if need <= disk_free_bytes * HEADROOM:
        return []
    return [PreflightWarning(
        "save_total_limit",
        f"its checkpoints need about {_gib(need)} on disk at their peak, with {_gib(disk_free_bytes)} free under the "
        "workbench home: the run would fail when a save finds the disk full.",
        "free space (delete old runs' files on the Runs page), lower save_total_limit or raise save_every, "
        "set use_lora to true (adapters only), or point LLMRL_HOME at a larger disk.",
    )]


def preflight_rl_config(cfg: Any) -> list[PreflightWarning]:
    """check_rl_config on the device `cfg.device` names, measured now (what the CLI and the page call)."""
    return check_rl_config(cfg, read_device_info(cfg.device))
