"""Jobs used by the worker-process tests (registered with register_job, imported by the workers)."""

from __future__ import annotations

import time

from llmrl_core.runs.manager import JobContext


def run_sandbox_holder_job(ctx: JobContext) -> dict:
    """Start a custom-reward sandbox (a child process), log its pid, then step until stopped."""
    from llmrl_core.core.sandbox import CodeSandbox

    sandbox = CodeSandbox("def reward(prompts, completions, **kw):\n    return [1.0] * len(completions)\n")
    ctx.log(f"sandbox pid {sandbox.pid}")
    step = 0
    while not ctx.should_stop():
        step += 1
        ctx.log_metrics(step, {"reward": sandbox(["p"], ["c"])[0]})
        ctx.set_progress(step)
        time.sleep(0.05)
    return {"steps": step}


def run_stubborn_job(ctx: JobContext) -> dict:
    """Log steps and never look at stop requests (a job stuck in a long step)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # even a polite SIGTERM is ignored
    step = 0
    while True:
        step += 1
        ctx.log_metrics(step, {"x": step})
        ctx.set_progress(step)
        time.sleep(0.05)
