"""LLM·RL Workbench: the router and the frame (sidebar); every page lives in app_pages/.

The folder is not called pages/: Streamlit still treats a pages/ folder beside the main
script as a v1 multipage app until st.navigation first runs, so the first request after a
server start to a deep link (e.g. /runs after a restart) ran that page without this frame,
and AppTest put pages/ on sys.path (a pages/gym.py would shadow the gym package).
"""

from __future__ import annotations

import streamlit as st

from llmrl_core.errors import WorkbenchError
from llmrl_core.paths import get_home
from llmrl_core.viz_rl import escape_markdown
from ui.live_run import active_runs_sidebar_ui
from ui.state import get_model_holder, get_store

st.set_page_config(page_title="LLM·RL Workbench", page_icon="🧪", layout="wide")

PAGES = {
    "Language models": [
        st.Page("app_pages/playground.py", title="Playground", icon=":material/chat:", default=True),
        st.Page("app_pages/attention.py", title="Attention", icon=":material/visibility:"),
        st.Page("app_pages/rl_training.py", title="RL fine-tuning", icon=":material/model_training:"),
    ],
    "Classic RL": [st.Page("app_pages/classic_rl.py", title="Gymnasium agents", icon=":material/smart_toy:")],
    "Runs": [
        st.Page("app_pages/runs.py", title="Runs", icon=":material/monitoring:"),
    ],
}


def render_model_sidebar_ui() -> None:
    """Show what model is loaded, where, and what it costs."""
    loaded = get_model_holder().current
    st.sidebar.markdown("**Model**")
    if loaded is None:
        st.sidebar.caption("None loaded yet: the Playground loads the bundled SmolLM2-135M-Instruct.")
        return
    facts = loaded.describe()
    st.sidebar.text(facts["name"])  # st.text: a model name is shown, never interpreted
    st.sidebar.caption(
        f"{facts['device']} · {facts['dtype']} · {facts['parameters'] / 1e6:.1f} M params · "
        f"{facts['memory_mb']:.0f} MB · ctx {facts['context_length']}"
    )


def check_home_ui() -> None:
    """Stop with a clear message when the workbench home (runs, caches) cannot be used."""
    try:
        get_home()
        store = get_store()
    except WorkbenchError as err:
        st.title("LLM·RL Workbench")
        st.error(escape_markdown(str(err)))
        st.stop()
    if store.recovery_message:  # a damaged store was moved aside at start-up: say so on every page
        st.warning(escape_markdown(store.recovery_message), icon=":material/warning:")


check_home_ui()
render_model_sidebar_ui()
active_runs_sidebar_ui()
st.navigation(PAGES).run()
