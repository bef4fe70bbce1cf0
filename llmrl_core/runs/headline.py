"""One line per run that says whether it worked: what a front page or a report leads with.

Each run kind declares its own headline (`RunKindSpec.headline`, e.g. LM runs "reward 0.12 → 0.71
(+0.59)", gym runs "solved at 13,000 steps"); a kind without one gets "5 of 20 steps". The helpers
here are what those headlines are made of: `describe_change` (the mean of the first and last
WINDOW logged steps) and `read_metric_values` (one metric, so a front page listing the latest runs
stays cheap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from llmrl_core.runs.kinds import find_kind

WINDOW = 5  # logged steps averaged at each end: one noisy step should not make the headline


@dataclass(frozen=True)
class Headline:
    """A run's result in words, and whether it counts as a success (None: not known)."""

    text: str
    good: bool | None = None


def format_figure(value: float) -> str:
    """A figure for a headline: '1,234' from 100 up, '0.12' below."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def read_metric_values(store: Any, run_id: int, name: str) -> pd.Series:
    """One metric of a run, one value per logged step (the last logged wins), in step order."""
    long = store.read_metrics(int(run_id), names=[name])
    if long.empty:
        return pd.Series(dtype=float)
    return long.drop_duplicates("step", keep="last")["value"].astype(float)


def describe_change(values: pd.Series, label: str) -> Headline:
    """'label first → last (+delta)' from a metric series (NaNs skipped); 'no label logged yet' when empty."""
    clean = values.dropna()
    clean = clean[clean.map(math.isfinite)]
    if clean.empty:
        return Headline(f"no {label} logged yet")
    first, last = float(clean.head(WINDOW).mean()), float(clean.tail(WINDOW).mean())
    if len(clean) <= WINDOW:
        return Headline(f"{label} {format_figure(last)}")
    delta = last - first
    return Headline(f"{label} {format_figure(first)} → {format_figure(last)} "
                    f"({'+' if delta >= 0 else ''}{format_figure(delta)})", good=delta > 0)


def describe_progress(run: Mapping[str, Any]) -> Headline:
    """'5 of 20 steps' (or '5 steps' without a total): the headline of a kind that declares none."""
    total = run.get("total_steps")
    step = int(run.get("step") or 0)
    return Headline(f"{step} of {int(total)} steps" if total == total and total else f"{step} steps")


def describe_run_headline(store: Any, run: Mapping[str, Any]) -> Headline:
    """The headline for one run (a dict as RunStore.get_run returns it), as its kind declares it."""
    spec = find_kind(str(run["kind"]))
    if spec is None or spec.headline is None:
        return describe_progress(run)
    return spec.headline(store, run)
