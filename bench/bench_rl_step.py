"""Seconds per GRPO step: this engine against TRL's GRPOTrainer, same config, same process.

Config (the issue's): the bundled SmolLM2-135M-Instruct, 4 prompts x 4 samples, 32 new tokens,
full fine-tuning, beta 0, VADER reward, one update epoch, on the CPU. Each trainer runs
`--warmup` steps that are not timed, then `--steps` timed steps; the median step time is
printed for each, with the ratios engine / TRL's defaults (target: at most 0.6) and engine / TRL's
fastest setting (target: at most 0.7; issue 16). "engine (default ...)" is RLConfig's defaults as a
user gets them (precision 'auto', the fast sampling loop); "engine (fp32)" pins float32.

TRL runs with its own defaults for everything the issue does not fix (bf16 autocast and
gradient checkpointing on); `--trl-plain` adds a second TRL run with both off, so the
comparison does not hinge on those defaults. With `--engine-bf16` the engine also runs with
mixed_precision='bf16' forced. Steps are interleaved (one TRL step, then
one step of each engine variant, ...) so that every trainer sees the same background load.

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


def make_engine(steps: int, mixed_precision: str):
    """This engine's GRPO trainer on the issue's config."""
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.lm_rl.trainer import RLTrainer

    cfg = RLConfig(
        model="bundled", device="cpu", algorithm="grpo", steps=steps, prompts_per_step=PROMPTS_PER_STEP,
        num_generations=SAMPLES, max_new_tokens=NEW_TOKENS, beta=0.0, learning_rate=LR, chat="raw",
        prompt_set="sentence-starters", rewards=[{"type": "vader"}], mixed_precision=mixed_precision,
        samples_per_step=PROMPTS_PER_STEP * SAMPLES,
    )
    return RLTrainer(cfg)


# The phases the trainer times (its metrics), in step order: step breakdown lines print their medians.
PHASES = {"generation": "time/generation", "scoring": "time/scoring", "old/ref log-probs": "time/old_logprobs",
          "update": "time/update"}
BREAKDOWN: dict[str, dict[str, list[float]]] = {}  # engine name -> phase -> seconds per step (warm-up included)


def time_engine_step(name: str, trainer) -> float:  # noqa: ANN001
    """Run one engine step, record its phase times, and return its wall time (s)."""
    start = time.perf_counter()
    m = trainer.train_step().metrics
    elapsed = time.perf_counter() - start
    phases = BREAKDOWN.setdefault(name, {phase: [] for phase in [*PHASES, "other"]})
    for phase, key in PHASES.items():
        phases[phase].append(m[key])
    phases["other"].append(elapsed - sum(m[key] for key in PHASES.values()))  # metrics, samples, gathering
    print(f"  {name} step {trainer.step_count}: {elapsed:.2f} s ("
          + ", ".join(f"{phase} {m[key]:.2f}" for phase, key in PHASES.items())
          + f", mean length {m['completions/mean_length']:.1f}, load {os.getloadavg()[0]:.1f})", flush=True)
    return elapsed


def print_breakdown(warmup: int, total: int) -> None:
    """Each engine's median seconds per phase over the timed steps, and its share of the step."""
    for name, phases in BREAKDOWN.items():
        timed = {phase: [v for i, v in enumerate(values) if i % total >= warmup] for phase, values in phases.items()}
        medians = {phase: statistics.median(values) for phase, values in timed.items() if values}
        step = sum(medians.values())
        print(f"step breakdown {name}: " + ", ".join(
            f"{phase} {seconds:.2f} s ({100 * seconds / step:.0f}%)" for phase, seconds in medians.items()))


