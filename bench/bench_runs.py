"""What the Runs table, a compare and a report cost the server on a big store (issue 10's speed figures).

A store in a temporary LLMRL_HOME is filled with synthetic runs: 1,000 runs and 2,000,000 metric
rows in all (995 ordinary runs, half language-model runs logging 10 metrics a step and half
Gymnasium runs logging SB3's names, plus 5 long runs of 20,000 steps x 3 metrics), written with
executemany in one transaction. Then, each a median over --repeats (the first, cold, call shown too):
  runs table   summarize_runs(store): every run with best/last reward (with and without the disk walk);
  compare      5 runs x 20,000 steps x 3 metrics read, smoothed (EMA 0.6), downsampled to 1,000 points
               per series and the Plotly figure built (and serialised to JSON, as Streamlit sends it);
  report       a 5,000-step LM run written as an HTML report (when llmrl_core.present.report exists);
  store size   the SQLite file and its WAL on disk.
Targets (issue 10): runs table < 0.5 s, compare < 1 s, report < 3 s.

Run: python bench/bench_runs.py [--repeats 5] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOTAL_RUNS = 1000
TOTAL_POINTS = 2_000_000
LONG_RUNS, LONG_STEPS, LONG_METRICS = 5, 20_000, ("reward", "kl", "entropy")
LM_NAMES = ["reward", "reward_std", "kl", "entropy", "loss", "grad_norm", "step_time", "completions/mean_length",
            "frac_reward_zero_std", "rewards/length/mean"]
GYM_NAMES = ["charts/episodic_return", "rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "train/loss",
             "train/value_loss", "train/entropy_loss", "train/approx_kl", "train/clip_fraction", "eval/mean_reward"]
LM_CONFIG = {"model": "bundled", "algorithm": "grpo", "prompts_per_step": 4, "num_generations": 4, "steps": 200,
             "learning_rate": 1e-5, "use_lora": False}
GYM_CONFIG = {"env_id": "CartPole-v1", "algo": "ppo", "total_steps": 50_000, "n_envs": 8, "params": {"gamma": 0.99}}
STATUSES = ["completed"] * 7 + ["failed", "stopped", "interrupted"]


def fill_store(store) -> tuple[list[int], int]:
    """Write the synthetic runs; return (the long runs' ids, rows written)."""
    import numpy as np

    rng = np.random.default_rng(0)
    now = time.time()
    ordinary = TOTAL_RUNS - LONG_RUNS
    per_run = (TOTAL_POINTS - LONG_RUNS * LONG_STEPS * len(LONG_METRICS)) // ordinary  # rows each ordinary run holds
    run_rows, metric_rows = [], []
    for i in range(TOTAL_RUNS):
        run_id = i + 1
        long = i >= ordinary
        kind = "lm_rl" if long or i % 2 == 0 else "gym"
        config = {**(LM_CONFIG if kind == "lm_rl" else GYM_CONFIG), "seed": i}
        names = list(LONG_METRICS) if long else (LM_NAMES if kind == "lm_rl" else GYM_NAMES)
        rows = LONG_STEPS * len(LONG_METRICS) if long else per_run + (1 if i < (TOTAL_POINTS - LONG_RUNS * LONG_STEPS
                                                                                   * len(LONG_METRICS)) % ordinary else 0)
        steps = -(-rows // len(names))
        started = now - 86_400 + i * 60
        status = STATUSES[i % len(STATUSES)]
        run_rows.append((run_id, kind, f"bench {kind} {i}", json.dumps(config), status, started, started,
                         started + steps, steps, steps, f"note {i}" if i % 3 == 0 else None))
        values = np.cumsum(rng.normal(0.01, 0.1, size=rows))
        for k in range(rows):
            step, name = divmod(k, len(names))
            metric_rows.append((run_id, step + 1, names[name], float(values[k]), started + step))
    conn = store._conn()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO runs(id, kind, name, config, status, created, started, ended, step, total_steps, note)"
                     " VALUES (?,?,?,?,?,?,?,?,?,?,?)", run_rows)
    conn.executemany("INSERT INTO metrics(run_id, step, name, value, wall_time) VALUES (?,?,?,?,?)", metric_rows)
    conn.execute("COMMIT")
    return list(range(ordinary + 1, TOTAL_RUNS + 1)), len(metric_rows)


def add_report_run(store, steps: int = 5000) -> int:
    """A finished 5,000-step LM run with 10 metrics a step and 8 samples every 50 steps."""
    import numpy as np

    rng = np.random.default_rng(1)
    run_id = store.create_run("lm_rl", "report run", {**LM_CONFIG, "steps": steps}, steps)
    store.mark_started(run_id)
    t0 = time.time() - steps
    rows = [(run_id, s, n, float(v), t0 + s) for s in range(1, steps + 1) for n, v in zip(LM_NAMES, rng.normal(size=10))]
    store._executemany("INSERT INTO metrics(run_id, step, name, value, wall_time) VALUES (?,?,?,?,?)", rows)
    for s in range(50, steps + 1, 50):
        store.add_samples(run_id, s, [{"prompt": f"prompt {j}", "completion": f"completion {s}.{j} <b>bold?</b>",
                                       "rewards": {"length": float(rng.random()), "total": float(rng.random())}}
                                      for j in range(8)])
    store.set_progress(run_id, steps, steps)
    store.set_status(run_id, "completed")
    return run_id


def measure(fn, repeats: int) -> tuple[float, float, float]:
    """(first call, median, min) seconds of `fn` over 1 + repeats calls."""
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:]), min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary LLMRL_HOME and print where it is")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    os.environ["LLMRL_HOME"] = str(home)

    import torch

    from llmrl_core.present.compare import make_compare_figure
    from llmrl_core.runs.compare import read_compare_frame
    from llmrl_core.runs.store import RunStore
    from llmrl_core.runs.table import summarize_runs

    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores visible, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure below)")
    store = RunStore(home / "runs.sqlite")
    t0 = time.perf_counter()
    long_ids, written = fill_store(store)
    print(f"filled: {TOTAL_RUNS} runs, {written:,} metric rows in {time.perf_counter() - t0:.1f} s")

    first, med, low = measure(lambda: summarize_runs(store), args.repeats)
    table = summarize_runs(store)
    print(f"runs table ({len(table)} rows, disk walk included): median {med * 1000:.0f} ms, min {low * 1000:.0f} ms, "
          f"first {first * 1000:.0f} ms (target < 500 ms)")
    first, med, low = measure(lambda: summarize_runs(store, with_disk=False), args.repeats)
    print(f"runs table without disk walk: median {med * 1000:.0f} ms, min {low * 1000:.0f} ms, first {first * 1000:.0f} ms")
    first, med, low = measure(lambda: summarize_runs(store, statuses=["completed"], kinds=["gym"], search="note 1",
                                                     sort_by="best_reward", with_disk=False), args.repeats)
    print(f"runs table filtered (status, kind, search) and sorted by best reward: median {med * 1000:.0f} ms")

    def compare() -> None:
        frame = read_compare_frame(store, long_ids, list(LONG_METRICS), x="samples", max_points=1000, smoothing=0.6)
        make_compare_figure(frame, list(LONG_METRICS), x="samples").to_json()

    first, med, low = measure(compare, args.repeats)
    frame = read_compare_frame(store, long_ids, list(LONG_METRICS), max_points=1000, smoothing=0.6)
    print(f"compare {LONG_RUNS} runs x {LONG_STEPS:,} steps x {len(LONG_METRICS)} metrics (read, EMA, downsample to "
          f"{len(frame):,} points, figure + JSON): median {med * 1000:.0f} ms, min {low * 1000:.0f} ms, "
          f"first {first * 1000:.0f} ms (target < 1000 ms)")

    if importlib.util.find_spec("llmrl_core.present.report") is None:
        print("report: not available yet")
    else:
        from llmrl_core.present.report import write_report

        run_id = add_report_run(store)
        out = home / "report.html"
        first, med, low = measure(lambda: write_report(store, [run_id], out), max(1, args.repeats // 2))
        print(f"report of a 5,000-step run: median {med:.2f} s, first {first:.2f} s, "
              f"{out.stat().st_size / 2**20:.1f} MiB (target < 3 s)")

    wal = (home / "runs.sqlite-wal").stat().st_size if (home / "runs.sqlite-wal").exists() else 0
    store.fetch_rows("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the WAL into the database, as an idle store does
    size = (home / "runs.sqlite").stat().st_size
    print(f"store size on disk: {size / 2**20:.0f} MiB after a checkpoint ({size / written:.0f} bytes per metric row, "
          f"indexes included; the WAL had grown to {wal / 2**20:.0f} MiB before it)")
    try:
        parts = store.fetch_rows("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 4")
        print("  largest parts: " + ", ".join(f"{name} {size / 2**20:.0f} MiB" for name, size in parts))
    except Exception:  # SQLite built without the dbstat table
        pass
    if args.keep:
        print(f"kept: {home}")
    else:
        import shutil

        store._close_conn()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
