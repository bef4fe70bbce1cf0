"""Which recorded episode a live player shows: the newest, but only once the one on screen has played through
(so a fast run does not restart the replay every second). Shared by the Gym and Agent pages."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

REPLAY_MARGIN_S = 1.5  # seconds the last frame stays before the next episode replaces it


def pick_episode_to_show(run_id: int, episodes: Any, state_key: str) -> Any:
    """The row of `episodes` (a store artifacts frame, oldest first) to show now for `run_id`."""
    state = st.session_state.setdefault(state_key, {})
    shown = state.get(run_id)
    newest = episodes.iloc[-1]
    if shown is not None and shown["id"] in set(episodes["id"]):
        meta = shown["meta"]
        duration = meta.get("length", 0) / max(meta.get("fps", 30), 1) + REPLAY_MARGIN_S
        if shown["id"] == newest["id"] or time.monotonic() - shown["since"] < duration:
            return episodes[episodes["id"] == shown["id"]].iloc[0]
    state[run_id] = {"id": newest["id"], "since": time.monotonic(), "meta": newest["meta"]}
    return newest
