"""How much memory one device needs to fine-tune a model, per distribution strategy, before a run starts.

The accounting is the standard one of the ZeRO paper (Rajbhandari et al. 2019, arXiv 1910.02054,
section 3.1) for the model states, and of Korthikanti et al. 2022 (arXiv 2205.05198, section 4.1)
for the activations. With N parameters, T of them trainable, P processes and d bytes per weight:

  weights     N·d                    (every strategy but ZeRO-3/FSDP keeps a full copy on each device)
  gradients   T·d                    (only trainable parameters have gradients)
  optimizer   T·K                    AdamW: K = 12 in mixed precision (an fp32 master copy 4 + momentum 4
                                     + variance 4: the paper's "2 + 2 + 12 bytes per parameter"); K = 8
                                     when the weights are fp32 already (no master copy). SGD with
                                     momentum: K = 4, plus 4 for a master copy in mixed precision.

  single, ddp: nothing sharded (DDP replicates everything; its gradient buckets are not counted)
  zero2:       gradients and optimizer state / P
  zero3, fsdp: weights, gradients and optimizer state / P (FSDP's FULL_SHARD is ZeRO-3)

  reference   N·d (/P with ZeRO-3/FSDP) for a frozen copy when a KL term needs one; 0 with LoRA, where
              the reference is the same model with its adapters switched off
  activations b·s·h·L·17·a   a = bytes per activation (2 in 16-bit): Korthikanti et al.'s
              s·b·h·(34 + 5·a_heads·s/h) bytes per layer at 16 bits, without the attention-score term
              5·a_heads·s²·b, which fused attention (SDPA, FlashAttention) never stores. With gradient
              checkpointing only each layer's input is kept (b·s·h·a per layer) plus one layer's full
              activations while it is recomputed (b·s·h·17·a).
  logits      b·s·V·4        the fp32 logits the loss reads (b sequences of s tokens, vocabulary V)

b is the batch one device runs forward and backward at once (a micro-batch), s the sequence length.
Not counted: the CUDA context and allocator slack (often 0.5-1 GB), the KV cache of generation (it
is freed before the backward pass), temporary buffers of collectives. Treat the total as a floor.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from llmrl_core.core.errors import InputError
from llmrl_core.runs.launch import STRATEGIES

STRATEGY_LABELS = {"single": "one process", "ddp": "DDP", "fsdp": "FSDP", "zero2": "ZeRO-2", "zero3": "ZeRO-3"}
OPTIMIZERS = ("adamw", "sgd")
ACTIVATION_BYTES_PER_LAYER = 17  # x bytes per activation: 34 at 16 bits (Korthikanti et al. 2022, section 4.1)
LOGIT_BYTES = 4  # the loss reads fp32 logits
DEFAULT_PROMPT_TOKENS = 64  # prompt length assumed by estimate_from_config (the bundled sets are short)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one device holds at the peak of a training step, by kind (see the module docstring)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    reference: int
    strategy: str
    n_processes: int

    @property
    def static(self) -> int:
        """What a device holds whatever the batch: weights, reference copy, gradients, optimizer state."""
        return self.weights + self.reference + self.gradients + self.optimizer

    @property
    def batch(self) -> int:
        """What grows with the micro-batch: activations and logits."""
        return self.activations + self.logits

    @property
    def total(self) -> int:
        """Everything above: bytes per device."""
        return self.static + self.batch

    def as_dict(self) -> dict[str, int]:
        """The parts and the total in bytes, for a table."""
        return {"weights": self.weights, "gradients": self.gradients, "optimizer state": self.optimizer,
                "activations": self.activations, "logits": self.logits, "reference model": self.reference,
                "total per device": self.total}

    def describe(self, device: str = "GPU") -> str:
        """One line for the page, e.g. 'needs about 14.2 GiB per GPU with ZeRO-2 (4 processes)'."""
        size = f"about {self.total / 2**30:.1f} GiB" if self.total >= 2**29 else f"about {self.total / 2**20:.0f} MiB"
        if self.strategy == "single":
            return f"needs {size} on one {device}"
        return f"needs {size} per {device} with {STRATEGY_LABELS[self.strategy]} ({self.n_processes} processes)"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"Unknown {name} {value!r}{hint}; choose one of {', '.join(choices)}.")


def estimate_training_memory(n_params: int, *, hidden_size: int, n_layers: int, vocab_size: int, batch_size: int,
                             seq_len: int, dtype_bytes: int, optimizer: str = "adamw", strategy: str = "single",
                             n_processes: int = 1, lora_params: int = 0, gradient_checkpointing: bool = False,
                             reference_model: bool = False, value_head: bool = False,
                             activation_bytes: int | None = None) -> MemoryEstimate:
    """Per-device memory of one training step (formulas in the module docstring).

    `batch_size` is the micro-batch one device runs at once, `seq_len` prompt plus completion tokens,
    `dtype_bytes` the bytes of a weight (2 for bf16/fp16 mixed precision, 4 for fp32) and
    `activation_bytes` those of an activation (default `dtype_bytes`; 2 under bf16 autocast with fp32 weights).
    `lora_params` > 0: only the adapters (and the value head) train. `value_head`: PPO's linear head (h + 1 params).
    """
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    for name, value in (("n_params", n_params), ("hidden_size", hidden_size), ("n_layers", n_layers),
                        ("vocab_size", vocab_size), ("batch_size", batch_size), ("seq_len", seq_len),
                        ("n_processes", n_processes)):
        if int(value) < 1:
            raise InputError(f"{name} must be at least 1 for a memory estimate (got {value}).")
    if dtype_bytes not in (1, 2, 4) or (activation_bytes is not None and activation_bytes not in (1, 2, 4)):
        raise InputError(f"Bytes per value must be 1, 2 or 4 (got dtype_bytes={dtype_bytes}, activation_bytes={activation_bytes}).")
    procs = 1 if strategy == "single" else int(n_processes)
    shard_states = strategy in ("zero2", "zero3", "fsdp")  # gradients and optimizer state split over processes
    shard_weights = strategy in ("zero3", "fsdp")  # the weights too

    head = hidden_size + 1 if value_head else 0
    trainable = (lora_params if lora_params > 0 else n_params) + head
    stored = n_params + max(lora_params, 0) + head  # every weight a device must hold (before sharding)
    master = 4 if dtype_bytes < 4 else 0  # mixed precision keeps an fp32 master copy of trainable weights
    optimizer_bytes = (8 if optimizer == "adamw" else 4) + master  # AdamW: m + v; SGD: momentum

    def shard(nbytes: float, sharded: bool) -> int:
        return math.ceil(nbytes / procs) if sharded else int(nbytes)

    act = activation_bytes or dtype_bytes
    tokens_hidden = batch_size * seq_len * hidden_size  # b·s·h
    if gradient_checkpointing:
        activations = tokens_hidden * n_layers * act + tokens_hidden * ACTIVATION_BYTES_PER_LAYER * act
    else:
        activations = tokens_hidden * n_layers * ACTIVATION_BYTES_PER_LAYER * act
    needs_copy = reference_model and lora_params <= 0  # with LoRA the reference is the adapter-free base
    return MemoryEstimate(
        weights=shard(stored * dtype_bytes, shard_weights),
        gradients=shard(trainable * dtype_bytes, shard_states),
        optimizer=shard(trainable * optimizer_bytes, shard_states),
        activations=activations,
        logits=batch_size * seq_len * vocab_size * LOGIT_BYTES,
        reference=shard(n_params * dtype_bytes, shard_weights) if needs_copy else 0,
        strategy=strategy,
        n_processes=procs,
    )


# --------------------------------------------------------------------------- from a run's config


def count_lora_params(model_facts: Mapping[str, Any], rank: int, target_modules: list[str]) -> int:
    """Parameters LoRA adds: r·(in + out) for each targeted linear layer (peft's A: r×in, B: out×r).

    `model_facts["linear_shapes"]` maps a module's last name ('q_proj') to [in, out, how many];
    'all-linear' targets every linear layer but the output head, as in peft.
    """
    shapes = model_facts.get("linear_shapes") or {}
    targets = set(shapes) if "all-linear" in target_modules else set(target_modules)
    return sum(rank * (n_in + n_out) * count for name, (n_in, n_out, count) in shapes.items() if name in targets)


def estimate_checkpoint_bytes(cfg: Mapping[str, Any], model_facts: Mapping[str, Any]) -> int:
    """Disk a run's checkpoints take at their peak: every kept checkpoint's weights (fp32; the adapters only with
    LoRA) plus one AdamW state (two fp32 moments of what trains) in the newest while the run goes on.

    Kept: the final one (save_final) plus up to save_total_limit periodic ones (save_every). A floor: the
    tokenizer, the config and the trainer's small state come on top.
    """
    n_params = int(model_facts.get("n_params") or 0)
    trainable = (count_lora_params(model_facts, int(cfg.get("lora_r") or 16), list(cfg.get("lora_target_modules") or
                                   ["all-linear"])) if cfg.get("use_lora") else n_params)
    steps, every = int(cfg.get("steps") or 0), int(cfg.get("save_every") or 0)
    kept = (1 if cfg.get("save_final", True) else 0) + (min(int(cfg.get("save_total_limit") or 1), steps // every)
                                                        if every else 0)
    return max(kept, 1) * trainable * 4 + trainable * 8


def resolve_activation_bytes(mixed_precision: str | None, bf16_native: bool = True) -> int:
    """Bytes of an activation: 2 under bf16 autocast ('bf16', or 'auto' on a device that runs bf16 natively), else 4.

    The one place the estimate reads the precision setting (swap in the trainer's precision resolver here).
    """
    if mixed_precision == "bf16" or (mixed_precision == "auto" and bf16_native):
        return 2
    return 4


def read_distribution(cfg: Mapping[str, Any]) -> tuple[int, str]:
    """(processes over all machines, strategy) of a config: the estimate's keys 'processes' (per machine),
    'machines' and 'strategy', else RLConfig's num_processes (in all), num_machines and distributed_strategy."""
    if "processes" in cfg or "strategy" in cfg:
        processes = int(cfg.get("processes") or 1) * int(cfg.get("machines") or 1)
        return processes, str(cfg.get("strategy") or ("ddp" if processes > 1 else "single"))
    processes = max(1, int(cfg.get("num_processes") or 1))
    return processes, str(cfg.get("distributed_strategy") or "ddp") if processes > 1 else "single"


def estimate_from_config(cfg: Mapping[str, Any], model_facts: Mapping[str, Any],
                         prompt_tokens: int = DEFAULT_PROMPT_TOKENS, bf16_native: bool = True) -> MemoryEstimate:
    """The estimate for an LM RL run's config (a dict with RLConfig's keys) on the model of `model_facts`.

    model_facts: n_params, hidden_size, n_layers, vocab_size (and linear_shapes for LoRA), e.g. from
    read_model_facts. The micro-batch per device is the step's completions (prompts_per_step x
    num_generations) split over the processes and then over grad_accum_steps; the sequence is
    `prompt_tokens` plus max_new_tokens. The trainer keeps fp32 weights (4 bytes) and computes in
    16 bits under bf16 autocast (resolve_activation_bytes: 'bf16', or 'auto' where `bf16_native`).
    Distribution (read_distribution): 'strategy' (default 'single', or 'ddp' with several processes),
    'processes' per machine and 'machines' (default 1 each), or RLConfig's own fields. A value head
    is counted when the algorithm trains one (Algorithm.needs_value_head).
    """
    from llmrl_core.lm_rl.algorithms.registry import REGISTRY

    processes, strategy = read_distribution(cfg)
    completions = int(cfg.get("prompts_per_step", 4)) * int(cfg.get("num_generations", 4))
    per_process = math.ceil(completions / processes)
    micro_batch = max(1, math.ceil(per_process / max(1, int(cfg.get("grad_accum_steps", 1)))))
    lora = 0
    if cfg.get("use_lora"):
        lora = count_lora_params(model_facts, int(cfg.get("lora_r", 16)),
                                 list(cfg.get("lora_target_modules") or ["q_proj", "k_proj", "v_proj", "o_proj"]))
    return estimate_training_memory(
        int(model_facts["n_params"]), hidden_size=int(model_facts["hidden_size"]),
        n_layers=int(model_facts["n_layers"]), vocab_size=int(model_facts["vocab_size"]),
        batch_size=micro_batch, seq_len=prompt_tokens + int(cfg.get("max_new_tokens", 32)),
        dtype_bytes=4, activation_bytes=resolve_activation_bytes(cfg.get("mixed_precision"), bf16_native),
        strategy=strategy, n_processes=processes, lora_params=lora,
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        reference_model=float(cfg.get("beta", 0.0) or 0.0) > 0, value_head=REGISTRY[cfg["algorithm"]].needs_value_head if cfg.get("algorithm") in REGISTRY else False,
    )


def read_model_facts(source: Any) -> dict[str, Any]:
    """n_params, hidden_size, n_layers, vocab_size and linear_shapes of a model, without loading its weights.

    `source`: a model spec ('bundled', a folder, a .gguf file, a hub id), a LoadedModel, or a
    transformers config. The parameters are counted on an empty ('meta') copy built from the config,
    so a 70B model costs no memory; tied embeddings count once.
    """
    import torch

    config = _read_config(source)
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes: dict[str, list[int]] = {}
    output = model.get_output_embeddings()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not output:
            entry = shapes.setdefault(name.rsplit(".", 1)[-1], [module.in_features, module.out_features, 0])
            entry[2] += 1
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return {
        "n_params": sum(p.numel() for p in model.parameters()),
        "hidden_size": int(text.hidden_size),
        "n_layers": int(text.num_hidden_layers),
        "vocab_size": int(text.vocab_size),
        "linear_shapes": shapes,
    }


def _read_config(source: Any) -> Any:
    """A transformers config from a spec string, a LoadedModel or a config."""
    if hasattr(source, "model") and hasattr(source.model, "config"):  # a LoadedModel
        return source.model.config
    if hasattr(source, "to_dict") and hasattr(source, "model_type"):  # a PretrainedConfig
        return source
    from transformers import AutoConfig

    from llmrl_core.lm.models import load_from_hub, convert_gguf, resolve_spec

    resolved = resolve_spec(str(source))
    if resolved.kind in ("bundled", "gguf"):
        return AutoConfig.from_pretrained(convert_gguf(Path(resolved.location)))
    if resolved.kind == "adapter":
        base = json.loads((Path(resolved.location) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise InputError(f"The adapter folder {resolved.spec!r} does not name its base model; estimate with the base model's spec.")
        return _read_config(base)
    if resolved.kind == "hub":  # the local cache first; a clear error within seconds when offline
        return load_from_hub(resolved.location, AutoConfig.from_pretrained, "model's config")
    return AutoConfig.from_pretrained(resolved.location)
