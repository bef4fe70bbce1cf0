"""Runs: every run in the store (from the dashboard or the CLI) in one table that filters, sorts and searches;
the picked run live with controls, health alarms, export and its report; rename, note, clone, delete."""

from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.runs import ACTIVE_STATUSES
from llmrl_core.present.common import make_metric_figure
from llmrl_core.present.common import escape_markdown
from ui.live_run import (
    LiveRun,
    format_status,
    live_run_ui,
    run_controls_ui,
    run_heading_ui,
    run_picker_ui,
    run_progress_ui,
)
from ui.run_views import run_error_ui
from ui.state import get_store

from llmrl_core.runs.files import compute_run_disk_bytes, delete_run_files, free_space, measure_home_disk
from llmrl_core.runs.kinds import list_kind_names
from llmrl_core.runs.table import summarize_runs
from ui.clone import find_clone_page, request_clone
from ui.queue_panel import queue_ui
from ui.review import alarms_ui, export_ui, report_ui

PICK_KEY, SELECTED_KEY = "runs_pick", "runs_selected"
DEFAULT_METRICS = ("reward", "rollout/ep_rew_mean", "eval/mean_reward")


def format_bytes(n: int | None) -> str:
    """'0 B', '512 B', '12.3 kB', '4.5 MB', '1.2 GB'."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def runs_table_ui() -> None:
    """Every run, one row each with its headline figures; filter by status and kind, search name and note, sort.

    st.dataframe shows every cell as text (escaped). Reads one SQL query (llmrl_core/runs/table.py).
    """
    store = get_store()
    c_search, c_status, c_kind, c_sort = st.columns([2, 2, 2, 1])
    search = c_search.text_input("Search name or note", key="runs_search", placeholder="e.g. positive")
    statuses = c_status.multiselect("Status", ["queued", "running", "paused", "completed", "stopped", "failed",
                                               "interrupted"], key="runs_status")
    kinds = c_kind.multiselect("Kind", list_kind_names(), key="runs_kind")
    sort_by = c_sort.selectbox("Sort by", ["id", "best_reward", "last_reward", "duration_s", "disk_bytes", "step"],
                               key="runs_sort")
    table = summarize_runs(store, statuses=statuses or None, kinds=kinds or None, search=search or None,
                           sort_by=sort_by)
    if table.empty:
        st.info("No run matches these filters.")
        return
    shown = pd.DataFrame({
        "id": table["id"], "name": table["name"], "status": [format_status(s) for s in table["status"]],
        "kind": table["kind"], "model / env": table["model"], "algorithm": table["algorithm"],
        "progress": [f"{int(s or 0)}/{int(t)}" if t == t and t else f"{int(s or 0)}"
                     for s, t in zip(table["step"], table["total_steps"])],
        "best reward": table["best_reward"], "last reward": table["last_reward"],
        "duration": [format_duration(d) for d in table["duration_s"]],
        "disk": [format_bytes(b) for b in table["disk_bytes"]], "note": table["note"],
    })
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={"best reward": st.column_config.NumberColumn(format="%.3f"),
                                "last reward": st.column_config.NumberColumn(format="%.3f")})


def format_duration(seconds: float | None) -> str:
    """'-', '42 s', '3 min 05 s', '2 h 04 min'."""
    if seconds is None or seconds != seconds:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def manage_ui(view: LiveRun, disk: int | None) -> None:
    """Rename, note, clone into a new run (the training page opens with the form filled), delete once ended."""
    store = get_store()
    run = view.run
    run_id = run["id"]
    c_rename, c_note, c_clone, c_delete, _ = st.columns([1, 1, 1, 1, 2])
    with c_rename.popover("Rename"):
        new_name = st.text_input("New name", run["name"], key=f"rename_{run_id}")
        if st.button("Save name", key=f"rename_btn_{run_id}") and new_name.strip():
            store.rename_run(run_id, new_name.strip())
            st.rerun()
    with c_note.popover("Note"):
        note = st.text_area("Note (searchable)", run.get("note") or "", key=f"note_{run_id}")
        if st.button("Save note", key=f"note_btn_{run_id}"):
            store.set_note(run_id, note.strip() or None)
            st.rerun()
    if find_clone_page(run["kind"]) and c_clone.button("Clone", key=f"clone_{run_id}",
                                                                 help="A new run with the same config: opens its page with the form filled."):
        request_clone(*store.clone_config(run_id))
    with c_delete.popover("Delete"):
        if run["status"] in ACTIVE_STATUSES:
            st.warning(f"Run {run_id} is {run['status']}: stop it first, then delete it.")
            return
        with_files = st.checkbox(f"Also delete its files ({format_bytes(disk)} on disk: checkpoints, agents, episodes)",
                                 value=True, key=f"delete_files_{run_id}")
        if st.button("Delete for good", key=f"delete_{run_id}", type="primary"):
            try:
                store.delete_run(run_id)  # refuses a run that went live meanwhile, before any file goes
                freed = delete_run_files(run_id) if with_files else 0
            except WorkbenchError as err:  # e.g. the folder is a link: the files stay where they are
                st.error(escape_markdown(err))
                return
            st.session_state.pop(SELECTED_KEY, None)
            st.session_state.pop(PICK_KEY, None)
            st.toast(f"Deleted run {run_id}" + (f" and {format_bytes(freed)} of files." if with_files else "."))
            st.rerun()


def run_detail_ui(view: LiveRun) -> None:
    """One run's status, controls, curves, samples, logs, artifacts and config (the live view's body)."""
    store = get_store()
    run, run_id = view.run, view.run_id
    disk = view.memo("disk", lambda: compute_run_disk_bytes(run_id, store))
    run_heading_ui(run, f"kind {escape_markdown(run['kind'])}" + ("" if disk is None else f" · {format_bytes(disk)} on disk"))
    run_progress_ui(run)
    run_error_ui(run)
    if run.get("note"):
        st.caption(f"Note: {escape_markdown(run['note'])}")
    run_controls_ui(run, "runs")
    manage_ui(view, disk)

    # Lazy tabs: only the open one runs and is sent, so a live run's step redraws one tab, not all seven.
    tabs = st.tabs(list(DETAIL_TABS), key=f"runs_tabs_{run_id}", on_change="rerun")
    for tab, name in zip(tabs, DETAIL_TABS):
        if tab.open:
            with tab:
                DETAIL_TABS[name](view)


def curves_tab_ui(view: LiveRun) -> None:
    """The run's metrics, the headline ones preselected."""
    metrics = view.metrics
    names = [c for c in metrics.columns if c != "step"]
    if not names:
        st.info("No metrics yet.")
        return
    default = [n for n in names if n in DEFAULT_METRICS] or names[:1]
    chosen = st.multiselect("Metrics", names, default=default, key=f"metrics_{view.run_id}")
    band = {"reward": "reward_std"} if "reward_std" in names else {}
    view.chart("curves", lambda: make_metric_figure(view.plot_metrics(), chosen, band=band), tuple(chosen))


