"""The run manager: background jobs, stop, pause/resume, failures with tracebacks, the CLI path."""

from __future__ import annotations

import threading
import time

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.runs import JobContext, RunManager, StopRun, get_job
from tests.support.waiting import wait_for


def test_demo_job_completes_in_background(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 5, "delay": 0.0}, name="bg", total_steps=5)
    assert manager.wait(run_id, 20)
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["step"] == 5 and run["summary"]["steps"] == 5
    assert len(store.read_metrics_wide(run_id)) == 5
    assert len(store.read_samples(run_id)) == 5
    assert store.list_artifacts(run_id).loc[0, "kind"] == "result"
    assert store.read_logs(run_id)["message"].tolist() == ["Started.", "Completed."]


def test_stop_is_honoured_within_a_step(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 1000, "delay": 0.02})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 3)
    manager.stop(run_id)
    assert manager.wait(run_id, 5)
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and run["step"] < 1000


def test_stop_requested_through_the_store_from_elsewhere(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 1000, "delay": 0.02})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 2)
    store.request_control(run_id, "stop")  # what `runs stop` or another process does
    assert manager.wait(run_id, 5)
    assert store.get_run(run_id)["status"] == "stopped"


def test_pause_and_resume(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 60, "delay": 0.01})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 2)
    manager.pause(run_id)
    assert wait_for(lambda: store.get_run(run_id)["status"] == "paused")
    held = store.get_run(run_id)["step"]
    time.sleep(0.3)
    assert store.get_run(run_id)["step"] == held
    manager.resume(run_id)
    assert manager.wait(run_id, 20)
    assert store.get_run(run_id)["status"] == "completed"


def test_failure_is_recorded_with_traceback_and_metrics_kept(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 10, "delay": 0.0, "fail_at": 4})
    assert manager.wait(run_id, 20)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith("RuntimeError: demo failure at step 4")
    assert "Traceback" in run["error"] and "demo_job.py" in run["error"]
    assert store.read_metrics_wide(run_id)["step"].tolist() == [1, 2, 3]


def test_custom_job_and_stoprun(store):
    seen = threading.Event()

    def job(ctx: JobContext):
        seen.set()
        ctx.log_metrics(1, {"x": 1})
        raise StopRun()

    manager = RunManager(store)
    run_id, status = manager.run_foreground("custom", {}, job=job)
    assert seen.is_set() and status == "stopped"
    assert store.get_run(run_id)["status"] == "stopped"


def test_unknown_job_kind():
    with pytest.raises(InputError, match="Unknown job kind"):
        get_job("nope")


def test_close_ends_the_supervisor_once_and_for_all(store):
    manager = RunManager(store, supervise_every_s=30)  # a long sleep: close() must wake it, not wait it out
    manager.watch_store()
    supervisor = manager._supervisor
    assert supervisor is not None and supervisor.is_alive()
    started = time.monotonic()
    assert manager.close(timeout=5)
    assert not supervisor.is_alive() and time.monotonic() - started < 5
    assert manager.close()  # idempotent
    manager.watch_store()  # a closed manager starts no new supervisor
    assert manager._supervisor is supervisor and not supervisor.is_alive()
    with RunManager(store) as other:
        other.watch_store()
        assert other._supervisor.is_alive()
    assert not other._supervisor.is_alive()


def test_a_run_that_went_live_after_the_listing_is_not_failed(store, monkeypatch):
    """The cause of the once-flaky delete-refused page test: the supervisor listed a run while its owner was dead,
    waited (a loaded machine), then failed it although it had been taken over by a live process meanwhile."""
    import subprocess
    import sys

    from llmrl_core.runs.store import make_owner

    manager = RunManager(store)  # first: at start-up it marks runs of dead owners interrupted
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead_owner = make_owner(ended.pid).rsplit(":", 1)[0] + ":1"  # this host, a process that has exited
    taken_over = store.create_run("demo", "taken over", {})
    store.mark_started(taken_over, dead_owner)
    vanished = store.create_run("demo", "vanished", {})
    store.mark_started(vanished, dead_owner)
    real_list = store.list_runs

    def list_then_lose_the_race(*args, **kwargs):
        listed = real_list(*args, **kwargs)
        store.assign_owner(taken_over, make_owner())  # what happens while the supervisor waits for a core
        return listed

    monkeypatch.setattr(store, "list_runs", list_then_lose_the_race)
    manager.supervise_once(check_orphans=True)
    assert store.get_run(taken_over)["status"] == "running"
    assert store.get_run(vanished)["status"] == "failed"  # a run whose process is really gone still fails
