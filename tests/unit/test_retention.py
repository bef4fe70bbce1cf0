"""Disk a user can predict (issue 8): checkpoint retention, and a run's disk use and file deletion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmrl_core.lm_rl.checkpoints import list_checkpoints
from tests.support.reference import has_optimizer_state
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.core.errors import InputError
from llmrl_core.runs.files import compute_run_disk_bytes, delete_run_files, get_run_dir
from llmrl_core.runs.manager import JobContext, execute_run
from llmrl_core.lm_rl.job import run_lm_rl_job
from llmrl_core.lm_rl.trainer import RLTrainer

LENGTH_REWARD = [{"type": "length", "target": 20, "unit": "chars", "falloff": 40}]


def tiny_config(tiny_model_dir, **changes) -> RLConfig:
    base = dict(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                max_new_tokens=6, chat="raw", learning_rate=1e-3, rewards=LENGTH_REWARD, seed=0, samples_per_step=2)
    return RLConfig(**{**base, **changes})


def run_job(store, cfg: RLConfig) -> tuple[int, str]:
    """Run an lm_rl job in this thread; return (run id, final status)."""
    run_id = store.create_run("lm_rl", cfg.name, cfg.to_dict(), cfg.steps)
    return run_id, execute_run(JobContext(run_id, store, cfg.to_dict()), run_lm_rl_job)


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A workbench home of this test's own, so run ids of other tests' stores do not share folders."""
    path = tmp_path / "home"
    monkeypatch.setenv("LLMRL_HOME", str(path))
    return path


def test_save_total_limit_is_validated():
    assert RLConfig().save_total_limit == 2
    with pytest.raises(InputError, match="save_total_limit"):
        RLConfig(save_total_limit=0)


def test_retention_keeps_the_newest_checkpoints_plus_the_final_one(tiny_model_dir, store, home):
    # saves at steps 2, 4, 6 and the final 7: keep 4 and 6 (the limit) plus 7, optimizer only in 7
    cfg = tiny_config(tiny_model_dir, steps=7, save_every=2, save_total_limit=2, keep_for_resuming=True)
    run_id, status = run_job(store, cfg)
    assert status == "completed", store.get_run(run_id)["error"]

    folders = list_checkpoints(get_run_dir(run_id))
    assert [f.name for f in folders] == ["checkpoint-000004", "checkpoint-000006", "checkpoint-000007"]
    assert [has_optimizer_state(f) for f in folders] == [False, False, True]
    rows = store.list_artifacts(run_id, kind="checkpoint")
    assert list(rows["step"]) == [4, 6, 7]  # the deleted step-2 checkpoint's row is gone
    assert [m["optimizer"] for m in rows["meta"]] == [False, False, True]
    logs = " ".join(store.read_logs(run_id)["message"])
    assert "Deleted 1 older checkpoint(s) (checkpoint-000002)" in logs and "Dropped the optimizer state" in logs
    assert list(store.read_metrics_wide(run_id)["step"]) == list(range(1, 8))

    newest = RLTrainer(cfg.replace(steps=8, resume_from=str(folders[-1]), save_every=0))
    assert newest.step_count == 7 and newest.optimizer.state  # AdamW moments came back
    assert newest.train_step().step == 8

    messages: list[str] = []
    older = RLTrainer(cfg.replace(steps=5, resume_from=str(folders[0]), save_every=0), log=messages.append)
    assert older.step_count == 4 and not older.optimizer.state  # a fresh AdamW, said so in the log
    assert any("no optimizer state" in m for m in messages)
    assert older.train_step().step == 5


def test_a_save_every_run_keeps_only_the_limit(tiny_model_dir, store, home):
    # steps divisible by save_every: the last periodic checkpoint is the final one, so the limit is all
    cfg = tiny_config(tiny_model_dir, steps=3, save_every=1, save_total_limit=1, keep_for_resuming=True)
    run_id, status = run_job(store, cfg)
    assert status == "completed", store.get_run(run_id)["error"]
    folders = list_checkpoints(get_run_dir(run_id))
    assert [f.name for f in folders] == ["checkpoint-000003"] and has_optimizer_state(folders[0])
    assert list(store.list_artifacts(run_id)["step"]) == [3]


def test_an_ended_run_keeps_weights_only_unless_asked_to_keep_the_optimizer(tiny_model_dir, store, home):
    """Issue 19: completed and stopped runs drop the optimizer state from every checkpoint (keep_for_resuming off)."""
    cfg = tiny_config(tiny_model_dir, steps=3, save_every=2, save_total_limit=2)
    assert cfg.keep_for_resuming is False
    run_id, status = run_job(store, cfg)
    assert status == "completed", store.get_run(run_id)["error"]
    folders = list_checkpoints(get_run_dir(run_id))
    assert [f.name for f in folders] == ["checkpoint-000002", "checkpoint-000003"]
    assert [has_optimizer_state(f) for f in folders] == [False, False]
    assert [m["optimizer"] for m in store.list_artifacts(run_id, kind="checkpoint")["meta"]] == [False, False]
    assert any("keep_for_resuming is off" in m for m in store.read_logs(run_id)["message"])
    messages: list[str] = []
    resumed = RLTrainer(cfg.replace(steps=4, resume_from=str(folders[-1])), log=messages.append)
    assert resumed.step_count == 3 and not resumed.optimizer.state and resumed.train_step().step == 4


def test_disk_use_counts_the_run_folder_and_deleting_frees_it(store, home, tmp_path):
    run_id = store.create_run("gym", "cartpole", {})
    run_dir = get_run_dir(run_id)
    (run_dir / "episodes").mkdir(parents=True)
    (run_dir / "agent.zip").write_bytes(b"a" * 1000)
    (run_dir / "episodes" / "ep-1.json").write_bytes(b"e" * 300)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"b" * 100_000)
    (run_dir / "link-out").symlink_to(outside)  # counted as a link, never followed
    store.add_artifact(run_id, 1, "export", outside / "big.bin")  # outside LLMRL_HOME: not the run's bytes
    extra = home / "exports" / "run-extra.bin"
    extra.parent.mkdir()
    extra.write_bytes(b"x" * 50)
    store.add_artifact(run_id, 1, "export", extra)

    link_bytes = os.lstat(run_dir / "link-out").st_size
    assert compute_run_disk_bytes(run_id) == 1300 + link_bytes
    assert compute_run_disk_bytes(run_id, store=store) == 1300 + link_bytes + 50

    assert delete_run_files(run_id) == 1300 + link_bytes
    assert not run_dir.exists()
    assert (outside / "big.bin").stat().st_size == 100_000 and extra.exists()  # only the run folder goes
    assert compute_run_disk_bytes(run_id) == 0 and delete_run_files(run_id) == 0


def test_deleting_refuses_a_run_folder_that_links_out(store, home, tmp_path):
    run_id = store.create_run("gym", "linked", {})
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    get_run_dir(run_id).parent.mkdir(parents=True, exist_ok=True)
    get_run_dir(run_id).symlink_to(target)
    with pytest.raises(InputError, match="symbolic link"):
        delete_run_files(run_id)
    assert (target / "keep.txt").read_text() == "keep"
