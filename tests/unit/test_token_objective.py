"""The step inspector's numbers (issue 21) against what the trainer recorded, on real tiny training steps.

For each algorithm: the push the trainer stores per token is reproduced (1) by the formula panel from exactly
the numbers it shows, and (2) by the side-by-side recomputation fed the stored rewards, ratios and lengths,
for the algorithm that ran. The other algorithms and loss types recompute without a model forward.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from llmrl_core.lm_rl.samples import read_push
from llmrl_core.lm_rl.trainer import RLTrainer
from llmrl_core.present.token_objective import (compare_sequence_weights, compute_step_pushes, explain_token,
                                                list_comparable, load_step_batch)
from tests.unit.test_trainer import PROMPTS, tiny_config

CONFIGS = {
    "grpo-dapo": {"algorithm": "grpo", "loss_type": "dapo"},
    "grpo-grpo-kl": {"algorithm": "grpo", "loss_type": "grpo", "beta": 0.1, "kl_estimator": "k3"},
    "rloo-2-epochs": {"algorithm": "rloo", "loss_type": "dr_grpo", "num_epochs": 2, "grad_accum_steps": 2,
                      "learning_rate": 5e-2},
    "reinforce": {"algorithm": "reinforce", "loss_type": "dapo"},
    "ppo": {"algorithm": "ppo", "beta": 0.1, "kl_estimator": "k1"},
}


def _last_step(tiny_model_dir, changes: dict) -> tuple[pd.DataFrame, dict]:
    cfg = tiny_config(tiny_model_dir, **changes)
    trainer = RLTrainer(cfg, prompts=PROMPTS)
    result = [trainer.train_step() for _ in range(2)][-1]
    return pd.DataFrame(result.samples), cfg.to_dict()


@pytest.mark.parametrize("changes", list(CONFIGS.values()), ids=list(CONFIGS))
def test_formula_panel_and_recomputation_reproduce_the_recorded_push(tiny_model_dir, changes):
    samples, config = _last_step(tiny_model_dir, changes)
    assert len(samples) == config["prompts_per_step"] * config["num_generations"]
    for extras, rewards in zip(samples["extras"], samples["rewards"]):
        push, kl_push = read_push(extras)
        assert len(push) == len(extras["tokens"]) and extras["token_weight"] > 0
        assert (kl_push is not None) == (config["beta"] > 0 and config["algorithm"] != "ppo")
        for t in range(len(extras["tokens"])):
            shown = explain_token(extras, t, config, rewards, samples)
            # the push from exactly the numbers shown; they are stored rounded (advantage 4 decimals, ratio 4)
            slack = shown.factors[0].value * 2e-4 + 1e-3 * abs(shown.recorded)
            assert abs(shown.contribution - shown.recorded) <= slack, (t, shown.contribution, shown.recorded)
            assert shown.clipped == (t in extras["clipped"])

    step = load_step_batch(samples, config)
    assert step.complete
    push, clipped = compute_step_pushes(step, config, config["algorithm"], config["loss_type"], ran=True)
    recorded = torch.zeros_like(push)
    for i, extras in enumerate(step.extras):
        push_i = read_push(extras)[0]
        recorded[i, :len(push_i)] = torch.tensor(push_i)
        assert clipped[i].nonzero().squeeze(1).tolist() == extras["clipped"]
    # rtol: the recorded push is float16 (3 significant digits), the stored ratio 4 decimals; atol: PPO's per-token
    # advantages are stored with 4 decimals, which shifts a push by up to 5e-5 x w x r
    weight = max(e["token_weight"] for e in step.extras)
    torch.testing.assert_close(push, recorded, rtol=1e-3, atol=weight * 1e-4)

    pairs = list_comparable(config, step)
    assert (config["algorithm"], config["loss_type"]) in pairs
    assert any(name == "ppo" for name, _ in pairs) == (config["algorithm"] == "ppo")  # PPO needs the value head
    for name, loss_type in pairs:
        other, _ = compute_step_pushes(step, config, name, loss_type)
        assert other.shape == push.shape and bool(torch.isfinite(other).all())
        assert (other * (1 - step.mask)).abs().sum() == 0  # nothing on padding


def test_sequence_weights_show_the_length_bias(tiny_model_dir):
    """grpo: every completion weighs 1/B in total; dapo: in proportion to its length; dr_grpo: length / (B T_max)."""
    samples, config = _last_step(tiny_model_dir, CONFIGS["grpo-dapo"])
    step = load_step_batch(samples, config)
    table = compare_sequence_weights(step, config)
    b, tokens = len(table), table["tokens"].astype(float)
    assert table["grpo: sum of w"].tolist() == pytest.approx([1 / b] * b)
    assert table["dapo: sum of w"].tolist() == pytest.approx((tokens / tokens.sum()).tolist())
    assert table["dr_grpo: sum of w"].tolist() == pytest.approx((tokens / (b * config["max_new_tokens"])).tolist())


def test_push_storage_round_trip_keeps_three_digits_at_any_scale():
    """Stored as float16 of push / w: a push of 2e-7 (w 1e-7) keeps its digits; out-of-range values saturate."""
    from llmrl_core.lm_rl.samples import decode_scaled_f16, encode_scaled_f16

    values = torch.tensor([2.0e-7, -3.3e-7, 0.0, 1.234e-7])  # (4,) a push on a batch of 16 x 128 tokens
    back = torch.tensor(decode_scaled_f16(encode_scaled_f16(values, 1e-7), 1e-7), dtype=torch.float64)
    torch.testing.assert_close(back, values.double(), rtol=1e-3, atol=0)
    assert len(encode_scaled_f16(torch.zeros(128), 1.0)) == 344  # 2 bytes a token, base64: 2.7 characters
    assert decode_scaled_f16(encode_scaled_f16(torch.tensor([1e9]), 1.0), 1.0) == [65504.0]
