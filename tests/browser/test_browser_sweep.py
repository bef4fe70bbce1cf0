"""Real browser: a sweep of 4 tiny Gym runs queued from the Gym page runs one run at a time, the Sweeps page
shows every trial with its result and the best, and "Compare the best 3" opens those runs in Compare."""

from __future__ import annotations

import time

import pytest

from llmrl_core.runs.sweeps import list_sweeps, pick_best_runs, read_trials
from tests.support.browser import make_one_at_a_time_home, open_browser, serve_app, wait_idle


def _overlap(runs) -> bool:
    """True when two runs' [started, ended] spans overlap (the limit of 1 forbids it)."""
    spans = sorted((r["started"], r["ended"]) for r in runs)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


@pytest.mark.browser
def test_a_sweep_from_the_gym_page_runs_one_by_one_and_opens_the_best_in_compare(tmp_path, workbench_home):
    home, store = make_one_at_a_time_home(tmp_path, workbench_home)
    with serve_app(home) as url, open_browser() as page:
        page.goto(f"{url}/gym", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Gym", exact=True).wait_for(timeout=90_000)
        steps = page.get_by_role("spinbutton", name="total_steps")
        steps.fill("1024")
        steps.press("Tab")
        page.get_by_text("Sweep: try several settings").click()
        for name, values in (("learning_rate", "1e-3, 3e-4"), ("n_steps", "32, 64")):
            page.get_by_role("combobox", name="Fields to sweep (up to 3)").click()
            page.keyboard.type(name)
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")
            box = page.get_by_role("textbox", name=name)
            box.wait_for(timeout=60_000)  # the field's value box appears once the page reran
            box.fill(values)
            box.press("Tab")
            wait_idle(page)
        page.get_by_text("4 runs to queue.").wait_for(timeout=30_000)
        page.get_by_role("button", name="Queue sweep").click()
        page.get_by_text("Sweep #1 queued").wait_for(timeout=60_000)
        sweep = list_sweeps(store).iloc[0]
        assert sweep["runs"] == 4

        page.get_by_role("link", name="Watch it on the Sweeps page").click()
        page.get_by_role("heading", name="Sweeps", exact=True).wait_for(timeout=60_000)
        seen_running: set[int] = set()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            trials = read_trials(store, int(sweep["id"]))
            running = trials[trials["status"] == "running"]
            assert len(running) <= 1, trials  # one at a time: the limit of 1
            seen_running.update(int(r) for r in running["run_id"])
            if trials["status"].eq("completed").all():
                break
            time.sleep(0.3)
        trials = read_trials(store, int(sweep["id"]))
        assert trials["status"].eq("completed").all(), trials
        assert not _overlap([store.get_run(int(r)) for r in trials["run_id"]])
        page.get_by_text("completed · 4 of 4 runs ended").wait_for(timeout=60_000)
        page.get_by_text("best: trial").first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "sweep_view.png"), full_page=True)

        page.get_by_role("button", name="Compare the best 3").click()
        page.get_by_role("heading", name="Compare", exact=True).wait_for(timeout=60_000)
        best = pick_best_runs(store, int(sweep["id"]), 3)
        assert len(best) == 3
        for run_id in best:  # the multiselect holds the best three runs
            page.get_by_text(f"#{run_id} sweep 1 · t").first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "sweep_compare.png"), full_page=True)
    assert (tmp_path / "sweep_view.png").stat().st_size > 10_000
