"""Compare runs: TensorBoard's EMA by hand, the config diff, compare frames (x axes, downsampling), finals, figure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.present.compare import PALETTE, make_compare_figure
from llmrl_core.runs.compare import (diff_configs, flatten_config, make_compare_frame, read_compare_frame,
                                     read_series, smooth_ema, summarize_finals)


def tensorboard_ema(values, weight):
    """TensorBoard's classicSmoothing, transcribed line by line (webapp/widgets/line_chart_v2/data_transformer.ts)."""
    last, num_accum, out = 0.0, 0, []
    is_constant = all(v == values[0] for v in values)
    for v in values:
        if is_constant or not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        num_accum += 1
        debias = 1 - weight ** num_accum if weight != 1 else 1
        out.append(last / debias)
    return out


# ----------------------------------------------------------------------------- smoothing


def test_ema_matches_hand_computed_values():
    # w = 0.5: last 0.5, 1.25, 2.125, (NaN skipped), 3.0625; debias 0.5, 0.75, 0.875, 0.9375
    got = smooth_ema([1, 2, 3, float("nan"), 4], 0.5)
    expected = [1.0, 1.25 / 0.75, 2.125 / 0.875, float("nan"), 3.0625 / 0.9375]
    assert np.allclose(got, expected, equal_nan=True)
    # w = 0.9 on two points: last 1.0, then 0.9 + 0.3 = 1.2 -> 1.2 / (1 - 0.81) = 6.3158
    assert np.allclose(smooth_ema([10, 3], 0.9), [10.0, 1.2 / 0.19])


def test_ema_matches_tensorboard_on_random_series():
    rng = np.random.default_rng(3)
    values = list(rng.normal(size=300))
    values[17] = float("inf")
    values[40] = float("nan")
    for weight in (0.0, 0.3, 0.6, 0.99):
        assert np.allclose(smooth_ema(values, weight), tensorboard_ema(values, weight), equal_nan=True)


def test_ema_edge_cases():
    assert list(smooth_ema([2.0, 2.0, 2.0], 0.9)) == [2.0, 2.0, 2.0]  # constant: unchanged, as TensorBoard
    assert smooth_ema([], 0.6).size == 0
    assert list(smooth_ema([1.0, 5.0], 0.0)) == [1.0, 5.0]
    for bad in (1.0, -0.1, float("nan"), "0.5"):
        with pytest.raises(InputError, match="Smoothing"):
            smooth_ema([1.0, 2.0], bad)


# ----------------------------------------------------------------------------- config diff


def test_config_diff_shows_only_differing_fields_with_dotted_keys():
    a = {"algo": "ppo", "seed": 0, "params": {"gamma": 0.99, "n_steps": 128, "net": {"pi": [64, 64]}},
         "rewards": [{"type": "vader"}], "lr": 1, "flag": True}
    b = {"algo": "ppo", "seed": 1, "params": {"gamma": 0.99, "n_steps": 256, "net": {"pi": [64, 64]}},
         "rewards": [{"type": "vader"}], "lr": 1.0, "flag": 1, "extra": "x"}
    diff = diff_configs({3: a, 7: b})
    assert list(diff.columns) == [3, 7]
    assert list(diff.index) == ["seed", "params.n_steps", "flag", "extra"]  # first config's order, then the others'
    assert diff.loc["params.n_steps"].tolist() == [128, 256]
    assert diff.loc["flag"].tolist() == [True, 1]  # True is not 1 in a config
    assert diff.loc["extra"].tolist() == [None, "x"]  # missing in run 3
    assert "lr" not in diff.index and "rewards" not in diff.index and "params.net.pi" not in diff.index


def test_config_diff_lists_as_json_and_nothing_to_diff():
    diff = diff_configs({1: {"rewards": [{"type": "vader"}]}, 2: {"rewards": [{"type": "length"}]}})
    assert diff.loc["rewards"].tolist() == ['[{"type": "vader"}]', '[{"type": "length"}]']
    assert diff_configs({1: {"a": 1}, 2: {"a": 1}}).empty
    assert diff_configs({1: {"a": 1}}).empty
    assert flatten_config({"a": {"b": {"c": 1}}, "d": {}}) == {"a.b.c": 1, "d": {}}


# ----------------------------------------------------------------------------- frames


def make_run(store, kind, config, steps, metrics, started=1000.0, name=None):
    """A finished run with `metrics` {name: values per step}, step i at wall time started + 2 i."""
    run_id = store.create_run(kind, name or f"{kind} run", config, steps)
    store._execute("UPDATE runs SET started=?, status='completed' WHERE id=?", (started, run_id))
    for step in range(1, steps + 1):
        store.log_metrics(run_id, step, {m: v[step - 1] for m, v in metrics.items()}, wall_time=started + 2 * step)
    return run_id


