"""The worker process: `python -m llmrl_core worker RUN_ID` runs one queued run to its end.

The dashboard's run manager creates a run in the store (status 'queued', with its config) and
launches this command in a process group of its own, so a run never competes with the
Streamlit server for the interpreter, and it keeps going when the server stops or restarts.
Everything crosses through the store: the worker reads the config and the control column
(stop, pause, resume) and writes metrics, samples, artifacts, logs and its final status.
SIGTERM asks for a clean stop (the job ends at its next step boundary and saves what it
saves on stop); the manager sends SIGKILL to the group only when that does not happen in time.

Under ``accelerate launch`` (a run with num_processes > 1, llmrl_core/runs/launch.py) every
process runs this command. The main process (global rank 0) reads the run, marks it started and
finished and is the only one that opens the store; it sends the run's kind and config to the
others, which run the job with a `SilentContext` that writes nothing. torchrun starts each rank
in a session of its own, so each asks to die with the launcher (the pid the manager supervises);
a stop reaches them through the store and the main process's stop broadcast.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from llmrl_core.core.errors import InputError
from llmrl_core.runs.manager import JobContext, execute_run, get_job
from llmrl_core.runs.store import RunStore


def run_worker(run_id: int, store: RunStore) -> str:
    """Run the queued run `run_id` in this process and return its final status."""
    run = _read_queued_run(run_id, store)
    ctx = JobContext(run_id, store, run["config"])
    _stop_on_sigterm(ctx)
    return execute_run(ctx, get_job(run["kind"]))


def _read_queued_run(run_id: int, store: RunStore) -> dict:
    """The run's row; InputError unless it exists and waits to be started."""
    run = store.get_run(run_id)
    if run is None:
        raise InputError(f"No run with id {run_id} in {store.path}.")
    if run["status"] != "queued":
        raise InputError(f"Run {run_id} is {run['status']}: a worker only starts queued runs "
                         "(start a new run, or resume from one of its checkpoints).")
    return run


def _stop_on_sigterm(ctx: Any) -> None:
    def ask_to_stop(signum: int, frame: object) -> None:  # SIGTERM: a clean stop at the next step boundary
        ctx.stop_event.set()
        ctx.pause_event.clear()

    signal.signal(signal.SIGTERM, ask_to_stop)


@dataclass
class SilentContext:
    """A JobContext for the non-main processes of a multi-process run: same config, writes nothing.

    Stop and pause reach them through the trainer's stop broadcast from the main process, so
    should_stop is always False here.
    """

    run_id: int
    config: dict
    stop_event: threading.Event = field(default_factory=threading.Event)
    pause_event: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return False

    def is_stop_requested(self) -> bool:
        return False

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def add_samples(self, step: int, samples: list) -> None:
        pass

    def add_artifact(self, step: int, kind: str, path: Any, meta: Mapping[str, Any] | None = None) -> None:
        pass

    def log(self, message: str, level: str = "info") -> None:
        pass

    def set_progress(self, step: int, total_steps: int | None = None) -> None:
        pass

    def close(self, status: str = "completed") -> None:
        pass


def run_distributed_worker(run_id: int, store_path: str | None) -> str:
    """One process of a run launched by ``accelerate launch``; only the main one opens the store."""
    import torch.distributed as dist

    from llmrl_core.runs.launch import init_process_group

    _die_with_launcher()
    state = init_process_group()  # waits for every process (and machine) of the launch
    payload: list[Any] = [None]
    store = ctx = None
    if state.is_main_process:
        store = RunStore(Path(store_path) if store_path else None)
        try:
            run = _read_queued_run(run_id, store)
            payload = [{"kind": run["kind"], "config": run["config"]}]
        except InputError as err:
            payload = [{"error": str(err)}]
    dist.broadcast_object_list(payload, src=0)
    message = payload[0]
    if "error" in message:
        if state.is_main_process:
            raise InputError(message["error"])
        return "failed"
    job = get_job(message["kind"])
    if state.is_main_process:
        ctx = JobContext(run_id, store, message["config"])
        _stop_on_sigterm(ctx)
        status = execute_run(ctx, job)
    else:
        ctx = SilentContext(run_id, message["config"])
        _stop_on_sigterm(ctx)  # the main process's broadcast decides; SIGTERM here only must not kill mid-step
        try:
            job(ctx)
            status = "completed"
        except Exception:  # the main process records the run's outcome; this one's traceback goes to the log
            print(f"[rank {state.process_index}] {traceback.format_exc()}", file=sys.stderr, flush=True)
            status = "failed"
    if dist.is_initialized():
        dist.destroy_process_group()  # else gloo's threads can abort the process at exit
    return status


def _die_with_launcher() -> None:
    """Ask Linux to SIGKILL this rank when its launcher dies.

    torchrun starts every rank in a session of its own, so the manager's kill of the launcher's
    process group would not reach the ranks; with PR_SET_PDEATHSIG they end with it.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import os

    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG = 1
    except OSError:
        return
    if os.getppid() != parent:  # the launcher died before the request took effect
        os._exit(1)


def _cmd_worker(args: argparse.Namespace) -> int:
    from llmrl_core.runs.launch import exit_rank, is_distributed_launch

    if args.standby:
        from llmrl_core.runs.standby import run_standby

        status = run_standby(args.standby, args.store)
        return 0 if status in {None, "completed", "stopped"} else 1
    if args.run_id is None:
        raise InputError("worker needs a run id (or --standby KIND), e.g. python -m llmrl_core worker 3")
    if is_distributed_launch():
        status = run_distributed_worker(args.run_id, args.store)
        exit_rank(0 if status in {"completed", "stopped"} else 1)
    else:
        status = run_worker(args.run_id, RunStore(Path(args.store) if args.store else None))
    return 0 if status in {"completed", "stopped"} else 1


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register `worker RUN_ID [--store PATH]` (launched by the dashboard; rarely typed by hand)."""
    worker = sub.add_parser("worker", help="run one queued run from the store (the dashboard launches this)")
    worker.add_argument("run_id", type=int, nargs="?")
    worker.add_argument("--store", help="path of the run store (default: $LLMRL_HOME/runs.sqlite)")
    worker.add_argument("--standby", metavar="KIND",
                        help="import KIND's job now, then run the run id read from stdin (the dashboard's warm worker)")
    worker.set_defaults(func=_cmd_worker)
