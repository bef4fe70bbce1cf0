"""The stakeholder report (issue 10): one self-contained HTML file per run or per comparison, and a PNG of the main chart.

`write_report(store, run_ids, out_path)` writes a page that opens offline in any browser: Plotly's
JavaScript is inlined once in the head (no CDN), the styles use the system's fonts, and nothing refers
to another file or address. Per run it shows the goal in a sentence, the headline figures, the config
summary and the curves, then the sections its kind declares (`ReportParts`, named by its
RunKindSpec.report): for RL fine-tuning (present/lm_rl_report.py) the before/after table (passed in,
or the newest stored with the run), the health alarms and a handful of the best and worst samples;
for Gymnasium runs (present/gym_report.py) the latest recorded episode in the player (in a sandboxed
srcdoc frame). Several runs add a comparison first, one part per kind of run (an LM run's updates and a
gym run's environment steps never share an axis): their main curves overlaid on the kind's x axis, the
config fields that differ within the kind and each run's final and best values (llmrl_core.runs.compare).

Escaping: every piece of text that came from a run (names, config values, prompts, completions,
reward names, alarm text, log lines) reaches the HTML through html.escape; text drawn by Plotly (which
renders a subset of HTML in legends and titles) is escaped too, and Plotly writes its figure JSON with
<, > and / as \\u escapes, so nothing can close a <script> element.

`write_report_png(store, run_id, out_path)` draws the main chart (the kind's main metrics, its step label
on the x axis and its reference line) with matplotlib's Agg backend (Plotly's PNG export needs kaleido and a browser).
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from llmrl_core.core.errors import InputError

MAX_POINTS = 1000  # a curve keeps at most this many points (first, last, each bucket's min and max)
MAX_TEXT_CHARS = 1200  # a prompt or completion longer than this is cut (the HTML stays readable)
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 1.7rem; margin: 0 0 4px; } h2 { font-size: 1.35rem; margin-top: 40px; border-bottom: 2px solid #e4e7eb; padding-bottom: 4px; }
h3 { font-size: 1.08rem; margin-top: 26px; }
.meta, .note { color: #59636e; font-size: 0.9rem; }
.goal { font-size: 1.1rem; background: #eef6ff; border-left: 4px solid #3b82f6; padding: 10px 14px; }
.headline { font-size: 1.02rem; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 6px 0 12px; }
th, td { border: 1px solid #d8dde3; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.text { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.84rem; max-width: 480px; }
.alarm { border: 1px solid #f0c36d; background: #fff8e6; border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
.alarm.critical { border-color: #e5534b; background: #fff0ef; }
.alarm .badge { font-weight: 600; text-transform: uppercase; font-size: 0.75rem; margin-right: 6px; }
.ok { color: #1a7f37; }
blockquote { margin: 6px 0; padding: 4px 10px; border-left: 3px solid #c9ced6; background: #fafbfc; }
iframe.player { width: 100%; border: 1px solid #d8dde3; border-radius: 6px; }
"""


# ---------------------------------------------------------------------- small text helpers


