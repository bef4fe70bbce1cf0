"""Runs: every run in the store (from the dashboard or the CLI), live, with controls and comparison."""

from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from llmrl_core.runs import ACTIVE_STATUSES
from llmrl_core.viz import make_metric_figure
from ui.run_views import run_error_ui
from ui.state import get_run_manager, get_store

POLL_SECONDS = 1.0
STATUS_ICONS = {"queued": "⏳", "running": "🟢", "paused": "⏸️", "completed": "✅", "stopped": "⏹️",
                "failed": "❌", "interrupted": "⚠️"}


def runs_table_ui(runs: pd.DataFrame) -> None:
    """All runs, newest first (st.dataframe escapes everything)."""
    table = runs.copy()
    table["status"] = [f"{STATUS_ICONS.get(s, '')} {s}" for s in table["status"]]
    table["created"] = pd.to_datetime(table["created"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    table["progress"] = [
        f"{int(s or 0)}/{int(t)}" if t == t and t else f"{int(s or 0)}" for s, t in zip(table["step"], table["total_steps"])
    ]
    st.dataframe(table[["id", "kind", "name", "status", "progress", "created"]], hide_index=True, width="stretch")


def controls_ui(run: dict) -> None:
    """Pause, resume, stop, rename, delete."""
    manager = get_run_manager()
    run_id, status = run["id"], run["status"]
    c1, c2, c3, c4 = st.columns(4)
    if status == "running" and c1.button("Pause", key=f"pause_{run_id}"):
        manager.pause(run_id)
        st.rerun()
    if status == "paused" and c1.button("Resume", key=f"resume_{run_id}"):
        manager.resume(run_id)
        st.rerun()
    if status in ACTIVE_STATUSES and c2.button("Stop", key=f"stop_{run_id}", type="primary"):
        manager.stop(run_id)
        st.toast(f"Asked run {run_id} to stop.")
    with c3.popover("Rename"):
        new_name = st.text_input("New name", run["name"], key=f"rename_{run_id}")
        if st.button("Save name", key=f"rename_btn_{run_id}") and new_name.strip():
            get_store().rename_run(run_id, new_name.strip())
            st.rerun()
    if status not in ACTIVE_STATUSES:
        with c4.popover("Delete"):
            st.write("Delete this run's records? Files on disk stay.")
            if st.button("Delete for good", key=f"delete_{run_id}"):
                get_store().delete_run(run_id)
                st.session_state.pop("runs_selected", None)
                st.rerun()


def run_detail_ui(run_id: int, was_live: bool = False) -> None:
    """One run's status, curves, samples, logs, artifacts and config; polls while the run is active."""
    store = get_store()
    run = store.get_run(run_id)
    if run is None:
        st.warning(f"Run {run_id} no longer exists.")
        return
    active = run["status"] in ACTIVE_STATUSES
    st.subheader(f"#{run['id']} · {run['name']}")
    st.caption(f"{STATUS_ICONS.get(run['status'], '')} {run['status']} · kind {run['kind']}")
    if run.get("total_steps"):
        st.progress(min((run["step"] or 0) / run["total_steps"], 1.0), text=f"step {run['step'] or 0} of {run['total_steps']}")
    run_error_ui(run)
    controls_ui(run)

    metrics = store.read_metrics_wide(run_id)
    tab_curves, tab_samples, tab_logs, tab_files, tab_config = st.tabs(["Curves", "Samples", "Log", "Artifacts", "Config"])
    with tab_curves:
        names = [c for c in metrics.columns if c != "step"]
        if not names:
            st.info("No metrics yet.")
        else:
            default = [n for n in names if n in ("reward", "rollout/ep_rew_mean", "eval/mean_reward")] or names[:1]
            chosen = st.multiselect("Metrics", names, default=default, key=f"metrics_{run_id}")
            band = {"reward": "reward_std"} if "reward_std" in names else {}
            st.plotly_chart(make_metric_figure(metrics, chosen, band=band), width="stretch", key=f"fig_{run_id}")
    with tab_samples:
        samples = store.read_samples(run_id, limit=500)
        if samples.empty:
            st.info("No samples recorded.")
        else:
            rewards = pd.json_normalize(samples["rewards"].tolist()).add_prefix("reward/")
            st.dataframe(pd.concat([samples[["step", "prompt", "completion"]], rewards], axis=1), hide_index=True,
                         width="stretch")
    with tab_logs:
        logs = store.read_logs(run_id)
        for row in logs.tail(200).itertuples():
            st.text(f"{time.strftime('%H:%M:%S', time.localtime(row.time))}  {row.level:<7} {row.message}")
    with tab_files:
        files = store.list_artifacts(run_id)
        st.dataframe(files[["step", "kind", "path"]], hide_index=True, width="stretch") if not files.empty else st.info("No artifacts.")
    with tab_config:
        st.code(json.dumps(run["config"], indent=2), language="json")
        if run.get("summary"):
            st.json(run["summary"])
    if active:
        st.caption("Live: refreshing every second.")
    elif was_live:
        st.rerun()  # the run ended: a full rerun stops this fragment's polling


def compare_ui(runs: pd.DataFrame) -> None:
    """Overlay one metric across several runs (the past-run curves other tools lose)."""
    store = get_store()
    chosen = st.multiselect("Runs to compare", runs["id"].tolist(), default=runs["id"].head(2).tolist(),
                            format_func=lambda i: f"#{i} {runs.set_index('id').loc[i, 'name']}", key="cmp_runs")
    if not chosen:
        return
    frames = {rid: store.read_metrics_wide(rid) for rid in chosen}
    names = sorted({c for f in frames.values() for c in f.columns if c != "step"})
    if not names:
        st.info("These runs have no metrics yet.")
        return
    metric = st.selectbox("Metric", names, index=names.index("reward") if "reward" in names else 0, key="cmp_metric")
    combined = pd.DataFrame({"step": sorted({s for f in frames.values() for s in f["step"]})})
    for rid, frame in frames.items():
        if metric in frame.columns:
            combined = combined.merge(frame[["step", metric]].rename(columns={metric: f"#{rid}"}), on="step", how="left")
    st.plotly_chart(make_metric_figure(combined, [c for c in combined.columns if c != "step"], title=metric),
                    width="stretch")


def main() -> None:
    st.title("Runs")
    store = get_store()
    manager = get_run_manager()
    col_a, col_b = st.columns([3, 1], vertical_alignment="bottom")
    col_a.caption("Every run in the store, whether started here or with `python -m llmrl_core` on the command line.")
    if col_b.button("Start a demo run", help="A 40-step job without a model: proves the store and the live view."):
        run_id = manager.start("demo", {"steps": 40, "delay": 0.25}, name="demo", total_steps=40)
        st.session_state["runs_selected"] = run_id
    runs = store.list_runs()
    if runs.empty:
        st.info("No runs yet. Start one from a training page, the button above, or the CLI.")
        return
    tab_list, tab_compare = st.tabs(["Runs", "Compare"])
    with tab_list:
        runs_table_ui(runs)
        ids = runs["id"].tolist()
        selected = st.session_state.get("runs_selected", ids[0])
        run_id = st.selectbox("Run", ids, index=ids.index(selected) if selected in ids else 0,
                              format_func=lambda i: f"#{i} {runs.set_index('id').loc[i, 'name']}", key="runs_pick")
        st.session_state["runs_selected"] = run_id
        run = store.get_run(run_id)
        live = run is not None and run["status"] in ACTIVE_STATUSES
        st.fragment(run_every=POLL_SECONDS if live else None)(run_detail_ui)(run_id, live)
    with tab_compare:
        compare_ui(runs)


main()
