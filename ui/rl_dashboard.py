"""The RL fine-tuning dashboard: one lm_rl run's status, controls, live curves and samples inspector.

`rl_dashboard_ui(view, on_clone)` is the body of the shared live-run view (ui/live_run.py): it
polls the run's heartbeat and hands this body the same `LiveRun` while nothing moved, so figures,
samples, checkpoints and logs are read and built once per move of the run. Metrics come from the
view (only new rows are read); samples are read after the last step seen, kept in session state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from llmrl_core.present.common import escape_markdown
from llmrl_core.runs import ACTIVE_STATUSES
from llmrl_core.present.lm_rl import (
    TOKEN_COLOURINGS,
    estimate_eta_seconds,
    explain_flat_rewards,
    format_duration,
    make_chart_specs,
    make_reward_figure,
    make_samples_frame,
    make_small_figure,
    pick_best_and_worst,
    render_sample_tokens_html,
)
from ui.token_inspector import push_inspector_ui
from ui.live_run import LiveRun, run_controls_ui, run_heading_ui, run_progress_ui, select_run
from ui.review import alarms_ui
from ui.run_views import run_error_ui
from ui.state import get_run_manager, get_store

CHART_COLUMNS = 3
BEST_WORST_N = 5


# ----------------------------------------------------------------------------- incremental reads


def read_samples_cached(run_id: int) -> pd.DataFrame:
    """A run's samples, reading only those of steps after the last one read (kept per run in session state)."""
    cache = st.session_state.setdefault("rl_samples_cache", {})
    entry = cache.get(run_id)
    if entry is None:
        cache.clear()  # one run at a time: a long run's samples are not kept for runs no longer shown
        entry = {"samples": pd.DataFrame(columns=["id", "step", "prompt", "completion", "rewards", "extras"]), "step": -1}
        cache[run_id] = entry
    new = get_store().read_samples(run_id, since_step=entry["step"])
    if not new.empty:  # a step's samples are written in one transaction, so a step is never half-read
        frames = [f for f in (entry["samples"], new) if not f.empty]
        entry["samples"] = pd.concat(frames, ignore_index=True) if len(frames) > 1 else new
        entry["step"] = int(new["step"].max())
    return entry["samples"]


# ----------------------------------------------------------------------------- status and controls


def run_status_ui(run: dict, metrics: pd.DataFrame) -> None:
    """Progress bar with ETA, and what went wrong for failed, stopped or interrupted runs."""
    status, total = run["status"], run.get("total_steps")
    step = int(run.get("step") or 0)
    detail = ""
    if status == "running" and total:
        times = metrics["step_time"].tolist() if "step_time" in metrics.columns else []
        eta = estimate_eta_seconds(step, int(total), times)
        detail = f" · about {format_duration(eta)} left" if eta is not None else " · first step under way"
    elif status == "paused":
        detail = " · paused"
    run_progress_ui(run, detail)
    run_error_ui(run, " Resume it from its last checkpoint (tab Checkpoints below), if it saved one.")
    if status == "stopped":
        st.info("Stopped by request.")


def headline_metrics_ui(metrics: pd.DataFrame) -> None:
    """The latest reward, KL, length and speed as st.metric tiles (delta against the first step)."""
    def series(name: str) -> pd.Series:
        return metrics[name].dropna() if name in metrics.columns else pd.Series(dtype=float)

    tiles = [("reward", "reward", "{:.3f}"), ("kl", "KL", "{:.4f}"), ("completions/mean_length", "mean length", "{:.1f}"),
             ("tokens_per_second", "tokens / s", "{:.0f}"), ("step_time", "step time (s)", "{:.1f}")]
    cols = st.columns(len(tiles))
    for col, (name, label, fmt) in zip(cols, tiles):
        values = series(name)
        if values.empty:
            col.metric(label, "–")
            continue
        delta = None
        if name == "reward" and len(values) > 1:
            delta = f"{values.iloc[-1] - values.iloc[0]:+.3f} since step {int(metrics.loc[values.index[0], 'step'])}"
        col.metric(label, fmt.format(values.iloc[-1]), delta=delta)


