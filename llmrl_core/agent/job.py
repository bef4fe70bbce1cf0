"""The 'agent' job: the language model plays a Gymnasium environment in words and learns from the reward.

Registered in the run manager as kind 'agent'; the page and `python -m llmrl_core agent` run
this very function in a worker process. In order:

1. load the model and build the policy; template checks that need the tokenizer (distinct action
   token sequences, the context length) fail here, before any environment step;
2. the random policy's mean return over eval_episodes (the floor, metric baseline/random_return);
3. zero-shot: the untrained model over eval_episodes (eval/mean_reward at step 0, its episode recorded);
4. training (PPO or REINFORCE) until total_steps, max_episodes, max_minutes or Stop; after each
   update the metrics, and env 0's latest finished episode with the action probabilities;
5. the trained model over the same eval_episodes starting states, and the difference with the
   zero-shot return with a 95% confidence interval (Welch); the LoRA adapter and value head are saved.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrl_core.agent.config import AgentConfig
from llmrl_core.agent.train import (
    AgentTrainer,
    RecordedEpisode,
    compute_return_difference,
    compute_rollout_diagnostics,
    play_random,
)
from llmrl_core.core.paths import get_artifact_dir
from llmrl_core.runs.manager import JobContext

EVAL_SEED_OFFSET = 10_000
"""Evaluation episodes start from seeds apart from the training environments'."""


def save_recorded_episode(ctx: JobContext, episode: RecordedEpisode, step: int, name: str) -> Path:
    """Write an episode as JSON under the run's artifacts and record it (kind 'episode', like gym runs)."""
    path = get_artifact_dir(ctx.run_id) / "episodes" / f"{name}-{step:09d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = episode.to_dict()
    path.write_text(json.dumps(data, separators=(",", ":")))
    ctx.add_artifact(step, "episode", path, {"return": data["return"], "length": data["length"],
                                             "policy": episode.policy, "fps": episode.fps})
    return path


PROBE_METRIC = "diag/p_toward_lean"
"""Mean probability of pushing toward the pole's lean on CartPole's probe states (text_env.make_probe_states)."""


def measure_probe_metrics(trainer: AgentTrainer) -> dict[str, float]:
    """The probe states' mean probability of the good action, as a metric ({} for envs without probes).

    Greedy returns cannot show the first phase of learning ('always left' and 'always right' both
    score about 9 on CartPole); this moves from the first update (issue 17, 1c).
    """
    value = trainer.measure_probes()
    return {} if value is None else {PROBE_METRIC: value}


def run_agent_job(ctx: JobContext) -> dict:
    """Run one agent job per ctx.config (an AgentConfig dict); return the summary figures."""
    from llmrl_core.lm.models import load_causal_lm

    config = AgentConfig.from_dict(ctx.config)
    threads_before = torch.get_num_threads()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    ctx.log(f"Loading {config.model}…")
    loaded = load_causal_lm(config.model, device=config.device)
    trainer = AgentTrainer(config, loaded, log=ctx.log)
    try:
        return _run(ctx, config, trainer)
    finally:
        trainer.close()
        torch.set_num_threads(threads_before)


