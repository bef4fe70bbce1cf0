"""The runs table (issue 10): every run of every kind, one row each, with its headline figures.

`summarize_runs(store)` answers "what have I run and how did it go?" for the Runs page and the
front page. One SQL query reads the runs with their first, best and last reward: each figure is
a correlated subquery that SQLite answers from the index metrics(run_id, name, step, value)
(first and last are one index seek each, the best a scan of that run's reward entries in the
index), and the model, environment and algorithm come out of the config JSON with json_extract,
so 1,000 runs over 2,000,000 metric rows take a few tens of milliseconds (bench/bench_runs.py).

The reward of a run is the metric its kind declares as "how well is it doing" (RunKindSpec.main_metric:
'reward', the mean reward of a step's completions, for language-model runs; SB3's episode return
'charts/episodic_return' for Gymnasium runs), its best the maximum (the minimum where the kind says
lower is better); the model and algorithm columns are the config fields its kind names
(RunKindSpec.table_columns). Disk use (optional, it walks folders) counts what
`files.compute_run_disk_bytes` counts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from llmrl_core.core.errors import InputError
from llmrl_core.core.paths import get_home
from llmrl_core.runs.files import compute_tree_bytes
from llmrl_core.runs.kinds import list_kinds
from llmrl_core.runs.store import ACTIVE_STATUSES, RunStore

DEFAULT_REWARD_METRIC = "reward"  # a kind this installation does not know

COLUMNS = ["id", "name", "status", "kind", "model", "algorithm", "step", "total_steps", "first_reward", "best_reward",
           "last_reward", "solved_at_step", "created", "started", "ended", "duration_s", "disk_bytes", "note"]
SORTABLE = tuple(c for c in COLUMNS if c != "note")
CONFIG_COLUMNS = ("model", "algorithm")  # read from the config field each kind names (RunKindSpec.table_columns)


def _case_sql(values: dict[str, str], default: str | None) -> tuple[str, list[Any]]:
    """A SQL CASE over runs.kind giving values[kind] (default otherwise), and its parameters."""
    if not values:
        return ("?", [default]) if default is not None else ("NULL", [])
    cases = " ".join("WHEN ? THEN ?" for _ in values)
    params: list[Any] = [x for pair in values.items() for x in pair]
    if default is None:
        return f"CASE r.kind {cases} ELSE NULL END", params
    return f"CASE r.kind {cases} ELSE ? END", [*params, default]


def _select_kind_sql() -> tuple[str, list[Any]]:
    """The SELECT list's kind-dependent part: config columns, then first, best and last reward, with parameters."""
    specs = list_kinds()
    parts, params = [], []
    for column in CONFIG_COLUMNS:
        path_sql, path_params = _case_sql({s.name: f"$.{s.table_columns[column]}" for s in specs
                                           if column in s.table_columns}, None)
        parts.append(f"json_extract(r.config, {path_sql}) AS {column}")
        params += path_params
    name_sql, name_params = _case_sql({s.name: s.main_metric for s in specs}, DEFAULT_REWARD_METRIC)
    lower = [s.name for s in specs if not s.higher_is_better]
    best = (f"CASE WHEN r.kind IN ({','.join('?' * len(lower))}) THEN MIN(m.value) ELSE MAX(m.value) END"
            if lower else "MAX(m.value)")
    parts += [
        f"(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.name = {name_sql} AND m.value IS NOT NULL"
        "   ORDER BY m.step ASC LIMIT 1) AS first_reward",
        f"(SELECT {best} FROM metrics m WHERE m.run_id = r.id AND m.name = {name_sql}) AS best_reward",
        f"(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.name = {name_sql} AND m.value IS NOT NULL"
        "   ORDER BY m.step DESC LIMIT 1) AS last_reward",
    ]
    params += [*name_params, *lower, *name_params, *name_params]
    return ", ".join(parts), params


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with % _ and the escape character taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def summarize_runs(store: RunStore, *, statuses: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
                   search: str | None = None, sort_by: str = "id", descending: bool = True,
                   with_disk: bool = True, now: float | None = None) -> pd.DataFrame:
    """One row per run, columns COLUMNS: what it ran and how far and how well it went.

    - statuses / kinds keep only those (None keeps all);
    - search keeps runs whose name or note contains the text (case-insensitive for ASCII letters);
    - sort_by names a column (SORTABLE), descending by default (newest first); runs with no value sort last;
    - with_disk=False skips the disk walk (disk_bytes is then None): the rest is one SQL query.
    A run without a note, a model or an algorithm (a demo run) has "" there.
    `model` is the model spec of an LM run or the environment id of a gym run (the config fields its kind
    names); first/best/last_reward are the run's reward metric at its first step, its best and at its last step (the "before -> after"
    of a front page); solved_at_step is a gym run's step where it reached the environment's solved
    line (NaN when it did not, or has none); duration_s runs from start to end (to `now` for a run
    still active).
    """
    if sort_by not in SORTABLE:
        raise InputError(f"Cannot sort the runs table by {sort_by!r}; pick one of: {', '.join(SORTABLE)}.")
    kind_sql, params = _select_kind_sql()
    clauses: list[str] = []
    if statuses is not None:
        statuses = list(statuses)
        clauses.append(f"r.status IN ({','.join('?' * len(statuses))})" if statuses else "0")
        params_where: list[Any] = list(statuses)
    else:
        params_where = []
    if kinds is not None:
        kinds = list(kinds)
        clauses.append(f"r.kind IN ({','.join('?' * len(kinds))})" if kinds else "0")
        params_where += kinds
    if search and search.strip():
        clauses.append("(r.name LIKE ? ESCAPE '\\' OR COALESCE(r.note, '') LIKE ? ESCAPE '\\')")
        pattern = _like_pattern(search.strip())
        params_where += [pattern, pattern]
    sql = (
        f"SELECT r.id, r.name, r.status, r.kind, {kind_sql}, r.step, r.total_steps,"
        " json_extract(r.summary, '$.solved_at_step') AS solved_at_step,"
        " r.created, r.started, r.ended, r.note"
        " FROM runs r"
    )
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    rows = store.fetch_rows(sql, [*params, *params_where])
    read = ["id", "name", "status", "kind", "model", "algorithm", "first_reward", "best_reward", "last_reward", "step",
            "total_steps", "solved_at_step", "created", "started", "ended", "note"]
    frame = pd.DataFrame.from_records(rows, columns=read)
    for col in ("first_reward", "best_reward", "last_reward", "solved_at_step", "created", "started", "ended"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["step"] = frame["step"].fillna(0).astype(int)
    for col in ("model", "algorithm", "note"):  # text columns: "" when the run has none (never NaN)
        frame[col] = frame[col].fillna("").astype(object)
    now = time.time() if now is None else now
    active = frame["status"].isin(ACTIVE_STATUSES)
    end = frame["ended"].where(frame["ended"].notna() | ~active, now)
    frame["duration_s"] = (end - frame["started"]).clip(lower=0)
    frame["disk_bytes"] = _disk_bytes(store, frame["id"].tolist()) if with_disk else None
    frame = frame.sort_values(sort_by, ascending=not descending, na_position="last", kind="stable")
    return frame[COLUMNS].reset_index(drop=True)


def _disk_bytes(store: RunStore, run_ids: list[int]) -> list[int]:
    """Bytes on disk per run: its folder, plus its recorded artifacts elsewhere under $LLMRL_HOME.

    The same count as files.compute_run_disk_bytes, for many runs at once: the home folder is found
    once (get_home checks it is writable with a real write, which 1,000 runs would pay 2,000 times)
    and every artifact path comes from one query.
    """
    if not run_ids:
        return []
    home = get_home()
    home_resolved = home.resolve()
    elsewhere: dict[int, list[str]] = {}
    for run_id, path in store.fetch_rows("SELECT run_id, path FROM artifacts"):
        elsewhere.setdefault(int(run_id), []).append(path)
    sizes = []
    for run_id in run_ids:
        run_dir = home / "artifacts" / f"run-{int(run_id):05d}"  # files.get_run_dir, without its get_home
        total = compute_tree_bytes(run_dir)
        if run_id in elsewhere:
            inside = run_dir.resolve()
            for path in elsewhere[run_id]:
                target = Path(path).resolve()
                if target.is_relative_to(home_resolved) and not target.is_relative_to(inside):
                    total += compute_tree_bytes(target)
        sizes.append(total)
    return sizes

