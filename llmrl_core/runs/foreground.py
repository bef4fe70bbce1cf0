"""Run a job in the foreground from a CLI command and print its outcome the same way for every kind."""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping


def announce_queue(store: Any, queue: bool) -> None:
    """Tell a CLI user on stderr that the run bypasses the queue while others run or wait (without --queue)."""
    from llmrl_core.runs.queue import count_used_slots, list_queue

    if queue:
        return
    used, waiting = count_used_slots(store), len(list_queue(store))
    if used or waiting:
        print(f"This run starts now and bypasses the run queue ({used} slot{'s' if used != 1 else ''} in use, "
              f"{waiting} run{'s' if waiting != 1 else ''} waiting); add --queue to wait for a free slot.",
              file=sys.stderr)


def print_queue_wait(position: int, waiting: int) -> None:
    """What a CLI run waiting in the queue shows when its place changes."""
    print(f"Waiting in the run queue: number {position} of {waiting} (Ctrl-C leaves the queue)…", file=sys.stderr)


def run_and_report(kind: str, config: Mapping[str, Any], name: str, total_steps: int | None, as_json: bool,
                   queue: bool = False) -> int:
    """Run `kind` with `config` in this process (Ctrl-C stops it cleanly), print the result, return the exit code.

    queue: wait for a free slot in the run queue first (runs/queue.py); else start at once, saying so when
    other runs hold slots or wait. Prints `run ID: status`, the summary as key=value pairs and the first
    paragraph of an error, or all of it as one JSON object with --json. Exit code 0 for completed or
    stopped runs, 1 otherwise.
    """
    from llmrl_core.runs import RunManager

    manager = RunManager()
    announce_queue(manager.store, queue)
    run_id, status = manager.run_foreground(kind, dict(config), name=name, total_steps=total_steps, queue=queue,
                                            on_wait=print_queue_wait)
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