def _run(ctx: JobContext, config: AgentConfig, trainer: AgentTrainer) -> dict:
    eval_seed = config.seed + EVAL_SEED_OFFSET
    ctx.set_progress(0, config.total_steps)
    ctx.log(f"{config.algo.upper()} on {config.env_id}: {config.n_envs} environments, {config.total_steps} steps, "
            f"{'LoRA' if config.use_lora else 'full fine-tuning'} ({trainer.n_trainable:,} trainable weights); "
            f"prompt prefix {len(trainer.policy.prefix_ids)} tokens, cached.")

    random_returns, _ = play_random(config.env_id, config.eval_episodes, eval_seed)
    random_mean = float(np.mean(random_returns))
    ctx.log_metrics(0, {"baseline/random_return": random_mean})

    t0 = time.perf_counter()
    zero_returns, zero_lengths, zero_episode = trainer.evaluate(config.eval_episodes, config.greedy_eval, eval_seed,
                                                                "zero-shot", should_stop=ctx.is_stop_requested)
    zero_seconds = time.perf_counter() - t0
    zero_mean = float(np.mean(zero_returns))
    ctx.log_metrics(0, {"eval/mean_reward": zero_mean, "eval/std_reward": float(np.std(zero_returns)),
                        "eval/zero_shot_return": zero_mean, "eval/mean_ep_length": float(np.mean(zero_lengths))})
    save_recorded_episode(ctx, zero_episode, 0, "zero-shot")
    if probes := measure_probe_metrics(trainer):
        ctx.log_metrics(0, probes)
    ctx.log(f"Zero-shot: mean return {zero_mean:.1f} over {config.eval_episodes} episodes "
            f"(random policy {random_mean:.1f}); {sum(zero_lengths) / max(zero_seconds, 1e-9):.1f} steps/s.")

    stop_reason = "budget"
    t_train = time.perf_counter()
    rollout_seconds, updates = 0.0, 0
    while trainer.steps < config.total_steps:
        if ctx.should_stop():
            stop_reason = "stopped"
            break
        if config.max_episodes and trainer.episodes >= config.max_episodes:
            stop_reason = "max_episodes"
            break
        if config.max_minutes and time.perf_counter() - t_train >= 60 * config.max_minutes:
            stop_reason = "max_minutes"
            break
        rollout = trainer.collect_rollout(should_stop=ctx.is_stop_requested)
        if rollout is None:
            stop_reason = "stopped"
            break
        rollout_seconds += rollout.seconds
        metrics = trainer.update(rollout)
        metrics.update(compute_rollout_diagnostics(rollout.actions, rollout.entropy))
        metrics.update(measure_probe_metrics(trainer))
        updates += 1
        elapsed = time.perf_counter() - t_train
        metrics.update({
            "time/fps": trainer.steps / max(elapsed, 1e-9),
            "charts/SPS": trainer.steps / max(elapsed, 1e-9),
            "time/rollout_sps": rollout.rewards.numel() / max(rollout.seconds, 1e-9),
            "time/episodes": trainer.episodes,
            "time/total_timesteps": trainer.steps,
        })
        if trainer.finished_returns:
            metrics["rollout/ep_rew_mean"] = float(np.mean(trainer.finished_returns))
            metrics["rollout/ep_len_mean"] = float(np.mean(trainer.finished_lengths))
        if trainer.new_returns:
            metrics["charts/episodic_return"] = float(np.mean(trainer.new_returns))
            trainer.new_returns.clear()
        ctx.log_metrics(trainer.steps, metrics)
        if trainer.last_episode is not None:
            trainer.last_episode.train_step = trainer.steps
            save_recorded_episode(ctx, trainer.last_episode, trainer.steps, "train")
            trainer.last_episode = None
        ctx.set_progress(min(trainer.steps, config.total_steps), config.total_steps)
    train_seconds = time.perf_counter() - t_train

    summary: dict[str, Any] = {
        "steps": trainer.steps, "episodes": trainer.episodes, "updates": updates, "stop_reason": stop_reason,
        "train_seconds": round(train_seconds, 2), "steps_per_second": round(trainer.steps / max(train_seconds, 1e-9), 2),
        "random_return": random_mean, "zero_shot_return": zero_mean, "zero_shot_std": float(np.std(zero_returns)),
        "train_return_last100": float(np.mean(trainer.finished_returns)) if trainer.finished_returns else None,
    }
    if stop_reason == "stopped":
        ctx.log("Stopped: the final evaluation is skipped.")
        return summary
    final_returns, final_lengths, final_episode = trainer.evaluate(config.eval_episodes, config.greedy_eval, eval_seed,
                                                                   "trained", should_stop=ctx.is_stop_requested)
    final_mean = float(np.mean(final_returns))
    diff = compute_return_difference(zero_returns, final_returns)
    ctx.log_metrics(trainer.steps, {"eval/mean_reward": final_mean, "eval/std_reward": float(np.std(final_returns)),
                                    "eval/trained_return": final_mean, "eval/mean_ep_length": float(np.mean(final_lengths))})
    save_recorded_episode(ctx, final_episode, trainer.steps, "trained")
    summary.update({"trained_return": final_mean, "trained_std": float(np.std(final_returns)),
                    "difference": diff["diff"], "difference_ci95": [diff["ci_low"], diff["ci_high"]]})
    ctx.log(f"Trained: mean return {final_mean:.1f} (zero-shot {zero_mean:.1f}; difference {diff['diff']:+.1f}, "
            f"95% CI [{diff['ci_low']:+.1f}, {diff['ci_high']:+.1f}]).")
    folder = get_artifact_dir(ctx.run_id) / "policy"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(trainer.policy.value_head.state_dict(), folder / "value_head.pt")
    (folder / "value_normaliser.json").write_text(json.dumps(trainer.returns.to_dict()))
    if config.use_lora:
        trainer.policy.model.save_pretrained(str(folder))
    ctx.add_artifact(trainer.steps, "checkpoint", folder, {"lora": config.use_lora, "model": config.model,
                                                           "value_head": "value_head.pt"})
    return summary


GYM_BASELINE_METRIC = "rollout/ep_rew_mean"
"""What a Gym run's last training return is logged as (SB3's name; pages/gymnasium/gym_agents.py plots it)."""


def find_gym_baseline(store: Any, env_id: str) -> tuple[int, str, float] | None:
    """(run id, algorithm, last mean episode return) of the newest completed Gym run on `env_id`, or None.

    Prefers a PPO run (the Stable-Baselines3 agent the page compares with), else any algorithm but random.
    """
    runs = store.list_runs(kind="gym", statuses=["completed"])
    candidates = []
    for row in runs.itertuples():
        run = store.get_run(int(row.id)) or {}
        config = run.get("config") or {}
        if config.get("env_id") == env_id and config.get("algo") not in (None, "random"):
            candidates.append((config.get("algo") != "ppo", -int(row.id), int(row.id), str(config.get("algo"))))
    for _, _, run_id, algo in sorted(candidates):
        values = store.read_metrics(run_id, names=[GYM_BASELINE_METRIC])
        if not values.empty:
            return run_id, algo, float(values["value"].iloc[-1])
    return None
