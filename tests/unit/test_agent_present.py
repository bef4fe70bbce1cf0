"""The agent's figures and player: baselines drawn, probabilities embedded safely, the Gym player kept intact."""

from __future__ import annotations

import json
import re

import pandas as pd

from llmrl_core.agent.job import find_gym_baseline
from llmrl_core.present.agent import (
    compute_agent_player_height,
    make_agent_diagnostics_figure,
    make_agent_losses_figure,
    make_agent_return_figure,
    render_agent_player_html,
)
from llmrl_core.present.gym import compute_player_height


def _episode(**extra) -> dict:
    data = {"env_id": "CartPole-v1", "policy": "trained", "train_step": 64, "states": [[0, 0, 0.01, 0], [0, 0, 0.02, 0]],
            "actions": [1, 0], "rewards": [1.0, 1.0], "fps": 50, "action_names": ["left", "right"],
            "action_probs": [[0.25, 0.75], [0.6, 0.4]], "return": 2.0, "length": 2}
    data.update(extra)
    return data


def _agent_data(page: str) -> dict:
    match = re.search(r"const agent = (\{.*?\});\n", page)
    assert match, "no agent data in the page"
    return json.loads(match.group(1))


def test_return_figure_draws_the_curves_and_both_baselines() -> None:
    metrics = pd.DataFrame({"step": [0, 64, 128], "rollout/ep_rew_mean": [None, 12.0, 15.0],
                            "eval/mean_reward": [9.0, None, 30.0]})
    fig = make_agent_return_figure(metrics, random_return=22.0, sb3_return=480.0, solved_return=475.0)
    names = [t.name for t in fig.data]
    assert "episode return (mean of last 100)" in names and any(n.startswith("evaluation: zero-shot") for n in names)
    labels = [a.text for a in fig.layout.annotations]
    assert "random policy (22.0)" in labels and "SB3 PPO (480.0)" in labels and "solved (475)" in labels
    bare = make_agent_return_figure(metrics)
    assert not bare.layout.annotations


def test_losses_figure_has_each_logged_loss() -> None:
    metrics = pd.DataFrame({"step": [8, 16], "losses/policy_loss": [0.1, 0.05], "losses/entropy": [0.69, 0.68]})
    assert {t.name for t in make_agent_losses_figure(metrics).data} == {"losses/policy_loss", "losses/entropy"}


def test_player_carries_the_probabilities_and_keeps_the_gym_player() -> None:
    page = render_agent_player_html(_episode(), title="Trained", svg_height=220)
    data = _agent_data(page)
    assert data["probs"] == [[0.25, 0.75], [0.6, 0.4]] and data["names"] == ["left", "right"] and data["grid"] is None
    assert '<div id="probs"' in page and 'id="scene"' in page and 'id="scrub"' in page
    assert compute_agent_player_height(220, 2) == compute_player_height(220) + 2 * 22 + 8


def test_player_escapes_action_names() -> None:
    page = render_agent_player_html(_episode(action_names=["</script><b>x</b>", "right"]), title="<i>t</i>")
    assert "</script><b>" not in page and "<i>t</i>" not in page
    assert _agent_data(page)["names"][0] == "</script><b>x</b>"  # intact once parsed, written with textContent


def test_frozen_lake_player_draws_the_grid() -> None:
    episode = _episode(env_id="FrozenLake-v1", states=[[0], [4]], action_names=["left", "down", "right", "up"],
                       action_probs=[[0.1, 0.2, 0.3, 0.4]] * 2)
    data = _agent_data(render_agent_player_html(episode))
    assert data["grid"] == ["SFFF", "FHFH", "FFFH", "HFFG"] and data["states"] == [[0], [4]]


def test_gym_baseline_is_the_newest_completed_ppo_run_on_the_env(store) -> None:
    def gym_run(algo: str, env: str, value: float, status: str = "completed") -> int:
        run_id = store.create_run("gym", algo, {"env_id": env, "algo": algo}, 100)
        store.log_metrics(run_id, 50, {"rollout/ep_rew_mean": value - 10})
        store.log_metrics(run_id, 100, {"rollout/ep_rew_mean": value})
        store.set_status(run_id, status)
        return run_id

    assert find_gym_baseline(store, "CartPole-v1") is None
    gym_run("random", "CartPole-v1", 22.0)
    a2c = gym_run("a2c", "CartPole-v1", 300.0)
    assert find_gym_baseline(store, "CartPole-v1") == (a2c, "a2c", 300.0)
    ppo = gym_run("ppo", "CartPole-v1", 480.0)
    gym_run("ppo", "CartPole-v1", 100.0, status="failed")
    gym_run("ppo", "Acrobot-v1", -90.0)
    assert find_gym_baseline(store, "CartPole-v1") == (ppo, "ppo", 480.0)


def test_diagnostics_figure_draws_probe_probability_entropy_and_minority_actions() -> None:
    metrics = pd.DataFrame({"step": [0, 64, 128], "diag/p_toward_lean": [0.48, 0.52, 0.61],
                            "diag/entropy": [None, 0.69, 0.66], "diag/minority_actions": [None, 30.0, 22.0],
                            "losses/value_loss": [None, 1.0, 0.5]})
    fig = make_agent_diagnostics_figure(metrics)
    ys = {t.name: [y for y in t.y] for t in fig.data}
    assert ys == {"p(push toward the lean), probe states": [0.48, 0.52, 0.61],
                  "policy entropy per rollout (nats)": [0.69, 0.66], "minority actions per rollout": [30.0, 22.0]}
    assert [s.y0 for s in fig.layout.shapes] == [0.5]  # no preference, dotted


def test_diagnostics_figure_of_a_run_without_probes_has_empty_panels() -> None:
    metrics = pd.DataFrame({"step": [64], "diag/entropy": [1.2], "diag/minority_actions": [40.0]})
    fig = make_agent_diagnostics_figure(metrics)
    assert [t.name for t in fig.data] == ["policy entropy per rollout (nats)", "minority actions per rollout"]
    assert len(make_agent_diagnostics_figure(pd.DataFrame()).data) == 0
