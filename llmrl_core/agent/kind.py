"""The "agent" run kind: the language model as a Gymnasium policy, as the runs table and reports see it.

Light on purpose (no torch): listing the kinds imports this module.
"""

from __future__ import annotations

from typing import Any, Mapping

from llmrl_core.runs.headline import Headline, format_figure
from llmrl_core.runs.kinds import RunKindSpec

EVALUATIONS = ("eval/zero_shot_return", "eval/trained_return")  # the agent job's evaluations before and after


def describe_agent_result(store: Any, run: Mapping[str, Any]) -> Headline:
    """'return 21 → 187 (+166)': the zero-shot evaluation, then the trained one once the final evaluation ran."""
    long = store.read_metrics(int(run["id"]), names=list(EVALUATIONS))
    found = {name: float(group["value"].iloc[-1]) for name, group in long.groupby("name")} if not long.empty else {}
    before, after = found.get(EVALUATIONS[0]), found.get(EVALUATIONS[1])
    if before is None:
        return Headline("no evaluation yet")
    if after is None:
        return Headline(f"zero-shot return {format_figure(before)}")
    delta = after - before
    return Headline(f"return {format_figure(before)} → {format_figure(after)} "
                    f"({'+' if delta >= 0 else ''}{format_figure(delta)})", good=delta > 0)


SPEC = RunKindSpec(
    name="agent",
    label="Language model playing a Gymnasium environment",
    job="llmrl_core.agent.job:run_agent_job",
    config_class="llmrl_core.agent.config:AgentConfig",
    step_label="environment steps",  # its runs log at the environment step count (summed over environments)
    main_metric="charts/episodic_return",
    headline=describe_agent_result,
    clone_page="pages/gymnasium/agent.py",
    compare_metrics=("charts/episodic_return",),
    table_columns={"model": "model", "algorithm": "algo"},
    cli="llmrl_core.agent.cli",
    presets="llmrl_core.agent.config:AGENT_PRESETS",
)
