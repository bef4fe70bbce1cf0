"""Save and reload RL training checkpoints: weights the Hugging Face way, plus the trainer's state.

A checkpoint is one folder:
  * the model as ``save_pretrained`` writes it (a full HF folder, loadable as a model spec), or
    only the LoRA adapter (adapter_config.json + weights) when training with peft;
  * the tokenizer (so a full checkpoint is a complete model folder);
  * ``trainer_state.pt``: step, optimizer and scheduler state, value head, baseline, RNG, prompt order;
  * ``rl_config.yaml``: the config the run used.
The folder is written under a temporary name and renamed, so a crash never leaves a half
checkpoint that looks complete; a full disk removes the half-written folder and says so.

Retention (`prune_checkpoints`): a run keeps its newest `save_total_limit` checkpoints, and only
the newest keeps the optimizer state (two AdamW moments, twice the weights' size); older ones stay
loadable as model specs and resumable with a fresh optimizer.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from llmrl_core.core.errors import InputError, WorkbenchError

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "rl_config.yaml"
ADAPTER_FILE = "adapter_config.json"
_FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_DISK_TEXTS = ("no space left", "os error 28", "disk quota", "storagefull")


class DiskFullError(WorkbenchError):
    """The disk filled up while writing a checkpoint (the previous checkpoints are untouched)."""


def make_checkpoint_dir(root: str | Path, step: int) -> Path:
    """The folder name for step `step` under `root` (checkpoint-000010)."""
    return Path(root) / f"checkpoint-{step:06d}"


def save_checkpoint(folder: str | Path, model: Any, tokenizer: Any, state: dict, config_yaml: str) -> Path:
    """Write weights (or the LoRA adapter), tokenizer, trainer state and config into `folder`.

    Everything goes into `folder`.partial first, renamed only when complete. On any failure the
    partial folder is removed; a full disk raises DiskFullError with what to do.
    """
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        model.save_pretrained(partial)  # peft models write only the adapter
        tokenizer.save_pretrained(partial)
        torch.save(state, partial / STATE_FILE)
        (partial / CONFIG_FILE).write_text(config_yaml, encoding="utf-8")
    except Exception as err:
        full = is_disk_full_error(err, partial)  # ask before the cleanup frees the space
        shutil.rmtree(partial, ignore_errors=True)
        if full:
            raise DiskFullError(
                f"Disk full while writing the checkpoint at step {state.get('step', '?')} to {folder} ({err}). "
                "The half-written folder was removed and earlier checkpoints are intact. Free space on that disk, "
                "or lower save_total_limit (older checkpoints are deleted after each save) or raise save_every, "
                "or set LLMRL_HOME to a bigger disk; then resume from the last checkpoint."
            ) from err
        raise
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def is_disk_full_error(err: BaseException, where: str | Path) -> bool:
    """True when `err` came from a full disk (or quota) at `where`.

    torch.save reports a full disk only as 'unexpected pos' and safetensors as a text, so this
    also looks at the message and, failing that, at the space left on the disk.
    """
    if isinstance(err, OSError) and err.errno in _FULL_DISK_ERRNOS:
        return True
    if any(text in str(err).lower() for text in _FULL_DISK_TEXTS):
        return True
    path = Path(where)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free < 1 << 20  # under 1 MiB left
    except OSError:
        return False


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


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoint folders under `root`, oldest first (the name holds the step)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("checkpoint-*") if p.is_dir() and not p.name.endswith(".partial")
                  and (p / STATE_FILE).is_file())


def strip_optimizer_state(folder: str | Path) -> int:
    """Drop the optimizer state from a checkpoint's trainer state; return the bytes saved.

    Step, scheduler, RNG, baseline, value head and prompt order stay, so the folder still loads as
    a model and resumes (with a fresh optimizer). The smaller file replaces the old one atomically.
    """
    path = Path(folder) / STATE_FILE
    state = load_trainer_state(folder)
    if state.get("optimizer") is None:
        return 0
    before = path.stat().st_size
    state["optimizer"] = None
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    return before - path.stat().st_size


def prune_checkpoints(root: str | Path, keep: int, protect: tuple[str | Path, ...] = ()) -> tuple[list[Path], list[Path]]:
    """Apply retention under `root`: delete all but the newest `keep` checkpoints, and strip the
    optimizer state from all kept ones but the newest. Folders in `protect` are never touched.

    Returns (deleted folders, stripped folders). A folder that cannot be deleted or stripped is
    logged and skipped: retention must never fail a run.
    """
    protected = {Path(p).resolve() for p in protect}
    found = [p for p in list_checkpoints(root) if p.resolve() not in protected]
    if not found:
        return [], []
    keep = max(1, int(keep))
    deleted, stripped = [], []
    for folder in found[:-keep]:
        try:
            shutil.rmtree(folder)
            deleted.append(folder)
        except OSError as err:
            logger.warning("Could not delete the old checkpoint %s: %s", folder, err)
    for folder in found[-keep:-1]:
        try:
            if strip_optimizer_state(folder):
                stripped.append(folder)
        except Exception as err:  # a full disk or an odd file: keep the checkpoint as it is
            logger.warning("Could not drop the optimizer state of %s: %s", folder, err)
    return deleted, stripped
