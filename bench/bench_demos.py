"""Every demo the front page offers, run end to end in its default budget: does each deliver a result you can show?

The front page (pages/home/overview.py) has three demo cards. Two train something, and each of those starts
from presets: "Fine-tune a language model" (the LM presets of llmrl_core/lm_rl/config.py: make-it-positive,
make-it-positive-lora, learn-arithmetic) and "Balance a pole" (PPO on CartPole-v1 with RL Zoo's tuned
settings, gym/config.make_gym_config, as the Gymnasium page starts it). The third, "Look inside its
attention", trains nothing, so it has no before and after. The Agent page's default run (agent/config.AgentConfig)
is measured too ("lm-agent"): it is the demo no other product has.

Each demo runs through the very job the page starts (RunManager.run_foreground, in a temporary store), then
measures before and after on episodes or prompts training never saw:
  * LM presets: held-out reward. The base model and the run's final checkpoint answer the same held-out
    prompts greedily (lm_rl/evaluate.held_out_prompts, compare_run_before_after: the run's rewards, the
    paired bootstrap CI over prompts of evaluate.bootstrap_mean_diff), as the Before/after page does.
  * CartPole PPO: evaluation return of the untrained policy (the same seed's fresh model) and of the trained
    agent (its saved zip), over --episodes episodes from the same starting states, actions sampled from each
    policy; the difference's Welch CI is agent/train.compute_return_difference. Sampled, not greedy: the
    untrained network's action probabilities are all near 0.5 (SB3 initialises the action head with gain
    0.01), so it plays like the random policy, while its greedy argmax is an arbitrary fixed rule of the
    state that can balance the pole by luck (seed 0: 458 of 500), which says nothing about training.
    The greedy returns are printed to stderr too.
  * lm-agent: the agent job's own zero-shot and trained evaluations and their Welch CI (its run summary).

For each demo it prints exactly one line on stdout:
  DEMO <name>: before <x> -> after <y> (95% CI of the difference <lo> to <hi>) in <seconds> s
where seconds is the whole demo (training and the before/after evaluation) on this machine. Progress and
the health alarms an LM run raised (lm_rl/alarms: none should fire on a preset's healthy run) go to stderr.

Held-out prompts: 16 per LM demo, 64 for learn-arithmetic (HELD_OUT_BY_DEMO: its 0/1 scores need more for a CI
that can tell +0.2 from 0).

Run: python bench/bench_demos.py [--only NAME,...] [--steps N] [--held-out N] [--episodes N]
     --steps overrides the LM presets' training steps (a smoke run; the default budget is the preset's).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HELD_OUT = 16  # held-out prompts per LM demo (the Before/after page offers 8 by default)
# learn-arithmetic scores each answer 0 or 1, so 16 prompts resolve only steps of 1/16 and its paired CI spans
# about +-0.2; 64 fresh problems (greedy, 24 tokens: seconds per side) make the CI half as wide. The VADER
# demos' rewards are continuous, and their held-out sets hold only 40 prompts anyway.
HELD_OUT_BY_DEMO = {"learn-arithmetic": 64}
EPISODES = 20  # evaluation episodes per side for CartPole (the agent job evaluates its eval_episodes, 20)
EVAL_SEED_OFFSET = 10_000  # evaluation episodes start from seeds apart from the training environments'


class DemoResult(NamedTuple):
    """Before and after on held-out prompts or episodes, the difference's 95% CI, and the demo's wall time."""

    before: float
    after: float
    low: float
    high: float
    seconds: float
    digits: int  # decimals to print: rewards in [-1, 1] get 3, returns 1


def format_demo_line(name: str, result: DemoResult) -> str:
    """The one line a demo prints."""
    f = f".{result.digits}f"
    return (f"DEMO {name}: before {result.before:{f}} -> after {result.after:{f}} "
            f"(95% CI of the difference {result.low:+{f}} to {result.high:+{f}}) in {result.seconds:.0f} s")


def note(text: str) -> None:
    """Progress and diagnostics: stderr, so stdout holds only the DEMO lines."""
    print(text, file=sys.stderr, flush=True)


def open_manager():
    """A run manager over a fresh store in this bench's workbench home."""
    from llmrl_core.runs import RunManager, RunStore

    return RunManager(RunStore(Path(os.environ["LLMRL_HOME"]) / "runs.sqlite"))


# ----------------------------------------------------------------------------- the demos


def run_lm_demo(preset: str, steps: int | None, held_out: int, **overrides) -> DemoResult:
    """An LM preset's run (with config `overrides`), then the base model and its final checkpoint on held-out prompts (greedy)."""
    from llmrl_core.lm_rl.alarms import read_run_alarms
    from llmrl_core.lm_rl.config import make_preset_config
    from llmrl_core.lm_rl.evaluate import compare_run_before_after, held_out_prompts

    config = make_preset_config(preset, **({"steps": steps} if steps else {}), **overrides).to_dict()
    manager = open_manager()
    t0 = time.perf_counter()
    run_id, status = manager.run_foreground("lm_rl", config, name=f"demo {preset}", total_steps=config["steps"])
    run = manager.store.get_run(run_id)
    if status != "completed":
        raise RuntimeError(f"run {run_id} ended {status}: {run.get('error')}")
    note(f"{preset}: trained {config['steps']} steps in {time.perf_counter() - t0:.0f} s")
    alarms = read_run_alarms(manager.store, run_id)
    note(f"{preset}: alarms fired: {', '.join(a.kind for a in alarms) if alarms else 'none'}")
    checkpoints = manager.store.list_artifacts(run_id, kind="checkpoint")
    if checkpoints.empty:
        raise RuntimeError(f"run {run_id} saved no checkpoint")
    prompts = held_out_prompts(config, held_out)
    note(f"{preset}: {prompts.attrs.get('source', '')}")
    result = compare_run_before_after(config, list(checkpoints["path"])[-1], prompts, greedy=True,
                                      seed=int(config.get("seed") or 0))
    return DemoResult(result.before_mean, result.after_mean, result.low, result.high, time.perf_counter() - t0, 3)


