"""Run headlines: the one line a front page or report leads with, checked against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd

from llmrl_core.gym.kind import describe_gym_result
from llmrl_core.runs.headline import describe_change, describe_run_headline


def test_change_averages_five_steps_at_each_end():
    values = pd.Series([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    # first five: mean 0.2; last five: 0.6..1.0, mean 0.8; delta +0.6
    headline = describe_change(values, "reward")
    assert headline.text == "reward 0.20 → 0.80 (+0.60)" and headline.good is True


def test_change_skips_nan_and_handles_short_and_empty_series():
    assert describe_change(pd.Series([math.nan, 0.5, math.inf]), "reward").text == "reward 0.50"
    assert describe_change(pd.Series([], dtype=float), "return").text == "no return logged yet"
    falling = describe_change(pd.Series([300.0] * 5 + [100.0] * 5), "return")
    assert falling.text == "return 300 → 100 (-200)" and falling.good is False


def test_gym_result_solved_unsolved_and_unknown_env():
    assert describe_gym_result({"solved_at_step": 13000, "solved_seconds": 11.9}, {"env_id": "CartPole-v1"}, 500.0).text \
        == "solved CartPole-v1 at 13,000 steps in 12 s"
    unsolved = describe_gym_result({}, {"env_id": "CartPole-v1"}, 212.0)
    assert unsolved.text == "best return 212 of 475 to solve" and unsolved.good is False
    assert describe_gym_result({}, {"env_id": "NoSuch-v0"}, 3.5).text == "best return 3.50"
    assert describe_gym_result(None, {}, None).text == "no evaluation yet"


def test_headline_reads_the_goal_metric_from_the_store(store):
    run_id = store.create_run("lm_rl", "pos", {"model": "tiny"}, total_steps=10)
    for step in range(1, 11):
        store.log_metrics(run_id, step, {"reward": step / 10, "kl": 0.0})
    # steps 1-5: mean 0.3; steps 6-10: mean 0.8
    assert describe_run_headline(store, store.get_run(run_id)).text == "reward 0.30 → 0.80 (+0.50)"
    demo = store.create_run("demo", "d", {}, total_steps=20)
    store.set_progress(demo, 5, 20)
    assert describe_run_headline(store, store.get_run(demo)).text == "5 of 20 steps"


def test_agent_headline_compares_zero_shot_with_trained(store):
    run_id = store.create_run("agent", "lm plays", {"env_id": "CartPole-v1"}, total_steps=100)
    assert describe_run_headline(store, store.get_run(run_id)).text == "no evaluation yet"
    store.log_metrics(run_id, 0, {"eval/zero_shot_return": 21.4, "eval/mean_reward": 21.4})
    assert describe_run_headline(store, store.get_run(run_id)).text == "zero-shot return 21.40"
    store.log_metrics(run_id, 100, {"eval/trained_return": 187.0, "eval/mean_reward": 187.0})
    headline = describe_run_headline(store, store.get_run(run_id))
    assert headline.text == "return 21.40 → 187 (+166)" and headline.good is True  # 187 - 21.4 = 165.6
