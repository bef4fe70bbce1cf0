"""Before / after: the bootstrap interval by hand and by coverage, held-out prompts, and a real comparison
of the tiny model with checkpoints made from it (a full copy, a changed copy, a LoRA adapter)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.evaluate import (
    BeforeAfter,
    bootstrap_mean_diff,
    compare_before_after,
    compare_run_before_after,
    held_out_prompts,
    load_before_after,
    read_latest_before_after,
    save_before_after,
)
from llmrl_core.lm_rl.prompts import load_prompt_set

# ---------------------------------------------------------------------- bootstrap


def test_paired_bootstrap_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0])  # differences 1, 0, 2 -> mean 1
    diff, low, high = bootstrap_mean_diff(a, b, n_resamples=4, confidence=0.5, seed=7)
    assert diff == pytest.approx(1.0)
    idx = np.random.default_rng(7).integers(0, 3, size=(4, 3))  # the documented draw
    d = [1.0, 0.0, 2.0]
    means = sorted(sum(d[i] for i in row) / 3 for row in idx)
    # quantiles 0.25 and 0.75 of 4 sorted values, linear interpolation: positions 0.75 and 2.25
    assert low == pytest.approx(means[0] + 0.75 * (means[1] - means[0]))
    assert high == pytest.approx(means[2] + 0.25 * (means[3] - means[2]))


def test_constant_differences_give_a_point_interval():
    assert bootstrap_mean_diff([0.0, 1.0, 5.0], [0.5, 1.5, 5.5]) == pytest.approx((0.5, 0.5, 0.5))


def test_unpaired_bootstrap_by_hand():
    a, b = np.array([0.0, 1.0]), np.array([1.0, 2.0, 3.0])
    diff, low, high = bootstrap_mean_diff(a, b, n_resamples=3, confidence=0.5, seed=1)
    assert diff == pytest.approx(2.0 - 0.5)
    rng = np.random.default_rng(1)
    ia, ib = rng.integers(0, 2, size=(3, 2)), rng.integers(0, 3, size=(3, 3))
    diffs = sorted(b[ib[r]].mean() - a[ia[r]].mean() for r in range(3))
    assert (low, high) == pytest.approx((diffs[0] + 0.5 * (diffs[1] - diffs[0]), diffs[1] + 0.5 * (diffs[2] - diffs[1])))


def test_bootstrap_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(123)
    true_diff, trials, covered = 0.3, 300, 0
    for trial in range(trials):
        a = rng.normal(0.0, 1.0, size=40)
        b = a + rng.normal(true_diff, 1.0, size=40)  # paired: the same prompts, a noisy gain of 0.3
        _, low, high = bootstrap_mean_diff(a, b, n_resamples=1000, seed=trial)
        covered += low <= true_diff <= high
    assert 0.89 <= covered / trials <= 0.99  # percentile bootstrap undercovers slightly at n = 40


def test_bootstrap_rejects_bad_input():
    with pytest.raises(InputError, match="at least one"):
        bootstrap_mean_diff([], [1.0])
    with pytest.raises(InputError, match="finite"):
        bootstrap_mean_diff([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(InputError, match="as many"):
        bootstrap_mean_diff([1.0], [1.0, 2.0], paired=True)


# ---------------------------------------------------------------------- held-out prompts


def test_held_out_prompts_skip_every_prompt_training_drew():
    config = {"prompt_set": "sentence-starters", "prompt_limit": 10, "seed": 3, "steps": 100, "prompts_per_step": 4}
    trained = set(load_prompt_set("sentence-starters", limit=10, seed=3)["prompt"])
    held = held_out_prompts(config, n=8)
    assert len(held) == 8 and not trained & set(held["prompt"])
    assert "own set" in held.attrs["source"]


def test_held_out_prompts_include_rows_a_short_run_never_reached():
    import random

    config = {"prompt_set": "review-openers", "seed": 5, "steps": 2, "prompts_per_step": 3}
    full = load_prompt_set("review-openers")
    order = list(range(len(full)))
    random.Random(5 * 1_000_003).shuffle(order)
    drawn = set(full["prompt"].iloc[order[:6]])
    held = held_out_prompts(config, n=100)
    assert len(held) == len(full) - 6 and not drawn & set(held["prompt"])


def test_held_out_prompts_fall_back_to_a_builtin_set():
    config = {"prompt_set": "sentence-starters", "seed": 0, "steps": 50, "prompts_per_step": 4}
    held = held_out_prompts(config, n=5)
    assert list(held["prompt"]) == list(load_prompt_set("review-openers")["prompt"].head(5))
    assert "built-in set 'review-openers'" in held.attrs["source"]
    arithmetic = held_out_prompts({"prompt_set": "arithmetic", "steps": 100, "prompts_per_step": 4}, n=5)
    assert len(arithmetic) == 5 and "answer" in arithmetic.columns
    assert not set(arithmetic["prompt"]) & set(load_prompt_set("arithmetic")["prompt"])


# ---------------------------------------------------------------------- a real comparison with the tiny model

SHORT_IS_GOOD = [{"type": "length", "target": 0, "unit": "chars", "falloff": 1000}]  # 1 - chars / 1000


def save_copy(tiny_model_dir, folder, change=None):
    """Save the tiny model (changed by `change(model)` if given) with its tokenizer as a checkpoint folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    if change:
        change(model)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def test_same_weights_give_the_same_answers_and_a_zero_difference(tiny_model_dir, tmp_path):
    checkpoint = save_copy(tiny_model_dir, tmp_path / "checkpoint-000001")
    result = compare_before_after(str(tiny_model_dir), checkpoint, ["Hello there", "The weather today"], SHORT_IS_GOOD,
                                  greedy=False, samples=3, max_new_tokens=8, seed=4, device="cpu", chat=False)
    assert len(result.rows) == 6 and list(result.rows["sample"]) == [0, 1, 2, 0, 1, 2]
    assert list(result.rows["before"]) == list(result.rows["after"])  # same seed, same weights
    assert (result.diff, result.low, result.high) == pytest.approx((0.0, 0.0, 0.0))
    expected = [max(0.0, 1 - len(t) / 1000) for t in result.rows["before"]]
    assert list(result.rows["before_reward"]) == pytest.approx(expected)
    assert result.reward_names == ["length"] and "before/length" in result.rows.columns


