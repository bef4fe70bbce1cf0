"""Clone a run into a new one: the Runs page hands a config to the training page of its kind (RunKindSpec.clone_page).

The request travels in session state (the page switch is a rerun of another script in the same
session); the training page takes it once, fills its form from it and opens the "New run" view.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from llmrl_core.runs.kinds import find_kind

CLONE_KEY = "clone_request"


def find_clone_page(kind: str) -> str | None:
    """The page a run of `kind` is cloned on (its RunKindSpec.clone_page), or None when it cannot be cloned."""
    spec = find_kind(kind)
    return spec.clone_page if spec is not None else None


def request_clone(kind: str, config: dict[str, Any]) -> None:
    """Remember `config` for the page of `kind` and switch to it (does not return)."""
    page = find_clone_page(kind)
    if page is None:
        raise ValueError(f"Runs of kind {kind!r} have no page to clone them on.")
    st.session_state[CLONE_KEY] = {"kind": kind, "config": dict(config)}
    st.switch_page(page)


def take_clone_request(kind: str) -> dict[str, Any] | None:
    """The config a Clone button left for this page (once), or None."""
    request = st.session_state.get(CLONE_KEY)
    if not request or request.get("kind") != kind:
        return None
    del st.session_state[CLONE_KEY]
    return dict(request["config"])
