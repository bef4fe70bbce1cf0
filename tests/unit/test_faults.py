"""Fault injection (issue 13): a full disk while checkpointing, a store locked by another process,
a damaged store file at start-up, CUDA out of memory in generation and in the update.

In every case the run ends failed with a message that says what happened and what to change, the
steps recorded before the fault are all there, the previous checkpoint is intact and resumable,
and the store keeps serving.
"""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import llmrl_core.lm_rl.checkpoints as checkpoints
from llmrl_core.lm_rl.checkpoints import list_checkpoints
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.core.errors import StoreError
from llmrl_core.runs.files import get_run_dir
from llmrl_core.runs.manager import JobContext, execute_run
from llmrl_core.runs.store import RunStore
from llmrl_core.lm_rl.job import run_lm_rl_job
from llmrl_core.lm_rl.trainer import RLTrainer

LENGTH_REWARD = [{"type": "length", "target": 20, "unit": "chars", "falloff": 40}]


def tiny_config(tiny_model_dir, **changes) -> RLConfig:
    base = dict(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                max_new_tokens=6, chat="raw", learning_rate=1e-3, rewards=LENGTH_REWARD, seed=0, samples_per_step=2)
    return RLConfig(**{**base, **changes})


def run_job(store, cfg: RLConfig, job=run_lm_rl_job) -> tuple[int, str]:
    """Run an lm_rl job in this thread; return (run id, final status)."""
    run_id = store.create_run("lm_rl", cfg.name, cfg.to_dict(), cfg.steps)
    return run_id, execute_run(JobContext(run_id, store, cfg.to_dict()), job)


def assert_store_serves(store) -> None:
    """The store still takes a new run and reads it back (the app keeps serving)."""
    run_id = store.create_run("demo", "after the fault", {})
    store.log_metrics(run_id, 1, {"x": 1.0})
    assert list(store.read_metrics_wide(run_id)["step"]) == [1]


def assert_resumable(cfg: RLConfig, folder: Path, step: int) -> None:
    """The checkpoint loads and trains its next step."""
    trainer = RLTrainer(cfg.replace(steps=step + 1, resume_from=str(folder), save_every=0))
    assert trainer.step_count == step
    assert trainer.train_step().step == step + 1


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A workbench home of this test's own."""
    path = tmp_path / "home"
    monkeypatch.setenv("LLMRL_HOME", str(path))
    return path


@pytest.fixture()
def small_disk(home):
    """$LLMRL_HOME/artifacts on a 30 MB tmpfs (root only): one tiny-model checkpoint with its optimizer
    state (22 MB) fits, a second does not. None where mounting is not allowed."""
    target = home / "artifacts"
    target.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(target)],
                             capture_output=True).returncode == 0
    yield target if mounted else None
    if mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


# ---------------------------------------------------------------------- disk full


def test_disk_full_on_the_second_checkpoint(tiny_model_dir, store, home, small_disk, monkeypatch):
    if small_disk is None:  # not root: the write call itself reports a full disk
        real_save = torch.save

        def full_save(obj, path, *args, **kwargs):
            if "checkpoint-000004.partial" in str(path):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_save(obj, path, *args, **kwargs)

        monkeypatch.setattr(checkpoints.torch, "save", full_save)
    cfg = tiny_config(tiny_model_dir, steps=6, save_every=2, save_total_limit=2)
    run_id, status = run_job(store, cfg)

    run = store.get_run(run_id)
    assert status == "failed" and run["status"] == "failed"
    assert run["error"].startswith("Disk full while writing the checkpoint at step 4")
    assert "save_total_limit" in run["error"] and "earlier checkpoints are intact" in run["error"]
    assert list(store.read_metrics_wide(run_id)["step"]) == [1, 2, 3, 4]  # every step before the fault
    assert len(store.read_samples(run_id)) == 4 * cfg.samples_per_step

    run_dir = get_run_dir(run_id)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint-000002"]  # no .partial left behind
    assert list(store.list_artifacts(run_id)["step"]) == [2]
    assert_resumable(cfg, list_checkpoints(run_dir)[0], 2)
    assert_store_serves(store)


def test_disk_full_error_is_recognised_from_torch_and_safetensors_texts(tmp_path):
    # torch.save on a full disk says only 'unexpected pos'; then the free space decides
    assert checkpoints.is_disk_full_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert checkpoints.is_disk_full_error(RuntimeError("I/O error: No space left on device (os error 28)"), tmp_path)
    assert not checkpoints.is_disk_full_error(RuntimeError("unexpected pos 576 vs 534"), tmp_path)  # this disk has room


# ---------------------------------------------------------------------- locked store

LOCKER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until told
    conn.execute("COMMIT")
""")


def start_locker(path: Path) -> subprocess.Popen:
    """Another process holding BEGIN EXCLUSIVE on the store until a line arrives on its stdin."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def release(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(10)


