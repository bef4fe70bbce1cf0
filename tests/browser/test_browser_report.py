"""Real browser: a report file opened from disk in Chromium draws its charts and the episode player, and the
script/img payloads in run names, prompts and completions show as text (no dialog fires)."""

from __future__ import annotations

import pytest

from llmrl_core.present.report import write_report
from tests.support.browser import open_browser
from tests.unit.test_report import IMG, SCRIPT, make_gym_run, make_lm_run

pytestmark = pytest.mark.browser


def test_report_file_renders_offline_and_shows_payloads_as_text(store, tmp_path):
    lm = make_lm_run(store, name=f"tuned {SCRIPT}")
    other = make_lm_run(store, name=f"baseline {IMG}")
    gym = make_gym_run(store, tmp_path, name=f"cart {IMG}")
    path = write_report(store, [lm, other, gym], tmp_path / "report.html")

    with open_browser() as page:
        dialogs, requests = [], []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(path.as_uri())
        page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
        page.wait_for_timeout(500)
        charts = page.locator(".plotly-graph-div")
        # the comparison (one panel per kind: LM RL, gym), 5 per RL run (reward, kl, entropy, length, zero-std), 2 for gym
        assert charts.count() == 2 + 5 + 5 + 2
        for i in range(charts.count()):
            assert charts.nth(i).locator("svg.main-svg").count() > 0, f"chart {i} did not draw"
        assert page.locator(".plotly-graph-div .scatterlayer .trace").count() > 0  # curves, not empty axes

        body = page.inner_text("body")
        assert SCRIPT in body and IMG in body  # shown as typed
        assert page.locator("img").count() == 0
        assert page.locator("script:has-text('alert(1)')").count() == 0

        player = page.frame_locator("iframe.player")
        player.locator("svg").first.wait_for(timeout=10_000)  # the episode player drew its scene
        page.wait_for_timeout(300)
        assert dialogs == []
        assert all(url.startswith(("file://", "about:", "data:")) for url in requests), requests
