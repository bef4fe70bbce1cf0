"""The run store: one SQLite file (WAL mode) that every job writes and every page reads.

Tables: runs (with a free-text note), metrics (long format: run, step, name, value, wall time),
samples (one generation with its rewards and extras as JSON), artifacts (checkpoints, saved
agents), logs (human-readable events). A store written by an older version is brought up to
date when opened (`RunStore._migrate`: columns and indexes are added, nothing is rewritten). The UI never runs SQL itself; it calls these methods, in the
spirit of TensorBoard's DataProvider.

WAL lets the dashboard read while a job (in this process or a CLI process) writes. Each
thread gets its own connection, because sqlite3 connections must not cross threads.

Faults: a write that waits longer than `busy_timeout` for another process's lock raises a
StoreError that says so (a run's final status waits a few rounds longer); a full disk or a
damaged file also raise StoreError with what to do. A store file that cannot be opened at all
(not a database, truncated) is renamed to runs.sqlite.corrupt-<time>, never deleted, and a
fresh store starts; `RunStore.recovery_message` says so for the app to show.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import pandas as pd

from llmrl_core.core.errors import InputError, StoreError
from llmrl_core.core.paths import get_home, get_store_path

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running", "paused")
FINAL_STATUSES = ("completed", "stopped", "failed", "interrupted")
MAX_NAME_CHARS = 200  # a run's display name
MAX_NOTE_CHARS = 10_000  # a run's free-text note

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    error TEXT,
    owner TEXT,
    control TEXT,
    step INTEGER DEFAULT 0,
    total_steps INTEGER,
    summary TEXT,
    note TEXT,
    queue_pos REAL,
    sweep_id INTEGER,
    sweep_trial TEXT
);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    base TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    ended REAL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    wall_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run_step ON metrics(run_id, step);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id);  -- (run_id, rowid): the newest row and rows after one, in O(log n)
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    prompt TEXT,
    completion TEXT,
    rewards TEXT,
    extras TEXT
);
CREATE INDEX IF NOT EXISTS samples_run_step ON samples(run_id, step);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    meta TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    time REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id);
CREATE INDEX IF NOT EXISTS artifacts_run ON artifacts(run_id);
"""


def _process_start_time(pid: int) -> str:
    """Start time of a process (clock ticks since boot), so a reused pid is not mistaken for ours."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def make_owner(pid: int | None = None) -> str:
    """An id for a process (this one by default): host, pid and start time."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start_time(pid)}"


def parse_owner_pid(owner: str | None) -> int | None:
    """The pid in an owner id when the owner runs on this host, else None."""
    try:
        host, pid_text, _ = (owner or "").rsplit(":", 2)
        return int(pid_text) if host == socket.gethostname() else None
    except ValueError:
        return None


def is_owner_alive(owner: str | None) -> bool:
    """True when the process that owns a run still runs (on this host; other hosts are assumed alive)."""
    if not owner:
        return False
    try:
        host, pid_text, started = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _is_zombie(pid):  # exited, not yet reaped (e.g. where pid 1 does not reap orphans)
        return False
    return started == "?" or _process_start_time(pid) == started


