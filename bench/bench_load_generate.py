"""Benchmark: loading the bundled model, and generation speed through the engine vs plain `generate`.

Figures (each printed, with ratios against the baseline measured in the same run):
  * load: transformers reading the GGUF directly (baseline) vs the workbench's first load
    (convert once to safetensors) vs its cached load;
  * generation tokens/s at batch 1 and 8 (48 new tokens, sampling) through
    llmrl_core.lm.generation.generate (which also computes per-token log-probs and top-5
    alternatives) vs a plain `model.generate` call on the same model, prompt and seed.

Run: python bench/bench_load_generate.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

NEW_TOKENS = 48
PROMPT = "Write a short story about a robot who learns to paint."


def time_call(fn, repeats: int) -> tuple[float, object]:
    """Median wall seconds over `repeats` calls (after one warm-up), and the last result."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_load() -> None:
    from transformers import AutoModelForCausalLM

    from llmrl_core.lm.models import load_causal_lm, locate_bundled_gguf

    gguf = locate_bundled_gguf()
    start = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    plain_gguf = time.perf_counter() - start
    saved_home = os.environ.get("LLMRL_HOME")
    with tempfile.TemporaryDirectory() as home:
        os.environ["LLMRL_HOME"] = home  # an empty home: the first load really converts
        start = time.perf_counter()
        load_causal_lm("bundled", device="cpu")
        first = time.perf_counter() - start
        cached_times = []
        for _ in range(3):
            start = time.perf_counter()
            load_causal_lm("bundled", device="cpu")
            cached_times.append(time.perf_counter() - start)
        cached = statistics.median(cached_times)
    if saved_home is None:
        os.environ.pop("LLMRL_HOME", None)
    else:
        os.environ["LLMRL_HOME"] = saved_home
    print(f"load  plain transformers GGUF load (baseline)   {plain_gguf:7.2f} s")
    print(f"load  workbench first load (convert + cache)    {first:7.2f} s   ratio {first / plain_gguf:5.2f}x baseline")
    print(f"load  workbench cached load (safetensors)       {cached:7.2f} s   ratio {cached / plain_gguf:5.3f}x baseline "
          f"({plain_gguf / cached:.0f}x faster)")


def bench_generate(repeats: int) -> None:
    from llmrl_core.lm.generation import SamplingConfig, generate
    from llmrl_core.lm.models import load_causal_lm

    loaded = load_causal_lm("bundled")
    tok, model = loaded.tokenizer, loaded.model
    text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True)
    enc = tok([text], return_tensors="pt", add_special_tokens=False).to(loaded.device)
    print(f"device {loaded.device}, dtype {str(loaded.dtype).replace('torch.', '')}, {NEW_TOKENS} new tokens, "
          f"sampling T=0.7 top-p 0.95 top-k 50, median of {repeats}")
    for batch in (1, 8):
        cfg = SamplingConfig(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, n=batch, seed=0)

        def engine():
            return generate(loaded, [PROMPT], cfg)

        def plain():
            torch.manual_seed(0)
            with torch.no_grad():
                return model.generate(**enc, do_sample=True, temperature=0.7, top_p=0.95, top_k=50,
                                      max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                      num_return_sequences=batch, pad_token_id=tok.pad_token_id)

        plain_s, _ = time_call(plain, repeats)
        engine_s, result = time_call(engine, repeats)
        tokens = batch * NEW_TOKENS
        assert result.new_tokens == tokens, (result.new_tokens, tokens)
        plain_tps, engine_tps = tokens / plain_s, tokens / engine_s
        print(f"gen   batch {batch}: plain model.generate (baseline) {plain_tps:7.1f} tok/s | "
              f"engine (+log-probs, top-5) {engine_tps:7.1f} tok/s | ratio {engine_tps / plain_tps:5.2f}x baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    if not args.skip_load:
        bench_load()
    bench_generate(args.repeats)


if __name__ == "__main__":
    main()
