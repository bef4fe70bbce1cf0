"""The run queue on the Runs page: how many runs may run at once, the slots in use, the waiting runs in order
with Up, Down and Cancel (llmrl_core/runs/queue.py does the work; the supervisor starts the next run)."""

from __future__ import annotations

import streamlit as st

from llmrl_core.core.errors import InputError
from llmrl_core.present.common import escape_markdown
from llmrl_core.runs import queue
from ui.state import get_run_manager, get_store

LIMIT_KEY = "queue_max_concurrent"


def _set_limit() -> None:
    """Callback: store the limit the number input holds (the supervisor reads it at its next pass)."""
    try:
        queue.set_max_concurrent(get_store(), int(st.session_state[LIMIT_KEY]))
    except InputError as err:
        st.session_state["queue_error"] = str(err)


def _move(run_id: int, to: int) -> None:
    try:
        queue.move(get_store(), run_id, to)
    except InputError as err:  # it started or left meanwhile
        st.session_state["queue_error"] = str(err)


def _cancel(run_id: int) -> None:
    get_run_manager().stop(run_id)  # a waiting run leaves the queue; one that just started is stopped


def queue_ui() -> None:
    """The queue panel: open while runs wait, closed otherwise."""
    store = get_store()
    waiting = queue.list_queue(store)
    used, limit = queue.count_used_slots(store), queue.get_max_concurrent(store)
    title = f"Run queue · {used} of {limit} slot{'s' if limit != 1 else ''} in use · {len(waiting)} waiting"
    with st.expander(title, expanded=not waiting.empty, icon=":material/queue:"):
        st.number_input("Runs at once", min_value=1, max_value=queue.MAX_CONCURRENT_LIMIT, value=limit, step=1,
                        key=LIMIT_KEY, on_change=_set_limit,
                        help="Runs started beyond this wait here and start in order as slots free. A run on several "
                             "processes takes one slot per process. Default: one per GPU, one on a CPU-only machine; "
                             "the CLI sets it with `runs queue --max-concurrent N`.")
        if error := st.session_state.pop("queue_error", None):
            st.error(escape_markdown(error))
        if waiting.empty:
            st.caption("Nothing waits: a run started now begins at once if a slot is free.")
            return
        for row in waiting.itertuples():
            c_pos, c_name, c_up, c_down, c_cancel = st.columns([1, 6, 1, 1, 2], vertical_alignment="center")
            c_pos.markdown(f"**{row.position}.**")
            via = " · started by a command with --queue" if row.owner else ""
            c_name.markdown(f"#{row.id} {escape_markdown(row.name)} · {escape_markdown(row.kind)} · "
                            f"{row.slots} slot{'s' if row.slots != 1 else ''}{via}")
            c_up.button("↑", key=f"queue_up_{row.id}", on_click=_move, args=(row.id, row.position - 1),
                        disabled=row.position == 1, help="Earlier in the queue")
            c_down.button("↓", key=f"queue_down_{row.id}", on_click=_move, args=(row.id, row.position + 1),
                          disabled=row.position == len(waiting), help="Later in the queue")
            c_cancel.button("Cancel", key=f"queue_cancel_{row.id}", on_click=_cancel, args=(row.id,),
                            help="Leaves the queue; it never starts")
