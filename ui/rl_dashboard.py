"""The RL fine-tuning dashboard: one lm_rl run's status, controls, live curves and samples inspector.

`rl_dashboard_ui(run_id, was_live)` is meant to run inside `st.fragment(run_every=1.0)` while the
run is active. Each poll reads only what is new since the last one (metrics and samples after
the last step seen, kept per run in session state), so a long run stays cheap to watch. When
the run ends the fragment calls a full `st.rerun()`, which stops the polling.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from llmrl_core.runs import ACTIVE_STATUSES
from llmrl_core.viz_rl import (
    TOKEN_COLOURINGS,
    escape_markdown,
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
from ui.run_views import run_error_ui
from ui.state import get_run_manager, get_store

STATUS_ICONS = {"queued": "⏳", "running": "🟢", "paused": "⏸️", "completed": "✅", "stopped": "⏹️",
                "failed": "❌", "interrupted": "⚠️"}
CHART_COLUMNS = 3
BEST_WORST_N = 5


# ----------------------------------------------------------------------------- incremental reads


def read_run_data(run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics (wide, one row per step) and samples of a run, reading only rows newer than the last poll."""
    store = get_store()
    cache = st.session_state.setdefault("rl_data_cache", {})
    entry = cache.get(run_id)
    if entry is None:
        entry = {"metrics": pd.DataFrame(columns=["step"]), "metrics_step": -1,
                 "samples": pd.DataFrame(columns=["id", "step", "prompt", "completion", "rewards", "extras"]),
                 "samples_step": -1}
        cache[run_id] = entry
    new_metrics = store.read_metrics_wide(run_id, since_step=entry["metrics_step"])
    if not new_metrics.empty:
        # A step's metrics are written in one transaction, so a step is never half-read.
        frames = [f for f in (entry["metrics"], new_metrics) if not f.empty]
        entry["metrics"] = pd.concat(frames, ignore_index=True) if len(frames) > 1 else new_metrics
        entry["metrics_step"] = int(new_metrics["step"].max())
    new_samples = store.read_samples(run_id, since_step=entry["samples_step"])
    if not new_samples.empty:
        frames = [f for f in (entry["samples"], new_samples) if not f.empty]
        entry["samples"] = pd.concat(frames, ignore_index=True) if len(frames) > 1 else new_samples
        entry["samples_step"] = int(new_samples["step"].max())
    return entry["metrics"], entry["samples"]


# ----------------------------------------------------------------------------- status and controls


def run_status_ui(run: dict, metrics: pd.DataFrame) -> None:
    """Progress bar with ETA, and what went wrong for failed, stopped or interrupted runs."""
    status, total = run["status"], run.get("total_steps")
    step = int(run.get("step") or 0)
    if total:
        times = metrics["step_time"].tolist() if "step_time" in metrics.columns else []
        eta = estimate_eta_seconds(step, int(total), times) if status == "running" else None
        text = f"step {step} of {int(total)}"
        if status == "running":
            text += f" · about {format_duration(eta)} left" if eta is not None else " · first step under way"
        elif status == "paused":
            text += " · paused"
        st.progress(min(step / float(total), 1.0), text=text)
    run_error_ui(run, " Resume it from its last checkpoint below, if it saved one.")
    if status == "stopped":
        st.info("Stopped by request.")


def run_controls_ui(run: dict) -> None:
    """Pause, resume and stop for an active run."""
    manager = get_run_manager()
    run_id, status = run["id"], run["status"]
    if status not in ACTIVE_STATUSES:
        return
    c1, c2, _ = st.columns([1, 1, 4])
    if status == "running" and c1.button("Pause", key=f"rl_pause_{run_id}", help="Pauses after the current step."):
        manager.pause(run_id)
        st.toast(f"Run {run_id} pauses after its current step.")
    if status == "paused" and c1.button("Resume", key=f"rl_resume_{run_id}"):
        manager.resume(run_id)
    if c2.button("Stop", key=f"rl_stop_{run_id}", type="primary", help="Stops after the current step and saves a checkpoint."):
        manager.stop(run_id)
        st.toast(f"Run {run_id} stops after its current step.")


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


def curves_ui(run: dict, metrics: pd.DataFrame) -> None:
    """The reward chart, the flat-reward note, and a grid of the other curves."""
    if metrics.empty or "reward" not in metrics.columns:
        st.info("The first point appears when the first step ends (sampling, scoring and one update).")
        return
    st.plotly_chart(make_reward_figure(metrics), width="stretch", key=f"rl_chart_reward_{run['id']}")
    note = explain_flat_rewards(metrics, run["config"].get("algorithm", "grpo"))
    if note:
        st.info(note)
    specs = make_chart_specs(list(metrics.columns))
    for start in range(0, len(specs), CHART_COLUMNS):
        cols = st.columns(CHART_COLUMNS)
        for col, spec in zip(cols, specs[start:start + CHART_COLUMNS]):
            with col:
                st.plotly_chart(make_small_figure(metrics, spec), width="stretch", key=f"rl_chart_{spec.key}_{run['id']}")


