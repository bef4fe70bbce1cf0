"""Seconds per GRPO step: this engine against TRL's GRPOTrainer, same config, same process.

Config (the issue's): the bundled SmolLM2-135M-Instruct, 4 prompts x 4 samples, 32 new tokens,
full fine-tuning, beta 0, VADER reward, one update epoch, on the CPU. Each trainer runs
`--warmup` steps that are not timed, then `--steps` timed steps; the median step time is
printed for each, with the ratio engine / TRL (target: at most 0.5).

TRL runs with its own defaults for everything the issue does not fix (bf16 autocast and
gradient checkpointing on); `--trl-plain` adds a second TRL run with both off, so the
comparison does not hinge on those defaults. The engine runs in float32 and, with
`--engine-bf16`, also with bf16 autocast (mixed_precision='bf16').

Usage: LLMRL_HOME=/tmp/lh python bench/bench_rl_step.py [--steps 4] [--warmup 1] [--trl-plain] [--engine-bf16] [--threads N]
Needs: pip install -r bench/requirements.txt (trl). Timings are noisy when other jobs share the cores.
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

PROMPTS_PER_STEP, SAMPLES, NEW_TOKENS, LR = 4, 4, 32, 1e-6


def time_engine(steps: int, warmup: int, mixed_precision: str) -> list[float]:
    """Step times (s) of this engine's GRPO trainer."""
    from llmrl_core.config import RLConfig
    from llmrl_core.trainer import RLTrainer

    cfg = RLConfig(
        model="bundled", device="cpu", algorithm="grpo", steps=steps + warmup, prompts_per_step=PROMPTS_PER_STEP,
        num_generations=SAMPLES, max_new_tokens=NEW_TOKENS, beta=0.0, learning_rate=LR, chat="raw",
        prompt_set="sentence-starters", rewards=[{"type": "vader"}], mixed_precision=mixed_precision,
        samples_per_step=PROMPTS_PER_STEP * SAMPLES,
    )
    trainer = RLTrainer(cfg)
    times = []
    for i in range(steps + warmup):
        start = time.perf_counter()
        result = trainer.train_step()
        elapsed = time.perf_counter() - start
        m = result.metrics
        print(f"  engine[{mixed_precision}] step {i + 1}: {elapsed:.2f} s (generation {m['time/generation']:.2f}, "
              f"update {m['time/update']:.2f}, mean length {m['completions/mean_length']:.1f})", flush=True)
        if i >= warmup:
            times.append(elapsed)
    return times


def time_trl(steps: int, warmup: int, plain: bool) -> list[float]:
    """Step times (s) of TRL's GRPOTrainer on the same model, prompts and reward."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from llmrl_core.models import convert_gguf, locate_bundled_gguf, prepare_tokenizer
    from llmrl_core.prompts import load_prompt_set
    from llmrl_core.rewards import build_reward_set

    folder = convert_gguf(locate_bundled_gguf())
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    vader = build_reward_set([{"type": "vader"}]).fns[0]
    prompts = list(load_prompt_set("sentence-starters")["prompt"])
    dataset = Dataset.from_dict({"prompt": prompts * 4})

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.times.append(time.perf_counter() - self._start)
            print(f"  trl[{'plain' if plain else 'defaults'}] step {len(self.times)}: {self.times[-1]:.2f} s", flush=True)

    extra = dict(bf16=False, gradient_checkpointing=False) if plain else {}
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, use_cpu=True, per_device_train_batch_size=PROMPTS_PER_STEP * SAMPLES,
            num_generations=SAMPLES, max_completion_length=NEW_TOKENS, beta=0.0, learning_rate=LR,
            max_steps=steps + warmup, logging_steps=1, report_to="none", save_strategy="no", temperature=1.0,
            top_p=1.0, num_iterations=1, seed=0, dataloader_num_workers=0, **extra,
        )
        timer = StepTimer()
        trainer = GRPOTrainer(model=model, reward_funcs=[vader], args=args, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[timer])
        trainer.train()
    return timer.times[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--trl-plain", action="store_true", help="also time TRL with bf16 and gradient checkpointing off")
    parser.add_argument("--engine-bf16", action="store_true", help="also time the engine with bf16 autocast")
    parser.add_argument("--threads", type=int, help="torch threads for both (default: torch's choice; 1 is faster "
                        "when other jobs oversubscribe the cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    results: dict[str, float] = {}
    results["engine (fp32)"] = statistics.median(time_engine(args.steps, args.warmup, "no"))
    if args.engine_bf16:
        results["engine (bf16 autocast)"] = statistics.median(time_engine(args.steps, args.warmup, "bf16"))
    results["TRL GRPOTrainer (defaults)"] = statistics.median(time_trl(args.steps, args.warmup, plain=False))
    if args.trl_plain:
        results["TRL GRPOTrainer (fp32, no grad ckpt)"] = statistics.median(time_trl(args.steps, args.warmup, plain=True))
    trl = results["TRL GRPOTrainer (defaults)"]
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (other jobs on the cores make timings noisy)")
    for name, seconds in results.items():
        print(f"{name:<40} {seconds:6.2f} s/step   ratio vs TRL defaults {seconds / trl:.2f}x")


if __name__ == "__main__":
    main()
