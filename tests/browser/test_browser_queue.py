"""Real browser: with one run at a time, a second Train on the Gym page waits in the queue, shows its place, and
starts by itself when the first ends; the Runs page shows the queue while it waits."""

from __future__ import annotations

import time

import pytest

from tests.support.browser import make_one_at_a_time_home, open_browser, serve_app, wait_idle


def _train(page, steps: str) -> None:
    box = page.get_by_role("spinbutton", name="total_steps")
    box.fill(steps)
    box.press("Tab")
    wait_idle(page)  # the rerun the field started: a click during it can be lost under load
    page.get_by_role("button", name="Train", exact=True).click()


@pytest.mark.browser
def test_a_second_run_waits_its_turn_and_starts_by_itself(tmp_path, workbench_home):
    home, store = make_one_at_a_time_home(tmp_path, workbench_home)
    with serve_app(home) as url, open_browser() as page:
        page.goto(f"{url}/gym", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Gym", exact=True).wait_for(timeout=90_000)
        _train(page, "30000")
        page.get_by_text("Live: refreshing every second.").wait_for(timeout=60_000)
        _train(page, "2000")
        page.get_by_text("Waiting in the run queue: number 1 of 1").wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "queue_waiting.png"), full_page=True)
        runs = store.list_runs(kind="gym").sort_values("id")
        first, second = (int(i) for i in runs["id"])
        assert store.get_run(second)["status"] == "queued" and store.get_run(first)["status"] in ("queued", "running")

        page.goto(f"{url}/runs", wait_until="domcontentloaded")
        page.get_by_text("Run queue · 1 of 1 slot in use · 1 waiting").wait_for(timeout=60_000)

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and store.get_run(second)["status"] != "completed":
            time.sleep(0.5)
        one, two = store.get_run(first), store.get_run(second)
        assert one["status"] == "completed" and two["status"] == "completed", (one["error"], two["error"])
        assert two["started"] >= one["ended"]  # one after the other
        assert any(m.startswith("Left the run queue") for m in store.read_logs(second)["message"])
        assert (tmp_path / "queue_waiting.png").stat().st_size > 10_000
