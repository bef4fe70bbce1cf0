"""Sweeps: many queued runs of one kind from one base config, each a trial; the best found, with a CI over seeds.

A sweep (its spec: runs/sweep_spec.py) lives in the store's `sweeps` table; each of its runs is an ordinary
queued run (runs/queue.py) whose `sweep_id` names the sweep and whose `sweep_trial` holds its trial
number, swept values and seed. So a sweep survives restarts like any queued run, the queue's limit
runs its trials one after another (or as many at once as the limit allows), and each trial can be
watched, compared, exported and cloned like any run.

How trials are chosen (Optuna, a well-kept library, rather than a search of our own):
  * grid: every combination, all queued at once;
  * random: `trials` sets drawn by Optuna's RandomSampler, all queued at once;
  * tpe: Optuna's TPESampler. Its first sets are random (n_startup_trials); after those, a new set is asked
    only when a slot's worth of sets has finished, from a study rebuilt from the store each time, so
    nothing about the search lives outside the store.
Each set runs once per seed. A set's value is the mean over its seeds of each run's final main metric
(the kind's RunKindSpec.main_metric, the mean of its last WINDOW logged values, as headlines read it).

Pruning (off by default): Optuna's MedianPruner, fed each run's main metric at tenths of its budget.
A running trial whose best value so far is below the median of the finished trials at the same tenth
is stopped ('pruned'), once PRUNE_STARTUP runs have finished and it is past PRUNE_WARMUP tenths.

Who advances a sweep: `advance_sweeps`, called by the server's supervisor on every pass for sweeps
queued from the dashboard (owner NULL), and by `python -m llmrl_core sweep` for its own. It asks TPE
for new sets, prunes, and marks a sweep completed when its last trial has ended.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from llmrl_core.core.errors import InputError
from llmrl_core.runs.headline import WINDOW
from llmrl_core.runs.queue import cancel as cancel_queued, get_max_concurrent
from llmrl_core.runs.store import ACTIVE_STATUSES, FINAL_STATUSES, RunStore, dumps, is_owner_alive
from llmrl_core.runs.sweep_spec import SweepParam, SweepSpec, check_spec, format_value, list_grid, make_trial_config

SWEEP_STATUSES = ("running", "completed", "stopped")
PRUNE_STARTUP = 3  # finished runs before the median rule prunes anything
PRUNE_WARMUP = 3  # tenths of a run's budget before it can be pruned
PRUNE_EVERY_S = 5.0  # how often a sweep's running trials are checked
TENTHS = 10  # the pruner's steps: a run's progress in tenths of its budget
PRUNED_MESSAGE = "Pruned by the sweep: its {metric} ({value}) was below the median of finished trials ({median}) at {tenth}/10 of its budget."

_last_pruned: dict[int, float] = {}  # sweep id -> when its trials were last checked (this process)
_lock = threading.Lock()


# ---------------------------------------------------------------------- creating


def _insert_runs(conn: Any, sweep_id: int, spec: SweepSpec, base: Mapping[str, Any], sets: Sequence[Mapping[str, Any]],
                 first_trial: int, owner: str | None) -> list[int]:
    """Queue one run per parameter set and seed (inside the caller's write transaction); returns their ids."""
    label = spec.name or f"sweep {sweep_id}"
    last = conn.execute("SELECT MAX(queue_pos) FROM runs WHERE queue_pos IS NOT NULL").fetchone()[0] or 0
    ids = []
    for n, values in enumerate(sets, start=first_trial):
        for seed in spec.seeds:
            config = make_trial_config(spec.kind, base, values, seed)
            shown = " ".join(f"{k}={format_value(v)}" for k, v in values.items())
            name = f"{label} · t{n} {shown} · seed {seed}"
            last += 1
            cur = conn.execute(
                "INSERT INTO runs(kind, name, config, status, created, total_steps, queue_pos, owner, sweep_id, sweep_trial) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (spec.kind, name, dumps(config), "queued", time.time(), _total_steps(config), last, owner,
                 sweep_id, dumps({"trial": n, "values": dict(values), "seed": seed})))
            ids.append(int(cur.lastrowid))
    return ids