def test_frame_x_by_step_samples_and_time(store):
    lm = make_run(store, "lm_rl", {"prompts_per_step": 3, "num_generations": 4}, 5, {"reward": [1, 2, 3, 4, 5]})
    gym = make_run(store, "gym", {"env_id": "CartPole-v1"}, 3, {"reward": [7, 8, 9]}, started=50.0)
    steps = read_compare_frame(store, [lm, gym], ["reward"], x="step")
    assert steps[steps.run_id == lm]["x"].tolist() == [1, 2, 3, 4, 5]
    samples = read_compare_frame(store, [lm, gym], ["reward"], x="samples")
    assert samples[samples.run_id == lm]["x"].tolist() == [12, 24, 36, 48, 60]  # 3 prompts x 4 samples a step
    assert samples[samples.run_id == gym]["x"].tolist() == [1, 2, 3]  # a gym step is an env step already
    times = read_compare_frame(store, [lm, gym], ["reward"], x="time")
    assert times[times.run_id == gym]["x"].tolist() == [2, 4, 6]  # wall time minus the run's start
    assert times[times.run_id == lm]["value"].tolist() == [1, 2, 3, 4, 5]
    assert list(times["run_id"].unique()) == [lm, gym]  # the caller's order
    assert set(times["run_name"]) == {"lm_rl run", "gym run"}


def test_lm_default_batch_when_config_omits_it(store):
    from llmrl_core.lm_rl.config import RLConfig

    run_id = make_run(store, "lm_rl", {}, 2, {"reward": [0, 1]})
    frame = read_compare_frame(store, [run_id], ["reward"], x="samples")
    assert frame["x"].tolist() == [RLConfig().batch_size, 2 * RLConfig().batch_size]


def test_frame_downsamples_each_series_after_smoothing_the_whole(store):
    rng = np.random.default_rng(0)
    values = rng.normal(size=5000)
    values[2500] = 100.0  # a one-step spike
    sparse = [float("nan")] * 5000
    sparse[99::100] = list(range(50))  # an evaluation every 100 steps: 50 points
    run_id = make_run(store, "gym", {}, 5000, {"loss": values, "eval": sparse})
    frame = read_compare_frame(store, [run_id], ["loss", "eval"], max_points=200, smoothing=0.6)
    loss = frame[frame.metric == "loss"]
    assert len(loss) <= 200 and loss["step"].iloc[0] == 1 and loss["step"].iloc[-1] == 5000
    assert 100.0 in loss["raw"].tolist()  # the spike survives
    full = smooth_ema(values, 0.6)
    assert np.allclose(loss["value"], full[loss["step"].to_numpy() - 1])  # smoothed over every point, then cut
    assert len(frame[frame.metric == "eval"]) == 50  # NaN rows left out, a short series kept whole
    series = read_series(store, [run_id], ["loss", "eval"])  # what a page caches while a slider moves
    assert [len(s.raw) for s in series] == [5000, 50]
    assert make_compare_frame(series, max_points=200, smoothing=0.6).equals(frame)


def test_frame_rejects_unknown_runs_and_axes(store):
    run_id = make_run(store, "demo", {}, 2, {"reward": [1, 2]})
    with pytest.raises(InputError, match="No run with id 999"):
        read_compare_frame(store, [run_id, 999], ["reward"])
    with pytest.raises(InputError, match="x must be one of"):
        read_compare_frame(store, [run_id], ["reward"], x="epoch")
    assert read_compare_frame(store, [run_id], ["not logged"]).empty
    assert read_compare_frame(store, [], ["reward"]).empty


def test_finals_give_final_and_best_per_run_and_metric(store):
    a = make_run(store, "lm_rl", {}, 4, {"reward": [0.1, 0.9, 0.5, 0.4], "loss/policy": [3, 1, 2, 2.5]})
    b = make_run(store, "lm_rl", {}, 2, {"reward": [0.2, float("nan")]})
    finals = summarize_finals(store, [a, b], ["reward", "loss/policy"])
    row = finals[(finals.run_id == a) & (finals.metric == "reward")].iloc[0]
    assert (row["final"], row["final_step"], row["best"], row["best_step"]) == (0.4, 4, 0.9, 2)
    loss = finals[(finals.run_id == a) & (finals.metric == "loss/policy")].iloc[0]
    assert (loss["best"], loss["best_step"]) == (1.0, 2)  # a loss is best at its minimum
    nan_last = finals[(finals.run_id == b) & (finals.metric == "reward")].iloc[0]
    assert (nan_last["final"], nan_last["final_step"]) == (0.2, 1)  # a NaN logged last is not the final value
    assert math.isnan(finals[(finals.run_id == b) & (finals.metric == "loss/policy")].iloc[0]["best"])


# ----------------------------------------------------------------------------- figure