def test_a_changed_checkpoint_scores_differently_with_an_interval(tiny_model_dir, tmp_path):
    import torch

    def silence(model):  # zero final norm -> all logits 0 -> greedy picks token 0, a special token: empty text
        with torch.no_grad():
            model.model.norm.weight.zero_()

    checkpoint = save_copy(tiny_model_dir, tmp_path / "checkpoint-000002", silence)
    prompts = pd.DataFrame({"prompt": ["Once upon a time", "My cat", "The city at night", "Our team"]})
    result = compare_before_after(str(tiny_model_dir), checkpoint, prompts, SHORT_IS_GOOD, greedy=True, samples=5,
                                  max_new_tokens=8, seed=0, device="cpu", chat=False)
    assert result.samples == 1 and len(result.rows) == 4  # greedy: one answer per prompt
    assert (result.rows["after"] == "").all() and (result.rows["before"] != "").all()
    assert result.after_mean == pytest.approx(1.0) and result.diff > 0 and 0 < result.low <= result.diff <= result.high
    assert result.diff == pytest.approx(result.after_mean - result.before_mean)
    assert "after" in result.summary() or "+" in result.summary()


def test_a_lora_checkpoint_loads_onto_its_base(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    base.config.name_or_path = str(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    folder = tmp_path / "checkpoint-lora"
    peft_model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    result = compare_before_after(str(tiny_model_dir), folder, ["The weather today", "My neighbour"], SHORT_IS_GOOD,
                                  greedy=True, samples=1, max_new_tokens=8, seed=0, device="cpu", chat=False)
    assert len(result.rows) == 2
    assert list(result.rows["before"]) != list(result.rows["after"])  # the adapter changed the answers


def test_compare_with_a_runs_config(tiny_model_dir, tmp_path):
    checkpoint = save_copy(tiny_model_dir, tmp_path / "checkpoint-000003")
    config = {"model": str(tiny_model_dir), "rewards": SHORT_IS_GOOD, "chat": "raw", "max_new_tokens": 5,
              "temperature": 0.8, "device": "cpu", "prompt_set": "sentence-starters", "steps": 1, "prompts_per_step": 2}
    result = compare_run_before_after(config, checkpoint, held_out_prompts(config, n=2), greedy=False, samples=2, seed=1)
    assert result.base_spec == str(tiny_model_dir) and len(result.rows) == 4 and not result.greedy
    assert list(result.rows["before"]) == list(result.rows["after"]) and result.diff == 0.0


def test_compare_rejects_a_missing_checkpoint_and_empty_prompts(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="No checkpoint folder"):
        compare_before_after(str(tiny_model_dir), tmp_path / "nope", ["hi"], SHORT_IS_GOOD, greedy=True)
    with pytest.raises(InputError, match="non-empty prompt"):
        compare_before_after(str(tiny_model_dir), tmp_path, ["  "], SHORT_IS_GOOD, greedy=True)


def test_a_result_is_kept_with_its_run(store, tmp_path):
    rows = pd.DataFrame({"prompt": ["p <b>"], "sample": [0], "before": ["a"], "after": ["b"], "before_reward": [0.1],
                         "after_reward": [0.4], "before/x": [float("nan")], "after/x": [0.4]})
    result = BeforeAfter("base", "ckpt", rows, 0.1, 0.4, 0.3, 0.2, 0.5, 0.95, True, 1, ["x"])
    run_id = store.create_run("lm_rl", "r", {})
    assert read_latest_before_after(store, run_id) is None
    path = save_before_after(store, run_id, result)
    again = load_before_after(path)
    assert again.diff == 0.3 and again.rows["prompt"][0] == "p <b>" and np.isnan(again.rows["before/x"][0])
    latest = read_latest_before_after(store, run_id)
    assert latest is not None and latest.checkpoint == "ckpt"