DEFAULT_CURVES = ("kl", "entropy", "policy_loss", "value_loss", "length", "zero_std")  # the rest on request
DASHBOARD_TABS = ("Samples", "Curves", "Checkpoints", "Log", "Config")  # below the reward chart; only the open one runs


def reward_curve_ui(view: LiveRun) -> None:
    """The reward chart and the flat-reward note (always on screen while a run is watched)."""
    run, metrics = view.run, view.metrics
    if metrics.empty or "reward" not in metrics.columns:
        st.info("The first point appears when the first step ends (sampling, scoring and one update).")
        return
    plot = view.plot_metrics()
    view.chart("reward", lambda: make_reward_figure(plot))
    note = view.memo("flat_note", lambda: explain_flat_rewards(metrics, run["config"].get("algorithm", "grpo")))
    if note:
        st.info(note)


def small_curves_ui(view: LiveRun) -> None:
    """A grid of the other curves (drawn from downsampled series), the ones RL users watch first preselected."""
    run, metrics = view.run, view.metrics
    if metrics.empty:
        st.caption("Curves appear when the first step ends.")
        return
    plot = view.plot_metrics()
    specs = make_chart_specs(list(metrics.columns))
    titles = {spec.key: spec.title for spec in specs}
    # Every chart on screen is redrawn by the browser at each step (bench/bench_watch.py measured Chromium at about
    # 19 CPU s/min with all ten): draw the ones RL users watch first, the rest one click away.
    chosen = st.pills("Curves", list(titles), selection_mode="multi", format_func=titles.get,
                      default=[k for k in titles if k in DEFAULT_CURVES], key=f"rl_curves_{run['id']}")
    specs = [spec for spec in specs if spec.key in (chosen or [])]
    for start in range(0, len(specs), CHART_COLUMNS):
        cols = st.columns(CHART_COLUMNS)
        for col, spec in zip(cols, specs[start:start + CHART_COLUMNS]):
            with col:
                view.chart(spec.key, lambda spec=spec: make_small_figure(plot, spec))


# ----------------------------------------------------------------------------- samples inspector


def samples_inspector_ui(run: dict, samples: pd.DataFrame, table: pd.DataFrame | None = None) -> None:
    """Table of samples (filter by step, best and worst) and a token view of one sample; `table` is
    make_samples_frame(samples) when the caller already has it."""
    run_id = run["id"]
    if samples.empty:
        st.caption("Samples appear with the first step (samples_per_step of them per step).")
        return
    table = make_samples_frame(samples) if table is None else table
    steps = sorted(table["step"].unique().tolist())
    c_step, c_show = st.columns([1, 2])
    step_choice = c_step.selectbox("Step", ["latest", "all"] + steps[::-1], key=f"rl_samples_step_{run_id}",
                                   format_func=lambda s: s if isinstance(s, str) else f"step {s}")
    view = c_show.segmented_control("Show", ["all", f"best {BEST_WORST_N}", f"worst {BEST_WORST_N}"], default="all",
                                    key=f"rl_samples_view_{run_id}")
    if step_choice == "latest":
        shown = table[table["step"] == steps[-1]]
    elif step_choice == "all":
        shown = table
    else:
        shown = table[table["step"] == step_choice]
    best, worst = pick_best_and_worst(shown, BEST_WORST_N)
    if view == f"best {BEST_WORST_N}":
        shown = best
    elif view == f"worst {BEST_WORST_N}":
        shown = worst
    numbers = [c for c in shown.columns if c not in ("sample", "step", "prompt", "completion", "finish")]
    st.dataframe(  # st.dataframe shows text as text: model output is never interpreted
        shown, hide_index=True, width="stretch", height=min(38 + 35 * len(shown), 420),
        column_config={
            "sample": None,
            "prompt": st.column_config.TextColumn(width="medium"),
            "completion": st.column_config.TextColumn(width="large"),
            **{c: st.column_config.NumberColumn(format="%.3f") for c in numbers},
        },
    )
    token_view_ui(run, shown, samples)