def escape_text(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def cut_text(text: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """Text cut to `limit` characters, saying how many more there were."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def _fmt(value: Any) -> str:
    """A number to 4 significant digits, text as is, None/NaN as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def render_table(frame: pd.DataFrame, text_columns: Sequence[str] = ()) -> str:
    """A frame as an escaped HTML table; `text_columns` get the long-text style."""
    head = "".join(f"<th>{escape_text(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            if column in text_columns:
                cells.append(f'<td class="text">{escape_text(cut_text(value))}</td>')
            elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{escape_text(_fmt(value))}</td>')
            else:
                cells.append(f"<td>{escape_text(_fmt(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def escape_figure_text(fig: go.Figure) -> go.Figure:
    """Escape trace names (Plotly renders <b>, <a href> ... in legends); for figures built from raw names."""
    from llmrl_core.present.common import escape_plotly_text

    for trace in fig.data:
        if trace.name:
            trace.name = escape_plotly_text(trace.name)
    return fig


def render_figure_html(fig: go.Figure) -> str:
    """A figure as a div and its newPlot call; plotly.js itself is inlined once in the head."""
    height = fig.layout.height or 360
    return fig.to_html(include_plotlyjs=False, full_html=False, config=PLOTLY_CONFIG,
                       default_width="100%", default_height=f"{int(height)}px")


# ---------------------------------------------------------------------- what a run was for


@dataclass(frozen=True)
class ReportParts:
    """What a run kind adds to the report (its RunKindSpec.report names one); the defaults make the plainest report.

    Sections are (title, render) pairs, render(store, run, metrics, before_after) -> HTML whose text
    from the run went through escape_text.
    """

    describe_goal: Callable[[Mapping[str, Any]], str] | None = None  # (config) -> the goal in one sentence
    config_fields: tuple[str, ...] | None = None  # the config summary's fields, in order; None: every field
    main_metrics: tuple[str, ...] = ()  # the main chart's metric: the first of these the run logged
    png_draws_every_main_metric: bool = False  # the PNG draws all main_metrics logged (else the first)
    make_curves: Callable[[Mapping[str, Any], pd.DataFrame], list[go.Figure]] | None = None  # None: first metrics
    sections: tuple[tuple[str, Callable[..., str]], ...] = ()  # after the curves
    read_before_after: Callable[[Any, int], Any] | None = None  # (store, run_id) -> the newest stored result
    reference_line: Callable[[Mapping[str, Any]], float | None] | None = None  # (config) -> a PNG line ('solved')
    y_label: str | None = None  # the PNG's y axis; None: the main metric's name


PLAIN_REPORT = ReportParts()


def get_report_parts(kind: str) -> ReportParts:
    """The report parts the run kind declares (PLAIN_REPORT for a kind with none, or one not installed)."""
    from llmrl_core.runs.kinds import find_kind, load_part

    spec = find_kind(str(kind))
    parts = load_part(spec, "report") if spec is not None else None
    return parts or PLAIN_REPORT


def describe_goal(run: Mapping[str, Any]) -> str:
    """The run's goal in one plain sentence, as its kind words it (model or environment, algorithm, rewards)."""
    parts = get_report_parts(str(run.get("kind")))
    if parts.describe_goal is None:
        return f"A {run.get('kind')} run."
    return parts.describe_goal(run.get("config") or {})


def pick_main_metric(kind: str, columns: Sequence[str]) -> str | None:
    """The metric a run's main chart shows: the first of its kind's main metrics it logged, else its first metric."""
    for name in get_report_parts(kind).main_metrics:
        if name in columns:
            return name
    others = [c for c in columns if c != "step"]
    return others[0] if others else None


def summarize_config(run: Mapping[str, Any]) -> pd.DataFrame:
    """The config fields its kind shows (all of them by default) as a two-column frame."""
    config = dict(run.get("config") or {})
    wanted = get_report_parts(str(run.get("kind"))).config_fields
    fields = list(config) if wanted is None else [f for f in wanted if f in config]
    return pd.DataFrame({"field": fields, "value": [_fmt(config[f]) for f in fields]})


def describe_run_facts(run: Mapping[str, Any], metrics: pd.DataFrame) -> str:
    """Status, steps, duration and the main metric first → last (best), as one line of plain text."""
    parts = [f"Status {run.get('status')}", f"{run.get('step') or 0} of {run.get('total_steps') or '?'} steps"]
    if run.get("started") and (run.get("ended") or run.get("status") == "running"):
        from llmrl_core.present.lm_rl import format_duration

        parts.append(f"ran {format_duration((run.get('ended') or time.time()) - run['started'])}")
    main = pick_main_metric(str(run.get("kind")), list(metrics.columns))
    if main:
        values = pd.to_numeric(metrics[main], errors="coerce").dropna()
        if len(values):
            parts.append(f"{main}: {values.iloc[0]:.4g} at the start → {values.iloc[-1]:.4g} at the end "
                         f"(best {values.max():.4g})")
    solved_at = (run.get("summary") or {}).get("solved_at_step")
    if solved_at is not None:
        parts.append(f"solved at step {solved_at}")
    return "; ".join(parts) + "."


# ---------------------------------------------------------------------- run sections


def _curves_html(run: Mapping[str, Any], metrics: pd.DataFrame) -> str:
    """The run's charts, as its kind draws them (RL: reward and health; gym: returns and losses), else its first metrics."""
    from llmrl_core.present.common import make_metric_figure
    from llmrl_core.runs.reader import downsample

    if metrics.empty or len(metrics.columns) <= 1:
        return '<p class="note">No metrics were logged.</p>'
    parts = get_report_parts(str(run.get("kind")))
    if parts.make_curves is not None:
        figures = parts.make_curves(run, metrics)
    else:
        names = [c for c in metrics.columns if c != "step"][:4]
        figures = [make_metric_figure(downsample(metrics[["step", *names]], MAX_POINTS), names, title="Metrics")]
    return "\n".join(render_figure_html(escape_figure_text(fig)) for fig in figures)


def read_wide_metrics(store: Any, run_id: int) -> pd.DataFrame:
    """A run's metrics, one row per step, read in one pass over plain tuples (runs/reader.MetricsCache):
    several times faster than RunStore.read_metrics_wide on a long run."""
    from llmrl_core.runs.reader import MetricsCache

    cache = MetricsCache(store, int(run_id))
    cache.update()
    return cache.wide


def _run_section(store: Any, run: Mapping[str, Any], before_after: Any, number: int | None = None) -> str:
    """One run's part of the report: the common part, then its kind's sections."""
    from llmrl_core.runs.headline import describe_run_headline  # the same line the front page shows

    run_id = int(run["id"])
    metrics = read_wide_metrics(store, run_id)
    parts = [f'<section id="run-{run_id}"><h2>Run #{run_id}: {escape_text(run.get("name", ""))}</h2>',
             f'<p class="goal">{escape_text(describe_goal(run))}</p>',
             f'<p class="headline">Result: {escape_text(describe_run_headline(store, run).text)}</p>',
             f'<p>{escape_text(describe_run_facts(run, metrics))}</p>']
    if run.get("error"):
        parts.append(f'<p class="note">Error: {escape_text(cut_text(run["error"], 600))}</p>')
    parts.append("<h3>Configuration</h3>" + render_table(summarize_config(run), text_columns=("value",)))
    parts.append("<h3>Curves</h3>" + _curves_html(run, metrics))
    for title, render in get_report_parts(str(run.get("kind"))).sections:
        parts.append(f"<h3>{escape_text(title)}</h3>" + render(store, run, metrics, before_after))
    parts.append("</section>")
    return "\n".join(parts)


def _comparison_section(store: Any, runs: Sequence[Mapping[str, Any]]) -> str:
    """Several runs, grouped by kind: per kind, its runs' main curves overlaid on its own x axis, the config
    fields that differ and each run's final and best values. Runs of different kinds never share an axis or
    a config diff (runs/compare.group_runs_by_kind); the section says so when the kinds differ."""
    from llmrl_core.present.compare import make_compare_figure
    from llmrl_core.runs.compare import (describe_kinds_differ, diff_configs, get_x_title, group_runs_by_kind,
                                         read_compare_frame, summarize_finals)

    by_id = {int(r["id"]): r for r in runs}
    groups = group_runs_by_kind(store, list(by_id))
    mixed = len(groups) > 1
    parts = ["<section id='comparison'><h2>Comparison</h2>"]
    if mixed:
        parts.append(f'<p class="note">{escape_text(describe_kinds_differ(groups))}</p>')
    colour_start = 0
    for group in groups:
        of_kind = f" ({group.label})" if mixed else ""
        ids = list(group.run_ids)
        mains = []
        for run_id in ids:
            main = pick_main_metric(group.kind, store.metric_names(run_id))
            if main and main not in mains:
                mains.append(main)
        if mixed:
            parts.append(f"<h3>{escape_text(group.label)}: " + ", ".join(
                f"#{r} {escape_text(by_id[r].get('name', ''))}" for r in ids) + "</h3>")
        if mains:
            frame = read_compare_frame(store, ids, mains, max_points=MAX_POINTS)
            parts.append(render_figure_html(make_compare_figure(frame, mains, x_title=get_x_title(group),
                                                                colour_start=colour_start)))
        colour_start += len(ids)
        if len(ids) < 2:
            parts.append('<p class="note">Only one run of this kind: no config to compare it with.</p>')
        else:
            diff = diff_configs({f"#{r} {by_id[r].get('name', '')}": by_id[r].get("config") or {} for r in ids})
            if diff.empty:
                parts.append(f'<p class="note">The runs{escape_text(of_kind)} have the same config.</p>')
            else:
                parts.append(f"<h3>Config fields that differ{escape_text(of_kind)}</h3>"
                             + render_table(diff.reset_index(), text_columns=tuple(diff.columns)))
        if mains:
            finals = summarize_finals(store, ids, mains)
            parts.append(f"<h3>Final and best values{escape_text(of_kind)}</h3>" + render_table(finals))
    parts.append("</section>")
    return "\n".join(parts)


# ---------------------------------------------------------------------- the report


def render_report_html(store: Any, run_ids: Sequence[int], before_after: Any = None) -> str:
    """The report page as one HTML string (see write_report)."""

    run_ids = [int(r) for r in dict.fromkeys(run_ids)]
    if not run_ids:
        raise InputError("Name at least one run to report on.")
    runs = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run is None:
            raise InputError(f"No run with id {run_id}; pick one from the runs table.")
        runs.append(run)
    if len(runs) == 1:
        title = f"Report on run #{runs[0]['id']}: {runs[0].get('name', '')}"
    else:
        title = "Comparison of runs " + ", ".join(f"#{r['id']} {r.get('name', '')}" for r in runs)
    body = [f"<h1>{escape_text(title)}</h1>",
            f'<p class="meta">LLM·RL Workbench report, written {escape_text(time.strftime("%Y-%m-%d %H:%M"))}. '
            "This file works offline: everything it shows is inside it.</p>"]
    if len(runs) > 1:
        body.append(_comparison_section(store, runs))
    for run in runs:
        if isinstance(before_after, Mapping):
            result = before_after.get(int(run["id"]))
        elif before_after is not None and len(runs) == 1:
            result = before_after
        else:
            result = None
        read_stored = get_report_parts(str(run.get("kind"))).read_before_after
        if result is None and read_stored is not None:
            result = read_stored(store, int(run["id"]))
        body.append(_run_section(store, run, result))
    return wrap_report_page(title, body)


def wrap_report_page(title: str, body: Sequence[str]) -> str:
    """A whole offline HTML page around escaped `body` parts: the report's style, plotly.js inside."""
    from plotly.offline import get_plotlyjs

    # plotly.js is one script in the head; JSON and text below never contain a raw '<' from a run.
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape_text(title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
            f"<body><main>\n{chr(10).join(body)}\n</main></body></html>\n")


def write_report(store: Any, run_ids: Sequence[int], out_path: str | Path, before_after: Any = None) -> Path:
    """Write the self-contained HTML report of one run, or a comparison of several, to `out_path`; return the path.

    `before_after`: a BeforeAfter for a single run, or {run_id: BeforeAfter}; without one, each RL run's
    newest stored result is shown when it has one. The file is written under a temporary name and renamed,
    so an interrupted write never leaves a half report behind.
    """
    return write_page(out_path, lambda: render_report_html(store, run_ids, before_after))


def write_page(out_path: str | Path, render: Callable[[], str], example: str = "report.html") -> Path:
    """Write the page `render` returns to `out_path` under a temporary name, then rename it (an interrupted write
    never leaves half a page); refuses a folder before rendering anything."""
    out = Path(out_path).expanduser()
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file name such as {out / example}.")
    page = render()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------- the PNG


def _mpl_text(text: str) -> str:
    """Text for matplotlib with mathtext switched off ($ would start a formula)."""
    return str(text).replace("$", r"\$")


def write_report_png(store: Any, run_id: int, out_path: str | Path, dpi: int = 120) -> Path:
    """Draw a run's main chart (reward ± std for RL fine-tuning, the returns with the solved line for gym) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from llmrl_core.runs.kinds import find_kind

    run = store.get_run(int(run_id))
    if run is None:
        raise InputError(f"No run with id {run_id}; pick one from the runs table.")
    metrics = read_wide_metrics(store, int(run_id))
    kind = str(run.get("kind"))
    report_parts = get_report_parts(kind)
    fig = Figure(figsize=(8, 4.2), dpi=dpi)  # no pyplot: no global state, safe in a server thread
    ax = fig.add_subplot(1, 1, 1)
    drawn = report_parts.main_metrics if report_parts.png_draws_every_main_metric else \
        [pick_main_metric(kind, list(metrics.columns))]
    names = [m for m in drawn if m and m in metrics.columns]
    for name in names:
        data = metrics[["step", name] + (["reward_std"] if name == "reward" and "reward_std" in metrics else [])]
        data = data.dropna(subset=[name])
        if data.empty:
            continue
        steps, values = data["step"].to_numpy(float), data[name].to_numpy(float)
        ax.plot(steps, values, label=_mpl_text(name), linewidth=1.6)
        if "reward_std" in data.columns:
            std = data["reward_std"].fillna(0).to_numpy(float)
            ax.fill_between(steps, values - std, values + std, alpha=0.2, linewidth=0)
    line = report_parts.reference_line
    solved = line(run.get("config") or {}) if line is not None else None
    if solved is not None:
        ax.axhline(solved, color="#00a86b", linestyle="--", linewidth=1, label=f"solved ({solved:g})")
    if not names:
        ax.text(0.5, 0.5, "No metrics were logged", ha="center", va="center", transform=ax.transAxes)
    spec = find_kind(kind)
    ax.set_xlabel(spec.step_label if spec is not None else "step")
    ax.set_ylabel(report_parts.y_label or (names[0] if names else ""))
    ax.set_title(_mpl_text(f"Run #{run['id']}: {run.get('name', '')}"), fontsize=11)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out_path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
