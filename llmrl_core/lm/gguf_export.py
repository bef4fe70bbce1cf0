"""Write a Hugging Face LLaMA-family model folder as one GGUF file (llama.cpp, Ollama, LM Studio).

Everything format-specific comes from the `gguf` package (the one llama.cpp ships): its GGUFWriter,
its tensor-name map (`gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_layers)`), its quantisers
(`gguf.quants.quantize`) and its SpecialVocab (merges, special ids, chat template). What this module
adds is what llama.cpp's own converter (convert_hf_to_gguf.py, `LlamaModel`) does around them:

  * the query and key projections are permuted (`LlamaModel.permute`): llama.cpp's RoPE rotates
    adjacent pairs of a head's dimensions while HF's rotates its two halves; transformers' GGUF
    loader reverses exactly this permutation (LlamaTensorProcessor);
  * the vocabulary is written in full as a GPT-2 style byte-level BPE ("gpt2": tokens, merges,
    token types, with added special tokens marked CONTROL), as `get_vocab_base` does;
  * norms and other 1-D tensors stay float32; 2-D weights are f16, or Q8_0 (blocks of 32 with
    one f16 scale) where the row length allows it, else f16;
  * a tied output head is left out (llama.cpp ties it back, as transformers does).

Supported: LlamaForCausalLM with a byte-level BPE (GPT-2 style) tokenizer and no rope scaling other
than linear: SmolLM and SmolLM2 (the bundled model), whose llama.cpp pre-tokenizer ("smollm") is
named. Another byte-level vocabulary (Llama 3) is written with pre-tokenizer "default", which
llama.cpp splits by GPT-2's rule, not exactly Llama 3's. SentencePiece vocabularies (Llama 2,
TinyLlama) and other architectures are refused with an InputError: llama.cpp's own
convert_hf_to_gguf.py (not bundled) handles them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from llmrl_core.core.errors import InputError

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
GGUF_QUANTS = ("f16", "q8_0")  # what --quant accepts
SMOLLM_VOCAB_HEAD = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # the SmolLM/SmolLM2 tokenizer starts so


@dataclass(frozen=True)
class GGUFSummary:
    """What was written: the file, its quantisation, how many tensors and of which types."""

    path: Path
    quant: str
    n_tensors: int
    tensor_types: dict[str, int]  # GGML type name -> count


def read_model_config(folder: Path) -> dict[str, Any]:
    """The folder's config.json, refusing an architecture this writer does not support."""
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        raise InputError(f"{folder} has no config.json, so it is not a full model folder; GGUF export needs one "
                         "(a LoRA adapter is merged into its base model first).")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    architectures = config.get("architectures") or [config.get("model_type", "unknown")]
    if architectures[0] not in SUPPORTED_ARCHITECTURES:
        raise InputError(f"GGUF export supports {', '.join(SUPPORTED_ARCHITECTURES)} (LLaMA-family models such as "
                         f"the bundled SmolLM2); this model is {architectures[0]}. Export it as a Hugging Face "
                         "folder (--what model) and convert it with llama.cpp's convert_hf_to_gguf.py.")
    rope_type = read_rope(config)[1]
    if rope_type not in (None, "default", "linear"):
        raise InputError(f"GGUF export does not handle rope scaling {rope_type!r} yet (only none or linear); export "
                         "a Hugging Face folder and convert it with llama.cpp's convert_hf_to_gguf.py.")
    return config


def read_rope(config: dict[str, Any]) -> tuple[float, str | None, float | None]:
    """(rope theta, rope type, linear factor) from a config of either transformers generation: 4.x writes
    rope_theta and rope_scaling at the top level, 5.x writes them inside rope_parameters."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    rope_type = params.get("rope_type", params.get("type"))
    return float(theta), rope_type, params.get("factor")


def permute_for_llama_cpp(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute`: HF's half-split RoPE layout -> llama.cpp's interleaved pairs.

    weights: (n_head * head_dim, hidden) for Q, (n_head_kv * head_dim, hidden) for K.
    """
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    head_half = weights.shape[0] // n_head // 2
    return (weights.reshape(n_head, 2, head_half, *weights.shape[1:])  # (H, 2, hd/2, hidden)
            .swapaxes(1, 2)  # (H, hd/2, 2, hidden)
            .reshape(weights.shape))


def encode_tensor(name: str, data: np.ndarray, quant: str) -> tuple[np.ndarray, Any]:
    """(bytes-ready array, GGMLQuantizationType) for one tensor, as llama.cpp's converter picks them."""
    from gguf import GGMLQuantizationType
    from gguf.quants import QuantError, quantize

    data = data.astype(np.float32)
    if data.ndim <= 1 or name.endswith("_norm.weight"):
        return data, GGMLQuantizationType.F32  # norms and biases stay exact
    if quant == "q8_0":
        try:
            return quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
        except QuantError:  # a row length that is not a multiple of 32: f16, as llama.cpp falls back
            pass
    return quantize(data, GGMLQuantizationType.F16), GGMLQuantizationType.F16


