"""Model specs, device choice, GGUF conversion and the failure paths of loading."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from llmrl_core.core.errors import ModelLoadError, StoreError
from llmrl_core.lm.models import (
    ModelHolder,
    check_hub_reachable,
    load_causal_lm,
    locate_bundled_gguf,
    pick_device,
    pick_dtype,
    resolve_spec,
)


def test_resolve_spec_bundled_aliases():
    for alias in ["", "bundled", "default", "SmolLM2-135M-Instruct", None]:
        resolved = resolve_spec(alias)
        assert resolved.kind == "bundled"
        assert resolved.location.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
        assert Path(resolved.location).is_file()


def test_resolve_spec_kinds(tmp_path: Path, tiny_model_dir: Path):
    assert resolve_spec("gpt2").kind == "hub"
    assert resolve_spec("HuggingFaceTB/SmolLM2-360M-Instruct").kind == "hub"
    assert resolve_spec(str(tiny_model_dir)).kind == "folder"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 8)
    assert resolve_spec(str(gguf)).kind == "gguf"


def test_folder_without_config_is_refused(tmp_path: Path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_spec(str(tmp_path))


@pytest.mark.parametrize("spec, message", [
    ("/no/such/folder", "No file or folder"),
    ("missing.gguf", "No file or folder"),
    ("not a model!", "is not a model spec"),
    ("a/b/c", "is not a model spec"),
])
def test_unknown_specs_say_what_is_wrong(spec: str, message: str):
    with pytest.raises(ModelLoadError, match=message):
        resolve_spec(spec)


def test_non_gguf_file_is_refused(tmp_path: Path):
    path = tmp_path / "model.txt"
    path.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        resolve_spec(str(path))


def test_corrupt_gguf_fails_clearly(tmp_path: Path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"NOPE" + os.urandom(64))
    with pytest.raises(ModelLoadError, match="not a valid GGUF"):
        load_causal_lm(str(bad))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(locate_bundled_gguf().read_bytes()[:4096])
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_causal_lm(str(truncated))


def test_hub_id_offline_fails_fast_with_a_clear_message(monkeypatch):
    # Point the hub at a closed loopback port: the connection is refused, as with no network.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert check_hub_reachable(timeout=1.0) is False
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        load_causal_lm("some-org/some-model-that-is-not-cached")
    assert time.monotonic() - start < 30  # seconds, never a hang on retries
    message = str(info.value)
    assert "some-org/some-model-that-is-not-cached" in message and "unreachable" in message


def test_hub_offline_env_is_respected(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert check_hub_reachable() is False


def test_device_and_dtype_choice():
    device = pick_device("auto")
    assert device.type in {"cpu", "cuda", "mps"}
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        pick_dtype(torch.device("cpu"), "int3")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            pick_device("cuda")


def test_load_folder_describes_itself(tiny_model_dir: Path):
    loaded = load_causal_lm(str(tiny_model_dir), device="cpu")
    facts = loaded.describe()
    assert facts["source"] == "folder" and facts["device"] == "cpu" and facts["dtype"] == "float32"
    assert facts["parameters"] == sum(p.numel() for p in loaded.model.parameters()) > 0
    assert facts["memory_mb"] > 0
    assert loaded.context_length == 256
    assert loaded.tokenizer.padding_side == "left" and loaded.tokenizer.pad_token is not None


def test_eager_attention_on_request(tiny_model_dir: Path):
    loaded = load_causal_lm(str(tiny_model_dir), attn_implementation="eager")
    ids = loaded.tokenizer("hello there", return_tensors="pt")
    out = loaded.model(**ids, output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 2


def test_holder_keeps_previous_model_on_failure(tiny_model_dir: Path):
    holder = ModelHolder()
    first = holder.load(str(tiny_model_dir))
    with pytest.raises(ModelLoadError):
        holder.load("/no/such/model")
    assert holder.current is first


def test_bundled_model_converted_once(bundled_dir: Path, bundled_lm):
    assert (bundled_dir / "config.json").is_file() and list(bundled_dir.glob("*.safetensors"))
    facts = bundled_lm.describe()
    assert facts["source"] == "bundled" and 130e6 < facts["parameters"] < 140e6
    assert bundled_lm.model.config.num_hidden_layers == 30
    start = time.monotonic()
    again = load_causal_lm("bundled")
    assert again.load_seconds < 30 and time.monotonic() - start < 60  # cached: no second conversion
    assert bundled_lm.is_chat


def test_unwritable_home_gives_a_clear_message(tmp_path: Path):
    home = tmp_path / "readonly"
    home.mkdir()
    home.chmod(0o500)
    code = (
        "from llmrl_core.core.paths import get_home\n"
        "from llmrl_core.core.errors import StoreError\n"
        "try:\n    get_home()\nexcept StoreError as e:\n    print('ERR', e)\n"
    )
    env = {**os.environ, "LLMRL_HOME": str(home / "sub")}
    if os.geteuid() == 0:
        # root ignores permission bits: use a path under a regular file instead, which nobody can create.
        blocker = tmp_path / "file"
        blocker.write_text("x")
        env["LLMRL_HOME"] = str(blocker / "home")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "ERR The workbench home" in out.stdout and "not writable" in out.stdout
    assert StoreError.__mro__[1].__name__ == "WorkbenchError"


def test_lora_adapter_folder_loads_merged(tiny_model_dir: Path, tmp_path: Path):
    from peft import LoraConfig, get_peft_model

    base = load_causal_lm(str(tiny_model_dir))
    peft_model = get_peft_model(base.model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.5)  # a non-zero adapter, so merging changes the weights
    peft_model.save_pretrained(tmp_path / "adapter")
    assert resolve_spec(str(tmp_path / "adapter")).kind == "adapter"
    loaded = load_causal_lm(str(tmp_path / "adapter"))
    fresh = load_causal_lm(str(tiny_model_dir))
    ids = fresh.tokenizer("hello world", return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(loaded.model(**ids).logits, fresh.model(**ids).logits)
    assert loaded.describe()["source"] == "adapter"
