"""Sweeps: every trial of a sweep with its settings, result, status and duration, a parallel-coordinates plot, the best
set (with its CI over seeds), and Compare the best 3, Report and Cancel.

The engine is llmrl_core/runs/sweeps.py (trials are queued runs the supervisor starts in order); a sweep is
queued from the form under Train on the LM RL, Gym and Agent pages, or with `python -m llmrl_core sweep start`.
While a sweep runs, its view is a fragment that redraws every POLL_SECONDS.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.core.paths import get_home
from llmrl_core.present.common import escape_markdown
from llmrl_core.present.sweep import format_sets_table, format_trials_table, make_parallel_figure, write_sweep_report
from llmrl_core.runs.sweeps import cancel_sweep, describe_best, get_sweep, list_sweeps, pick_best_runs, read_sweep_view
from ui.run_views import open_in_compare
from ui.state import get_store
from ui.sweep_form import SELECTED_KEY

POLL_SECONDS = 2.0


def pick_sweep_ui(sweeps) -> int:
    """The sweep to show: the one just queued or picked, else the newest."""
    ids = sweeps["id"].tolist()
    labels = {r.id: f"#{r.id} {r.name} · {r.kind} · {r.status} · {r.ended_runs}/{r.runs} runs ended"
              for r in sweeps.itertuples()}
    wanted = st.session_state.get(SELECTED_KEY)
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox("Sweep", ids, index=index, format_func=labels.get, key="sweep_pick")
    st.session_state[SELECTED_KEY] = chosen
    return int(chosen)


def actions_ui(sweep: dict) -> None:
    """Compare the best 3, Report, Cancel."""
    store = get_store()
    c_compare, c_report, c_cancel = st.columns(3)
    if c_compare.button("Compare the best 3", key="sweep_compare", icon=":material/compare_arrows:",
                        help="Opens Compare with the best seed's run of each of the three best parameter sets."):
        best = pick_best_runs(store, sweep["id"], 3)
        if not best:
            st.warning("No trial has completed yet, so there is nothing to compare.")
        else:
            open_in_compare(best)
    if c_report.button("Report", key="sweep_report", icon=":material/description:",
                       help="One HTML file that opens offline: the sweep's spec, best set, plot and tables."):
        try:
            path = write_sweep_report(store, sweep["id"], get_home() / "reports" / f"sweep-{sweep['id']:05d}.html")
        except WorkbenchError as err:
            st.error(escape_markdown(err))
        else:
            st.session_state["sweep_report_path"] = (sweep["id"], str(path))
    if sweep["status"] == "running" and c_cancel.button("Cancel sweep", key="sweep_cancel", icon=":material/cancel:",
                                                        help="Waiting trials leave the queue; running ones stop."):
        cancelled, stopping = cancel_sweep(store, sweep["id"])
        st.toast(f"Sweep #{sweep['id']} cancelled: {cancelled} waiting, {stopping} stopping.")
        st.rerun()
    report = st.session_state.get("sweep_report_path")
    if report and report[0] == sweep["id"]:
        path = Path(report[1])
        if path.is_file():
            st.download_button("Download the sweep report (HTML)", path.read_bytes(), file_name=path.name,
                               mime="text/html", key="sweep_report_dl")
            st.caption(f"Also saved as `{escape_markdown(path)}`. CLI: `python -m llmrl_core sweep report "
                       f"{sweep['id']} --out sweep.html`.")


def sweep_body_ui(sweep_id: int) -> None:
    """Status, best, plot and tables of one sweep (redrawn by the fragment while it runs)."""
    view = read_sweep_view(get_store(), sweep_id)
    trials, spec = view.trials, view.spec
    ended = int(trials["status"].isin(["completed", "pruned", "stopped", "failed", "interrupted"]).sum())
    running = trials[trials["status"].isin(["running", "paused"])]
    st.progress(ended / max(1, spec.n_runs),
                text=f"{view.sweep['status']} · {ended} of {spec.n_runs} runs ended"
                     + (f" · running: #{', #'.join(map(str, running['run_id']))}" if len(running) else ""))
    st.markdown(f"**{escape_markdown(describe_best(view))}**")
    st.caption(f"A run's result: the mean of its last logged values of {escape_markdown(view.metric)} "
               f"({'higher' if view.higher_is_better else 'lower'} is better).")
    fig = make_parallel_figure(trials, spec, view.metric)
    if fig is not None:
        st.plotly_chart(fig, key=f"sweep_parcoords_{sweep_id}", config={"displaylogo": False})
    if len(spec.seeds) > 1:
        st.markdown("**Parameter sets** (mean over seeds, 95% CI)")
        st.dataframe(format_sets_table(view.sets, view.names), hide_index=True, width="stretch")
    st.markdown("**Trials**")
    st.dataframe(format_trials_table(trials, spec, view.best_trial), hide_index=True, width="stretch")


def main() -> None:
    st.title("Sweeps")
    st.caption("Many runs of one kind from one form, each a trial with other settings: which learning rate, group size "
               "or batch works, and by how much over seeds.")
    store = get_store()
    sweeps = list_sweeps(store)
    if sweeps.empty:
        st.info("No sweep yet. Open the LM RL, Gym or Agent page and expand **Sweep: try several settings** under "
                "Train, or run `python -m llmrl_core sweep start gym --param learning_rate=1e-3,3e-4`.")
        return
    try:
        sweep_id = pick_sweep_ui(sweeps)
        sweep = get_sweep(store, sweep_id)
        st.caption(f"{escape_markdown(sweep['kind'])} runs · {escape_markdown(sweep['spec'].describe())}"
                   f"{' · pruning on' if sweep['spec'].prune else ''} · queued "
                   f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(sweep['created']))}")
        actions_ui(sweep)
        if sweep["status"] == "running":
            st.fragment(run_every=POLL_SECONDS)(_live_body)(sweep_id)
        else:
            sweep_body_ui(sweep_id)
    except WorkbenchError as err:
        st.error(escape_markdown(err))


def _live_body(sweep_id: int) -> None:
    """The fragment's body: the view, and a full rerun once the sweep has ended (its buttons change)."""
    sweep_body_ui(sweep_id)
    if get_sweep(get_store(), sweep_id)["status"] != "running":
        st.rerun()


main()
