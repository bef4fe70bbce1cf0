"""The language model as a CartPole agent (issue 11): how fast it plays, and how far training gets.

Printed, on the bundled model (SmolLM2-135M-Instruct) and this machine:
  1. the CPU (torch.backends.cpu.get_cpu_capability()) and torch's threads;
  2. environment steps per second of the language-model policy batched over --n-envs (8)
     environments (one forward per step, sampling, stepping), with and without the cached
     instruction prefix (interleaved rounds of 2 steps, medians), and the ratio;
  3. through the very 'agent' job the page and the CLI run (RunManager.run_foreground, in a
     temporary store): the random policy's mean return and the untrained (zero-shot) return over
     20 episodes, training for --minutes minutes, then the trained return, the difference with its
     95% CI, the best mean-of-100 training return and when (if ever) it reached 195;
  4. the diagnostics per update (issue 17): p(push toward the lean) on the probe states before
     training and after the first and last updates, the policy entropy and minority actions per rollout;
  5. what limits it: the measured steps/s against the steps PPO needs on CartPole.
Aim (issue 11): a trained mean return of at least 195 (CartPole-v0's solved line) within 15 minutes.

Run: python bench/bench_lm_agent.py [--minutes 15] [--preset NAME] [--model bundled] [--n-envs 8] [--algo ppo] [--n-steps 16]
The budget is checked between updates, so training overshoots --minutes by up to one rollout and update.
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SOLVED = 195.0
TARGET_RATIO, TARGET_RETURN = 3.0, 75.0
"""Issue 17's target: a trained greedy mean return of at least 3x the zero-shot one and at least 75, CI above 0."""
SB3_PPO_STEPS = 12_000
"""Steps SB3's PPO with RL Zoo's CartPole settings needs to first evaluate at 475 (bench/bench_gym.py's order of magnitude)."""


