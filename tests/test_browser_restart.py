"""Real browser: a run started from the page keeps training through a kill -9 of the server and is stopped
from the page of a freshly started server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llmrl_core.runs import ACTIVE_STATUSES, RunManager, RunStore
from tests.browser_util import ROOT, free_port, open_browser


def _start_server(home: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free loopback port, in its own process group; wait for its health check."""
    port = free_port()
    env = {**os.environ, "LLMRL_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    log = open(home / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port", str(port),
         "--server.headless", "true"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("streamlit did not start")


def _kill_server(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


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
    first, url = _start_server(home)
    try:
        with open_browser() as page:
            page.goto(f"{url}/classic_rl", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Classic RL").wait_for(timeout=90_000)
            page.get_by_role("combobox", name="Algorithm").click()  # a random policy: no solved line stops it early
            page.get_by_role("option", name="Random").first.click()
            page.get_by_text("Settings", exact=True).wait_for(timeout=30_000)  # the random policy's form
            steps = page.get_by_role("spinbutton", name="total_steps")
            steps.fill("50000000")
            steps.press("Tab")
            page.wait_for_timeout(1000)
            page.get_by_role("button", name="Train", exact=True).click()
            page.get_by_test_id("stMain").get_by_role("button", name="Stop", exact=True).first.wait_for(timeout=60_000)
            assert _wait_for(lambda: not store.list_runs().empty and store.list_runs()["step"].iloc[0] > 0, 90)
        run_id = int(store.list_runs()["id"].iloc[0])
    finally:
        _kill_server(first)  # kill -9 of the whole server process group

    step = store.get_run(run_id)["step"]
    assert _wait_for(lambda: store.get_run(run_id)["step"] > step, 30), "the run stopped with the server"
    assert store.get_run(run_id)["status"] == "running"

    second, url = _start_server(home)
    try:
        with open_browser() as page:
            page.goto(f"{url}/classic_rl", wait_until="domcontentloaded")
            page.get_by_text(f"#{run_id}").first.wait_for(timeout=90_000)
            page.get_by_test_id("stMain").get_by_role("button", name="Stop", exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "reattached.png"), full_page=True)
            before = store.get_run(run_id)["step"]
            assert _wait_for(lambda: store.get_run(run_id)["step"] > before, 20), "not advancing after the restart"
            page.get_by_test_id("stMain").get_by_role("button", name="Stop", exact=True).first.click()
            run = store.get_run(run_id)
            assert _wait_for(lambda: store.get_run(run_id)["status"] == "stopped", 30), (
                run["control"], store.get_run(run_id)["status"], store.read_logs(run_id)["message"].tolist())
            page.get_by_text("stopped").first.wait_for(timeout=30_000)
    finally:
        _kill_server(second)
    assert (tmp_path / "reattached.png").stat().st_size > 10_000
