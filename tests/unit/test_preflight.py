"""Preflight: the memory estimate by hand for the tiny Llama, bf16 on CPUs without it, too little memory, no noise."""

from __future__ import annotations

import json

import pytest

from llmrl_core.core import hardware
from llmrl_core.lm_rl import preflight
from llmrl_core.lm_rl.config import PRESETS, RLConfig, make_preset_config
from llmrl_core.lm_rl.preflight import (
    DeviceInfo, check_rl_config, compute_model_shape, estimate_memory, find_model_config, read_device_info,
)

GIB = 2**30
BIG_MACHINE = DeviceInfo("cpu", "Xeon with AMX", 512 * GIB, 1024 * GIB, cpu_capability="AMX",
                         cpu_flags=frozenset({"avx512f", "amx_bf16", "avx512_bf16"}))


def _tiny_shape(tiny_model_dir):
    return compute_model_shape(json.loads((tiny_model_dir / "config.json").read_text()))


def test_parameter_count_and_estimate_by_hand_for_the_tiny_llama(tiny_model_dir, tiny_lm):
    shape = _tiny_shape(tiny_model_dir)
    V = shape.vocab
    # per layer: q, o 32x32; k, v 32x16 (2 kv heads x head_dim 8); gate, up, down 32x64; two norms of 32
    per_layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32  # = 9280
    n = V * 32 + 2 * per_layer + 32  # embedding (tied with the LM head) + 2 layers + final norm
    assert per_layer == 9280
    assert shape.n_params == n == sum(p.numel() for p in tiny_lm.model.parameters())

    cfg = RLConfig(model=str(tiny_model_dir), prompts_per_step=2, num_generations=2, max_new_tokens=16, mixed_precision="no")
    est = estimate_memory(shape, cfg)  # the one formula, llmrl_core/lm_rl/memory.py
    seq = 64 + 16  # DEFAULT_PROMPT_TOKENS + max_new_tokens
    assert (est.weights, est.reference, est.gradients, est.optimizer) == (4 * n, 0, 4 * n, 8 * n)
    # 4 completions x 80 tokens x 32 hidden x 2 layers x 17 x 4 bytes (fp32: mixed_precision 'no'); fp32 logits once
    assert est.activations == 4 * seq * 32 * 2 * 17 * 4 and est.logits == 4 * seq * V * 4
    assert est.batch == 1_392_640 + 1280 * V

    halved = estimate_memory(shape, cfg.replace(grad_accum_steps=2))
    assert halved.batch == est.batch // 2
    with_ref = estimate_memory(shape, cfg.replace(beta=0.1))
    assert with_ref.reference == 4 * n  # a full fine-tuning reference copy in float32
    bf16 = estimate_memory(shape, cfg.replace(mixed_precision="bf16"))
    assert bf16.activations == est.activations // 2  # 16-bit activations under autocast
    auto = cfg.replace(mixed_precision="auto")
    assert estimate_memory(shape, auto, bf16_native=True).activations == bf16.activations  # native bf16: counted as bf16
    assert estimate_memory(shape, auto, bf16_native=False).activations == est.activations  # else fp32
    two = estimate_memory(shape, cfg.replace(num_processes=2))
    assert two.batch == est.batch // 2 and two.n_processes == 2  # each process runs half the completions
    lora = estimate_memory(shape, cfg.replace(use_lora=True, lora_r=4, beta=0.1))
    # r x (in + out) for q (32+32), k (32+16), v (32+16), o (32+32), in each of 2 layers
    assert lora.gradients == 4 * 2 * 4 * (64 + 48 + 48 + 64) and lora.reference == 0


@pytest.mark.parametrize(("capability", "flags", "warned"), [
    pytest.param("AVX2", {"avx2"}, True, id="zen2-avx2"),
    pytest.param("AVX512", {"avx512f"}, True, id="avx512-without-bf16"),
    pytest.param("AVX512", {"avx512f", "avx512_bf16"}, False, id="zen4-avx512_bf16-flag"),
    pytest.param("AVX512_BF16", set(), False, id="capability-avx512_bf16"),
    pytest.param("AMX", set(), False, id="capability-amx"),
])
def test_bf16_on_a_cpu_without_native_bf16_is_warned(monkeypatch, capability, flags, warned):
    import torch

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(hardware, "read_cpu_flags", lambda path="/proc/cpuinfo": ("Test CPU", frozenset(flags)))
    device = read_device_info("cpu")
    assert device.cpu_capability == capability and device.bf16_native is not warned
    found = check_rl_config(RLConfig(mixed_precision="bf16"), device)
    assert [w.field for w in found] == (["mixed_precision"] if warned else [])
    if warned:
        assert "130 s" in found[0].message and "mixed_precision to 'no'" in found[0].fix
    assert check_rl_config(RLConfig(mixed_precision="no"), device) == []


