"""Real browser: a Gymnasium run started from its page stays on screen until and after it ends; the sidebar's
active runs move with it; the episode player's controls sit inside its frame; the Runs page shows the run."""

from __future__ import annotations

import re
import time

import pytest

from tests.support.browser import open_browser, serve_app, wait_idle

PLAYER = 'iframe[title^="Episode player: Trained"]'


def _heading(page) -> str:
    """The live view's '#id · name' heading."""
    return page.locator("h3").filter(has_text=re.compile(r"#\d+ · ")).first.inner_text()


def _sidebar_progress(page) -> list[str]:
    """'step/total' figures of the sidebar's active runs."""
    return re.findall(r"gym · \w+ · (\d+/\d+)", page.get_by_test_id("stSidebar").inner_text())


@pytest.mark.browser
def test_gym_run_stays_selected_and_the_sidebar_moves(tmp_path, workbench_home):
    with serve_app(workbench_home) as url, open_browser() as page:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("link", name="Gym", exact=True).click()
        page.get_by_role("heading", name="Gym", exact=True).wait_for(timeout=90_000)
        for label, value in (("total_steps", "4000"), ("eval_freq", "1000")):
            box = page.get_by_role("spinbutton", name=label)
            box.fill(value)
            box.press("Tab")
            wait_idle(page)  # the rerun the field started: a click during it can be lost under load
        page.get_by_role("button", name="Train", exact=True).click()
        try:
            page.get_by_text("Live: refreshing every second.").wait_for(timeout=90_000)
        except Exception:
            page.screenshot(path=str(tmp_path / "no_live_view.png"), full_page=True)  # what the page showed instead
            raise AssertionError(page.locator("section.stMain").inner_text()[:3000]) from None
        heading = _heading(page)
        run_id = re.match(r"#(\d+)", heading).group(1)
        assert "PPO · CartPole-v1" in heading

        # While it runs: the page stays on this run and the sidebar's count moves with it.
        seen: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            seen += _sidebar_progress(page)
            assert _heading(page).startswith(f"#{run_id} ")
            if page.get_by_text("done ·").count():
                break
            time.sleep(0.3)
        moving = sorted({s for s in seen}, key=lambda s: int(s.split("/")[0]))
        assert len(moving) >= 2, f"the sidebar's active run never moved: {seen[-10:]}"

        # After it ends: the same run, a full bar that says it is done, and no active run in the sidebar.
        page.get_by_text("done ·").wait_for(timeout=180_000)
        page.wait_for_timeout(2500)  # the fragment's last rerun and the full rerun that stops polling
        assert _heading(page).startswith(f"#{run_id} "), _heading(page)
        assert page.get_by_text("✅ completed").count() >= 1
        assert page.get_by_text("Live: refreshing every second.").count() == 0
        page.get_by_test_id("stSidebar").get_by_text("No run is active.").wait_for(timeout=30_000)
        if page.get_by_text("Solved at").count():  # a lucky seed: the tile says so
            assert page.get_by_test_id("stMetric").filter(has_text="solved at").count() == 1

        # The episode player's step counter and controls are inside its frame, not below its bottom edge.
        page.locator(PLAYER).first.scroll_into_view_if_needed()
        frame = page.frame_locator(PLAYER).first
        frame.locator("#step").wait_for(timeout=30_000)
        inside = frame.locator("#wrap").evaluate(
            """() => ['bar', 'info'].every((id) => document.getElementById(id).getBoundingClientRect().bottom
                                                  <= window.innerHeight + 0.5)""")
        assert inside, "the player's controls sit below its frame"
        assert frame.locator("#step").is_visible() and frame.locator("#play").is_visible()

        # The Runs page shows this run too (the newest), finished.
        page.get_by_role("link", name="Runs", exact=True).first.click()
        page.get_by_role("heading", name="Runs", exact=True).wait_for(timeout=60_000)
        page.locator("h3").filter(has_text=f"#{run_id} · ").first.wait_for(timeout=30_000)
        assert page.get_by_text("✅ completed").count() >= 1
        page.get_by_test_id("stPageLink").filter(has_text="Train a Gymnasium agent").wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)
