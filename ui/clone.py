"""Clone a run into a new one: the Runs page hands a config to the training page of its kind.

The request travels in session state (the page switch is a rerun of another script in the same
session); the training page takes it once, fills its form from it and opens the "New run" view.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

CLONE_KEY = "clone_request"
PAGES = {"lm_rl": "pages/language_models/lm_rl.py", "gym": "pages/gymnasium/gym_agents.py", "agent": "pages/gymnasium/agent.py"}


def request_clone(kind: str, config: dict[str, Any]) -> None:
    """Remember `config` for the page of `kind` and switch to it (does not return)."""
    st.session_state[CLONE_KEY] = {"kind": kind, "config": dict(config)}
    st.switch_page(PAGES[kind])


def take_clone_request(kind: str) -> dict[str, Any] | None:
    """The config a Clone button left for this page (once), or None."""
    request = st.session_state.get(CLONE_KEY)
    if not request or request.get("kind") != kind:
        return None
    del st.session_state[CLONE_KEY]
    return dict(request["config"])
