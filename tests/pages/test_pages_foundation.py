"""AppTest for the frame, the Playground and the Runs page (in-process, no browser)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def app_env(monkeypatch, tiny_model_dir, tmp_path):
    """Serve the tiny model by default and a fresh store per test."""
    monkeypatch.setenv("LLMRL_MODEL", str(tiny_model_dir))
    monkeypatch.chdir(ROOT)
    from ui import state

    state.get_model_holder.clear()
    state.get_run_manager.clear()
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    yield
    state.get_model_holder.clear()
    state.get_run_manager.clear()


def _app(page: str | None = "pages/language_models/playground.py") -> AppTest:
    """The whole app (frame and router), switched to `page` (None: where the app opens)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if page is not None:
        at.switch_page(page)
    return at


def test_app_opens_on_the_overview_with_headlines_and_demo_entries(app_env):
    at = _app(None)
    at.run()
    assert not at.exception
    assert at.title[0].value == "LLM·RL Workbench"
    links = [link.proto.page for link in at.get("page_link")]
    assert [p for p in links if "lm_rl" in p] and [p for p in links if "attention" in p] and [p for p in links if "gym" in p]
    assert any("No runs yet" in i.value for i in at.info)
    from tests.support.demo_job import run_demo_job
    from ui.state import get_run_manager, get_store

    manager = get_run_manager()
    run_id = manager.start("demo", {"steps": 3, "delay": 0.0}, name="<b>bold</b> **demo**", total_steps=3, job=run_demo_job)
    assert manager.wait(run_id, 30)
    store = get_store()
    gym_id = store.create_run("gym", "pole", {"env_id": "CartPole-v1"}, total_steps=1000)
    store.set_summary(gym_id, {"solved_at_step": 13000, "solved_seconds": 11.9})
    at.run()
    assert not at.exception
    from llmrl_core.present.common import escape_markdown

    shown = " ".join(m.value for m in at.markdown)
    assert "3 of 3 steps" in shown
    assert escape_markdown("solved CartPole-v1 at 13,000 steps in 12 s") in shown
    assert escape_markdown("<b>bold</b> **demo**") in shown  # shown as typed, never rendered as Markdown


def test_playground_generates_and_shows_tokens(app_env):
    at = _app()
    at.run()
    assert not at.exception
    assert at.title[0].value == "Playground"
    at.radio(key="pg_mode").set_value("Raw text")
    at.text_area(key="pg_prompt").input("Once upon a time")
    at.number_input(key="pg_max_new").set_value(6)
    at.button(key="pg_generate").click().run()
    assert not at.exception and not at.error
    texts = [t.value for t in at.text]
    assert len(texts) >= 2  # two samples by default
    assert [m.label for m in at.metric] == ["Time", "Tokens", "Tokens/s"]
    fresh = _app()  # a new session: the model loaded above is shared and shown in the sidebar
    fresh.run()
    sidebar = " ".join(c.value for c in fresh.sidebar.caption) + " ".join(t.value for t in fresh.sidebar.text)
    assert "cpu" in sidebar and "params" in sidebar and "tiny_llama" in sidebar


def test_playground_bad_spec_keeps_the_model(app_env):
    at = _app()
    at.run()
    at.text_input(key="pg_spec").input("/no/such/model")
    at.button(key="pg_load").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("No file or folder at '/no/such/model'" in e and "stays loaded" in e for e in errors)
    at.button(key="pg_generate").click().run()
    assert not at.exception and at.metric  # the previous model still generates


def test_playground_empty_prompt_and_bad_seed(app_env):
    at = _app()
    at.run()
    at.text_area(key="pg_prompt").input("   ")
    at.button(key="pg_generate").click().run()
    assert any("prompt is empty" in e.value for e in at.error)
    at.text_input(key="pg_seed").input("abc").run()
    assert any("seed must be a whole number" in e.value for e in at.error)
    assert at.button(key="pg_generate").disabled  # nothing runs with a bad setting
    at.number_input(key="pg_max_new").set_value(5000)
    at.text_input(key="pg_seed").input("1")
    at.text_area(key="pg_prompt").input("hello").run()
    at.button(key="pg_generate").click().run()
    assert any("context of 256 tokens" in e.value for e in at.error)


def _shown_run(at: AppTest) -> int:
    return at.selectbox(key="runs_pick").value


