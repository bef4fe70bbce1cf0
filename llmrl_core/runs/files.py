"""A run's files on disk: how much room they take and deleting them (issue 8: disk a user can predict).

Every job writes under $LLMRL_HOME/artifacts/run-NNNNN (checkpoints, agent.zip, episode JSON).
Sizes are summed with an os.scandir walk that never follows symlinks, so a link to a model folder
elsewhere counts as the link, not as the folder. Deleting touches only that one folder, and
refuses when it is a symlink or resolves outside $LLMRL_HOME/artifacts.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from llmrl_core.core.errors import InputError
from llmrl_core.core.paths import get_home


def get_run_dir(run_id: int) -> Path:
    """Where run `run_id` keeps its files (not created; see paths.get_artifact_dir)."""
    return get_home() / "artifacts" / f"run-{int(run_id):05d}"


def compute_tree_bytes(path: str | Path) -> int:
    """Bytes used by the files under `path` (or by `path` itself), symlinks not followed."""
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return info.st_size
    total, stack = 0, [os.fspath(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:  # vanished while walking (a run still writing)
                        continue
        except OSError:
            continue
    return total


def measure_home_disk() -> dict[str, int]:
    """Bytes the workbench home holds (runs' files, the store, caches) and bytes free on its disk."""
    home = get_home()
    usage = shutil.disk_usage(home if home.exists() else home.parent)
    return {"home_bytes": compute_tree_bytes(home), "free_bytes": int(usage.free), "disk_bytes": int(usage.total)}


def compute_run_disk_bytes(run_id: int, store: Any = None) -> int:
    """Bytes a run takes on disk: its artifact folder, plus (given its `store`) recorded artifacts
    that lie elsewhere under $LLMRL_HOME. Nothing outside $LLMRL_HOME is counted: it is not the run's."""
    run_dir = get_run_dir(run_id)
    total = compute_tree_bytes(run_dir)
    if store is None:
        return total
    home = get_home().resolve()
    inside = run_dir.resolve()
    for path in store.list_artifacts(run_id)["path"]:
        target = Path(path).resolve()
        if not target.is_relative_to(home) or target.is_relative_to(inside):
            continue
        total += compute_tree_bytes(target)
    return total


def delete_run_files(run_id: int) -> int:
    """Delete the run's artifact folder ($LLMRL_HOME/artifacts/run-NNNNN); return the bytes freed.

    Only that folder: artifacts recorded elsewhere are left alone, links inside it are removed as
    links (their targets stay). Call it for a run that has ended (a live run would write again).
    """
    artifacts = (get_home() / "artifacts").resolve()
    run_dir = get_run_dir(run_id)
    if run_dir.is_symlink():
        raise InputError(f"{run_dir} is a symbolic link; not deleting what it points to. Remove the link by hand if you mean to.")
    if not run_dir.exists():
        return 0
    if not run_dir.resolve().is_relative_to(artifacts):
        raise InputError(f"{run_dir} resolves outside {artifacts}; not deleting it.")
    before = compute_tree_bytes(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # rmtree unlinks symlinks inside, never follows them
    return before - compute_tree_bytes(run_dir)


# ---------------------------------------------------------------------- "free space"


@dataclasses.dataclass(frozen=True)
class SpareCheckpoint:
    """A checkpoint an ended run does not need: not its final one."""

    run_id: int
    path: Path
    bytes: int


def find_spare_checkpoints(store: Any) -> list[SpareCheckpoint]:
    """Every recorded checkpoint of a run that ended, except each run's final one (its newest by step), whose folder
    lies inside the run's artifact folder (never a link, never anything outside $LLMRL_HOME/artifacts)."""
    from llmrl_core.runs.store import FINAL_STATUSES

    rows = store.fetch_rows(
        "SELECT a.run_id, a.path FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE a.kind='checkpoint' "
        f"AND r.status IN ({','.join('?' * len(FINAL_STATUSES))}) ORDER BY a.run_id, a.step, a.id", FINAL_STATUSES)
    by_run: dict[int, list[str]] = {}
    for run_id, path in rows:
        by_run.setdefault(int(run_id), []).append(str(path))
    spare = []
    for run_id, paths in by_run.items():
        inside = get_run_dir(run_id).resolve()
        for path in dict.fromkeys(paths[:-1]):  # the last is the final checkpoint: kept
            folder = Path(path)
            if folder == Path(paths[-1]) or folder.is_symlink() or not folder.exists():
                continue
            if not folder.resolve().is_relative_to(inside):
                continue
            spare.append(SpareCheckpoint(run_id, folder, compute_tree_bytes(folder)))
    return spare


def free_space(store: Any) -> tuple[int, int, int]:
    """Delete the checkpoints find_spare_checkpoints lists (and their rows); return (checkpoints, runs, bytes freed)."""
    freed = count = 0
    runs: set[int] = set()
    for spare in find_spare_checkpoints(store):
        shutil.rmtree(spare.path, ignore_errors=True)
        if spare.path.exists():
            continue  # could not be deleted (permissions): left as it is, and still recorded
        store.remove_artifacts(spare.run_id, [spare.path])
        freed += spare.bytes
        count += 1
        runs.add(spare.run_id)
    return count, len(runs), freed
