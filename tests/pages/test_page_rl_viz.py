"""The RL dashboard's pure builders (llmrl_core.present.lm_rl): tables, flat-reward note, ETA, escaped token HTML."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmrl_core.present.lm_rl import (
    estimate_eta_seconds,
    explain_flat_rewards,
    format_duration,
    list_reward_names,
    make_chart_specs,
    make_reward_figure,
    make_samples_frame,
    pick_best_and_worst,
    render_sample_tokens_html,
    token_values,
)


def _samples() -> pd.DataFrame:
    rows = [
        (1, 1, "The day", " was <b>great</b>", {"sentiment": 0.8, "total": 0.8},
         {"advantage": 0.7, "tokens": [" was", " <b>", "great", "</b>"], "logprobs": [-1.0, -2.0, -0.5, -0.1],
          "ratio": [1.0, 1.0, 1.0, 1.0], "finish_reason": "eos"}),
        (2, 1, "The day", " was bad", {"sentiment": -0.5, "total": -0.5},
         {"advantage": -0.7, "tokens": [" was", " bad"], "logprobs": [-1.0, -3.0], "ratio": [1.0, 1.0],
          "finish_reason": "length"}),
        (3, 2, "A cat", " sat", {"sentiment": None, "total": 0.0},
         {"advantage": 0.0, "tokens": [" sat"], "logprobs": [-0.2], "ratio": [math.e], "kl": [0.01],
          "finish_reason": "eos"}),
    ]
    return pd.DataFrame(rows, columns=["id", "step", "prompt", "completion", "rewards", "extras"])


def test_samples_frame_has_one_column_per_reward_then_total_and_advantage() -> None:
    table = make_samples_frame(_samples())
    assert list(table.columns) == ["sample", "step", "prompt", "completion", "sentiment", "total", "advantage", "finish"]
    assert table["sentiment"].isna().tolist() == [False, False, True]  # a None reward stays missing, not 0
    best, worst = pick_best_and_worst(table, 1)
    assert best["sample"].tolist() == [1] and worst["sample"].tolist() == [2]
    assert make_samples_frame(_samples().iloc[0:0]).empty


def test_token_html_escapes_model_output() -> None:
    extras = _samples().loc[0, "extras"]
    markup, note = render_sample_tokens_html(extras, "advantage")
    assert "<b>" not in markup and "&lt;b&gt;" in markup
    assert "every token shares it" in note
    assert markup.count('class="tok"') == 4
    saturated, _ = render_sample_tokens_html(extras, "advantage")  # 0.7 on its own scale: full colour
    paler, _ = render_sample_tokens_html(extras, "advantage", scale=1.4)  # half of the step's largest |advantage|
    assert "hsl(0, 80%, 62%)" in saturated and "hsl(0, 80%, 81%)" in paler


def test_token_values_per_colouring() -> None:
    extras = _samples().loc[2, "extras"]
    assert token_values(extras, "log-prob ratio")[0] == pytest.approx([1.0])  # log(e)
    assert token_values(extras, "per-token KL")[0] == [0.01]
    values, note = token_values(_samples().loc[0, "extras"], "per-token KL")
    assert values is None and "beta = 0" in note
    values, note = token_values(_samples().loc[0, "extras"], "log-prob ratio")
    assert values == [0.0] * 4 and "num_epochs = 1" in note
    ppo = {"tokens": ["a", "b"], "token_advantages": [0.5, -0.5], "advantage": 0.0}
    assert token_values(ppo, "advantage")[0] == [0.5, -0.5]


def test_flat_rewards_note_only_when_the_last_step_is_flat() -> None:
    frame = pd.DataFrame({"step": [1, 2, 3], "frac_reward_zero_std": [1.0, 1.0, 1.0]})
    note = explain_flat_rewards(frame, "grpo")
    assert note and "last 3 steps" in note and "advantage" in note
    frame.loc[2, "frac_reward_zero_std"] = 0.5
    assert explain_flat_rewards(frame, "grpo") is None
    assert explain_flat_rewards(pd.DataFrame({"step": [1]}), "grpo") is None


def test_eta_and_durations() -> None:
    assert estimate_eta_seconds(4, 10, [100.0, 2.0, 2.0, 2.0, 2.0, 2.0]) == pytest.approx(12.0)  # last 5 only
    assert estimate_eta_seconds(10, 10, [1.0]) is None
    assert estimate_eta_seconds(0, 10, []) is None
    assert (format_duration(12.4), format_duration(200), format_duration(3720), format_duration(None)) == \
        ("12 s", "3 min 20 s", "1 h 02 min", "–")


def test_charts_follow_the_metrics_present() -> None:
    columns = ["step", "reward", "reward_std", "rewards/sentiment/mean", "rewards/sentiment/std", "entropy",
               "loss/policy", "frac_reward_zero_std", "step_time", "tokens_per_second"]
    keys = [s.key for s in make_chart_specs(columns)]
    assert keys == ["entropy", "policy_loss", "zero_std", "step_time", "tokens"]
    assert "value_loss" in [s.key for s in make_chart_specs(columns + ["loss/value"])]
    assert list_reward_names(columns) == ["sentiment"]
    frame = pd.DataFrame({"step": [1, 2], "reward": [0.1, 0.3], "reward_std": [0.1, 0.1],
                          "rewards/a/mean": [0.2, 0.4], "rewards/a/std": [0.0, 0.0],
                          "rewards/b/mean": [0.0, 0.2], "rewards/b/std": [0.0, 0.0]})
    names = [t.name for t in make_reward_figure(frame).data if t.showlegend is not False]
    assert names == ["reward", "rewards/a/mean", "rewards/b/mean"]
