"""Real browser: a run started from the page keeps training through a kill -9 of the server and is stopped
from the page of a freshly started server."""

from __future__ import annotations

import signal
import time

import pytest

from llmrl_core.runs import ACTIVE_STATUSES, RunManager, RunStore
from tests.support.browser import open_browser, start_app, stop_app
from tests.support.waiting import wait_for


@pytest.fixture()
def home(tmp_path):
    """A workbench home whose workers are killed at the end, whatever the test did (they outlive servers)."""
    home = tmp_path / "home"
    home.mkdir()
    yield home
    manager = RunManager(RunStore(home / "runs.sqlite"))
    for run_id in manager.store.list_runs(statuses=ACTIVE_STATUSES)["id"]:
        manager.kill(int(run_id))


@pytest.mark.browser
def test_a_run_outlives_a_killed_server_and_is_stopped_from_the_restarted_one(tmp_path, home):
    store = RunStore(home / "runs.sqlite")
    first, url = start_app(home)
    try:
        with open_browser() as page:
            page.goto(f"{url}/gym", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Gym", exact=True).wait_for(timeout=90_000)
            page.get_by_test_id("stSidebar").get_by_text("Active runs").wait_for(timeout=30_000)  # the app's frame
            page.wait_for_timeout(1000)
            assert page.get_by_text("Page not found").count() == 0  # the first deep link after a start (ui/serve.py)
            page.get_by_role("combobox", name="Algorithm").click()  # a random policy: no solved line stops it early
            page.get_by_role("option", name="Random").first.click()
            page.get_by_text("Settings", exact=True).wait_for(timeout=30_000)  # the random policy's form
            steps = page.get_by_role("spinbutton", name="total_steps")
            steps.fill("50000000")
            steps.press("Tab")
            page.wait_for_timeout(1000)
            page.get_by_role("button", name="Train", exact=True).click()
            page.get_by_test_id("stMain").get_by_role("button", name="Stop", exact=True).first.wait_for(timeout=60_000)
            assert wait_for(lambda: not store.list_runs().empty and store.list_runs()["step"].iloc[0] > 0, 90)
        run_id = int(store.list_runs()["id"].iloc[0])
    finally:
        stop_app(first, signal.SIGKILL)  # kill -9 of the whole server process group

    step = store.get_run(run_id)["step"]
    assert wait_for(lambda: store.get_run(run_id)["step"] > step, 30), "the run stopped with the server"
    assert store.get_run(run_id)["status"] == "running"

    second, url = start_app(home)
    try:
        with open_browser() as page:
            page.goto(f"{url}/gym", wait_until="domcontentloaded")
            page.get_by_text(f"#{run_id}").first.wait_for(timeout=90_000)
            page.get_by_test_id("stMain").get_by_role("button", name="Stop", exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "reattached.png"), full_page=True)
            before = store.get_run(run_id)["step"]
            assert wait_for(lambda: store.get_run(run_id)["step"] > before, 20), "not advancing after the restart"
            page.get_by_test_id("stMain").get_by_role("button", name="Stop", exact=True).first.click()
            run = store.get_run(run_id)
            assert wait_for(lambda: store.get_run(run_id)["status"] == "stopped", 30), (
                run["control"], store.get_run(run_id)["status"], store.read_logs(run_id)["message"].tolist())
            page.get_by_text("stopped").first.wait_for(timeout=30_000)
    finally:
        stop_app(second, signal.SIGKILL)
    assert (tmp_path / "reattached.png").stat().st_size > 10_000
