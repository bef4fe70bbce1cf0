"""The 'lm_rl' job: train cfg.steps RL steps of a language model, reporting each to the run store.

Registered in the run manager as kind 'lm_rl'; the dashboard and `python -m llmrl_core lm-rl`
run the very same function. Each step is `RLTrainer.train_step()` (trainer.py); this module is
the loop around it: stop and pause between steps, metrics and samples to the store, checkpoints
every save_every steps and at the end, and retention (the newest save_total_limit checkpoints,
optimizer state only in the newest).

On several processes every one runs this loop; only the main one writes to the store, reads stop
and pause, and tells the others (so all stop at the same step boundary); all of them save
checkpoints together, since sharded weights are gathered collectively.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from llmrl_core.lm_rl import distributed
from llmrl_core.lm_rl.checkpoints import list_checkpoints, make_checkpoint_dir, prune_checkpoints, strip_optimizer_state
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.lm_rl.trainer import RLTrainer, StepResult


def run_lm_rl_job(ctx: Any, on_step: Callable[[StepResult], None] | None = None) -> dict:
    """Job kind 'lm_rl': train cfg.steps steps, reporting each to the store; checkpoint as configured.

    Honours stop and pause between steps (ctx.should_stop), so a stop takes effect within one step.
    `on_step(result)` lets the CLI draw a progress bar.
    """
    cfg = RLConfig.from_dict(ctx.config)
    trainer = RLTrainer(cfg, log=ctx.log)
    try:
        return train_until_done(ctx, trainer, on_step)
    finally:
        close = getattr(trainer.reward_set, "close", None)
        if callable(close):
            close()  # custom-code rewards hold a worker process


def train_until_done(ctx: Any, trainer: RLTrainer, on_step: Callable[[StepResult], None] | None = None) -> dict:
    """The step loop, checkpoints and the summary of run_lm_rl_job."""
    from llmrl_core.core.paths import get_artifact_dir

    cfg, comm = trainer.cfg, trainer.comm
    main = trainer.is_main_process  # several processes: only this one writes to the store
    first_step = trainer.step_count
    if main:
        ctx.set_progress(first_step, cfg.steps)
        if comm.num_processes > 1:
            ctx.log(f"{comm.description} share each step: {cfg.batch_size // comm.num_processes} completions each.")
        ctx.log(f"Training {cfg.algorithm.upper()} for {cfg.steps - first_step} steps: {cfg.prompts_per_step} prompts x "
                f"{cfg.num_generations} samples, {'LoRA' if cfg.use_lora else 'full fine-tuning'}, lr {cfg.learning_rate:g}.")
    root = get_artifact_dir(ctx.run_id)
    rewards: list[float] = []
    last_saved = None

    def save(step: int, final: bool = False) -> None:
        nonlocal last_saved
        folder = trainer.save_checkpoint(root)  # every process: sharded weights are gathered together
        last_saved = step
        if not main:  # the others only keep count
            return
        ctx.add_artifact(step, "checkpoint", folder, {
            "step": step, "lora": cfg.use_lora, "algorithm": cfg.algorithm, "model": cfg.model,
            "reward": rewards[-1] if rewards else None, "optimizer": not trainer.is_sharded,
        })
        ctx.log(f"Saved checkpoint {folder.name}.")
        # the final checkpoint comes on top of the newest save_total_limit ones
        apply_retention(ctx, root, cfg.save_total_limit + (1 if final else 0))

    while trainer.step_count < cfg.steps:
        # the main process reads stop and pause; every process gets its answer, so all stop at this boundary
        if distributed.sync_stop(comm, ctx.should_stop() if main else False):
            if main:
                ctx.log(f"Stopping after step {trainer.step_count}.")
                ctx.stop_event.set()  # a stop read on the main process is the run's outcome
            break
        result = trainer.train_step()
        rewards.append(result.metrics["reward"])
        if main:
            ctx.log_metrics(result.step, result.metrics)
            ctx.add_samples(result.step, result.samples)
            ctx.set_progress(result.step, cfg.steps)
            if on_step is not None:
                on_step(result)
        if cfg.save_every and result.step % cfg.save_every == 0:
            save(result.step)
    if cfg.save_final and trainer.step_count > first_step and last_saved != trainer.step_count:
        save(trainer.step_count, final=True)
    comm.wait_for_everyone()  # no process leaves while another still saves
    if main and not cfg.keep_for_resuming:
        drop_optimizer_states(ctx, root)
    window = min(10, len(rewards))
    return {
        "steps": trainer.step_count,
        "reward_first": float(np.mean(rewards[:window])) if rewards else None,
        "reward_last": float(np.mean(rewards[-window:])) if rewards else None,
        "checkpoint": str(make_checkpoint_dir(root, last_saved)) if last_saved is not None else None,
    }


def drop_optimizer_states(ctx: Any, root: Any) -> None:
    """A run that ended (completed or stopped) keeps weights only: the optimizer state leaves every checkpoint,
    unless the config's keep_for_resuming asks to keep it (issue 19: 1.6 GB -> about 0.5 GB for the bundled model)."""
    stripped = []
    for folder in list_checkpoints(root):
        try:
            if strip_optimizer_state(folder):
                stripped.append(folder)
        except Exception as err:  # a full disk or an odd file: the run's outcome stands, the state stays
            ctx.log(f"Could not drop the optimizer state of {folder.name}: {err}", "warning")
    if stripped:
        ctx.store.update_artifact_meta(ctx.run_id, stripped, {"optimizer": False})
        ctx.log(f"Dropped the optimizer state from {', '.join(p.name for p in stripped)}: the run ended and "
                "keep_for_resuming is off, so its folder holds the weights only (a resume starts a fresh AdamW).")


def apply_retention(ctx: Any, root: Any, keep: int) -> None:
    """Keep the newest `keep` checkpoints of the run, optimizer state only in the newest; update
    the run's artifact rows and log what was dropped (llmrl_core.lm_rl.checkpoints.prune_checkpoints)."""
    deleted, stripped = prune_checkpoints(root, keep)
    if deleted:
        ctx.store.remove_artifacts(ctx.run_id, deleted)
        ctx.log(f"Deleted {len(deleted)} older checkpoint(s) ({', '.join(p.name for p in deleted)}): "
                f"save_total_limit keeps the newest {keep}.")
    if stripped:
        ctx.store.update_artifact_meta(ctx.run_id, stripped, {"optimizer": False})
        ctx.log(f"Dropped the optimizer state from {', '.join(p.name for p in stripped)} (only the newest checkpoint "
                "keeps it; the others still load as models and resume with a fresh optimizer).")
