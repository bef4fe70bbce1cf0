"""The 'gym' job with tiny budgets: every algorithm trains, writes SB3-named metrics and an episode; stop works."""

from __future__ import annotations

import json
import time

import pytest

from llmrl_core.gym.config import make_gym_config
from llmrl_core.runs import RunManager

TINY = {
    "ppo": dict(total_steps=512, eval_freq=256),
    "a2c": dict(total_steps=400, eval_freq=200),
    "dqn": dict(total_steps=600, eval_freq=300, learning_starts=100, train_freq=64, gradient_steps=8),
    "random": dict(total_steps=400, eval_freq=200),
}
EXPECTED = {
    "ppo": {"train/loss", "train/approx_kl", "train/value_loss", "train/entropy_loss"},
    "a2c": {"train/policy_loss", "train/value_loss"},
    "dqn": {"train/loss", "rollout/exploration_rate"},
    "random": set(),
}


@pytest.fixture()
def manager(store) -> RunManager:
    return RunManager(store)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "random"])
def test_tiny_run_writes_metrics_episode_and_agent(manager: RunManager, algo: str) -> None:
    config = make_gym_config("CartPole-v1", algo, **TINY[algo])
    run_id, status = manager.run_foreground("gym", config.to_dict(), total_steps=config.total_steps)
    run = manager.store.get_run(run_id)
    assert status == "completed", run["error"]
    names = set(manager.store.metric_names(run_id))
    common = {"rollout/ep_rew_mean", "charts/episodic_return", "eval/mean_reward", "eval/std_reward", "time/fps"}
    assert common | EXPECTED[algo] <= names, names
    episodes = manager.store.list_artifacts(run_id, kind="episode")
    assert len(episodes) >= 2
    data = json.loads(open(episodes["path"].iloc[-1]).read())
    assert data["env_id"] == "CartPole-v1" and data["length"] == len(data["states"]) == len(data["actions"]) > 0
    assert data["return"] == pytest.approx(sum(data["rewards"]))
    assert run["step"] >= config.total_steps
    if algo != "random":
        agents = manager.store.list_artifacts(run_id, kind="agent")
        assert len(agents) == 1 and agents["path"].iloc[0].endswith("agent.zip")
        assert run["summary"]["episodes_recorded"] == len(episodes)


def test_subprocess_environments_train_and_close(manager: RunManager) -> None:
    """vec_env='subproc': each environment in its own process (SB3's SubprocVecEnv); the run completes."""
    config = make_gym_config("CartPole-v1", "a2c", total_steps=400, eval_freq=200, n_envs=2, vec_env="subproc")
    run_id, status = manager.run_foreground("gym", config.to_dict(), total_steps=config.total_steps)
    assert status == "completed", manager.store.get_run(run_id)["error"]
    assert {"charts/episodic_return", "eval/mean_reward"} <= set(manager.store.metric_names(run_id))
    assert manager.store.get_run(run_id)["step"] >= 400


def test_saved_agent_loads_and_keeps_training(manager: RunManager) -> None:
    from llmrl_core.gym.episodes import play_agent_episode
    from llmrl_core.gym.job import load_agent

    config = make_gym_config("CartPole-v1", "ppo", **TINY["ppo"])
    run_id, _ = manager.run_foreground("gym", config.to_dict())
    path = manager.store.list_artifacts(run_id, kind="agent")["path"].iloc[0]
    episode = play_agent_episode(load_agent(path, "ppo"), "CartPole-v1", seed=0)
    assert episode.policy == "agent" and episode.length > 0
    more = make_gym_config("CartPole-v1", "ppo", init_from=path, **TINY["ppo"])
    run2, status = manager.run_foreground("gym", more.to_dict())
    assert status == "completed", manager.store.get_run(run2)["error"]
    steps = manager.store.read_metrics(run2, names=["eval/mean_reward"])["step"]
    assert steps.min() > 512  # the step axis continues from the loaded agent


