"""A worker started ahead of time: while runs wait in the queue, the next one's worker does its imports early.

A worker process spends about 3 s of a 2-core CPU importing torch, SB3 or transformers before its
run's first step. With runs waiting, that time would fall between one run's end and the next one's
start. So the run manager keeps one standby worker per queue: `python -m llmrl_core worker --standby
KIND`, which imports KIND's job (the heavy part) and then blocks on its stdin. When a slot frees, the
manager writes the run id there; the standby moves its output to that run's log file and runs it as
any worker would (runs/worker.run_worker). An empty line or end of file (the server closed it, or
died) ends the standby without touching anything.

One standby at a time: it hides the imports whenever the running run lasts longer than they take (a few
seconds); for runs shorter than that the next standby is still importing when the slot frees.
LLMRL_STANDBY=0 turns it off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llmrl_core.runs.store import RunStore

STANDBY_ENV = "LLMRL_STANDBY"  # "0" turns standby workers off (a machine short of memory: each holds ~300 MB)
STANDBY_LOG = "standby.log"  # beside the workers' logs: what a standby printed before it got a run


def move_output_to(path: Path) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to the end of `path` from now on."""
    sys.stdout.flush()
    sys.stderr.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def run_standby(kind: str, store_path: str | None) -> str | None:
    """Import `kind`'s job, wait for a run id on stdin, then run that run; its final status, or None without a run."""
    from llmrl_core.runs.manager import get_job, get_worker_log_path
    from llmrl_core.runs.worker import run_worker

    get_job(kind)  # the imports the run would otherwise wait for
    print(f"standby worker {os.getpid()} for {kind} runs: ready", flush=True)
    line = sys.stdin.readline().strip()
    if not line.isdigit():
        return None
    store = RunStore(Path(store_path) if store_path else None)
    run_id = int(line)
    move_output_to(get_worker_log_path(store, run_id))
    print(f"worker {os.getpid()} (started ahead of time) runs run {run_id}", flush=True)
    return run_worker(run_id, store)
