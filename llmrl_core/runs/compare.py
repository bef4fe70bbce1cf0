"""Compare runs (issue 10): their curves on shared axes, TensorBoard's smoothing, a config diff, final figures.

- `read_compare_frame(store, run_ids, metrics, x=...)` reads a few metrics of a few runs (one query
  per series, answered from the index metrics(run_id, name, step, value)) and returns one long
  frame, each series smoothed (optional) and downsampled to `max_points` with the runs reader's
  min/max buckets, so 5 runs x 20,000 steps x 3 metrics draw as 15 x 1,000 points. It is
  `read_series` (full resolution, cacheable) then `make_compare_frame` (smooth and cut).
- x is the step, the samples seen (the step x its kind's samples per step: an LM run's completions per
  step; a gym run's step already counts environment steps) or the wall time since the run started (seconds).
- `smooth_ema(values, weight)` is TensorBoard's debiased exponential moving average.
- `diff_configs({run_id: config})` keeps the fields that differ, nested fields as dotted keys.
- `summarize_finals(store, run_ids, metrics)` gives each run's final and best value per metric.
- `group_runs_by_kind(store, run_ids)`: runs of different kinds are never drawn on one axis (an LM run's
  20 updates against CartPole's 13,000 environment steps) nor diffed field by field: each `KindGroup`
  gets its own panel, with the x axis its kind's spec names (`get_x_title`), and
  `diff_configs_by_kind` diffs the configs within each group.

Nothing here imports Streamlit; llmrl_core/present/compare.py draws the frame.
"""

from __future__ import annotations

import json
import math
from itertools import chain
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from llmrl_core.core.errors import InputError
from llmrl_core.runs.kinds import find_kind
from llmrl_core.runs.reader import DEFAULT_MAX_POINTS, select_extremes
from llmrl_core.runs.store import RunStore

X_AXES = {"step": "step", "samples": "samples seen", "time": "wall time (s)"}  # x choice -> axis title
FRAME_COLUMNS = ["run_id", "run_name", "metric", "step", "x", "raw", "value"]
LOWER_IS_BETTER = ("loss",)  # a metric whose name contains one of these is best at its minimum
MISSING = None  # a config field a run does not have, in diff_configs


# ----------------------------------------------------------------------------- x axis


def get_samples_per_step(kind: str, config: Mapping[str, Any]) -> int:
    """How many samples one logged step stands for, as the run's kind declares it (RunKindSpec.samples_per_step):
    an LM run's completions per step, 1 for a gym run (its step counts environment steps already) and any
    kind this installation does not know."""
    spec = find_kind(kind)
    return spec.samples_per_step(config) if spec is not None else 1


# ----------------------------------------------------------------------------- kinds


class KindGroup(NamedTuple):
    """The chosen runs of one kind: one panel of curves, one config diff."""

    kind: str  # runs.kind
    label: str  # RunKindSpec.label ("Gymnasium agent (SB3)"); the kind's name for one this installation lacks
    step_label: str  # RunKindSpec.step_label: what the kind's step counts ('step', 'environment steps')
    run_ids: tuple[int, ...]  # in the caller's order


def group_runs_by_kind(store: RunStore, run_ids: Sequence[int]) -> list[KindGroup]:
    """The runs grouped by kind, groups in the order their first run was given; an unknown id is an InputError."""
    runs = _read_runs(store, [int(r) for r in dict.fromkeys(run_ids)])
    by_kind: dict[str, list[int]] = {}
    for run_id, run in runs.items():
        by_kind.setdefault(str(run["kind"]), []).append(run_id)
    groups = []
    for kind, ids in by_kind.items():
        spec = find_kind(kind)
        groups.append(KindGroup(kind, spec.label if spec is not None else kind,
                                spec.step_label if spec is not None else "step", tuple(ids)))
    return groups


def get_x_title(group: KindGroup, x: str = "step") -> str:
    """The x axis title of a group's panel: its kind's step label for 'step', else X_AXES's title."""
    if x not in X_AXES:
        raise InputError(f"x must be one of {', '.join(X_AXES)} (got {x!r}).")
    return group.step_label if x == "step" else X_AXES[x]


# ----------------------------------------------------------------------------- smoothing