def _total_steps(config: Mapping[str, Any]) -> int | None:
    """A run's budget as the pages record it (total_steps for gym and agent runs, steps for LM runs)."""
    for key in ("total_steps", "steps"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return None


def create_sweep(store: RunStore, spec: SweepSpec, base: Mapping[str, Any], owner: str | None = None) -> int:
    """Check the spec, then record the sweep and queue its first runs in one transaction; return the sweep id.

    owner None: the server's supervisor starts the runs (the dashboard); a CLI process's owner: that
    process runs them itself. A spec that fails a check raises InputError and queues nothing.
    """
    check_spec(spec, base)
    first_sets = _first_sets(spec)
    with store.write_transaction() as conn:
        cur = conn.execute("INSERT INTO sweeps(kind, name, spec, base, status, created, owner) VALUES (?,?,?,?,?,?,?)",
                           (spec.kind, spec.name or "", dumps(spec.to_dict()), dumps(dict(base)), "running", time.time(), owner))
        sweep_id = int(cur.lastrowid)
        if not spec.name:
            conn.execute("UPDATE sweeps SET name=? WHERE id=?", (f"sweep {sweep_id}", sweep_id))
        _insert_runs(conn, sweep_id, spec, base, first_sets, 1, owner)
    return sweep_id


def _distributions(spec: SweepSpec) -> dict[str, Any]:
    """Optuna's distribution for each swept field: a range is a Float/IntDistribution, values are categorical."""
    import optuna

    out = {}
    for p in spec.params:
        if p.values:
            out[p.name] = optuna.distributions.CategoricalDistribution(list(p.values))
        elif isinstance(p.low, int) and isinstance(p.high, int):
            out[p.name] = optuna.distributions.IntDistribution(p.low, p.high, log=p.log)
        else:
            out[p.name] = optuna.distributions.FloatDistribution(float(p.low), float(p.high), log=p.log)
    return out


def count_tpe_startup(spec: SweepSpec) -> int:
    """Random sets TPE draws before it models anything: a third of the trials, at least 2, at most 10 (Optuna's default)."""
    return max(2, min(10, spec.trials // 3))


def _sampler(spec: SweepSpec, offset: int) -> Any:
    """The sampler of a sweep, seeded from its first seed and how many sets it has (so a rebuilt study moves on)."""
    import optuna

    seed = (spec.seeds[0] * 7919 + offset) % 2**32
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=count_tpe_startup(spec))


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _first_sets(spec: SweepSpec) -> list[dict[str, Any]]:
    """The parameter sets queued at once: the whole grid, every random set, TPE's random start-up sets."""
    if spec.method == "grid":
        return list_grid(spec)
    optuna = _quiet_optuna()
    n = spec.trials if spec.method == "random" else min(spec.trials, count_tpe_startup(spec))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=spec.seeds[0]))
    dists = _distributions(spec)
    return [study.ask(dists).params for _ in range(n)]


# ---------------------------------------------------------------------- reading


def list_sweeps(store: RunStore) -> pd.DataFrame:
    """Every sweep, newest first: id, kind, name, status, created, ended, runs (planned), runs_made (queued so far: TPE
    adds its sets as trials finish), ended_runs, description."""
    rows = store.fetch_rows(
        "SELECT s.id, s.kind, s.name, s.status, s.created, s.ended, s.spec, COUNT(r.id), "
        f"SUM(CASE WHEN r.status IN ({','.join('?' * len(FINAL_STATUSES))}) THEN 1 ELSE 0 END) "
        "FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.id GROUP BY s.id ORDER BY s.id DESC", FINAL_STATUSES)
    out = []
    for r in rows:
        spec = SweepSpec.from_dict(json.loads(r[6]))
        out.append({"id": int(r[0]), "kind": r[1], "name": r[2], "status": r[3], "created": r[4], "ended": r[5],
                    "runs": spec.n_runs, "runs_made": int(r[7] or 0), "ended_runs": int(r[8] or 0),
                    "description": spec.describe()})
    return pd.DataFrame(out, columns=["id", "kind", "name", "status", "created", "ended", "runs", "runs_made",
                                      "ended_runs", "description"])


