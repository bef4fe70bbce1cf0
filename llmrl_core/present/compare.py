"""The compare chart (issue 10): runs overlaid on shared axes, one subplot per metric, legend by run name.

Input is `llmrl_core.runs.compare.read_compare_frame`'s long frame. Each run keeps one colour
across subplots and one legend entry (clicking it hides the run everywhere). When the frame is
smoothed, the raw curve is drawn faint behind the smoothed one, as TensorBoard does.

Run and metric names come from users: Plotly renders a subset of HTML in legend, title and hover
text (<b>, <a href>, ...) and fills %{...} templates in names (when a trace has meta) and hover
text, so every such string goes through `escape_plotly_text` and shows as typed.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from llmrl_core.present.common import escape_plotly_text
from llmrl_core.runs.compare import X_AXES

PALETTE = qualitative.Plotly + qualitative.D3  # 20 distinct colours, then they repeat
SUBPLOT_HEIGHT = 260  # px per metric


def make_run_label(run_id: int, run_name: str) -> str:
    """A run's legend label, escaped: '#12 name'."""
    return escape_plotly_text(f"#{int(run_id)} {run_name}")


def make_compare_figure(frame: pd.DataFrame, metrics: Sequence[str] | None = None, x: str = "step",
                        title: str = "", x_title: str | None = None, colour_start: int = 0) -> go.Figure:
    """Curves of every run in `frame` overlaid, one subplot per metric (in `metrics` order, or the frame's).

    Subplots share the x axis (zooming one zooms all); `x` only names the axis (X_AXES), unless `x_title`
    does (a kind's step label: runs/compare.get_x_title). Draw runs of one kind per figure: one panel per
    kind keeps an LM run's updates off CartPole's environment-step axis. `colour_start` offsets the palette,
    so a run keeps a colour of its own across the panels of several kinds.
    """
    axis = x_title if x_title is not None else X_AXES.get(x, x)
    metrics = list(dict.fromkeys(metrics if metrics is not None else frame["metric"].tolist()))
    rows = max(1, len(metrics))
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 0.3 / rows),
                        subplot_titles=[escape_plotly_text(m) for m in metrics] or [""])
    smoothed = not frame.empty and not frame["value"].equals(frame["raw"])
    runs = list(dict.fromkeys(frame["run_id"].tolist())) if not frame.empty else []
    for index, run_id in enumerate(runs):
        colour = PALETTE[(colour_start + index) % len(PALETTE)]
        of_run = frame[frame["run_id"] == run_id]
        label = make_run_label(run_id, str(of_run["run_name"].iloc[0]))
        shown_legend = False
        for row, metric in enumerate(metrics, start=1):
            series = of_run[of_run["metric"] == metric]
            if series.empty:
                continue
            # user text stays out of the template (a name holding %{y} would be filled in): it comes from name and meta
            hover = f"%{{fullData.name}}<br>%{{meta}}<br>{escape_plotly_text(axis)} %{{x}}<br>%{{y:.4g}}<extra></extra>"
            if smoothed:
                fig.add_trace(go.Scatter(
                    x=series["x"], y=series["raw"], mode="lines", line=dict(color=colour, width=1), opacity=0.25,
                    legendgroup=str(run_id), showlegend=False, hoverinfo="skip", name=label,
                ), row=row, col=1)
            fig.add_trace(go.Scatter(
                x=series["x"], y=series["value"], mode="lines", line=dict(color=colour, width=2),
                legendgroup=str(run_id), showlegend=not shown_legend, name=label, meta=escape_plotly_text(metric),
                hovertemplate=hover,
            ), row=row, col=1)
            shown_legend = True
    fig.update_xaxes(title_text=escape_plotly_text(axis), row=rows, col=1)
    top, bottom = (70 if title else 30), 90  # px; the legend sits under the x axis title
    height = SUBPLOT_HEIGHT * rows + top + bottom
    fig.update_layout(
        title=escape_plotly_text(title) if title else None, height=height, margin=dict(l=50, r=10, t=top, b=bottom),
        legend=dict(orientation="h", yanchor="top", y=-55 / (height - top - bottom), x=0), hovermode="closest",
    )
    return fig
