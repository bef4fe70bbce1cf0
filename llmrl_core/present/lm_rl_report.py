"""The report sections of an RL fine-tuning run (the "lm_rl" kind's RunKindSpec.report): its goal in words,
the config fields worth showing, the reward and health curves, the before/after table, the health
alarms and the best and worst samples. present/report.py lays them out; text from the run is escaped.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from llmrl_core.present.report import MAX_POINTS, ReportParts, cut_text, escape_text, render_table

MAX_BEFORE_AFTER_ROWS = 20  # rows of the before/after table
N_SAMPLES = 3  # best and worst samples shown per run
CONFIG_FIELDS = (  # the config summary of an RL fine-tuning run, in this order
    "model", "algorithm", "steps", "prompt_set", "rewards", "prompts_per_step", "num_generations", "max_new_tokens",
    "temperature", "learning_rate", "beta", "epsilon", "loss_type", "use_lora", "lora_r", "seed",
)
SMALL_CHART_KEYS = ("kl", "entropy", "length", "zero_std")  # llmrl_core.present.lm_rl.ChartSpec keys shown


def describe_lm_rl_goal(config: Mapping[str, Any]) -> str:
    """'Fine-tune the language model X (LoRA adapters) with GRPO so that ... score higher on ...'."""
    rewards = ", ".join(_describe_reward(spec) for spec in config.get("rewards") or []) or "its rewards"
    tuning = "LoRA adapters" if config.get("use_lora") else "all weights"
    return (f"Fine-tune the language model {config.get('model', '?')} ({tuning}) with "
            f"{str(config.get('algorithm', '?')).upper()} so that its answers to the {config.get('prompt_set', '?')!r} "
            f"prompts score higher on {rewards}.")


def _describe_reward(spec: Mapping[str, Any]) -> str:
    """'Sentiment (VADER) x 1' from a reward spec."""
    try:
        from llmrl_core.lm_rl.rewards import REWARD_TYPES

        label = REWARD_TYPES[spec.get("type")].label
    except (KeyError, ImportError, TypeError):
        label = str(spec.get("type", "?"))
    name = spec.get("name")
    weight = spec.get("weight", 1.0)
    return f"{label}{f' ({name})' if name else ''} × {weight:g}" if isinstance(weight, (int, float)) else label


def make_lm_rl_curves(run: Mapping[str, Any], metrics: pd.DataFrame) -> list[go.Figure]:
    """The reward (with each reward's mean) and the key health metrics: KL, entropy, length, zero-std groups."""
    from llmrl_core.present import lm_rl as lm_figures
    from llmrl_core.runs.reader import downsample

    specs = [s for s in lm_figures.make_chart_specs(list(metrics.columns)) if s.key in SMALL_CHART_KEYS]
    wanted = ["reward", "reward_std", *[c for c in metrics.columns if c.startswith("rewards/")],
              *[n for s in specs for n in s.names]]
    frame = downsample(metrics[["step", *[c for c in dict.fromkeys(wanted) if c in metrics.columns]]], MAX_POINTS)
    return [lm_figures.make_reward_figure(frame), *(lm_figures.make_small_figure(frame, spec) for spec in specs)]


def render_before_after_html(result: Any) -> str:
    """The before/after summary and a table of answers side by side."""
    if result is None:
        return ('<p class="note">No before/after comparison was computed for this run (the Runs page computes one '
                "on held-out prompts).</p>")
    rows = result.rows.head(MAX_BEFORE_AFTER_ROWS)
    table = pd.DataFrame({"prompt": rows["prompt"], "before (base model)": rows["before"],
                          "reward before": rows["before_reward"], "after (checkpoint)": rows["after"],
                          "reward after": rows["after_reward"]})
    more = len(result.rows) - len(rows)
    note = f'<p class="note">{more} more answers not shown.</p>' if more > 0 else ""
    return (f'<p class="headline">{escape_text(result.summary())}</p>'
            f'<p class="note">Base model {escape_text(result.base_spec)}; checkpoint {escape_text(result.checkpoint)}.</p>'
            + render_table(table, text_columns=("prompt", "before (base model)", "after (checkpoint)")) + note)


def render_alarms_html(alarms: Sequence[Any]) -> str:
    """Each alarm that fired, with its evidence, examples and what to change."""
    if not alarms:
        return '<p class="ok">No alarm: none of the reward-hacking or health checks fired.</p>'
    parts = []
    for alarm in alarms:
        since = f" (from step {alarm.from_step})" if alarm.from_step is not None else ""
        examples = "".join(f'<blockquote class="text">{escape_text(cut_text(t, 400))}</blockquote>' for t in alarm.examples)
        parts.append(
            f'<div class="alarm {escape_text(alarm.severity)}"><div><span class="badge">{escape_text(alarm.severity)}</span>'
            f"<strong>{escape_text(alarm.title)}</strong>{escape_text(since)}</div><p>{escape_text(alarm.what_it_saw)}</p>"
            + (f'<div class="note">Examples:</div>{examples}' if examples else "")
            + f"<p><em>What to change:</em> {escape_text(alarm.suggestion)}</p></div>"
        )
    return "".join(parts)


def read_best_and_worst_samples(store: Any, run_id: int, n: int = N_SAMPLES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The n samples with the highest and the n with the lowest total reward over the whole run (newest first on
    ties), as RunStore.read_samples frames whose extras hold only advantage and finish_reason.

    Two indexed queries ordered by the stored total, so a long run's per-token extras are never read.
    """
    def query(order: str) -> pd.DataFrame:
        rows = store.fetch_rows(
            "SELECT id, step, prompt, completion, rewards, json_extract(extras, '$.advantage'),"
            " json_extract(extras, '$.finish_reason') FROM samples WHERE run_id=?"
            " ORDER BY json_extract(rewards, '$.total') IS NULL,"
            f" json_extract(rewards, '$.total') {order}, step DESC LIMIT ?", (int(run_id), int(n)))
        records = [{"id": i, "step": step, "prompt": prompt, "completion": completion, "rewards": json.loads(rewards or "{}"),
                    "extras": {"advantage": advantage, "finish_reason": finish}}
                   for i, step, prompt, completion, rewards, advantage, finish in rows]
        return pd.DataFrame(records, columns=["id", "step", "prompt", "completion", "rewards", "extras"])

    return query("DESC"), query("ASC")


def render_samples_html(store: Any, run_id: int) -> str:
    """The best and worst samples by total reward, with every reward."""
    from llmrl_core.present.lm_rl import make_samples_frame

    best, worst = (make_samples_frame(f) for f in read_best_and_worst_samples(store, run_id))
    if best.empty:
        return '<p class="note">No samples were stored.</p>'
    drop = [c for c in ("sample", "advantage") if c in best.columns]
    return (f"<h4>Best {len(best)}</h4>" + render_table(best.drop(columns=drop), ("prompt", "completion"))
            + f"<h4>Worst {len(worst)}</h4>" + render_table(worst.drop(columns=drop), ("prompt", "completion")))


def _before_after_section(store: Any, run: Mapping[str, Any], metrics: pd.DataFrame, before_after: Any) -> str:
    return render_before_after_html(before_after)


def _alarms_section(store: Any, run: Mapping[str, Any], metrics: pd.DataFrame, before_after: Any) -> str:
    from llmrl_core.lm_rl.alarms import read_run_alarms

    return render_alarms_html(read_run_alarms(store, int(run["id"]), metrics))


def _samples_section(store: Any, run: Mapping[str, Any], metrics: pd.DataFrame, before_after: Any) -> str:
    return render_samples_html(store, int(run["id"]))


def read_stored_before_after(store: Any, run_id: int) -> Any:
    """The newest before/after comparison stored with the run (llmrl_core.lm_rl.evaluate), or None."""
    from llmrl_core.lm_rl.evaluate import read_latest_before_after

    return read_latest_before_after(store, run_id)


REPORT_PARTS = ReportParts(
    describe_goal=describe_lm_rl_goal,
    config_fields=CONFIG_FIELDS,
    main_metrics=("reward",),
    make_curves=make_lm_rl_curves,
    sections=(("Before / after", _before_after_section),
              ("Health and reward-hacking alarms", _alarms_section),
              ("Best and worst samples", _samples_section)),
    read_before_after=read_stored_before_after,
)
