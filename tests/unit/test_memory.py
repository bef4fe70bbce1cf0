"""The training memory estimate against hand-computed bytes for a small config, per strategy."""

from __future__ import annotations

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.memory import count_lora_params, estimate_from_config, estimate_training_memory, read_model_facts

# N = 1M parameters, h = 64, L = 2, V = 1000, b = 2 sequences of s = 10 tokens, 16-bit weights, 4 processes.
SMALL = dict(hidden_size=64, n_layers=2, vocab_size=1000, batch_size=2, seq_len=10, dtype_bytes=2, n_processes=4)
ACTIVATIONS = 2 * 10 * 64 * 2 * 34  # b·s·h·L·17·a with a = 2 bytes = 87_040
LOGITS = 2 * 10 * 1000 * 4  # b·s·V·4 = 80_000


@pytest.mark.parametrize("strategy, weights, gradients, optimizer", [
    ("single", 2_000_000, 2_000_000, 12_000_000),  # 2 + 2 + 12 bytes per parameter (ZeRO paper)
    ("ddp", 2_000_000, 2_000_000, 12_000_000),  # replicated: the same per device
    ("zero2", 2_000_000, 500_000, 3_000_000),  # gradients and optimizer state / 4
    ("zero3", 500_000, 500_000, 3_000_000),  # everything / 4
    ("fsdp", 500_000, 500_000, 3_000_000),  # FULL_SHARD = ZeRO-3
])
def test_mixed_precision_adam_per_strategy(strategy, weights, gradients, optimizer):
    est = estimate_training_memory(1_000_000, strategy=strategy, **SMALL)
    assert (est.weights, est.gradients, est.optimizer) == (weights, gradients, optimizer)
    assert (est.activations, est.logits, est.reference) == (ACTIVATIONS, LOGITS, 0)
    assert est.total == weights + gradients + optimizer + 87_040 + 80_000


def test_totals_and_descriptions():
    assert estimate_training_memory(1_000_000, strategy="zero2", **SMALL).total == 5_667_040
    big = estimate_training_memory(1_000_000_000, strategy="zero2", **SMALL)
    # 2e9 + (2e9 + 12e9) / 4 + 167_040 bytes = 5.500167e9 bytes = 5.1 GiB
    assert big.describe() == "needs about 5.1 GiB per GPU with ZeRO-2 (4 processes)"
    assert estimate_training_memory(1_000_000, strategy="single", **SMALL).describe() == "needs about 15 MiB on one GPU"


def test_fp32_weights_have_no_master_copy():
    est = estimate_training_memory(1_000_000, **{**SMALL, "dtype_bytes": 4}, strategy="single")
    assert (est.weights, est.gradients, est.optimizer) == (4_000_000, 4_000_000, 8_000_000)  # Adam m + v only
    assert est.activations == 2 * 10 * 64 * 2 * 68  # 17 x 4 bytes per activation
    sgd = estimate_training_memory(1_000_000, **{**SMALL, "dtype_bytes": 4}, strategy="single", optimizer="sgd")
    assert sgd.optimizer == 4_000_000  # momentum only


def test_lora_trains_only_the_adapters_and_needs_no_reference_copy():
    est = estimate_training_memory(1_000_000, strategy="single", lora_params=10_000, reference_model=True, **SMALL)
    assert est.weights == (1_000_000 + 10_000) * 2  # the frozen base plus the adapters
    assert (est.gradients, est.optimizer, est.reference) == (20_000, 120_000, 0)
    zero2 = estimate_training_memory(1_000_000, strategy="zero2", lora_params=10_000, **SMALL)
    assert (zero2.weights, zero2.gradients, zero2.optimizer) == (2_020_000, 5_000, 30_000)


def test_reference_copy_value_head_and_checkpointing():
    full = estimate_training_memory(1_000_000, strategy="single", reference_model=True, **SMALL)
    assert full.reference == 2_000_000
    assert estimate_training_memory(1_000_000, strategy="zero3", reference_model=True, **SMALL).reference == 500_000
    ppo = estimate_training_memory(1_000_000, strategy="single", value_head=True, **SMALL)
    assert ppo.weights == (1_000_000 + 65) * 2 and ppo.optimizer == (1_000_000 + 65) * 12  # head: h + 1
    ckpt = estimate_training_memory(1_000_000, strategy="single", gradient_checkpointing=True, **SMALL)
    assert ckpt.activations == 2 * 10 * 64 * 2 * 2 + 2 * 10 * 64 * 34  # layer inputs + one layer = 48_640


def test_bad_values_say_what_to_change():
    with pytest.raises(InputError, match="did you mean 'zero3'"):
        estimate_training_memory(1, strategy="zero-3", **SMALL)
    with pytest.raises(InputError, match="batch_size must be at least 1"):
        estimate_training_memory(1, strategy="single", **{**SMALL, "batch_size": 0})


def test_from_config_splits_the_batch_over_processes_and_micro_batches():
    facts = {"n_params": 1_000_000, "hidden_size": 64, "n_layers": 2, "vocab_size": 1000,
             "linear_shapes": {"q_proj": [64, 64, 2], "v_proj": [64, 32, 2], "up_proj": [64, 128, 2]}}
    cfg = {"prompts_per_step": 4, "num_generations": 4, "max_new_tokens": 6, "grad_accum_steps": 2,
           "processes": 2, "machines": 2, "strategy": "zero3", "mixed_precision": "bf16", "beta": 0.1}
    est = estimate_from_config(cfg, facts, prompt_tokens=4)
    # 16 completions / 4 processes / 2 micro-batches = 2 sequences of 4 + 6 tokens; fp32 weights, bf16 activations
    assert est.n_processes == 4 and est.strategy == "zero3"
    assert est.activations == 2 * 10 * 64 * 2 * 34 and est.logits == 2 * 10 * 1000 * 4
    assert (est.weights, est.gradients, est.optimizer, est.reference) == (1_000_000, 1_000_000, 2_000_000, 1_000_000)
    assert count_lora_params(facts, 8, ["q_proj", "v_proj"]) == 8 * (128 * 2 + 96 * 2)
    assert count_lora_params(facts, 8, ["all-linear"]) == 8 * (128 * 2 + 96 * 2 + 192 * 2)
    lora = estimate_from_config({**cfg, "use_lora": True, "lora_r": 8, "lora_target_modules": ["q_proj", "v_proj"]}, facts)
    assert lora.gradients == (8 * (128 * 2 + 96 * 2)) * 4 // 4 and lora.reference == 0


def test_model_facts_match_the_real_model_and_peft(tiny_model_dir, tiny_lm):
    from peft import LoraConfig, get_peft_model

    facts = read_model_facts(str(tiny_model_dir))
    assert facts["n_params"] == sum(p.numel() for p in tiny_lm.model.parameters())
    assert (facts["hidden_size"], facts["n_layers"], facts["vocab_size"]) == (32, 2, tiny_lm.model.config.vocab_size)
    assert read_model_facts(tiny_lm)["n_params"] == facts["n_params"]
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    peft_model = get_peft_model(tiny_lm.model, LoraConfig(r=4, target_modules=targets))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert count_lora_params(facts, 4, targets) == trainable