def samples_tab_ui(view: LiveRun) -> None:
    """The newest 500 samples with their rewards (as text: model output is never interpreted)."""
    samples = view.memo("samples", lambda: get_store().read_samples(view.run_id, limit=500))
    if samples.empty:
        st.info("No samples recorded.")
        return
    rewards = pd.json_normalize(samples["rewards"].tolist()).add_prefix("reward/")
    st.dataframe(pd.concat([samples[["step", "prompt", "completion"]], rewards], axis=1), hide_index=True,
                 width="stretch")
    if any(isinstance(e, dict) and e.get("tokens") for e in samples["extras"]):  # per-token data: the token view
        from llmrl_core.present.lm_rl import make_samples_frame
        from ui.rl_dashboard import token_view_ui

        table = view.memo("samples_table", lambda: make_samples_frame(samples))
        token_view_ui(view.run, table[table["step"] == table["step"].max()], samples)


def logs_tab_ui(view: LiveRun) -> None:
    """The run's last 200 log lines."""
    logs = view.memo("logs", lambda: get_store().read_logs(view.run_id).tail(200))
    lines = [f"{time.strftime('%H:%M:%S', time.localtime(t))}  {lvl:<7} {msg}"
             for t, lvl, msg in zip(logs["time"], logs["level"], logs["message"])]
    st.code("\n".join(lines), language="text") if lines else st.caption("No log lines yet.")


