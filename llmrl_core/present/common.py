"""Figure and HTML builders shared by the pages: plain data in, plotly figures or escaped HTML out.

Nothing here imports Streamlit; everything that comes from a model or a user file is passed
through html.escape before it becomes markup.
"""

from __future__ import annotations

import html
import math
import re
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

_TOKEN_CSS = (
    "font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9rem; line-height: 1.9;"
    " white-space: pre-wrap; word-break: break-word;"
)

# ----------------------------------------------------------------------------- escaping (one place for all of it)

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: object) -> str:
    """Backslash-escape Markdown (and Streamlit's :colour[] / :emoji: / $math$) so text shows literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def escape_plotly_text(text: object) -> str:
    """Text Plotly shows literally: HTML-escaped, and % as &#37; so '%{y}' is not a template."""
    return html.escape(str(text), quote=True).replace("%", "&#37;")


def format_token(token: str) -> str:
    """Escape a token for HTML and make whitespace visible enough to hover over."""
    shown = html.escape(token, quote=True)
    shown = shown.replace("\n", "↵<br>").replace("\t", "⇥")
    return shown if shown.strip() else shown.replace(" ", "&nbsp;") or "∅"


def _logprob_colour(logprob: float) -> str:
    """Green for likely tokens, through yellow, to red for unlikely ones (by probability)."""
    p = math.exp(max(min(logprob, 0.0), -50.0))
    return f"hsl({120 * p:.0f}, 75%, 82%)"


def _diverging_colour(value: float, scale: float) -> str:
    """Blue for negative, white for zero, red for positive values, saturating at |value| = scale."""
    x = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    hue = 0 if x >= 0 else 220
    light = 100 - 38 * abs(x)
    return f"hsl({hue}, 80%, {light:.0f}%)"


def render_token_html(
    tokens: Sequence[str],
    values: Sequence[float],
    tooltips: Sequence[str] | None = None,
    mode: str = "logprob",
    scale: float | None = None,
    struck: set[int] | frozenset[int] = frozenset(),
) -> str:
    """Tokens as coloured spans with a hover tooltip each; each span carries its index (data-i) for pickers.

    mode 'logprob': colour by probability (green likely, red unlikely). mode 'diverging':
    colour by sign and size of a value such as an advantage, a log-prob ratio or a per-token
    KL (blue negative, red positive), saturating at `scale` (default: the largest |value|).
    Tokens whose index is in `struck` are struck through (e.g. where the update clipped the ratio).
    """
    if mode == "diverging" and scale is None:
        finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
        scale = max(finite) if finite else 1.0
    spans = []
    for i, token in enumerate(tokens):
        value = values[i] if i < len(values) else float("nan")
        ok = value is not None and math.isfinite(value)
        if mode == "logprob":
            colour = _logprob_colour(value) if ok else "#eee"
        else:
            colour = _diverging_colour(value, scale or 1.0) if ok else "#eee"
        tip = tooltips[i] if tooltips and i < len(tooltips) else (f"{value:.4f}" if ok else "")
        strike = " text-decoration: line-through;" if i in struck else ""
        spans.append(
            f'<span class="tok" data-i="{i}" title="{html.escape(tip, quote=True)}" '
            f'style="background:{colour}; border-radius:3px; padding:1px 0; margin:0 1px;{strike}">{format_token(token)}</span>'
        )
    return f'<div class="token-view" style="{_TOKEN_CSS}">{"".join(spans)}</div>'


def make_logprob_tooltips(logprobs: Sequence[float], alternatives: Sequence[Sequence[tuple[str, float]]]) -> list[str]:
    """Hover text per token: its probability and the top alternatives with theirs."""
    tips = []
    for i, lp in enumerate(logprobs):
        lines = [f"p = {math.exp(lp):.3f}  (log-prob {lp:.3f})"]
        if i < len(alternatives) and alternatives[i]:
            lines.append("top alternatives:")
            lines += [f"  {alt!r}  {math.exp(v):.3f}" for alt, v in alternatives[i]]
        tips.append("\n".join(lines))
    return tips


MARKERS_UP_TO = 60  # points per series drawn with markers


def make_metric_figure(frame: pd.DataFrame, names: Sequence[str], title: str = "", x: str = "step",
                       band: dict[str, str] | None = None, hline: float | None = None,
                       hline_label: str = "") -> go.Figure:
    """A line chart of metric columns against `x`; `band` maps a mean column to its std column for a ± band."""
    fig = go.Figure()
    band = band or {}
    for name in names:
        if name not in frame.columns:
            continue
        data = frame[[x, name]].dropna()
        if name in band and band[name] in frame.columns:
            std = frame.loc[data.index, band[name]].fillna(0)
            fig.add_trace(go.Scatter(
                x=pd.concat([data[x], data[x][::-1]]), y=pd.concat([data[name] + std, (data[name] - std)[::-1]]),
                fill="toself", line=dict(width=0), opacity=0.2, hoverinfo="skip", showlegend=False, name=f"{name} ± std",
            ))
        # Markers only while they are few: on a long live run they are most of what the browser redraws per step.
        mode = "lines+markers" if len(data) <= MARKERS_UP_TO else "lines"
        fig.add_trace(go.Scatter(x=data[x], y=data[name], mode=mode, name=name, marker=dict(size=4)))
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dash", line_color="green", annotation_text=hline_label)
    fig.update_layout(title=title, height=300, margin=dict(l=40, r=10, t=40 if title else 10, b=30),
                      legend=dict(orientation="h", y=-0.2), xaxis_title=x)
    return fig