def test_figure_one_subplot_per_metric_one_legend_entry_per_run_names_escaped(store):
    evil = make_run(store, "demo", {}, 3, {"reward": [1, 2, 3], "kl": [0, 1, 0]}, name="<b>bold</b> & <a href=x> %{y}")
    plain = make_run(store, "demo", {}, 3, {"reward": [3, 2, 1], "kl": [1, 1, 1]}, name="plain")
    frame = read_compare_frame(store, [evil, plain], ["reward", "kl"], smoothing=0.5)
    fig = make_compare_figure(frame, ["reward", "kl"])
    lines = [t for t in fig.data if t.hovertemplate]  # the smoothed curves (the raw ones are faint, no hover)
    assert len(lines) == 4 and len(fig.data) == 8  # 2 runs x 2 metrics, each with its faint raw curve
    assert {t.yaxis for t in lines} == {"y", "y2"}
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == [f"#{evil} &lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=x&gt; &#37;{{y}}", f"#{plain} plain"]
    assert all("<b>" not in (t.name or "") for t in fig.data)
    assert all("bold" not in t.hovertemplate for t in lines)  # user text reaches hover only through name/meta
    unsmoothed = make_compare_figure(read_compare_frame(store, [plain], ["reward"]), ["reward"], x="time")
    assert len(unsmoothed.data) == 1 and unsmoothed.layout.xaxis.title.text == "wall time (s)"


# ----------------------------------------------------------------------------- runs of different kinds


def test_runs_group_by_kind_each_with_its_spec_x_axis(store):
    from llmrl_core.runs.compare import KindGroup, get_x_title, group_runs_by_kind

    lm = make_run(store, "lm_rl", {"prompts_per_step": 2}, 20, {"reward": list(np.linspace(0.1, 0.7, 20))})
    gym = make_run(store, "gym", {"env_id": "CartPole-v1"}, 3, {"charts/episodic_return": [20, 200, 500]})
    lm2 = make_run(store, "lm_rl", {"prompts_per_step": 4}, 2, {"reward": [0.1, 0.2]})
    old = make_run(store, "retired", {}, 2, {"reward": [1, 2]})  # a kind this installation no longer has
    groups = group_runs_by_kind(store, [lm, gym, lm2, old])
    assert [(g.kind, g.run_ids) for g in groups] == [("lm_rl", (lm, lm2)), ("gym", (gym,)), ("retired", (old,))]
    lm_group, gym_group, old_group = groups
    assert get_x_title(lm_group) == "step" and get_x_title(gym_group) == "environment steps"
    assert get_x_title(gym_group, "time") == "wall time (s)" and get_x_title(old_group) == "step"
    assert gym_group.label == "Gymnasium agent (SB3)" and old_group.label == "retired"
    with pytest.raises(InputError, match="x must be one of"):
        get_x_title(KindGroup("x", "x", "step", ()), "epoch")
    # one panel per kind: the LM run's 20 updates are on an axis of their own, not against 500 env steps
    fig = make_compare_figure(read_compare_frame(store, list(gym_group.run_ids), ["charts/episodic_return"]),
                              ["charts/episodic_return"], x_title=get_x_title(gym_group), colour_start=2)
    assert fig.layout.xaxis.title.text == "environment steps" and "environment steps" in fig.data[0].hovertemplate
    assert fig.data[0].line.color == PALETTE[2]  # after the two LM runs' colours: each run keeps its own


def test_config_diff_stays_within_a_kind_and_says_the_kinds_differ(store):
    from llmrl_core.runs.compare import describe_kinds_differ, diff_configs_by_kind, group_runs_by_kind

    lm = make_run(store, "lm_rl", {"learning_rate": 1e-5, "beta": 0.0}, 2, {"reward": [0, 1]})
    lm2 = make_run(store, "lm_rl", {"learning_rate": 3e-5, "beta": 0.0}, 2, {"reward": [0, 1]})
    gym = make_run(store, "gym", {"env_id": "CartPole-v1", "algo": "ppo"}, 2, {"charts/episodic_return": [1, 2]})
    found = diff_configs_by_kind(store, [lm, gym, lm2])
    assert [group.kind for group, _ in found] == ["lm_rl", "gym"]
    lm_diff, gym_diff = found[0][1], found[1][1]
    assert list(lm_diff.index) == ["learning_rate"]  # not env_id, algo and every LM field against None
    assert list(lm_diff.columns) == [f"#{lm} lm_rl run", f"#{lm2} lm_rl run"]
    assert gym_diff.empty  # one gym run: nothing to compare it with
    note = describe_kinds_differ([group for group, _ in found])
    assert "different kinds" in note and "RL fine-tuning of a language model (2 runs)" in note
    assert "Gymnasium agent (SB3) (1 run)" in note
    assert describe_kinds_differ(group_runs_by_kind(store, [lm, lm2])) == ""