def token_view_ui(run: dict, shown: pd.DataFrame, samples: pd.DataFrame) -> None:
    """One sample's completion, each token coloured by the update's push (clickable, with its formula: see
    ui/token_inspector.py), advantage, log-prob ratio, per-token KL or log-prob."""
    run_id = run["id"]
    if shown.empty:
        return
    ids = shown["sample"].tolist()
    strongest = shown["advantage"].abs().fillna(-1.0).to_numpy().argmax()  # start on a sample the update cared about
    labels = {int(r.sample): f"step {r.step} · total {r.total:.3f} · {str(r.completion)[:60]!r}" for r in shown.itertuples()}
    c_pick, c_colour = st.columns([3, 2])
    sample_id = c_pick.selectbox("Token view of sample", ids, index=int(strongest), key=f"rl_token_sample_{run_id}",
                                 format_func=lambda i: labels.get(int(i), str(i)))
    colouring = c_colour.radio("Colour tokens by", list(TOKEN_COLOURINGS), horizontal=True,
                               key=f"rl_token_colour_{run_id}")
    if colouring == "update push":
        st.caption(TOKEN_COLOURINGS[colouring])
        push_inspector_ui(run, samples, sample_id)
        return
    row = samples[samples["id"] == sample_id]
    if row.empty:
        return
    extras = row.iloc[0]["extras"] or {}
    scale = None
    if colouring == "advantage" and extras.get("token_advantages") is None:
        scale = float(shown["advantage"].abs().max())  # one scale for the table, so samples compare by colour
    markup, note = render_sample_tokens_html(extras, colouring, scale)
    st.caption(f"{TOKEN_COLOURINGS[colouring]} {note}")
    if markup is None:
        return
    st.html(markup)  # tokens are escaped by render_token_html


# ----------------------------------------------------------------------------- checkpoints, logs, config


