"""The models an RL run trains and compares against: the policy (LoRA or full), the reference, the value head.

`load_policy(cfg)` loads the model named by the config (or the checkpoint it resumes), wraps it
with LoRA adapters when asked (peft), and adds what the algorithm needs:

  * a frozen reference copy when beta > 0 and the whole model trains; with LoRA there is no
    copy, the reference is the same model with its adapters switched off (peft's disable_adapter);
  * a value head when the algorithm has one (PPO; llmrl_core.lm_rl.algorithms).

Call it after seeding: LoRA's initial adapter weights and the value head come from torch's RNG.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.algorithms import ValueHead, get_algorithm
from llmrl_core.lm_rl.checkpoints import is_adapter_checkpoint

if TYPE_CHECKING:
    from llmrl_core.lm_rl.config import RLConfig


@dataclass
class Policy:
    """The models of one run."""

    loaded: Any  # llmrl_core.lm.models.LoadedModel: tokenizer, device, context length; .model is the base
    model: Any  # what trains: loaded.model itself, or it wrapped with LoRA adapters (a peft model)
    ref_model: Any | None  # frozen reference copy (beta > 0, full fine-tuning); None otherwise
    value_head: ValueHead | None  # only for algorithms that need one


def load_policy(cfg: "RLConfig", resume: Path | None = None, loaded: Any = None,
                log: Callable[[str], None] | None = None) -> Policy:
    """Load (unless `loaded` is given) and set up the models of a run of `cfg`, resuming checkpoint `resume`.

    A full checkpoint replaces the model's weights; an adapter checkpoint is loaded on top of cfg.model.
    """
    from llmrl_core.lm.models import load_causal_lm

    log = log or (lambda message: None)
    if loaded is None:
        spec = str(resume) if resume is not None and not is_adapter_checkpoint(resume) else cfg.model
        log(f"Loading the model {spec!r}…")
        loaded = load_causal_lm(spec, device=cfg.device, dtype="float32")
    model = apply_lora(loaded.model, cfg, resume)
    ref_model = None
    if cfg.needs_reference and not cfg.use_lora:
        if resume is None:
            log("Copying the model as the frozen reference (beta > 0)…")
            ref_model = copy.deepcopy(loaded.model).eval()
        else:  # the checkpoint's weights moved on: the reference is the original model
            ref_model = load_causal_lm(cfg.model, device=cfg.device, dtype="float32").model.eval()
        ref_model.requires_grad_(False)
    value_head = None
    if get_algorithm(cfg.algorithm).needs_value_head:
        value_head = ValueHead(model.config.hidden_size).to(loaded.device)
    return Policy(loaded=loaded, model=model, ref_model=ref_model, value_head=value_head)


def apply_lora(model: Any, cfg: "RLConfig", resume: Path | None = None) -> Any:
    """The trainable model: `model` itself (full fine-tuning) or it wrapped with LoRA adapters (cfg.use_lora),
    new ones or those of the adapter checkpoint `resume`."""
    if not cfg.use_lora:
        if resume is not None and is_adapter_checkpoint(resume):
            raise InputError("resume_from points at a LoRA adapter checkpoint: set use_lora to true to resume it.")
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, PeftModel, get_peft_model

    if resume is not None and is_adapter_checkpoint(resume):
        return PeftModel.from_pretrained(model, str(resume), is_trainable=True)
    targets = cfg.lora_target_modules
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else list(targets), task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as err:
        raise InputError(f"LoRA could not be applied: {err}. Check lora_target_modules against the model's layer names.") from err