def get_sweep(store: RunStore, sweep_id: int) -> dict:
    """One sweep as a dict: its row with `spec` a SweepSpec and `base` the base config; InputError when unknown."""
    rows = store.fetch_rows("SELECT id, kind, name, spec, base, status, created, ended, owner FROM sweeps WHERE id=?",
                            (int(sweep_id),))
    if not rows:
        raise InputError(f"No sweep with id {sweep_id}; `python -m llmrl_core sweep list` lists them.")
    r = rows[0]
    return {"id": int(r[0]), "kind": r[1], "name": r[2], "spec": SweepSpec.from_dict(json.loads(r[3])),
            "base": json.loads(r[4]), "status": r[5], "created": r[6], "ended": r[7], "owner": r[8]}


def get_main_metric(kind: str) -> tuple[str, bool]:
    """(main metric, higher is better) of a kind: what a sweep ranks its trials by."""
    from llmrl_core.runs.kinds import find_kind

    spec = find_kind(kind)
    return (spec.main_metric, spec.higher_is_better) if spec is not None else ("reward", True)


def read_metric_curve(store: RunStore, run_id: int, metric: str) -> pd.DataFrame:
    """(step, value) of one metric of a run, one row per logged step, finite values only."""
    long = store.read_metrics(int(run_id), names=[metric])
    if long.empty:
        return pd.DataFrame(columns=["step", "value"])
    long = long.drop_duplicates("step", keep="last")[["step", "value"]].astype(float)
    return long[long["value"].map(math.isfinite)]


def compute_final_value(curve: pd.DataFrame) -> float:
    """A run's result on its main metric: the mean of its last WINDOW logged values (NaN when none)."""
    return float(curve["value"].tail(WINDOW).mean()) if len(curve) else math.nan


def read_trials(store: RunStore, sweep_id: int) -> pd.DataFrame:
    """One row per run of a sweep, in trial order: run_id, trial, seed, each swept field, status ('pruned' for a
    run the sweep stopped), value (its final main metric), seconds (run time so far), step, total_steps."""
    sweep = get_sweep(store, sweep_id)
    names = [p.name for p in sweep["spec"].params]
    metric, _ = get_main_metric(sweep["kind"])
    rows = store.fetch_rows("SELECT id, status, started, ended, step, total_steps, sweep_trial FROM runs "
                            "WHERE sweep_id=? ORDER BY id", (int(sweep_id),))
    now = time.time()
    out = []
    for run_id, status, started, ended, step, total, trial_json in rows:
        trial = json.loads(trial_json or "{}")
        values = trial.get("values") or {}
        seconds = (float(ended or now) - float(started)) if started else math.nan
        value = compute_final_value(read_metric_curve(store, run_id, metric)) if status != "queued" or started else math.nan
        out.append({"run_id": int(run_id), "trial": int(trial.get("trial", 0)), "seed": int(trial.get("seed", 0)),
                    **{n: values.get(n) for n in names},
                    "status": "pruned" if trial.get("pruned") and status in FINAL_STATUSES + ("running",) else status,
                    "value": value, "seconds": seconds, "step": int(step or 0), "total_steps": total})
    columns = ["run_id", "trial", "seed", *names, "status", "value", "seconds", "step", "total_steps"]
    return pd.DataFrame(out, columns=columns).sort_values(["trial", "seed"], kind="stable").reset_index(drop=True)