def smooth_ema(values: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's scalar smoothing: a debiased exponential moving average.

    last = weight * last + (1 - weight) * value, starting from 0, and each point shows
    last / (1 - weight ** n) after n finite values, which undoes the pull toward the 0 start
    (as Adam's bias correction, arXiv 1412.6980). Non-finite values pass through unchanged and do
    not move the average; a constant series is returned as is (as TensorBoard does). weight 0 is
    no smoothing; weight must be in [0, 1).
    """
    if not (isinstance(weight, (int, float)) and 0 <= weight < 1):
        raise InputError(f"Smoothing must be at least 0 and below 1 (got {weight!r}); 0.6 is TensorBoard's default.")
    y = np.asarray(values, dtype=float)
    if weight == 0 or y.size == 0 or np.all(y == y[0]):
        return y.copy()
    out = y.copy()
    finite = np.isfinite(y)
    x = y[finite]
    if x.size == 0:
        return out
    last, rest, running = 0.0, 1.0 - weight, []
    for value in x.tolist():  # a plain loop: 20,000 points in about 2 ms, and no scipy import (1 s) on first use
        last = last * weight + rest * value
        running.append(last)
    n = np.arange(1, x.size + 1)
    out[finite] = np.asarray(running) / (1 - weight ** n)
    return out


# ----------------------------------------------------------------------------- frames


def _read_runs(store: RunStore, run_ids: Sequence[int]) -> dict[int, dict]:
    """The runs by id; an unknown id is an InputError."""
    runs = {}
    for run_id in run_ids:
        run = store.get_run(int(run_id))
        if run is None:
            raise InputError(f"No run with id {run_id}. See the ids with: python -m llmrl_core runs list")
        runs[int(run_id)] = run
    return runs


class Series(NamedTuple):
    """One run's one metric at full resolution (what `read_series` returns and a page may cache)."""

    run_id: int
    run_name: str
    metric: str
    step: np.ndarray  # (n,) int64, increasing
    x: np.ndarray  # (n,) float: step, samples seen or seconds since the run's start
    raw: np.ndarray  # (n,) float, no NaN


def read_series(store: RunStore, run_ids: Sequence[int], metrics: Sequence[str], x: str = "step") -> list[Series]:
    """Every finite point of each (run, metric), in the caller's run then metric order; pairs never logged are left out.

    One indexed query per series; rows go straight into numpy (np.fromiter), which is what keeps
    300,000 points near a third of a second. `x` is 'step', 'samples' or 'time' (X_AXES).
    """
    if x not in X_AXES:
        raise InputError(f"x must be one of {', '.join(X_AXES)} (got {x!r}).")
    run_ids = [int(r) for r in dict.fromkeys(run_ids)]
    metrics = list(dict.fromkeys(metrics))
    runs = _read_runs(store, run_ids)
    with_wall = x == "time"  # wall_time is read only when drawn: otherwise the index alone answers
    width = 3 if with_wall else 2
    sql = (f"SELECT step, value{', wall_time' if with_wall else ''} FROM metrics"
           " WHERE run_id=? AND name=? AND value IS NOT NULL ORDER BY step")
    found = []
    for run_id in run_ids:
        run = runs[run_id]
        for metric in metrics:
            rows = store.fetch_rows(sql, (run_id, metric))
            if not rows:
                continue
            table = np.fromiter(chain.from_iterable(rows), float, count=width * len(rows)).reshape(-1, width)
            steps = table[:, 0]
            if x == "step":
                xs = steps
            elif x == "samples":
                xs = steps * get_samples_per_step(run["kind"], run["config"])
            else:
                xs = table[:, 2] - float(run.get("started") or table[:, 2].min())
            found.append(Series(run_id, run["name"], metric, steps.astype(np.int64), xs, table[:, 1].copy()))
    return found


def make_compare_frame(series: Sequence[Series], max_points: int = DEFAULT_MAX_POINTS,
                       smoothing: float = 0.0) -> pd.DataFrame:
    """Series as one long frame (FRAME_COLUMNS), each smoothed over all its points, then cut to `max_points`.

    The cut keeps the first, last and each bucket's min and max of the raw values (runs/reader.py),
    so a spike survives and the smoothed line keeps the shape it has at full resolution.
    """
    if max_points < 4:
        raise InputError(f"max_points must be at least 4 (got {max_points}).")
    smooth_ema([], smoothing)  # checks the weight
    if not series:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    kept = []
    for one in series:
        smoothed = smooth_ema(one.raw, smoothing) if smoothing else one.raw
        keep = select_extremes(one.raw, max_points)
        kept.append((one, keep, smoothed[keep]))
    counts = [len(keep) for _, keep, _ in kept]
    return pd.DataFrame({
        "run_id": np.repeat([one.run_id for one, _, _ in kept], counts).astype(np.int64),
        "run_name": np.repeat(np.array([one.run_name for one, _, _ in kept], dtype=object), counts),
        "metric": np.repeat(np.array([one.metric for one, _, _ in kept], dtype=object), counts),
        "step": np.concatenate([one.step[keep] for one, keep, _ in kept]),
        "x": np.concatenate([one.x[keep] for one, keep, _ in kept]),
        "raw": np.concatenate([one.raw[keep] for one, keep, _ in kept]),
        "value": np.concatenate([smoothed for _, _, smoothed in kept]),
    }, columns=FRAME_COLUMNS)


def read_compare_frame(store: RunStore, run_ids: Sequence[int], metrics: Sequence[str], x: str = "step",
                       max_points: int = DEFAULT_MAX_POINTS, smoothing: float = 0.0) -> pd.DataFrame:
    """The chosen metrics of the chosen runs as one long frame (FRAME_COLUMNS), ready to draw:
    `make_compare_frame(read_series(...), max_points, smoothing)`.

    A page that moves a smoothing slider can cache `read_series` (it changes only when a run moves on)
    and call `make_compare_frame` alone. NaN values (a NaN logged) are left out.
    """
    if x not in X_AXES:
        raise InputError(f"x must be one of {', '.join(X_AXES)} (got {x!r}).")
    if max_points < 4:
        raise InputError(f"max_points must be at least 4 (got {max_points}).")
    smooth_ema([], smoothing)  # checks the weight before any reading
    return make_compare_frame(read_series(store, run_ids, metrics, x), max_points, smoothing)


def list_common_metrics(store: RunStore, run_ids: Sequence[int]) -> tuple[list[str], list[str]]:
    """(metrics every run logged, metrics at least one logged), each sorted: the compare picker's choices."""
    names = [set(store.metric_names(int(r))) for r in run_ids]
    if not names:
        return [], []
    return sorted(set.intersection(*names)), sorted(set.union(*names))


# ----------------------------------------------------------------------------- configs


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys ({'params': {'gamma': 0.99}} -> {'params.gamma': 0.99});
    lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, name + "."))
        else:
            flat[name] = value
    return flat


