"""Real browser: open the dashboard, type a prompt, generate with the bundled model, see the answer."""

from __future__ import annotations

import pytest

from tests.support.browser import open_browser, serve_app, wait_idle


@pytest.mark.browser
def test_playground_journey(tmp_path, workbench_home, bundled_dir):
    # The session home already holds the converted bundled model, so the app loads it in about a second.
    with serve_app(workbench_home) as url, open_browser() as page:
        page.goto(f"{url}/playground", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Playground").wait_for(timeout=90_000)
        prompt = page.get_by_label("Prompt", exact=True)
        prompt.wait_for(timeout=90_000)
        prompt.fill("What is the capital of France?")
        page.get_by_role("switch", name="Greedy").check(force=True)
        max_new = page.get_by_label("Max new tokens")
        max_new.fill("12")
        max_new.press("Enter")
        wait_idle(page)  # a click that lands while the Enter's rerun is still drawing can be lost under load
        page.get_by_role("button", name="Generate").click()
        answer = page.locator(".token-view").first
        answer.wait_for(timeout=120_000)
        page.get_by_text("Tokens/s").wait_for(timeout=30_000)
        text = page.locator('[data-testid="stText"]').all_inner_texts()
        assert any("Paris" in t for t in text), text
        assert page.locator(".token-view .tok").count() >= 3
        assert "SmolLM2-135M-Instruct" in page.locator('[data-testid="stSidebar"]').inner_text()
        page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
        assert (tmp_path / "playground.png").stat().st_size > 10_000