def _wait_for_metrics(manager: RunManager, run_id: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while manager.store.read_metrics(run_id).empty:
        assert time.monotonic() < deadline, "no metrics arrived"
        time.sleep(0.05)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_stop_is_honoured_and_the_agent_saved(manager: RunManager, algo: str) -> None:
    config = make_gym_config("CartPole-v1", algo, total_steps=2_000_000)
    run_id = manager.start("gym", config.to_dict(), total_steps=config.total_steps)
    _wait_for_metrics(manager, run_id)
    manager.stop(run_id)
    assert manager.wait(run_id, timeout=30)
    run = manager.store.get_run(run_id)
    assert run["status"] == "stopped", run["error"]
    assert run["step"] < config.total_steps
    assert len(manager.store.list_artifacts(run_id, kind="agent")) == 1


def test_stop_through_the_store_as_from_another_process(manager: RunManager) -> None:
    config = make_gym_config("CartPole-v1", "random", total_steps=50_000_000)
    run_id = manager.start("gym", config.to_dict())
    _wait_for_metrics(manager, run_id)
    manager.store.request_control(run_id, "stop")  # what `python -m llmrl_core runs stop` does
    assert manager.wait(run_id, timeout=30)
    assert manager.store.get_run(run_id)["status"] == "stopped"


def test_cli_runs_the_same_job(capsys) -> None:
    from llmrl_core.cli import main
    from llmrl_core.runs import RunStore

    assert main(["gym", "--env", "CartPole-v1", "--algo", "a2c", "--steps", "300", "--eval-freq", "150",
                 "--seed", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert result["status"] == "completed"
    run = RunStore().get_run(result["run_id"])
    assert run["kind"] == "gym" and run["config"]["seed"] == 3 and run["config"]["algo"] == "a2c"


def test_cli_reruns_an_exported_config(capsys, tmp_path) -> None:
    """`export ID --what config` writes YAML that `gym --config` runs again; flags override the file."""
    from llmrl_core.cli import main
    from llmrl_core.runs import RunStore
    from llmrl_core.runs.export import export_run

    assert main(["gym", "--algo", "a2c", "--steps", "300", "--eval-freq", "150", "--seed", "5",
                 "--set", "gamma=0.95", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.split("\n", 1)[1])["run_id"]
    yaml_path = export_run(RunStore(), first, "config", tmp_path / "run.yaml")
    assert main(["gym", "--config", str(yaml_path), "--steps", "200", "--json"]) == 0
    second = json.loads(capsys.readouterr().out.split("\n", 1)[1])["run_id"]
    config = RunStore().get_run(second)["config"]
    assert config["algo"] == "a2c" and config["seed"] == 5 and config["params"]["gamma"] == 0.95
    assert config["total_steps"] == 200  # the flag wins over the file
    (tmp_path / "bad.yaml").write_text("algo: ppo\nenv_id: CartPole-v1\ncolour: red\n", encoding="utf-8")
    assert main(["gym", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "colour" in capsys.readouterr().err


def test_cli_reports_invalid_settings(capsys) -> None:
    from llmrl_core.cli import main

    assert main(["gym", "--env", "Pendulum-v1", "--algo", "dqn"]) == 2
    assert "Use PPO or A2C on Pendulum-v1" in capsys.readouterr().err
    assert main(["gym", "--set", "gamma=2"]) == 2
    assert "gamma is a discount factor" in capsys.readouterr().err


def test_pause_and_resume(manager: RunManager) -> None:
    config = make_gym_config("CartPole-v1", "ppo", total_steps=5_000_000)
    run_id = manager.start("gym", config.to_dict())
    _wait_for_metrics(manager, run_id)
    manager.pause(run_id)
    deadline = time.monotonic() + 30
    while manager.store.get_run(run_id)["status"] != "paused":
        assert time.monotonic() < deadline, "the run never paused"
        time.sleep(0.05)
    step = manager.store.get_run(run_id)["step"]
    time.sleep(0.5)
    assert manager.store.get_run(run_id)["step"] == step  # nothing moves while paused
    manager.resume(run_id)
    while manager.store.get_run(run_id)["status"] != "running":
        assert time.monotonic() < deadline, "the run never resumed"
        time.sleep(0.05)
    manager.stop(run_id)
    assert manager.wait(run_id, timeout=30)
    assert manager.store.get_run(run_id)["status"] == "stopped"
