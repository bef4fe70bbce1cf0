"""The "free space" action (runs/files.free_space): ended runs lose every checkpoint but their final one; running runs,
links and folders outside the run's own are left alone; it says how much it freed. CLI `runs free-space` too."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrl_core.runs import RunStore
from llmrl_core.runs.files import find_spare_checkpoints, free_space, get_run_dir
from tests.support.cli import run_cli


def _checkpoint(store: RunStore, run_id: int, step: int, size: int = 1000) -> Path:
    folder = get_run_dir(run_id) / f"checkpoint-{step:06d}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * size)
    store.add_artifact(run_id, step, "checkpoint", folder)
    return folder


@pytest.fixture()
def home(monkeypatch, tmp_path) -> RunStore:
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    return RunStore(tmp_path / "home" / "runs.sqlite")


def test_ended_runs_keep_only_their_final_checkpoint(home, tmp_path) -> None:
    ended = home.create_run("lm_rl", "ended", {})
    old = [_checkpoint(home, ended, s, 1000) for s in (10, 20)]
    final = _checkpoint(home, ended, 30, 1000)
    home.set_status(ended, "stopped")
    running = home.create_run("lm_rl", "running", {})
    live = [_checkpoint(home, running, s, 500) for s in (10, 20)]
    home.mark_started(running)
    outside = tmp_path / "elsewhere" / "checkpoint-000005"  # recorded, but not in the run's folder: never deleted
    outside.mkdir(parents=True)
    home.add_artifact(ended, 5, "checkpoint", outside)
    link = get_run_dir(ended) / "checkpoint-000001"
    link.symlink_to(outside)
    home.add_artifact(ended, 1, "checkpoint", link)

    spare = find_spare_checkpoints(home)
    assert sorted(s.path for s in spare) == sorted(old) and all(s.bytes == 1000 for s in spare)
    assert free_space(home) == (2, 1, 2000)
    assert not any(p.exists() for p in old) and final.exists() and all(p.exists() for p in live)
    assert outside.exists() and link.is_symlink()
    kept = home.list_artifacts(ended, kind="checkpoint")["path"].tolist()
    assert str(final) in kept and not any(str(p) in kept for p in old)
    assert free_space(home) == (0, 0, 0)  # nothing left to free


def test_the_cli_says_how_much_it_freed(home, tmp_path) -> None:
    run_id = home.create_run("lm_rl", "ended", {})
    for step in (1, 2, 3):
        _checkpoint(home, run_id, step, 2_000_000)
    home.set_status(run_id, "completed")
    done = run_cli("runs", "free-space", home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert "Freed 4.0 MB: 2 older checkpoints of 1 ended run (each keeps its final checkpoint)." in done.stdout
