"""Shared fixtures: an isolated workbench home, a tiny random Llama, the bundled model, a store.

The whole session uses one temporary LLMRL_HOME, so the bundled GGUF is converted once
(about 15 s) and every later load takes well under a second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llmrl_core.runs.kinds import register_kind  # noqa: E402  (after the path: the kinds below live in tests/)

register_kind("demo", "tests.support.demo_job:DEMO_KIND")  # a test kind: this session and the workers it launches


@pytest.fixture(scope="session", autouse=True)
def workbench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh LLMRL_HOME for the test session (set before anything reads it)."""
    home = Path(os.environ.get("LLMRL_TEST_HOME") or tmp_path_factory.mktemp("llmrl_home"))
    os.environ["LLMRL_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return home


@pytest.fixture(scope="session")
def bundled_dir(workbench_home: Path) -> Path:
    """The bundled model converted to a safetensors folder (converted once per session)."""
    from llmrl_core.lm.models import convert_gguf, locate_bundled_gguf

    return convert_gguf(locate_bundled_gguf())


@pytest.fixture(scope="session")
def bundled_lm(bundled_dir: Path):
    """The bundled SmolLM2-135M-Instruct, loaded on the CPU."""
    from llmrl_core.lm.models import load_causal_lm

    return load_causal_lm("bundled", device="cpu")


@pytest.fixture(scope="session")
def tiny_model_dir(bundled_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (2 layers, 4 query heads sharing 2 key/value heads) with the bundled tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(bundled_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_lm(tiny_model_dir: Path):
    """The tiny random Llama loaded fresh (tests may change its weights)."""
    from llmrl_core.lm.models import load_causal_lm

    return load_causal_lm(str(tiny_model_dir), device="cpu")


@pytest.fixture()
def store(tmp_path: Path):
    """An empty run store in its own file."""
    from llmrl_core.runs import RunStore

    return RunStore(tmp_path / "runs.sqlite")


@pytest.fixture()
def page_env(monkeypatch, tiny_model_dir):
    """Pages serve the tiny model by default, run from the repo root, and the shared model holder starts empty."""
    monkeypatch.setenv("LLMRL_MODEL", str(tiny_model_dir))
    monkeypatch.chdir(ROOT)
    from ui import state

    state.get_model_holder.clear()
    yield tiny_model_dir
    state.get_model_holder.clear()