def evaluate_gym_policy(model, env_id: str, episodes: int, seed: int, deterministic: bool) -> list[float]:
    """Returns of an SB3 model over `episodes` episodes (one per environment, seeded alike), greedy or sampled."""
    from llmrl_core.gym.episodes import EpisodeRunner, make_agent_act_fn

    runner = EpisodeRunner(env_id, episodes, seed)
    try:
        returns, _, _ = runner.run(make_agent_act_fn(model, deterministic=deterministic), policy="bench")
    finally:
        runner.close()
    return returns


def run_cartpole_demo(episodes: int) -> DemoResult:
    """PPO on CartPole-v1 as the Gymnasium page starts it, then the untrained and trained policies' returns."""
    from stable_baselines3.common.env_util import make_vec_env

    from llmrl_core.agent.train import compute_return_difference
    from llmrl_core.gym.config import make_gym_config
    from llmrl_core.gym.job import build_model, load_agent

    config = make_gym_config("CartPole-v1", "ppo")
    manager = open_manager()
    t0 = time.perf_counter()
    run_id, status = manager.run_foreground("gym", config.to_dict(), name="demo cartpole", total_steps=config.total_steps)
    run = manager.store.get_run(run_id)
    if status != "completed":
        raise RuntimeError(f"run {run_id} ended {status}: {run.get('error')}")
    summary = run["summary"]
    note(f"cartpole: trained {summary['steps']} steps in {summary['seconds']:.0f} s (solved at {summary['solved_at_step']})")
    seed = config.seed + EVAL_SEED_OFFSET
    env = make_vec_env(config.env_id, n_envs=config.n_envs, seed=config.seed)
    try:
        untrained = build_model(config, env)  # what training started from: the same seed's fresh networks
        trained = load_agent(summary["agent_path"], config.algo)
        returns = {(name, greedy): evaluate_gym_policy(model, config.env_id, episodes, seed, greedy)
                   for name, model in (("untrained", untrained), ("trained", trained)) for greedy in (True, False)}
    finally:
        env.close()
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    note("cartpole: greedy returns: untrained {:.1f}, trained {:.1f}".format(
        mean(returns["untrained", True]), mean(returns["trained", True])))
    before, after = returns["untrained", False], returns["trained", False]
    diff = compute_return_difference(before, after)
    return DemoResult(mean(before), mean(after), diff["ci_low"], diff["ci_high"], time.perf_counter() - t0, 1)


def run_agent_demo() -> DemoResult:
    """The Agent page's default run: its job evaluates zero-shot and trained and gives the Welch CI."""
    from llmrl_core.agent.config import AgentConfig

    config = AgentConfig()
    manager = open_manager()
    t0 = time.perf_counter()
    run_id, status = manager.run_foreground("agent", config.to_dict(), name="demo agent", total_steps=config.total_steps)
    run = manager.store.get_run(run_id)
    summary = run.get("summary") or {}
    if status != "completed" or "trained_return" not in summary:
        raise RuntimeError(f"run {run_id} ended {status} without a trained evaluation: {run.get('error')}")
    low, high = summary["difference_ci95"]
    return DemoResult(summary["zero_shot_return"], summary["trained_return"], low, high, time.perf_counter() - t0, 1)


def list_demos(args: argparse.Namespace) -> dict[str, Callable[[], DemoResult]]:
    """Demo name -> a function that runs it, in the front page's order (LM presets, then CartPole, then the agent)."""
    from llmrl_core.lm_rl.config import PRESETS

    demos: dict[str, Callable[[], DemoResult]] = {
        name: (lambda name=name: run_lm_demo(name, args.steps, args.held_out or HELD_OUT_BY_DEMO.get(name, HELD_OUT)))
        for name in PRESETS}
    demos["cartpole"] = lambda: run_cartpole_demo(args.episodes)
    demos["lm-agent"] = run_agent_demo
    return demos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated demo names (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="override the LM presets' training steps (smoke runs)")
    parser.add_argument("--held-out", type=int, default=None,
                        help=f"held-out prompts per LM demo (default {HELD_OUT}; learn-arithmetic {HELD_OUT_BY_DEMO['learn-arithmetic']})")
    parser.add_argument("--episodes", type=int, default=EPISODES, help=f"CartPole evaluation episodes per side (default {EPISODES})")
    args = parser.parse_args()
    os.environ["LLMRL_HOME"] = os.environ.get("LLMRL_BENCH_HOME") or tempfile.mkdtemp(prefix="bench_demos_")
    demos = list_demos(args)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()] or list(demos)
    unknown = [n for n in wanted if n not in demos]
    if unknown:
        parser.error(f"unknown demo {', '.join(unknown)}; choose from {', '.join(demos)}")
    note(f"load average {open('/proc/loadavg').read().split()[0] if Path('/proc/loadavg').exists() else '?'}; "
         f"{os.cpu_count()} cores")
    failed = 0
    for name in wanted:
        try:
            print(format_demo_line(name, demos[name]()), flush=True)
        except Exception as err:  # one demo failing must not hide the others' lines
            failed += 1
            print(f"DEMO {name}: failed: {err}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