def _is_zombie(pid: int) -> bool:
    """True when `pid` has exited but its parent has not collected it yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _json_default(value: Any) -> Any:
    """Make numpy scalars and other odd values JSON-safe."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def dumps(value: Any) -> str:
    """JSON with NaN written as null (SQLite and browsers both dislike bare NaN)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value), default=_json_default)


_CORRUPT_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
FINAL_STATUS_PATIENCE = 4  # a run's final status waits this many busy timeouts for a lock: losing it leaves a run looking alive


def _is_corrupt(err: sqlite3.Error) -> bool:
    """True for 'file is not a database' and 'database disk image is malformed'."""
    name = getattr(err, "sqlite_errorname", "") or ""
    return name.startswith(_CORRUPT_CODES) or "malformed" in str(err) or "not a database" in str(err)


def _is_busy(err: sqlite3.Error) -> bool:
    """True when another connection held the lock past the busy timeout."""
    name = getattr(err, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(err)


class RunStore:
    """All persistent state of runs. Safe to share between threads; one instance per process is plenty."""

    def __init__(self, path: str | Path | None = None, busy_timeout: float = 30.0) -> None:
        self.path = Path(path) if path else get_store_path()
        self.busy_timeout = float(busy_timeout)  # seconds a write waits for another process's lock
        self.recovered_from: Path | None = None  # where a damaged store file was moved at start-up
        self.recovery_message: str | None = None  # what to tell the user about it
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_or_recover()
            self._skip_used_run_ids()
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"Cannot open the run store at {self.path}: {err}. Check that LLMRL_HOME is writable.") from err

    def _skip_used_run_ids(self) -> None:
        """Start a store that never had a run above the run folders already on disk.

        Run files live in $LLMRL_HOME/artifacts/run-NNNNN by run id. A fresh store (the first, one
        started after a damaged store was moved aside, or a second store file) would hand out ids from
        1 again, and a new run would write into, and prune checkpoints of, an old run's folder.
        """
        if self._execute("SELECT 1 FROM sqlite_sequence WHERE name='runs'").fetchone():
            return
        try:
            folders = os.scandir(get_home() / "artifacts")
        except (OSError, StoreError):
            return
        used = [int(e.name[4:]) for e in folders if e.name.startswith("run-") and e.name[4:].isdigit()]
        if used:
            self._execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('runs', ?)", (max(used),))

    # ------------------------------------------------------------------ connection

    def _open_or_recover(self) -> None:
        """Create the tables; a file that is not a readable database is moved aside and replaced."""
        try:
            self._check_readable()
            return
        except sqlite3.DatabaseError as err:
            if not _is_corrupt(err):
                raise
            first_error = err
        self._close_conn()
        with open(self.path.with_name(self.path.name + ".recover-lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting together move it aside once
            try:
                self._check_readable()  # another process may have just replaced it
                return
            except sqlite3.DatabaseError as err:
                if not _is_corrupt(err):
                    raise
            self._close_conn()
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            for suffix in ("", "-wal", "-shm"):  # the WAL belongs with its database: keep them together
                source = Path(str(self.path) + suffix)
                if source.exists():
                    os.replace(source, str(aside) + suffix)
            self._check_readable()
        self.recovered_from = aside
        self.recovery_message = (
            f"The run store {self.path} could not be read ({first_error}), so it was moved aside to {aside} "
            "(nothing was deleted) and a fresh, empty store was started. Files of earlier runs under "
            f"{self.path.parent / 'artifacts'} are untouched. To try to recover its rows: "
            f"sqlite3 {aside} .recover | sqlite3 recovered.sqlite"
        )
        logger.warning(self.recovery_message)

    def _check_readable(self) -> None:
        """Open, create the tables and read the runs table (this finds a wrong or truncated file)."""
        conn = self._conn()
        conn.executescript(_SCHEMA)
        conn.execute("SELECT max(id) FROM runs").fetchone()
        self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring a store written by an older version up to this schema (adds what is missing, changes nothing else).

        - runs.note (issue 10): a free-text note per run.
        - runs.queue_pos (issue 19): a waiting run's place in the queue (runs/queue.py); NULL for every other run.
        - runs.sweep_id, runs.sweep_trial (issue 19): the sweep a run is a trial of, and its trial number, swept
          values and seed (runs/sweeps.py); NULL for a run started on its own. The sweeps table is created above.
        - metrics_run_name_step: (run_id, name, step, value), so a run's best and last value of one metric
          (the runs table) and a few metrics of a run (compare) are read from the index alone. On an old
          store with millions of metric rows it is built once, on the first open (a few seconds).
        """
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        for column, sql_type in (("note", "TEXT"), ("queue_pos", "REAL"), ("sweep_id", "INTEGER"), ("sweep_trial", "TEXT")):
            if column not in columns:
                try:
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {sql_type}")
                except sqlite3.OperationalError as err:  # another process added it a moment ago
                    if "duplicate column" not in str(err):
                        raise
        conn.execute("CREATE INDEX IF NOT EXISTS metrics_run_name_step ON metrics(run_id, name, step, value)")
        conn.execute("CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_id)")

    def _close_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def moved_aside_stores(self) -> list[Path]:
        """Damaged store files moved aside at some start-up (runs.sqlite.corrupt-<time>), oldest first."""
        return sorted(p for p in self.path.parent.glob(self.path.name + ".corrupt-*") if not p.name.endswith(("-wal", "-shm")))

    @contextlib.contextmanager
    def _translate_errors(self):
        """Turn SQLite's lock, disk-full and corruption errors into StoreErrors that say what to do."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if _is_busy(err):
                raise StoreError(
                    f"The run store {self.path} stayed locked by another process for more than {self.busy_timeout:g} s, "
                    "so this write was not saved. Another program holds a write transaction on it (a sqlite3 shell or "
                    "database browser with uncommitted changes, a backup tool): close it or commit there, then retry. "
                    "Everything recorded before is kept."
                ) from err
            if "full" in str(err):
                raise StoreError(f"The disk holding the run store {self.path} is full ({err}); free space there, then "
                                 "retry. Everything recorded before is kept.") from err
            raise
        except sqlite3.DatabaseError as err:
            if _is_corrupt(err):
                raise StoreError(
                    f"The run store {self.path} is damaged ({err}). Stop the workbench and move the file aside "
                    f"(or recover it: sqlite3 {self.path} .recover | sqlite3 recovered.sqlite); the next start creates "
                    "a fresh store."
                ) from err
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)  # autocommit; explicit BEGIN
            conn.row_factory = sqlite3.Row
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error:
                conn.close()  # e.g. not a database: leave no handle on a file about to be moved aside
                raise
            self._local.conn = conn
        return conn

    def _execute(self, sql: str, params: Iterable[Any] = (), patience: int = 1) -> sqlite3.Cursor:
        """Run one statement; a lock held elsewhere is waited for `patience` busy timeouts."""
        for attempt in range(patience):
            try:
                with self._translate_errors():
                    return self._conn().execute(sql, tuple(params))
            except StoreError as err:
                cause = err.__cause__
                if attempt == patience - 1 or not (isinstance(cause, sqlite3.Error) and _is_busy(cause)):
                    raise
                logger.warning("The run store is still locked; waiting again (%d of %d).", attempt + 2, patience)
        raise AssertionError("unreachable")

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        conn = self._conn()
        with self._translate_errors():
            conn.execute("BEGIN IMMEDIATE")  # take the write lock first (waits busy_timeout), so no upgrade deadlock
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def write_transaction(self):
        """One write transaction (BEGIN IMMEDIATE ... COMMIT) on this thread's connection, rolled back on an error.

        What runs inside reads and changes the store as one step: no other process writes in between
        (the queue's claim of the next run relies on it).
        """
        conn = self._conn()
        with self._translate_errors():
            conn.execute("BEGIN IMMEDIATE")  # take the write lock first (waits busy_timeout), so no upgrade deadlock
        try:
            yield conn
            with self._translate_errors():
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def get_setting(self, key: str) -> str | None:
        """A workbench-wide setting shared by the server and the CLI (e.g. the queue's limit), or None."""
        row = self._execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_setting(self, key: str, value: str | None) -> None:
        """Set a workbench-wide setting; None removes it (its default applies again)."""
        if value is None:
            self._execute("DELETE FROM settings WHERE key=?", (key,))
        else:
            self._execute("INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                          (key, str(value)))

    # ------------------------------------------------------------------ runs

    def create_run(self, kind: str, name: str, config: Mapping[str, Any], total_steps: int | None = None) -> int:
        """Add a run in status 'queued' and return its id."""
        cur = self._execute(
            "INSERT INTO runs(kind, name, config, status, created, total_steps) VALUES (?,?,?,?,?,?)",
            (kind, name, dumps(dict(config)), "queued", time.time(), total_steps),
        )
        return int(cur.lastrowid)

    def mark_started(self, run_id: int, owner: str | None = None) -> None:
        """Set status 'running', the start time and the owning process.

        A control request made before the start (pause or stop while a worker was still importing) stays,
        so the job honours it at its first step.
        """
        self._execute(
            "UPDATE runs SET status='running', started=COALESCE(started, ?), owner=? WHERE id=?",
            (time.time(), owner or make_owner(), run_id),
        )

    def assign_owner(self, run_id: int, owner: str) -> None:
        """Record the process that will run a queued run (a worker just launched), so liveness checks see it."""
        self._execute("UPDATE runs SET owner=? WHERE id=?", (owner, run_id))

    def set_status(self, run_id: int, status: str, error: str | None = None) -> None:
        """Change a run's status; a final status also sets the end time."""
        ended = time.time() if status in FINAL_STATUSES else None
        self._execute(
            "UPDATE runs SET status=?, error=COALESCE(?, error), ended=COALESCE(?, ended) WHERE id=?",
            (status, error, ended, run_id), patience=FINAL_STATUS_PATIENCE if ended else 1,
        )

    def set_progress(self, run_id: int, step: int, total_steps: int | None = None) -> None:
        """Record how far a run has got (for progress bars and ETA)."""
        self._execute(
            "UPDATE runs SET step=?, total_steps=COALESCE(?, total_steps) WHERE id=?", (step, total_steps, run_id)
        )

    def set_summary(self, run_id: int, summary: Mapping[str, Any]) -> None:
        """Store a small JSON summary (final figures) on the run."""
        self._execute("UPDATE runs SET summary=? WHERE id=?", (dumps(dict(summary)), run_id))

    def rename_run(self, run_id: int, name: str) -> None:
        """Give a run a new display name (surrounding spaces dropped; an empty name is refused)."""
        name = str(name).strip()
        if not name:
            raise InputError("A run's name cannot be empty; type a name, or keep the old one.")
        if len(name) > MAX_NAME_CHARS:
            raise InputError(f"A run's name is limited to {MAX_NAME_CHARS} characters (got {len(name)}); shorten it.")
        self._require_run(run_id)
        self._execute("UPDATE runs SET name=? WHERE id=?", (name, run_id))

    def set_note(self, run_id: int, note: str | None) -> None:
        """Attach a free-text note to a run (what was tried, what came of it); empty or None clears it."""
        text = str(note or "").strip()
        if len(text) > MAX_NOTE_CHARS:
            raise InputError(f"A run's note is limited to {MAX_NOTE_CHARS} characters (got {len(text)}); shorten it.")
        self._require_run(run_id)
        self._execute("UPDATE runs SET note=? WHERE id=?", (text or None, run_id))

    def clone_config(self, run_id: int) -> tuple[str, dict]:
        """(kind, config) of a run, a fresh copy to start a new run with the same settings ("clone").

        The config is exactly what the run was started with (resume_from / init_from included), so the
        page that opens with it can show and change everything before starting.
        """
        run = self._require_run(run_id)
        return run["kind"], json.loads(dumps(run["config"]))  # a deep copy the caller may change freely

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its metrics, samples, artifacts rows and logs (files stay on disk).

        A run that is queued, running or paused by a live process is refused with an InputError: its
        process would go on writing rows for a run that no longer exists. Stop it first. A run left
        'running' by a process that has died (not yet marked interrupted) may be deleted.
        """
        row = self._execute("SELECT status, owner FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is not None and row["status"] in ACTIVE_STATUSES and is_owner_alive(row["owner"]):
            raise InputError(f"Run {run_id} is {row['status']}; stop it first (and wait for it to end), then delete it.")
        self._execute("DELETE FROM runs WHERE id=?", (run_id,))

    def _require_run(self, run_id: int) -> dict:
        """The run as a dict, or an InputError naming the missing id."""
        run = self.get_run(run_id)
        if run is None:
            raise InputError(f"No run with id {run_id}. See the ids with: python -m llmrl_core runs list")
        return run

    def request_control(self, run_id: int, command: str | None) -> None:
        """Ask the process running `run_id` to 'stop', 'pause' or 'resume' (works across processes)."""
        if command not in {"stop", "pause", "resume", None}:
            raise ValueError(f"unknown control command {command!r}")
        self._execute("UPDATE runs SET control=? WHERE id=?", (command, run_id))

    def read_control(self, run_id: int) -> str | None:
        """The pending control command of a run, if any."""
        row = self._execute("SELECT control FROM runs WHERE id=?", (run_id,)).fetchone()
        return row["control"] if row else None

    def get_run(self, run_id: int) -> dict | None:
        """One run as a dict (config and summary parsed), or None."""
        row = self._execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return self._run_dict(row) if row else None

    @staticmethod
    def _run_dict(row: sqlite3.Row) -> dict:
        run = dict(row)
        run["config"] = json.loads(run["config"]) if run["config"] else {}
        run["summary"] = json.loads(run["summary"]) if run.get("summary") else {}
        return run

    def list_runs(self, kind: str | None = None, statuses: Iterable[str] | None = None) -> pd.DataFrame:
        """Runs newest first, as a frame (config left as JSON text for cheap listing)."""
        sql = "SELECT id, kind, name, status, created, started, ended, step, total_steps, error, owner, queue_pos FROM runs"
        clauses, params = [], []
        if kind:
            clauses.append("kind=?")
            params.append(kind)
        if statuses:
            statuses = list(statuses)
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id DESC"
        rows = [dict(r) for r in self._execute(sql, params).fetchall()]
        columns = ["id", "kind", "name", "status", "created", "started", "ended", "step", "total_steps", "error", "owner",
                   "queue_pos"]
        return pd.DataFrame(rows, columns=columns)

    def recover_interrupted(self) -> list[int]:
        """Mark runs left active by a process that no longer exists as 'interrupted'; return their ids.

        Runs waiting in the queue (queue_pos set) are not interrupted: they have not started, and wait on.
        """
        rows = self._execute(
            f"SELECT id, owner FROM runs WHERE status IN ({','.join('?' * len(ACTIVE_STATUSES))}) AND queue_pos IS NULL",
            ACTIVE_STATUSES,
        ).fetchall()
        dead = [int(r["id"]) for r in rows if not is_owner_alive(r["owner"])]
        for run_id in dead:
            self.set_status(run_id, "interrupted", error="The process running this run ended before the run did.")
            self.add_log(run_id, "The process running this run ended before the run did; marked interrupted.", "warning")
        return dead

    # ------------------------------------------------------------------ metrics

    def log_metrics(self, run_id: int, step: int, metrics: Mapping[str, float], wall_time: float | None = None) -> None:
        """Append one step's scalars (non-numbers are skipped, NaN is stored as NULL)."""
        now = wall_time or time.time()
        rows = []
        for name, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            rows.append((run_id, int(step), str(name), number if math.isfinite(number) else None, now))
        if rows:
            self._executemany("INSERT INTO metrics(run_id, step, name, value, wall_time) VALUES (?,?,?,?,?)", rows)

    def read_metrics(self, run_id: int, since_step: int = -1, names: Iterable[str] | None = None) -> pd.DataFrame:
        """Metrics with step > since_step, long format (step, name, value, wall_time); cheap for polling."""
        sql = "SELECT step, name, value, wall_time FROM metrics WHERE run_id=? AND step>?"
        params: list[Any] = [run_id, since_step]
        if names:
            names = list(names)
            sql += f" AND name IN ({','.join('?' * len(names))})"
            params.extend(names)
        sql += " ORDER BY step"
        rows = [tuple(r) for r in self._execute(sql, params).fetchall()]
        return pd.DataFrame(rows, columns=["step", "name", "value", "wall_time"])

    def read_metrics_wide(self, run_id: int, since_step: int = -1) -> pd.DataFrame:
        """Metrics as one row per step and one column per name (the shape charts want)."""
        long = self.read_metrics(run_id, since_step)
        if long.empty:
            return pd.DataFrame(columns=["step"])
        wide = long.pivot_table(index="step", columns="name", values="value", aggfunc="last")
        wide.columns.name = None
        return wide.reset_index()

    def metric_names(self, run_id: int) -> list[str]:
        """Names of every metric a run has logged."""
        rows = self._execute("SELECT DISTINCT name FROM metrics WHERE run_id=? ORDER BY name", (run_id,)).fetchall()
        return [r["name"] for r in rows]

    # ------------------------------------------------------------------ samples

    def add_samples(self, run_id: int, step: int, samples: Iterable[Mapping[str, Any]]) -> None:
        """Store generations: each with prompt, completion, rewards (dict) and any extras (dict)."""
        rows = [
            (
                run_id,
                int(step),
                str(s.get("prompt", "")),
                str(s.get("completion", "")),
                dumps(s.get("rewards", {})),
                dumps(s.get("extras", {})),
            )
            for s in samples
        ]
        if rows:
            self._executemany(
                "INSERT INTO samples(run_id, step, prompt, completion, rewards, extras) VALUES (?,?,?,?,?,?)", rows
            )

    def read_samples(self, run_id: int, since_step: int = -1, step: int | None = None, limit: int = 5000) -> pd.DataFrame:
        """Samples (step, prompt, completion, rewards dict, extras dict), newest steps last."""
        sql = "SELECT id, step, prompt, completion, rewards, extras FROM samples WHERE run_id=? AND step>?"
        params: list[Any] = [run_id, since_step]
        if step is not None:
            sql += " AND step=?"
            params.append(step)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = [dict(r) for r in self._execute(sql, params).fetchall()][::-1]
        for r in rows:
            r["rewards"] = json.loads(r["rewards"] or "{}")
            r["extras"] = json.loads(r["extras"] or "{}")
        return pd.DataFrame(rows, columns=["id", "step", "prompt", "completion", "rewards", "extras"])

    # ------------------------------------------------------------------ artifacts and logs

    def add_artifact(self, run_id: int, step: int, kind: str, path: str | Path, meta: Mapping[str, Any] | None = None) -> int:
        """Record a file or folder a run wrote (checkpoint, agent, episode)."""
        cur = self._execute(
            "INSERT INTO artifacts(run_id, step, kind, path, meta, created) VALUES (?,?,?,?,?,?)",
            (run_id, int(step), kind, str(path), dumps(dict(meta or {})), time.time()),
        )
        return int(cur.lastrowid)

    def list_artifacts(self, run_id: int, kind: str | None = None) -> pd.DataFrame:
        """Artifacts of a run, oldest first."""
        sql = "SELECT id, step, kind, path, meta, created FROM artifacts WHERE run_id=?"
        params: list[Any] = [run_id]
        if kind:
            sql += " AND kind=?"
            params.append(kind)
        rows = [dict(r) for r in self._execute(sql + " ORDER BY id", params).fetchall()]
        for r in rows:
            r["meta"] = json.loads(r["meta"] or "{}")
        return pd.DataFrame(rows, columns=["id", "step", "kind", "path", "meta", "created"])

    def remove_artifacts(self, run_id: int, paths: Iterable[str | Path]) -> int:
        """Drop the rows of artifacts whose files were deleted (e.g. old checkpoints); return how many."""
        paths = [str(p) for p in paths]
        if not paths:
            return 0
        cur = self._execute(
            f"DELETE FROM artifacts WHERE run_id=? AND path IN ({','.join('?' * len(paths))})", [run_id, *paths]
        )
        return cur.rowcount

    def update_artifact_meta(self, run_id: int, paths: Iterable[str | Path], changes: Mapping[str, Any]) -> None:
        """Merge `changes` into the meta of the run's artifacts at `paths` (e.g. {'optimizer': False})."""
        for path in paths:
            rows = self._execute("SELECT id, meta FROM artifacts WHERE run_id=? AND path=?", (run_id, str(path))).fetchall()
            for row in rows:
                meta = {**json.loads(row["meta"] or "{}"), **dict(changes)}
                self._execute("UPDATE artifacts SET meta=? WHERE id=?", (dumps(meta), row["id"]))

    def add_log(self, run_id: int, message: str, level: str = "info") -> None:
        """Append a human-readable event to a run's log."""
        self._execute("INSERT INTO logs(run_id, time, level, message) VALUES (?,?,?,?)", (run_id, time.time(), level, message))

    def read_logs(self, run_id: int, since_id: int = 0) -> pd.DataFrame:
        """Log lines of a run with id > since_id."""
        rows = [dict(r) for r in self._execute(
            "SELECT id, time, level, message FROM logs WHERE run_id=? AND id>? ORDER BY id", (run_id, since_id)
        ).fetchall()]
        return pd.DataFrame(rows, columns=["id", "time", "level", "message"])

    # ------------------------------------------------------------------ read side: polling (see runs/reader.py)

    def fetch_rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        """Rows of one read-only query as plain tuples (about 3x faster than sqlite3.Row for many rows).

        For the engine's read-side modules (runs/table.py, runs/compare.py) that need one aggregate query
        rather than a loop of method calls; pages never call it.
        """
        cur = self._conn().cursor()
        cur.row_factory = None
        with self._translate_errors():
            return cur.execute(sql, tuple(params)).fetchall()

    def read_run_heartbeat(self, run_id: int) -> RunHeartbeat | None:
        """What a page polls: status, progress and the newest metric/log/artifact row ids, in one indexed SELECT.

        Two equal heartbeats mean nothing a page shows has changed, so it can skip its reads and redraws.
        """
        row = self._execute(
            "SELECT status, step, total_steps, ended, name,"
            " (SELECT MAX(rowid) FROM metrics WHERE run_id=runs.id),"
            " (SELECT MAX(id) FROM logs WHERE run_id=runs.id),"
            " (SELECT MAX(id) FROM artifacts WHERE run_id=runs.id)"
            " FROM runs WHERE id=?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        return RunHeartbeat(row[0], int(row[1] or 0), row[2], row[3], row[4], int(row[5] or 0), int(row[6] or 0),
                            int(row[7] or 0))

    def read_metrics_after(self, run_id: int, after_rowid: int = 0) -> tuple[pd.DataFrame, int]:
        """Metric rows written after row `after_rowid` (long format: step, name, value) and the last row id read.

        Row ids grow with every write, so unlike `since_step` this never misses a row logged later for an
        earlier step (a Gymnasium evaluation lands on a step whose rollout metrics were already read).
        """
        cur = self._conn().cursor()
        cur.row_factory = None  # plain tuples: about 3x faster than sqlite3.Row for a long run's first read
        rows = cur.execute(
            "SELECT rowid, step, name, value FROM metrics WHERE run_id=? AND rowid>? ORDER BY rowid",
            (run_id, after_rowid),
        ).fetchall()
        if not rows:
            return pd.DataFrame(columns=["step", "name", "value"]), after_rowid
        frame = pd.DataFrame.from_records(rows, columns=["rowid", "step", "name", "value"], exclude=["rowid"])
        frame["value"] = frame["value"].astype(float)  # NULL (a NaN logged) -> NaN
        return frame, int(rows[-1][0])


class RunHeartbeat(NamedTuple):
    """A run's cheap 'did it move?' fingerprint (RunStore.read_run_heartbeat)."""

    status: str
    step: int
    total_steps: int | None
    ended: float | None
    name: str
    last_metric_row: int
    last_log_id: int
    last_artifact_id: int