def summarize_sets(trials: pd.DataFrame, names: Sequence[str], higher_is_better: bool = True,
                   confidence: float = 0.95) -> pd.DataFrame:
    """One row per parameter set: its values, runs, runs_done, mean (over its completed runs' values), the
    t-interval over seeds (low, high; NaN with one seed), best_run (its best seed's run) and is_best (the
    best mean among sets with every seed completed, else among sets with any)."""
    from scipy import stats

    rows = []
    for trial, group in trials.groupby("trial", sort=True):
        done = group[(group["status"] == "completed") & group["value"].notna()]
        values = done["value"].astype(float)
        mean = float(values.mean()) if len(values) else math.nan
        low = high = math.nan
        if len(values) >= 2:
            half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * float(values.std(ddof=1)) / math.sqrt(len(values))
            low, high = mean - half, mean + half
        best_run = None
        if len(done):
            best_run = int(done.loc[done["value"].idxmax() if higher_is_better else done["value"].idxmin(), "run_id"])
        rows.append({"trial": int(trial), **{n: group[n].iloc[0] for n in names}, "runs": len(group),
                     "runs_done": len(done), "mean": mean, "low": low, "high": high, "best_run": best_run})
    frame = pd.DataFrame(rows, columns=["trial", *names, "runs", "runs_done", "mean", "low", "high", "best_run"])
    frame["is_best"] = False
    if not frame.empty:
        scored = frame[frame["mean"].notna()]
        full = scored[scored["runs_done"] == scored["runs"]]
        pool = full if len(full) else scored
        if len(pool):
            best = pool["mean"].idxmax() if higher_is_better else pool["mean"].idxmin()
            frame.loc[best, "is_best"] = True
    return frame


@dataclass(frozen=True)
class SweepView:
    """Everything the sweep's views show, read once: the sweep, its swept fields, the metric that ranks its trials,
    each run (read_trials) and each parameter set (summarize_sets)."""

    sweep: dict
    names: list[str]
    metric: str
    higher_is_better: bool
    trials: pd.DataFrame
    sets: pd.DataFrame

    @property
    def spec(self) -> SweepSpec:
        return self.sweep["spec"]

    @property
    def best(self) -> pd.Series | None:
        """The best parameter set's row, or None before any trial completed."""
        best = self.sets[self.sets["is_best"]]
        return best.iloc[0] if len(best) else None

    @property
    def best_trial(self) -> int | None:
        return None if self.best is None else int(self.best["trial"])


def read_sweep_view(store: RunStore, sweep_id: int) -> SweepView:
    """The sweep, its trials and its parameter sets (one read of each run's main metric)."""
    sweep = get_sweep(store, sweep_id)
    names = [p.name for p in sweep["spec"].params]
    metric, higher = get_main_metric(sweep["kind"])
    trials = read_trials(store, sweep_id)
    return SweepView(sweep, names, metric, higher, trials, summarize_sets(trials, names, higher))


