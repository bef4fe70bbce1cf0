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
