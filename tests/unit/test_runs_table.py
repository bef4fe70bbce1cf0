"""The runs table (summarize_runs) and the store's run actions: note (with its migration), rename, clone, delete."""

from __future__ import annotations

import json
import sqlite3

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.runs.files import compute_run_disk_bytes, get_run_dir
from llmrl_core.runs.store import RunStore, make_owner
from llmrl_core.runs.table import COLUMNS, summarize_runs


@pytest.fixture()
def runs(store):
    """An LM run (finished), a gym run (running, owned by this process) and a demo run (queued)."""
    lm = store.create_run("lm_rl", "grpo on vader", {"model": "bundled", "algorithm": "grpo"}, total_steps=10)
    store._execute("UPDATE runs SET started=100, ended=160, status='completed', step=3 WHERE id=?", (lm,))
    for step, reward in [(1, 0.2), (2, 0.9), (3, 0.5)]:
        store.log_metrics(lm, step, {"reward": reward, "kl": 5.0})
    gym = store.create_run("gym", "ppo cartpole", {"env_id": "CartPole-v1", "algo": "ppo"}, total_steps=5000)
    store.mark_started(gym)
    store._execute("UPDATE runs SET started=1000, step=2048 WHERE id=?", (gym,))
    store.log_metrics(gym, 1024, {"charts/episodic_return": 21.0, "reward": 999.0})  # 'reward' is not a gym run's reward
    store.log_metrics(gym, 2048, {"charts/episodic_return": 35.0})
    store.log_metrics(gym, 3072, {"charts/episodic_return": float("nan")})  # NaN is stored as NULL
    store.set_summary(gym, {"solved_at_step": 2048})
    demo = store.create_run("demo", "100% demo_x", {})
    return {"lm": lm, "gym": gym, "demo": demo}


def test_one_row_per_run_with_its_headline_figures(store, runs):
    table = summarize_runs(store, now=1100.0)
    assert list(table.columns) == COLUMNS and table["id"].tolist() == [runs["demo"], runs["gym"], runs["lm"]]
    lm = table.set_index("id").loc[runs["lm"]]
    assert (lm["model"], lm["algorithm"], lm["step"], lm["total_steps"]) == ("bundled", "grpo", 3, 10)
    assert (lm["first_reward"], lm["best_reward"], lm["last_reward"], lm["duration_s"]) == (0.2, 0.9, 0.5, 60.0)
    gym = table.set_index("id").loc[runs["gym"]]
    assert (gym["model"], gym["algorithm"], gym["step"]) == ("CartPole-v1", "ppo", 2048)
    assert (gym["first_reward"], gym["best_reward"], gym["last_reward"]) == (21.0, 35.0, 35.0)  # the episode return; the NaN is not 'last'
    assert gym["solved_at_step"] == 2048 and lm["solved_at_step"] != lm["solved_at_step"]  # from the summary; NaN
    assert gym["duration_s"] == 100.0  # still running: up to now
    demo = table.set_index("id").loc[runs["demo"]]
    assert demo["model"] == "" and demo["best_reward"] != demo["best_reward"]  # nothing logged: NaN
    assert demo["duration_s"] != demo["duration_s"] and demo["note"] == ""


def test_disk_use_counts_what_compute_run_disk_bytes_counts(store, runs, workbench_home):
    folder = get_run_dir(runs["lm"])
    (folder / "checkpoint-000001").mkdir(parents=True)
    (folder / "checkpoint-000001" / "w.bin").write_bytes(b"x" * 1234)
    elsewhere = workbench_home / "exports-h4-test"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "agent.zip").write_bytes(b"y" * 100)
    store.add_artifact(runs["lm"], 1, "agent", elsewhere / "agent.zip")
    store.add_artifact(runs["lm"], 1, "checkpoint", folder / "checkpoint-000001")  # inside: not counted twice
    table = summarize_runs(store).set_index("id")
    assert table.loc[runs["lm"], "disk_bytes"] == compute_run_disk_bytes(runs["lm"], store) == 1334
    assert table.loc[runs["gym"], "disk_bytes"] == 0
    assert summarize_runs(store, with_disk=False)["disk_bytes"].isna().all()


