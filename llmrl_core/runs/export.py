"""Export a run (issue 10): the tuned model, its metrics, its samples, its config, as files others can use.

`export_run(store, run_id, what, out)` with `what`:
- 'model': written by the run kind's exporter (RunKindSpec.model_exporter; a kind without one trains
  no model). For an LM run (lm_rl/export.py) a Hugging Face folder that `AutoModelForCausalLM.from_pretrained` loads,
  from the run's newest checkpoint (or a chosen one). A LoRA run's adapter is merged into its base
  model (peft's merge_and_unload, via lm.models.load_causal_lm) unless merge_lora=False, which
  exports the adapter alone (adapter_config.json + weights; it names its base model by the path
  it was trained from). The tokenizer goes along either way; the trainer state (optimizer moments)
  does not. For a Gymnasium run, the SB3 agent .zip the run saved.
- 'gguf': one GGUF file for llama.cpp / Ollama / LM Studio (RunKindSpec.gguf_exporter; lm_rl/export.py),
  f16 or q8_0 (`quant`), with an Ollama Modelfile and a model card beside it (FILE.Modelfile,
  FILE.README.md for --out FILE.gguf), each written atomically after the GGUF is in place.
- 'metrics': CSV, one row per step and one column per metric.
- 'samples': JSONL, one generation a line (step, prompt, completion, rewards, extras).
- 'config': the kind's config class as YAML (RunKindSpec.config_class: what `python -m llmrl_core train
  --config FILE` accepts for LM runs, the GymConfig fields for gym runs); the stored config otherwise.
Model exports of a kind with a model card (RunKindSpec.model_card) carry it: README.md in the folder,
FILE.README.md beside a GGUF.

Atomic: everything is written under a hidden temporary sibling (.NAME.partial-PID) and renamed to
`out` only when complete, so an export that fails or is killed half-way never leaves something
at `out` that looks finished. An existing `out` is refused unless overwrite=True; even then a
folder is replaced only when it looks like an earlier export (a model folder, or empty), so a
slip of the path cannot wipe an unrelated folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import yaml

from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.runs.kinds import EXPORT_FORMATS, find_kind, load_part
from llmrl_core.runs.reader import pivot_wide
from llmrl_core.runs.store import RunStore

EXPORT_WHAT = EXPORT_FORMATS


class ExportError(WorkbenchError):
    """Writing the export failed (disk full, no permission, a file vanished); nothing was left at the target."""

SKIPPED_CHECKPOINT_FILES = {"trainer_state.pt"}  # optimizer moments and RNG: for resuming, not for using
_MODEL_MARKERS = ("config.json", "adapter_config.json")  # what an exported model folder holds


def export_run(store: RunStore, run_id: int, what: str, out: str | Path, *, merge_lora: bool = True,
               overwrite: bool = False, checkpoint: str | Path | None = None, quant: str = "f16") -> Path:
    """Write one part of run `run_id` to `out` (see the module docstring) and return `out`.

    `checkpoint` picks a checkpoint folder of the run for 'model' and 'gguf' (default: its newest);
    `quant` the GGUF weights ('f16' or 'q8_0').
    """
    if what not in EXPORT_WHAT:
        raise InputError(f"Cannot export {what!r}; pick one of: {', '.join(EXPORT_WHAT)}.")
    run = store.get_run(int(run_id))
    if run is None:
        raise InputError(f"No run with id {run_id}. See the ids with: python -m llmrl_core runs list")
    out = Path(out).expanduser()
    if not out.name or out.name in (".", ".."):
        raise InputError(f"--out {str(out)!r} names no file or folder; give a path such as exports/run-{run_id}.")
    writers: dict[str, Callable[[Path], None]] = {
        "model": lambda tmp: write_model(store, run, tmp, merge_lora=merge_lora, checkpoint=checkpoint),
        "metrics": lambda tmp: write_metrics_csv(store, run, tmp),
        "samples": lambda tmp: write_samples_jsonl(store, run, tmp),
        "config": lambda tmp: tmp.write_text(make_config_yaml(run), encoding="utf-8"),
    }
    spec = find_kind(run["kind"])
    if what == "gguf":
        return export_gguf(store, run, out, overwrite=overwrite, checkpoint=checkpoint, quant=quant)
    suffix = spec.model_suffix if spec is not None else ""
    if what == "model" and suffix and out.suffix.lower() != suffix:
        raise InputError(f"A {spec.label} run's model is one {suffix} file; give --out a name ending in {suffix} "
                         f"(e.g. {out.with_suffix(suffix)}).")
    check_target(out, overwrite)
    return write_atomically(out, writers[what], overwrite=overwrite)


# ----------------------------------------------------------------------------- atomic writing


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse an existing `out` unless overwrite, and never replace a folder that is not an export."""
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise InputError(f"{out} exists; pass overwrite=True / --overwrite to replace it, or pick another --out.")
    if out.is_symlink():
        raise InputError(f"{out} is a symbolic link; not replacing it. Remove it by hand or pick another --out.")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).is_file() for m in _MODEL_MARKERS):
        raise InputError(f"{out} is a folder that does not look like an exported model (no config.json or "
                         "adapter_config.json); not replacing it. Pick another --out.")