# ----------------------------------------------------------------------------- samples inspector


def samples_inspector_ui(run: dict, samples: pd.DataFrame) -> None:
    """Table of samples (filter by step, best and worst) and a token view of one sample."""
    run_id = run["id"]
    if samples.empty:
        st.caption("Samples appear with the first step (samples_per_step of them per step).")
        return
    table = make_samples_frame(samples)
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
    token_view_ui(run_id, shown, samples)


def token_view_ui(run_id: int, shown: pd.DataFrame, samples: pd.DataFrame) -> None:
    """One sample's completion, each token coloured by advantage, log-prob ratio, per-token KL or log-prob."""
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


def checkpoints_ui(run: dict) -> None:
    """The run's checkpoints, and a new run that resumes from one (after a restart, a stop or a failure)."""
    store = get_store()
    ckpts = store.list_artifacts(run["id"], kind="checkpoint")
    if ckpts.empty:
        st.caption("No checkpoint yet: set save_every to save during the run; one is saved when a run ends or stops.")
        return
    paths = ckpts["path"].tolist()
    steps = dict(zip(paths, ckpts["step"].tolist()))
    exists = {p: Path(p).is_dir() for p in paths}
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
        from llmrl_core.config import RLConfig
        from llmrl_core.errors import WorkbenchError

        try:
            cfg = RLConfig.from_dict({**run["config"], "resume_from": choice, "steps": until,
                                      "name": f"{run['name']} (resumed)"})
        except WorkbenchError as err:
            st.error(escape_markdown(err))
            return
        new_id = get_run_manager().start("lm_rl", cfg.to_dict(), name=cfg.name, total_steps=cfg.steps)
        st.session_state["rl_run_id"] = new_id
        st.session_state.pop("rl_pick", None)
        st.rerun()
    st.caption("A full checkpoint folder also works as a model spec in the Playground.")


def logs_ui(run_id: int) -> None:
    """The run's log lines (as plain text)."""
    logs = get_store().read_logs(run_id)
    if logs.empty:
        st.caption("No log lines yet.")
        return
    lines = [f"{time.strftime('%H:%M:%S', time.localtime(t))} {lvl:7s} {msg}"
             for t, lvl, msg in zip(logs["time"], logs["level"], logs["message"])]
    st.code("\n".join(lines[-200:]), language="text")


# ----------------------------------------------------------------------------- the whole dashboard


def rl_dashboard_ui(run_id: int, was_live: bool = False, on_clone: Any = None) -> None:
    """Everything about one lm_rl run; call it inside a polling fragment while the run is active."""
    store = get_store()
    run = store.get_run(run_id)
    if run is None:
        st.warning(f"Run {run_id} no longer exists.")
        return
    config = run["config"]
    active = run["status"] in ACTIVE_STATUSES
    metrics, samples = read_run_data(run_id)
    st.subheader(f"\\#{run['id']} · {escape_markdown(run['name'])}")
    algo = str(config.get("algorithm", "?")).upper()
    mode = "LoRA" if config.get("use_lora") else "full fine-tuning"
    st.caption(f"{STATUS_ICONS.get(run['status'], '')} {run['status']} · {algo} · {mode} · model {escape_markdown(config.get('model'))} · "
               f"prompts {escape_markdown(config.get('prompt_set'))} · {config.get('prompts_per_step')} prompts × "
               f"{config.get('num_generations')} samples per step · seed {config.get('seed')}")
    run_status_ui(run, metrics)
    c_controls, c_clone = st.columns([4, 1])
    with c_controls:
        run_controls_ui(run)
    if on_clone is not None:
        if c_clone.button("Edit a copy", key=f"rl_clone_{run_id}", help="Copy this run's config into the New run tab."):
            on_clone(config)
    headline_metrics_ui(metrics)
    curves_ui(run, metrics)
    st.markdown("#### Samples")
    samples_inspector_ui(run, samples)
    with st.expander("Checkpoints and resume", expanded=run["status"] in ("interrupted", "failed")):
        checkpoints_ui(run)
    with st.expander("Log"):
        logs_ui(run_id)
    with st.expander("Config and summary"):
        from llmrl_core.config import RLConfig
        from llmrl_core.errors import WorkbenchError

        try:
            st.code(RLConfig.from_dict(config).to_yaml(), language="yaml")
        except WorkbenchError:
            st.json(config)
        if run.get("summary"):
            st.json(run["summary"])
    if active:
        st.caption("Live: refreshing every second.")
    elif was_live:
        st.rerun()  # the run ended: a full rerun stops this fragment's polling
