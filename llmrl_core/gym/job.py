"""The 'gym' job: train a Stable-Baselines3 agent (or run the random baseline) on a Gymnasium task.

Registered in the run manager as kind 'gym'; the dashboard and `python -m llmrl_core gym`
run the very same function. Metrics reach the store through SB3's logger (see callback.py),
evaluation episodes are saved as JSON artifacts for replay, and the trained agent is saved as
an SB3 zip (artifact kind 'agent') that `load_agent` reads back to watch or to keep training.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from llmrl_core.gym.callbacks import StoreWriter, WorkbenchCallback, make_writer_logger
from llmrl_core.gym.algorithms import get_gym_algorithm
from llmrl_core.gym.config import GymConfig
from llmrl_core.gym.episodes import EpisodeRunner, make_random_act_fn, save_episode, summarise_returns
from llmrl_core.core.errors import InputError
from llmrl_core.core.paths import get_artifact_dir
from llmrl_core.runs.manager import JobContext

# Dump SB3's logger about every this many environment steps (on-policy algorithms), so curves move live.
DUMP_EVERY_STEPS = 256


class LinearDecay:
    """Schedule that decays `initial` linearly to 0 over training (RL Zoo's 'lin_<value>').

    SB3 calls it with progress_remaining, which goes from 1 at the start to 0 at the end.
    A class rather than a closure so saved agents stay picklable.
    """

    def __init__(self, initial: float) -> None:
        self.initial = float(initial)

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


def build_model(config: GymConfig, env: Any) -> Any:
    """A fresh SB3 model for `config` on the vectorised `env` (CPU: these networks are tiny)."""
    p = dict(config.params)
    policy_kwargs = {"net_arch": p.pop("net_arch")}
    for schedule, value in config.algorithm.schedules:  # e.g. lr_schedule='linear' decays learning_rate
        if p.pop(schedule) == "linear":
            p[value] = LinearDecay(p[value])
    cls = config.algorithm.load_sb3_class()
    return cls("MlpPolicy", env, policy_kwargs=policy_kwargs, seed=config.seed, device="cpu", verbose=0, **p)


def load_agent(path: str | Path, algo: str, env: Any = None) -> Any:
    """Load a saved agent (SB3 zip) of algorithm `algo`, optionally attached to `env` for more training."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"No saved agent at {path}; pick an agent artifact from a finished run.")
    return get_gym_algorithm(algo).load_sb3_class().load(path, env=env, device="cpu")


def compute_log_interval(config: GymConfig) -> int:
    """SB3's log_interval: iterations between dumps for PPO/A2C, episodes for DQN."""
    if not config.algorithm.on_policy:
        return 4
    rollout = int(config.params["n_steps"]) * config.n_envs
    return max(1, DUMP_EVERY_STEPS // rollout)


def run_gym_job(ctx: JobContext) -> dict:
    """Train per ctx.config (a GymConfig dict); return the summary figures."""
    config = GymConfig.from_dict(ctx.config)
    if not config.algorithm.trains:
        return run_random_job(ctx, config)
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    env = make_vec_env(config.env_id, n_envs=config.n_envs, seed=config.seed,
                       vec_env_cls=SubprocVecEnv if config.vec_env == "subproc" else DummyVecEnv)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)  # 64-unit MLPs: extra threads only add contention
    try:
        if config.init_from:
            model = load_agent(config.init_from, config.algo, env)
            ctx.log(f"Continuing {config.algo.upper()} from {config.init_from} (step {model.num_timesteps}).")
        else:
            model = build_model(config, env)
        start_step = int(model.num_timesteps)
        total = start_step + config.total_steps
        writer = StoreWriter(ctx, total)
        model.set_logger(make_writer_logger(writer))
        callback = WorkbenchCallback(
            ctx, writer, config.env_id, config.eval_freq, config.eval_episodes,
            episode_dir=get_artifact_dir(ctx.run_id) / "episodes", seed=config.seed,
            solved_return=config.solved_return, stop_when_solved=config.stop_when_solved,
        )
        ctx.set_progress(start_step, total)
        ctx.log(f"Training {config.algo.upper()} on {config.env_id} for {config.total_steps} steps "
                f"({config.n_envs} environments, seed {config.seed}).")
        t0 = time.perf_counter()
        model.learn(total_timesteps=config.total_steps, callback=callback,
                    log_interval=compute_log_interval(config), reset_num_timesteps=not config.init_from)
        seconds = time.perf_counter() - t0
        step = int(model.num_timesteps)
        agent_path = get_artifact_dir(ctx.run_id) / "agent.zip"
        model.save(agent_path)
        ctx.add_artifact(step, "agent", agent_path, {"algo": config.algo, "env_id": config.env_id, "steps": step})
        ctx.set_progress(step, total)
        ctx.log(f"Saved the agent to {agent_path}.")
    finally:
        torch.set_num_threads(threads_before)
        env.close()
    return {
        "steps": step,
        "seconds": round(seconds, 3),
        "eval_mean_reward": callback.last_mean_reward,
        "best_eval_mean_reward": None if callback.best_mean_reward == -np.inf else callback.best_mean_reward,
        "solved_at_step": callback.solved_at,
        "solved_seconds": None if callback.solved_seconds is None else round(callback.solved_seconds, 3),
        "episodes_recorded": callback.episodes_recorded,
        "agent_path": str(agent_path),
    }


def run_random_job(ctx: JobContext, config: GymConfig) -> dict:
    """The baseline: play the uniformly random policy for total_steps, logged like a training run."""
    act = make_random_act_fn(config.env_id, config.seed)
    player = EpisodeRunner(config.env_id, 1, config.seed)
    evaluator = EpisodeRunner(config.env_id, config.eval_episodes, config.seed + 10_000)
    episode_dir = get_artifact_dir(ctx.run_id) / "episodes"
    window: deque[float] = deque(maxlen=100)
    lengths_window: deque[int] = deque(maxlen=100)
    recent: list[float] = []
    steps, episodes, next_dump, next_eval = 0, 0, DUMP_EVERY_STEPS, config.eval_freq
    last_eval: dict[str, float] = {}
    t0 = time.perf_counter()
    ctx.set_progress(0, config.total_steps)
    try:
        while steps < config.total_steps and not ctx.should_stop():
            returns, lengths, _ = player.run(act, policy="random", train_step=steps, should_stop=ctx.is_stop_requested)
            steps += lengths[0]
            episodes += 1
            window.append(returns[0])
            lengths_window.append(lengths[0])
            recent.append(returns[0])
            done = steps >= config.total_steps
            if steps >= next_dump or done:
                next_dump = steps + DUMP_EVERY_STEPS
                ctx.log_metrics(steps, {
                    "rollout/ep_rew_mean": float(np.mean(window)), "rollout/ep_len_mean": float(np.mean(lengths_window)),
                    "charts/episodic_return": float(np.mean(recent)), "time/episodes": episodes,
                    "time/fps": steps / max(time.perf_counter() - t0, 1e-9), "time/total_timesteps": steps,
                })
                recent.clear()
                ctx.set_progress(min(steps, config.total_steps), config.total_steps)
            if steps >= next_eval or done:
                next_eval = steps + config.eval_freq
                eval_returns, eval_lengths, episode = evaluator.run(act, policy="random", train_step=steps,
                                                                    should_stop=ctx.is_stop_requested)
                last_eval = summarise_returns(eval_returns, eval_lengths)
                ctx.log_metrics(steps, last_eval)
                path = save_episode(episode, episode_dir / f"episode-{steps:09d}.json")
                ctx.add_artifact(steps, "episode", path, {"return": episode.episode_return, "length": episode.length,
                                                         "policy": "random", "fps": episode.fps})
    finally:
        player.close()
        evaluator.close()
    return {"steps": steps, "episodes": episodes, "seconds": round(time.perf_counter() - t0, 3),
            "mean_return": float(np.mean(window)) if window else None,
            "eval_mean_reward": last_eval.get("eval/mean_reward")}
