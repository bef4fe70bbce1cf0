"""The worker process: `python -m llmrl_core worker RUN_ID` runs one queued run to its end.

The dashboard's run manager creates a run in the store (status 'queued', with its config) and
launches this command in a process group of its own, so a run never competes with the
Streamlit server for the interpreter, and it keeps going when the server stops or restarts.
Everything crosses through the store: the worker reads the config and the control column
(stop, pause, resume) and writes metrics, samples, artifacts, logs and its final status.
SIGTERM asks for a clean stop (the job ends at its next step boundary and saves what it
saves on stop); the manager sends SIGKILL to the group only when that does not happen in time.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from llmrl_core.core.errors import InputError
from llmrl_core.runs.manager import JobContext, execute_run, get_job
from llmrl_core.runs.store import RunStore


def run_worker(run_id: int, store: RunStore) -> str:
    """Run the queued run `run_id` in this process and return its final status."""
    run = store.get_run(run_id)
    if run is None:
        raise InputError(f"No run with id {run_id} in {store.path}.")
    if run["status"] != "queued":
        raise InputError(f"Run {run_id} is {run['status']}: a worker only starts queued runs "
                         "(start a new run, or resume from one of its checkpoints).")
    ctx = JobContext(run_id, store, run["config"])

    def ask_to_stop(signum: int, frame: object) -> None:  # SIGTERM: a clean stop at the next step boundary
        ctx.stop_event.set()
        ctx.pause_event.clear()

    signal.signal(signal.SIGTERM, ask_to_stop)
    return execute_run(ctx, get_job(run["kind"]))


def _cmd_worker(args: argparse.Namespace) -> int:
    store = RunStore(Path(args.store) if args.store else None)
    status = run_worker(args.run_id, store)
    return 0 if status in {"completed", "stopped"} else 1


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register `worker RUN_ID [--store PATH]` (launched by the dashboard; rarely typed by hand)."""
    worker = sub.add_parser("worker", help="run one queued run from the store (the dashboard launches this)")
    worker.add_argument("run_id", type=int)
    worker.add_argument("--store", help="path of the run store (default: $LLMRL_HOME/runs.sqlite)")
    worker.set_defaults(func=_cmd_worker)
