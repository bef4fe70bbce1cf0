"""The SQLite run store: runs, metrics since a step, samples, artifacts, logs, recovery."""

from __future__ import annotations

import math

from llmrl_core.runs.store import RunStore, is_owner_alive, make_owner


def test_wal_mode_and_run_lifecycle(store: RunStore):
    mode = store._conn().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    run_id = store.create_run("demo", "first", {"lr": 0.1}, total_steps=10)
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["config"] == {"lr": 0.1} and run["total_steps"] == 10
    store.mark_started(run_id)
    store.set_progress(run_id, 4)
    store.set_status(run_id, "completed")
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["step"] == 4 and run["ended"] >= run["started"]
    listed = store.list_runs()
    assert listed["id"].tolist() == [run_id] and listed.loc[0, "status"] == "completed"
    assert store.list_runs(kind="gym").empty


def test_metrics_since_step_and_wide(store: RunStore):
    run_id = store.create_run("demo", "m", {})
    for step in range(1, 6):
        store.log_metrics(run_id, step, {"reward": step * 0.5, "kl": float("nan"), "note": "skip me"})
    since = store.read_metrics(run_id, since_step=3)
    assert sorted(set(since["step"])) == [4, 5]
    assert set(since["name"]) == {"reward", "kl"}  # non-numbers are skipped
    kl = since[since["name"] == "kl"]["value"]
    assert kl.isna().all()  # NaN stored as NULL
    wide = store.read_metrics_wide(run_id)
    assert wide["reward"].tolist() == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert store.metric_names(run_id) == ["kl", "reward"]


def test_samples_round_trip_json(store: RunStore):
    run_id = store.create_run("demo", "s", {})
    store.add_samples(run_id, 1, [{"prompt": "p<b>", "completion": "c", "rewards": {"vader": 0.5, "len": math.nan},
                                   "extras": {"advantage": 1.25, "tokens": ["a", "b"]}}])
    store.add_samples(run_id, 2, [{"prompt": "q", "completion": "d", "rewards": {"vader": -0.1}}])
    frame = store.read_samples(run_id)
    assert frame["step"].tolist() == [1, 2]
    assert frame.loc[0, "rewards"] == {"vader": 0.5, "len": None}
    assert frame.loc[0, "extras"]["tokens"] == ["a", "b"] and frame.loc[0, "prompt"] == "p<b>"
    assert store.read_samples(run_id, since_step=1)["step"].tolist() == [2]
    assert store.read_samples(run_id, step=1)["completion"].tolist() == ["c"]


def test_artifacts_logs_and_control(store: RunStore, tmp_path):
    run_id = store.create_run("demo", "a", {})
    store.add_artifact(run_id, 3, "checkpoint", tmp_path / "ck", {"lora": True})
    arts = store.list_artifacts(run_id)
    assert arts.loc[0, "kind"] == "checkpoint" and arts.loc[0, "meta"] == {"lora": True}
    store.add_log(run_id, "hello")
    assert store.read_logs(run_id)["message"].tolist() == ["hello"]
    store.request_control(run_id, "stop")
    assert store.read_control(run_id) == "stop"
    store.rename_run(run_id, "renamed")
    assert store.get_run(run_id)["name"] == "renamed"
    store.delete_run(run_id)
    assert store.get_run(run_id) is None and store.list_artifacts(run_id).empty


def test_runs_of_dead_processes_become_interrupted(store: RunStore):
    mine = store.create_run("demo", "alive", {})
    store.mark_started(mine)  # owned by this process
    dead = store.create_run("demo", "dead", {})
    host = make_owner().split(":")[0]
    store.mark_started(dead, owner=f"{host}:999999999:1")  # no such pid
    assert is_owner_alive(make_owner()) and not is_owner_alive(f"{host}:999999999:1")
    assert store.recover_interrupted() == [dead]
    assert store.get_run(dead)["status"] == "interrupted"
    assert store.get_run(mine)["status"] == "running"


def test_store_is_shared_across_instances(tmp_path):
    a = RunStore(tmp_path / "s.sqlite")
    b = RunStore(tmp_path / "s.sqlite")
    run_id = a.create_run("demo", "x", {})
    a.log_metrics(run_id, 1, {"reward": 1.0})
    assert b.read_metrics(run_id)["value"].tolist() == [1.0]


def test_a_fresh_store_never_reuses_the_run_folder_of_an_earlier_run(tmp_path, monkeypatch):
    """After a damaged store was moved aside (or with a second store file), ids start above the run folders on disk."""
    from llmrl_core.runs import RunStore

    home = tmp_path / "home"
    (home / "artifacts" / "run-00041").mkdir(parents=True)
    monkeypatch.setenv("LLMRL_HOME", str(home))
    assert RunStore(home / "runs.sqlite").create_run("demo", "after recovery", {}) == 42
    assert RunStore(home / "runs.sqlite").create_run("demo", "next", {}) == 43  # an existing store keeps counting