def test_meminfo_is_read_from_proc(tmp_path):
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       65536000 kB\nMemFree:  100 kB\nMemAvailable:    1024 kB\n")
    assert hardware.read_meminfo_available(str(fake)) == 1024 * 1024
    assert hardware.read_meminfo_available(str(tmp_path / "missing")) is None


def test_too_little_memory_is_warned_with_the_estimate_and_the_fix(monkeypatch, tiny_model_dir):
    cfg = RLConfig(model=str(tiny_model_dir), prompts_per_step=4, num_generations=4, max_new_tokens=16)
    est = estimate_memory(_tiny_shape(tiny_model_dir), cfg)

    monkeypatch.setattr(hardware, "read_meminfo_available", lambda path="/proc/meminfo": est.static // 2)
    found = check_rl_config(cfg, read_device_info("cpu"))
    assert [(w.field, w.severity) for w in found] == [("model", "error")]
    assert "use_lora" in found[0].fix and "MiB" in found[0].message

    free = int((est.static + est.batch * 4.5 / 16) / preflight.HEADROOM)  # weights fit, 4.5 of 16 completions do
    monkeypatch.setattr(hardware, "read_meminfo_available", lambda path="/proc/meminfo": free)
    found = check_rl_config(cfg, read_device_info("cpu"))
    assert [w.field for w in found] == ["grad_accum_steps"]
    assert "raise grad_accum_steps to 4" in found[0].fix  # 16 completions, 4 fit at a time
    assert check_rl_config(cfg.replace(grad_accum_steps=4), read_device_info("cpu")) == []


def test_no_warnings_for_the_presets_on_a_big_machine(bundled_dir):
    assert find_model_config("bundled") is not None  # the converted folder's config.json, no weights read
    for name in PRESETS:
        assert check_rl_config(make_preset_config(name), BIG_MACHINE) == [], name
    assert check_rl_config(RLConfig(), BIG_MACHINE) == []
    # the same machine with a gigabyte free does warn for the bundled model's full fine-tuning
    small = DeviceInfo("cpu", "small", GIB // 4, GIB, cpu_capability="AMX")
    assert [w.field for w in check_rl_config(RLConfig(beta=0.1), small)] == ["model"]


def test_this_machine_is_measured():
    import torch

    device = read_device_info("cpu")
    assert device.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert device.free_bytes is None or device.free_bytes > 0
    print(device.describe())


def test_checkpoints_the_disk_cannot_hold_are_warned_before_start(tiny_model_dir):
    from llmrl_core.lm_rl.memory import estimate_checkpoint_bytes

    shape = _tiny_shape(tiny_model_dir)
    cfg = RLConfig(model=str(tiny_model_dir), steps=10, save_every=2, save_total_limit=3)
    facts = shape.to_facts()
    # 3 periodic + the final, fp32 weights each, and one AdamW state (2 moments) in the newest
    assert estimate_checkpoint_bytes(cfg.to_dict(), facts) == 4 * shape.n_params * 4 + shape.n_params * 8
    lora = cfg.replace(use_lora=True, save_every=0)
    from llmrl_core.lm_rl.memory import count_lora_params

    adapters = count_lora_params(facts, lora.lora_r, lora.lora_target_modules)
    assert 0 < adapters < shape.n_params and estimate_checkpoint_bytes(lora.to_dict(), facts) == adapters * 12
    need = estimate_checkpoint_bytes(cfg.to_dict(), facts)
    found = preflight.check_checkpoint_disk(cfg, shape, disk_free_bytes=need // 2)
    assert [w.field for w in found] == ["save_total_limit"] and "on disk" in found[0].message
    assert "use_lora" in found[0].fix
    assert preflight.check_checkpoint_disk(cfg, shape, disk_free_bytes=need * 2) == []
    assert [w.field for w in check_rl_config(cfg, read_device_info("cpu"), shape, disk_free_bytes=1)] == ["save_total_limit"]
