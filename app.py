"""LLM·RL Workbench: the router and the frame (sidebar); every page lives in pages/<section>/.

Pages sit one folder down, one folder per sidebar section: Streamlit's legacy multipage
detection only picks up scripts directly in pages/, and served the first deep link after a
server start (e.g. /runs) without this frame when they were there. One folder down they are
only reached through st.navigation below (tests/browser/test_browser_restart.py checks the deep link).
"""

from __future__ import annotations

import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.core.paths import get_home
from llmrl_core.present.common import escape_markdown
from ui.live_run import active_runs_sidebar_ui
from ui.state import get_model_holder, get_store

st.set_page_config(page_title="LLM·RL Workbench", page_icon="🧪", layout="wide")

PAGES = {
    "Workbench": [st.Page("pages/home/overview.py", title="Overview", icon=":material/home:", default=True)],
    "Language models": [
        st.Page("pages/language_models/playground.py", title="Playground", icon=":material/chat:"),
        st.Page("pages/language_models/attention.py", title="Attention", icon=":material/visibility:"),
        st.Page("pages/language_models/lm_rl.py", title="LM RL", icon=":material/model_training:"),
    ],
    "Gymnasium": [
        st.Page("pages/gymnasium/gym_agents.py", title="Gym", icon=":material/smart_toy:", url_path="gym"),
        st.Page("pages/gymnasium/agent.py", title="Agent", icon=":material/psychology:"),
    ],
    "Runs": [
        st.Page("pages/runs/runs.py", title="Runs", icon=":material/monitoring:"),
        st.Page("pages/runs/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/runs/before_after.py", title="Before/after", icon=":material/difference:"),
        st.Page("pages/runs/sweeps.py", title="Sweeps", icon=":material/tune:"),
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