def rank_sets(sets: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Parameter sets with a result, best first."""
    scored = sets[sets["mean"].notna()]
    return scored.sort_values("mean", ascending=not higher_is_better, kind="stable")


def pick_best_runs(store: RunStore, sweep_id: int, n: int = 3) -> list[int]:
    """The runs 'Compare the best 3' opens: the best seed's run of each of the n best parameter sets."""
    view = read_sweep_view(store, sweep_id)
    return [int(r) for r in rank_sets(view.sets, view.higher_is_better)["best_run"].head(n) if r == r and r is not None]


def describe_best(view: SweepView) -> str:
    """One line on the best set: 'best: trial 3, learning_rate=0.001 n_steps=64 · charts/episodic_return 480.2 (95% CI
    455.0 to 505.4 over 2 seeds)', or why there is none yet."""
    row = view.best
    if row is None:
        return "best: none yet (no trial has completed)"
    shown = " ".join(f"{n}={format_value(row[n])}" for n in view.names)
    spread = (f" (95% CI {row['low']:.4g} to {row['high']:.4g} over {int(row['runs_done'])} seeds)"
              if row["low"] == row["low"] else f" ({int(row['runs_done'])} seed{'s' if row['runs_done'] != 1 else ''})")
    return f"best: trial {int(row['trial'])}, {shown} · {view.metric} {row['mean']:.4g}{spread}"


# ---------------------------------------------------------------------- advancing


def has_running_sweeps(store: RunStore) -> bool:
    """True when any sweep is still running (one small read: the supervisor asks every pass)."""
    return bool(store.fetch_rows("SELECT 1 FROM sweeps WHERE status='running' LIMIT 1"))


def advance_sweeps(store: RunStore, owner: str | None = None, sweep_id: int | None = None) -> None:
    """Move every running sweep of `owner` (None: the dashboard's) on: TPE's next sets, pruning, completion.

    A sweep whose CLI owner has died is stopped (the queue drops its waiting runs; nobody would start them).
    """
    sql = "SELECT id, owner FROM sweeps WHERE status='running'"
    rows = store.fetch_rows(sql + (" AND id=?" if sweep_id is not None else ""),
                            (int(sweep_id),) if sweep_id is not None else ())
    for sid, sweep_owner in rows:
        if owner is None and sweep_owner and not is_owner_alive(sweep_owner):
            _finish(store, int(sid), "stopped")
            continue
        if (sweep_owner or None) != owner:
            continue
        with _lock:
            _advance_one(store, int(sid))


def _advance_one(store: RunStore, sweep_id: int) -> None:
    sweep = get_sweep(store, sweep_id)
    spec: SweepSpec = sweep["spec"]
    if spec.prune and time.monotonic() - _last_pruned.get(sweep_id, 0.0) >= PRUNE_EVERY_S:
        _last_pruned[sweep_id] = time.monotonic()
        prune_running(store, sweep_id)
    counts = store.fetch_rows(
        "SELECT COUNT(DISTINCT json_extract(sweep_trial, '$.trial')), "
        f"SUM(CASE WHEN status IN ({','.join('?' * len(ACTIVE_STATUSES))}) THEN 1 ELSE 0 END) "
        "FROM runs WHERE sweep_id=?", (*ACTIVE_STATUSES, sweep_id))[0]
    sets_made, active = int(counts[0] or 0), int(counts[1] or 0)
    if spec.method == "tpe" and sets_made < spec.trials:
        outstanding = store.fetch_rows(
            "SELECT COUNT(DISTINCT json_extract(sweep_trial, '$.trial')) FROM runs WHERE sweep_id=? "
            f"AND status IN ({','.join('?' * len(ACTIVE_STATUSES))})", (sweep_id, *ACTIVE_STATUSES))[0][0] or 0
        if outstanding < max(1, get_max_concurrent(store)):
            _queue_tpe_set(store, sweep, sets_made)
            return
    if active == 0 and sets_made >= spec.n_sets:
        _finish(store, sweep_id, "completed")


def _finish(store: RunStore, sweep_id: int, status: str) -> None:
    with store.write_transaction() as conn:
        conn.execute("UPDATE sweeps SET status=?, ended=? WHERE id=? AND status='running'", (status, time.time(), sweep_id))


def _queue_tpe_set(store: RunStore, sweep: Mapping[str, Any], sets_made: int) -> None:
    """Ask TPE for the next set, from a study holding every finished set of the sweep, and queue its runs."""
    optuna = _quiet_optuna()
    spec: SweepSpec = sweep["spec"]
    _, higher = get_main_metric(sweep["kind"])
    dists = _distributions(spec)
    study = optuna.create_study(direction="maximize" if higher else "minimize", sampler=_sampler(spec, sets_made))
    trials = read_trials(store, sweep["id"])
    names = [p.name for p in spec.params]
    for _, group in trials.groupby("trial"):
        if group["status"].isin(ACTIVE_STATUSES).any():
            continue
        params = {n: _as_param(group[n].iloc[0], spec.params[i]) for i, n in enumerate(names)}
        done = group[(group["status"] == "completed") & group["value"].notna()]
        if len(done):
            state, value = optuna.trial.TrialState.COMPLETE, float(done["value"].mean())
        elif (group["status"] == "pruned").any():
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            state, value = optuna.trial.TrialState.FAIL, None
        try:
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state))
        except ValueError:  # a value outside the distribution (an old spec): the sampler goes on without it
            continue
    params = study.ask(dists).params
    with store.write_transaction() as conn:
        made = conn.execute("SELECT COUNT(DISTINCT json_extract(sweep_trial, '$.trial')) FROM runs WHERE sweep_id=?",
                            (sweep["id"],)).fetchone()[0]
        if made != sets_made:  # another process queued a set meanwhile
            return
        _insert_runs(conn, sweep["id"], spec, sweep["base"], [params], sets_made + 1, sweep["owner"])


