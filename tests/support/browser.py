"""Helpers for real-browser tests: serve app.py with `python -m ui.serve` (streamlit run) on a free loopback port
(a band of ports per pytest-xdist worker), drive Chromium.

Chromium comes from Debian (apt package chromium); Playwright drives it through
executable_path, since `playwright install` cannot download browsers offline.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def find_chromium() -> str:
    """Path of the system Chromium, or skip with the command that installs it."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("Chromium is not installed (apt-get install chromium)")


PORT_BAND_START, PORT_BAND_SIZE = 20_000, 500  # below Linux's ephemeral range (32768-60999)


def get_port_band() -> range:
    """The ports this test process may serve on: a band of its own per pytest-xdist worker (gw0, gw1, ...).

    Below the kernel's ephemeral range, so no client connection (Chromium, Playwright, a health check) takes
    the port as its source port between the check and the server's bind, and two workers never race for one.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    start = PORT_BAND_START + PORT_BAND_SIZE * (index % 20)
    return range(start, start + PORT_BAND_SIZE)


def free_port() -> int:
    """A loopback TCP port in this process's band that nothing listens on now (a random start, so two test
    sessions on one machine rarely try the same one)."""
    band = get_port_band()
    first = random.randrange(len(band))
    for offset in range(len(band)):
        port = band[(first + offset) % len(band)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {band.start}-{band.stop - 1}")


def start_app(home: Path, extra_env: dict | None = None, timeout: float = 90.0,
              script: Path = ROOT / "app.py", attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """Start the dashboard (or another script) on a free loopback port in its own process group; wait until
    it answers; return (process, URL). The log goes to home/streamlit-PORT.log. A server that exits while
    starting (e.g. another process took its port first) is started again on another port."""
    for attempt in range(1, attempts + 1):
        try:
            return _start_app_once(home, extra_env, timeout, script)
        except ExitedEarly:
            if attempt == attempts:
                raise


class ExitedEarly(RuntimeError):
    """The server process ended before it answered."""


def _start_app_once(home: Path, extra_env: dict | None, timeout: float, script: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LLMRL_HOME": str(home), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    with open(home / f"streamlit-{port}.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.serve", str(script), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            pass
        exited = proc.poll() is not None
        if exited or time.monotonic() > deadline:
            stop_app(proc, signal.SIGKILL)
            message = f"streamlit did not start: {(home / f'streamlit-{port}.log').read_text()[-2000:]}"
            raise ExitedEarly(message) if exited else RuntimeError(message)
        time.sleep(0.3)


def stop_app(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a server from start_app with its whole process group (`sig` first, SIGKILL if it lingers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def serve_app(home: Path, extra_env: dict | None = None, timeout: float = 90.0,
              script: Path = ROOT / "app.py") -> Iterator[str]:
    """Start the dashboard (or another script) on a free loopback port; yield its URL; stop it by PID afterwards."""
    proc, url = start_app(home, extra_env, timeout, script)
    try:
        yield url
    finally:
        stop_app(proc)


@contextlib.contextmanager
def open_browser() -> Iterator[object]:
    """A Playwright page in headless system Chromium."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            yield page
        finally:
            browser.close()


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the script run an action started has finished (Streamlit shows its status widget meanwhile)."""
    page.wait_for_timeout(400)  # let the rerun the last action triggered begin
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)


def make_one_at_a_time_home(tmp_path: Path, workbench_home: Path) -> tuple[Path, object]:
    """A workbench home of the test's own (sharing the converted models) whose queue runs one run at a time, and its
    store: a limit of 1 in the shared home would hold up other tests' runs, and their runs would be counted."""
    from llmrl_core.runs import RunStore
    from llmrl_core.runs.queue import set_max_concurrent

    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(workbench_home / "cache")
    store = RunStore(home / "runs.sqlite")
    set_max_concurrent(store, 1)  # the page's setting, as a CPU-only machine has by default
    return home, store
