"""Save and reload RL training checkpoints: weights the Hugging Face way, plus the trainer's state.

A checkpoint is one folder:
  * the model as ``save_pretrained`` writes it (a full HF folder, loadable as a model spec), or
    only the LoRA adapter (adapter_config.json + weights) when training with peft;
  * the tokenizer (so a full checkpoint is a complete model folder);
  * ``trainer_state.pt``: step, optimizer and scheduler state, value head, baseline, RNG, prompt order;
  * ``rl_config.yaml``: the config the run used.
The folder is written under a temporary name and renamed, so a crash never leaves a half
checkpoint that looks complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from llmrl_core.errors import InputError

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "rl_config.yaml"
ADAPTER_FILE = "adapter_config.json"


def make_checkpoint_dir(root: str | Path, step: int) -> Path:
    """The folder name for step `step` under `root` (checkpoint-000010)."""
    return Path(root) / f"checkpoint-{step:06d}"


def save_checkpoint(folder: str | Path, model: Any, tokenizer: Any, state: dict, config_yaml: str) -> Path:
    """Write weights (or the LoRA adapter), tokenizer, trainer state and config into `folder`."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)  # peft models write only the adapter
    tokenizer.save_pretrained(partial)
    torch.save(state, partial / STATE_FILE)
    (partial / CONFIG_FILE).write_text(config_yaml, encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def is_adapter_checkpoint(folder: str | Path) -> bool:
    """True when the checkpoint holds a LoRA adapter rather than full weights."""
    return (Path(folder) / ADAPTER_FILE).is_file()


def check_checkpoint(folder: str | Path) -> Path:
    """Return the folder if it is a complete checkpoint, else raise a message that says what to pick."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"resume_from: no folder at {str(folder)!r}. Pick a checkpoint folder listed under the run's artifacts.")
    if not (folder / STATE_FILE).is_file():
        raise InputError(
            f"resume_from: {str(folder)!r} has no {STATE_FILE}, so it is not a training checkpoint. "
            "Pick a checkpoint-NNNNNN folder written by an RL run (or use the folder as the model spec to start fresh)."
        )
    if not (is_adapter_checkpoint(folder) or (folder / "config.json").is_file()):
        raise InputError(f"resume_from: {str(folder)!r} has neither model weights nor a LoRA adapter; the checkpoint is incomplete.")
    return folder


def load_trainer_state(folder: str | Path) -> dict:
    """Read the trainer state saved with a checkpoint (on the CPU)."""
    return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)


def find_latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder under `root`, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = sorted(p for p in root.glob("checkpoint-*") if p.is_dir() and (p / STATE_FILE).is_file())
    return found[-1] if found else None