def _as_param(value: Any, param: SweepParam) -> Any:
    """A stored value as Optuna's distribution holds it (JSON turns 64.0 into 64)."""
    if param.is_range and not isinstance(param.low, int):
        return float(value)
    return value


def compute_tenths(curve: pd.DataFrame, total_steps: float | None) -> dict[int, float]:
    """The main metric at each tenth of a run's budget reached so far: the mean of the last WINDOW values logged
    up to that point (the pruner's intermediate values)."""
    if not total_steps or curve.empty:
        return {}
    out = {}
    for tenth in range(1, TENTHS + 1):
        upto = curve[curve["step"] <= total_steps * tenth / TENTHS]
        if len(upto) and float(curve["step"].max()) >= total_steps * tenth / TENTHS * 0.999:
            out[tenth] = float(upto["value"].tail(WINDOW).mean())
    return out


def prune_running(store: RunStore, sweep_id: int) -> list[int]:
    """Stop the sweep's running runs that Optuna's MedianPruner rejects; return their ids (see the module doc)."""
    optuna = _quiet_optuna()
    sweep = get_sweep(store, sweep_id)
    metric, higher = get_main_metric(sweep["kind"])
    rows = store.fetch_rows("SELECT id, status, total_steps, sweep_trial FROM runs WHERE sweep_id=?", (sweep_id,))
    finished = [r for r in rows if r[1] == "completed"]
    running = [r for r in rows if r[1] == "running" and not json.loads(r[3] or "{}").get("pruned")]
    if len(finished) < PRUNE_STARTUP or not running:
        return []
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP, n_warmup_steps=PRUNE_WARMUP)
    study = optuna.create_study(direction="maximize" if higher else "minimize", pruner=pruner)
    for run_id, _, total, _ in finished:
        tenths = compute_tenths(read_metric_curve(store, run_id, metric), total)
        if tenths:
            study.add_trial(optuna.trial.create_trial(value=tenths[max(tenths)], intermediate_values=tenths))
    pruned = []
    for run_id, _, total, trial_json in running:
        tenths = compute_tenths(read_metric_curve(store, run_id, metric), total)
        if not tenths:
            continue
        trial = study.ask()
        for tenth, value in sorted(tenths.items()):
            trial.report(value, tenth)
        if trial.should_prune():
            last = max(tenths)
            others = [t.intermediate_values[last] for t in study.get_trials(deepcopy=False)
                      if t.state == optuna.trial.TrialState.COMPLETE and last in t.intermediate_values]
            median = float(pd.Series(others).median()) if others else math.nan
            info = {**json.loads(trial_json or "{}"), "pruned": True}
            with store.write_transaction() as conn:
                conn.execute("UPDATE runs SET sweep_trial=? WHERE id=?", (dumps(info), run_id))
            store.add_log(run_id, PRUNED_MESSAGE.format(metric=metric, value=f"{tenths[last]:.4g}",
                                                        median=f"{median:.4g}", tenth=last), "warning")
            store.request_control(run_id, "stop")
            pruned.append(int(run_id))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # this study is thrown away; keep it tidy
    return pruned


def cancel_sweep(store: RunStore, sweep_id: int) -> tuple[int, int]:
    """Cancel a sweep's waiting runs and ask its running ones to stop; (cancelled, stopping). The sweep ends 'stopped'."""
    get_sweep(store, sweep_id)
    cancelled = stopping = 0
    for run_id, status, queue_pos in store.fetch_rows("SELECT id, status, queue_pos FROM runs WHERE sweep_id=?", (sweep_id,)):
        if status == "queued" and queue_pos is not None:
            try:
                cancel_queued(store, int(run_id), "Cancelled with its sweep before it started.")
                cancelled += 1
            except InputError:  # it started a moment ago
                store.request_control(int(run_id), "stop")
                stopping += 1
        elif status in ACTIVE_STATUSES:
            store.request_control(int(run_id), "stop")
            stopping += 1
    _finish(store, sweep_id, "stopped")
    return cancelled, stopping
