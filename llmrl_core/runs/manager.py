"""Run jobs in worker processes (dashboard), in the foreground (CLI) or in a thread (tests), all through the store.

A job is a plain function ``job(ctx: JobContext) -> dict | None``, the `job` of a run kind (kinds.py).
It reads its config from ``ctx.config``, reports through ``ctx`` (metrics, samples,
artifacts, logs, progress) and calls ``ctx.should_stop()`` between steps: that call blocks
while the run is paused and returns True once a stop was asked for. Whatever it returns is
saved as the run's summary. An exception marks the run failed with its traceback; metrics
already written are kept.

The dashboard starts each run as a worker process of its own (``python -m llmrl_core worker
RUN_ID``, see worker.py) in a new session, so training never shares the server's interpreter
and cores with page reruns, Ctrl-C on the server's terminal does not reach it, and it outlives
the server. A supervisor thread in the manager notices a worker that dies without recording an
outcome (exit code, signal) and marks its run failed with the last lines of its output; after
a worker ends it kills what is left of its process group (e.g. the custom-reward sandbox).

Stop, pause and resume work from any process: the request is written to the store and the
job's context picks it up (throttled to a few reads a second), so the dashboard can stop a
run started from the CLI, and a restarted dashboard can stop a worker launched by the old one.

Runs the dashboard starts wait in the run queue (queue.py) until a slot is free; the supervisor starts
them in order as slots free, also after a server restart. CLI runs start at once unless asked to queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.runs.kinds import get_kind, load_part, register_kind
from llmrl_core.runs.store import ACTIVE_STATUSES, RunStore, is_owner_alive, make_owner, parse_owner_pid
from llmrl_core.runs.queue import cancel, claim_next, enqueue, get_queue_position, has_waiting, read_queue_head
from llmrl_core.runs.standby import STANDBY_ENV, STANDBY_LOG
from llmrl_core.runs.sweeps import advance_sweeps, has_running_sweeps

JobFn = Callable[["JobContext"], Mapping[str, Any] | None]
QUEUE_POLL_S = 1.0  # how often a CLI run waiting in the queue looks for its turn
QUEUE_LAUNCH_LOG = "Left the run queue"  # the log line of a dispatch (bench/bench_queue.py times the gaps by it)
HANDED_LOG = "Handed to a worker started ahead of time."

def register_job(kind: str, target: str) -> None:
    """Register a job function (or a RunKindSpec), given as 'module:attr', under `kind`; see kinds.register_kind."""
    register_kind(kind, target)


def get_job(kind: str) -> JobFn:
    """Import and return the job function of kind `kind` (its spec's `job`)."""
    return load_part(get_kind(kind), "job")


class StopRun(Exception):
    """Raised inside a job to end it early as 'stopped' (e.g. from deep inside a callback)."""


@dataclass
class JobContext:
    """What a running job sees: its config, the store, and the stop/pause signals."""

    run_id: int
    store: RunStore
    config: dict
    stop_event: threading.Event = field(default_factory=threading.Event)
    pause_event: threading.Event = field(default_factory=threading.Event)
    control_poll_seconds: float = 0.25
    _last_poll: float = 0.0
    _trackers: Any = None  # trackers.Trackers, opened on the first log_metrics when the config has report_to

    # ---------------------------------------------------------------- signals

    def _poll_control(self) -> None:
        """Pick up stop/pause/resume written to the store by another thread or process."""
        now = time.monotonic()
        if now - self._last_poll < self.control_poll_seconds:
            return
        self._last_poll = now
        command = self.store.read_control(self.run_id)
        if command == "stop":
            self.stop_event.set()
            self.pause_event.clear()
        elif command == "pause":
            self.pause_event.set()
        elif command == "resume":
            self.pause_event.clear()
            self.store.request_control(self.run_id, None)

    def should_stop(self) -> bool:
        """True once stop was asked for; while paused, blocks until resumed or stopped."""
        self._poll_control()
        if self.pause_event.is_set() and not self.stop_event.is_set():
            self.store.set_status(self.run_id, "paused")
            self.store.add_log(self.run_id, "Paused.")
            while self.pause_event.is_set() and not self.stop_event.is_set():
                time.sleep(0.1)
                self._last_poll = 0.0
                self._poll_control()
            if not self.stop_event.is_set():
                self.store.set_status(self.run_id, "running")
                self.store.add_log(self.run_id, "Resumed.")
        return self.stop_event.is_set()

    def is_stop_requested(self) -> bool:
        """Non-blocking check for stop (for hot loops that must not pause mid-step)."""
        self._poll_control()
        return self.stop_event.is_set()

    # ---------------------------------------------------------------- reporting

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Write one step's scalars, and mirror them to the trackers in the config's ``report_to``."""
        self.store.log_metrics(self.run_id, step, metrics)
        if self._trackers is None and self.config.get("report_to"):
            self._trackers = self._open_trackers()
        if self._trackers is not None:
            self._trackers.log(step, metrics)

    def _open_trackers(self) -> Any:
        """Open the run's trackers (an unknown, missing or unreachable one raises InputError: the run fails)."""
        from llmrl_core.runs.trackers import get_tracker_home, open_trackers

        run = self.store.get_run(self.run_id) or {}
        trackers = open_trackers(self.config["report_to"], f"run-{self.run_id:05d}", self.config, get_tracker_home(),
                                 warn=lambda message: self.log(message, "warning"),
                                 tags={"llmrl.run_id": str(self.run_id), "llmrl.kind": str(run.get("kind", "")),
                                       "llmrl.name": str(run.get("name", ""))})
        self.log(f"Reporting metrics to {', '.join(trackers.names)}.")
        return trackers

    def close(self, status: str = "completed") -> None:
        """End the run's tracker runs (flushing their files); called once the job has ended."""
        if self._trackers is not None:
            self._trackers.close(status)

    def add_samples(self, step: int, samples: list[Mapping[str, Any]]) -> None:
        """Write generations with their rewards."""
        self.store.add_samples(self.run_id, step, samples)

    def add_artifact(self, step: int, kind: str, path: Any, meta: Mapping[str, Any] | None = None) -> None:
        """Record a file the job wrote."""
        self.store.add_artifact(self.run_id, step, kind, path, meta)

    def log(self, message: str, level: str = "info") -> None:
        """Append a human-readable line to the run's log."""
        self.store.add_log(self.run_id, message, level)

    def set_progress(self, step: int, total_steps: int | None = None) -> None:
        """Report progress for bars and ETA."""
        self.store.set_progress(self.run_id, step, total_steps)


def execute_run(ctx: JobContext, job: JobFn) -> str:
    """Run `job` to its end and record the outcome; return the final status. Never raises."""
    store, run_id = ctx.store, ctx.run_id
    store.mark_started(run_id, make_owner())
    store.add_log(run_id, "Started.")
    status = "failed"
    try:
        summary = job(ctx)
        status = "stopped" if ctx.stop_event.is_set() else "completed"
        if summary:
            store.set_summary(run_id, summary)
        store.set_status(run_id, status)
        store.add_log(run_id, "Stopped by request." if status == "stopped" else "Completed.")
    except StopRun:
        status = "stopped"
        store.set_status(run_id, status)
        store.add_log(run_id, "Stopped by request.")
    except KeyboardInterrupt:
        status = "stopped"
        store.set_status(run_id, status, error="Interrupted from the keyboard.")
        store.add_log(run_id, "Interrupted from the keyboard.", "warning")
    except Exception as err:  # a job failure must be recorded, never crash the app
        status = "failed"
        headline = str(err) if isinstance(err, WorkbenchError) else f"{type(err).__name__}: {err}"
        store.set_status(run_id, status, error=f"{headline}\n\n{traceback.format_exc()}")
        store.add_log(run_id, f"Failed: {headline}", "error")
    finally:
        ctx.close(status)
    store.request_control(run_id, None)
    return status


_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # so a worker imports this llmrl_core, wherever it runs
STOP_GRACE_S = 30.0  # a stop is cooperative (the job ends its step and saves); after this the group is killed
LOG_TAIL_LINES = 20


def get_worker_log_path(store: RunStore, run_id: int) -> Path:
    """Where a worker's stdout and stderr go: beside the store, one file per run (kept after the run)."""
    return store.path.parent / "workers" / f"run-{run_id:05d}.log"


def read_log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a worker's output ('' when there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def describe_exit(returncode: int) -> str:
    """A sentence for how a worker process ended without recording its run's outcome."""
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGKILL:
            return (f"The worker process was killed ({name}). Unless someone killed it, this is the kernel's "
                    "out-of-memory killer: lower the batch settings (prompts per step, generations per prompt, "
                    "max new tokens), train with LoRA, or pick a smaller model.")
        if sig == signal.SIGSEGV:
            return f"The worker process crashed ({name}, a fault in native code)."
        return f"The worker process was ended by {name}."
    return f"The worker process exited with status {returncode} without recording how the run ended."


def _signal_group(pid: int, sig: int) -> bool:
    """Send `sig` to the process group led by `pid`; False when the group is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@dataclass
class _Worker:
    """A worker process this manager launched."""

    run_id: int
    proc: subprocess.Popen
    log_path: Path


@dataclass
class _Standby:
    """A worker started ahead of time for the next waiting run's kind (runs/standby.py)."""

    job_kind: str  # the run kind whose job it imported
    proc: subprocess.Popen


class RunManager:
    """Launches runs as worker processes and supervises them; one per server process (the app caches it)."""

    def __init__(self, store: RunStore | None = None, stop_grace_s: float = STOP_GRACE_S,
                 supervise_every_s: float = 0.5) -> None:
        self.store = store or RunStore()
        self.stop_grace_s = stop_grace_s
        self.supervise_every_s = supervise_every_s
        self._threads: dict[int, threading.Thread] = {}
        self._contexts: dict[int, JobContext] = {}
        self._workers: dict[int, _Worker] = {}
        self._stops: dict[int, float] = {}  # run id -> when stop was asked (for the escalation to a kill)
        self._standby: _Standby | None = None  # the next waiting run's worker, its imports done (runs/standby.py)
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._closed = threading.Event()  # set by close(): the supervisor ends and is not started again
        self.recovered = self.store.recover_interrupted()

    # ------------------------------------------------------------------ starting

    def start(self, kind: str, config: Mapping[str, Any], name: str | None = None,
              total_steps: int | None = None, job: JobFn | None = None) -> int:
        """Create a run and start it in a worker process; return the run id at once.

        With `job` (a callable, which cannot cross a process boundary) the run goes to a thread of
        this process instead: for tests and for code that embeds the manager.
        """
        if job is not None:
            return self._start_thread(kind, config, name, total_steps, job)
        get_job(kind)  # an unknown kind fails here, before a run exists
        run_id = self.store.create_run(kind, name or f"{kind} run", dict(config), total_steps)
        enqueue(self.store, run_id)  # it starts now when a slot is free, else when one frees (runs/queue.py)
        self.dispatch(just_started=run_id)
        self._ensure_supervisor()
        return run_id

    def start_waiting(self) -> list[int]:
        """Start what the queue allows now and keep the supervisor running, so runs queued straight into the store
        (a sweep's trials) start in order; returns the ids started now."""
        started = self.dispatch()
        self._ensure_supervisor()
        return started

    def dispatch(self, just_started: int | None = None) -> list[int]:
        """Start waiting runs in queue order while slots are free; returns the ids started (the supervisor calls
        it every pass, so a run that ends makes room for the next within a pass). Each run that waited logs
        how long; `just_started`, a run Start queued a moment ago, does not when it starts at once."""
        started: list[int] = []
        while not self._closed.is_set() and has_waiting(self.store):
            run_id = claim_next(self.store, make_owner())
            if run_id is None:
                break
            if run_id != just_started:
                run = self.store.get_run(run_id) or {}
                waited = time.time() - float(run.get("created") or time.time())
                self.store.add_log(run_id, f"{QUEUE_LAUNCH_LOG} after waiting {waited:.1f} s; launching its worker.")
            try:
                self._launch_worker(run_id)
            except WorkbenchError:
                continue  # the run is failed with the reason; the next one may start
            started.append(run_id)
        if not self._closed.is_set():
            self._prepare_standby()
        return started

    def _prepare_standby(self) -> None:
        """While a run of ours waits at the head of the queue, keep one worker for its kind warm; none otherwise."""
        head = None
        first = read_queue_head(self.store) if os.environ.get(STANDBY_ENV, "1") != "0" else None
        if first is not None and not first["owner"] and first["slots"] == 1:  # a CLI's run is its own
            head = str(first["kind"])
        with self._lock:
            standby = self._standby
            if standby is not None and standby.job_kind == head and standby.proc.poll() is None:
                return
            self._standby = None
        if standby is not None:
            _end_standby(standby)
        if head is None:
            return
        log_path = get_worker_log_path(self.store, 0).with_name(STANDBY_LOG)
        command = [sys.executable, "-m", "llmrl_core", "worker", "--standby", head, "--store", str(self.store.path)]
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=_PACKAGE_PARENT, env=self._worker_env(), start_new_session=True)
        except OSError:
            return  # no standby: the next run's worker starts the usual way
        with self._lock:
            self._standby = _Standby(head, proc)

    def _hand_to_standby(self, run_id: int, run_kind: str, log_path: Path) -> bool:
        """Give `run_id` to the warm worker when it waits for runs of `run_kind`; False when there is none to give."""
        with self._lock:
            standby, self._standby = self._standby, None
        if standby is None:
            return False
        if standby.job_kind != run_kind or standby.proc.poll() is not None:
            _end_standby(standby)
            return False
        try:
            standby.proc.stdin.write(f"{run_id}\n".encode())
            standby.proc.stdin.close()
        except OSError:
            _end_standby(standby)
            return False
        self.store.assign_owner(run_id, make_owner(standby.proc.pid))
        with self._lock:
            self._workers[run_id] = _Worker(run_id, standby.proc, log_path)
        self.store.add_log(run_id, HANDED_LOG)
        return True

    def _worker_env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONUNBUFFERED="1",
                    PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")])))

    def _launch_worker(self, run_id: int) -> None:
        """Start `python -m llmrl_core worker RUN_ID` in a new session; a failure to launch fails the run."""
        log_path = get_worker_log_path(self.store, run_id)
        env = self._worker_env()
        command = [sys.executable, "-m", "llmrl_core", "worker", str(run_id), "--store", str(self.store.path)]
        run = self.store.get_run(run_id) or {}
        config = run.get("config") or {}
        if int(config.get("num_processes", 1) or 1) > 1:  # the same worker on every process, through accelerate launch
            command, launch_env = self._make_accelerate_launch(run_id, config)
            env.update(launch_env)
        elif self._hand_to_standby(run_id, str(run.get("kind")), log_path):
            return
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=_PACKAGE_PARENT, env=env, start_new_session=True)
        except OSError as err:
            self.store.set_status(run_id, "failed", error=f"Could not start the worker process: {err}")
            self.store.add_log(run_id, f"Failed: could not start the worker process ({err}).", "error")
            raise WorkbenchError(f"Could not start a worker process for run {run_id}: {err}") from err
        self.store.assign_owner(run_id, make_owner(proc.pid))
        with self._lock:
            self._workers[run_id] = _Worker(run_id, proc, log_path)

    def _make_accelerate_launch(self, run_id: int, config: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        return make_accelerate_launch(self.store, run_id, config)

    def _start_thread(self, kind: str, config: Mapping[str, Any], name: str | None,
                      total_steps: int | None, job: JobFn) -> int:
        run_id = self.store.create_run(kind, name or f"{kind} run", dict(config), total_steps)
        ctx = JobContext(run_id, self.store, dict(config))
        thread = threading.Thread(target=execute_run, args=(ctx, job), name=f"run-{run_id}", daemon=True)
        with self._lock:
            self._threads[run_id] = thread
            self._contexts[run_id] = ctx
        thread.start()
        return run_id

    def run_foreground(self, kind: str, config: Mapping[str, Any], name: str | None = None,
                       total_steps: int | None = None, job: JobFn | None = None, queue: bool = False,
                       on_wait: Callable[[int, int], None] | None = None) -> tuple[int, str]:
        """Run a job in this thread (the CLI); Ctrl-C stops it cleanly. Returns (run id, status).

        queue: wait in the run queue for this run's turn and a free slot first (`on_wait(position, waiting)` is
        called when the position changes); Ctrl-C while waiting cancels it. Without it the run starts at once,
        beside whatever runs (the CLI says so).
        """
        job = job or get_job(kind)
        run_id = self.store.create_run(kind, name or f"{kind} run", dict(config), total_steps)
        if queue:
            owner = make_owner()
            enqueue(self.store, run_id, owner=owner)
            try:
                self._wait_for_turn(run_id, owner, on_wait)
            except KeyboardInterrupt:
                try:
                    cancel(self.store, run_id)
                except InputError:  # already cancelled from elsewhere (the Runs page, `runs cancel`)
                    pass
                return run_id, "stopped"
        ctx = JobContext(run_id, self.store, dict(config))
        return run_id, execute_run(ctx, job)

    def run_queued_foreground(self, run_id: int, owner: str,
                              on_wait: Callable[[int, int], None] | None = None) -> str:
        """Run a run this process queued earlier (with `owner`, e.g. a sweep's trial from the CLI) in this thread,
        once it is at the head of the queue and a slot is free; returns its final status ('stopped' when it was
        cancelled from elsewhere while waiting; Ctrl-C while waiting cancels it and raises KeyboardInterrupt)."""
        run = self.store.get_run(run_id)
        if run is None:
            raise InputError(f"No run with id {run_id}.")
        try:
            self._wait_for_turn(run_id, owner, on_wait)
        except KeyboardInterrupt:
            if get_queue_position(self.store, run_id) is None:  # cancelled from elsewhere: the caller goes on
                return "stopped"
            cancel(self.store, run_id)  # Ctrl-C here: the run leaves the queue, the caller hears of it
            raise
        ctx = JobContext(run_id, self.store, dict(run["config"]))
        return execute_run(ctx, get_job(run["kind"]))

    def _wait_for_turn(self, run_id: int, owner: str, on_wait: Callable[[int, int], None] | None) -> None:
        """Poll the queue until this process may start `run_id` (it claims it)."""
        shown = None
        while claim_next(self.store, owner, run_id=run_id) is None:
            place = get_queue_position(self.store, run_id)
            if place is None:  # cancelled from elsewhere (the Runs page, `runs cancel`)
                raise KeyboardInterrupt
            if on_wait is not None and place != shown:
                on_wait(*place)
                shown = place
            time.sleep(QUEUE_POLL_S)

    # ------------------------------------------------------------------ control

    def stop(self, run_id: int) -> None:
        """Ask a run to stop (through the store, so any process sees it); a worker that ignores it is killed later.
        A run still waiting in the queue leaves it instead (it never starts)."""
        if get_queue_position(self.store, run_id) is not None:
            try:
                cancel(self.store, run_id)
                return
            except InputError:  # it started meanwhile: stop it as any running run
                pass
        ctx = self._contexts.get(run_id)
        if ctx:
            ctx.stop_event.set()
            ctx.pause_event.clear()
        self.store.request_control(run_id, "stop")
        with self._lock:
            self._stops.setdefault(run_id, time.monotonic())
        self._ensure_supervisor()

    def kill(self, run_id: int) -> bool:
        """End a run's worker process group at once (SIGKILL); False when no live worker of it is known."""
        pid = self._worker_pid(run_id)
        return bool(pid) and _signal_group(pid, signal.SIGKILL)

    def pause(self, run_id: int) -> None:
        """Ask a run to pause at its next step boundary."""
        ctx = self._contexts.get(run_id)
        if ctx:
            ctx.pause_event.set()
        self.store.request_control(run_id, "pause")

    def resume(self, run_id: int) -> None:
        """Let a paused run go on."""
        ctx = self._contexts.get(run_id)
        if ctx:
            ctx.pause_event.clear()
        self.store.request_control(run_id, "resume")

    # ------------------------------------------------------------------ state

    def _worker_pid(self, run_id: int) -> int | None:
        """The pid of the process running `run_id`: a worker we launched, or the owner recorded in the store."""
        worker = self._workers.get(run_id)
        if worker is not None:
            return worker.proc.pid if worker.proc.poll() is None else None
        run = self.store.get_run(run_id)
        if not run or run["status"] not in ACTIVE_STATUSES or not is_owner_alive(run["owner"]):
            return None
        pid = parse_owner_pid(run["owner"])
        # Only a process that leads its own group is a worker; never signal a CLI's or the server's group.
        return pid if pid and pid != os.getpid() and _is_group_leader(pid) else None

    def is_alive(self, run_id: int) -> bool:
        """True while `run_id` runs in a thread of this process or in a worker process."""
        thread = self._threads.get(run_id)
        if thread is not None:
            return thread.is_alive()
        worker = self._workers.get(run_id)
        if worker is not None:
            return worker.proc.poll() is None
        run = self.store.get_run(run_id)
        return bool(run and run["status"] in ACTIVE_STATUSES and is_owner_alive(run["owner"]))

    def active_run_ids(self) -> list[int]:
        """Ids of runs this manager started (threads or workers) that are still going."""
        with self._lock:
            ids = [rid for rid, t in self._threads.items() if t.is_alive()]
            ids += [rid for rid, w in self._workers.items() if w.proc.poll() is None]
        return sorted(ids)

    def wait(self, run_id: int, timeout: float | None = None) -> bool:
        """Block until a run's thread or worker ends (its outcome recorded); True when it did within `timeout`."""
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        worker = self._workers.get(run_id)
        if worker is not None:
            try:
                worker.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            self._reap(worker)
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_alive(run_id):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    # ------------------------------------------------------------------ supervision

    def _ensure_supervisor(self) -> None:
        """Start the supervisor thread once (the server's background thread that watches workers); not after close()."""
        with self._lock:
            if self._closed.is_set():
                return
            if self._supervisor is None or not self._supervisor.is_alive():
                self._supervisor = threading.Thread(target=self._supervise_until_closed, name="run-supervisor",
                                                    daemon=True)
                self._supervisor.start()

    @property
    def closed(self) -> bool:
        """True once close() was called (the supervisor has ended or is ending)."""
        return self._closed.is_set()

    def watch_store(self) -> None:
        """Also supervise runs launched by an earlier server (re-attached after a restart)."""
        self._ensure_supervisor()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the supervisor thread and wait up to `timeout` s for it to end; True when it has. Idempotent.

        A manager that is replaced (the app's cached one cleared, a test's fixture torn down) must be closed,
        or its thread keeps polling a store nobody reads. Workers are left running: they outlive a server by
        design, and a later manager's supervisor (watch_store) takes them over. Runs in threads of this
        process are left to end on their own (stop them first to end them early).
        """
        self._closed.set()
        with self._lock:
            thread = self._supervisor
            standby, self._standby = self._standby, None
        if standby is not None:
            _end_standby(standby)
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> "RunManager":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _supervise_until_closed(self) -> None:
        passes = 0
        while not self._closed.is_set():
            try:
                self.supervise_once(check_orphans=passes % 4 == 0)  # the store-wide check every few passes
            except Exception as err:  # the supervisor must outlive a locked store or a bad row
                print(f"run supervisor: {type(err).__name__}: {err}", file=sys.stderr)
            passes += 1
            self._closed.wait(self.supervise_every_s)

    def supervise_once(self, check_orphans: bool = True) -> None:
        """One pass: reap ended workers, escalate stops that were ignored, fail runs whose process vanished."""
        with self._lock:
            workers = list(self._workers.values())
            stops = dict(self._stops)
        for worker in workers:
            if worker.proc.poll() is not None:
                self._reap(worker)
        if has_running_sweeps(self.store):  # TPE's next trials, pruning, sweeps that ended (runs/sweeps.py)
            advance_sweeps(self.store)
        self.dispatch()
        now = time.monotonic()
        for run_id, asked in stops.items():
            pid = self._worker_pid(run_id)
            if pid is None:
                with self._lock:
                    self._stops.pop(run_id, None)
            elif now - asked > self.stop_grace_s + 5:
                _signal_group(pid, signal.SIGKILL)
            elif now - asked > self.stop_grace_s:
                _signal_group(pid, signal.SIGTERM)
        if check_orphans:
            self._fail_vanished_runs()

    def _reap(self, worker: _Worker) -> None:
        """Record how an ended worker went (if it could not) and clear its process group; idempotent."""
        with self._lock:
            if self._workers.get(worker.run_id) is not worker:
                return
            del self._workers[worker.run_id]
        returncode = worker.proc.wait()
        _signal_group(worker.proc.pid, signal.SIGKILL)  # leftovers of the group, e.g. a custom-reward sandbox
        run = self.store.get_run(worker.run_id)
        if run and run["status"] in ACTIVE_STATUSES:
            self._record_vanished(worker.run_id, describe_exit(returncode), worker.log_path)

    def _fail_vanished_runs(self) -> None:
        """Fail active runs whose process (launched by an earlier server, or a CLI) is gone without a word."""
        runs = self.store.list_runs(statuses=ACTIVE_STATUSES)
        for listed in runs.itertuples():
            run_id = int(listed.id)
            waiting = listed.queue_pos is not None and listed.queue_pos == listed.queue_pos  # not None, not NaN
            if waiting or run_id in self._workers or run_id in self._threads or is_owner_alive(listed.owner):
                continue
            # The listing may be old by now (this thread can wait long for a core or the GIL): a run that ended,
            # or went live again under a new owner (a resume, a re-launch), meanwhile is not failed.
            run = self.store.get_run(run_id)
            if not run or run["status"] not in ACTIVE_STATUSES or is_owner_alive(run["owner"]):
                continue
            if not run["owner"] and time.time() - float(run["created"]) < 60:  # being launched right now
                continue
            pid = parse_owner_pid(run["owner"])
            if pid:
                _signal_group(pid, signal.SIGKILL)
            self._record_vanished(run_id, "The process running this run ended without recording how the run ended.",
                                  get_worker_log_path(self.store, run_id))

    def _record_vanished(self, run_id: int, headline: str, log_path: Path) -> None:
        run = self.store.get_run(run_id) or {}
        machines = int((run.get("config") or {}).get("num_machines") or 1)
        if not run.get("started") and machines > 1:  # it never started: the other machines did not join
            headline += (f" The run waited for its {machines - 1} other machine(s), which never joined within "
                         f"{RENDEZVOUS_TIMEOUT_S // 60} minutes: run the command from the run's log on each of them "
                         "(same workbench, same config file), check that they reach main_process_ip:main_process_port, "
                         "then start the run again.")
        tail = read_log_tail(log_path)
        error = headline + (f"\n\nLast lines of the worker's output ({log_path}):\n{tail}" if tail else "")
        self.store.set_status(run_id, "failed", error=error)
        self.store.add_log(run_id, f"Failed: {headline}", "error")
        self.store.request_control(run_id, None)


def _end_standby(standby: _Standby) -> None:
    """Close a standby worker's stdin (it exits without a run) and collect it when it is quick about it."""
    try:
        standby.proc.stdin.close()
    except OSError:
        pass
    try:
        standby.proc.wait(timeout=2)
    except subprocess.TimeoutExpired:  # still importing: it reads end of file and exits once done
        pass


RENDEZVOUS_TIMEOUT_S = 600  # torchrun's static rendezvous waits this long for the other machines (its default)


def make_accelerate_launch(store: RunStore, run_id: int, config: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Write run `run_id`'s Accelerate config beside its artifacts; return the launch argv and extra environment.

    The launcher (``python -m accelerate.commands.launch``) is the worker pid. torchrun starts each
    rank in a session of its own, and each rank dies with the launcher (worker.py), so stop
    escalation and kill of the launcher's group reach them all. For several machines the
    commands to run on the others go to the run's log; torchrun's static rendezvous waits for them
    RENDEZVOUS_TIMEOUT_S, then the launcher exits and the run fails with its output.
    """
    from llmrl_core.core.paths import get_artifact_dir
    from llmrl_core.runs.launch import uses_cpu
    from llmrl_core.runs.launch import (build_launch_command, describe_other_machine_commands,
                                        get_launch_env, write_accelerate_config)

    num_processes = int(config["num_processes"])
    num_machines = int(config.get("num_machines", 1) or 1)
    ip = config.get("main_process_ip") or None
    # one machine: any free port, so two runs (or a run and a test) never meet on 29500
    port = int(config.get("main_process_port", 29500)) if num_machines > 1 else _find_free_port()
    use_cpu = uses_cpu(str(config.get("device", "auto")))
    folder = get_artifact_dir(run_id)
    path = write_accelerate_config(folder / "accelerate.yaml", strategy=config.get("distributed_strategy", "ddp"),
                                   num_processes=num_processes, num_machines=num_machines, main_process_ip=ip,
                                   main_process_port=port, use_cpu=use_cpu)
    command = build_launch_command(run_id, config_path=path, num_processes=num_processes, num_machines=num_machines,
                                   main_process_ip=ip, main_process_port=port, store_path=store.path)
    store.add_log(run_id, f"Launching {num_processes} processes on {num_machines} machine(s) through "
                          f"accelerate launch (config {path}).")
    if num_machines > 1:
        others = describe_other_machine_commands(run_id, config_path=path, num_processes=num_processes,
                                                 num_machines=num_machines, main_process_ip=ip,
                                                 main_process_port=port, use_cpu=use_cpu)
        store.add_log(run_id, f"Waiting up to {RENDEZVOUS_TIMEOUT_S // 60} minutes for {num_machines - 1} other "
                              f"machine(s) to join {ip}:{port}; if they do not, the run fails with the launcher's "
                              f"message. Copy {path} to the same path on each and run:\n" + "\n".join(others))
    return command, {**get_launch_env(use_cpu), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def _find_free_port() -> int:
    """A TCP port nothing listens on now (for a one-machine launch's rendezvous)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_group_leader(pid: int) -> bool:
    """True when `pid` leads its own process group (how workers are started)."""
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False
