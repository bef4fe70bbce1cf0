"""Figures, tables and token HTML for the RL fine-tuning dashboard: plain data in, plotly or escaped HTML out.

The metric names are the trainer's (TRL's): reward, reward_std, rewards/<name>/mean and /std,
frac_reward_zero_std, kl, entropy, loss/policy, loss/value, clip_ratio/..., completions/...,
step_time, tokens_per_second. Nothing here imports Streamlit; every string that came from a
model or a user (prompts, completions, tokens, reward names) is escaped by the HTML builders or
left to st.dataframe, which shows text as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go

from llmrl_core.present.common import make_metric_figure, render_token_html

# Token colourings offered by the samples inspector: label -> what it shows.
TOKEN_COLOURINGS = {
    "update push": "What this step's update did to each token, -dL/d(log π): red more likely, blue less likely.",
    "advantage": "Advantage: red tokens were pushed up by this update, blue ones pushed down.",
    "log-prob ratio": "log(π_new / π_old) per token: 0 (white) on the first epoch; later epochs show how far the update moved.",
    "per-token KL": "KL to the reference model per token (only when beta > 0).",
    "log-prob": "Log-probability the policy gave each sampled token (green likely, red unlikely).",
}



@dataclass(frozen=True)
class ChartSpec:
    """One small chart of the dashboard: a title, the metric columns it draws, an optional ± band map."""

    key: str
    title: str
    names: tuple[str, ...]
    band: tuple[tuple[str, str], ...] = ()


def list_reward_names(columns: Sequence[str]) -> list[str]:
    """Reward names logged as rewards/<name>/mean, in logged order."""
    return [c[len("rewards/"):-len("/mean")] for c in columns if c.startswith("rewards/") and c.endswith("/mean")]


def make_chart_specs(columns: Sequence[str]) -> list[ChartSpec]:
    """The small charts worth drawing for the metrics present (PPO's value loss only when logged, KL only with beta > 0)."""
    present = set(columns)
    specs = [
        ChartSpec("kl", "KL to the reference (kl)", ("kl",)),
        ChartSpec("entropy", "Entropy (nats per token)", ("entropy",)),
        ChartSpec("policy_loss", "Policy loss (loss/policy)", ("loss/policy",)),
        ChartSpec("value_loss", "Value loss (loss/value, PPO)", ("loss/value",)),
        ChartSpec("clip", "Clip ratio", ("clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean")),
        ChartSpec("length", "Completion length (tokens)",
                  ("completions/mean_length", "completions/min_length", "completions/max_length")),
        ChartSpec("zero_std", "Groups with one reward for all samples (frac_reward_zero_std)", ("frac_reward_zero_std",)),
        ChartSpec("step_time", "Step time (s)", ("step_time", "time/generation", "time/update")),
        ChartSpec("tokens", "Completion tokens per second (tokens_per_second)", ("tokens_per_second",)),
    ]
    return [s for s in specs if any(n in present for n in s.names)]


def make_reward_figure(frame: pd.DataFrame) -> go.Figure:
    """Mean reward ± its std, overall and per reward (rewards/<name>/mean ± rewards/<name>/std), against step."""
    names = ["reward"] if "reward" in frame.columns else []
    band = {"reward": "reward_std"}
    for name in list_reward_names(list(frame.columns)):
        column = f"rewards/{name}/mean"
        if "reward" in frame.columns and frame[column].equals(frame["reward"]):
            continue  # one reward of weight 1: its line would sit exactly on the total's
        names.append(column)
        band[column] = f"rewards/{name}/std"
    fig = make_metric_figure(frame, names, title="Reward (mean ± std)", band=band)
    fig.update_layout(height=340)
    return _whole_steps(fig, frame)


def make_small_figure(frame: pd.DataFrame, spec: ChartSpec) -> go.Figure:
    """One of the small charts named by `spec`."""
    fig = make_metric_figure(frame, list(spec.names), title=spec.title, band=dict(spec.band))
    fig.update_layout(height=260, title_font_size=13)
    if spec.key == "zero_std":
        fig.update_yaxes(range=[-0.05, 1.05])
    return _whole_steps(fig, frame)


def _whole_steps(fig: go.Figure, frame: pd.DataFrame) -> go.Figure:
    """Tick every step while there are few (plotly would otherwise label 1.5, 2.5, ...)."""
    if "step" in frame.columns and len(frame) and frame["step"].max() - frame["step"].min() <= 12:
        fig.update_xaxes(dtick=1)
    return fig


def compares_within_groups(algorithm: str) -> bool:
    """True for an algorithm whose advantages compare the samples of one prompt (its Algorithm.needs_groups)."""
    from llmrl_core.lm_rl.algorithms.registry import REGISTRY

    return algorithm in REGISTRY and REGISTRY[algorithm].needs_groups


def explain_flat_rewards(frame: pd.DataFrame, algorithm: str) -> str | None:
    """A short explanation when the latest step had frac_reward_zero_std = 1 (no reward signal), else None."""
    if "frac_reward_zero_std" not in frame.columns:
        return None
    values = frame["frac_reward_zero_std"].dropna()
    if values.empty or values.iloc[-1] < 1.0:
        return None
    streak = 0
    for v in values.iloc[::-1]:
        if v < 1.0:
            break
        streak += 1
    span = "the latest step" if streak == 1 else f"the last {streak} steps"
    if compares_within_groups(algorithm):
        why = ("every prompt's samples got the same reward, so each sample's advantage (its reward minus its "
               "group's mean) is 0 and the policy loss is 0: the model learns nothing from such a step.")
    else:
        why = "every sample in the batch got the same reward, so there is nothing to prefer and the update is (near) 0."
    return (f"Flat rewards on {span} (frac_reward_zero_std = 1): {why} Try a higher temperature or num_generations "
            "for more varied samples, or a reward that tells samples apart more finely (e.g. partial credit).")


def estimate_eta_seconds(step: int, total: int | None, step_times: Sequence[float]) -> float | None:
    """Seconds left: the mean of the last (up to) 5 step times x steps left; None without data."""
    if not total or step >= total:
        return None
    recent = [t for t in list(step_times)[-5:] if t is not None and math.isfinite(t)]
    if not recent:
        return None
    return (total - step) * sum(recent) / len(recent)


def format_duration(seconds: float | None) -> str:
    """'1 h 02 min', '3 min 20 s', '12 s', or '–'."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def make_samples_frame(samples: pd.DataFrame) -> pd.DataFrame:
    """Samples as a flat table: step, prompt, completion, one column per reward, total, advantage, finish.

    `samples` is RunStore.read_samples's frame (rewards and extras as dicts). Text stays text:
    st.dataframe shows it escaped.
    """
    columns = ["sample", "step", "prompt", "completion"]
    if samples.empty:
        return pd.DataFrame(columns=columns + ["total", "advantage", "finish"])
    reward_names: list[str] = []
    for rewards in samples["rewards"]:
        for name in rewards:
            if name != "total" and name not in reward_names:
                reward_names.append(name)
    rows = []
    for sid, step, prompt, completion, rewards, extras in zip(
            samples["id"], samples["step"], samples["prompt"], samples["completion"], samples["rewards"], samples["extras"]):
        row: dict[str, Any] = {"sample": int(sid), "step": int(step), "prompt": prompt, "completion": completion}
        for name in reward_names:
            row[name] = rewards.get(name)
        row["total"] = rewards.get("total")
        row["advantage"] = extras.get("advantage")
        row["finish"] = extras.get("finish_reason")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=columns + reward_names + ["total", "advantage", "finish"])
    for name in reward_names + ["total", "advantage"]:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def pick_best_and_worst(table: pd.DataFrame, n: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The n highest and n lowest total rewards (ties broken by newest step first)."""
    if table.empty:
        return table, table
    ranked = table.sort_values(["total", "step"], ascending=[False, False], na_position="last")
    worst = table.sort_values(["total", "step"], ascending=[True, False], na_position="last")
    return ranked.head(n), worst.head(n)


def token_values(extras: dict, colouring: str) -> tuple[list[float] | None, str]:
    """Per-token values for a colouring, and a note when they are missing or uninformative."""
    tokens = extras.get("tokens") or []
    n = len(tokens)
    if colouring == "update push":
        from llmrl_core.present.token_objective import push_values

        return push_values(extras)
    if colouring == "advantage":
        if extras.get("token_advantages") is not None:
            return [_num(v) for v in extras["token_advantages"]], "PPO: one GAE advantage per token."
        adv = extras.get("advantage")
        if adv is None:
            return None, "This sample has no advantage stored."
        return [_num(adv)] * n, "One advantage for the whole completion (GRPO, RLOO, REINFORCE): every token shares it."
    if colouring == "log-prob ratio":
        ratios = extras.get("ratio")
        if ratios is None:
            return None, "This sample has no ratios stored."
        values = [math.log(r) if r is not None and r > 0 else float("nan") for r in ratios]
        note = ("With num_epochs = 1 the ratio is exactly 1 (log 0) on every token: the update uses its own samples once."
                if all(abs(v) < 1e-9 for v in values if math.isfinite(v)) else "log(π_new / π_old) on the last epoch.")
        return values, note
    if colouring == "per-token KL":
        kl = extras.get("kl")
        if kl is None:
            return None, "No per-token KL: this run has beta = 0, so no reference model was used."
        return [_num(v) for v in kl], "KL to the reference model on each token (the trainer's estimator)."
    logprobs = extras.get("logprobs")
    if logprobs is None:
        return None, "This sample has no log-probs stored."
    return [_num(v) for v in logprobs], "Log-probability of each sampled token under the policy."


def make_token_tooltips(extras: dict) -> list[str]:
    """Hover text per token: the token and every per-token number stored for it."""
    tokens = extras.get("tokens") or []
    tips = []
    for i, token in enumerate(tokens):
        parts = [repr(token)]
        for label, key in (("log-prob", "logprobs"), ("ratio", "ratio"), ("KL", "kl"), ("advantage", "token_advantages"),
                           ("value", "values")):
            seq = extras.get(key)
            if seq is not None and i < len(seq) and seq[i] is not None:
                parts.append(f"{label} {seq[i]:.4f}")
        if extras.get("token_advantages") is None and extras.get("advantage") is not None:
            parts.append(f"advantage {extras['advantage']:.4f}")
        tips.append(" · ".join(parts))
    return tips


def render_sample_tokens_html(extras: dict, colouring: str, scale: float | None = None) -> tuple[str | None, str]:
    """The completion's tokens coloured by `colouring` (escaped HTML), and a note; (None, note) without data.

    `scale` is the |value| at which colours saturate; pass the largest |advantage| of the step so samples
    compare by colour (default: this sample's own largest |value|).
    """
    tokens = extras.get("tokens")
    if not tokens:
        return None, "No tokens stored for this sample."
    values, note = token_values(extras, colouring)
    if values is None:
        return None, note
    mode = "logprob" if colouring == "log-prob" else "diverging"
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        scale = None
    return render_token_html(tokens, values, make_token_tooltips(extras), mode=mode, scale=scale), note


def _num(value: Any) -> float:
    """A stored number, NaN for null."""
    return float("nan") if value is None else float(value)