def read_gpt2_vocab(folder: Path, vocab_size: int) -> tuple[list[str], list[int], str, bool]:
    """(tokens, token types, pre-tokenizer name, adds BOS) of a byte-level BPE tokenizer, as llama.cpp's
    get_vocab_base; 'adds BOS' is what the HF tokenizer does to plain text, so llama.cpp does the same."""
    from gguf import TokenType
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    vocab = tokenizer.get_vocab()
    backend = json.loads(tokenizer.backend_tokenizer.to_str()) if getattr(tokenizer, "backend_tokenizer", None) else {}
    if (backend.get("model") or {}).get("type") != "BPE" or "ByteLevel" not in json.dumps(backend.get("pre_tokenizer")):
        raise InputError(f"The tokenizer in {folder} is not a byte-level BPE (GPT-2 style) vocabulary; GGUF export "
                         "writes that kind only. Convert this model with llama.cpp's convert_hf_to_gguf.py.")
    reverse = {index: token for token, index in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for index in range(vocab_size):
        token = reverse.get(index)
        if token is None:  # the embedding has rows past the tokenizer's vocabulary
            tokens.append(f"[PAD{index}]")
            types.append(TokenType.UNUSED)
        elif token in added:
            special = index in decoder and decoder[index].special
            tokens.append(token)
            types.append(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(TokenType.NORMAL)
    pre = "smollm" if tuple(tokens[:3]) == SMOLLM_VOCAB_HEAD and vocab_size == 49152 else "default"
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("a").input_ids[:1] == [bos]
    return tokens, types, pre, adds_bos


def write_llama_gguf(folder: str | Path, out: str | Path, quant: str = "f16", *, name: str | None = None,
                     progress: Callable[[str], None] | None = None) -> GGUFSummary:
    """Write the HF LLaMA model in `folder` to the GGUF file `out` (f16 or q8_0 weights) and summarise it.

    `out` is written in place: callers that need atomicity (every export does) pass a temporary path
    and rename it when this returns.
    """
    import gguf
    import torch
    from safetensors.torch import load_file

    if quant not in GGUF_QUANTS:
        raise InputError(f"GGUF quantisation {quant!r} is not offered; pick one of: {', '.join(GGUF_QUANTS)}.")
    folder, out = Path(folder), Path(out)
    config = read_model_config(folder)
    say = progress or (lambda message: None)

    # ---- hyperparameters (LlamaModel.set_gguf_parameters)
    n_layers = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // n_head)
    vocab_size = int(config["vocab_size"])
    arch = gguf.MODEL_ARCH.LLAMA
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name or folder.name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    rope_theta, rope_type, rope_factor = read_rope(config)
    writer.add_rope_freq_base(rope_theta)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-5)))
    writer.add_vocab_size(vocab_size)
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope_factor))
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant]
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # ---- tokenizer (_set_vocab_gpt2): tokens, types, merges, special ids, add_bos, chat template
    say("Writing the tokenizer...")
    tokens, types, pre, adds_bos = read_gpt2_vocab(folder, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    special.add_special_token.setdefault("bos", adds_bos)  # explicit: llama.cpp's default differs by vocab type
    special.add_to_gguf(writer, quiet=True)

    # ---- tensors, renamed by gguf's own map and permuted where llama.cpp expects it
    say("Converting the weights...")
    names = gguf.get_tensor_name_map(arch, n_layers)
    state = _read_state_dict(folder, load_file)
    tied = bool(config.get("tie_word_embeddings", False)) or "lm_head.weight" not in state
    tensor_types: dict[str, int] = {}
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp uses token_embd for the output when output.weight is absent
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope.freq_base
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise InputError(f"GGUF export cannot place the tensor {hf_name!r} of this model (gguf's LLaMA tensor map "
                             "has no name for it); convert it with llama.cpp's convert_hf_to_gguf.py.")
        data = tensor.to(torch.float32).numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = permute_for_llama_cpp(data, n_head, n_head)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = permute_for_llama_cpp(data, n_head, n_head_kv)
        encoded, qtype = encode_tensor(gguf_name, data, quant)
        writer.add_tensor(gguf_name, encoded, raw_dtype=qtype)
        tensor_types[qtype.name] = tensor_types.get(qtype.name, 0) + 1

    say("Writing the file...")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return GGUFSummary(out, quant, sum(tensor_types.values()), tensor_types)


def _read_state_dict(folder: Path, load_file: Callable[[str], dict]) -> dict[str, Any]:
    """Every tensor of the folder's safetensors (one file or shards), else its pytorch_model.bin."""
    import torch

    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        state: dict[str, Any] = {}
        for shard in shards:
            state.update(load_file(str(shard)))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise InputError(f"{folder} holds no model weights (*.safetensors or pytorch_model.bin).")
    state = {}
    for path in bins:
        state.update(torch.load(path, map_location="cpu", weights_only=True))
    return state
