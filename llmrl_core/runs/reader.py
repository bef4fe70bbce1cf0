"""The read side of the run store for pages that poll: an incremental metrics cache and downsampling.

- `MetricsCache(store, run_id).update()` reads only the metric rows written since its last call
  (by row id, see `RunStore.read_metrics_after`) and folds them into one wide frame (one row per
  step, one column per metric), so watching a 10,000-step run costs one small query a poll, not
  a re-read of everything.
- `downsample(frame, max_points)` keeps at most `max_points` points per series for drawing, like
  TensorBoard's scalar plugin does. TensorBoard keeps a reservoir sample; here each series keeps
  its first and last point and the minimum and maximum of each of (max_points - 2) / 2 equal
  buckets (the "min/max per pixel column" of time-series plotting, as in M4, Jugel et al. 2014,
  https://doi.org/10.14778/2732951.2732953). Unlike a random or strided sample it is
  deterministic (the curve does not shimmer from one poll to the next) and a one-step spike
  (a loss blow-up, a KL jump) always survives.

Nothing here imports Streamlit.
"""

from __future__ import annotations

import threading
from typing import Mapping

import numpy as np
import pandas as pd

from llmrl_core.runs.store import RunStore

DEFAULT_MAX_POINTS = 1000


def pivot_wide(long: pd.DataFrame) -> pd.DataFrame:
    """Long rows (step, name, value) as one row per step and one column per name (the last value wins).

    Columns with no finite value are left out, as `RunStore.read_metrics_wide` does.
    """
    if long.empty:
        return pd.DataFrame(columns=["step"])
    wide = long.drop_duplicates(["step", "name"], keep="last").pivot(index="step", columns="name", values="value")
    wide = wide.dropna(axis=1, how="all").astype(float)
    wide.columns.name = None
    return wide.sort_index()


class MetricsCache:
    """One run's metrics as a wide frame, grown by reading only the rows written since the last `update`.

    Thread-safe, so one cache per run can serve every browser session (the long first read is paid once).
    """

    def __init__(self, store: RunStore, run_id: int) -> None:
        self.store = store
        self.run_id = run_id
        self.last_row = 0  # the newest metric row id folded in so far
        self.rows_read = 0  # every row read from the store, for tests and benches
        self._wide = pd.DataFrame(dtype=float)  # indexed by step
        self._lock = threading.Lock()

    def update(self) -> bool:
        """Fold in the rows written since the last call; True when there were any."""
        with self._lock:
            new, self.last_row = self.store.read_metrics_after(self.run_id, self.last_row)
            if new.empty:
                return False
            self.rows_read += len(new)
            fresh = pivot_wide(new)
            if self._wide.empty:
                self._wide = fresh
            elif fresh.index.min() > self._wide.index.max():
                self._wide = pd.concat([self._wide, fresh])  # the usual case: only later steps
            else:
                self._wide = fresh.combine_first(self._wide)  # a value logged later for a step already read
            return True

    @property
    def wide(self) -> pd.DataFrame:
        """Every metric so far: a 'step' column, then one column per metric name, sorted by step (a new frame)."""
        wide = self._wide  # replaced, never changed in place, so no lock is needed to read it
        if wide.empty:
            return pd.DataFrame(columns=["step"])
        frame = wide.reset_index()
        return frame.rename(columns={frame.columns[0]: "step"})


def select_extremes(values: np.ndarray, max_points: int) -> np.ndarray:
    """Positions to keep from `values` (no NaN): all of them when they fit, else the first, the last and
    each bucket's minimum and maximum; at most `max_points` positions, in order."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max((max_points - 2) // 2, 1)
    inner = np.arange(1, n - 1)
    bucket = (inner - 1) * buckets // (n - 2)  # equal-count buckets over the interior points
    order = np.lexsort((values[inner], bucket))  # by bucket, then by value (stable for ties)
    starts = np.searchsorted(bucket[order], np.arange(buckets), side="left")
    ends = np.searchsorted(bucket[order], np.arange(buckets), side="right") - 1
    keep = np.concatenate(([0], inner[order[starts]], inner[order[ends]], [n - 1]))
    return np.unique(keep)


def make_band_pairs(columns: list[str]) -> dict[str, str]:
    """Each std column that draws a ± band around a mean column, mapped to that mean column
    ('reward_std' -> 'reward', 'rewards/x/std' -> 'rewards/x/mean', 'eval/std_reward' -> 'eval/mean_reward')."""
    present = set(columns)
    pairs = {}
    for col in columns:
        for suffix, mean in (("_std", ""), ("/std", "/mean")):
            if col.endswith(suffix) and col[: -len(suffix)] + mean in present:
                pairs[col] = col[: -len(suffix)] + mean
        if "std_" in col and col.replace("std_", "mean_") in present:
            pairs[col] = col.replace("std_", "mean_")
    return pairs


def downsample(frame: pd.DataFrame, max_points: int = DEFAULT_MAX_POINTS, x: str = "step",
               follow: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A wide frame with at most `max_points` non-NaN points per series (see `select_extremes`).

    Each series is reduced on its own (a sparse evaluation series keeps all its points); a
    column in `follow` (default: `make_band_pairs`) keeps exactly the steps of the column it
    follows, so a ± band stays aligned with its mean. Values a series drops become NaN, and rows
    that no series keeps are left out. A frame that already fits is returned as it is.
    """
    if len(frame) <= max_points:
        return frame
    columns = [c for c in frame.columns if c != x]
    follow = make_band_pairs(columns) if follow is None else dict(follow)
    keep: dict[str, np.ndarray] = {}
    for col in columns:
        if col in follow and follow[col] in frame.columns:
            continue
        values = frame[col].to_numpy(dtype=float)
        present = np.flatnonzero(~np.isnan(values))
        mask = np.zeros(len(frame), dtype=bool)
        mask[present[select_extremes(values[present], max_points)]] = True
        keep[col] = mask
    for col, leader in follow.items():
        if col in columns and leader in keep:
            keep[col] = keep[leader]
    rows = np.logical_or.reduce(list(keep.values())) if keep else np.ones(len(frame), dtype=bool)
    out = {x: frame[x].to_numpy()[rows]} if x in frame.columns else {}
    for col in columns:
        out[col] = np.where(keep[col], frame[col].to_numpy(dtype=float), np.nan)[rows]
    return pd.DataFrame(out, columns=list(frame.columns))
