"""Where the workbench keeps its files: LLMRL_HOME (default ~/.llmrl).

Layout:
  $LLMRL_HOME/runs.sqlite      the run store
  $LLMRL_HOME/cache/models/    converted models (e.g. the bundled GGUF as safetensors)
  $LLMRL_HOME/artifacts/<run>/ checkpoints and other files a run writes
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmrl_core.core.errors import StoreError


def get_home() -> Path:
    """Return the workbench home folder, creating it and checking it is writable."""
    home = Path(os.environ.get("LLMRL_HOME") or Path.home() / ".llmrl").expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
        # A real write, not os.access: access() lies for root and on some mounts.
        with tempfile.NamedTemporaryFile(dir=home, prefix=".write-check-"):
            pass
    except OSError as err:
        raise StoreError(
            f"The workbench home {home} is not writable ({err.strerror or err}). "
            "Set LLMRL_HOME to a folder you can write to, e.g. LLMRL_HOME=~/.llmrl."
        ) from err
    return home


def get_cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under $LLMRL_HOME/cache."""
    path = get_home().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_artifact_dir(run_id: int) -> Path:
    """Return (and create) the folder where run `run_id` writes its files."""
    path = get_home() / "artifacts" / f"run-{run_id:05d}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_store_path() -> Path:
    """Return the path of the SQLite run store."""
    return get_home() / "runs.sqlite"
