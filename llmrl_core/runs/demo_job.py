"""A trivial job that proves the run machinery end to end: metrics, samples, artifacts, stop, pause.

It draws a noisy rising curve, so the Runs page has something to plot without a model.
"""

from __future__ import annotations

import math
import random
import time

from llmrl_core.core.errors import InputError
from llmrl_core.core.paths import get_artifact_dir
from llmrl_core.runs.manager import JobContext


def run_demo_job(ctx: JobContext) -> dict:
    """Log `steps` points of a noisy rising curve, `delay` seconds apart; fail at step `fail_at` if set."""
    steps = int(ctx.config.get("steps", 20))
    delay = float(ctx.config.get("delay", 0.05))
    fail_at = ctx.config.get("fail_at")
    if steps < 1:
        raise InputError(f"steps must be at least 1 (got {steps}).")
    rng = random.Random(int(ctx.config.get("seed", 0)))
    value = 0.0
    for step in range(1, steps + 1):
        if ctx.should_stop():
            break
        if fail_at is not None and step == int(fail_at):
            raise RuntimeError(f"demo failure at step {step}")
        value = 1 - math.exp(-step / max(steps / 4, 1)) + rng.gauss(0, 0.03)
        ctx.log_metrics(step, {"reward": value, "reward_std": 0.1, "step_time": delay})
        ctx.add_samples(step, [{"prompt": "count", "completion": f"step {step}", "rewards": {"demo": value}}])
        ctx.set_progress(step, steps)
        time.sleep(delay)
    path = get_artifact_dir(ctx.run_id) / "final.txt"
    path.write_text(f"{value:.4f}\n")
    ctx.add_artifact(step, "result", path)
    return {"final_value": value, "steps": step}
