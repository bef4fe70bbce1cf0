"""Bench: PPO on CartPole-v1 with SB3's DummyVecEnv (all envs in this process) vs SubprocVecEnv (one process each).

For n_envs 2 and 4, standalone Stable-Baselines3 (no workbench), one torch thread as the gym job uses:
  * learn: PPO with RL Zoo's CartPole settings (n_steps 32 per env, batch 256 or one whole rollout
    when that is smaller, 20 epochs) for
    20,000 env steps; env steps per second of the whole learn() call, what a user waits for;
  * step: the vectorised env alone, stepped with random actions for 20,000 env steps; this is the
    part SubprocVecEnv can speed up, the upper bound of its effect.
The SubprocVecEnv start-up (its worker processes) is timed on its own and left out of both rates.
Prints the CPU (torch.backends.cpu.get_cpu_capability(), cores) and subproc/dummy ratios (> 1: subproc faster).

Usage: python bench/bench_gym_vec.py [--steps 20000] [--n-envs 2 4] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

ENV_ID = "CartPole-v1"
ZOO_PPO = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
               learning_rate=1e-3, clip_range=0.2)  # rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1


def make_env(kind: str, n_envs: int, seed: int) -> tuple[object, float]:
    """A vectorised CartPole of `kind` ('dummy' or 'subproc') and the seconds it took to start."""
    t0 = time.perf_counter()
    env = make_vec_env(ENV_ID, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv if kind == "dummy" else SubprocVecEnv)
    return env, time.perf_counter() - t0


def time_learn(kind: str, n_envs: int, steps: int, seed: int) -> tuple[float, float]:
    """(env steps per second of PPO.learn, start-up seconds)."""
    env, startup = make_env(kind, n_envs, seed)
    try:
        settings = {**ZOO_PPO, "batch_size": min(ZOO_PPO["batch_size"], ZOO_PPO["n_steps"] * n_envs)}  # <= one rollout
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **settings)
        t0 = time.perf_counter()
        model.learn(total_timesteps=steps)
        return model.num_timesteps / (time.perf_counter() - t0), startup
    finally:
        env.close()


def time_stepping(kind: str, n_envs: int, steps: int, seed: int) -> float:
    """Env steps per second of the vectorised env alone, random actions."""
    env, _ = make_env(kind, n_envs, seed)
    rng = np.random.default_rng(seed)
    try:
        env.reset()
        t0 = time.perf_counter()
        for _ in range(steps // n_envs):
            env.step(rng.integers(0, 2, size=n_envs))
        return (steps // n_envs) * n_envs / (time.perf_counter() - t0)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--n-envs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell; the best rate is kept")
    args = parser.parse_args()
    torch.set_num_threads(1)
    gym.make(ENV_ID).close()  # import and register outside the timings
    print(f"CPU: {platform.processor() or platform.machine()}, torch CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} logical cores visible "
          f"({len(os.sched_getaffinity(0))} usable); torch threads 1; gymnasium {gym.__version__}")
    print(f"{'n_envs':>6} {'vec env':>8} {'learn steps/s':>14} {'step-only steps/s':>18} {'start-up s':>11}")
    for n_envs in args.n_envs:
        rates: dict[str, tuple[float, float]] = {}
        for kind in ("dummy", "subproc"):
            learn, startup, stepping = 0.0, 0.0, 0.0
            for repeat in range(args.repeats):
                rate, startup = time_learn(kind, n_envs, args.steps, seed=repeat)
                learn = max(learn, rate)
                stepping = max(stepping, time_stepping(kind, n_envs, args.steps, seed=repeat))
            rates[kind] = (learn, stepping)
            print(f"{n_envs:>6} {kind:>8} {learn:>14,.0f} {stepping:>18,.0f} {startup:>11.2f}")
        print(f"{n_envs:>6} {'ratio':>8} {rates['subproc'][0] / rates['dummy'][0]:>14.2f} "
              f"{rates['subproc'][1] / rates['dummy'][1]:>18.2f}   (subproc / dummy; > 1 means subproc is faster)")


if __name__ == "__main__":
    main()
