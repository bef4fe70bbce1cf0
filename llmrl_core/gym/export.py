"""Export a Gymnasium run's model: the SB3 agent .zip it saved (the "gym" kind's model_exporter)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llmrl_core.core.errors import InputError


def write_agent_zip(store: Any, run: dict, tmp: Path, **_options: Any) -> None:
    """Copy the run's newest saved agent .zip to `tmp` (merge_lora and checkpoint do not apply)."""
    agents = store.list_artifacts(run["id"], kind="agent")
    paths = [Path(p) for p in agents["path"] if Path(p).is_file()]
    if not paths:
        raise InputError(f"Run {run['id']} saved no agent on disk (it ended before training finished, or its "
                         "files were deleted), so there is nothing to export.")
    shutil.copy2(paths[-1], tmp)
