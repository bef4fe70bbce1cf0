"""The live-run view shared by the RL fine-tuning, Gymnasium and Runs pages: picker, controls, polling.

`live_run_ui(run_id, render_body, key)` draws one run with the page's `render_body(view)` inside
a fragment that reruns every POLL_SECONDS while the run is active. Each poll costs one indexed
SELECT (`RunStore.read_run_heartbeat`); only when the heartbeat changed does it read the new
metric rows (one `MetricsCache` per run, shared by all sessions: ui.state.get_metrics_cache) and
the run row. Streamlit drops a fragment's elements unless the
rerun draws them again, so the body always runs, but on a poll where nothing moved it gets the
same `LiveRun` back and `view.memo`/`view.chart` hand out the figures (and anything else costly)
built on the last move instead of building them again. When the run ends the fragment calls a
full `st.rerun()`, which stops the polling; the picker keeps the run selected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import pandas as pd
import streamlit as st

from llmrl_core.runs import ACTIVE_STATUSES
from llmrl_core.runs.reader import DEFAULT_MAX_POINTS, downsample
from llmrl_core.runs.queue import get_queue_position
from llmrl_core.runs.store import RunHeartbeat
from llmrl_core.present.common import escape_markdown
from ui.state import get_metrics_cache, get_run_manager, get_store

POLL_SECONDS = 1.0
IDLE_POLL_SECONDS = 5.0  # the sidebar, while no run is active: notices runs started from the CLI
STATUS_ICONS = {"queued": "⏳", "running": "🟢", "paused": "⏸️", "completed": "✅", "stopped": "⏹️",
                "failed": "❌", "interrupted": "⚠️"}
LIVE_CAPTION = "Live: refreshing every second."


def format_status(status: str) -> str:
    """A status with its icon, e.g. '🟢 running'."""
    return f"{STATUS_ICONS.get(status, '')} {status}".strip()


# ----------------------------------------------------------------------------- picking a run


def select_run(run_id: int, widget_key: str, selected_key: str) -> None:
    """Make the picker `widget_key` show `run_id` on the next full run (call before st.rerun())."""
    st.session_state[selected_key] = run_id
    st.session_state.pop(widget_key, None)


def run_picker_ui(runs: pd.DataFrame, widget_key: str, selected_key: str, label: str = "Run") -> int | None:
    """A select box over `runs` (newest first) that follows the user.

    Shows, in order: the run named in st.session_state[selected_key] when the box has no choice
    yet (a run just started: see `select_run`), else the newest active run, else the newest. A
    run that appears while the user watches the newest one is followed; an older run the user
    picked stays picked, also when it ends. Labels carry no status: a label that changed would
    lose the selection in the browser.
    """
    if runs.empty:
        return None
    ids = [int(i) for i in runs["id"]]
    newest_key = f"{widget_key}__newest"
    previous_newest = st.session_state.get(newest_key)
    st.session_state[newest_key] = ids[0]
    current = st.session_state.get(widget_key)
    if current in ids and previous_newest is not None and ids[0] != previous_newest and current == previous_newest:
        st.session_state[widget_key] = ids[0]  # a new run appeared while the newest was on screen
    elif current not in ids:
        wanted = st.session_state.get(selected_key)
        if wanted not in ids:
            active = runs[runs["status"].isin(ACTIVE_STATUSES)]["id"].tolist()
            wanted = int(active[0]) if active else ids[0]
        st.session_state[widget_key] = wanted
    names = runs.set_index("id")["name"].to_dict()
    created = runs.set_index("id")["created"].to_dict()

    def label_of(i: int) -> str:
        return f"#{i} {names[i]} · {time.strftime('%d %b %H:%M', time.localtime(created[i]))}"

    run_id = st.selectbox(label, ids, key=widget_key, format_func=label_of)
    st.session_state[selected_key] = run_id
    return run_id


# ----------------------------------------------------------------------------- controls and progress


def run_controls_ui(run: dict, key_prefix: str, container: Any = None) -> None:
    """Pause or resume, and stop, for an active run (each takes effect at the job's next step boundary)."""
    if run["status"] not in ACTIVE_STATUSES:
        return
    manager = get_run_manager()
    run_id, status = run["id"], run["status"]
    place = get_queue_position(manager.store, run_id) if status == "queued" else None
    if place is not None:
        (container or st).info(f"Waiting in the run queue: number {place[0]} of {place[1]}. It starts when a slot "
                               "frees (the Runs page shows the queue and how many runs may run at once).",
                               icon=":material/hourglass_top:")
        if (container or st).button("Cancel", key=f"{key_prefix}_cancel_{run_id}", help="Leaves the queue; it never starts."):
            manager.stop(run_id)
            st.toast(f"Run {run_id} left the queue.")
        return
    c1, c2 = (container or st).columns(2)
    if status == "running" and c1.button("Pause", key=f"{key_prefix}_pause_{run_id}", help="Pauses after the current step."):
        manager.pause(run_id)
        st.toast(f"Run {run_id} pauses after its current step.")
    if status == "paused" and c1.button("Resume", key=f"{key_prefix}_resume_{run_id}"):
        manager.resume(run_id)
        st.toast(f"Run {run_id} resumes.")
    if c2.button("Stop", key=f"{key_prefix}_stop_{run_id}", type="primary", help="Stops after the current step."):
        manager.stop(run_id)
        st.toast(f"Run {run_id} stops after its current step.")


def run_progress_ui(run: dict, detail: str = "") -> None:
    """The progress bar: a completed run is done (full), whatever its budget; others show how far they got."""
    total, step = run.get("total_steps"), int(run.get("step") or 0)
    if not total:
        return
    text = f"step {step:,} of {int(total):,}"
    fraction = min(step / float(total), 1.0)
    if run["status"] == "completed":
        fraction = 1.0
        text = f"done · {step:,} steps" + ("" if step >= total else f" of a {int(total):,}-step budget")
    st.progress(fraction, text=text + detail)


# ----------------------------------------------------------------------------- the live view


@dataclass
class LiveRun:
    """What a page's body draws one run from; the same object comes back on polls where nothing moved."""

    run: dict
    heartbeat: RunHeartbeat
    metrics: pd.DataFrame  # every metric so far, wide (one row per step)
    key: str
    moved: bool = True  # False on a poll where the heartbeat did not change
    _memo: dict = field(default_factory=dict)

    @property
    def run_id(self) -> int:
        return int(self.run["id"])

    @property
    def active(self) -> bool:
        return self.run["status"] in ACTIVE_STATUSES

    def memo(self, name: str, build: Callable[[], Any], *deps: Hashable) -> Any:
        """`build()`, computed once per heartbeat and per `deps` (e.g. the metrics a user picked)."""
        entry = self._memo.get(name)
        if entry is None or entry[0] != deps:
            entry = (deps, build())
            self._memo[name] = entry
        return entry[1]

    def plot_metrics(self, max_points: int = DEFAULT_MAX_POINTS) -> pd.DataFrame:
        """The metrics downsampled for drawing (at most `max_points` per series)."""
        return self.memo(f"__plot_{max_points}", lambda: downsample(self.metrics, max_points))

    def chart(self, name: str, build: Callable[[], Any], *deps: Hashable, **kwargs: Any) -> None:
        """st.plotly_chart of a figure built once per heartbeat (and per `deps`), keyed per run."""
        kwargs.setdefault("width", "stretch")
        st.plotly_chart(self.memo(f"__fig_{name}", build, *deps), key=f"{self.key}_{name}_{self.run_id}", **kwargs)


def _refresh(store: Any, run_id: int, key: str, beat: RunHeartbeat) -> LiveRun:
    """The session's LiveRun for `run_id`, brought up to date only when its heartbeat changed."""
    slot = st.session_state.setdefault("live_run_views", {})
    entry = slot.get(key)
    if entry is None or entry["run_id"] != run_id:  # one run per view: switching drops the other's figures
        entry = {"run_id": run_id, "view": None}
        slot[key] = entry
    view = entry["view"]
    if view is not None and view.heartbeat == beat:
        view.moved = False
        return view
    run = store.get_run(run_id)
    cache = get_metrics_cache(str(store.path), run_id)
    cache.update()
    view = LiveRun(run=run, heartbeat=beat, metrics=cache.wide, key=key)
    entry["view"] = view
    return view


def _watch_body(run_id: int, key: str, drawn: RunHeartbeat) -> None:
    """The poll: one indexed SELECT; a full rerun of the page when the run moved on from what is drawn.

    The first pass after the page drew `drawn` (the inline call during that very run) only records it:
    comparing there would rerun the page at once whenever the run moves faster than a page draws (a
    Gymnasium run does), and the page would never finish drawing. So a page redraws at most once a poll.
    """
    st.caption(LIVE_CAPTION)
    marker = f"live_watch_{key}"
    if st.session_state.get(marker) != drawn:
        st.session_state[marker] = drawn
        return
    beat = get_store().read_run_heartbeat(run_id)
    if beat is None or beat != drawn:
        st.rerun()  # redraw the page from the new state (and stop polling once the run has ended)


def live_run_ui(run_id: int, render_body: Callable[[LiveRun], None], key: str) -> None:
    """Draw run `run_id` with `render_body(view)`, then poll while it is active (see the module docstring).

    The body is drawn by the page's own run, not inside the polling fragment: a fragment must
    re-emit every element it drew on each rerun, and the browser then lays out and replots every
    chart once a second even when nothing changed (measured: most of Chromium's CPU while a run
    was watched). Here the fragment draws one caption, and the page reruns only when the run moved.
    """
    store = get_store()
    beat = store.read_run_heartbeat(run_id)
    if beat is None:
        st.warning(f"Run {run_id} no longer exists.")
        return
    view = _refresh(store, run_id, key, beat)
    render_body(view)
    if beat.status in ACTIVE_STATUSES:
        st.fragment(run_every=POLL_SECONDS)(_watch_body)(run_id, key, beat)


def run_heading_ui(run: dict, facts: str = "") -> None:
    """'#id · name' (escaped: names come from YAML files and users) and a caption with the status first."""
    st.subheader(f"\\#{run['id']} · {escape_markdown(run['name'])}")
    st.caption(format_status(run["status"]) + (f" · {facts}" if facts else ""))


# ----------------------------------------------------------------------------- the sidebar


def _active_runs_body() -> None:
    runs = get_store().list_runs(statuses=list(ACTIVE_STATUSES))
    ids = tuple(int(i) for i in runs["id"])
    previous = st.session_state.get("sidebar_active_ids")
    st.session_state["sidebar_active_ids"] = ids
    st.markdown("**Active runs**")
    if runs.empty:
        st.caption("No run is active.")
    for r in runs.head(8).itertuples():
        total = r.total_steps if r.total_steps == r.total_steps and r.total_steps else None
        label = f"#{r.id} {escape_markdown(r.kind)} · {r.status}"
        if total:
            st.progress(min(float(r.step or 0) / float(total), 1.0), text=f"{label} · {int(r.step or 0)}/{int(total)}")
        else:
            st.caption(label)
    if previous is not None and previous != ids:
        st.rerun()  # a run started or ended (here, in another tab or the CLI): pages refresh their lists


def active_runs_sidebar_ui() -> None:
    """The sidebar's active runs with their progress, live: a fragment polling once a second while any
    run is active (every IDLE_POLL_SECONDS otherwise); when the set of active runs changes it reruns the page."""
    active = not get_store().list_runs(statuses=list(ACTIVE_STATUSES)).empty
    st.session_state["sidebar_active_ids"] = None  # a full run: the fragment's first pass only records the set
    with st.sidebar:
        st.fragment(run_every=POLL_SECONDS if active else IDLE_POLL_SECONDS)(_active_runs_body)()
