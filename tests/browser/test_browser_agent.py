"""Real browser: start a tiny language-model agent run from the Agent page, see the return curve and the player."""

from __future__ import annotations

import time

import pytest

from tests.support.browser import open_browser, serve_app, wait_idle

PLAYER = 'iframe[title^="Agent episode player"]'


def _return_points(page) -> int:
    """Points on the page's first chart (the return), read from the plotly div's data."""
    return page.evaluate(
        """() => { const d = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
                   const traces = (d && d._fullData) || [];
                   return traces.reduce((n, t) => n + ((t.x && t.x.length) || 0), 0); }"""
    )


def _set_number(page, label: str, value: str) -> None:
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(value)
    box.press("Tab")
    wait_idle(page)  # the rerun the field started: a click during it can be lost under load


@pytest.mark.browser
@pytest.mark.slow
def test_agent_training_journey(tmp_path, workbench_home, tiny_model_dir):
    with serve_app(workbench_home) as url, open_browser() as page:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("link", name="Agent", exact=True).click()
        page.get_by_role("heading", name="Agent").first.wait_for(timeout=90_000)
        model = page.get_by_role("textbox", name="Model")
        model.fill(str(tiny_model_dir))
        model.press("Enter")
        page.get_by_text("action words are distinct token sequences").wait_for(timeout=90_000)
        # The 5-minute preset fills the form (the model stays); the tiny budget below replaces its budget.
        page.get_by_role("button", name="Learn CartPole in 5 minutes").click()
        page.get_by_text("Preset Learn CartPole in 5 minutes applied").wait_for(timeout=60_000)
        assert "falling" in page.locator('[data-testid="stCode"]').first.text_content()
        assert page.get_by_role("textbox", name="Model").input_value() == str(tiny_model_dir)
        _set_number(page, "total_steps", "32")
        _set_number(page, "n_envs", "2")
        page.get_by_text("Hyperparameters").click()
        _set_number(page, "n_steps", "8")
        _set_number(page, "minibatch_size", "8")
        _set_number(page, "eval_episodes", "3")
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text("Live: refreshing every second.").wait_for(timeout=60_000)

        # The return curve appears (zero-shot, then training points) and the run completes.
        seen = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            seen.append(_return_points(page))
            if page.get_by_text("completed", exact=False).count() and seen[-1] > 0:
                break
            time.sleep(0.5)
        page.get_by_text("95% CI").wait_for(timeout=120_000)
        page.wait_for_timeout(1500)  # the fragment's last rerun
        assert _return_points(page) >= 2, f"no return curve: {seen[-10:]}"

        # The player replays the latest episode with the model's action probabilities beneath the cart.
        page.locator(PLAYER).first.wait_for(timeout=60_000)
        frame = page.frame_locator(PLAYER).first
        frame.locator("#step").wait_for(timeout=30_000)
        assert frame.locator("#step").text_content().startswith("step ")
        rows = frame.locator("#probs .row")
        assert rows.count() == 2
        assert {rows.nth(i).locator(".name").text_content() for i in range(2)} == {"left", "right"}
        values = [float(rows.nth(i).locator(".value").text_content()) for i in range(2)]
        assert abs(sum(values) - 1.0) < 0.02, values
        assert frame.locator("#probs .row.chosen").count() == 1
        page.screenshot(path=str(tmp_path / "agent.png"), full_page=True)
        assert (tmp_path / "agent.png").stat().st_size > 10_000
