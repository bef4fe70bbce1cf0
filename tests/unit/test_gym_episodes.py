"""Episode capture: what is recorded matches what was played, and survives a JSON round trip."""

from __future__ import annotations

import numpy as np

from llmrl_core.gym.episodes import (
    EpisodeRunner,
    load_episode,
    make_random_act_fn,
    play_random_episode,
    save_episode,
    summarise_returns,
)


def test_runner_records_the_first_episode_consistently() -> None:
    runner = EpisodeRunner("CartPole-v1", n=3, seed=5)
    returns, lengths, episode = runner.run(make_random_act_fn("CartPole-v1", 5), policy="random")
    runner.close()
    assert len(returns) == len(lengths) == 3
    assert episode.length == lengths[0] == len(episode.states) == len(episode.rewards)
    assert episode.episode_return == returns[0] == lengths[0]  # CartPole pays +1 per step
    assert all(len(s) == 4 for s in episode.states)  # x, x_dot, theta, theta_dot
    assert set(episode.actions) <= {0, 1}
    assert episode.fps == 50 and episode.action_names == ["push left", "push right"]


def test_same_seed_same_episode() -> None:
    a = play_random_episode("CartPole-v1", seed=11)
    b = play_random_episode("CartPole-v1", seed=11)
    assert a.states == b.states and a.actions == b.actions


def test_should_stop_cuts_episodes_short() -> None:
    runner = EpisodeRunner("CartPole-v1", n=2, seed=0)
    calls = iter([False, False, True])
    _, lengths, episode = runner.run(lambda obs: np.zeros(len(obs), dtype=int), should_stop=lambda: next(calls))
    runner.close()
    assert lengths == [2, 2] and episode.length == 2


def test_continuous_actions_are_recorded_as_floats(tmp_path) -> None:
    episode = play_random_episode("Pendulum-v1", seed=1)
    assert episode.length == 200 and isinstance(episode.actions[0], float)
    loaded = load_episode(save_episode(episode, tmp_path / "ep.json"))
    assert loaded == episode


def test_summary_uses_sb3_names() -> None:
    assert summarise_returns([10.0, 20.0], [10, 20]) == {
        "eval/mean_reward": 15.0, "eval/std_reward": 5.0, "eval/mean_ep_length": 15.0}


def test_agent_fast_path_picks_the_same_actions_as_predict() -> None:
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.env_util import make_vec_env

    from llmrl_core.gym.episodes import make_agent_act_fn

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)  # (n, obs_dim)
    for cls in (PPO, DQN):
        model = cls("MlpPolicy", env, seed=0, device="cpu")
        assert (make_agent_act_fn(model)(obs) == model.predict(obs, deterministic=True)[0]).all()
    env.close()
