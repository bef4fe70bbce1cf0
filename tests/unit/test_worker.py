"""Runs in worker processes: completion, kill -9, stop ends the process group, runs outlive the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmrl_core.runs import RunManager, RunStore, register_job
from llmrl_core.runs.manager import describe_exit, get_worker_log_path
from llmrl_core.runs.store import parse_owner_pid
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _pid_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _worker_pid(store: RunStore, run_id: int) -> int:
    pid = parse_owner_pid(store.get_run(run_id)["owner"])
    assert pid and pid != os.getpid()
    return pid


def test_worker_runs_a_job_to_completion_in_its_own_process_group(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 5, "delay": 0.0}, name="in a worker", total_steps=5)
    pid = _worker_pid(store, run_id)
    assert manager.wait(run_id, 60)
    run = store.get_run(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["step"] == 5 and len(store.read_metrics_wide(run_id)) == 5
    assert parse_owner_pid(run["owner"]) == pid  # the worker marked itself the owner
    assert manager.active_run_ids() == []


def test_kill_9_marks_the_run_failed_and_keeps_every_recorded_step(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 100_000, "delay": 0.02})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 5)
    os.kill(_worker_pid(store, run_id), signal.SIGKILL)  # what the kernel's OOM killer does
    assert manager.wait(run_id, 10)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "killed (SIGKILL)" in run["error"] and "out-of-memory" in run["error"]
    recorded = store.read_metrics_wide(run_id)["step"].tolist()
    assert recorded == list(range(1, len(recorded) + 1)) and len(recorded) >= 5
    assert "Failed: The worker process was killed" in store.read_logs(run_id)["message"].iloc[-1]


def test_the_supervisor_thread_notices_a_dead_worker_without_wait(store, workbench_home):
    manager = RunManager(store, supervise_every_s=0.1)
    run_id = manager.start("demo", {"steps": 100_000, "delay": 0.02})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 2)
    os.kill(_worker_pid(store, run_id), signal.SIGSEGV)
    assert wait_for(lambda: store.get_run(run_id)["status"] == "failed", 10)
    assert "crashed (SIGSEGV" in store.get_run(run_id)["error"]


def test_a_failing_job_keeps_its_traceback_and_the_worker_log_is_kept(store, workbench_home):
    manager = RunManager(store)
    run_id = manager.start("demo", {"steps": 10, "delay": 0.0, "fail_at": 3})
    assert manager.wait(run_id, 60)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "demo failure at step 3" in run["error"] and "Traceback" in run["error"]
    assert get_worker_log_path(store, run_id).is_file()


def test_stop_ends_the_whole_process_group_sandbox_included(store, workbench_home):
    register_job("sandbox_holder", "tests.support.worker_jobs:run_sandbox_holder_job")
    manager = RunManager(store)
    run_id = manager.start("sandbox_holder", {})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 2, 60), store.get_run(run_id)
    logs = store.read_logs(run_id)["message"]
    sandbox_pid = int(next(m for m in logs if m.startswith("sandbox pid")).split()[-1])
    worker_pid = _worker_pid(store, run_id)
    assert _pid_running(sandbox_pid) and os.getpgid(sandbox_pid) == worker_pid  # in the worker's group
    asked = time.monotonic()
    manager.stop(run_id)
    assert manager.wait(run_id, 10)
    assert time.monotonic() - asked < 5
    assert store.get_run(run_id)["status"] == "stopped"
    assert wait_for(lambda: not _pid_running(sandbox_pid), 5), "the sandbox outlived its worker"


def test_a_worker_that_ignores_stop_is_killed_after_the_grace_period(store, workbench_home):
    register_job("stubborn", "tests.support.worker_jobs:run_stubborn_job")
    manager = RunManager(store, stop_grace_s=1.0, supervise_every_s=0.1)
    run_id = manager.start("stubborn", {})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 2, 60)
    manager.stop(run_id)
    assert manager.wait(run_id, 15)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "SIGKILL" in run["error"]


def test_runs_outlive_the_server_and_a_new_server_reattaches(store, workbench_home):
    """A 'server' process starts a run and exits; the run goes on; a new manager sees it and can stop it."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from llmrl_core.runs import RunManager, RunStore
        manager = RunManager(RunStore({str(store.path)!r}))
        print(manager.start("demo", {{"steps": 100000, "delay": 0.05}}, name="outlives"), flush=True)
    """)
    server = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert server.returncode == 0, server.stderr
    run_id = int(server.stdout.split()[-1])
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 3, 60), store.get_run(run_id)
    step = store.get_run(run_id)["step"]

    manager = RunManager(store)  # the restarted server
    assert run_id not in manager.recovered
    assert store.get_run(run_id)["status"] == "running"
    assert wait_for(lambda: store.get_run(run_id)["step"] > step + 3), "the run stopped advancing"
    assert manager.is_alive(run_id)
    manager.pause(run_id)
    assert wait_for(lambda: store.get_run(run_id)["status"] == "paused", 10)
    manager.resume(run_id)
    assert wait_for(lambda: store.get_run(run_id)["status"] == "running", 10)
    manager.stop(run_id)
    assert manager.wait(run_id, 10)
    assert store.get_run(run_id)["status"] == "stopped"


def test_a_reattached_worker_killed_later_is_failed_by_the_new_supervisor(store, workbench_home):
    first = RunManager(store)
    run_id = first.start("demo", {"steps": 100000, "delay": 0.05})
    assert wait_for(lambda: store.get_run(run_id)["step"] >= 2, 60)
    first._workers.clear()  # forget it, as a server that exited would
    second = RunManager(store)
    os.kill(_worker_pid(store, run_id), signal.SIGKILL)
    time.sleep(0.3)
    second.supervise_once()
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "ended without recording" in run["error"]


def test_describe_exit_names_the_signal():
    assert "SIGKILL" in describe_exit(-9) and "out-of-memory" in describe_exit(-9)
    assert "status 3" in describe_exit(3)
    assert "SIGTERM" in describe_exit(-15)


def test_worker_refuses_a_run_that_is_not_queued(store, workbench_home, capsys):
    from llmrl_core.cli import main

    run_id = store.create_run("demo", "done already", {"steps": 1})
    store.set_status(run_id, "completed")
    assert main(["worker", str(run_id), "--store", str(store.path)]) == 2
    assert "only starts queued runs" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["no_such_kind"])
def test_unknown_kind_fails_before_a_run_exists(store, kind):
    from llmrl_core.core.errors import InputError

    with pytest.raises(InputError, match="Unknown job kind"):
        RunManager(store).start(kind, {})
    assert store.list_runs().empty
