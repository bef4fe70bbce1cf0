"""The run queue: runs wait in the store for a free slot, and start in order when one frees.

A waiting run has status 'queued' and a place in the queue (runs.queue_pos, lowest first); a run being
launched, running or paused has none. Slots: every active run that is not waiting takes as many slots as it
has processes on this machine (num_processes / num_machines), and the limit (the store setting
'max_concurrent'; default: one per GPU, one on a CPU-only machine) caps their sum. A run that alone needs more
slots than the limit still starts once nothing else runs, so it never blocks the queue for good.

Who starts a waiting run: the server's supervisor (RunManager.dispatch, every pass) starts the runs the
dashboard queued (owner NULL); a CLI command run with --queue waits for its own run (owner = that process) to
reach the head and a slot, then runs it in the foreground. The queue is strictly in order: a run at the head
that cannot start yet holds back the runs behind it.

Every claim (`claim_next`) is one write transaction that takes the run out of the queue and records its new
owner, so two servers on one store, or a server and a CLI, never start the same run twice; a server killed
between a claim and the launch leaves a run whose owner is dead, which the next supervisor fails as
vanished rather than starting it again. The queue lives in the store, so it survives a server restart.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from llmrl_core.core.errors import InputError
from llmrl_core.runs.store import ACTIVE_STATUSES, RunStore, is_owner_alive

MAX_CONCURRENT_KEY = "max_concurrent"
MAX_CONCURRENT_LIMIT = 64
CANCELLED_MESSAGE = "Cancelled while waiting in the queue; it never started."
ABANDONED_MESSAGE = "The command that queued this run ended before the run's turn came; it never started."


def count_gpus() -> int:
    """GPUs on this machine, without importing torch when nothing has yet (the CLI lists the queue in a second)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


MAX_CONCURRENT_ENV = "LLMRL_MAX_CONCURRENT"
"""Environment variable with the default limit for a machine (the store's setting, if any, still wins)."""


def get_default_max_concurrent() -> int:
    """LLMRL_MAX_CONCURRENT when set; else one run per GPU, one on a CPU-only machine (two runs on two cores
    thrash each other)."""
    value = os.environ.get(MAX_CONCURRENT_ENV, "").strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    return max(1, count_gpus())


def read_limit(value: str | None) -> int:
    """The limit a stored setting value gives: itself when a positive whole number, else the default."""
    return max(1, int(value)) if value is not None and str(value).isdigit() else get_default_max_concurrent()


def get_max_concurrent(store: RunStore) -> int:
    """The limit on slots in use at once: the store's setting, else the default."""
    return read_limit(store.get_setting(MAX_CONCURRENT_KEY))


