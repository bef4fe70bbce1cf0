"""Shared fixtures: an isolated workbench home, a tiny random Llama, the bundled model, a store.

Each test process (one per pytest-xdist worker) has its own LLMRL_HOME, so runs and stores never mix
between workers. What is slow to build and never changed is built once for the whole test session and
shared by the workers under a file lock: the bundled GGUF converted to safetensors (about 15 s) and the
tiny random Llama. Every RunManager a test creates is closed when the test ends (its supervisor thread
stops), and the app's cached one is dropped, so no thread outlives its test.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llmrl_core.runs.kinds import register_kind  # noqa: E402  (after the path: the kinds below live in tests/)

register_kind("demo", "tests.support.demo_job:DEMO_KIND")  # a test kind: this session and the workers it launches


def get_shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every worker of this test session sees (the session's temporary root under xdist)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    shared.mkdir(exist_ok=True)
    return shared


def build_once(shared: Path, name: str, build) -> Path:
    """shared/name, built by `build(folder)` by the first worker to get here; the others wait for it."""
    from filelock import FileLock

    folder, done = shared / name, shared / f"{name}.complete"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.is_file():
            folder.mkdir(exist_ok=True)
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def workbench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh LLMRL_HOME for this test process (set before anything reads it); converted models are shared."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if os.environ.get("LLMRL_TEST_HOME"):
        home = Path(os.environ["LLMRL_TEST_HOME"]) / worker
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = tmp_path_factory.mktemp("llmrl_home")
    models = home / "cache" / "models"
    if not models.exists():
        models.parent.mkdir(parents=True, exist_ok=True)
        shared_models = get_shared_dir(tmp_path_factory) / "models"
        shared_models.mkdir(exist_ok=True)
        models.symlink_to(shared_models, target_is_directory=True)
    os.environ["LLMRL_HOME"] = str(home)
    # Tests that start several runs at once test other things than the queue, which would run them one by one
    # on a CPU-only machine: they get room for 8. The queue's own tests set the limit in their store.
    os.environ.setdefault("LLMRL_MAX_CONCURRENT", "8")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return home


@pytest.fixture(autouse=True)
def keep_main_module():
    """Put back sys.modules["__main__"] after each test. AppTest runs a page as __main__ and can leave its temporary
    script there; a later test in the same process that starts multiprocessing children (forkserver or spawn,
    e.g. SB3's SubprocVecEnv) would have them re-run that script, which fails, and its children die."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def close_run_managers(monkeypatch):
    """Close every RunManager the test (or its fixtures) created, and drop the app's cached one, at its end;
    fail when a supervisor thread is still running after that."""
    from llmrl_core.runs import manager as manager_module

    created: list = []
    real_init = manager_module.RunManager.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(manager_module.RunManager, "__init__", recording_init)
    yield
    monkeypatch.setattr(manager_module.RunManager, "__init__", real_init)
    if "ui.state" in sys.modules:
        sys.modules["ui.state"].get_run_manager.clear()  # its on_release closes the cached manager
    stuck = [manager for manager in created if not manager.close(timeout=10)]
    assert not stuck, f"{len(stuck)} run supervisor thread(s) did not end within 10 s of close()"
    left = [t for t in threading.enumerate() if t.name == "run-supervisor"]
    assert not left, f"{len(left)} run supervisor thread(s) outlived the test"


@pytest.fixture(scope="session")
def bundled_dir(workbench_home: Path) -> Path:
    """The bundled model converted to a safetensors folder (converted once per test session, by one worker)."""
    from filelock import FileLock

    from llmrl_core.lm.models import convert_gguf, locate_bundled_gguf

    with FileLock(str((workbench_home / "cache" / "models").resolve().parent / "models-convert.lock")):
        return convert_gguf(locate_bundled_gguf())


@pytest.fixture(scope="session")
def bundled_lm(bundled_dir: Path):
    """The bundled SmolLM2-135M-Instruct, loaded on the CPU."""
    from llmrl_core.lm.models import load_causal_lm

    return load_causal_lm("bundled", device="cpu")


def save_tiny_llama(bundled_dir: Path, folder: Path) -> None:
    """Save a tiny random Llama (2 layers, 4 query heads sharing 2 key/value heads) with the bundled tokenizer."""
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
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_model_dir(bundled_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama's folder, saved once per test session (tests load it, none writes into it)."""
    return build_once(get_shared_dir(tmp_path_factory), "tiny_llama", lambda folder: save_tiny_llama(bundled_dir, folder))


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
    state.get_run_manager.clear()  # a manager over this test's home, not one cached by an earlier test
    yield tiny_model_dir
    state.get_model_holder.clear()
    state.get_run_manager.clear()  # closes it: its supervisor thread ends