def test_filter_sort_and_search(store, runs):
    assert summarize_runs(store, statuses=["completed"])["id"].tolist() == [runs["lm"]]
    assert summarize_runs(store, kinds=["gym", "demo"])["id"].tolist() == [runs["demo"], runs["gym"]]
    assert summarize_runs(store, kinds=[]).empty
    by_best = summarize_runs(store, sort_by="best_reward")["id"].tolist()
    assert by_best == [runs["gym"], runs["lm"], runs["demo"]]  # no value sorts last either way
    assert summarize_runs(store, sort_by="best_reward", descending=False)["id"].tolist() == [runs["lm"], runs["gym"], runs["demo"]]
    assert summarize_runs(store, sort_by="name", descending=False)["name"].tolist() == ["100% demo_x", "grpo on vader", "ppo cartpole"]
    assert summarize_runs(store, search="CARTPOLE")["id"].tolist() == [runs["gym"]]
    assert summarize_runs(store, search="100%")["id"].tolist() == [runs["demo"]]  # % and _ are literal
    assert summarize_runs(store, search="o_x")["id"].tolist() == [runs["demo"]]
    assert summarize_runs(store, search="1%d").empty and summarize_runs(store, search="e_o").empty  # no wildcards
    store.set_note(runs["lm"], "Best so far: beta 0.04")
    assert summarize_runs(store, search="beta")["id"].tolist() == [runs["lm"]]
    with pytest.raises(InputError, match="Cannot sort"):
        summarize_runs(store, sort_by="config")


def test_rename_note_and_clone(store, runs):
    store.rename_run(runs["lm"], "  better name  ")
    assert store.get_run(runs["lm"])["name"] == "better name"
    with pytest.raises(InputError, match="cannot be empty"):
        store.rename_run(runs["lm"], "   ")
    with pytest.raises(InputError, match="No run with id 999"):
        store.rename_run(999, "x")
    store.set_note(runs["lm"], "tried beta=0.1 <b>")
    assert store.get_run(runs["lm"])["note"] == "tried beta=0.1 <b>"
    store.set_note(runs["lm"], "")
    assert store.get_run(runs["lm"])["note"] is None
    with pytest.raises(InputError, match="limited"):
        store.set_note(runs["lm"], "x" * 10_001)
    kind, config = store.clone_config(runs["gym"])
    assert (kind, config) == ("gym", {"env_id": "CartPole-v1", "algo": "ppo"})
    config["algo"] = "dqn"  # a copy: the run keeps its config
    assert store.get_run(runs["gym"])["config"]["algo"] == "ppo"


def test_deleting_a_live_run_is_refused(store, runs):
    with pytest.raises(InputError, match=f"Run {runs['gym']} is running; stop it first"):
        store.delete_run(runs["gym"])
    assert store.get_run(runs["gym"]) is not None
    store.request_control(runs["gym"], "pause")
    store.set_status(runs["gym"], "paused")
    with pytest.raises(InputError, match="is paused"):
        store.delete_run(runs["gym"])
    store.set_status(runs["gym"], "stopped")
    store.delete_run(runs["gym"])
    assert store.get_run(runs["gym"]) is None
    store.delete_run(runs["demo"])  # queued, never launched (no live owner): may go


def test_a_run_left_running_by_a_dead_process_can_be_deleted(store):
    run_id = store.create_run("demo", "orphan", {})
    host = make_owner().split(":")[0]
    store.mark_started(run_id, owner=f"{host}:999999999:1")  # no such process
    store.delete_run(run_id)
    assert store.get_run(run_id) is None


def test_an_old_store_gains_the_note_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL,
            config TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, started REAL, ended REAL, error TEXT,
            owner TEXT, control TEXT, step INTEGER DEFAULT 0, total_steps INTEGER, summary TEXT);
        CREATE TABLE metrics (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER NOT NULL,
            name TEXT NOT NULL, value REAL, wall_time REAL NOT NULL);
    """)
    conn.execute("INSERT INTO runs(kind, name, config, status, created, step) VALUES ('lm_rl', 'old run', ?, 'completed', 1, 2)",
                 (json.dumps({"model": "bundled"}),))
    conn.executemany("INSERT INTO metrics VALUES (1, ?, 'reward', ?, 0)", [(1, 0.3), (2, 0.7)])
    conn.commit()
    conn.close()
    store = RunStore(path)
    assert store.get_run(1)["note"] is None
    store.set_note(1, "migrated")
    row = summarize_runs(store, with_disk=False).iloc[0]
    assert (row["name"], row["note"], row["best_reward"], row["last_reward"]) == ("old run", "migrated", 0.7, 0.3 + 0.4)
    indexes = {r[1] for r in sqlite3.connect(path).execute("PRAGMA index_list(metrics)")}
    assert "metrics_run_name_step" in indexes
    RunStore(path)  # opening again changes nothing and does not fail
    assert RunStore(path).get_run(1)["note"] == "migrated"
