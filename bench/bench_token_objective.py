"""What the step inspector's per-token push costs (issue 21): trainer time, store bytes, drawing time.

The bundled model on "Make it positive" (GRPO, 4 prompts x 4 samples = 16 completions) with --tokens new
tokens (128 by default: the issue's 16 x 128), beta 0.04 so the KL term's push is recorded too. Printed:
  * trainer: the milliseconds per step spent recording the push (the update's record_push calls and the
    samples' push fields), against the step's wall time (target: at most 5% more step time);
  * store: the JSON bytes of a step's samples with and without the push fields;
  * drawing: the push view of one sample (coloured clickable tokens, the formula panel, the side-by-side
    under every algorithm and loss type) for a step of 16 x --tokens, timed in an AppTest session (the
    server's whole script run, AppTest's own overhead included) and as the pure functions alone
    (target: at most 300 ms).

Run: python bench/bench_token_objective.py [--tokens 128] [--steps 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PUSH_KEYS = ("push_f16", "kl_push_f16", "kl_push_scale", "clipped", "token_weight")


def train_steps(tokens: int, steps: int):
    """Train `steps` steps; return the last step's samples, the step times and the push-recording seconds per step."""
    import llmrl_core.lm_rl.samples as samples_mod
    import llmrl_core.lm_rl.trainer as trainer_mod
    from llmrl_core.lm_rl.config import make_preset_config
    from llmrl_core.lm_rl.trainer import RLTrainer
    from llmrl_core.lm_rl.update import PolicyUpdater

    spent = {"record": 0.0, "samples": 0.0}
    record = PolicyUpdater.record_push

    def timed_record(self, *args, **kwargs):
        start = time.perf_counter()
        record(self, *args, **kwargs)
        spent["record"] += time.perf_counter() - start

    make_samples = samples_mod.make_samples

    def timed_samples(tokenizer, ro, per_reward, total, token, limit, num_generations, kl_scale=1.0):
        """The samples' push fields cost: make_samples with them minus make_samples without them."""
        start = time.perf_counter()
        out = make_samples(tokenizer, ro, per_reward, total, token, limit, num_generations, kl_scale)
        with_push = time.perf_counter() - start
        bare = samples_mod.TokenStats(logp=token.logp, ratio=token.ratio, advantages=token.advantages, kl=token.kl,
                                      values=token.values)
        start = time.perf_counter()
        make_samples(tokenizer, ro, per_reward, total, bare, limit, num_generations, kl_scale)
        spent["samples"] += max(0.0, with_push - (time.perf_counter() - start))
        return out

    PolicyUpdater.record_push = timed_record
    trainer_mod.make_samples = timed_samples
    cfg = make_preset_config("make-it-positive", device="cpu", steps=steps + 1, max_new_tokens=tokens, beta=0.04,
                             seed=0)
    trainer = RLTrainer(cfg)
    trainer.train_step()  # warm-up (first-call costs)
    step_times, costs, result = [], [], None
    for _ in range(steps):
        spent.update(record=0.0, samples=0.0)
        start = time.perf_counter()
        result = trainer.train_step()
        step_times.append(time.perf_counter() - start)
        costs.append(spent["record"] + spent["samples"])
    return cfg, result, step_times, costs


def time_drawing(run: dict, samples, repeats: int) -> tuple[float, float, float]:
    """Median seconds of the push view (AppTest whole script run, the pure functions alone) and of AppTest running
    a one-line script (its own overhead)."""
    from streamlit.testing.v1 import AppTest

    from llmrl_core.present.common import render_token_html
    from llmrl_core.present.lm_rl import make_token_tooltips
    from llmrl_core.present.token_objective import (compare_sequence_weights, compute_step_pushes, explain_token,
                                                    list_comparable, load_step_batch, push_values)

    def script(run, samples, sample_id):
        from ui.token_inspector import push_inspector_ui

        push_inspector_ui(run, samples, sample_id)

    def empty_script():
        import streamlit as st

        st.write("baseline")

    AppTest.from_function(empty_script, default_timeout=60).run()  # warm-up: Streamlit's first-run imports
    baseline = []
    for _ in range(repeats):  # what AppTest costs for a script that draws one line
        at = AppTest.from_function(empty_script, default_timeout=60)
        start = time.perf_counter()
        at.run()
        baseline.append(time.perf_counter() - start)

    app_times = []
    for _ in range(repeats):
        at = AppTest.from_function(script, kwargs={"run": run, "samples": samples, "sample_id": int(samples["id"].iloc[0])},
                                   default_timeout=120)
        start = time.perf_counter()
        at.run()
        app_times.append(time.perf_counter() - start)
        assert not at.exception, at.exception

    def pure() -> None:
        extras = samples["extras"].iloc[0]
        render_token_html(extras["tokens"], push_values(extras)[0], make_token_tooltips(extras), mode="diverging")
        explain_token(extras, 0, run["config"], samples["rewards"].iloc[0], samples)
        step = load_step_batch(samples, run["config"])
        for name, loss_type in list_comparable(run["config"], step):
            compute_step_pushes(step, run["config"], name, loss_type)
        compare_sequence_weights(step, run["config"])

    pure_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pure()
        pure_times.append(time.perf_counter() - start)
    return statistics.median(app_times), statistics.median(pure_times), statistics.median(baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import pandas as pd
    import torch

    from llmrl_core.core.hardware import read_device_info

    device = read_device_info("cpu")
    print(f"cpu: {device.name}; torch capability {device.cpu_capability}; bf16 "
          f"{'native' if device.bf16_native else 'emulated'}; {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}")
    cfg, result, step_times, costs = train_steps(args.tokens, args.steps)
    step, cost = statistics.median(step_times), statistics.median(costs)
    lengths = [len(s["extras"]["tokens"]) for s in result.samples]
    print(f"step: {len(result.samples)} completions, {min(lengths)}-{max(lengths)} tokens each")
    print(f"trainer: recording the push {cost * 1e3:.1f} ms per step of {step:.2f} s "
          f"({100 * cost / step:.2f}% of the step; target at most 5%)")
    full = sum(len(json.dumps(s["extras"])) for s in result.samples)
    bare = sum(len(json.dumps({k: v for k, v in s["extras"].items() if k not in PUSH_KEYS})) for s in result.samples)
    print(f"store: a step's samples' extras {bare / 1024:.1f} KiB without the push fields, {full / 1024:.1f} KiB "
          f"with them (+{full - bare} bytes, {100 * (full - bare) / bare:.0f}%)")
    samples = pd.DataFrame([{"id": i + 1, "step": result.step, **s} for i, s in enumerate(result.samples)])
    run = {"id": 1, "name": "bench", "config": cfg.to_dict()}
    app, pure, baseline = time_drawing(run, samples, args.repeats)
    print(f"drawing the push view of a {len(samples)} x {max(lengths)}-token step: {pure * 1e3:.0f} ms the pure "
          f"functions; {app * 1e3:.0f} ms the whole AppTest script run, of which {baseline * 1e3:.0f} ms is AppTest "
          f"running a one-line script: {(app - baseline) * 1e3:.0f} ms the view (target: at most 300 ms)")


if __name__ == "__main__":
    main()
