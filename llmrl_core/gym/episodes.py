"""Episodes as data: play a policy in an environment, keep its states, actions and rewards for replay.

An episode is stored as a small JSON file (`Episode.to_dict`): the observation before each
action, the action, the reward, plus what a player needs (environment id, frame rate, action
names). The browser draws the scene from those states, so no video is ever rendered.

`EpisodeRunner` plays several episodes in lockstep with one batched policy call per step,
which is how evaluation stays cheap enough to run every few thousand steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

ActFn = Callable[[np.ndarray], np.ndarray]
"""A policy as the runner sees it: observations (n, obs_dim) -> actions (n,) or (n, act_dim)."""

ACTION_NAMES: dict[str, list[str]] = {
    "CartPole-v1": ["push left", "push right"],
    "Acrobot-v1": ["torque −1", "no torque", "torque +1"],
    "MountainCar-v0": ["push left", "no push", "push right"],
}

# Playback speed: the environment's own frame rate, but never below 30 frames per second.
MIN_PLAYER_FPS = 30


@dataclass
class Episode:
    """One recorded episode: states[t] is the observation the policy saw before actions[t] earned rewards[t]."""

    env_id: str
    policy: str
    """'trained', 'random' or 'agent' (a saved agent replayed)"""
    train_step: int
    """environment steps of training behind the policy"""
    states: list[list[float]] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    fps: int = MIN_PLAYER_FPS
    action_names: list[str] = field(default_factory=list)
    terminated: bool = False
    """True when the episode ended by failure/success, False when cut by the time limit"""

    @property
    def length(self) -> int:
        """Number of steps."""
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        """Sum of rewards."""
        return float(sum(self.rewards))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict, with the return and length spelled out for readers that skip the arrays."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: asdict deep-copies every state
        data["return"] = self.episode_return
        data["length"] = self.length
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Episode":
        """Inverse of to_dict (extra keys ignored)."""
        keys = {"env_id", "policy", "train_step", "states", "actions", "rewards", "fps", "action_names", "terminated"}
        return cls(**{k: v for k, v in data.items() if k in keys})


def save_episode(episode: Episode, path: str | Path) -> Path:
    """Write an episode as JSON and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(episode.to_dict(), separators=(",", ":")))
    return path


def load_episode(path: str | Path) -> Episode:
    """Read an episode written by save_episode."""
    return Episode.from_dict(json.loads(Path(path).read_text()))


def get_player_fps(env_id: str) -> int:
    """Frames per second to replay `env_id` at: its real-time rate, at least MIN_PLAYER_FPS."""
    spec_fps = gym.make(env_id).metadata.get("render_fps") or MIN_PLAYER_FPS
    return int(max(MIN_PLAYER_FPS, min(60, spec_fps)))


def _to_list(action: Any) -> Any:
    """A JSON-friendly action: an int for discrete spaces, a float or list of floats otherwise."""
    array = np.asarray(action)
    if array.dtype.kind in "iu":
        return int(array.reshape(-1)[0]) if array.size == 1 else array.astype(int).tolist()
    flat = [round(float(a), 4) for a in array.reshape(-1)]
    return flat[0] if len(flat) == 1 else flat


class EpisodeRunner:
    """Plays one episode in each of `n` environments in lockstep, recording the first.

    It steps an SB3 vectorised environment exactly as SB3's `evaluate_policy` does (seeded once
    at creation, reset at the start of each evaluation, auto-reset when an episode ends, one
    batched policy call per step), so a workbench evaluation sees the same starting states, and
    gives the same numbers, as SB3's EvalCallback with the same seed and number of environments.
    """

    def __init__(self, env_id: str, n: int = 1, seed: int = 0) -> None:
        from stable_baselines3.common.env_util import make_vec_env

        self.env_id = env_id
        self.venv = make_vec_env(env_id, n_envs=n, seed=seed)
        self.fps = get_player_fps(env_id)

    def close(self) -> None:
        """Close the environments."""
        self.venv.close()

    def run(self, act_fn: ActFn, policy: str = "trained", train_step: int = 0,
            should_stop: Callable[[], bool] | None = None) -> tuple[list[float], list[int], Episode]:
        """Play one episode per environment; return (returns, lengths, the first episode recorded).

        `should_stop` is checked every step; when it fires, unfinished episodes are cut short.
        """
        n = self.venv.num_envs
        obs = self.venv.reset()  # (n, obs_dim)
        running = np.ones(n, dtype=bool)
        returns = np.zeros(n)
        lengths = np.zeros(n, dtype=int)
        episode = Episode(self.env_id, policy, int(train_step), fps=self.fps,
                          action_names=list(ACTION_NAMES.get(self.env_id, [])))
        while running.any():
            if should_stop is not None and should_stop():
                break
            actions = act_fn(obs)  # (n,) or (n, act_dim)
            new_obs, rewards, dones, infos = self.venv.step(actions)
            if running[0]:
                episode.states.append([round(float(x), 4) for x in obs[0]])
                episode.actions.append(_to_list(actions[0]))
                episode.rewards.append(round(float(rewards[0]), 4))
                if dones[0]:
                    episode.terminated = not infos[0].get("TimeLimit.truncated", False)
            returns += np.where(running, rewards, 0.0)
            lengths += running
            running &= ~dones
            obs = new_obs
        return returns.tolist(), lengths.tolist(), episode


def make_random_act_fn(env_id: str, seed: int = 0) -> ActFn:
    """A policy that samples each action uniformly from the action space (the untrained baseline)."""
    space = gym.make(env_id).action_space
    space.seed(seed)
    return lambda obs: np.stack([np.asarray(space.sample()) for _ in range(len(obs))])


def make_agent_act_fn(model: Any, deterministic: bool = True) -> ActFn:
    """A policy from a Stable-Baselines3 model (greedy by default, as in evaluation).

    For discrete actions it calls the policy network directly, skipping what `model.predict`
    repeats on every call (switching every module to eval mode, input checks); the actions are
    the same. Continuous actions go through `model.predict`, which also clips them to the bounds.
    """
    import torch
    from gymnasium import spaces

    if not isinstance(model.action_space, spaces.Discrete):
        return lambda obs: model.predict(obs, deterministic=deterministic)[0]
    policy = model.policy
    policy.set_training_mode(False)

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=policy.device)  # (n, obs_dim)
            return policy._predict(obs_t, deterministic=deterministic).cpu().numpy()  # (n,)

    return act


def play_random_episode(env_id: str = "CartPole-v1", seed: int | None = None) -> Episode:
    """Play and record one episode of the uniformly random policy."""
    seed = int(np.random.default_rng().integers(1 << 30)) if seed is None else seed
    runner = EpisodeRunner(env_id, 1, seed)
    try:
        return runner.run(make_random_act_fn(env_id, seed), policy="random")[2]
    finally:
        runner.close()


def play_agent_episode(model: Any, env_id: str, seed: int | None = None, train_step: int = 0) -> Episode:
    """Play and record one deterministic episode of a trained SB3 model."""
    seed = int(np.random.default_rng().integers(1 << 30)) if seed is None else seed
    runner = EpisodeRunner(env_id, 1, seed)
    try:
        return runner.run(make_agent_act_fn(model), policy="agent", train_step=train_step)[2]
    finally:
        runner.close()


def summarise_returns(returns: Sequence[float], lengths: Sequence[int]) -> dict[str, float]:
    """Evaluation metrics under SB3's names."""
    return {
        "eval/mean_reward": float(np.mean(returns)),
        "eval/std_reward": float(np.std(returns)),
        "eval/mean_ep_length": float(np.mean(lengths)),
    }
