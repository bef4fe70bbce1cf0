"""Real browser: open the Attention page, map a typed text on the bundled model, see the grid and the heatmap."""

from __future__ import annotations

import pytest

from tests.support.browser import open_browser, serve_app


@pytest.mark.browser
def test_attention_journey(tmp_path, workbench_home, bundled_dir):
    with serve_app(workbench_home) as url, open_browser() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))  # alert(1) would land here
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("heading", name="LLM·RL Workbench").wait_for(timeout=90_000)  # the router is up
        page.get_by_role("link", name="Attention", exact=True).click()
        page.get_by_role("heading", name="Attention explorer").wait_for(timeout=90_000)
        text = page.get_by_label("Text (or prompt)")
        text.fill("The cat sat on the mat. <script>alert(1)</script> Then the cat sat on the")
        page.get_by_role("button", name="Compute attention").click()
        charts = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
        charts.nth(1).wait_for(timeout=120_000)
        # The grid: one transparent marker per head (30 layers x 9 heads) over the thumbnails.
        grid = charts.nth(0)
        grid.locator(".heatmaplayer image").wait_for(timeout=60_000)
        assert grid.locator(".scatterlayer .point").count() == 30 * 9
        # The chosen head's heatmap, titled with its layer (the last one, 29) and its key/value head.
        heatmap = charts.nth(1)
        heatmap.locator(".heatmaplayer image").wait_for(timeout=60_000)
        assert "Layer 29, head" in heatmap.locator(".gtitle").text_content()
        # Tokens render as text: no script element came from the model's tokens.
        assert page.locator("script:has-text('alert(1)')").count() == 0
        page.screenshot(path=str(tmp_path / "attention.png"), full_page=True)
        # Choosing a tile in the grid (layer 3, head 2) opens its heatmap.
        point = grid.locator(".scatterlayer .point").nth(3 * 9 + 2)
        point.scroll_into_view_if_needed()
        box = point.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        grid.locator(".hoverlayer .hovertext").wait_for(timeout=10_000)  # plotly clicks what it hovers
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.gtitle')].some(t => t.textContent.startsWith('Layer 3, head 2 '))",
            timeout=60_000,
        )
        # Head view (lines): an SVG with one line per visible weight, no JavaScript.
        page.get_by_role("tab", name="Head view (lines)").click()
        lines = page.frame_locator("iframe").locator("svg.hv line")
        lines.first.wait_for(state="attached", timeout=30_000)
        assert lines.count() > 10
        # Hovering a token on the left keeps only its own lines (CSS :has, no JavaScript).
        frame = page.frame_locator("iframe")
        frame.locator("svg.hv text.q5").hover()
        shown = frame.locator("svg.hv").evaluate(
            "s => [...s.querySelectorAll('line')].filter(l => getComputedStyle(l).display !== 'none').length")
        assert 0 < shown == frame.locator("svg.hv line.q5").count() < lines.count()
        page.screenshot(path=str(tmp_path / "head_view.png"), full_page=True)
        assert (tmp_path / "attention.png").stat().st_size > 10_000
        assert dialogs == []
