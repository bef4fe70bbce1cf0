"""The bridge from Stable-Baselines3 to the run store: metrics, evaluation episodes, stop and pause.

Two small pieces, in SB3's own style:
- `StoreWriter` is an SB3 logger output format: every `logger.dump(step)` lands in the run
  store under SB3's names (rollout/ep_rew_mean, train/loss, train/approx_kl, time/fps, ...),
  plus `charts/episodic_return`, the mean return of the episodes finished since the last dump
  (SB3's ep_rew_mean averages the last 100 episodes and so lags).
- `WorkbenchCallback` checks for stop/pause on every step (returning False ends `learn`
  within one environment step or one update), and every `eval_freq` steps runs a deterministic
  evaluation, writes eval/* metrics and records the first evaluation episode for replay.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from llmrl_core.gym.episodes import Episode, EpisodeRunner, make_agent_act_fn, save_episode, summarise_returns
from llmrl_core.runs.manager import JobContext


class StoreWriter(KVWriter):
    """An SB3 logger output that writes each dump to the run store as one step of metrics."""

    def __init__(self, ctx: JobContext, total_steps: int | None = None) -> None:
        self.ctx = ctx
        self.total_steps = total_steps
        self._recent_returns: list[float] = []

    def note_episode(self, episode_return: float) -> None:
        """Remember a finished training episode's return until the next dump."""
        self._recent_returns.append(float(episode_return))

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """Write every numeric value of this dump at environment step `step`."""
        metrics = {k: v for k, v in key_values.items() if isinstance(v, (int, float, np.integer, np.floating))}
        if self._recent_returns:
            metrics["charts/episodic_return"] = float(np.mean(self._recent_returns))
            self._recent_returns.clear()
        if metrics:
            self.ctx.log_metrics(int(step), metrics)
        self.ctx.set_progress(int(step), self.total_steps)

    def close(self) -> None:
        """Nothing to release: the store outlives the run."""


class WorkbenchCallback(BaseCallback):
    """Stop/pause on request, periodic evaluation with one recorded episode, solved detection."""

    def __init__(self, ctx: JobContext, writer: StoreWriter, env_id: str, eval_freq: int, eval_episodes: int,
                 episode_dir: Path, seed: int = 0, solved_return: float | None = None,
                 stop_when_solved: bool = False) -> None:
        super().__init__(verbose=0)
        self.ctx = ctx
        self.writer = writer
        self.env_id = env_id
        self.eval_freq = int(eval_freq)
        self.episode_dir = Path(episode_dir)
        self.solved_return = solved_return
        self.stop_when_solved = stop_when_solved
        self.runner = EpisodeRunner(env_id, eval_episodes, seed=seed + 10_000)
        self.next_eval = self.eval_freq
        self.last_eval_step = -1
        self.stopped = False
        self.solved_at: int | None = None
        self.solved_seconds: float | None = None
        self.best_mean_reward = -np.inf
        self.last_mean_reward: float | None = None
        self.episodes_recorded = 0
        self._start = time.perf_counter()

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self.next_eval = self.num_timesteps + self.eval_freq

    def _on_step(self) -> bool:
        """Per environment step: note finished episodes, honour stop/pause, evaluate when due."""
        for info in self.locals.get("infos", ()):
            if "episode" in info:
                self.writer.note_episode(info["episode"]["r"])
        if self.ctx.should_stop():  # blocks while paused
            self.stopped = True
            return False
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.eval_freq * max(1, (self.num_timesteps - self.next_eval) // self.eval_freq + 1)
            return self.evaluate()
        return True

    def _on_training_end(self) -> None:
        """A last evaluation (and episode) at the end, unless stopped or just evaluated."""
        if not self.stopped and self.solved_at is None and self.last_eval_step != self.num_timesteps:
            self.evaluate()
        self.runner.close()

    def evaluate(self) -> bool:
        """Run the deterministic evaluation, write eval/* and the episode; False when training should end."""
        step = int(self.num_timesteps)
        returns, lengths, episode = self.runner.run(
            make_agent_act_fn(self.model), policy="trained", train_step=step, should_stop=self.ctx.is_stop_requested
        )
        if self.ctx.is_stop_requested():
            self.stopped = True
            return False
        self.last_eval_step = step
        metrics = summarise_returns(returns, lengths)
        self.last_mean_reward = metrics["eval/mean_reward"]
        self.best_mean_reward = max(self.best_mean_reward, self.last_mean_reward)
        self.ctx.log_metrics(step, metrics)
        self.record_episode(episode)
        solved = self.solved_return is not None and self.last_mean_reward >= self.solved_return
        if solved and self.solved_at is None:
            self.solved_at = step
            self.solved_seconds = time.perf_counter() - self._start
            self.ctx.log(f"Solved at step {step}: evaluation mean {self.last_mean_reward:.1f} ≥ {self.solved_return:g}.")
        return not (solved and self.stop_when_solved)

    def record_episode(self, episode: Episode) -> None:
        """Save an episode as JSON under the run's artifact folder and register it."""
        path = save_episode(episode, self.episode_dir / f"episode-{episode.train_step:09d}.json")
        self.ctx.add_artifact(episode.train_step, "episode", path,
                              {"return": episode.episode_return, "length": episode.length,
                               "policy": episode.policy, "fps": episode.fps})
        self.episodes_recorded += 1


def make_writer_logger(writer: StoreWriter) -> Any:
    """An SB3 Logger whose only output is the store (nothing printed, no files)."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[writer])