def set_max_concurrent(store: RunStore, value: int | None) -> int:
    """Set the limit (None: back to the default); returns the limit now in force."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENT_LIMIT:
            raise InputError(f"The number of runs at once must be a whole number from 1 to {MAX_CONCURRENT_LIMIT} "
                             f"(got {value!r}).")
    store.set_setting(MAX_CONCURRENT_KEY, None if value is None else str(value))
    return get_max_concurrent(store)


def count_slots(config: Mapping[str, Any] | str | None) -> int:
    """Slots a run takes on this machine: its processes here (a multi-process run takes one per process)."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            config = {}
    config = config if isinstance(config, Mapping) else {}
    try:
        processes = int(config.get("num_processes") or 1)
        machines = int(config.get("num_machines") or 1)
    except (TypeError, ValueError):
        return 1
    return max(1, -(-processes // max(1, machines)))


# ---------------------------------------------------------------------- reading


def list_queue(store: RunStore) -> pd.DataFrame:
    """The waiting runs in order: id, kind, name, position (1 = next), slots, created, owner ('' = the dashboard's)."""
    rows = store.fetch_rows(
        "SELECT id, kind, name, config, created, owner FROM runs WHERE status='queued' AND queue_pos IS NOT NULL "
        "ORDER BY queue_pos, id")
    frame = pd.DataFrame(
        [{"id": int(r[0]), "kind": r[1], "name": r[2], "position": i + 1, "slots": count_slots(r[3]),
          "created": float(r[4]), "owner": r[5] or ""} for i, r in enumerate(rows)],
        columns=["id", "kind", "name", "position", "slots", "created", "owner"])
    return frame


def read_queue_head(store: RunStore) -> dict | None:
    """The run next in the queue as {id, kind, slots, owner}, or None when nothing waits (one indexed read: the
    supervisor asks every pass)."""
    rows = store.fetch_rows("SELECT id, kind, config, owner FROM runs WHERE status='queued' AND queue_pos IS NOT NULL "
                            "ORDER BY queue_pos, id LIMIT 1")
    if not rows:
        return None
    run_id, kind, config, owner = rows[0]
    return {"id": int(run_id), "kind": kind, "slots": count_slots(config), "owner": owner or ""}


def get_queue_position(store: RunStore, run_id: int) -> tuple[int, int] | None:
    """(position, waiting runs) of a waiting run, or None when it is not waiting."""
    queue = list_queue(store)
    match = queue.index[queue["id"] == run_id]
    return None if len(match) == 0 else (int(queue.loc[match[0], "position"]), len(queue))


USED_SLOTS_SQL = (f"SELECT config, owner FROM runs WHERE status IN ({','.join('?' * len(ACTIVE_STATUSES))}) "
                  "AND queue_pos IS NULL")


def _sum_slots(rows: list) -> int:
    """Slots taken by (config, owner) rows of active runs not waiting, whose process lives (or is being created)."""
    return sum(count_slots(config) for config, owner in rows if not owner or is_owner_alive(owner))


def count_used_slots(store: RunStore) -> int:
    """Slots in use now (a plain read: the Runs page asks at every rerun)."""
    return _sum_slots(store.fetch_rows(USED_SLOTS_SQL, ACTIVE_STATUSES))


# ---------------------------------------------------------------------- changing


def enqueue(store: RunStore, run_id: int, owner: str | None = None) -> int:
    """Put a run created as 'queued' at the end of the queue; returns its position. `owner`: the CLI process that
    will start it itself (None: the server's supervisor starts it)."""
    with store.write_transaction() as conn:
        row = conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None or row["status"] != "queued":
            raise InputError(f"Run {run_id} cannot wait in the queue: it is {row['status'] if row else 'not in the store'}.")
        last = conn.execute("SELECT MAX(queue_pos) FROM runs WHERE queue_pos IS NOT NULL").fetchone()[0]
        conn.execute("UPDATE runs SET queue_pos=?, owner=? WHERE id=?", ((last or 0) + 1, owner, run_id))
        return int(conn.execute("SELECT COUNT(*) FROM runs WHERE status='queued' AND queue_pos IS NOT NULL").fetchone()[0])


def has_waiting(store: RunStore) -> bool:
    """True when any run waits (one indexed read, no write lock: what the supervisor asks every pass)."""
    return bool(store.fetch_rows("SELECT 1 FROM runs WHERE status='queued' AND queue_pos IS NOT NULL LIMIT 1"))


def _waiting_ids(conn: Any) -> list[int]:
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM runs WHERE status='queued' AND queue_pos IS NOT NULL ORDER BY queue_pos, id").fetchall()]


def move(store: RunStore, run_id: int, to: int) -> int:
    """Move a waiting run to position `to` (1 = next; beyond the end = last); returns its new position."""
    if isinstance(to, bool) or not isinstance(to, int) or to < 1:
        raise InputError(f"A queue position is a whole number from 1 (next) up (got {to!r}).")
    with store.write_transaction() as conn:
        order = _waiting_ids(conn)
        if run_id not in order:
            raise InputError(f"Run {run_id} is not waiting in the queue; `runs queue` lists the waiting runs.")
        order.remove(run_id)
        order.insert(min(to, len(order) + 1) - 1, run_id)
        conn.executemany("UPDATE runs SET queue_pos=? WHERE id=?", [(i + 1, rid) for i, rid in enumerate(order)])
        return order.index(run_id) + 1


def cancel(store: RunStore, run_id: int, message: str = CANCELLED_MESSAGE) -> None:
    """Take a waiting run out of the queue for good (status 'stopped'; it never started)."""
    with store.write_transaction() as conn:
        done = conn.execute("UPDATE runs SET status='stopped', queue_pos=NULL, error=?, ended=? "
                            "WHERE id=? AND status='queued' AND queue_pos IS NOT NULL", (message, time.time(), run_id))
        if done.rowcount == 0:
            row = conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
            state = "not in the store" if row is None else f"{row['status']}, not waiting in the queue"
            raise InputError(f"Run {run_id} is {state}: only waiting runs can be cancelled (stop a running one).")
        conn.execute("INSERT INTO logs(run_id, time, level, message) VALUES (?,?,?,?)",
                     (run_id, time.time(), "warning", message))


def _drop_abandoned(conn: Any) -> None:
    """Waiting runs queued by a CLI process that has ended: out of the queue, stopped (nobody will start them)."""
    rows = conn.execute("SELECT id, owner FROM runs WHERE status='queued' AND queue_pos IS NOT NULL "
                        "AND owner IS NOT NULL").fetchall()
    for row in rows:
        if not is_owner_alive(row["owner"]):
            conn.execute("UPDATE runs SET status='stopped', queue_pos=NULL, error=?, ended=? WHERE id=?",
                         (ABANDONED_MESSAGE, time.time(), row["id"]))


def claim_next(store: RunStore, owner: str, run_id: int | None = None) -> int | None:
    """Take the head of the queue out of it when a slot is free, recording `owner` as its process; return its id.

    run_id None (the server): only a run the dashboard queued (no owner); a CLI's run at the head is left for
    that CLI. run_id given (a CLI with --queue): only that run, and only at the head. None when nothing may
    start now.
    """
    with store.write_transaction() as conn:
        _drop_abandoned(conn)
        head = conn.execute("SELECT id, config, owner FROM runs WHERE status='queued' AND queue_pos IS NOT NULL "
                            "ORDER BY queue_pos, id LIMIT 1").fetchone()
        if head is None or (run_id is None and head["owner"]) or (run_id is not None and int(head["id"]) != run_id):
            return None
        used = _sum_slots([tuple(r) for r in conn.execute(USED_SLOTS_SQL, ACTIVE_STATUSES).fetchall()])
        value = conn.execute("SELECT value FROM settings WHERE key=?", (MAX_CONCURRENT_KEY,)).fetchone()
        limit = read_limit(None if value is None else value[0])
        if used > 0 and used + count_slots(head["config"]) > limit:
            return None
        conn.execute("UPDATE runs SET queue_pos=NULL, owner=? WHERE id=?", (owner, head["id"]))
        return int(head["id"])
