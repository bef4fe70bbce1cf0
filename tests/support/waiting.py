"""Polling for a condition with a deadline (tests of background threads, workers and servers)."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """True as soon as predicate() is truthy; False when `timeout` seconds pass first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def stop_runs(manager, run_ids, timeout: float = 30.0) -> None:
    """Ask every active run of `manager`'s store to stop, then kill those of `run_ids` still going after `timeout`."""
    from llmrl_core.runs import ACTIVE_STATUSES

    for run_id in manager.store.list_runs(statuses=ACTIVE_STATUSES)["id"]:
        manager.stop(int(run_id))
    for run_id in run_ids:
        if not manager.wait(run_id, timeout):
            manager.kill(run_id)
