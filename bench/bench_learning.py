"""Does the engine learn? The two presets on the bundled model, on the CPU, with their curves printed.

1. "make-it-positive" (GRPO, VADER reward on sentence starters): target is a mean reward over
   the last 10 steps at least 0.3 above the first 10 steps' mean, within a 10-minute budget.
   (TRL on this machine, for reference: 0.30 -> 0.47 in 30 one-prompt steps.)
2. "learn-arithmetic" (GRPO, exact-answer reward): the training accuracy (rewards/exact_answer/mean)
   per step, and greedy accuracy on held-out problems before and after training.

Each part stops at its preset's steps or its time budget, whichever comes first.
Usage: LLMRL_HOME=/tmp/lh python bench/bench_learning.py [--budget 600] [--part positive|arithmetic|both]
       [--threads N] [--set key=value ...]
Timings and step counts depend on how busy the cores are; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from llmrl_core.lm_rl.config import make_preset_config  # noqa: E402
from llmrl_core.lm_rl.trainer import RLTrainer  # noqa: E402


def run_preset(name: str, budget: float, metric: str, overrides: dict) -> tuple[RLTrainer, list[float], list[float]]:
    """Train preset `name` until its steps or `budget` seconds; return the trainer, the metric and step times."""
    cfg = make_preset_config(name, device="cpu", samples_per_step=0, **overrides)
    print(f"\n== {name}: {cfg.algorithm} {cfg.prompts_per_step} prompts x {cfg.num_generations} samples, "
          f"{cfg.max_new_tokens} new tokens, lr {cfg.learning_rate:g}, up to {cfg.steps} steps or {budget:.0f} s", flush=True)
    trainer = RLTrainer(cfg)
    curve, times = [], []
    start = time.perf_counter()
    while trainer.step_count < cfg.steps and time.perf_counter() - start < budget:
        result = trainer.train_step()
        curve.append(result.metrics[metric])
        times.append(result.metrics["step_time"])
        print(f"  step {result.step:3d}  {metric} {curve[-1]:+.3f}  length {result.metrics['completions/mean_length']:5.1f}  gen {result.metrics['time/generation']:4.1f} s"
              f"  {times[-1]:5.1f} s  (elapsed {time.perf_counter() - start:5.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)
    return trainer, curve, times


def report_curve(metric: str, curve: list[float], times: list[float], target_gain: float | None) -> None:
    """Print first-10 and last-10 means, the gain, and whether it meets the target."""
    window = min(10, len(curve) // 2) or 1
    first, last = float(np.mean(curve[:window])), float(np.mean(curve[-window:]))
    print(f"curve ({metric}): " + " ".join(f"{v:.2f}" for v in curve))
    print(f"{metric}: first {window} steps {first:.3f} -> last {window} steps {last:.3f} (gain {last - first:+.3f}) "
          f"in {len(curve)} steps, {sum(times):.0f} s, median {np.median(times):.1f} s/step")
    if target_gain is not None:
        verdict = "PASS" if last - first >= target_gain and window == 10 else "FAIL"
        print(f"target gain >= {target_gain} over 10-step windows: {verdict}")


@torch.no_grad()
def greedy_accuracy(trainer: RLTrainer, n: int = 40) -> float:
    """Greedy exact-answer accuracy on the n arithmetic problems that training sees last (held out from early steps)."""
    from llmrl_core.lm.generation import SamplingConfig, generate
    from llmrl_core.lm_rl.prompts import make_arithmetic_problems
    from llmrl_core.lm_rl.rewards import build_reward_set

    problems = make_arithmetic_problems(n, seed=12345)  # a different seed: problems training did not draw
    trainer.policy.eval()
    result = generate(trainer.loaded, list(problems["prompt"]), SamplingConfig(max_new_tokens=trainer.cfg.max_new_tokens,
                      greedy=True), chat=True, top_alternatives=0)
    scores = build_reward_set([{"type": "exact_answer"}]).score(
        list(problems["prompt"]), [c.text for c in result.completions], answer=list(problems["answer"]))
    return float(np.nanmean(scores.total))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=600, help="seconds per part")
    parser.add_argument("--part", choices=["positive", "arithmetic", "both"], default="both")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset field")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import yaml

    overrides = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    if args.part in ("positive", "both"):
        _, curve, times = run_preset("make-it-positive", args.budget, "rewards/vader/mean", overrides)
        report_curve("rewards/vader/mean", curve, times, target_gain=0.3)
    if args.part in ("arithmetic", "both"):
        cfg = make_preset_config("learn-arithmetic", device="cpu", **overrides)
        trainer = RLTrainer(cfg)
        before = greedy_accuracy(trainer)
        del trainer
        trainer, curve, times = run_preset("learn-arithmetic", args.budget, "rewards/exact_answer/mean", overrides)
        after = greedy_accuracy(trainer)
        report_curve("rewards/exact_answer/mean", curve, times, target_gain=None)
        print(f"held-out greedy accuracy: before {before:.3f} -> after {after:.3f} ({after - before:+.3f})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