def files_tab_ui(view: LiveRun) -> None:
    """The run's artifacts (checkpoints, agents, episodes)."""
    files = view.memo("artifacts", lambda: get_store().list_artifacts(view.run_id))
    st.dataframe(files[["step", "kind", "path"]], hide_index=True, width="stretch") if not files.empty else st.info("No artifacts.")


def config_tab_ui(view: LiveRun) -> None:
    """The run's config and summary."""
    st.code(json.dumps(view.run["config"], indent=2), language="json")
    if view.run.get("summary"):
        st.json(view.run["summary"])


def share_tab_ui(view: LiveRun) -> None:
    """The report for stakeholders and the exports."""
    st.markdown("**Report for stakeholders**")
    report_ui([view.run_id], key=f"run{view.run_id}")
    st.markdown("**Export**")
    export_ui(view.run)


DETAIL_TABS = {"Curves": curves_tab_ui, "Samples": samples_tab_ui, "Health": lambda view: alarms_ui(view.run),
               "Log": logs_tab_ui, "Artifacts": files_tab_ui, "Config": config_tab_ui, "Export & report": share_tab_ui}


@st.cache_data(ttl=30, show_spinner=False)
def _home_disk(home: str) -> dict[str, int]:
    """The home's size and the disk's free space (a walk of the home: at most once every 30 s)."""
    return measure_home_disk()


def disk_ui() -> None:
    """The workbench home's disk use and the free space beside it."""
    from llmrl_core.core.paths import get_home

    disk = _home_disk(str(get_home()))
    c_text, c_button = st.columns([5, 1], vertical_alignment="center")
    c_text.caption(f":material/hard_drive: The workbench home ({escape_markdown(str(get_home()))}) holds "
                   f"{format_bytes(disk['home_bytes'])}; {format_bytes(disk['free_bytes'])} free on its disk. "
                   "Fine-tuning runs that ended keep their weights only, unless keep_for_resuming was set.")
    if c_button.button("Free space", key="runs_free_space", icon=":material/delete_sweep:",
                       help="Deletes the checkpoints of ended runs other than each run's final one, and says how "
                            "much that freed. Running runs are not touched. CLI: `runs free-space`."):
        count, runs, freed = free_space(get_store())
        _home_disk.clear()
        st.session_state["runs_freed"] = (count, runs, freed)
        st.rerun()
    if freed := st.session_state.pop("runs_freed", None):
        count, runs, size = freed
        if count:
            st.success(f"Freed {format_bytes(size)}: {count} older checkpoint{'s' if count != 1 else ''} of {runs} "
                       f"ended run{'s' if runs != 1 else ''}; each kept its final checkpoint.")
        else:
            st.info("Nothing to free: no ended run holds a checkpoint besides its final one.")


def start_links_ui() -> None:
    """Where real runs come from."""
    c1, c2, c3, _ = st.columns([1, 1, 1, 1])
    c1.page_link("pages/language_models/lm_rl.py", label="Fine-tune a language model", icon=":material/model_training:")
    c2.page_link("pages/gymnasium/gym_agents.py", label="Train a Gymnasium agent", icon=":material/smart_toy:")
    c3.page_link("pages/runs/compare.py", label="Compare runs", icon=":material/compare_arrows:")


def main() -> None:
    st.title("Runs")
    st.caption("Every run in the store, whether started here or with `python -m llmrl_core` on the command line.")
    start_links_ui()
    runs = get_store().list_runs()
    if runs.empty:
        st.info("No runs yet. Start one from a training page (links above) or the CLI.")
        return
    queue_ui()
    disk_ui()
    runs_table_ui()
    run_id = run_picker_ui(runs, PICK_KEY, SELECTED_KEY)
    live_run_ui(run_id, run_detail_ui, key="runs")


main()
