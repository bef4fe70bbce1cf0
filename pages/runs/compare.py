"""Compare: two or more runs side by side: curves on shared axes with smoothing, by step, samples seen or
wall time; a table of final and best values; the config fields that differ; a report of the comparison.
Runs of different kinds get one panel each, on their kind's x axis, and their configs are diffed within each kind."""

from __future__ import annotations

import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.present.compare import make_compare_figure
from llmrl_core.present.common import escape_markdown
from llmrl_core.runs.compare import (X_AXES, KindGroup, describe_kinds_differ, diff_configs_by_kind, get_x_title,
                                     group_runs_by_kind, list_common_metrics, read_compare_frame, summarize_finals)
from llmrl_core.runs.kinds import find_kind
from ui.review import report_ui
from ui.run_views import take_compare_request
from ui.state import get_store

X_LABELS = {"step": "Step", "samples": "Samples seen", "time": "Wall time (s)"}


def pick_runs_ui() -> list[int]:
    """The runs to compare (by default the newest run and the one before it of the same kind)."""
    runs = get_store().list_runs()
    names = runs.set_index("id")["name"].to_dict()
    requested = take_compare_request()  # e.g. the Sweeps page's "Compare the best 3"
    if requested:
        st.session_state["cmp_runs"] = [int(r) for r in requested if int(r) in names]
    if "cmp_runs" in st.session_state:  # the widget keeps its state; a default beside it would be ignored
        st.session_state["cmp_runs"] = [r for r in st.session_state["cmp_runs"] if r in names]  # a run deleted meanwhile
        return st.multiselect("Runs", runs["id"].tolist(), format_func=lambda i: f"#{i} {names.get(i, '')}",
                              key="cmp_runs")
    same_kind = runs[runs["kind"] == runs["kind"].iloc[0]] if not runs.empty else runs
    return st.multiselect("Runs", runs["id"].tolist(), default=same_kind["id"].head(2).tolist(),
                          format_func=lambda i: f"#{i} {names.get(i, '')}", key="cmp_runs")


def list_preferred_metrics(store, run_ids: list[int]) -> list[str]:
    """The metrics drawn first: those the chosen runs' kinds name (RunKindSpec.compare_metrics, then main_metric)."""
    preferred: list[str] = []
    for run_id in run_ids:
        run = store.get_run(int(run_id))
        spec = find_kind(run["kind"]) if run else None
        named = (*spec.compare_metrics, spec.main_metric) if spec is not None else ()
        preferred += [m for m in named if m not in preferred]
    return preferred


def pick_default_metrics(store, groups: list[KindGroup]) -> list[str]:
    """Per kind, the first two of its preferred metrics that all its chosen runs logged (else its first common one)."""
    picked: list[str] = []
    for group in groups:
        common, every = list_common_metrics(store, list(group.run_ids))
        found = [m for m in list_preferred_metrics(store, list(group.run_ids)) if m in common][:2] or common[:1] or every[:1]
        picked += [m for m in found if m not in picked]
    return picked


def curves_ui(run_ids: list[int]) -> list[str]:
    """Pick metrics, x axis and smoothing; draw the overlaid curves, one panel per kind of run. Returns the metrics drawn."""
    store = get_store()
    _, every = list_common_metrics(store, run_ids)
    if not every:
        st.info("These runs have no metrics yet.")
        return []
    groups = group_runs_by_kind(store, run_ids)
    c_metrics, c_x, c_smooth = st.columns([3, 1, 1])
    metrics = c_metrics.multiselect("Metrics", every, default=pick_default_metrics(store, groups), key="cmp_metrics",
                                    help="Each kind of run draws the chosen metrics it logged, in a panel of its own.")
    x = c_x.radio("x axis", list(X_AXES), format_func=X_LABELS.get, key="cmp_x",
                  help="Step is each kind's own step: an LM run's update, a Gymnasium run's environment steps.")
    smoothing = c_smooth.slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="cmp_smooth",
                                help="Exponential moving average, debiased as in TensorBoard; raw values stay faint.")
    if not metrics:
        return []
    if len(groups) > 1:
        st.caption("These runs are of different kinds: each kind gets a panel and an x axis of its own.")
    drawn, colour_start = 0, 0
    for group in groups:
        frame = read_compare_frame(store, list(group.run_ids), metrics, x=x, smoothing=smoothing)
        if frame.empty and len(groups) > 1:  # none of the chosen metrics is this kind's: draw its own
            own = pick_default_metrics(store, [group])
            frame = read_compare_frame(store, list(group.run_ids), own, x=x, smoothing=smoothing)
            if not frame.empty:
                st.caption(escape_markdown(f"{group.label}: none of the chosen metrics; its own main metrics "
                                           f"instead ({', '.join(own)})."))
        if not frame.empty:
            shown = list(dict.fromkeys(frame["metric"]))
            fig = make_compare_figure(frame, shown, x=x, x_title=get_x_title(group, x), colour_start=colour_start,
                                      title=group.label if len(groups) > 1 else "")
            fig.update_layout(height=max(320, 260 * len(shown)))
            st.plotly_chart(fig, width="stretch", key=f"cmp_chart_{group.kind}")
            drawn += 1
        colour_start += len(group.run_ids)
    if not drawn:
        st.info("None of these runs logged the chosen metrics.")
    return metrics


def finals_ui(run_ids: list[int], metrics: list[str]) -> None:
    """Final and best value of each metric per run (best = max, min for losses)."""
    finals = summarize_finals(get_store(), run_ids, metrics)
    if not finals.empty:
        st.dataframe(finals, hide_index=True, width="stretch")


def config_diff_ui(run_ids: list[int]) -> None:
    """Only the config fields that differ between the runs, within each kind (runs of different kinds share no fields)."""
    store = get_store()
    found = diff_configs_by_kind(store, run_ids)
    groups = [group for group, _ in found]
    if len(groups) > 1:
        st.info(escape_markdown(describe_kinds_differ(groups)))
    for group, diff in found:
        if len(groups) > 1:
            st.markdown(f"**{escape_markdown(group.label)}**")
        if len(group.run_ids) < 2:
            st.caption("Only one run of this kind: no config to compare it with.")
        elif diff.empty:
            st.caption("The configs are identical.")
        else:
            st.dataframe(diff, width="stretch")


def main() -> None:
    st.title("Compare")
    st.caption("Curves of several runs on shared axes, what ended best, and what differed in their configs.")
    run_ids = pick_runs_ui()
    if len(run_ids) < 1:
        st.info("Pick runs to compare (two or more).")
        return
    try:
        metrics = curves_ui(run_ids)
        tab_finals, tab_diff, tab_report = st.tabs(["Final and best", "Config diff", "Report"])
        with tab_finals:
            finals_ui(run_ids, metrics)
        with tab_diff:
            config_diff_ui(run_ids)
        with tab_report:
            report_ui(run_ids, key="compare")
    except WorkbenchError as err:
        st.error(escape_markdown(err))


main()
