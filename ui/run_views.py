"""Small views of one run shared by the Runs, LM RL, Gym and Agent pages."""

from __future__ import annotations

import streamlit as st

from llmrl_core.present.common import escape_markdown

COMPARE_PAGE = "pages/runs/compare.py"
COMPARE_REQUEST_KEY = "compare_request"  # run ids another page asks Compare to open with (Compare takes it once)


def open_in_compare(run_ids: list[int]) -> None:
    """Switch to the Compare page holding `run_ids` (does not return)."""
    st.session_state[COMPARE_REQUEST_KEY] = [int(r) for r in run_ids]
    st.switch_page(COMPARE_PAGE)


def take_compare_request() -> list[int] | None:
    """The run ids another page asked Compare to open with (once), or None."""
    return st.session_state.pop(COMPARE_REQUEST_KEY, None)


def run_error_ui(run: dict, interrupted_hint: str = "") -> None:
    """A failed run's headline (escaped: it may quote model output or file contents) with its traceback
    in an expander; an interrupted run's reason, followed by `interrupted_hint`."""
    if run["status"] == "failed":
        headline, _, trace = (run.get("error") or "The run failed without a message.").partition("\n\n")
        st.error(escape_markdown(headline))
        if trace.strip():
            with st.expander("Traceback"):
                st.code(trace, language="text")
    elif run["status"] == "interrupted":
        st.warning(escape_markdown(run.get("error") or "The run was interrupted.") + interrupted_hint)