def run_trl_interleaved(total_steps: int, plain: bool, engines: dict, times: dict) -> None:
    """Run TRL's GRPOTrainer; after each TRL step, one step of every engine variant, so all see the same load."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from llmrl_core.lm.models import convert_gguf, locate_bundled_gguf, prepare_tokenizer
    from llmrl_core.lm_rl.prompts import load_prompt_set
    from llmrl_core.lm_rl.rewards import build_reward_set

    folder = convert_gguf(locate_bundled_gguf())
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    vader = build_reward_set([{"type": "vader"}]).fns[0]
    prompts = list(load_prompt_set("sentence-starters")["prompt"])
    dataset = Dataset.from_dict({"prompt": prompts * 4})
    trl_name = "TRL GRPOTrainer (fp32, no grad ckpt)" if plain else "TRL GRPOTrainer (defaults)"
    times.setdefault(trl_name, [])

    class Interleave(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            times[trl_name].append(time.perf_counter() - self._start)
            print(f"  {trl_name} step {len(times[trl_name])}: {times[trl_name][-1]:.2f} s", flush=True)
            for name, trainer in engines.items():
                times[name].append(time_engine_step(name, trainer))

    extra = dict(bf16=False, gradient_checkpointing=False) if plain else {}
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, use_cpu=True, per_device_train_batch_size=PROMPTS_PER_STEP * SAMPLES,
            num_generations=SAMPLES, max_completion_length=NEW_TOKENS, beta=0.0, learning_rate=LR,
            max_steps=total_steps, logging_steps=1, report_to="none", save_strategy="no", temperature=1.0,
            top_p=1.0, num_iterations=1, seed=0, dataloader_num_workers=0, disable_tqdm=True, **extra,
        )
        trainer = GRPOTrainer(model=model, reward_funcs=[vader], args=args, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[Interleave()])
        trainer.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--trl-plain", action="store_true", help="also time TRL with bf16 and gradient checkpointing off")
    parser.add_argument("--engine-bf16", action="store_true", help="also time the engine with bf16 (mixed_precision='bf16')")
    parser.add_argument("--threads", type=int, help="torch threads for both (default: torch's choice; 1 is faster "
                        "when other jobs oversubscribe the cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    from llmrl_core.core.hardware import read_device_info

    device = read_device_info("cpu")
    print(f"cpu: {device.name}; torch capability {device.cpu_capability}; "
          f"bf16 {'native' if device.bf16_native else 'emulated (no AVX512_BF16/AMX)'}")
    total = args.steps + args.warmup
    runs = [False, True] if args.trl_plain else [False]
    default = make_engine(total * len(runs), "auto")  # the engine as a user gets it: RLConfig's defaults
    default_name = f"engine (default: {default.precision.name}, {default.cfg.generation_backend} sampling)"
    print(f"engine default precision: {default.precision.describe('auto')}")
    engines = {default_name: default, "engine (fp32)": make_engine(total * len(runs), "no")}
    if args.engine_bf16:
        engines["engine (bf16)"] = make_engine(total * len(runs), "bf16")
    times: dict[str, list[float]] = {name: [] for name in engines}
    for plain in runs:
        run_trl_interleaved(total, plain, engines, times)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (other jobs on the cores make timings noisy; steps are "
          "interleaved TRL, engine, TRL, engine... so every trainer sees the same load)")
    medians = {}
    for name, values in times.items():
        per_run = [values[i * total + args.warmup:(i + 1) * total] for i in range(len(values) // total)]
        medians[name] = statistics.median([v for chunk in per_run for v in chunk])
    trl = medians["TRL GRPOTrainer (defaults)"]
    fastest = min(v for k, v in medians.items() if k.startswith("TRL"))
    for name, seconds in medians.items():
        print(f"{name:<52} {seconds:6.2f} s/step   ratio vs TRL defaults {seconds / trl:.2f}x   "
              f"vs TRL's fastest {seconds / fastest:.2f}x")
    print_breakdown(args.warmup, total)
    ratio, ratio_fast = medians[default_name] / trl, medians[default_name] / fastest
    print(f"target: engine default <= 0.60x TRL defaults ({ratio:.2f}x: {'PASS' if ratio <= 0.6 else 'MISS'}) and "
          f"<= 0.70x TRL's fastest ({ratio_fast:.2f}x: {'PASS' if ratio_fast <= 0.7 else 'MISS'})")


if __name__ == "__main__":
    main()
