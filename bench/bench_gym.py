"""Bench: PPO on CartPole-v1 until the deterministic evaluation mean reaches 475, workbench job vs plain SB3.

Both sides use RL Zoo's CartPole PPO settings (8 envs, n_steps 32, batch 256, gae_lambda 0.8,
gamma 0.98, 20 epochs, lr 1e-3 and clip 0.2 decayed linearly, ent_coef 0), the same seeds, one
torch thread, and evaluate 5 deterministic episodes every 1000 steps, stopping at a mean of 475.
- plain SB3: PPO + EvalCallback(StopTrainingOnRewardThreshold(475)), nothing else.
- workbench: the 'gym' job through RunManager.run_foreground, with metrics written to the run
  store, an episode recorded at every evaluation, and the agent saved as a zip at the end.
Wall time covers building the model through the solve (the workbench also saves its agent).
Both evaluate on the same seeded vectorised environment, so both solve at the same step; the
workbench's evaluation calls the policy network directly (same actions as SB3's predict, which
it beats by skipping per-call mode switches), which is why it can come out faster than plain SB3.
Runs alternate per seed so machine load drifts hit both sides alike. Also measures how long
a stop request takes to end PPO and DQN runs. Target: workbench time at most 1.15x plain SB3.

Usage: python bench/bench_gym.py [--seeds 0 1 2] [--algos ppo dqn] [--skip-stop]
(--algos dqn compares DQN with the Zoo settings the same way: 1 env, 5e4 steps budget.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LLMRL_HOME", tempfile.mkdtemp(prefix="bench_gym_"))

import torch  # noqa: E402

from llmrl_core.gym.config import make_gym_config  # noqa: E402
from llmrl_core.runs import RunManager, RunStore  # noqa: E402

SOLVED = 475.0
EVAL_FREQ = 1000
EVAL_EPISODES = 5
MAX_STEPS = {"ppo": 100_000, "dqn": 50_000}  # DQN: exploration_fraction is a share of this, keep Zoo's 5e4


def run_plain_sb3(algo: str, seed: int) -> tuple[int | None, float]:
    """Plain SB3 with the same settings; returns (steps at solve or None, seconds)."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    t0 = time.perf_counter()
    n_envs = 8 if algo == "ppo" else 1
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    eval_env = make_vec_env("CartPole-v1", n_envs=EVAL_EPISODES, seed=seed + 10_000)  # as the job evaluates
    if algo == "ppo":
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                    learning_rate=lambda p: p * 1e-3, clip_range=lambda p: p * 0.2, ent_coef=0.0, seed=seed,
                    device="cpu", verbose=0)
    else:
        model = DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                    gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                    exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
                    seed=seed, device="cpu", verbose=0)
    stop = StopTrainingOnRewardThreshold(reward_threshold=SOLVED, verbose=0)
    callback = EvalCallback(eval_env, callback_on_new_best=stop, n_eval_episodes=EVAL_EPISODES,
                            eval_freq=EVAL_FREQ // n_envs, deterministic=True, verbose=0)
    model.learn(total_timesteps=MAX_STEPS[algo], callback=callback)
    seconds = time.perf_counter() - t0
    solved = callback.best_mean_reward >= SOLVED
    env.close()
    eval_env.close()
    return (int(model.num_timesteps) if solved else None), seconds


def run_workbench(manager: RunManager, algo: str, seed: int) -> tuple[int | None, float, dict]:
    """The 'gym' job end to end; returns (steps at solve or None, seconds, summary)."""
    config = make_gym_config("CartPole-v1", algo, total_steps=MAX_STEPS[algo], seed=seed, eval_freq=EVAL_FREQ,
                             eval_episodes=EVAL_EPISODES, stop_when_solved=True)
    t0 = time.perf_counter()
    run_id, status = manager.run_foreground("gym", config.to_dict(), name=f"bench seed {seed}")
    seconds = time.perf_counter() - t0
    run = manager.store.get_run(run_id)
    if status != "completed":
        raise RuntimeError(f"workbench run {run_id} ended {status}: {run.get('error')}")
    summary = run["summary"]
    return summary.get("solved_at_step"), seconds, summary


def measure_stop(manager: RunManager, algo: str) -> float:
    """Seconds from a stop request to the end of a long run's thread (agent save included)."""
    config = make_gym_config("CartPole-v1", algo, total_steps=5_000_000)
    run_id = manager.start("gym", config.to_dict())
    deadline = time.monotonic() + 60
    while manager.store.read_metrics(run_id).empty and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    t0 = time.perf_counter()
    manager.stop(run_id)
    manager.wait(run_id, timeout=60)
    return time.perf_counter() - t0


def compare(manager: RunManager, algo: str, seeds: list[int]) -> None:
    """Alternate plain SB3 and the workbench job per seed; print each pair and the ratios."""
    print(f"{algo.upper()} CartPole-v1 to eval mean {SOLVED:g} ({EVAL_EPISODES} episodes every {EVAL_FREQ} steps), "
          f"torch threads 1, cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    plain_times, bench_times = [], []
    for seed in seeds:
        p_steps, p_sec = run_plain_sb3(algo, seed)
        w_steps, w_sec, summary = run_workbench(manager, algo, seed)
        plain_times.append(p_sec)
        bench_times.append(w_sec)
        print(f"seed {seed}: plain SB3 {p_steps} steps {p_sec:.2f} s | workbench {w_steps} steps {w_sec:.2f} s "
              f"(solve at {summary.get('solved_seconds')} s inside learn, {summary.get('episodes_recorded')} episodes "
              f"recorded) | ratio {w_sec / p_sec:.2f}x")
    p_med, w_med = statistics.median(plain_times), statistics.median(bench_times)
    print(f"{algo} median: plain SB3 {p_med:.2f} s, workbench {w_med:.2f} s, ratio {w_med / p_med:.2f}x (target <= 1.15x)")
    print(f"{algo} total:  plain SB3 {sum(plain_times):.2f} s, workbench {sum(bench_times):.2f} s, "
          f"ratio {sum(bench_times) / sum(plain_times):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skip-stop", action="store_true", help="skip the stop-latency figures")
    parser.add_argument("--algos", nargs="+", default=["ppo"], choices=["ppo", "dqn"],
                        help="algorithms to compare (DQN with Zoo settings takes about 3x as long)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the job uses one thread by default; plain SB3 gets the same
    manager = RunManager(RunStore())
    for algo in args.algos:
        compare(manager, algo, args.seeds)
    if not args.skip_stop:
        for algo in ("ppo", "dqn"):
            print(f"stop latency {algo.upper()}: {measure_stop(manager, algo):.3f} s from request to run end "
                  f"(agent saved)")
    print(f"load average after: {os.getloadavg()[0]:.1f} (2 cores shared with other engineers: expect noise)")


if __name__ == "__main__":
    main()
