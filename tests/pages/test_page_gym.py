"""AppTest for the Gym page: settings, validation messages, a tiny run shown live, the random contrast."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.support.apptest import open_page  # noqa: E402

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "gymnasium" / "gym_agents.py")


def _page() -> AppTest:
    return open_page("gymnasium/gym_agents.py")


def _iframes(at: AppTest) -> list:
    return list(at.get("iframe"))


def test_page_offers_envs_algos_and_tuned_defaults() -> None:
    at = _page()
    assert at.selectbox(key="gym_env").options == ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"]
    assert at.selectbox(key="gym_algo").value == "ppo"
    # RL Zoo's CartPole PPO settings are what the inputs start from.
    assert at.number_input(key="gym_CartPole-v1_ppo_n_steps").value == 32
    assert at.number_input(key="gym_CartPole-v1_ppo_batch_size").value == 256
    assert at.number_input(key="gym_CartPole-v1_ppo_n_envs").value == 8


def test_invalid_setting_shows_what_to_change_and_starts_nothing() -> None:
    from ui.state import get_store

    at = _page()
    runs_before = len(get_store().list_runs(kind="gym"))
    at.number_input(key="gym_CartPole-v1_ppo_batch_size").set_value(1000)
    at.button(key="gym_train").click()
    at.run()
    messages = [e.value for e in at.error]
    assert any("batch_size (1000)" in m and "lower batch_size to 256" in m for m in messages), messages
    assert len(get_store().list_runs(kind="gym")) == runs_before


def test_dqn_on_pendulum_is_prevented_with_an_explanation() -> None:
    at = _page()
    at.selectbox(key="gym_env").set_value("Pendulum-v1")
    at.run()
    at.selectbox(key="gym_algo").set_value("dqn")
    at.run()
    assert any("continuous" in w.value and "PPO or A2C" in w.value for w in at.warning)
    assert at.button(key="gym_train_disabled").disabled


def test_random_episode_button_shows_a_player() -> None:
    at = _page()
    before = len(_iframes(at))
    at.button(key="gym_random_btn").click()
    at.run()
    assert at.session_state["gym_random_episode"]["policy"] == "random"
    assert len(_iframes(at)) == before + 1


@pytest.mark.parametrize(("algo", "steps", "eval_freq"), [("ppo", 512, 256), ("a2c", 400, 200), ("dqn", 1200, 600)])
def test_train_tiny_run_from_the_page_shows_curves_and_episode(algo: str, steps: int, eval_freq: int) -> None:
    from ui.state import get_run_manager

    at = _page()
    at.selectbox(key="gym_algo").set_value(algo)
    at.run()
    at.number_input(key=f"gym_CartPole-v1_{algo}_total_steps").set_value(steps)
    at.number_input(key=f"gym_CartPole-v1_{algo}_eval_freq").set_value(eval_freq)
    at.button(key="gym_train").click()
    at.run()
    run_id = at.session_state["gym_run_id"]
    assert get_run_manager().wait(run_id, timeout=60)
    at.run()
    assert not at.exception, at.exception
    run = get_run_manager().store.get_run(run_id)
    assert run["status"] == "completed", run.get("error")
    assert run["config"]["algo"] == algo
    assert at.selectbox(key="gym_pick").value == run_id
    assert len(at.get("plotly_chart")) >= 3
    assert len(_iframes(at)) >= 1  # the recorded episode's player
    at.button(key=f"gym_watch_{run_id}").click()
    at.run()
    assert at.session_state["gym_agent_episode"]["policy"] == "agent"


def test_a_solved_run_says_so_and_its_bar_is_full() -> None:
    from llmrl_core.gym.config import make_gym_config
    from ui.state import get_store

    store = get_store()
    config = make_gym_config("CartPole-v1", "ppo", total_steps=50_000, stop_when_solved=True).to_dict()
    run_id = store.create_run("gym", "PPO · CartPole-v1", config, 50_000)
    store.mark_started(run_id)
    store.log_metrics(run_id, 12_000, {"eval/mean_reward": 300.0, "rollout/ep_rew_mean": 200.0})
    store.log_metrics(run_id, 13_000, {"eval/mean_reward": 500.0, "rollout/ep_rew_mean": 400.0})
    store.set_progress(run_id, 13_000)
    store.set_summary(run_id, {"solved_at_step": 13_000, "solved_seconds": 11.94})
    store.set_status(run_id, "completed")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["gym_run_id"] = run_id
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="gym_pick").value == run_id
    assert any("Solved at 13,000 steps in 11.9 s" in s.value for s in at.success), [s.value for s in at.success]
    assert {m.label: m.value for m in at.metric}["solved at"] == "13,000 steps"
    bars = [b.proto for b in at.get("progress")]
    assert bars and bars[0].value == 100, bars  # done, not a bar stuck at 26 %
    assert "stopped when solved" in bars[0].text and "50,000-step budget" in bars[0].text
