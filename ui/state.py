"""Process-wide objects shared by every browser session, via st.cache_resource.

The model holder, the run store and the run manager are created once per server process and
are thread-safe, as Streamlit's caching guide requires for cache_resource objects.
"""

from __future__ import annotations

import os

import streamlit as st

from llmrl_core.lm.models import BUNDLED_SPEC, ModelHolder
from llmrl_core.runs import RunManager, RunStore
from llmrl_core.runs.reader import MetricsCache


@st.cache_resource(show_spinner=False)
def get_model_holder() -> ModelHolder:
    """The one loaded model shared by all sessions (nothing is loaded until asked)."""
    return ModelHolder()


def _close_run_manager(manager: RunManager) -> None:
    """Stop a run manager's supervisor thread when its cache entry goes (get_run_manager.clear())."""
    manager.close()


_server_manager: RunManager | None = None
"""The manager ui/serve.py starts with the server, before any session: queued runs start with no page open."""


def start_server_supervisor() -> RunManager:
    """Create the server's run manager now and start its supervisor (ui/serve.py calls this at start-up)."""
    global _server_manager
    _server_manager = RunManager(RunStore())
    _server_manager.watch_store()
    return _server_manager


@st.cache_resource(show_spinner=False, on_release=_close_run_manager)
def get_run_manager() -> RunManager:
    """The run manager (and through it the store); marks runs left by dead processes interrupted.

    The one the server started (start_server_supervisor), else a new one. Its supervisor thread runs from
    the start, so runs launched by an earlier server (re-attached after a restart) are watched and queued
    runs start in order. Clearing the cache closes it (its supervisor thread ends).
    """
    if _server_manager is not None and not _server_manager.closed:
        return _server_manager
    manager = RunManager(RunStore())
    manager.watch_store()
    return manager


def get_store() -> RunStore:
    """The run store behind the manager."""
    return get_run_manager().store


@st.cache_resource(show_spinner=False, max_entries=8)
def get_metrics_cache(store_path: str, run_id: int) -> MetricsCache:
    """One incremental metrics cache per run (and store), shared by every session and page: a long run's
    first read is paid once per server, later views read only new rows. Keyed by the store's path, since
    tests open several stores whose run ids overlap."""
    return MetricsCache(get_store(), run_id)


def default_model_spec() -> str:
    """The spec loaded when the user has not picked one: LLMRL_MODEL or the bundled model."""
    return os.environ.get("LLMRL_MODEL", BUNDLED_SPEC)


def load_model_ui(spec: str) -> bool:
    """Load `spec` into the shared holder with a progress bar; show a clear error and keep the old model on failure."""
    from llmrl_core.core.errors import WorkbenchError

    from llmrl_core.present.common import escape_markdown

    bar = st.progress(0.0, text=f"Loading {escape_markdown(spec or 'bundled')}…")
    try:
        get_model_holder().load(spec, progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
    except WorkbenchError as err:
        bar.empty()
        current = get_model_holder().current
        kept = f" The model {current.resolved.display_name} stays loaded." if current else ""
        st.error(escape_markdown(f"{err}{kept}"))  # quotes the spec
        return False
    bar.empty()
    return True


def ensure_model_ui():
    """Return the loaded model, loading the default (with progress) on first use; None if that fails."""
    holder = get_model_holder()
    if holder.current is None:
        load_model_ui(default_model_spec())
    return holder.current
