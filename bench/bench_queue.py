"""The run queue (issue 19): runs started together run one after another, and a killed server loses none.

Printed, on this machine, through the real dashboard server (`python -m ui.serve app.py`, whose run manager
starts with it) over a temporary LLMRL_HOME with the queue's limit set to 1:
  1. six tiny Gymnasium runs (random policy on CartPole, --steps steps each) queued at once, as the pages'
     Start does (RunStore.create_run + queue.enqueue; the server's supervisor starts them): the most that
     ran at once, their order, and the gap between one run's end and the next one's launch (the queue's
     share: its log line "Left the run queue") and the next one's first step (with the worker's imports),
     first with LLMRL_STANDBY=0 (the baseline: every worker does its imports after the slot frees), then as
     shipped (the next waiting run's worker imports while the current run runs: runs/standby.py);
  2. six more queued the same way; the server is killed with SIGKILL while one runs and four wait; a new
     server starts on the same store: every run completes, each exactly once ("Started." logged once).
  3. disk: a make-it-positive run (full fine-tuning of the bundled model) and its LoRA variant, each stopped after
     2 steps, with keep_for_resuming on (what every ended run kept before issue 19: the optimizer state in the
     final checkpoint) and off (the default now): the run folder's bytes.
  4. a sweep, queued as the Gym page's sweep form does (runs/sweeps.create_sweep; the server's supervisor starts
     the trials and marks the sweep completed): a 2x2 grid of PPO on CartPole-v1 (learning_rate x n_steps, RL
     Zoo's other settings) with 2 seeds, --sweep-steps environment steps per run: its table, the parameter sets
     over seeds with their 95% CI, and the best set.
Target (issue 19): no gap over 2 s between runs, and after the restart all six complete, each once; a stopped
make-it-positive run at most 600 MB, a LoRA run at most 20 MB; the sweep completes with its table and best.

Run: python bench/bench_queue.py [--steps 2000] [--skip-disk] [--disk-only] [--sweep-only] [--keep-home]
The temporary workbench home (checkpoints of the disk part: about 2 GB) is deleted at the end unless --keep-home.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGET_GAP_S = 2.0


def queue_runs(store, n: int, steps: int, tag: str) -> list[int]:
    """Queue n tiny gym runs the way the pages' Start does, minus the dispatch (the server's supervisor does it)."""
    from llmrl_core.gym.config import GymConfig
    from llmrl_core.runs import queue

    ids = []
    for i in range(n):
        config = GymConfig(env_id="CartPole-v1", algo="random", total_steps=steps, n_envs=1, eval_freq=steps,
                           eval_episodes=1, seed=i).to_dict()
        run_id = store.create_run("gym", f"{tag} {i + 1}", config, total_steps=steps)
        queue.enqueue(store, run_id)
        ids.append(run_id)
    return ids


def wait_all_final(store, ids: list[int], timeout: float, most: list[int] | None = None) -> None:
    """Poll until every run has a final status; track the most runs running at once in most[0]."""
    from llmrl_core.runs import FINAL_STATUSES

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [store.get_run(i) for i in ids]
        if most is not None:
            most[0] = max(most[0], sum(r["status"] == "running" for r in runs))
        if all(r["status"] in FINAL_STATUSES for r in runs):
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out: {[(i, store.get_run(i)['status']) for i in ids]}")


def log_time(store, run_id: int, prefix: str) -> float | None:
    logs = store.read_logs(run_id)
    hits = logs[logs["message"].str.startswith(prefix)]
    return float(hits["time"].iloc[0]) if not hits.empty else None


def count_logs(store, run_id: int, message: str) -> int:
    logs = store.read_logs(run_id)
    return int((logs["message"] == message).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="environment steps per tiny run (default 2000)")
    parser.add_argument("--skip-disk", action="store_true", help="leave out part 3 (two LM runs of the bundled model)")
    parser.add_argument("--disk-only", action="store_true", help="run part 3 only")
    parser.add_argument("--sweep-only", action="store_true", help="run part 4 only")
    parser.add_argument("--burst-only", action="store_true", help="run part 1 only")
    parser.add_argument("--sweep-steps", type=int, default=10_000, help="environment steps per sweep run (default 10000)")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary workbench home")
    args = parser.parse_args()
    try:
        run_parts(args)
    finally:
        if not args.keep_home:
            import shutil

            shutil.rmtree(os.environ.get("LLMRL_HOME", ""), ignore_errors=True)


def run_parts(args: argparse.Namespace) -> None:
    """Every part the flags ask for, in one temporary workbench home."""
    home = Path(tempfile.mkdtemp(prefix="bench_queue_"))
    os.environ["LLMRL_HOME"] = str(home)
    os.environ.pop("LLMRL_MAX_CONCURRENT", None)

    from llmrl_core.runs import RunStore, queue
    from llmrl_core.runs.manager import HANDED_LOG, QUEUE_LAUNCH_LOG
    from tests.support.browser import start_app, stop_app

    store = RunStore(home / "runs.sqlite")
    queue.set_max_concurrent(store, 1)
    load = " ".join(open("/proc/loadavg").read().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"
    print(f"cores {os.cpu_count()} · load average {load} · limit 1 run at once · {args.steps} steps per run")

    if args.disk_only:
        return measure_disk()
    if args.sweep_only:
        return measure_sweep(store, home, args.sweep_steps)

    # 1. Six at once, one after another: first without standby workers (the baseline), then as shipped.
    baseline = measure_burst(store, home, args.steps, standby=False)
    print(f"baseline, no worker started ahead of time (LLMRL_STANDBY=0): gap from a run's end to the next one's "
          f"first step max {max(baseline):.2f} s, mean {sum(baseline) / len(baseline):.2f} s")
    server, url = start_app(home)
    try:
        t0 = time.monotonic()
        ids = queue_runs(store, 6, args.steps, "burst")
        most = [0]
        wait_all_final(store, ids, timeout=600, most=most)
        wall = time.monotonic() - t0
    finally:
        stop_app(server)
    runs = [store.get_run(i) for i in ids]
    statuses = [r["status"] for r in runs]
    launch_gaps, start_gaps = [], []
    for prev, nxt in zip(runs, runs[1:]):
        launched = log_time(store, nxt["id"], QUEUE_LAUNCH_LOG)
        launch_gaps.append(launched - prev["ended"])
        start_gaps.append(nxt["started"] - prev["ended"])
    in_order = all(a["started"] < b["started"] for a, b in zip(runs, runs[1:]))
    print(f"6 runs queued at once: {statuses.count('completed')} completed in {wall:.1f} s; most running at once "
          f"{most[0]}; in queue order: {'yes' if in_order else 'no'}")
    print(f"gap from a run's end to the next one's launch: max {max(launch_gaps):.2f} s, mean "
          f"{sum(launch_gaps) / len(launch_gaps):.2f} s ({', '.join(f'{g:.2f}' for g in launch_gaps)})")
    handed = sum(count_logs(store, r["id"], HANDED_LOG) for r in runs[1:])
    print(f"gap from a run's end to the next one's first step (with the worker's imports): max {max(start_gaps):.2f} s, "
          f"mean {sum(start_gaps) / len(start_gaps):.2f} s ({', '.join(f'{g:.2f}' for g in start_gaps)}); "
          f"{handed} of {len(runs) - 1} handed to a worker started ahead of time; run length mean "
          f"{sum(r['ended'] - r['started'] for r in runs) / len(runs):.1f} s")
    print(f"target: no gap over {TARGET_GAP_S:g} s between runs: "
          f"{'met' if max(launch_gaps) <= TARGET_GAP_S else 'missed'} for the queue's launch; "
          f"{'met' if max(start_gaps) <= TARGET_GAP_S else 'missed'} counting the worker's start-up")
    print(f"mean gap to the next first step, baseline / with a worker started ahead of time: "
          f"{sum(baseline) / len(baseline):.2f} / {sum(start_gaps) / len(start_gaps):.2f} s = "
          f"{(sum(baseline) / len(baseline)) / max(1e-9, sum(start_gaps) / len(start_gaps)):.1f}x")
    if args.burst_only:
        return

    # 2. Kill -9 of the server while one runs and four wait; a new server finishes the queue.
    server, url = start_app(home)
    ids = queue_runs(store, 6, args.steps * 3, "restart")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = [store.get_run(i) for i in ids]
        if sum(r["status"] in ("completed",) for r in runs) >= 1 and len(queue.list_queue(store)) == 4:
            break
        time.sleep(0.05)
    waiting = len(queue.list_queue(store))
    running = [r["id"] for r in (store.get_run(i) for i in ids) if r["status"] == "running"]
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    print(f"server killed with SIGKILL: {waiting} runs waiting, running {running}")
    time.sleep(2)
    server, url = start_app(home)
    try:
        t0 = time.monotonic()
        wait_all_final(store, ids, timeout=600)
        wall = time.monotonic() - t0
    finally:
        stop_app(server)
    runs = [store.get_run(i) for i in ids]
    starts = [count_logs(store, i, "Started.") for i in ids]
    done = sum(r["status"] == "completed" for r in runs)
    print(f"after the restart: {done} of 6 completed in {wall:.1f} s; times each started: {starts}; "
          f"statuses {[r['status'] for r in runs]}")
    print(f"target: all 6 complete, each exactly once: {'met' if done == 6 and starts == [1] * 6 else 'missed'}")

    if not args.skip_disk:
        measure_disk()
    measure_sweep(store, home, args.sweep_steps)


def measure_burst(store, home: Path, steps: int, standby: bool) -> list[float]:
    """Six tiny runs queued at once through a server; the gaps from each run's end to the next one's first step."""
    from tests.support.browser import start_app, stop_app

    server, _ = start_app(home, extra_env={"LLMRL_STANDBY": "1" if standby else "0"})
    try:
        ids = queue_runs(store, 6, steps, "baseline" if not standby else "burst")
        wait_all_final(store, ids, timeout=600)
    finally:
        stop_app(server)
    runs = [store.get_run(i) for i in ids]
    return [nxt["started"] - prev["ended"] for prev, nxt in zip(runs, runs[1:])]


def measure_sweep(store, home: Path, steps: int) -> None:
    """4. A 2x2 Gym sweep with 2 seeds through the server, as the Gym page queues it; its table and best set."""
    from llmrl_core.gym.config import make_gym_config
    from llmrl_core.present.sweep import format_sets_table, format_trials_table
    from llmrl_core.runs import sweeps
    from llmrl_core.runs.sweep_spec import build_spec
    from tests.support.browser import start_app, stop_app

    base = make_gym_config("CartPole-v1", "ppo", total_steps=steps).to_dict()
    spec = build_spec("gym", base, {"learning_rate": "1e-3, 1e-4", "n_steps": "32, 128"}, seeds="0, 1", name="bench sweep")
    server, url = start_app(home)
    try:
        t0 = time.monotonic()
        sweep_id = sweeps.create_sweep(store, spec, base)
        most = 0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and sweeps.get_sweep(store, sweep_id)["status"] == "running":
            trials = sweeps.read_trials(store, sweep_id)
            most = max(most, int((trials["status"] == "running").sum()))
            time.sleep(0.2)
        wall = time.monotonic() - t0
    finally:
        stop_app(server)
    view = sweeps.read_sweep_view(store, sweep_id)
    trials, sweep = view.trials, view.sweep
    print(f"sweep: {spec.describe()}, {steps} steps per run: {sweep['status']} in {wall:.1f} s; "
          f"{int((trials['status'] == 'completed').sum())} of {len(trials)} runs completed; most running at once {most}")
    print(format_trials_table(trials, spec, view.best_trial).to_string(index=False))
    print(format_sets_table(view.sets, view.names).to_string(index=False))
    print(sweeps.describe_best(view))
    best = view.best
    print(f"target: the 2x2 sweep with 2 seeds completes with its table and best: "
          f"{'met' if sweep['status'] == 'completed' and best is not None else 'missed'}")


def measure_disk() -> None:
    """3. Disk of a stopped run, before (keep_for_resuming on: the old behaviour) and after (the default)."""
    for preset, target_mb in (("make-it-positive", 600), ("make-it-positive-lora", 20)):
        before, s1 = measure_stopped_run_bytes(preset, keep=True)
        after, s2 = measure_stopped_run_bytes(preset, keep=False)
        print(f"{preset} stopped after 2 steps: {before / 1e6:.1f} MB with the optimizer state (as before) -> "
              f"{after / 1e6:.1f} MB weights only ({s1}, {s2}); target at most {target_mb} MB: "
              f"{'met' if after <= target_mb * 1e6 else 'missed'}")


def measure_stopped_run_bytes(preset: str, keep: bool, stop_at: int = 2) -> tuple[int, str]:
    """(bytes of the run's folder, status) of `preset` stopped after `stop_at` steps, with keep_for_resuming=`keep`."""
    import threading

    from llmrl_core.lm_rl.config import make_preset_config
    from llmrl_core.runs import RunManager
    from llmrl_core.runs.files import compute_run_disk_bytes

    manager = RunManager()
    cfg = make_preset_config(preset, steps=100, keep_for_resuming=keep, samples_per_step=4)
    done = threading.Event()
    result: dict = {}

    def run() -> None:
        result["id"], result["status"] = manager.run_foreground("lm_rl", cfg.to_dict(), name=f"disk {preset} keep={keep}",
                                                                total_steps=cfg.steps)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while not done.wait(0.2):
        runs = manager.store.list_runs(kind="lm_rl")
        if not runs.empty and int(runs["step"].iloc[0] or 0) >= stop_at:
            manager.store.request_control(int(runs["id"].iloc[0]), "stop")
    manager.close()
    return compute_run_disk_bytes(result["id"], manager.store), result["status"]


if __name__ == "__main__":
    main()
