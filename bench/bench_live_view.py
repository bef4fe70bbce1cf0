"""What watching a long run costs the server: the Runs, Gymnasium and RL pages on a 10,000-step active run.

For each page, in one AppTest session (in process, no browser) on a store holding one active run
of 10,000 steps (Runs and RL pages: 20 metrics a step, 200,000 rows; Gymnasium: SB3's 16 names):
  first draw   the page's first run for that session (reads the run, builds every figure);
  no change    a rerun while the run did not move (what each one-second poll of a watched,
               paused or slow run costs);
  moved        a rerun after one more step was written.
Medians over --repeats (the machine is shared; minima printed too). AppTest runs the whole script,
so those figures include the page's fixed costs (sidebar, picker, table, AppTest itself). The
"view only" line times just the live view's body inside the script (what a one-second poll of
the fragment costs in the server), with the page's own functions loaded from --root.

To compare with an older version, run the same file against a checkout of it:
  git archive <commit> | tar -x -C /tmp/old && python bench/bench_live_view.py --root /tmp/old
Run: python bench/bench_live_view.py [--root DIR] [--steps 10000] [--repeats 5] [--pages runs,gym,rl]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _fill(store, kind: str, config: dict, steps: int) -> int:
    """An active run with `steps` steps of metrics owned by this process (so it is not marked interrupted)."""
    import numpy as np

    run_id = store.create_run(kind, f"bench {kind}", config, steps)
    store.mark_started(run_id)
    rng = np.random.default_rng(0)
    if kind == "gym":
        names = ["rollout/ep_rew_mean", "rollout/ep_len_mean", "charts/episodic_return", "time/fps", "time/episodes",
                 "time/total_timesteps", "train/loss", "train/value_loss", "train/policy_gradient_loss",
                 "train/entropy_loss", "train/approx_kl", "train/clip_fraction", "train/learning_rate",
                 "train/n_updates", "eval/mean_reward", "eval/std_reward"]
    else:
        names = ["reward", "reward_std", "kl", "entropy", "loss", "grad_norm", "learning_rate", "step_time",
                 "tokens_per_second", "completions/mean_length", "completions/max_length", "completions/min_length",
                 "frac_reward_zero_std", "clip_ratio/region_mean", "rewards/vader/mean", "rewards/vader/std",
                 "rewards/length/mean", "rewards/length/std", "num_tokens", "epoch"]
    rows = [(run_id, s, n, float(v), 0.0) for s in range(1, steps + 1)
            for n, v in zip(names, rng.normal(size=len(names)))]
    store._executemany("INSERT INTO metrics(run_id, step, name, value, wall_time) VALUES (?,?,?,?,?)", rows)
    store.set_progress(run_id, steps)
    return run_id


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(page: str, steps: int, repeats: int, root: Path) -> dict:
    from streamlit.testing.v1 import AppTest

    from ui import state

    state.get_run_manager.clear()
    os.environ["LLMRL_HOME"] = tempfile.mkdtemp(prefix=f"bench_live_{page}_")
    store = state.get_store()
    if page == "gym":
        from llmrl_core.gym.config import make_gym_config

        run_id = _fill(store, "gym", make_gym_config("CartPole-v1", "ppo").to_dict(), steps)
    else:
        from llmrl_core.lm_rl.config import RLConfig

        run_id = _fill(store, "lm_rl" if page == "rl" else "demo", RLConfig().to_dict(), steps)
    at = AppTest.from_file(str(root / "app.py"), default_timeout=600)
    at.switch_page({"runs": "pages/runs/runs.py", "gym": "pages/gymnasium/gym_agents.py", "rl": "pages/language_models/lm_rl.py"}[page])
    if page == "rl":
        at.session_state["rl_view"] = "Dashboard"
    first = _time(at.run)
    assert not at.exception, at.exception
    no_change = [_time(at.run) for _ in range(repeats)]
    moved = []
    for i in range(repeats):
        store.log_metrics(run_id, steps + 1 + i, {"reward": 0.5, "rollout/ep_rew_mean": 20.0, "kl": 0.01})
        store.set_progress(run_id, steps + 1 + i)
        moved.append(_time(at.run))
    assert not at.exception, at.exception
    store.set_status(run_id, "stopped")
    return {"first": first, "no_change": no_change, "moved": moved}


_HARNESS = """
import os, sys, time
import streamlit as st
root = os.environ["BENCH_ROOT"]
sys.path.insert(0, root)
page = os.environ["BENCH_PAGE"]
run_id = int(os.environ["BENCH_RUN"])
source = open(os.path.join(root, "pages", page + ".py")).read().replace("\\nmain()\\n", "\\n")
g = {"__name__": "bench_page"}
exec(compile(source, page, "exec"), g)
t0 = time.perf_counter()
if page == "gymnasium/gym_agents":
    if "gym_run_ui" in g:
        g["live_run_ui"](run_id, g["gym_run_ui"], key="gym")
    else:
        g["live_run_ui"](run_id, True)