def test_runs_page_offers_real_work_and_follows_new_runs(app_env):
    at = _app()
    at.switch_page("pages/runs/runs.py").run()
    assert not at.exception
    assert any("No runs yet" in i.value for i in at.info)
    links = [link.proto.page for link in at.get("page_link")]
    assert any("lm_rl" in p for p in links) and any("gym" in p for p in links), links
    assert not [b for b in at.button if "demo" in b.label.lower()]  # the store-only demo left the page
    from tests.support.demo_job import run_demo_job
    from ui.live_run import format_status
    from ui.state import get_run_manager

    manager = get_run_manager()  # runs in threads (job=...): this tests the page, not the worker processes
    first = manager.start("demo", {"steps": 3, "delay": 0.01}, name="first", total_steps=3, job=run_demo_job)
    assert manager.wait(first, 30)
    at.run()
    assert not at.exception
    assert _shown_run(at) == first
    assert at.dataframe  # the runs table
    # A run started while the newest is on screen is followed...
    second = manager.start("demo", {"steps": 2000, "delay": 0.02}, name="second", total_steps=2000, job=run_demo_job)
    at.run()
    assert _shown_run(at) == second
    assert any("LIVE" in c.value.upper() for c in at.caption)
    # ...and stays on screen when it ends.
    manager.stop(second)
    assert manager.wait(second, 30)
    at.run()
    assert not at.exception
    assert _shown_run(at) == second
    final = manager.store.get_run(second)["status"]  # stopped (or completed, if it got there first)
    assert any(c.value.startswith(f"{format_status(final)} ·") for c in at.caption), [c.value for c in at.caption]
    # An older run the user picked stays picked when another run starts and ends.
    at.selectbox(key="runs_pick").set_value(first).run()
    third = manager.start("demo", {"steps": 2, "delay": 0.01}, name="third", total_steps=2, job=run_demo_job)
    at.run()
    assert _shown_run(at) == first
    assert manager.wait(third, 30)
    at.run()
    assert _shown_run(at) == first
    assert any(c.value.startswith(f"{format_status('completed')} ·") for c in at.caption)


@pytest.mark.parametrize("make_spec, message", [
    (lambda tmp: "/no/such/model", "No file or folder"),
    (lambda tmp: str(tmp), "no config.json"),
    (lambda tmp: (tmp / "bad.gguf").write_bytes(b"junk" * 10) and str(tmp / "bad.gguf"), "not a valid GGUF"),
])
def test_playground_bad_model_specs(app_env, tmp_path, make_spec, message):
    folder = tmp_path / "input"
    folder.mkdir()
    at = _app()
    at.run()
    at.text_input(key="pg_spec").input(make_spec(folder))
    at.button(key="pg_load").click().run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # the page backslash-escapes Markdown in the spec
    assert any(message in e and "stays loaded" in e for e in errors)


def test_unwritable_home_gives_a_message_not_a_crash(app_env, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("LLMRL_HOME", str(blocker / "home"))
    from ui import state

    state.get_run_manager.clear()
    at = _app()
    at.run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # the frame backslash-escapes Markdown in messages
    assert any("not writable" in e and "LLMRL_HOME" in e for e in errors)


def test_playground_multi_turn_chat(app_env):
    at = _app()
    at.run()
    at.radio(key="pg_mode").set_value("Chat")
    at.text_area(key="pg_prompt").input("Hello there")
    at.number_input(key="pg_max_new").set_value(4)
    at.button(key="pg_generate").click().run()
    assert not at.exception
    at.button(key="pg_keep_0").click().run()  # keep sample 1 as the reply
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert at.text_area(key="pg_prompt").label == "Your next message"
    at.text_area(key="pg_prompt").input("And then?")
    at.button(key="pg_generate").click().run()
    assert not at.exception and at.metric
    at.button(key="pg_clear_chat").click().run()
    assert not at.chat_message


def test_runs_page_shows_disk_use_and_deletes_a_run_with_its_files(app_env):
    from llmrl_core.core.paths import get_artifact_dir
    from ui.state import get_store

    store = get_store()
    run_id = store.create_run("gym", "with files", {"env_id": "CartPole-v1"}, 10)
    folder = get_artifact_dir(run_id)
    (folder / "agent.zip").write_bytes(b"x" * 2500)
    store.add_artifact(run_id, 10, "agent", folder / "agent.zip")
    store.set_status(run_id, "completed")
    at = _app()
    at.switch_page("pages/runs/runs.py").run()
    assert not at.exception, at.exception
    assert any("2.5 kB on disk" in c.value for c in at.caption), [c.value for c in at.caption]
    assert at.checkbox(key=f"delete_files_{run_id}").value  # offered, and on by default
    at.button(key=f"delete_{run_id}").click().run()
    assert not at.exception, at.exception
    assert store.get_run(run_id) is None
    assert not (folder / "agent.zip").exists()
    assert any("No runs yet" in i.value for i in at.info)
