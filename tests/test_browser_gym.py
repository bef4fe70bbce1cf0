"""Real browser: train PPO on CartPole from the Classic RL page, see the return curve grow and the episode play."""

from __future__ import annotations

import time

import pytest

from tests.browser_util import open_browser, serve_app

PLAYER = 'iframe[title^="Episode player: Trained"]'


def _return_points(page) -> int:
    """Points on the return chart (all traces), read from the plotly div's data."""
    return page.evaluate(
        """() => { const d = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
                   const traces = (d && d._fullData) || [];
                   return traces.reduce((n, t) => n + ((t.x && t.x.length) || 0), 0); }"""
    )


def _measure_playback(frame) -> tuple[float, int]:
    """Frames drawn per second while the player advances (test's own clock), and the frames seen."""
    samples = []
    for _ in range(40):  # 2 s at 50 ms
        wrap = frame.locator("#wrap")
        samples.append((time.monotonic(), int(wrap.get_attribute("data-frame") or 0),
                        int(wrap.get_attribute("data-drawn") or 0)))
        time.sleep(0.05)
    best_rate, best_span = 0.0, 0
    start = 0
    for i in range(1, len(samples) + 1):
        if i == len(samples) or samples[i][1] < samples[i - 1][1]:  # a loop restart ends a window
            t0, f0, d0 = samples[start]
            t1, f1, d1 = samples[i - 1]
            if t1 - t0 >= 0.3 and f1 > f0:
                rate = (d1 - d0) / (t1 - t0)
                if t1 - t0 > best_span:
                    best_rate, best_span = rate, t1 - t0
            start = i
    return best_rate, samples[-1][1]


@pytest.mark.browser
def test_gym_training_journey(tmp_path, workbench_home):
    with serve_app(workbench_home) as url, open_browser() as page:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("link", name="Gymnasium agents").click()
        page.get_by_role("heading", name="Classic RL").wait_for(timeout=90_000)
        steps = page.get_by_role("spinbutton", name="total_steps")
        steps.fill("8000")
        steps.press("Tab")
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text("Live: refreshing every second.").wait_for(timeout=60_000)

        # The return curve grows while the run is live.
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen.append(_return_points(page))
            if len([n for n in set(seen) if n > 0]) >= 2 or page.get_by_text("completed ·").count():
                break
            time.sleep(0.2)
        growth = sorted(n for n in set(seen) if n > 0)
        assert len(growth) >= 2, f"the return curve never grew: {seen[-10:]}"

        # The recorded evaluation episode plays in the browser.
        page.locator(PLAYER).first.wait_for(timeout=90_000)
        page.get_by_text("completed ·").wait_for(timeout=180_000)
        page.wait_for_timeout(1500)  # the fragment's last rerun
        frame = page.frame_locator(PLAYER).first
        frame.locator("#step").wait_for(timeout=30_000)
        assert frame.locator("#step").text_content().startswith("step ")
        assert "return" in frame.locator("#ret").text_content()
        assert frame.locator("#act").text_content() in {"action: push left", "action: push right"}
        rate, _ = _measure_playback(frame)
        assert rate >= 20, f"episode played at {rate:.1f} frames/s"
        final_points = _return_points(page)
        assert final_points > growth[0]

        # Pause and scrub work.
        frame.locator("#play").click()
        assert frame.locator("#play").text_content() == "Play"
        frame.locator("#scrub").fill("0")
        assert frame.locator("#step").text_content().startswith("step 1 /")

        # The random policy, for contrast.
        page.get_by_role("button", name="Play a random-policy episode").click()
        page.locator('iframe[title^="Episode player: Random policy"]').wait_for(timeout=30_000)
        page.wait_for_timeout(800)
        page.screenshot(path=str(tmp_path / "gym.png"), full_page=True)
        assert (tmp_path / "gym.png").stat().st_size > 10_000