def write_atomically(out: Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call write(tmp) on a hidden sibling path, then rename it to `out` (replacing `out` when overwrite).

    On any error (or Ctrl-C) the partial file or folder is removed and `out` is left as it was; an
    OSError (disk full, no permission) becomes an ExportError that says so.
    """
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        write(tmp)
        if not (tmp.exists()):
            raise RuntimeError(f"the export wrote nothing at {tmp}")
        if out.exists() and overwrite:
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)  # put the earlier export back
                raise
            _remove(old)
        elif out.exists():
            raise InputError(f"{out} appeared while exporting; pass overwrite=True / --overwrite to replace it.")
        else:
            os.replace(tmp, out)
    except OSError as err:
        _remove(tmp)
        raise ExportError(f"Could not export to {out}: {err.strerror or err}"
                          f"{f' ({err.filename})' if err.filename else ''}. Nothing was left there; free space "
                          "or pick a folder you can write to, then retry.") from err
    except BaseException:
        _remove(tmp)
        raise
    return out


def _remove(path: Path) -> None:
    """Delete a file or folder if it is there (a link as a link)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- model


def write_model(store: RunStore, run: dict, tmp: Path, *, merge_lora: bool = True,
                checkpoint: str | Path | None = None) -> None:
    """Write the run's model at `tmp` with its kind's exporter (RunKindSpec.model_exporter)."""
    spec = find_kind(run["kind"])
    if spec is None or "model" not in spec.export_formats or not spec.model_exporter:
        raise InputError(f"Run {run['id']} is a {run['kind']!r} run, which trains no model; export its metrics, "
                         "samples or config instead.")
    load_part(spec, "model_exporter")(store, run, tmp, merge_lora=merge_lora, checkpoint=checkpoint)
    if spec.model_card and tmp.is_dir():  # an HF folder carries its card (README.md with the Hub's YAML header)
        card = load_part(spec, "model_card")(store, run, adapter_only=not merge_lora)
        (tmp / "README.md").write_text(card, encoding="utf-8")


def name_gguf_siblings(out: Path) -> dict[str, Path]:
    """The files written beside a GGUF export: 'Modelfile' (Ollama) and 'card' (README.md), named after it."""
    return {"Modelfile": out.with_suffix(".Modelfile"), "card": out.with_suffix(".README.md")}


def export_gguf(store: RunStore, run: dict, out: Path, *, overwrite: bool = False,
                checkpoint: str | Path | None = None, quant: str = "f16") -> Path:
    """Write the run's model as one GGUF file at `out`, then its Modelfile and card beside it (each atomic)."""
    spec = find_kind(run["kind"])
    if spec is None or "gguf" not in spec.export_formats or not spec.gguf_exporter:
        raise InputError(f"Run {run['id']} is a {run['kind']!r} run, which has no GGUF export; GGUF is for language "
                         "models (export --what model for other runs).")
    if out.suffix.lower() != ".gguf":
        raise InputError(f"A GGUF export is one .gguf file; give --out a name ending in .gguf "
                         f"(e.g. {out.with_suffix('.gguf')}).")
    siblings = name_gguf_siblings(out)
    for target in (out, *siblings.values()):
        if target.is_dir():
            raise InputError(f"{target} is a folder; a GGUF export writes files there. Pick another --out.")
        check_target(target, overwrite)
    exporter = load_part(spec, "gguf_exporter")
    texts: dict[str, str] = {}

    def write(tmp: Path) -> None:
        texts.update(exporter(store, run, tmp, quant=quant, checkpoint=checkpoint, name=out.name))
        if spec.model_card:
            texts["card"] = load_part(spec, "model_card")(store, run, gguf_name=out.name, quant=quant)

    write_atomically(out, write, overwrite=overwrite)
    for key, target in siblings.items():
        if key in texts:
            write_atomically(target, lambda tmp, text=texts[key]: tmp.write_text(text, encoding="utf-8"),
                             overwrite=overwrite)
    return out


# ----------------------------------------------------------------------------- metrics, samples, config


def write_metrics_csv(store: RunStore, run: dict, tmp: Path) -> None:
    """Every metric of the run as CSV: a 'step' column, then one column per metric (the last value logged wins)."""
    long, _ = store.read_metrics_after(run["id"], 0)
    wide = pivot_wide(long)
    if long.empty:
        wide.to_csv(tmp, index=False)
        return
    wide.index.name = "step"
    wide.reset_index().to_csv(tmp, index=False)


def write_samples_jsonl(store: RunStore, run: dict, tmp: Path) -> None:
    """Every stored sample of the run as JSON Lines, oldest first."""
    samples = store.read_samples(run["id"], limit=-1)  # -1: no limit
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in samples.itertuples(index=False):
            record = {"step": int(row.step), "prompt": row.prompt, "completion": row.completion,
                      "rewards": row.rewards, "extras": row.extras}
            fh.write(json.dumps(record, ensure_ascii=False, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    """numpy scalars and other odd values as plain JSON."""
    return value.item() if hasattr(value, "item") else str(value)


def make_config_yaml(run: dict) -> str:
    """The run's config as YAML: its kind's config class (what `train --config` or `gym --config` reads), else as stored."""
    config = dict(run["config"])
    spec = find_kind(run["kind"])
    config_class = load_part(spec, "config_class") if spec is not None else None
    if config_class is not None:
        return config_class.from_dict(config).to_yaml()
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
