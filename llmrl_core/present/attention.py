"""Figures for the attention explorer: plain arrays and token lists in, plotly figures or escaped SVG out.

Six views (see pages/language_models/attention.py): one head's heatmap, the model view (every layer x head as a
thumbnail, clickable), the head view (lines from each token to what it attends to, as bertviz
draws them, in plain SVG with CSS hover and no JavaScript), the aggregates (head mean and rollout,
drawn with the heatmap), one token's attention as bars, and the difference between two models.

Every token passes through :func:`format_token_label`, which html-escapes it: plotly renders a few
HTML tags in labels (<b>, <br>, ...) and the head view is markup, so a token such as
``<script>`` must arrive as text.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

HEAD_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#ffbb78", "#c5b0d5", "#c49c94")
_MAX_LABEL = 14  # characters of a token shown on an axis


def format_token_label(token: str, max_chars: int = _MAX_LABEL) -> str:
    """A token as a short, escaped, visible label: newlines as ↵, tabs as ⇥, spaces as ␣ at the edges."""
    shown = token.replace("\n", "↵").replace("\t", "⇥").replace("\r", "")
    if not shown:
        shown = "∅"
    elif not shown.strip():
        shown = "␣" * len(shown)
    elif shown[0] == " ":
        shown = "␣" + shown[1:]
    if len(shown) > max_chars:
        shown = shown[: max_chars - 1] + "…"
    return html.escape(shown, quote=True)


def make_axis_labels(tokens: Sequence[str]) -> list[str]:
    """Unique axis labels 'index·token' (plotly merges repeated category names, so indices keep them apart)."""
    return [f"{i}·{format_token_label(t)}" for i, t in enumerate(tokens)]


def style_token_map(fig: go.Figure, n: int, title: str = "") -> go.Figure:
    """Shared layout of query x key maps: token axes, queries top to bottom, a height that grows with n."""
    side = int(min(760, max(360, 14 * n + 160)))
    fig.update_layout(
        title=title, height=side, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        xaxis=dict(title="key (attended to)", tickangle=-60, tickfont=dict(size=10), type="category"),
        yaxis=dict(title="query (attending)", autorange="reversed", tickfont=dict(size=10), type="category"),
        plot_bgcolor="#fafafa",
    )
    return fig


def make_head_heatmap(
    weights: np.ndarray,
    tokens: Sequence[str],
    title: str = "",
    n_prompt: int | None = None,
    colorscale: str = "Blues",
    value_name: str = "weight",
    scale_without_first: bool = False,
) -> go.Figure:
    """Query tokens (rows) x key tokens (columns) for one head or an aggregate; hover shows the exact weight.

    Cells above the diagonal (the future, masked by the causal mask) are left blank. A dashed
    line marks where the prompt ends and the completion starts when `n_prompt` is inside the text.
    `scale_without_first` sets the colour range from keys 1.. only, so a head that parks most of
    its weight on the first token (an attention sink) still shows where the rest goes; the hover
    keeps the exact values.
    """
    w = np.asarray(weights, dtype=np.float32)  # (T, T)
    n = w.shape[0]
    z = np.where(np.tril(np.ones((n, n), dtype=bool)), w, np.nan)  # (T, T), future blank
    top = float(np.nanmax(z[1:, 1:])) if scale_without_first and n > 1 else float(np.nanmax(z)) if n else 1.0
    labels = make_axis_labels(tokens)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=labels, y=labels, colorscale=colorscale, zmin=0.0, zmax=max(top, 1e-6),
            hovertemplate=f"query %{{y}}<br>key %{{x}}<br>{value_name} %{{z:.6f}}<extra></extra>",
            colorbar=dict(title=value_name, thickness=12),
        )
    )
    if n_prompt is not None and 0 < n_prompt < n:
        edge = n_prompt - 0.5
        for axis in ("x", "y"):
            coords = dict(x0=edge, x1=edge, y0=-0.5, y1=n - 0.5) if axis == "x" else dict(y0=edge, y1=edge, x0=-0.5, x1=n - 0.5)
            fig.add_shape(type="line", line=dict(color="#e45756", dash="dash", width=1.5), **coords)
    return style_token_map(fig, n, title)


def make_thumbnail_canvas(weights: np.ndarray, tile: int = 24, scale_without_first: bool = True) -> np.ndarray:
    """All heads' maps pooled to (tile x tile) and laid out as one image, rows = layers, columns = heads.

    (L, H, T, T) -> (L * (t + 1) - 1, H * (t + 1) - 1) uint8 with t = min(tile, T); each thumbnail
    is scaled to its own maximum (255; by default the maximum off the first key column, which
    saturates, so a head's structure shows beside its attention sink); the gaps between tiles and the
    masked future are 0 (white). uint8 keeps the figure small (plotly ships numpy arrays as binary).
    """
    n_layers, n_heads, n = weights.shape[0], weights.shape[1], weights.shape[2]
    t = min(tile, n)
    w = np.asarray(weights, dtype=np.float32)
    if n > t:
        edges = np.linspace(0, n, t + 1).astype(int)[:-1]  # block starts
        counts = np.diff(np.append(edges, n)).astype(np.float32)  # (t,)
        w = np.add.reduceat(np.add.reduceat(w, edges, axis=2), edges, axis=3)  # (L, H, t, t) sums
        w = w / counts[:, None] / counts[None, :]
    scaled = w[..., 1:] if scale_without_first and t > 1 else w  # leave the first key column (a sink) out of the scale
    peak = np.maximum(scaled.max(axis=(2, 3), keepdims=True), 1e-9)  # (L, H, 1, 1)
    thumbs = np.rint(np.minimum(255.0 * w / peak, 255.0)).astype(np.uint8)  # (L, H, t, t)
    thumbs[..., np.triu(np.ones((t, t), dtype=bool), 1)] = 0
    step = t + 1
    canvas = np.zeros((n_layers, step, n_heads, step), dtype=np.uint8)
    canvas[:, :t, :, :t] = thumbs.transpose(0, 2, 1, 3)  # (L, t, H, t)
    return canvas.reshape(n_layers * step, n_heads * step)[:-1, :-1]


def make_model_view(
    weights: np.ndarray,
    selected: tuple[int, int] | None = None,
    tile: int = 24,
    scores: np.ndarray | None = None,
    canvas: np.ndarray | None = None,
) -> go.Figure:
    """Every layer (rows) x head (columns) as a small map in one figure; clicking a tile selects that head.

    Thumbnails are drawn as one heatmap (fast in the browser even for 30 x 9 heads); pass the
    `canvas` from :func:`make_thumbnail_canvas` to skip rebuilding it. A transparent marker on each
    tile's centre carries (layer, head) as customdata, which is what a click selects (a plain list:
    numpy customdata travels as a binary array and comes back from a click event as an object).
    """
    n_layers, n_heads, n = weights.shape[0], weights.shape[1], weights.shape[2]
    t = min(tile, n)
    step = t + 1  # one blank row/column between tiles
    if canvas is None:
        canvas = make_thumbnail_canvas(weights, tile)
    layer_idx, head_idx = np.divmod(np.arange(n_layers * n_heads), n_heads)  # row-major over (layer, head)
    centre = (t - 1) / 2
    extra = [f"<br>entropy contrast {v:.3f}" for v in scores.reshape(-1)] if scores is not None else [""] * len(layer_idx)
    hover = [f"layer {ly}, head {h}{e}<br>click to open" for ly, h, e in zip(layer_idx, head_idx, extra)]
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=canvas, colorscale="Blues", zmin=0, zmax=255, showscale=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=head_idx * step + centre, y=layer_idx * step + centre, mode="markers",
            customdata=np.stack([layer_idx, head_idx], axis=1).tolist(), text=hover, hovertemplate="%{text}<extra></extra>",
            marker=dict(symbol="square", size=max(8, min(28, 520 // max(n_layers, n_heads))), color="rgba(0,0,0,0.01)"),
            showlegend=False, name="heads",
        )
    )
    if selected is not None:
        layer, head = selected
        fig.add_shape(
            type="rect", x0=head * step - 0.8, x1=head * step + t - 0.2, y0=layer * step - 0.8, y1=layer * step + t - 0.2,
            line=dict(color="#e45756", width=2.5),
        )
    fig.update_layout(
        height=int(min(1400, max(300, 26 * n_layers + 80))),
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis=dict(tickvals=[h * step + centre for h in range(n_heads)], ticktext=[f"H{h}" for h in range(n_heads)],
                   side="top", showgrid=False, zeroline=False, range=[-1, n_heads * step - 1]),
        yaxis=dict(tickvals=[ly * step + centre for ly in range(n_layers)], ticktext=[f"L{ly}" for ly in range(n_layers)],
                   autorange="reversed", showgrid=False, zeroline=False),
        plot_bgcolor="white", clickmode="event+select", dragmode=False,
    )
    return fig


def render_head_view_svg(
    weights: np.ndarray,
    tokens: Sequence[str],
    heads: Sequence[int],
    threshold: float = 0.02,
    focus: int | None = None,
    max_lines: int = 6000,
) -> str:
    """bertviz's head view as self-contained SVG: each token on the left sends lines to the tokens it attends to on the right.

    `weights` is one layer, (H, T, T); one colour per chosen head, line opacity and width by weight.
    Lines below `threshold` are dropped (and at most `max_lines` strongest kept) so long texts stay
    light. Hovering a token on the left shows only its lines (CSS :has, no JavaScript); `focus`
    fixes one query token from the server side instead.
    """
    w = np.asarray(weights, dtype=np.float32)
    n = w.shape[-1]
    row_h, width, left_x, right_x = 18, 560, 150, 410
    height = n * row_h + 20
    lines: list[tuple[float, str]] = []
    for slot, head in enumerate(heads):
        colour = HEAD_COLOURS[slot % len(HEAD_COLOURS)]
        for q in range(n) if focus is None else [focus]:
            for k in range(q + 1):
                value = float(w[head, q, k])
                if value < threshold:
                    continue
                y1, y2 = 14 + q * row_h, 14 + k * row_h
                lines.append((value, (
                    f'<line class="q{q}" x1="{left_x + 4}" y1="{y1 - 4}" x2="{right_x - 4}" y2="{y2 - 4}" '
                    f'stroke="{colour}" stroke-opacity="{min(1.0, 0.15 + value):.3f}" '
                    f'stroke-width="{0.5 + 4.0 * value:.2f}"><title>head {head}: {value:.4f}</title></line>'
                )))
    lines.sort(key=lambda pair: pair[0])
    kept = [markup for _, markup in lines[-max_lines:]]
    left = "".join(
        f'<text class="tok q{i}" x="{left_x}" y="{10 + i * row_h}" text-anchor="end">{format_token_label(t, 20)}</text>'
        for i, t in enumerate(tokens)
    )
    right = "".join(
        f'<text class="key" x="{right_x}" y="{10 + i * row_h}">{format_token_label(t, 20)}</text>' for i, t in enumerate(tokens)
    )
    hover_rules = "".join(f"svg.hv:has(text.q{i}:hover) line:not(.q{i}){{display:none}}" for i in range(n))
    legend = " ".join(
        f'<span style="color:{HEAD_COLOURS[s % len(HEAD_COLOURS)]};font-weight:600">■ head {h}</span>' for s, h in enumerate(heads)
    )
    return (
        f'<div class="attention-head-view"><style>svg.hv text{{font:12px ui-monospace,monospace;fill:#222}}'
        f"svg.hv text.tok{{cursor:pointer}} svg.hv text.tok:hover{{font-weight:700;fill:#d62728}}{hover_rules}</style>"
        f'<div style="font:13px sans-serif;margin-bottom:4px">{legend}</div>'
        f'<svg class="hv" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(kept)}{left}{right}</svg></div>'
    )


def make_token_bar(
    row: np.ndarray, tokens: Sequence[str], query: int, n_prompt: int | None = None, title: str = ""
) -> go.Figure:
    """What one token attends to: a bar per earlier token (prompt and completion coloured apart)."""
    values = np.asarray(row, dtype=np.float32)[: query + 1]  # (query + 1,)
    labels = make_axis_labels(tokens[: query + 1])
    is_prompt = [n_prompt is None or i < n_prompt for i in range(query + 1)]
    colours = ["#4c78a8" if p else "#f58518" for p in is_prompt]
    fig = go.Figure(
        go.Bar(
            x=labels, y=values, marker_color=colours,
            customdata=[["prompt" if p else "completion"] for p in is_prompt],
            hovertemplate="%{x} (%{customdata[0]})<br>weight %{y:.6f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title, height=360, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        xaxis=dict(type="category", tickangle=-60, tickfont=dict(size=10), title="earlier token (blue: prompt, orange: completion)"),
        yaxis=dict(title="attention weight", rangemode="tozero"),
    )
    return fig


def make_difference_heatmap(diff: np.ndarray, tokens: Sequence[str], title: str = "") -> go.Figure:
    """Second model minus first for one head: red where the second attends more, blue where less."""
    d = np.asarray(diff, dtype=np.float32)  # (T, T)
    n = d.shape[0]
    z = np.where(np.tril(np.ones((n, n), dtype=bool)), d, np.nan)
    bound = max(float(np.nanmax(np.abs(z))) if n else 0.0, 1e-6)
    labels = make_axis_labels(tokens)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=labels, y=labels, colorscale="RdBu_r", zmin=-bound, zmax=bound, zmid=0.0,
            hovertemplate="query %{y}<br>key %{x}<br>difference %{z:+.6f}<extra></extra>",
            colorbar=dict(title="B − A", thickness=12),
        )
    )
    return style_token_map(fig, n, title)


def make_layer_head_grid(values: np.ndarray, title: str = "", value_name: str = "value", colorscale: str = "Reds") -> go.Figure:
    """A (L, H) table of one number per head as a heatmap (e.g. mean |difference| between two models)."""
    v = np.asarray(values, dtype=np.float32)
    fig = go.Figure(
        go.Heatmap(
            z=v, x=[f"H{h}" for h in range(v.shape[1])], y=[f"L{ly}" for ly in range(v.shape[0])], colorscale=colorscale,
            zmin=0.0, zmax=max(float(v.max()) if v.size else 0.0, 1e-6),  # all zeros (identical models) stays white
            hovertemplate=f"%{{y}} %{{x}}<br>{value_name} %{{z:.5f}}<extra></extra>", colorbar=dict(title=value_name, thickness=12),
        )
    )
    fig.update_layout(
        title=title, height=int(min(900, max(260, 20 * v.shape[0] + 80))), margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        yaxis=dict(autorange="reversed", type="category"), xaxis=dict(type="category"),
    )
    return fig