else:
    import inspect
    if "view" in inspect.signature(g["run_detail_ui"]).parameters:
        g["live_run_ui"](run_id, g["run_detail_ui"], key="runs")
    else:
        g["run_detail_ui"](run_id, True)
st.session_state.setdefault("bench_times", []).append(time.perf_counter() - t0)
"""


def measure_view(page: str, steps: int, repeats: int, root: Path) -> dict:
    """Seconds the live view's body takes: first draw, then polls with no change, then polls after a step."""
    from streamlit.testing.v1 import AppTest

    from ui import state

    state.get_run_manager.clear()
    os.environ["LLMRL_HOME"] = tempfile.mkdtemp(prefix=f"bench_view_{page}_")
    store = state.get_store()
    if page == "gym":
        from llmrl_core.gym.config import make_gym_config

        run_id = _fill(store, "gym", make_gym_config("CartPole-v1", "ppo").to_dict(), steps)
    else:
        from llmrl_core.lm_rl.config import RLConfig

        run_id = _fill(store, "demo", RLConfig().to_dict(), steps)
    os.environ.update(BENCH_ROOT=str(root), BENCH_PAGE={"gym": "gymnasium/gym_agents", "runs": "runs/runs"}[page], BENCH_RUN=str(run_id))
    at = AppTest.from_string(_HARNESS, default_timeout=600)
    for _ in range(repeats + 1):
        at.run()
        assert not at.exception, at.exception
    for i in range(repeats):
        store.log_metrics(run_id, steps + 1 + i, {"reward": 0.5, "rollout/ep_rew_mean": 20.0})
        store.set_progress(run_id, steps + 1 + i)
        at.run()
    times = at.session_state["bench_times"]
    store.set_status(run_id, "stopped")
    return {"first": times[0], "no_change": times[1:repeats + 1], "moved": times[repeats + 1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pages", default="runs,gym,rl")
    args = parser.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    os.chdir(root)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"{root} · {args.steps} steps · load {os.getloadavg()[0]:.1f}")
    for page in args.pages.split(","):
        if page in ("runs", "gym"):
            r = measure_view(page, args.steps, args.repeats, root)
            print(f"{page:5s} view only: first draw {r['first'] * 1e3:6.0f} ms · no change median "
                  f"{statistics.median(r['no_change']) * 1e3:6.1f} ms (min {min(r['no_change']) * 1e3:.1f}) · moved median "
                  f"{statistics.median(r['moved']) * 1e3:6.0f} ms (min {min(r['moved']) * 1e3:.0f})")
        r = measure(page, args.steps, args.repeats, root)
        print(f"{page:5s} whole page: first draw {r['first'] * 1e3:8.0f} ms · no change median {statistics.median(r['no_change']) * 1e3:6.0f} ms "
              f"(min {min(r['no_change']) * 1e3:.0f}) · moved median {statistics.median(r['moved']) * 1e3:6.0f} ms "
              f"(min {min(r['moved']) * 1e3:.0f})")


if __name__ == "__main__":
    main()
