"""`python -m llmrl_core attention`: attention maps from the command line, as a summary or a .npz file.

    python -m llmrl_core attention --text "The cat sat on the mat. Then the cat"
    python -m llmrl_core attention --text "What is 2+2?" --chat --generate 16 --out maps.npz
    python -m llmrl_core attention --text "..." --json

The summary names the head the page opens first and the heads with the highest entropy contrast;
--out writes weights (L, H, T, T) float16, token ids, tokens and n_prompt to a NumPy .npz file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmrl_core.core.errors import InputError

if TYPE_CHECKING:
    from llmrl_core.attention import maps as att


MAX_GENERATE = 1024  # tokens a --generate completion may add
MAX_MAP_TOKENS = 4096  # --max-tokens cap: 4096^2 x layers x heads float16 is already gigabytes


def check_out_path(out: str) -> Path:
    """--out must name a new or existing .npz file in an existing folder (never a folder, never another kind of file)."""
    path = Path(out).expanduser()
    if not out.strip() or path.suffix.lower() != ".npz":
        raise InputError(f"--out must name a .npz file, e.g. --out maps.npz (got {out!r}).")
    if path.is_dir():
        raise InputError(f"--out {out!r} is a folder; give a file name inside it, e.g. {str(path / 'maps.npz')!r}.")
    if not path.parent.is_dir():
        raise InputError(f"--out: the folder {str(path.parent)!r} does not exist; create it first or pick another path.")
    return path


DEFAULT_MAX_TOKENS = 512  # attention.maps.MAX_TOKENS (a test checks): kept here so that building the parser for
# any command never imports torch (`python -m llmrl_core runs list` answers in about a second)


def _save_maps(out: str, maps: "att.AttentionMaps") -> None:
    """Write weights (L, H, T, T) float16, token ids, tokens and n_prompt to a .npz file."""
    np.savez_compressed(
        Path(out).expanduser(), weights=maps.weights, token_ids=np.array(maps.token_ids),
        tokens=np.array(maps.tokens, dtype=object), n_prompt=maps.n_prompt,
    )


def summarize_maps(maps: "att.AttentionMaps", top: int = 5) -> dict:
    """Plain facts about a set of maps: sizes, the default head, the highest-contrast heads."""
    from llmrl_core.attention import maps as att

    contrast = att.compute_entropy_contrast(maps.weights)  # (L, H)
    order = np.argsort(contrast.reshape(-1))[::-1][:top]
    layer, head = att.pick_default_head(maps)
    return {
        "model": maps.model_name,
        "tokens": maps.n_tokens,
        "original_tokens": maps.original_length,
        "n_prompt": maps.n_prompt,
        "layers": maps.n_layers,
        "query_heads": maps.n_heads,
        "kv_heads": maps.n_kv_heads,
        "seconds": round(maps.seconds, 3),
        "message": maps.message,
        "default_head": {"layer": layer, "head": head},
        "top_contrast_heads": [
            {"layer": int(i // maps.n_heads), "head": int(i % maps.n_heads), "contrast": round(float(contrast.reshape(-1)[i]), 4)}
            for i in order
        ],
        "completion": maps.extra.get("completion_text"),
    }


def _cmd_attention(args: argparse.Namespace) -> int:
    """Map one text (or a prompt plus a greedy completion) and print or save the result."""
    from llmrl_core.lm.generation import SamplingConfig

    text = args.text if args.text is not None else sys.stdin.read()
    from llmrl_core.attention import maps as att

    loaded = att.load_attention_model(args.model, device=args.device)
    if args.generate:
        maps = att.generate_and_extract(
            loaded, text, SamplingConfig(max_new_tokens=args.generate, greedy=True), chat=args.chat, max_tokens=args.max_tokens
        )
    else:
        maps = att.extract_attention(loaded, text, chat=args.chat, max_tokens=args.max_tokens)
    summary = summarize_maps(maps)
    if args.out:
        try:
            _save_maps(args.out, maps)
        except OSError as err:
            raise InputError(f"--out: cannot write {args.out!r}: {err.strerror or err}.") from None
        summary["saved"] = args.out
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if maps.message:
        print(maps.message, file=sys.stderr)
    print(f"{summary['model']}: {maps.n_tokens} tokens, {maps.n_layers} layers x {maps.n_heads} query heads "
          f"({maps.n_kv_heads} key/value heads), mapped in {maps.seconds:.2f} s")
    print(f"opened first on the page: layer {summary['default_head']['layer']}, head {summary['default_head']['head']}")
    print("highest entropy contrast: " + ", ".join(
        f"L{h['layer']}H{h['head']} ({h['contrast']:.3f})" for h in summary["top_contrast_heads"]))
    if summary["completion"] is not None:
        print(f"completion: {summary['completion']!r}")
    if args.out:
        print(f"saved {args.out}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register `attention`."""
    p = subparsers.add_parser("attention", help="attention maps of every layer and head for a text")
    p.add_argument("--model", default="bundled", help="model spec (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--text", help="the text or prompt (default: read stdin)")
    p.add_argument("--chat", action="store_true", help="wrap the text in the model's chat template")
    p.add_argument("--generate", type=int, default=0, metavar="N", help="append a greedy completion of N tokens")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="cap on mapped tokens (default 512)")
    p.add_argument("--out", help="write the maps to this .npz file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    def run(args: argparse.Namespace) -> int:
        if not 0 <= args.generate <= MAX_GENERATE:
            raise InputError(f"--generate takes a number of tokens from 0 to {MAX_GENERATE} (got {args.generate}).")
        if not 1 <= args.max_tokens <= MAX_MAP_TOKENS:
            raise InputError(f"--max-tokens must be from 1 to {MAX_MAP_TOKENS} (got {args.max_tokens}); "
                             f"maps grow with its square, {DEFAULT_MAX_TOKENS} is the default.")
        if args.out is not None:
            check_out_path(args.out)
        return _cmd_attention(args)

    p.set_defaults(func=run)
