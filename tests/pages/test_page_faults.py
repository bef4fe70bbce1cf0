"""Faults seen from the app: start-up on a damaged run store (the engine side is tests/unit/test_faults.py)."""

from __future__ import annotations

from pathlib import Path


def test_the_app_serves_and_says_so_after_a_damaged_store_was_moved_aside(monkeypatch, tmp_path, tiny_model_dir):
    """Start-up on a damaged runs.sqlite: the file is moved aside, every page serves, and the frame says what happened."""
    from streamlit.testing.v1 import AppTest

    from ui import state

    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("LLMRL_HOME", str(home))
    monkeypatch.setenv("LLMRL_MODEL", str(tiny_model_dir))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    state.get_run_manager.clear()
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=120)
        at.switch_page("pages/runs/runs.py").run()
        assert not at.exception, [e.value for e in at.exception]
        shown = " ".join(w.value for w in at.warning).replace("\\", "")  # the page escapes Markdown
        assert "corrupt-" in shown and "runs.sqlite" in shown, shown
        assert list(home.glob("runs.sqlite.corrupt-*")), "the damaged file was not kept"
    finally:
        state.get_run_manager.clear()
