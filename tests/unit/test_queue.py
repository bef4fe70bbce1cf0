"""The run queue (llmrl_core/runs/queue.py): order, move and cancel from the store up, slots, claims, and the
manager starting waiting runs one after another with a limit of 1."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.runs import RunManager, RunStore
from llmrl_core.runs import queue as q
from llmrl_core.runs.store import make_owner


@pytest.fixture()
def qstore(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "runs.sqlite")
    q.set_max_concurrent(store, 1)
    return store


def _waiting(store: RunStore, owner: str | None = None, **config) -> int:
    run_id = store.create_run("demo", "r", config)
    q.enqueue(store, run_id, owner=owner)
    return run_id


def _ids(store: RunStore) -> list[int]:
    return q.list_queue(store)["id"].tolist()


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = make_owner(proc.pid)
    proc.wait()
    return owner


def test_order_move_and_cancel(qstore) -> None:
    a, b, c = (_waiting(qstore) for _ in range(3))
    assert _ids(qstore) == [a, b, c]
    assert q.list_queue(qstore)["position"].tolist() == [1, 2, 3]
    assert q.move(qstore, c, 1) == 1 and _ids(qstore) == [c, a, b]
    assert q.move(qstore, c, 99) == 3 and _ids(qstore) == [a, b, c]  # beyond the end: last
    assert q.get_queue_position(qstore, b) == (2, 3)
    q.cancel(qstore, b)
    run = qstore.get_run(b)
    assert run["status"] == "stopped" and run["queue_pos"] is None and "never started" in run["error"]
    assert _ids(qstore) == [a, c] and q.get_queue_position(qstore, b) is None
    assert "Cancelled while waiting" in qstore.read_logs(b)["message"].iloc[-1]
    with pytest.raises(InputError, match="only waiting runs can be cancelled"):
        q.cancel(qstore, b)
    with pytest.raises(InputError, match="is not waiting in the queue"):
        q.move(qstore, b, 1)
    with pytest.raises(InputError, match="whole number from 1"):
        q.move(qstore, a, 0)


def test_claims_follow_the_order_and_the_limit(qstore) -> None:
    me = make_owner()
    a, b = _waiting(qstore), _waiting(qstore)
    assert q.claim_next(qstore, me) == a
    assert qstore.get_run(a)["queue_pos"] is None and qstore.get_run(a)["owner"] == me
    assert q.claim_next(qstore, me) is None  # a holds the only slot (its owner lives)
    assert q.count_used_slots(qstore) == 1
    qstore.set_status(a, "completed")
    assert q.claim_next(qstore, me) == b
    assert q.claim_next(qstore, me) is None  # nothing waits


def test_a_multi_process_run_takes_its_processes_in_slots(qstore) -> None:
    me = make_owner()
    q.set_max_concurrent(qstore, 3)
    assert q.count_slots({"num_processes": 2}) == 2 and q.count_slots({"num_processes": 4, "num_machines": 2}) == 2
    single, double, big = _waiting(qstore), _waiting(qstore, num_processes=2), _waiting(qstore, num_processes=5)
    assert q.claim_next(qstore, me) == single
    assert q.claim_next(qstore, me) == double  # 1 + 2 slots of 3
    assert q.claim_next(qstore, me) is None
    qstore.set_status(single, "completed")
    assert q.claim_next(qstore, me) is None  # 2 + 5 > 3
    qstore.set_status(double, "completed")
    assert q.claim_next(qstore, me) == big  # more than the limit, but alone: it never blocks the queue for good


def test_a_cli_run_at_the_head_is_left_to_its_command_and_dropped_when_that_ended(qstore) -> None:
    me = make_owner()
    cli = _waiting(qstore, owner=me)
    dashboard = _waiting(qstore)
    assert q.claim_next(qstore, me) is None  # the server does not start the CLI's run, nor skip ahead of it
    assert q.claim_next(qstore, me, run_id=dashboard) is None  # not at the head
    assert q.claim_next(qstore, me, run_id=cli) == cli
    qstore.set_status(cli, "completed")
    gone = _waiting(qstore, owner=_dead_owner())
    q.move(qstore, gone, 1)
    assert q.claim_next(qstore, me) == dashboard  # the dead command's run is dropped, the next one starts
    assert qstore.get_run(gone)["status"] == "stopped" and "ended before" in qstore.get_run(gone)["error"]


def test_waiting_runs_survive_a_restart_and_are_never_failed_as_vanished(qstore) -> None:
    a = _waiting(qstore)
    q.set_max_concurrent(qstore, 1)
    running = qstore.create_run("demo", "busy", {})
    qstore.mark_started(running)  # this process: alive, holds the slot
    manager = RunManager(qstore)  # recover_interrupted runs here
    try:
        manager.supervise_once(check_orphans=True)
        assert qstore.get_run(a)["status"] == "queued" and _ids(qstore) == [a]
    finally:
        manager.close()


def test_the_limit_is_validated_and_has_a_default(qstore, monkeypatch) -> None:
    with pytest.raises(InputError, match="from 1 to 64"):
        q.set_max_concurrent(qstore, 0)
    with pytest.raises(InputError, match="from 1 to 64"):
        q.set_max_concurrent(qstore, "2")
    assert q.set_max_concurrent(qstore, 4) == 4
    monkeypatch.setenv(q.MAX_CONCURRENT_ENV, "3")
    assert q.set_max_concurrent(qstore, None) == 3
    monkeypatch.delenv(q.MAX_CONCURRENT_ENV)
    assert q.get_max_concurrent(qstore) == max(1, q.count_gpus())


def test_the_manager_runs_queued_workers_one_after_another(qstore) -> None:
    """Three demo runs started at once with a limit of 1: one worker at a time, in order, each once."""
    manager = RunManager(qstore, supervise_every_s=0.2)
    try:
        ids = [manager.start("demo", {"steps": 3, "delay": 0.05}, name=f"q{i}") for i in range(3)]
        assert q.get_queue_position(qstore, ids[2]) == (2, 2)  # the first started at once, two wait
        deadline = time.monotonic() + 120
        most_at_once = 0
        while time.monotonic() < deadline:
            runs = [qstore.get_run(i) for i in ids]
            most_at_once = max(most_at_once, sum(r["status"] == "running" for r in runs))
            if all(r["status"] == "completed" for r in runs):
                break
            time.sleep(0.05)
        runs = [qstore.get_run(i) for i in ids]
        assert [r["status"] for r in runs] == ["completed"] * 3, [(r["status"], r["error"]) for r in runs]
        assert most_at_once == 1
        assert runs[0]["ended"] <= runs[1]["started"] and runs[1]["ended"] <= runs[2]["started"]
        handed = [any(m.startswith("Handed to a worker started ahead of time") for m in qstore.read_logs(i)["message"])
                  for i in ids]
        assert handed == [False, True, True]  # the waiting runs' workers were started while they waited
        assert [sum(m == "Started." for m in qstore.read_logs(i)["message"]) for i in ids] == [1, 1, 1]
        assert "runs run" in (qstore.path.parent / "workers" / f"run-{ids[2]:05d}.log").read_text()
    finally:
        manager.close()
    assert manager._standby is None


def test_a_standby_worker_exits_without_a_run(qstore) -> None:
    """A warm worker whose stdin closes (the server ended, the queue emptied) exits and touches nothing."""
    proc = subprocess.Popen([sys.executable, "-m", "llmrl_core", "worker", "--standby", "demo", "--store", str(qstore.path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(b"", timeout=120)
    assert proc.returncode == 0 and b"ready" in out, out
    assert qstore.list_runs().empty


def test_the_cli_shows_moves_and_cancels_the_queue(qstore, tmp_path) -> None:
    from tests.support.cli import run_cli

    home = qstore.path.parent
    busy = qstore.create_run("demo", "busy", {})
    qstore.mark_started(busy)  # this test's process holds the only slot
    a, b = _waiting(qstore), _waiting(qstore)
    listed = run_cli("runs", "queue", home=home)
    assert listed.returncode == 0 and "Slots in use: 1 of 1. 2 waiting:" in listed.stdout, listed.stderr
    assert listed.stdout.index(f"run {a}") < listed.stdout.index(f"run {b}")
    moved = run_cli("runs", "move", str(b), "--to", "1", home=home)
    assert moved.returncode == 0 and _ids(qstore) == [b, a]
    assert run_cli("runs", "cancel", str(a), home=home).returncode == 0 and _ids(qstore) == [b]
    again = run_cli("runs", "cancel", str(a), home=home)
    assert again.returncode == 2 and "only waiting runs can be cancelled" in again.stderr
    no_to = run_cli("runs", "move", str(b), home=home)
    assert no_to.returncode == 2 and "needs the new position" in no_to.stderr
    limit = run_cli("runs", "queue", "--max-concurrent", "2", "--json", home=home)
    assert limit.returncode == 0 and q.get_max_concurrent(qstore) == 2 and '"max_concurrent": 2' in limit.stdout
    bad = run_cli("runs", "queue", "--max-concurrent", "99", home=home)
    assert bad.returncode == 2 and "from 1 to 64" in bad.stderr
    qstore.set_status(busy, "completed")


def test_a_cli_run_with_queue_waits_for_its_turn_and_one_without_says_it_bypasses(qstore) -> None:
    import os

    from tests.support.cli import ROOT

    home = qstore.path.parent
    busy = qstore.create_run("demo", "busy", {})
    qstore.mark_started(busy)
    env = {**os.environ, "LLMRL_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    waiter = subprocess.Popen([sys.executable, "-m", "llmrl_core", "demo", "--steps", "2", "--delay", "0", "--queue"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while q.list_queue(qstore).empty and time.monotonic() < deadline:
            time.sleep(0.1)
        queued = q.list_queue(qstore)
        assert len(queued) == 1 and queued["owner"].iloc[0]  # its own run, owned by the waiting command
        time.sleep(1.5)
        assert waiter.poll() is None  # still waiting: the slot is taken
        qstore.set_status(busy, "completed")
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0 and "completed" in out, err
    assert "Waiting in the run queue: number 1 of 1" in err
    run_id = int(queued["id"].iloc[0])
    assert qstore.get_run(run_id)["status"] == "completed" and q.list_queue(qstore).empty

    other = qstore.create_run("demo", "busy again", {})
    qstore.mark_started(other)
    from tests.support.cli import run_cli

    bypass = run_cli("demo", "--steps", "1", "--delay", "0", home=home)
    assert bypass.returncode == 0 and "bypasses the run queue (1 slot in use, 0 runs waiting)" in bypass.stderr
    qstore.set_status(other, "completed")


def test_a_waiting_cli_run_cancelled_from_elsewhere_ends_stopped(qstore) -> None:
    import threading

    busy = qstore.create_run("demo", "busy", {})
    qstore.mark_started(busy)
    manager = RunManager(qstore)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        zip(("id", "status"), manager.run_foreground("demo", {"steps": 1, "delay": 0}, name="cli", queue=True))))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while q.list_queue(qstore).empty and time.monotonic() < deadline:
            time.sleep(0.05)
        q.cancel(qstore, int(q.list_queue(qstore)["id"].iloc[0]))  # the Runs page's Cancel
        thread.join(10)
        assert not thread.is_alive() and result["status"] == "stopped"
        assert qstore.get_run(result["id"])["status"] == "stopped" and "never started" in qstore.get_run(result["id"])["error"]
    finally:
        manager.close()
        qstore.set_status(busy, "completed")
