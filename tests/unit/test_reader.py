"""The read side for polling pages: the heartbeat, the incremental metrics cache, downsampling."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrl_core.runs.reader import MetricsCache, downsample, make_band_pairs, select_extremes
from llmrl_core.runs.store import RunStore


def test_heartbeat_moves_with_progress_metrics_logs_and_status(store: RunStore):
    run_id = store.create_run("demo", "hb", {}, total_steps=10)
    first = store.read_run_heartbeat(run_id)
    assert (first.status, first.step, first.total_steps, first.last_metric_row) == ("queued", 0, 10, 0)
    assert store.read_run_heartbeat(run_id) == first  # nothing happened: equal, so a page skips its redraw
    store.log_metrics(run_id, 1, {"reward": 0.5})
    after_metrics = store.read_run_heartbeat(run_id)
    assert after_metrics != first and after_metrics.last_metric_row > 0
    store.add_log(run_id, "hello")
    assert store.read_run_heartbeat(run_id).last_log_id > 0
    store.set_progress(run_id, 1)
    store.set_status(run_id, "completed")
    final = store.read_run_heartbeat(run_id)
    assert (final.status, final.step) == ("completed", 1) and final.ended is not None
    assert store.read_run_heartbeat(run_id + 99) is None


def test_heartbeat_and_incremental_reads_use_the_run_index(store: RunStore):
    plans = [" ".join(str(r[-1]) for r in store._conn().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
             for sql, params in (("SELECT MAX(rowid) FROM metrics WHERE run_id=?", (1,)),
                                 ("SELECT rowid FROM metrics WHERE run_id=? AND rowid>?", (1, 5)))]
    assert all("INDEX metrics_run " in p for p in plans), plans


def test_metrics_cache_reads_only_new_rows(store: RunStore):
    run_id = store.create_run("demo", "m", {})
    other = store.create_run("demo", "other", {})
    for step in (1, 2, 3):
        store.log_metrics(run_id, step, {"reward": step / 10, "kl": 0.01 * step})
        store.log_metrics(other, step, {"reward": -1.0})
    cache = MetricsCache(store, run_id)
    assert cache.update()
    assert cache.rows_read == 6
    assert cache.wide["step"].tolist() == [1, 2, 3] and cache.wide["reward"].tolist() == [0.1, 0.2, 0.3]
    assert not cache.update() and cache.rows_read == 6  # nothing new: nothing read
    store.log_metrics(run_id, 4, {"reward": 0.4, "kl": 0.04})
    assert cache.update()
    assert cache.rows_read == 8  # only step 4's two rows
    # A value logged later for a step already read (a Gymnasium evaluation at a dump's step) is not missed.
    store.log_metrics(run_id, 2, {"eval/mean_reward": 9.0})
    assert cache.update() and cache.rows_read == 9
    wide = cache.wide
    assert wide["step"].tolist() == [1, 2, 3, 4]
    assert wide["eval/mean_reward"].isna().tolist() == [True, False, True, True]
    # The result equals a full read.
    full = store.read_metrics_wide(run_id)
    pd.testing.assert_frame_equal(wide[sorted(wide.columns)], full[sorted(full.columns)], check_dtype=False)


def test_select_extremes_hand_computed():
    values = np.array([0, 5, 1, 9, 2, 3, 8, 4], dtype=float)
    # 6 points: first, last, and min/max of 2 buckets over the 6 interior points ([5, 1, 9] and [2, 3, 8]).
    assert select_extremes(values, 6).tolist() == [0, 2, 3, 4, 6, 7]
    assert select_extremes(values, 8).tolist() == list(range(8))  # fits: all kept
    assert select_extremes(values, 4).tolist() == [0, 2, 3, 7]  # one bucket: its min (1) and max (9)


def test_downsample_keeps_first_last_and_spikes_of_a_long_series():
    steps = np.arange(1, 10_001)
    reward = np.sin(steps / 500.0)
    reward[4321] = 50.0  # a one-step spike
    frame = pd.DataFrame({"step": steps, "reward": reward, "reward_std": np.full(10_000, 0.1),
                          "eval/mean_reward": np.where(steps % 1000 == 0, 1.0, np.nan)})
    small = downsample(frame, max_points=1000)
    kept = small.dropna(subset=["reward"])
    assert len(kept) <= 1000
    assert kept["step"].iloc[0] == 1 and kept["step"].iloc[-1] == 10_000
    assert kept["reward"].max() == 50.0 and kept["reward"].min() == reward.min()
    assert small["eval/mean_reward"].notna().sum() == 10  # a sparse series keeps every point
    assert small["reward_std"].notna().tolist() == small["reward"].notna().tolist()  # the band follows its mean
    assert small["step"].is_monotonic_increasing
    assert downsample(frame.head(500), max_points=1000) is not None and len(downsample(frame.head(500))) == 500


def test_band_pairs():
    assert make_band_pairs(["reward", "reward_std", "rewards/v/mean", "rewards/v/std", "eval/mean_reward",
                            "eval/std_reward", "kl"]) == {
        "reward_std": "reward", "rewards/v/std": "rewards/v/mean", "eval/std_reward": "eval/mean_reward"}
