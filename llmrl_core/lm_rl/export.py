"""Export an LM RL run's model (the "lm_rl" kind's model_exporter, called by runs/export.export_run).

A Hugging Face folder that `AutoModelForCausalLM.from_pretrained` loads, from the run's newest
checkpoint (or a chosen one). A LoRA run's adapter is merged into its base model (peft's
merge_and_unload, via lm.models.load_causal_lm) unless merge_lora=False, which exports the adapter
alone (adapter_config.json + weights; it names its base model by the path it was trained from). The
tokenizer goes along either way; the trainer state (optimizer moments) does not. runs/export.py
writes it under a temporary name, adds the kind's model card (README.md, present/model_card.py) and
renames it when complete.

`write_lm_gguf` (the kind's gguf_exporter) writes one GGUF file (lm/gguf_export.py) from the merged
model and returns the Ollama Modelfile text runs/export.py puts beside it (with the card).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.checkpoints import STATE_FILE, is_adapter_checkpoint
from llmrl_core.runs.store import RunStore

SKIPPED_CHECKPOINT_FILES = {STATE_FILE}  # optimizer moments and RNG: for resuming, not for using


def find_checkpoint(store: RunStore, run: dict, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint folder to export: `checkpoint` if given (it must be one of this run's), else the newest."""
    saved = store.list_artifacts(run["id"], kind="checkpoint")
    folders = [Path(p) for _, p in sorted(zip(saved["step"], saved["path"]), key=lambda sp: sp[0])]
    folders = [f for f in folders if f.is_dir() and (f / STATE_FILE).is_file()]
    if checkpoint is not None:
        wanted = Path(checkpoint).expanduser().resolve()
        for folder in folders:
            if folder.resolve() == wanted:
                return folder
        names = ", ".join(f.name for f in folders) or "none"
        raise InputError(f"{checkpoint} is not a checkpoint of run {run['id']}; its checkpoints on disk: {names}.")
    if not folders:
        raise InputError(f"Run {run['id']} has no checkpoint on disk (save_final was off, it stopped before its first "
                         "save, or its files were deleted), so there is no model to export.")
    return folders[-1]


def write_lm_model(store: RunStore, run: dict, tmp: Path, *, merge_lora: bool = True,
                   checkpoint: str | Path | None = None) -> None:
    """Write the run's model at `tmp` as an HF folder: merged, or the adapter alone (merge_lora=False)."""
    folder = find_checkpoint(store, run, checkpoint)
    adapter = is_adapter_checkpoint(folder)
    if not adapter and not merge_lora:
        raise InputError(f"Run {run['id']} trained every weight (use_lora was off), so there is no adapter alone "
                         "to export; export the full model (leave out --adapter-only).")
    if adapter and merge_lora:
        write_merged_model(folder, tmp)
    else:
        copy_model_files(folder, tmp)


def write_lm_gguf(store: RunStore, run: dict, tmp: Path, *, quant: str = "f16",
                  checkpoint: str | Path | None = None, name: str = "model.gguf") -> dict[str, str]:
    """Write the run's model (a LoRA adapter merged first) as a GGUF file at `tmp`; return the sibling texts.

    The returned {'Modelfile': ...} is the Ollama Modelfile (FROM ./`name`); runs/export.export_gguf
    writes it (and the kind's model card) beside the GGUF once it is in place.
    """
    from transformers import AutoTokenizer

    from llmrl_core.lm.gguf_export import read_model_config, write_llama_gguf
    from llmrl_core.lm.ollama import make_modelfile

    folder = find_checkpoint(store, run, checkpoint)
    with tempfile.TemporaryDirectory(prefix=".gguf-merge-", dir=tmp.parent) as scratch:
        if is_adapter_checkpoint(folder):
            merged = Path(scratch) / "merged"
            write_merged_model(folder, merged)
            folder = merged
        read_model_config(folder)  # refuses an unsupported architecture before any work
        write_llama_gguf(folder, tmp, quant, name=str(run.get("name") or f"run {run['id']}"))
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return {"Modelfile": make_modelfile(name, tokenizer)}


def write_merged_model(adapter_folder: Path, tmp: Path) -> None:
    """Load the adapter's base model, merge the LoRA weights in and save a plain HF folder with the tokenizer."""
    from llmrl_core.lm.models import load_causal_lm

    loaded = load_causal_lm(str(adapter_folder), device="cpu")  # merges (peft merge_and_unload)
    tmp.mkdir(parents=True)
    loaded.model.save_pretrained(tmp)
    loaded.tokenizer.save_pretrained(tmp)


def copy_model_files(folder: Path, tmp: Path) -> None:
    """Copy a checkpoint folder's model and tokenizer files (not its trainer state) to `tmp`."""
    tmp.mkdir(parents=True)
    for entry in sorted(folder.iterdir()):
        if entry.name in SKIPPED_CHECKPOINT_FILES:
            continue
        if entry.is_dir():
            shutil.copytree(entry, tmp / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, tmp / entry.name)
