"""AppTest of the run queue on the Runs page: the limit, the waiting runs in order, Up/Down and Cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from llmrl_core.runs import queue

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def queued(monkeypatch, tmp_path):
    """A home where one run holds the only slot (owned by this live process) and three demo runs wait."""
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    from ui import state

    state.get_run_manager.clear()
    store = state.get_store()
    queue.set_max_concurrent(store, 1)
    busy = store.create_run("demo", "busy", {"steps": 5})
    store.mark_started(busy)
    waiting = []
    for name in ("first", "<b>second</b>", "third"):
        run_id = store.create_run("demo", name, {"steps": 5})
        queue.enqueue(store, run_id)
        waiting.append(run_id)
    yield store, waiting
    store.set_status(busy, "stopped")
    for run_id in waiting:
        if queue.get_queue_position(store, run_id):
            queue.cancel(store, run_id)
    state.get_run_manager.clear()


def _open() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/runs/runs.py").run()
    assert not at.exception, at.exception
    return at


def _order(store) -> list[int]:
    return queue.list_queue(store)["id"].tolist()


def test_the_queue_panel_reorders_cancels_and_sets_the_limit(queued) -> None:
    store, (first, second, third) = queued
    at = _open()
    assert any(e.label.startswith("Run queue · 1 of 1 slot in use · 3 waiting") for e in at.expander)
    assert any("The workbench home" in c.value and "free on its disk" in c.value for c in at.caption)
    names = " ".join(m.value for m in at.markdown)
    assert f"#{first} first" in names and f"#{second} \\<b\\>second\\</b\\>" in names, names  # escaped
    assert at.button(key=f"queue_up_{first}").disabled and at.button(key=f"queue_down_{third}").disabled
    at.button(key=f"queue_down_{first}").click().run()
    assert _order(store) == [second, first, third]
    at.button(key=f"queue_up_{third}").click().run()
    assert _order(store) == [second, third, first]
    at.button(key=f"queue_cancel_{third}").click().run()
    assert _order(store) == [second, first] and store.get_run(third)["status"] == "stopped"
    assert any(e.label.endswith("2 waiting") for e in at.expander)
    at.number_input(key="queue_max_concurrent").set_value(3).run()
    assert queue.get_max_concurrent(store) == 3
    assert not at.exception, at.exception


def test_a_waiting_run_shows_its_place_and_cancels_from_its_view(queued) -> None:
    store, (first, second, third) = queued
    at = _open()
    at.selectbox(key="runs_pick").set_value(second).run()
    assert any("Waiting in the run queue: number 2 of 3" in i.value for i in at.info), [i.value for i in at.info]
    at.button(key=f"runs_cancel_{second}").click().run()
    assert store.get_run(second)["status"] == "stopped" and _order(store) == [first, third]
    assert not at.exception, at.exception


def test_free_space_on_the_runs_page_says_how_much_it_freed(queued) -> None:
    from llmrl_core.runs.files import get_run_dir

    store, _ = queued
    ended = store.create_run("lm_rl", "ended", {})
    for step in (1, 2):
        folder = get_run_dir(ended) / f"checkpoint-{step:06d}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"x" * 3_000_000)
        store.add_artifact(ended, step, "checkpoint", folder)
    store.set_status(ended, "stopped")
    at = _open()
    at.button(key="runs_free_space").click().run()
    assert not at.exception, at.exception
    assert "Freed 3.0 MB: 1 older checkpoint of 1 ended run; each kept its final checkpoint." in at.success[0].value
    assert (get_run_dir(ended) / "checkpoint-000002").exists() and not (get_run_dir(ended) / "checkpoint-000001").exists()
    at.button(key="runs_free_space").click().run()
    assert "Nothing to free" in at.info[0].value
