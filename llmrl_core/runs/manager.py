"""Run jobs in background threads (dashboard) or in the foreground (CLI), all through the store.

A job is a plain function ``job(ctx: JobContext) -> dict | None`` registered under a kind.
It reads its config from ``ctx.config``, reports through ``ctx`` (metrics, samples,
artifacts, logs, progress) and calls ``ctx.should_stop()`` between steps: that call blocks
while the run is paused and returns True once a stop was asked for. Whatever it returns is
saved as the run's summary. An exception marks the run failed with its traceback; metrics
already written are kept.

Stop, pause and resume work from any process: the request is written to the store and the
job's context picks it up (throttled to a few reads a second), so the dashboard can stop a
run started from the CLI.
"""

from __future__ import annotations

import importlib
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from llmrl_core.errors import InputError, WorkbenchError
from llmrl_core.runs.store import RunStore, make_owner

JobFn = Callable[["JobContext"], Mapping[str, Any] | None]

# kind -> "module:function". Modules are imported on first use, so listing a job costs nothing.
JOB_REGISTRY: dict[str, str] = {
    "demo": "llmrl_core.runs.demo_job:run_demo_job",
    "lm_rl": "llmrl_core.trainer:run_lm_rl_job",
    "gym": "llmrl_core.envs.job:run_gym_job",
}


def register_job(kind: str, target: str) -> None:
    """Register a job function, given as 'module:function', under `kind`."""
    JOB_REGISTRY[kind] = target


def get_job(kind: str) -> JobFn:
    """Import and return the job function registered for `kind`."""
    if kind not in JOB_REGISTRY:
        raise InputError(f"Unknown job kind {kind!r}; known kinds: {', '.join(sorted(JOB_REGISTRY))}.")
    module_name, func_name = JOB_REGISTRY[kind].split(":")
    return getattr(importlib.import_module(module_name), func_name)


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
        """Write one step's scalars."""
        self.store.log_metrics(self.run_id, step, metrics)

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
    store.request_control(run_id, None)
    return status


class RunManager:
    """Starts jobs in daemon threads and tracks them; one per process (the app caches it)."""

    def __init__(self, store: RunStore | None = None) -> None:
        self.store = store or RunStore()
        self._threads: dict[int, threading.Thread] = {}
        self._contexts: dict[int, JobContext] = {}
        self._lock = threading.Lock()
        self.recovered = self.store.recover_interrupted()

    def start(self, kind: str, config: Mapping[str, Any], name: str | None = None,
              total_steps: int | None = None, job: JobFn | None = None) -> int:
        """Create a run and start its job in a background thread; return the run id at once."""
        job = job or get_job(kind)
        run_id = self.store.create_run(kind, name or f"{kind} run", dict(config), total_steps)
        ctx = JobContext(run_id, self.store, dict(config))
        thread = threading.Thread(target=execute_run, args=(ctx, job), name=f"run-{run_id}", daemon=True)
        with self._lock:
            self._threads[run_id] = thread
            self._contexts[run_id] = ctx
        thread.start()
        return run_id

    def run_foreground(self, kind: str, config: Mapping[str, Any], name: str | None = None,
                       total_steps: int | None = None, job: JobFn | None = None) -> tuple[int, str]:
        """Run a job in this thread (the CLI); Ctrl-C stops it cleanly. Returns (run id, status)."""
        job = job or get_job(kind)
        run_id = self.store.create_run(kind, name or f"{kind} run", dict(config), total_steps)
        ctx = JobContext(run_id, self.store, dict(config))
        return run_id, execute_run(ctx, job)

    def stop(self, run_id: int) -> None:
        """Ask a run to stop (in this process at once, elsewhere through the store)."""
        ctx = self._contexts.get(run_id)
        if ctx:
            ctx.stop_event.set()
            ctx.pause_event.clear()
        self.store.request_control(run_id, "stop")

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

    def is_alive(self, run_id: int) -> bool:
        """True while this process is running `run_id`."""
        thread = self._threads.get(run_id)
        return bool(thread and thread.is_alive())

    def active_run_ids(self) -> list[int]:
        """Ids of runs whose threads are alive in this process."""
        with self._lock:
            return [rid for rid, t in self._threads.items() if t.is_alive()]

    def wait(self, run_id: int, timeout: float | None = None) -> bool:
        """Block until a run's thread ends; True when it did within `timeout`."""
        thread = self._threads.get(run_id)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()
