"""Rollout sampling speed: plain `model.generate` against llmrl_core/lm/fast_generate.py, same process.

The RL step's workload: the bundled SmolLM2-135M-Instruct, 4 prompts x 4 samples (batch 16, the
samples of a prompt share it, left-padded), 32 new tokens, greedy so that tokens can be compared,
on the CPU in the precision 'auto' picks. Variants run interleaved (one call of each per round),
so they see the same background load; each prints its median over the rounds.

  plain generate (<auto> autocast)   model.generate under torch.autocast: the baseline
  plain generate (<auto> weights)    model.generate with the weights cast once per call
  fast (<auto> autocast)             sample_completions_fast under torch.autocast
  fast (<auto> weights)              sample_completions_fast with the weights cast once per call
  fast (<auto> weights, shared prefill)  the same, one prefill per prompt (not greedy-exact in bf16: shown only)
  ... (1 thread)                     the same with torch.set_num_threads(1) (item 3: threads per phase)

Times include the weight cast where there is one (a trainer re-casts after every update).
torch.compile of a static-cache decode step is not a variant: measured at 1.11x over plain
generate, with a 74 s first call (issue 16), it loses to the loop below on a 2-core CPU.
The last line is `speedup vs plain generate: N.NNx (greedy tokens identical: yes|no)`: the best
fast variant against the autocast baseline, greedy tokens compared between fast and plain
generate in each precision.

Usage: LLMRL_HOME=/tmp/lh python bench/bench_generate.py [--rounds 3] [--new-tokens 32] [--no-threads] [--update] [--threads N]
(--update: time the update phase with 1 and 2 threads instead.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

PROMPTS, SAMPLES = 4, 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--no-threads", action="store_true", help="skip the 1-thread variants")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads for the whole bench (0: torch's default)")
    parser.add_argument("--update", action="store_true",
                        help="time the update phase (forward + backward + AdamW on the sampled batch) with 1 and 2 threads instead")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from llmrl_core.core.hardware import read_device_info
    from llmrl_core.lm.fast_generate import sample_completions_fast, use_weights_dtype
    from llmrl_core.lm.generation import get_eos_ids
    from llmrl_core.lm.models import load_causal_lm
    from llmrl_core.lm.precision import resolve_precision
    from llmrl_core.lm.threads import use_threads
    from llmrl_core.lm_rl.prompts import load_prompt_set

    device = torch.device("cpu")
    info = read_device_info("cpu")
    choice = resolve_precision("auto", device)
    print(f"cpu: {info.name}; torch capability {info.cpu_capability}; bf16 native: "
          f"{'yes' if info.bf16_native else 'no'}; threads {torch.get_num_threads()}; torch {torch.__version__}")
    print(f"precision: {choice.describe('auto')}")
    lm = load_causal_lm("bundled", device="cpu")
    tok, model = lm.tokenizer, lm.model
    texts = list(load_prompt_set("sentence-starters")["prompt"])[:PROMPTS]
    enc = tok(texts, return_tensors="pt", padding=True)
    ids = enc["input_ids"].repeat_interleave(SAMPLES, dim=0)  # (16, P) left-padded
    mask = enc["attention_mask"].repeat_interleave(SAMPLES, dim=0)  # (16, P)
    eos = sorted(get_eos_ids(lm))
    n_new, p = args.new_tokens, ids.shape[1]
    dtype = choice.dtype

    def precision_ctx(kind: str):
        if kind == "autocast" and choice.use_autocast:
            return torch.autocast("cpu", dtype=dtype)
        if kind == "weights" and dtype != torch.float32:
            return use_weights_dtype(model, dtype)
        return contextlib.nullcontext()

    def plain(kind: str):
        with torch.inference_mode(), precision_ctx(kind):
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=n_new,
                                 pad_token_id=tok.pad_token_id, eos_token_id=eos)
        return out[:, p:]  # (16, T)

    def fast(kind: str, share: bool = False):
        with precision_ctx(kind):
            return sample_completions_fast(model, ids, mask, max_new_tokens=n_new, temperature=1.0, top_p=1.0,
                                           top_k=0, eos_token_ids=eos, pad_token_id=tok.pad_token_id, do_sample=False,
                                           share_prefill=share)

    if args.update:
        time_update_threads(model, ids, mask, choice, args.rounds, args.new_tokens)
        return
    name = choice.name
    variants = {
        f"plain generate ({name} autocast)": (plain, "autocast", None),
        f"plain generate ({name} weights)": (plain, "weights", None),
        f"fast ({name} autocast)": (fast, "autocast", None),
        f"fast ({name} weights)": (fast, "weights", None),
        f"fast ({name} weights, shared prefill)": (lambda kind: fast(kind, share=True), "weights", None),
    }
    if not args.no_threads and torch.get_num_threads() > 1:
        variants[f"plain generate ({name} weights, 1 thread)"] = (plain, "weights", 1)
        variants[f"fast ({name} weights, 1 thread)"] = (fast, "weights", 1)
    times: dict[str, list[float]] = {k: [] for k in variants}
    tokens: dict[str, torch.Tensor] = {}
    fast(("weights"))  # warm-up: first-call allocations and oneDNN kernels
    plain("autocast")
    for r in range(args.rounds):
        for label, (fn, kind, n_threads) in variants.items():
            with use_threads(n_threads):
                start = time.perf_counter()
                out = fn(kind)
                times[label].append(time.perf_counter() - start)
            tokens.setdefault(label, out)
        print(f"round {r + 1}: " + ", ".join(f"{t[-1]:.2f}" for t in times.values())
              + f" s (load {os.getloadavg()[0]:.1f})", flush=True)

    base_label = f"plain generate ({name} autocast)"
    base = statistics.median(times[base_label])
    for label, t in times.items():
        med = statistics.median(t)
        n_tok = tokens[label].numel()
        print(f"{label:<44} {med:6.2f} s  {n_tok / med:7.1f} tok/s  {base / med:5.2f}x  (best {min(t):.2f} s)")
    same = all(torch.equal(tokens[f"fast ({name} {k})"], tokens[f"plain generate ({name} {k})"])
               for k in ("autocast", "weights"))
    fast_labels = [k for k in times if k.startswith("fast") and "shared prefill" not in k]  # greedy-exact ones
    best = min(fast_labels, key=lambda k: statistics.median(times[k]))
    weights_base = statistics.median(times[f"plain generate ({name} weights)"])
    print(f"best fast variant: {best}; against plain generate with the same weights cast: "
          f"{weights_base / statistics.median(times[best]):.2f}x; load average {os.getloadavg()}")
    print(f"speedup vs plain generate: {base / statistics.median(times[best]):.2f}x "
          f"(greedy tokens identical: {'yes' if same else 'no'})")


def time_update_threads(model, ids, mask, choice, rounds: int, n_new: int) -> None:  # noqa: ANN001
    """Item 3's other phase: one policy-gradient update on 16 sequences of P + n_new tokens, 1 vs 2 threads."""
    from llmrl_core.lm.threads import use_threads

    torch.manual_seed(0)
    completion = torch.randint(0, model.config.vocab_size, (ids.shape[0], n_new))  # (16, T)
    input_ids = torch.cat([ids, completion], dim=1)  # (16, P + T)
    attention = torch.cat([mask, torch.ones_like(completion)], dim=1)  # (16, P + T)
    advantages = torch.randn(ids.shape[0], 1)  # (16, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-12)  # tiny lr: the weights barely move between rounds
    model.train()

    def update() -> None:
        ctx = torch.autocast("cpu", dtype=choice.dtype) if choice.use_autocast else contextlib.nullcontext()
        with ctx:
            logits = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=n_new + 1).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)  # (16, T)
        loss = -(logp * advantages).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    update()  # warm-up
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for n in times:
            with use_threads(n):
                start = time.perf_counter()
                update()
                times[n].append(time.perf_counter() - start)
        print(f"round {r + 1}: 1 thread {times[1][-1]:.2f} s, 2 threads {times[2][-1]:.2f} s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"update ({choice.name}) 1 thread {one:.2f} s, 2 threads {two:.2f} s: 2 threads {one / two:.2f}x "
          f"as fast; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
