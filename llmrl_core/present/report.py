"""The stakeholder report (issue 10): one self-contained HTML file per run or per comparison, and a PNG of the main chart.

`write_report(store, run_ids, out_path)` writes a page that opens offline in any browser: Plotly's
JavaScript is inlined once in the head (no CDN), the styles use the system's fonts, and nothing refers
to another file or address. Per run it shows the goal in a sentence, the headline figures, the config
summary, the curves, the before/after table (when one was computed: passed in, or the newest stored
with the run, llmrl_core.lm_rl.evaluate), the health alarms (llmrl_core.lm_rl.alarms), a handful of the
best and worst samples with their rewards, and for Gymnasium runs the latest recorded episode in the
player (in a sandboxed srcdoc frame). Several runs add a comparison first: their main curves overlaid,
the config fields that differ and each run's final and best values (llmrl_core.runs.compare).

Escaping: every piece of text that came from a run (names, config values, prompts, completions,
reward names, alarm text, log lines) reaches the HTML through html.escape; text drawn by Plotly (which
renders a subset of HTML in legends and titles) is escaped too, and Plotly writes its figure JSON with
<, > and / as \\u escapes, so nothing can close a <script> element.

`write_report_png(store, run_id, out_path)` draws the main chart with matplotlib's Agg backend
(Plotly's PNG export needs kaleido and a browser).
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from llmrl_core.core.errors import InputError

MAX_POINTS = 1000  # a curve keeps at most this many points (first, last, each bucket's min and max)
N_SAMPLES = 3  # best and worst samples shown per run
MAX_BEFORE_AFTER_ROWS = 20  # rows of the before/after table
MAX_TEXT_CHARS = 1200  # a prompt or completion longer than this is cut (the HTML stays readable)
LM_CONFIG_FIELDS = (  # the config summary of an RL fine-tuning run, in this order
    "model", "algorithm", "steps", "prompt_set", "rewards", "prompts_per_step", "num_generations", "max_new_tokens",
    "temperature", "learning_rate", "beta", "epsilon", "loss_type", "use_lora", "lora_r", "seed",
)
GYM_MAIN_METRICS = ("eval/mean_reward", "rollout/ep_rew_mean", "charts/episodic_return")
SMALL_CHART_KEYS = ("kl", "entropy", "length", "zero_std")  # llmrl_core.present.lm_rl.ChartSpec keys shown
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


def _e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _cut(text: Any, limit: int = MAX_TEXT_CHARS) -> str:
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


def _table(frame: pd.DataFrame, text_columns: Sequence[str] = ()) -> str:
    """A frame as an escaped HTML table; `text_columns` get the long-text style."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            if column in text_columns:
                cells.append(f'<td class="text">{_e(_cut(value))}</td>')
            elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{_e(_fmt(value))}</td>')
            else:
                cells.append(f"<td>{_e(_fmt(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _escape_figure_text(fig: go.Figure) -> go.Figure:
    """Escape trace names (Plotly renders <b>, <a href> ... in legends); for figures built from raw names."""
    from llmrl_core.present.common import escape_plotly_text

    for trace in fig.data:
        if trace.name:
            trace.name = escape_plotly_text(trace.name)
    return fig


def _figure_html(fig: go.Figure) -> str:
    """A figure as a div and its newPlot call; plotly.js itself is inlined once in the head."""
    height = fig.layout.height or 360
    return fig.to_html(include_plotlyjs=False, full_html=False, config=PLOTLY_CONFIG,
                       default_width="100%", default_height=f"{int(height)}px")


# ---------------------------------------------------------------------- what a run was for


def describe_goal(run: Mapping[str, Any]) -> str:
    """The run's goal in one plain sentence (from its kind, model or environment, algorithm and rewards)."""
    config, kind = run.get("config") or {}, run.get("kind")
    if kind == "lm_rl":
        rewards = ", ".join(_describe_reward(spec) for spec in config.get("rewards") or []) or "its rewards"
        tuning = "LoRA adapters" if config.get("use_lora") else "all weights"
        return (f"Fine-tune the language model {config.get('model', '?')} ({tuning}) with "
                f"{str(config.get('algorithm', '?')).upper()} so that its answers to the {config.get('prompt_set', '?')!r} "
                f"prompts score higher on {rewards}.")
    if kind == "gym":
        env_id, solved = config.get("env_id", "?"), _solved_return(config)
        goal = f"Train a {str(config.get('algo', '?')).upper()} agent to play {env_id}"
        if solved is not None:
            goal += f" until its evaluation return reaches {solved:g}, Gymnasium's 'solved' line"
        return goal + f", within {config.get('total_steps', '?')} environment steps."
    return f"A {kind} run."


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


def _solved_return(config: Mapping[str, Any]) -> float | None:
    try:
        from llmrl_core.gym.config import ENVS

        return ENVS[config.get("env_id")].solved_return
    except (KeyError, ImportError):
        return None


def pick_main_metric(kind: str, columns: Sequence[str]) -> str | None:
    """The metric a run's main chart shows: reward for RL fine-tuning, the evaluation/episode return for gym."""
    candidates = ("reward",) if kind == "lm_rl" else GYM_MAIN_METRICS if kind == "gym" else ()
    for name in candidates:
        if name in columns:
            return name
    others = [c for c in columns if c != "step"]
    return others[0] if others else None


def summarize_config(run: Mapping[str, Any]) -> pd.DataFrame:
    """The config fields worth showing (all of them for a gym run) as a two-column frame."""
    config = dict(run.get("config") or {})
    if run.get("kind") == "lm_rl":
        fields = [f for f in LM_CONFIG_FIELDS if f in config]
    else:
        fields = list(config)
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
    """The run's charts: reward and key health metrics (RL), return and losses (gym), else its first metrics."""
    from llmrl_core.present import gym as gym_figures
    from llmrl_core.present import lm_rl as lm_figures
    from llmrl_core.present.common import make_metric_figure
    from llmrl_core.runs.reader import downsample

    if metrics.empty or len(metrics.columns) <= 1:
        return '<p class="note">No metrics were logged.</p>'
    kind = run.get("kind")
    figures: list[go.Figure] = []
    if kind == "lm_rl":
        specs = [s for s in lm_figures.make_chart_specs(list(metrics.columns)) if s.key in SMALL_CHART_KEYS]
        wanted = ["reward", "reward_std", *[c for c in metrics.columns if c.startswith("rewards/")],
                  *[n for s in specs for n in s.names]]
        frame = downsample(metrics[["step", *[c for c in dict.fromkeys(wanted) if c in metrics.columns]]], MAX_POINTS)
        figures.append(lm_figures.make_reward_figure(frame))
        figures.extend(lm_figures.make_small_figure(frame, spec) for spec in specs)
    elif kind == "gym":
        frame = downsample(metrics, MAX_POINTS)
        figures.append(gym_figures.make_return_figure(frame, _solved_return(run.get("config") or {})))
        figures.append(gym_figures.make_losses_figure(frame))
    else:
        names = [c for c in metrics.columns if c != "step"][:4]
        figures.append(make_metric_figure(downsample(metrics[["step", *names]], MAX_POINTS), names, title="Metrics"))
    return "\n".join(_figure_html(_escape_figure_text(fig)) for fig in figures)


def _before_after_html(result: Any) -> str:
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
    return (f'<p class="headline">{_e(result.summary())}</p>'
            f'<p class="note">Base model {_e(result.base_spec)}; checkpoint {_e(result.checkpoint)}.</p>'
            + _table(table, text_columns=("prompt", "before (base model)", "after (checkpoint)")) + note)


def _alarms_html(alarms: Sequence[Any]) -> str:
    if not alarms:
        return '<p class="ok">No alarm: none of the reward-hacking or health checks fired.</p>'
    parts = []
    for alarm in alarms:
        since = f" (from step {alarm.from_step})" if alarm.from_step is not None else ""
        examples = "".join(f'<blockquote class="text">{_e(_cut(t, 400))}</blockquote>' for t in alarm.examples)
        parts.append(
            f'<div class="alarm {_e(alarm.severity)}"><div><span class="badge">{_e(alarm.severity)}</span>'
            f"<strong>{_e(alarm.title)}</strong>{_e(since)}</div><p>{_e(alarm.what_it_saw)}</p>"
            + (f'<div class="note">Examples:</div>{examples}' if examples else "")
            + f"<p><em>What to change:</em> {_e(alarm.suggestion)}</p></div>"
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


def _samples_html(store: Any, run_id: int) -> str:
    """The best and worst samples by total reward, with every reward."""
    from llmrl_core.present.lm_rl import make_samples_frame

    best, worst = (make_samples_frame(f) for f in read_best_and_worst_samples(store, run_id))
    if best.empty:
        return '<p class="note">No samples were stored.</p>'
    drop = [c for c in ("sample", "advantage") if c in best.columns]
    return (f"<h4>Best {len(best)}</h4>" + _table(best.drop(columns=drop), ("prompt", "completion"))
            + f"<h4>Worst {len(worst)}</h4>" + _table(worst.drop(columns=drop), ("prompt", "completion")))


def _player_html(store: Any, run_id: int) -> str:
    """The newest recorded episode (of the trained policy when there is one) in the episode player."""
    from llmrl_core.gym.episodes import load_episode
    from llmrl_core.present.gym import compute_player_height, render_episode_player_html

    episodes = store.list_artifacts(run_id, kind="episode")
    if episodes.empty:
        return '<p class="note">No episode was recorded.</p>'
    trained = episodes[episodes["meta"].map(lambda m: (m or {}).get("policy") != "random")]
    row = (trained if len(trained) else episodes).iloc[-1]
    try:
        episode = load_episode(row["path"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f'<p class="note">The recorded episode could not be read ({_e(err)}).</p>'
    player = render_episode_player_html(episode.to_dict(), title=f"Episode at step {int(row['step'])}", autoplay=False)
    return (f'<iframe class="player" sandbox="allow-scripts" title="episode player" '
            f'style="height:{compute_player_height()}px" srcdoc="{html.escape(player, quote=True)}"></iframe>')


def read_wide_metrics(store: Any, run_id: int) -> pd.DataFrame:
    """A run's metrics, one row per step, read in one pass over plain tuples (runs/reader.MetricsCache):
    several times faster than RunStore.read_metrics_wide on a long run."""
    from llmrl_core.runs.reader import MetricsCache

    cache = MetricsCache(store, int(run_id))
    cache.update()
    return cache.wide


def _run_section(store: Any, run: Mapping[str, Any], before_after: Any, number: int | None = None) -> str:
    """One run's part of the report."""
    from llmrl_core.lm_rl.alarms import read_run_alarms
    from llmrl_core.runs.headline import describe_run_headline  # the same line the front page shows

    run_id = int(run["id"])
    metrics = read_wide_metrics(store, run_id)
    kind = run.get("kind")
    parts = [f'<section id="run-{run_id}"><h2>Run #{run_id}: {_e(run.get("name", ""))}</h2>',
             f'<p class="goal">{_e(describe_goal(run))}</p>',
             f'<p class="headline">Result: {_e(describe_run_headline(store, run).text)}</p>',
             f'<p>{_e(describe_run_facts(run, metrics))}</p>']
    if run.get("error"):
        parts.append(f'<p class="note">Error: {_e(_cut(run["error"], 600))}</p>')
    parts.append("<h3>Configuration</h3>" + _table(summarize_config(run), text_columns=("value",)))
    parts.append("<h3>Curves</h3>" + _curves_html(run, metrics))
    if kind == "lm_rl":
        parts.append("<h3>Before / after</h3>" + _before_after_html(before_after))
        parts.append("<h3>Health and reward-hacking alarms</h3>" + _alarms_html(read_run_alarms(store, run_id, metrics)))
        parts.append("<h3>Best and worst samples</h3>" + _samples_html(store, run_id))
    elif kind == "gym":
        parts.append("<h3>Episode</h3>" + _player_html(store, run_id))
    parts.append("</section>")
    return "\n".join(parts)


def _comparison_section(store: Any, runs: Sequence[Mapping[str, Any]]) -> str:
    """Several runs: main curves overlaid, the config fields that differ, final and best values."""
    from llmrl_core.present.compare import make_compare_figure
    from llmrl_core.runs.compare import diff_configs, read_compare_frame, summarize_finals

    run_ids = [int(r["id"]) for r in runs]
    mains = []
    for run in runs:
        main = pick_main_metric(str(run.get("kind")), store.metric_names(int(run["id"])))
        if main and main not in mains:
            mains.append(main)
    parts = ["<section id='comparison'><h2>Comparison</h2>"]
    if mains:
        frame = read_compare_frame(store, run_ids, mains, max_points=MAX_POINTS)
        parts.append(_figure_html(make_compare_figure(frame, mains)))
    diff = diff_configs({f"#{r['id']} {r.get('name', '')}": r.get("config") or {} for r in runs})
    if diff.empty:
        parts.append('<p class="note">The runs have the same config.</p>')
    else:
        parts.append("<h3>Config fields that differ</h3>" + _table(diff.reset_index(), text_columns=tuple(diff.columns)))
    if mains:
        finals = summarize_finals(store, run_ids, mains)
        parts.append("<h3>Final and best values</h3>" + _table(finals))
    parts.append("</section>")
    return "\n".join(parts)


# ---------------------------------------------------------------------- the report


def render_report_html(store: Any, run_ids: Sequence[int], before_after: Any = None) -> str:
    """The report page as one HTML string (see write_report)."""
    from plotly.offline import get_plotlyjs

    from llmrl_core.lm_rl.evaluate import read_latest_before_after

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
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="meta">LLM·RL Workbench report, written {_e(time.strftime("%Y-%m-%d %H:%M"))}. '
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
        if result is None and run.get("kind") == "lm_rl":
            result = read_latest_before_after(store, int(run["id"]))
        body.append(_run_section(store, run, result))
    # plotly.js is one script in the head; JSON and text below never contain a raw '<' from a run.
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
            f"<body><main>\n{chr(10).join(body)}\n</main></body></html>\n")


def write_report(store: Any, run_ids: Sequence[int], out_path: str | Path, before_after: Any = None) -> Path:
    """Write the self-contained HTML report of one run, or a comparison of several, to `out_path`; return the path.

    `before_after`: a BeforeAfter for a single run, or {run_id: BeforeAfter}; without one, each RL run's
    newest stored result is shown when it has one. The file is written under a temporary name and renamed,
    so an interrupted write never leaves a half report behind.
    """
    out = Path(out_path).expanduser()
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file name such as {out / 'report.html'}.")
    page = render_report_html(store, run_ids, before_after)
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

    run = store.get_run(int(run_id))
    if run is None:
        raise InputError(f"No run with id {run_id}; pick one from the runs table.")
    metrics = read_wide_metrics(store, int(run_id))
    kind = str(run.get("kind"))
    fig = Figure(figsize=(8, 4.2), dpi=dpi)  # no pyplot: no global state, safe in a server thread
    ax = fig.add_subplot(1, 1, 1)
    names = [m for m in (GYM_MAIN_METRICS if kind == "gym" else [pick_main_metric(kind, list(metrics.columns))])
             if m and m in metrics.columns]
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
    solved = _solved_return(run.get("config") or {}) if kind == "gym" else None
    if solved is not None:
        ax.axhline(solved, color="#00a86b", linestyle="--", linewidth=1, label=f"solved ({solved:g})")
    if not names:
        ax.text(0.5, 0.5, "No metrics were logged", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("environment steps" if kind == "gym" else "step")
    ax.set_ylabel("return" if kind == "gym" else (names[0] if names else ""))
    ax.set_title(_mpl_text(f"Run #{run['id']}: {run.get('name', '')}"), fontsize=11)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out_path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
