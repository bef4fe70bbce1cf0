"""Run `python -m llmrl_core ...` as a user would: a subprocess with its own workbench home, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """The finished process (stdout, stderr, returncode) of the workbench CLI with these arguments."""
    env = {**os.environ, "LLMRL_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "llmrl_core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
