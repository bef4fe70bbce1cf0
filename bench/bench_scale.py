"""One GRPO step of the bundled model on 1 process and on 2 (gloo, CPU) on the same global batch.

Config: the bundled SmolLM2-135M-Instruct, 2 prompts x 4 samples, 16 new tokens, full fine-tuning,
AdamW lr 1e-5, loss_type dapo, the length reward, on the CPU. The 2-process run is this script
started by `accelerate launch` with the Accelerate config llmrl_core/runs/launch.py writes (DDP on
CPUs: MULTI_GPU + use_cpu, gloo); each process takes 4 of the 8 samples.

Same global batch on both: every sample is generated alone by the model with a generator seeded
by its global index in the batch (RLTrainer.sample_completions is overridden), so the tokens do
not depend on how the batch is split. Generating one sample at a time is slower than the
trainer's batched sampling; both set-ups pay it alike.

Prints the CPU (torch.backends.cpu.get_cpu_capability()), each set-up's step time (the
faster of STEPS steps, each timed on rank 0 from a barrier), its policy loss and the L2 norm of its
parameter update (after STEPS steps), and whether the two agree: loss within LOSS_ATOL and every parameter
within PARAM_ATOL (the gradients differ only in the order of float32 sums).

Usage: LLMRL_HOME=/tmp/lh python bench/bench_scale.py [--threads N]
On a machine with 2 cores, 2 processes cannot be faster than 1 (each gets one core, and one process
already uses both); the script says so. With more cores (or GPUs) the update splits N ways.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

PROMPTS = ["The movie was", "Today I feel"]
STEPS = 2  # the faster of 2 steps is reported: the cores are shared, and one slow step is often someone else's load
CONFIG = dict(model="bundled", device="cpu", steps=STEPS, prompts_per_step=2, num_generations=4, max_new_tokens=16,
              chat="raw", learning_rate=1e-5, seed=0, loss_type="dapo", algorithm="grpo", samples_per_step=0,
              rewards=[{"type": "length", "target": 40, "unit": "chars", "falloff": 60}])
PARAM_ATOL = 1e-6  # a tenth of the learning rate: Adam moves each weight by about lr on its first step
LOSS_ATOL = 1e-6  # GRPO's single-epoch loss is near 0 (advantages are centred per group), so absolute


def run_worker(out: Path) -> None:
    """One GRPO step in this process (one of the launch's processes, or the only one); rank 0 saves results."""
    import pandas as pd

    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.lm_rl.trainer import RLTrainer

    class SeededTrainer(RLTrainer):
        def sample_completions(self, prompt_ids, prompt_mask, first_index):
            rows = []
            for i in range(prompt_ids.shape[0]):  # one sample at a time, seeded by its global index
                torch.manual_seed(10_000 * self.step_count + first_index + i)
                keep = prompt_mask[i].bool()
                out = self.policy.generate(
                    input_ids=prompt_ids[i:i + 1, keep], attention_mask=prompt_mask[i:i + 1, keep], do_sample=True,
                    max_new_tokens=self.cfg.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.eos_ids)
                rows.append(out[0, int(keep.sum()):].tolist())
            width = max(len(r) for r in rows)
            pad = self.tokenizer.pad_token_id
            return torch.tensor([r + [pad] * (width - len(r)) for r in rows])  # (b, T)

    cfg = RLConfig.from_dict({**CONFIG, "num_processes": int(os.environ.get("WORLD_SIZE", "1"))})
    trainer = SeededTrainer(cfg, prompts=pd.DataFrame({"prompt": PROMPTS}))
    before = {k: v.detach().clone() for k, v in trainer.policy.named_parameters()}
    times = []
    for _ in range(STEPS):
        trainer.comm.wait_for_everyone()
        start = time.perf_counter()
        result = trainer.train_step()
        times.append(time.perf_counter() - start)
    seconds = min(times)
    if trainer.is_main_process:
        after = {k: v.detach() for k, v in trainer.policy.named_parameters()}
        update_norm = float(torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in after)))
        torch.save(after, out.with_suffix(".pt"))
        out.write_text(json.dumps({"seconds": seconds, "loss": result.metrics["loss/policy"],
                                   "reward": result.metrics["reward"], "update_norm": update_norm, "times": times,
                                   "tokens": result.metrics["num_tokens"]}))
    trainer.comm.wait_for_everyone()
    trainer.comm.end_training()