def checkpoints_ui(view: LiveRun) -> None:
    """The run's checkpoints, and a new run that resumes from one (after a restart, a stop or a failure)."""
    run = view.run
    ckpts = view.memo("checkpoints", lambda: get_store().list_artifacts(run["id"], kind="checkpoint"))
    if ckpts.empty:
        st.caption("No checkpoint yet: set save_every to save during the run; one is saved when a run ends or stops.")
        return
    paths = ckpts["path"].tolist()
    steps = dict(zip(paths, ckpts["step"].tolist()))
    exists = view.memo("checkpoints_exist", lambda: {p: Path(p).is_dir() for p in paths})
    c_pick, c_until, c_btn = st.columns([3, 1, 1], vertical_alignment="bottom")
    choice = c_pick.selectbox("Checkpoint", paths[::-1], key=f"rl_ckpt_{run['id']}",
                              format_func=lambda p: f"step {steps[p]} · {Path(p).name}" + ("" if exists[p] else " (missing)"))
    config_steps = int(run["config"].get("steps") or 1)
    ckpt_step = int(steps[choice])
    default_until = config_steps if ckpt_step < config_steps else ckpt_step + max(10, config_steps // 2)
    until = int(c_until.number_input("Train until step", min_value=ckpt_step + 1, value=default_until, step=1,
                                     key=f"rl_ckpt_until_{run['id']}_{ckpt_step}"))
    active = run["status"] in ACTIVE_STATUSES
    if c_btn.button("Resume from it", key=f"rl_resume_ckpt_{run['id']}", disabled=active or not exists[choice],
                    help="A new run with the same config that continues from this checkpoint (weights, optimizer, step)."):
        from llmrl_core.lm_rl.config import RLConfig
        from llmrl_core.core.errors import WorkbenchError

        try:
            cfg = RLConfig.from_dict({**run["config"], "resume_from": choice, "steps": until,
                                      "name": f"{run['name']} (resumed)"})
        except WorkbenchError as err:
            st.error(escape_markdown(err))
            return
        new_id = get_run_manager().start("lm_rl", cfg.to_dict(), name=cfg.name, total_steps=cfg.steps)
        select_run(new_id, "rl_pick", "rl_run_id")
        st.rerun()
    st.caption("A full checkpoint folder also works as a model spec in the Playground.")


def logs_ui(view: LiveRun) -> None:
    """The run's log lines (as plain text)."""
    logs = view.memo("logs", lambda: get_store().read_logs(view.run_id))
    if logs.empty:
        st.caption("No log lines yet.")
        return
    lines = [f"{time.strftime('%H:%M:%S', time.localtime(t))} {lvl:7s} {msg}"
             for t, lvl, msg in zip(logs["time"], logs["level"], logs["message"])]
    st.code("\n".join(lines[-200:]), language="text")


# ----------------------------------------------------------------------------- the whole dashboard


def rl_dashboard_ui(view: LiveRun, on_clone: Any = None) -> None:
    """Everything about one lm_rl run: the body of the shared live-run view (see the module docstring)."""
    run, run_id = view.run, view.run_id
    config = run["config"]
    metrics = view.metrics
    samples = view.memo("samples", lambda: read_samples_cached(run_id))
    algo = str(config.get("algorithm", "?")).upper()
    mode = "LoRA" if config.get("use_lora") else "full fine-tuning"
    run_heading_ui(run, f"{algo} · {mode} · model {escape_markdown(config.get('model'))} · "
                        f"prompts {escape_markdown(config.get('prompt_set'))} · {config.get('prompts_per_step')} prompts × "
                        f"{config.get('num_generations')} samples per step · seed {config.get('seed')}")
    run_status_ui(run, metrics)
    c_controls, c_clone = st.columns([4, 1])
    run_controls_ui(run, "rl", container=c_controls)
    if on_clone is not None:
        if c_clone.button("Edit a copy", key=f"rl_clone_{run_id}", help="Copy this run's config into the New run tab."):
            on_clone(config)
    headline_metrics_ui(metrics)
    alarms_ui(run, compact=True)  # reward hacking and health, from what is stored so far
    reward_curve_ui(view)
    # Lazy tabs: only the open tab runs and is sent, so a step redraws the reward chart and one tab, not
    # every chart and table of the run (bench/bench_watch.py: the browser's redraws come out of training's cores).
    default = "Checkpoints" if run["status"] == "interrupted" else DASHBOARD_TABS[0]  # resume first
    tabs = st.tabs(list(DASHBOARD_TABS), key=f"rl_tabs_{run_id}", default=default, on_change="rerun")
    bodies = {
        "Samples": lambda: samples_inspector_ui(run, samples, view.memo("samples_table", lambda: make_samples_frame(samples))),
        "Curves": lambda: small_curves_ui(view),
        "Checkpoints": lambda: checkpoints_ui(view),
        "Log": lambda: logs_ui(view),
        "Config": lambda: config_ui(view),
    }
    for tab, name in zip(tabs, DASHBOARD_TABS):
        if tab.open:
            with tab:
                bodies[name]()


def config_ui(view: LiveRun) -> None:
    """The run's config as YAML, and its summary once it has one."""
    st.code(view.memo("config_yaml", lambda: _config_yaml(view.run["config"])), language="yaml")
    if view.run.get("summary"):
        st.json(view.run["summary"])


def _config_yaml(config: dict) -> str:
    """A run's config as YAML (RLConfig's field order), or as JSON-ish YAML when it no longer validates."""
    import yaml

    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.core.errors import WorkbenchError

    try:
        return RLConfig.from_dict(config).to_yaml()
    except WorkbenchError:
        return yaml.safe_dump(config, sort_keys=False)
