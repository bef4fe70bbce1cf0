"""A sweep drawn and written up: its trials as a table, a parallel-coordinates plot, and one offline HTML report.

The parallel-coordinates plot (Plotly's Parcoords) has one axis per swept field and one for the main
metric, one line per run with a result, coloured by that metric: which settings lead to good results
shows as bundles of bright lines. A log-range field is drawn on a log10 axis with its real values as
tick labels; a field of choices (true/false, names) is drawn as evenly spaced categories.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go

from llmrl_core.present.common import escape_plotly_text
from llmrl_core.runs.sweep_spec import SweepSpec, format_value

STATUS_ORDER = ("running", "paused", "queued", "completed", "pruned", "stopped", "failed", "interrupted")


def _axis(param: Any, column: pd.Series) -> dict:
    """One Parcoords dimension for a swept field (log10 for a log range, categories for non-numbers)."""
    label = escape_plotly_text(param.name)
    values = list(column)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        numbers = [float(v) for v in values]
        if param.log and all(v > 0 for v in numbers):
            logs = [math.log10(v) for v in numbers]
            lo, hi = math.floor(min(logs)), math.ceil(max(logs))
            ticks = list(range(lo, hi + 1)) if hi > lo else [lo]
            return dict(label=f"{label} (log)", values=logs, tickvals=ticks, ticktext=[f"{10 ** t:g}" for t in ticks])
        return dict(label=label, values=numbers)
    categories = list(dict.fromkeys(format_value(v) for v in (param.values or values)))
    index = {c: i for i, c in enumerate(categories)}
    return dict(label=label, values=[index.get(format_value(v), 0) for v in values],
                tickvals=list(range(len(categories))), ticktext=[escape_plotly_text(c) for c in categories],
                range=[-0.5, len(categories) - 0.5])


def make_parallel_figure(trials: pd.DataFrame, spec: SweepSpec, metric: str, height: int = 380) -> go.Figure | None:
    """Parallel coordinates of the runs with a result (None when fewer than two have one)."""
    scored = trials[trials["value"].notna()]
    if len(scored) < 2:
        return None
    dims = [_axis(p, scored[p.name]) for p in spec.params]
    if len(spec.seeds) > 1:
        dims.append(dict(label="seed", values=scored["seed"].astype(float).tolist(),
                         tickvals=list(spec.seeds), ticktext=[str(s) for s in spec.seeds]))
    values = scored["value"].astype(float).tolist()
    dims.append(dict(label=escape_plotly_text(metric), values=values))
    fig = go.Figure(go.Parcoords(line=dict(color=values, colorscale="Viridis", showscale=True,
                                           colorbar=dict(title=dict(text=escape_plotly_text(metric.split("/")[-1])))),
                                 dimensions=dims))
    fig.update_layout(height=height, margin=dict(l=60, r=60, t=40, b=20))
    return fig


def format_trials_table(trials: pd.DataFrame, spec: SweepSpec, best_trial: int | None) -> pd.DataFrame:
    """The trials as people read them: best marked, values formatted, durations in seconds, newest state."""
    names = [p.name for p in spec.params]
    out = pd.DataFrame({
        "best": ["★" if best_trial is not None and t == best_trial else "" for t in trials["trial"]],
        "trial": trials["trial"], "seed": trials["seed"],
        **{n: [format_value(v) for v in trials[n]] for n in names},
        "status": trials["status"],
        "result": [f"{v:.4g}" if v == v else "" for v in trials["value"]],
        "seconds": [f"{s:.0f}" if s == s else "" for s in trials["seconds"]],
        "progress": [f"{int(st)}/{int(tot)}" if tot == tot and tot else str(int(st)) for st, tot in
                     zip(trials["step"], trials["total_steps"])],
        "run": trials["run_id"],
    })
    return out


def format_sets_table(sets: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The parameter sets with their mean over seeds and its 95% CI."""
    return pd.DataFrame({
        "best": ["★" if b else "" for b in sets["is_best"]], "trial": sets["trial"],
        **{n: [format_value(v) for v in sets[n]] for n in names},
        "seeds done": [f"{d}/{r}" for d, r in zip(sets["runs_done"], sets["runs"])],
        "mean": [f"{v:.4g}" if v == v else "" for v in sets["mean"]],
        "95% CI": [f"{lo:.4g} to {hi:.4g}" if lo == lo else "" for lo, hi in zip(sets["low"], sets["high"])],
    })


def render_sweep_report_html(store: Any, sweep_id: int) -> str:
    """The sweep report as one self-contained HTML page (plotly.js inside; every text escaped)."""
    from llmrl_core.present.report import escape_text, render_figure_html, render_table, wrap_report_page
    from llmrl_core.runs.sweeps import describe_best, read_sweep_view

    view = read_sweep_view(store, sweep_id)
    sweep, spec = view.sweep, view.spec
    title = f"Sweep #{sweep['id']}: {sweep['name']}"
    body = [f"<h1>{escape_text(title)}</h1>",
            f'<p class="meta">LLM·RL Workbench sweep report, written {escape_text(time.strftime("%Y-%m-%d %H:%M"))}. '
            "This file works offline: everything it shows is inside it.</p>",
            f"<p>{escape_text(sweep['kind'])} runs · {escape_text(spec.describe())} · status {escape_text(sweep['status'])}"
            f"{' · pruning on' if spec.prune else ''}. Result of a run: the mean of its last logged values of "
            f"{escape_text(view.metric)} ({'higher' if view.higher_is_better else 'lower'} is better).</p>",
            f"<p><strong>{escape_text(describe_best(view))}</strong></p>"]
    fig = make_parallel_figure(view.trials, spec, view.metric)
    if fig is not None:
        body.append("<h2>Every run</h2>" + render_figure_html(fig))
    body.append("<h2>Parameter sets (mean over seeds)</h2>" + render_table(format_sets_table(view.sets, view.names)))
    body.append("<h2>Trials</h2>" + render_table(format_trials_table(view.trials, spec, view.best_trial)))
    return wrap_report_page(title, body)


def write_sweep_report(store: Any, sweep_id: int, out_path: str | Path) -> Path:
    """Write the sweep report to `out_path` (under a temporary name, then renamed); return the path."""
    from llmrl_core.present.report import write_page

    return write_page(out_path, lambda: render_sweep_report_html(store, sweep_id), example="sweep.html")