def _shown(value: Any) -> Any:
    """A config value as the diff table shows it: text as is, lists and dicts as JSON, others unchanged."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def diff_configs(configs: Mapping[Any, Mapping[str, Any]]) -> pd.DataFrame:
    """The config fields that differ between runs: one row per dotted field, one column per run key.

    A field some runs lack shows as None for them (and counts as a difference). Lists and dicts are
    compared by value and shown as JSON text, so the frame holds only plain values. Fields are in
    the first config's order, then the others'. With fewer than two configs nothing can differ.
    """
    keys = list(configs)
    flat = {k: flatten_config(dict(configs[k])) for k in keys}
    fields = list(dict.fromkeys(f for k in keys for f in flat[k]))
    rows = {}
    if len(keys) >= 2:
        for field in fields:
            values = [_shown(flat[k].get(field, MISSING)) for k in keys]
            present = [field in flat[k] for k in keys]
            if all(present) and all(_same(values[0], v) for v in values[1:]):
                continue
            rows[field] = values
    frame = pd.DataFrame(list(rows.values()), index=pd.Index(list(rows), name="field"), columns=keys, dtype=object)
    return frame


def describe_kinds_differ(groups: Sequence[KindGroup]) -> str:
    """'' for runs of one kind, else a sentence saying the kinds differ and how the configs are compared."""
    if len(groups) < 2:
        return ""
    kinds = ", ".join(f"{g.label} ({len(g.run_ids)} run{'s' if len(g.run_ids) > 1 else ''})" for g in groups)
    return (f"The runs are of different kinds ({kinds}): their configs have different fields, so they are "
            "compared only within each kind.")


def diff_configs_by_kind(store: RunStore, run_ids: Sequence[int],
                         name_run: Any = None) -> list[tuple[KindGroup, pd.DataFrame]]:
    """diff_configs within each kind group (a group of one run gets an empty frame: nothing to compare with).

    Columns are `name_run(run)` ('#12 name' by default) so a page and a report label runs alike.
    """
    name_run = name_run or (lambda run: f"#{run['id']} {run.get('name', '')}")
    found = []
    for group in group_runs_by_kind(store, run_ids):
        runs = [store.get_run(r) for r in group.run_ids]
        found.append((group, diff_configs({name_run(run): run.get("config") or {} for run in runs})))
    return found


def _same(a: Any, b: Any) -> bool:
    """Equal values: 1 equals 1.0, True equals only True, NaN equals NaN."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# ----------------------------------------------------------------------------- finals


def is_lower_better(metric: str) -> bool:
    """True for metrics that improve downward (a loss); the best of the others is their maximum."""
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


def summarize_finals(store: RunStore, run_ids: Sequence[int], metrics: Iterable[str]) -> pd.DataFrame:
    """Each run's final and best value of each metric: columns run_id, run_name, metric, final,
    final_step, best, best_step (best = maximum, or minimum for a loss; None when never logged)."""
    runs = _read_runs(store, [int(r) for r in dict.fromkeys(run_ids)])
    rows = []
    for run_id, run in runs.items():
        for metric in dict.fromkeys(metrics):
            last = store.fetch_rows(
                "SELECT step, value FROM metrics WHERE run_id=? AND name=? AND value IS NOT NULL"
                " ORDER BY step DESC LIMIT 1", (run_id, metric))
            order = "ASC" if is_lower_better(metric) else "DESC"
            best = store.fetch_rows(
                "SELECT step, value FROM metrics WHERE run_id=? AND name=? AND value IS NOT NULL"
                f" ORDER BY value {order}, step ASC LIMIT 1", (run_id, metric))
            rows.append({
                "run_id": run_id, "run_name": run["name"], "metric": metric,
                "final": last[0][1] if last else None, "final_step": last[0][0] if last else None,
                "best": best[0][1] if best else None, "best_step": best[0][0] if best else None,
            })
    frame = pd.DataFrame(rows, columns=["run_id", "run_name", "metric", "final", "final_step", "best", "best_step"])
    return frame.astype({"final": float, "best": float, "final_step": "Int64", "best_step": "Int64"})
