"""Bench: the bundled SmolLM2-135M-Instruct fine-tuned a few steps, exported to GGUF f16 and q8_0.

For each quantisation: the file's size and write time (the whole `export_run(..., "gguf")`: merge,
convert, quantise, write, Modelfile and card), then the file loaded back through transformers'
gguf_file loader and its greedy tokens compared with the run's final checkpoint on a few prompts
(the issue's "round-trips through GGUF f16 with identical greedy tokens"), with the largest logit
difference. When llama-cpp-python is importable, also llama.cpp's tokens/s and its greedy agreement
with transformers; otherwise it says that it is not installed (it compiles for minutes, so it is
not a dependency).

Usage: python bench/bench_export.py [--steps 2] [--new-tokens 16] [--run-id N]
(--run-id exports an existing finished run of $LLMRL_HOME instead of fine-tuning a new one.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LLMRL_HOME", tempfile.mkdtemp(prefix="bench_export_"))

import torch  # noqa: E402

from llmrl_core.runs import RunManager, RunStore  # noqa: E402
from llmrl_core.runs.export import export_run  # noqa: E402

PROMPTS = ["The best thing about the weekend is", "Write one sentence about the sea.", "Paris is the capital of"]


def fine_tune(store: RunStore, steps: int) -> tuple[int, float]:
    """A short GRPO run on the bundled model (full weights); returns (run id, seconds)."""
    from llmrl_core.lm_rl.config import RLConfig

    cfg = RLConfig(model="bundled", device="cpu", steps=steps, prompts_per_step=2, num_generations=2,
                   max_new_tokens=12, learning_rate=1e-5, seed=0, prompt_set="sentence-starters")
    start = time.perf_counter()
    run_id, status = RunManager(store).run_foreground("lm_rl", cfg.to_dict(), name="bench export", total_steps=steps)
    if status != "completed":
        raise SystemExit(f"the fine-tuning run ended {status}: {store.get_run(run_id)['error']}")
    return run_id, time.perf_counter() - start


def greedy(model, tokenizer, prompt: str, new_tokens: int) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def compare_transformers(reference, tokenizer, path: Path, new_tokens: int) -> tuple[int, float]:
    """(prompts with identical greedy tokens, max |logit diff|) of the GGUF loaded by transformers."""
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    same, worst = 0, 0.0
    for prompt in PROMPTS:
        same += greedy(reference, tokenizer, prompt, new_tokens) == greedy(loaded, tokenizer, prompt, new_tokens)
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            worst = max(worst, (reference(ids).logits - loaded(ids).logits).abs().max().item())
    return same, worst


def bench_llama_cpp(path: Path, reference, tokenizer, new_tokens: int) -> str:
    """llama.cpp's tokens/s and greedy agreement with transformers, or why it was not measured."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return "llama-cpp-python is not installed (it compiles for minutes; not a dependency): no llama.cpp figures"
    llm = Llama(model_path=str(path), n_ctx=256, verbose=False, seed=0)
    same, tokens, seconds = 0, 0, 0.0
    for prompt in PROMPTS:
        prompt_ids = tokenizer(prompt).input_ids
        start = time.perf_counter()
        got = []
        for token in llm.generate(prompt_ids, temp=0.0, top_k=1, reset=True):
            got.append(token)
            if len(got) == new_tokens:
                break
        seconds += time.perf_counter() - start
        tokens += len(got)
        same += got == greedy(reference, tokenizer, prompt, new_tokens)
    return f"llama.cpp: {tokens / seconds:.1f} tokens/s, greedy tokens identical to transformers on {same}/{len(PROMPTS)} prompts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--run-id", type=int, help="export this finished run of $LLMRL_HOME instead of training one")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    store = RunStore()
    if args.run_id is None:
        run_id, train_s = fine_tune(store, args.steps)
        print(f"fine-tuned the bundled model {args.steps} GRPO steps in {train_s:.1f} s (run {run_id})")
    else:
        run_id = args.run_id
        print(f"exporting run {run_id} ({store.get_run(run_id)['step']} steps)")
    checkpoint = Path(list(store.list_artifacts(run_id, kind="checkpoint")["path"])[-1])
    reference = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    out_dir = Path(tempfile.mkdtemp(prefix="gguf_"))
    for quant in ("f16", "q8_0"):
        start = time.perf_counter()
        path = export_run(store, run_id, "gguf", out_dir / f"tuned-{quant}.gguf", quant=quant)
        write_s = time.perf_counter() - start
        size = path.stat().st_size / 2**20
        same, worst = compare_transformers(reference, tokenizer, path, args.new_tokens)
        print(f"{quant}: {size:.1f} MiB written in {write_s:.1f} s; transformers reload: greedy tokens identical on "
              f"{same}/{len(PROMPTS)} prompts ({args.new_tokens} new tokens), max |logit diff| {worst:.3g}")
        print(f"{quant}: {bench_llama_cpp(path, reference, tokenizer, args.new_tokens)}")
    print(f"load average: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
