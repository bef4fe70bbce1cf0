"""One line per run that says whether it worked: what a front page or a report leads with.

    LM runs (lm_rl):   "reward 0.12 → 0.71 (+0.59)"   mean of the first and last 5 logged steps
    Gym runs (gym):    "solved at 13,000 steps (CartPole-v1 ≥ 475)" or "best return 212 of 475 to solve"
    Agent runs:        "return 21 → 187 (+166)": the zero-shot evaluation, then the trained one
    anything else:     "5 of 20 steps"

It reads only the metric it needs, so a front page listing the latest runs stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

WINDOW = 5  # logged steps averaged at each end: one noisy step should not make the headline


@dataclass(frozen=True)
class Headline:
    """A run's result in words, and whether it counts as a success (None: not known)."""

    text: str
    good: bool | None = None


# kind -> metric that measures the run's goal (higher is better)
GOAL_METRICS: dict[str, str] = {"lm_rl": "reward", "gym": "eval/mean_reward"}
AGENT_METRICS = ("eval/zero_shot_return", "eval/trained_return")  # the agent job's evaluations before and after


def _format(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def describe_change(values: pd.Series, label: str) -> Headline:
    """'label first → last (+delta)' from a metric series (NaNs skipped); 'no label logged yet' when empty."""
    clean = values.dropna()
    clean = clean[clean.map(math.isfinite)]
    if clean.empty:
        return Headline(f"no {label} logged yet")
    first, last = float(clean.head(WINDOW).mean()), float(clean.tail(WINDOW).mean())
    if len(clean) <= WINDOW:
        return Headline(f"{label} {_format(last)}")
    delta = last - first
    return Headline(f"{label} {_format(first)} → {_format(last)} ({'+' if delta >= 0 else ''}{_format(delta)})",
                    good=delta > 0)


def describe_gym_result(summary: Mapping[str, Any] | None, config: Mapping[str, Any], best: float | None) -> Headline:
    """Solved (and when) or how far from the solved line a Gymnasium run got."""
    summary = summary or {}
    env = config.get("env_id", "the environment")
    solved_at = summary.get("solved_at_step")
    if solved_at is not None:
        seconds = summary.get("solved_seconds")
        return Headline(f"solved {env} at {int(solved_at):,} steps" + (f" in {seconds:.0f} s" if seconds else ""), good=True)
    if best is None:
        return Headline("no evaluation yet")
    from llmrl_core.gym.config import ENVS  # the solved line lives with the environments

    info = ENVS.get(str(env))
    line = info.solved_return if info else None
    if line is None:
        return Headline(f"best return {_format(best)}")
    return Headline(f"best return {_format(best)} of {_format(line)} to solve", good=False)


def describe_agent_result(store: Any, run_id: int) -> Headline:
    """Zero-shot return, then the trained one once the final evaluation ran."""
    long = store.read_metrics(run_id, names=list(AGENT_METRICS))
    found = {name: float(group["value"].iloc[-1]) for name, group in long.groupby("name")} if not long.empty else {}
    before, after = found.get(AGENT_METRICS[0]), found.get(AGENT_METRICS[1])
    if before is None:
        return Headline("no evaluation yet")
    if after is None:
        return Headline(f"zero-shot return {_format(before)}")
    delta = after - before
    return Headline(f"return {_format(before)} → {_format(after)} ({'+' if delta >= 0 else ''}{_format(delta)})",
                    good=delta > 0)


def describe_run_headline(store: Any, run: Mapping[str, Any]) -> Headline:
    """The headline for one run (a dict as RunStore.get_run returns it)."""
    kind, run_id = run["kind"], int(run["id"])
    metric = GOAL_METRICS.get(kind)
    values = pd.Series(dtype=float)
    if metric is not None:
        long = store.read_metrics(run_id, names=[metric])
        values = long.drop_duplicates("step", keep="last")["value"].astype(float) if not long.empty else values
    if kind == "gym":
        return describe_gym_result(run.get("summary"), run.get("config") or {},
                                   float(values.max()) if not values.dropna().empty else None)
    if kind == "lm_rl":
        return describe_change(values, "reward")
    if kind == "agent":
        return describe_agent_result(store, run_id)
    total = run.get("total_steps")
    return Headline(f"{int(run.get('step') or 0)} of {int(total)} steps" if total == total and total else
                    f"{int(run.get('step') or 0)} steps")