def measure_steps_per_second(trainer, n_steps: int, use_cache: bool) -> float:
    """Environment steps per second of the sampling policy, batched over the trainer's environments."""
    import torch

    obs = [env.reset(seed=100 + i)[0] for i, env in enumerate(trainer.envs)]
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(n_steps):
            ids = trainer.policy.encode_states(trainer.render_states(obs))
            probs = trainer.policy.forward_states(ids, use_cache=use_cache).logp.exp()  # (N, A)
            actions = torch.multinomial(probs, 1).squeeze(-1).tolist()
            for i, env in enumerate(trainer.envs):
                o, _, terminated, truncated, _ = env.step(actions[i])
                obs[i] = env.reset()[0] if terminated or truncated else o
    return n_steps * len(trainer.envs) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget (default 15)")
    # Left out, each setting is the config's default (or the preset's): the bench measures what users get.
    parser.add_argument("--model", help="model spec (default: bundled)")
    parser.add_argument("--n-envs", type=int, help="environments per forward pass (default: AgentConfig's)")
    parser.add_argument("--algo", choices=["ppo", "reinforce"], help="algorithm (default ppo)")
    parser.add_argument("--n-steps", type=int, help="steps per environment per update (default: AgentConfig's)")
    parser.add_argument("--n-epochs", type=int, help="PPO passes per rollout (default: AgentConfig's)")
    parser.add_argument("--lora-last-layers", type=int, help="adapters in the last N blocks (default: AgentConfig's)")
    parser.add_argument("--speed-steps", type=int, default=8, help="batched steps per condition (in rounds of 2)")
    parser.add_argument("--preset", default="", help="start from an Agent page preset (agent/config.AGENT_PRESETS); "
                        "--minutes replaces its max_minutes, and the other flags apply only when given")
    args = parser.parse_args()
    home = Path(os.environ.get("LLMRL_BENCH_HOME") or tempfile.mkdtemp(prefix="bench_lm_agent_"))
    os.environ["LLMRL_HOME"] = str(home)

    import numpy as np
    import torch

    from llmrl_core.agent.train import AgentTrainer
    from llmrl_core.lm.models import load_causal_lm
    from llmrl_core.runs import RunManager, RunStore

    print(f"CPU: {torch.backends.cpu.get_cpu_capability()} · torch threads {torch.get_num_threads()} · "
          f"cores {os.cpu_count()} · CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    config = make_bench_config(args, parser)
    print(f"config: {'preset ' + args.preset if args.preset else 'AgentConfig defaults'} · " + ", ".join(
        f"{k}={v!r}" for k, v in config.to_dict().items() if k not in ("instruction", "state_template")))
    print(f"instruction {config.instruction!r} · state template {config.state_template!r}")

    # 2. Speed, with and without the cached prefix (the same policy, LoRA on, as in training).
    loaded = load_causal_lm(config.model, device=config.device)
    trainer = AgentTrainer(config, loaded)
    prefix, state = len(trainer.policy.prefix_ids), len(trainer.policy.encode(trainer.render_states(trainer.obs[:1])[0]))
    print(f"model {loaded.resolved.display_name} on {loaded.device} · prompt: instruction {prefix} tokens (cached), "
          f"state about {state} tokens, action words {config.action_words}")
    measure_steps_per_second(trainer, 1, True)  # warm-up: the first forwards pay one-off costs
    measure_steps_per_second(trainer, 1, False)
    # Interleaved rounds, medians: load from other processes drifts, and must hit both conditions alike.
    rounds = {True: [], False: []}
    for _ in range(max(1, args.speed_steps // 2)):
        for use_cache in (True, False):
            rounds[use_cache].append(measure_steps_per_second(trainer, 2, use_cache))
    cached, uncached = statistics.median(rounds[True]), statistics.median(rounds[False])
    print(f"env steps/s over {config.n_envs} envs: cached prefix {cached:.2f} · uncached {uncached:.2f} · "
          f"ratio {cached / uncached:.2f}x", flush=True)
    trainer.close()
    del trainer, loaded

    # 3. The job: random and zero-shot returns, training for --minutes, the trained return.
    print(f"training for {args.minutes:g} min ({config.algo.upper()}, n_steps {config.n_steps}, n_epochs {config.n_epochs}, "
          f"LoRA in {'every block' if not config.lora_last_layers else f'the last {config.lora_last_layers} blocks'})…", flush=True)
    store = RunStore(home / "runs.sqlite")
    t0 = time.perf_counter()
    run_id, status = RunManager(store).run_foreground("agent", config.to_dict(), name="bench", total_steps=config.total_steps)
    wall = time.perf_counter() - t0
    run = store.get_run(run_id)
    if status != "completed":
        print(f"run {run_id} {status}: {run.get('error')}")
        return
    s = run["summary"]
    episodes = config.eval_episodes
    print(f"random policy: mean return {s['random_return']:.1f} ({episodes} episodes)")
    print(f"untrained (zero-shot, {'greedy' if config.greedy_eval else 'sampled'}): mean return "
          f"{s['zero_shot_return']:.1f} ± {s['zero_shot_std']:.1f} ({episodes} episodes)")
    low, high = s["difference_ci95"]
    print(f"after {s['train_seconds'] / 60:.1f} min of {config.algo.upper()} ({s['steps']} steps, {s['episodes']} episodes, "
          f"{s['updates']} updates, {s['steps_per_second']:.1f} steps/s with updates): trained mean return "
          f"{s['trained_return']:.1f} ± {s['trained_std']:.1f}; difference {s['difference']:+.1f} "
          f"(95% CI {low:+.1f} to {high:+.1f}); whole job {wall / 60:.1f} min")
    met = (s["trained_return"] >= TARGET_RATIO * s["zero_shot_return"] and s["trained_return"] >= TARGET_RETURN
           and low > 0)
    print(f"issue 17 target (trained greedy >= {TARGET_RATIO:g}x zero-shot and >= {TARGET_RETURN:g}, CI above 0): "
          f"{'met' if met else 'missed'} (ratio {s['trained_return'] / max(s['zero_shot_return'], 1e-9):.2f}x, "
          f"trained {s['trained_return']:.1f}, CI low {low:+.1f})")
    curve = store.read_metrics(run_id, names=["rollout/ep_rew_mean"])
    if not curve.empty:
        best = curve.loc[curve["value"].idxmax()]
        print(f"training return (mean of last 100 episodes): best {best['value']:.1f} at step {int(best['step'])}, "
              f"last {curve['value'].iloc[-1]:.1f}")
        reached = curve[curve["value"] >= SOLVED]
        if not reached.empty:
            first = reached.iloc[0]
            start = store.read_metrics(run_id, names=["baseline/random_return"])["wall_time"].iloc[0]
            print(f"reached {SOLVED:g} (training mean of 100) at step {int(first['step'])}, "
                  f"{(first['wall_time'] - start) / 60:.1f} min after the job started")
    print_diagnostics(store, run_id)
    target = max(s["trained_return"], float(np.nan_to_num(curve["value"].max() if not curve.empty else 0.0)))
    if target >= SOLVED:
        print(f"aim met: a mean return of at least {SOLVED:g} within {args.minutes:g} minutes")
    else:
        possible = s["steps_per_second"] * 60 * 15
        print(f"aim not met: {target:.1f} of {SOLVED:g}. Limit: the policy is a {loaded_params(config.model)} model on "
              f"this CPU; at {s['steps_per_second']:.1f} steps/s (rollout and updates) 15 minutes hold about "
              f"{possible:,.0f} environment steps, while PPO with a 64-unit MLP needs about {SB3_PPO_STEPS:,} steps to "
              "solve CartPole and a language-model policy with LoRA typically needs more, not fewer.")


def make_bench_config(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The run's AgentConfig: the defaults (or --preset's values), the flags given, --minutes as the budget."""
    from llmrl_core.agent.config import AGENT_PRESETS, AgentConfig

    flags = {"model": "model", "algo": "algo", "n_envs": "n_envs", "n_steps": "n_steps", "n_epochs": "n_epochs",
             "lora_last_layers": "lora_last_layers"}
    values: dict = {}
    if args.preset:
        if args.preset not in AGENT_PRESETS:
            parser.error(f"unknown preset {args.preset!r}; presets: {', '.join(AGENT_PRESETS)}")
        values.update(AGENT_PRESETS[args.preset].overrides)
    values.update({field: getattr(args, dest) for dest, field in flags.items() if getattr(args, dest) is not None})
    values.update(total_steps=100_000_000, max_minutes=args.minutes)
    return AgentConfig.from_dict(values)


def print_diagnostics(store, run_id: int) -> None:
    """p(toward the lean), entropy and minority actions: at the start, after the first update, after the last."""
    names = ["diag/p_toward_lean", "diag/entropy", "diag/minority_actions", "losses/approx_kl"]
    wide = store.read_metrics_wide(run_id)
    present = [n for n in names if n in wide.columns]
    if not present:
        return
    rows = wide[["step", *present]].dropna(how="all", subset=present)
    for label, row in (("before training", rows.iloc[0]), ("first update", rows.iloc[min(1, len(rows) - 1)]),
                       ("last update", rows.iloc[-1])):
        values = " · ".join(f"{n.split('/')[-1]} {row[n]:.4g}" for n in present if row[n] == row[n])
        print(f"diagnostics, {label} (step {int(row['step'])}): {values}")


def loaded_params(spec: str) -> str:
    """A short description of the model's size, for the limit line."""
    return "135M-parameter" if spec == "bundled" else repr(spec)


if __name__ == "__main__":
    main()
