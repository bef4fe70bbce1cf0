"""The demo run kind: a trivial job that proves the run machinery end to end (metrics, samples, artifacts, stop,
pause), without a model. It draws a noisy rising curve, so the Runs page has something to plot.

A test kind, not a feature: tests/conftest.py registers it for the test session and the workers it
launches (register_kind writes LLMRL_EXTRA_JOBS), and outside the tests it exists only when asked:

    LLMRL_EXTRA_JOBS=demo=tests.support.demo_job:DEMO_KIND python -m llmrl_core demo --steps 20

Its spec declares only a job, a label and a CLI verb: the runs table, headline ("5 of 20 steps"),
compare, report and export take their defaults.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.core.paths import get_artifact_dir
from llmrl_core.runs.kinds import RunKindSpec
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


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo job in the foreground (proves the store without a model)."""
    from llmrl_core.runs.foreground import run_and_report

    if args.steps < 1:  # refused here, before a run exists in the store
        raise WorkbenchError(f"--steps must be at least 1 (got {args.steps}).")
    if not 0 <= args.delay <= 60:  # also NaN and inf
        raise WorkbenchError(f"--delay must be between 0 and 60 seconds (got {args.delay}); 0.05 is the default.")
    config = {"steps": args.steps, "delay": args.delay, "seed": args.seed}
    return run_and_report("demo", config, args.name or "demo", args.steps, as_json=False, queue=args.queue)


def add_cli(sub: argparse._SubParsersAction) -> None:
    """The `demo` command: a trivial job that exercises the run store."""
    demo = sub.add_parser("demo", help="a trivial job that exercises the run store (a test kind)")
    demo.add_argument("--steps", type=int, default=20)
    demo.add_argument("--delay", type=float, default=0.05)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--name")
    demo.add_argument("--queue", action="store_true", help="wait in the run queue for a free slot")
    demo.set_defaults(func=_cmd_demo)


DEMO_KIND = RunKindSpec(name="demo", label="Demo (a test kind)", job="tests.support.demo_job:run_demo_job",
                        cli="tests.support.demo_job")
