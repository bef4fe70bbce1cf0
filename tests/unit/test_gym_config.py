"""Gym run settings: RL Zoo's tuned defaults, and validation messages that say what to change."""

from __future__ import annotations

import pytest

from llmrl_core.gym.config import GymConfig, compatible_algos, make_gym_config
from llmrl_core.gym.job import LinearDecay, compute_log_interval
from llmrl_core.core.errors import InputError


def test_cartpole_ppo_defaults_are_rl_zoo_tuned() -> None:
    cfg = make_gym_config("CartPole-v1", "ppo")
    assert cfg.n_envs == 8
    p = cfg.params
    assert (p["n_steps"], p["batch_size"], p["gae_lambda"], p["gamma"], p["n_epochs"]) == (32, 256, 0.8, 0.98, 20)
    assert (p["learning_rate"], p["lr_schedule"], p["clip_range"], p["clip_schedule"], p["ent_coef"]) == \
        (1e-3, "linear", 0.2, "linear", 0.0)


def test_cartpole_dqn_defaults_are_rl_zoo_tuned() -> None:
    cfg = make_gym_config("CartPole-v1", "dqn")
    p = cfg.params
    assert cfg.total_steps == 50_000 and cfg.n_envs == 1
    assert (p["learning_rate"], p["batch_size"], p["buffer_size"], p["learning_starts"]) == (2.3e-3, 64, 100_000, 1000)
    assert (p["target_update_interval"], p["train_freq"], p["gradient_steps"]) == (10, 256, 128)
    assert (p["exploration_fraction"], p["exploration_final_eps"], p["net_arch"]) == (0.16, 0.04, [256, 256])


def test_overrides_reach_params_and_run_fields() -> None:
    cfg = make_gym_config("CartPole-v1", "a2c", total_steps=1234, seed=7, gamma=0.95, net_arch="32, 16")
    assert (cfg.total_steps, cfg.seed, cfg.params["gamma"], cfg.params["net_arch"]) == (1234, 7, 0.95, [32, 16])
    assert GymConfig.from_dict(cfg.to_dict()) == cfg


def test_dqn_on_continuous_actions_is_refused_with_alternatives() -> None:
    with pytest.raises(InputError, match="Use PPO or A2C on Pendulum-v1"):
        make_gym_config("Pendulum-v1", "dqn")
    assert "dqn" not in compatible_algos("Pendulum-v1")
    assert compatible_algos("CartPole-v1") == ["ppo", "a2c", "dqn", "random"]


@pytest.mark.parametrize(
    ("env_id", "algo", "overrides", "message"),
    [
        ("CartPole-v1", "ppo", {"batch_size": 1000}, r"lower batch_size to 256 or less"),
        ("CartPole-v1", "ppo", {"gamma": 1.5}, r"gamma is a discount factor"),
        ("CartPole-v1", "ppo", {"learning_rate": 0}, r"learning_rate must be above 0"),
        ("CartPole-v1", "ppo", {"lr_schedule": "cosine"}, r"lr_schedule must be one of constant, linear"),
        ("CartPole-v1", "ppo", {"use_sde": True}, r"untick use_sde"),
        ("CartPole-v1", "ppo", {"net_arch": "64,x"}, r"like 64,64"),
        ("CartPole-v1", "ppo", {"momentum": 0.9}, r"PPO has no setting momentum"),
        ("CartPole-v1", "dqn", {"total_steps": 500}, r"lower learning_starts or raise total_steps"),
        ("CartPole-v1", "dqn", {"exploration_fraction": 1.6}, r"share of the run"),
        ("CartPole-v1", "dqn", {"buffer_size": 10}, r"raise buffer_size"),
        ("CartPole-v1", "dqn", {"exploration_final_eps": 0.5, "exploration_initial_eps": 0.2}, r"must not exceed"),
        ("CartPole-v1", "a2c", {"n_envs": 0}, r"n_envs must be between 1 and 64"),
        ("CartPole-v1", "a2c", {"total_steps": 0}, r"total_steps must be at least 1"),
        ("Pendulum-v1", "ppo", {"stop_when_solved": True}, r"no solved line"),
        ("Pong-v5", "ppo", {}, r"Unknown environment"),
    ],
)
def test_invalid_settings_say_what_to_change(env_id, algo, overrides, message) -> None:
    with pytest.raises(InputError, match=message):
        make_gym_config(env_id, algo, **overrides)


def test_unknown_run_setting_is_named() -> None:
    with pytest.raises(InputError, match=r"Unknown gym setting\(s\): 'colour'"):
        GymConfig.from_dict({"env_id": "CartPole-v1", "algo": "ppo", "colour": "red"})


def test_linear_decay_goes_from_initial_to_zero() -> None:
    decay = LinearDecay(1e-3)
    assert decay(1.0) == pytest.approx(1e-3)
    assert decay(0.25) == pytest.approx(2.5e-4)
    assert decay(0.0) == 0.0


def test_log_interval_keeps_curves_live() -> None:
    assert compute_log_interval(make_gym_config("CartPole-v1", "ppo")) == 1  # 8 envs x 32 steps = 256 per iteration
    assert compute_log_interval(make_gym_config("CartPole-v1", "a2c")) == 6  # 8 x 5 = 40 per iteration
    assert compute_log_interval(make_gym_config("CartPole-v1", "dqn")) == 4  # episodes, SB3's default


def test_field_docs_feed_the_page_help() -> None:
    from llmrl_core.core.config import get_field_docs
    from llmrl_core.gym.config import DQNParams

    docs = get_field_docs(DQNParams)
    assert docs["exploration_fraction"].startswith("share of the whole run")
    assert set(docs) == {f for f in DQNParams.__dataclass_fields__}
    assert get_field_docs(GymConfig)["eval_freq"].startswith("environment steps between evaluations")
