"""Serve the dashboard: `python -m ui.serve app.py [streamlit run options]` is `streamlit run app.py ...`
with Streamlit's legacy pages/ detection turned off from the start.

Why: Streamlit decides once per server, when the first session opens, whether the app is a v1
multipage app (a pages/ folder beside the main script). If it is, that first run executes the
v1 navigation instead of app.py, which knows none of our pages (they sit one folder down and are
registered with st.navigation), so the first deep link after a start (say /compare) showed a
"Page not found" dialog over the right page. st.navigation sets the same flag to False on its
first call; setting it before the first session gives every request, the first included, the
st.navigation behaviour. The flag is the class attribute PagesManager.uses_pages_directory.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run `streamlit run` in this process with the v1 pages/ detection off."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    # transformers resolves its names lazily on first use, and two session threads doing that at once can fail
    # ("cannot import name 'AutoConfig' from 'transformers'", seen when the Agent page and the sidebar first
    # ran together); resolving them here, before any session thread exists, takes that race away.
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    # The run manager's supervisor starts with the server, not with the first page view: runs waiting in the
    # queue start (and workers of an earlier server are watched) even when no browser is open.
    from llmrl_core.core.errors import WorkbenchError
    from ui.state import start_server_supervisor

    try:
        start_server_supervisor()
    except WorkbenchError as err:  # e.g. an unwritable LLMRL_HOME: the pages show the error, as before
        print(f"The run supervisor did not start: {err}", file=sys.stderr)
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["streamlit", "run", *(args or ["app.py"])]
    cli.main()


if __name__ == "__main__":
    main()
