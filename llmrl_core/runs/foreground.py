"""Run a job in the foreground from a CLI command and print its outcome the same way for every kind."""

from __future__ import annotations

import json
from typing import Any, Mapping


def run_and_report(kind: str, config: Mapping[str, Any], name: str, total_steps: int | None, as_json: bool) -> int:
    """Run `kind` with `config` in this process (Ctrl-C stops it cleanly), print the result, return the exit code.

    Prints `run ID: status`, the summary as key=value pairs and the first paragraph of an error, or all
    of it as one JSON object with --json. Exit code 0 for completed or stopped runs, 1 otherwise.
    """
    from llmrl_core.runs import RunManager

    manager = RunManager()
    run_id, status = manager.run_foreground(kind, dict(config), name=name, total_steps=total_steps)
    run = manager.store.get_run(run_id) or {}
    summary = run.get("summary") or {}
    if as_json:
        print(json.dumps({"run_id": run_id, "status": status, "summary": summary, "error": run.get("error")}, indent=2))
    else:
        print(f"run {run_id}: {status}")
        if summary:
            print(", ".join(f"{k}={v}" for k, v in summary.items()))
        if status == "failed" and run.get("error"):
            print(run["error"].split("\n\n")[0])
    return 0 if status in {"completed", "stopped"} else 1
