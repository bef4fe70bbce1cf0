"""Precision 'auto': what it resolves to on each kind of hardware (probes faked), and explicit choices."""

from __future__ import annotations

import pytest
import torch

from llmrl_core.core.errors import InputError
from llmrl_core.core.hardware import read_device_info
from llmrl_core.lm.precision import HardwareProbes, resolve_precision
from llmrl_core.lm_rl.config import RLConfig


def fake_probes(cuda_bf16: bool = False, capability: str = "AVX2", flags: tuple[str, ...] = ()) -> HardwareProbes:
    return HardwareProbes(cuda_bf16_supported=lambda: cuda_bf16, cpu_capability=lambda: capability,
                          cpu_flags=lambda: frozenset(flags))


@pytest.mark.parametrize(("device", "probes", "name", "dtype", "autocast", "scaler", "says"), [
    pytest.param("cuda", fake_probes(cuda_bf16=True), "bf16", torch.bfloat16, True, False, "GPU runs bf16 natively",
                 id="cuda-bf16"),
    pytest.param("cuda", fake_probes(cuda_bf16=False), "fp16", torch.float16, True, True, "gradient scaler",
                 id="cuda-fp16-only"),
    pytest.param("cpu", fake_probes(capability="AVX512", flags=("avx512f", "avx512_bf16", "amx_bf16")), "bf16",
                 torch.bfloat16, True, False, "this CPU runs bf16 natively (AMX)", id="cpu-amx-flag"),
    pytest.param("cpu", fake_probes(capability="AVX512", flags=("avx512f", "avx512_bf16")), "bf16",
                 torch.bfloat16, True, False, "natively (avx512_bf16)", id="cpu-avx512_bf16-flag"),
    pytest.param("cpu", fake_probes(capability="AVX512_BF16"), "bf16", torch.bfloat16, True, False,
                 "natively (AVX512_BF16)", id="cpu-capability"),
    pytest.param("cpu", fake_probes(capability="AVX2", flags=("avx2",)), "fp32", torch.float32, False, False,
                 "would emulate bf16", id="cpu-without-bf16"),
    pytest.param("mps", fake_probes(), "fp32", torch.float32, False, False, "MPS", id="mps"),
])
def test_auto_resolves_per_hardware(device, probes, name, dtype, autocast, scaler, says):
    choice = resolve_precision("auto", torch.device(device), probes)
    assert (choice.name, choice.dtype, choice.use_autocast, choice.use_grad_scaler) == (name, dtype, autocast, scaler)
    assert says in choice.reason
    assert choice.describe("auto") == f"{name} (auto: {choice.reason})"


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_explicit_fp32_wins_everywhere(device):
    for requested in ("no", "fp32"):
        choice = resolve_precision(requested, device, fake_probes(cuda_bf16=True, capability="AMX"))
        assert (choice.name, choice.use_autocast) == ("fp32", False)


def test_explicit_bf16_on_a_cpu_without_it_is_kept_and_warned():
    choice = resolve_precision("bf16", "cpu", fake_probes(capability="AVX2", flags=("avx2",)))
    assert choice.name == "bf16" and "emulates it in software" in choice.reason


def test_explicit_fp16_needs_cuda_and_unknown_names_are_refused():
    assert resolve_precision("fp16", "cuda", fake_probes(cuda_bf16=True)).use_grad_scaler
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        resolve_precision("fp16", "cpu", fake_probes())
    with pytest.raises(InputError, match="mixed_precision must be one of"):
        resolve_precision("bf17", "cpu", fake_probes())


def test_auto_is_the_default_and_agrees_with_preflight_on_this_machine():
    assert RLConfig().mixed_precision == "auto"
    choice = resolve_precision("auto", "cpu")  # the real probes
    assert (choice.name == "bf16") is read_device_info("cpu").bf16_native


def test_cli_and_page_say_what_auto_chose(capsys, monkeypatch):
    from llmrl_core.lm.precision import describe_config_precision
    from llmrl_core.lm_rl import cli as train_cli
    from tests.support.apptest import open_page

    expected = describe_config_precision("auto", "cpu")
    assert expected == f"precision: {resolve_precision('auto', 'cpu').describe('auto')}"
    monkeypatch.setattr(train_cli, "_train_on_processes", lambda cfg, quiet=False: 0)  # stop before any training
    from llmrl_core.cli import main

    assert main(["train", "--preset", "make-it-positive", "--set", "device=cpu", "--set", "num_processes=2"]) == 0
    assert expected in capsys.readouterr().out.splitlines()

    at = open_page("language_models/lm_rl.py")
    at.session_state["rl_view"] = "New run"
    at.run()
    assert not at.exception, at.exception
    shown = [c.value.replace("\\", "") for c in at.caption]
    assert any(expected.replace("precision: ", "") in c for c in shown), shown
