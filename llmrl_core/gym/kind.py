"""The "gym" run kind: an SB3 agent on a Gymnasium environment, as the runs table, reports and exports see it.

Light on purpose (no torch, no SB3): listing the kinds imports this module.
"""

from __future__ import annotations

from typing import Any, Mapping

from llmrl_core.runs.headline import Headline, format_figure, read_metric_values
from llmrl_core.runs.kinds import RunKindSpec

GOAL_METRIC = "eval/mean_reward"  # the deterministic evaluation: what "solved" is measured on


def describe_gym_result(summary: Mapping[str, Any] | None, config: Mapping[str, Any], best: float | None) -> Headline:
    """Solved (and when) or how far from the solved line a Gymnasium run got."""
    from llmrl_core.gym.config import ENVS  # the solved line lives with the environments

    summary = summary or {}
    env = config.get("env_id", "the environment")
    solved_at = summary.get("solved_at_step")
    if solved_at is not None:
        seconds = summary.get("solved_seconds")
        return Headline(f"solved {env} at {int(solved_at):,} steps" + (f" in {seconds:.0f} s" if seconds else ""), good=True)
    if best is None:
        return Headline("no evaluation yet")
    info = ENVS.get(str(env))
    line = info.solved_return if info else None
    if line is None:
        return Headline(f"best return {format_figure(best)}")
    return Headline(f"best return {format_figure(best)} of {format_figure(line)} to solve", good=False)


def describe_gym_run(store: Any, run: Mapping[str, Any]) -> Headline:
    """'solved CartPole-v1 at 13,000 steps' or 'best return 212 of 475 to solve' (the best evaluation)."""
    values = read_metric_values(store, int(run["id"]), GOAL_METRIC).dropna()
    return describe_gym_result(run.get("summary"), run.get("config") or {},
                               float(values.max()) if not values.empty else None)


SPEC = RunKindSpec(
    name="gym",
    label="Gymnasium agent (SB3)",
    job="llmrl_core.gym.job:run_gym_job",
    config_class="llmrl_core.gym.config:GymConfig",
    step_label="environment steps",  # its runs log at the environment step count (summed over environments)
    main_metric="charts/episodic_return",  # SB3's episode return; each step already counts environment steps
    headline=describe_gym_run,
    export_formats=("model", "metrics", "samples", "config"),
    model_exporter="llmrl_core.gym.export:write_agent_zip",
    model_suffix=".zip",
    clone_page="pages/gymnasium/gym_agents.py",
    report="llmrl_core.present.gym_report:REPORT_PARTS",
    compare_metrics=("charts/episodic_return", "eval/mean_reward"),
    table_columns={"model": "env_id", "algorithm": "algo"},
    cli="llmrl_core.gym.cli",
    make_config="llmrl_core.gym.config:make_gym_config",  # hyperparameters go to params, RL Zoo values first
)