def test_locked_store_gives_a_clear_message_and_keeps_serving(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite", busy_timeout=0.3)
    run_id = store.create_run("demo", "locked", {})
    store.log_metrics(run_id, 1, {"x": 1.0})
    locker = start_locker(store.path)
    try:
        start = time.monotonic()
        with pytest.raises(StoreError, match=r"stayed locked by another process for more than 0.3 s") as caught:
            store.log_metrics(run_id, 2, {"x": 2.0})
        assert time.monotonic() - start < 5
        assert "close it or commit there" in str(caught.value)
        assert store.get_run(run_id)["status"] == "queued"  # reads go on under WAL while another process writes
        assert RunStore(store.path, busy_timeout=0.3).recovered_from is None  # locked is not damaged
    finally:
        release(locker)
    store.log_metrics(run_id, 2, {"x": 2.0})
    assert list(store.read_metrics_wide(run_id)["step"]) == [1, 2]
    assert store.path.exists() and not store.moved_aside_stores()


def test_a_job_that_meets_a_locked_store_fails_with_the_message(tiny_model_dir, tmp_path, home):
    store = RunStore(tmp_path / "runs.sqlite", busy_timeout=1.0)
    lockers: list[subprocess.Popen] = []

    def release_on_failure(write):
        def wrapped(*args, **kwargs):
            try:
                return write(*args, **kwargs)
            except StoreError:
                release(lockers[0])  # the other program lets go after the job's write failed
                raise
        return wrapped

    store._execute = release_on_failure(store._execute)
    store._executemany = release_on_failure(store._executemany)

    def job(ctx):
        def lock_after_step_1(result):
            if result.step == 1:
                lockers.append(start_locker(store.path))
        return run_lm_rl_job(ctx, on_step=lock_after_step_1)

    cfg = tiny_config(tiny_model_dir, steps=3, save_every=1)
    try:
        run_id, status = run_job(store, cfg, job)
    finally:
        for proc in lockers:
            release(proc)
    run = store.get_run(run_id)
    assert status == "failed" and run["status"] == "failed"
    assert run["error"].startswith(f"The run store {store.path} stayed locked by another process")
    assert list(store.read_metrics_wide(run_id)["step"]) == [1]
    assert_resumable(cfg, list_checkpoints(get_run_dir(run_id))[0], 1)
    assert_store_serves(store)


# ---------------------------------------------------------------------- damaged store at start-up


def make_truncated(path: Path) -> bytes:
    store = RunStore(path)
    run_id = store.create_run("demo", "soon damaged", {})
    for step in range(300):
        store.log_metrics(run_id, step, {f"m{i}": float(i) for i in range(10)})
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._close_conn()
    data = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("damage", ["garbage", "truncated", "header only"])
def test_a_damaged_store_is_moved_aside_never_deleted(tmp_path, damage, caplog):
    path = tmp_path / "runs.sqlite"
    if damage == "garbage":
        data = b"this is not a database\n" * 200
        path.write_bytes(data)
    elif damage == "truncated":
        data = make_truncated(path)
    else:
        data = b"SQLite format 3\x00" + b"\x10\x00" + b"\x00" * 30
        path.write_bytes(data)

    with caplog.at_level("WARNING", logger="llmrl_core.runs.store"):
        store = RunStore(path)
    aside = store.recovered_from
    assert aside is not None and aside.name.startswith("runs.sqlite.corrupt-")
    assert aside.read_bytes() == data  # kept byte for byte
    assert store.moved_aside_stores() == [aside]
    assert str(aside) in store.recovery_message and "nothing was deleted" in store.recovery_message
    assert store.recovery_message in caplog.text
    assert store.list_runs().empty  # a fresh store
    assert_store_serves(store)
    assert RunStore(path).recovered_from is None  # the next start finds a good store


# ---------------------------------------------------------------------- CUDA out of memory


def oom_on_second_call(monkeypatch, owner, name: str) -> None:
    """Make owner.name raise torch.cuda.OutOfMemoryError from its second call on."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def fake(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, fake)


@pytest.mark.parametrize("phase", ["generation", "the update"])
def test_cuda_out_of_memory_names_the_batch_settings(tiny_model_dir, store, home, monkeypatch, phase):
    from llmrl_core.lm import fast_generate

    if phase == "generation":
        oom_on_second_call(monkeypatch, fast_generate, "sample_completions_fast")  # the default sampler (the fast loop)
    else:
        oom_on_second_call(monkeypatch, torch.optim.AdamW, "step")  # where AdamW's moments are allocated
    cfg = tiny_config(tiny_model_dir, steps=4, save_every=1)
    run_id, status = run_job(store, cfg)

    error = store.get_run(run_id)["error"]
    assert status == "failed"
    assert error.startswith(f"Out of memory (cpu) during {phase} at step 2")
    for setting in ("prompts_per_step (now 2)", "num_generations (now 2)", "max_new_tokens (now 6)"):
        assert setting in error
    assert ("grad_accum_steps (now 1" in error) == (phase == "the update")
    assert list(store.read_metrics_wide(run_id)["step"]) == [1]
    checkpoint = list_checkpoints(get_run_dir(run_id))[0]
    monkeypatch.undo()  # the real sampler and AdamW again (and the session's home)
    assert_resumable(cfg, checkpoint, 1)
    assert_store_serves(store)