def launch(num_processes: int, folder: Path, threads: int) -> dict:
    """Run this script's worker on `num_processes` CPU processes and return rank 0's results."""
    from llmrl_core.runs.launch import build_launch_command, get_launch_env, write_accelerate_config
    from llmrl_core.runs.manager import _find_free_port

    out = folder / f"scale-{num_processes}.json"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    worker = [str(Path(__file__).resolve()), "--worker", "--out", str(out)]
    if num_processes == 1:
        command = [sys.executable] + worker
    else:
        port = _find_free_port()
        config = write_accelerate_config(folder / "accelerate.yaml", strategy="ddp", num_processes=num_processes,
                                         main_process_port=port, use_cpu=True)
        command = build_launch_command(0, config_path=config, num_processes=num_processes, main_process_port=port)
        command = command[:len(command) - 4] + worker  # the same flags; this script instead of -m llmrl_core worker 0
        env.update(get_launch_env(use_cpu=True))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"{num_processes}-process run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return {**json.loads(out.read_text()), "params": torch.load(out.with_suffix(".pt"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help="threads per process (default: cores / processes)")
    args = parser.parse_args()
    if args.worker:
        run_worker(Path(args.out))
        return
    cores = os.cpu_count() or 1
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, {cores} cores; torch {torch.__version__}")
    print(f"One GRPO step, bundled model, {CONFIG['prompts_per_step']} prompts x {CONFIG['num_generations']} samples, "
          f"{CONFIG['max_new_tokens']} new tokens, full fine-tuning, lr {CONFIG['learning_rate']:g}")
    with tempfile.TemporaryDirectory() as tmp:
        results, threads_of = {}, {}
        for n in (1, 2):
            threads = threads_of[n] = args.threads or max(1, cores // n)
            results[n] = launch(n, Path(tmp), threads)
            r = results[n]
            print(f"  {n} process{'es' if n > 1 else '  '} ({threads} thread{'s' if threads > 1 else ''} each): "
                  f"step {r['seconds']:.2f} s (steps {', '.join(f'{t:.1f}' for t in r['times'])} s), loss/policy {r['loss']:+.4e}, update L2 norm {r['update_norm']:.6e}, "
                  f"reward {r['reward']:.4f}, {r['tokens']:.0f} tokens")
        one, two = results[1], results[2]
        worst = max(float((two["params"][k] - one["params"][k]).abs().max()) for k in one["params"])
        loss_ok = abs(two["loss"] - one["loss"]) <= LOSS_ATOL
        print(f"Agreement: loss differs by {abs(two['loss'] - one['loss']):.2e} (tolerance {LOSS_ATOL:g}), "
              f"largest parameter difference {worst:.2e} (tolerance {PARAM_ATOL:g}), update norms "
              f"{one['update_norm']:.6e} vs {two['update_norm']:.6e}: "
              + ("AGREE" if loss_ok and worst <= PARAM_ATOL else "DISAGREE"))
        speedup = one["seconds"] / two["seconds"]
        print(f"Speed-up with 2 processes: {speedup:.2f}x"
              + (f" (this machine has {cores} cores: 2 processes split the same cores one each and pay for the "
                 "gradient all-reduce and gathers, so no real speed-up is expected here; a difference either way is "
                 "other jobs' load on the shared cores)" if cores <= 2 and threads_of[1] >= cores else "")
              + (f" (1 process used {threads_of[1]} of the {cores} cores, 2 processes {2 * threads_of[2]})"
                 if threads_of[1] < cores else ""))
        print("GPU figures: none (this bench runs on CPUs; no GPU was used).")


if __name__ == "__main__":
    main()
