"""Small views of one run shared by the Runs, LM RL, Gym and Agent pages."""

from __future__ import annotations

import streamlit as st

from llmrl_core.present.common import escape_markdown


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
