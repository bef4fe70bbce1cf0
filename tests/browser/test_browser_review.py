"""Real browser: compare two finished tiny runs on the Compare page, download the comparison report, open the
downloaded file in Chromium and see its charts draw (issue 10's main journey)."""

from __future__ import annotations

import pytest

from tests.support.browser import open_browser, serve_app

LENGTH_REWARD = [{"type": "length", "name": "length", "weight": 1.0, "target": 6}]


@pytest.fixture()
def two_runs(tiny_model_dir, workbench_home):
    """Two 2-step GRPO runs of the tiny Llama that differ in learning rate, in the shared test home."""
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.runs import RunManager, RunStore

    manager = RunManager(RunStore())
    ids = []
    for lr in (1e-3, 1e-2):
        cfg = RLConfig(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                       max_new_tokens=6, chat="raw", learning_rate=lr, rewards=LENGTH_REWARD,
                       prompt_set="sentence-starters", seed=0, name=f"<b>lr {lr}</b>")
        run_id, status = manager.run_foreground("lm_rl", cfg.to_dict(), name=cfg.name, total_steps=cfg.steps)
        assert status == "completed", manager.store.get_run(run_id)["error"]
        ids.append(run_id)
    return ids


@pytest.mark.browser
def test_compare_two_runs_and_open_the_downloaded_report(two_runs, workbench_home, tmp_path):
    with serve_app(workbench_home) as url, open_browser() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{url}/compare", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Compare").wait_for(timeout=90_000)
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for(timeout=60_000)
        chart.locator(".legendtext").first.wait_for(timeout=30_000)
        legend = chart.locator(".legendtext").all_text_contents()
        assert any(f"#{two_runs[0]} <b>lr" in t for t in legend) and any(f"#{two_runs[1]} " in t for t in legend), legend
        page.get_by_role("tab", name="Config diff").click()
        page.locator("td", has_text="learning_rate").first.wait_for(state="attached", timeout=30_000)  # the grid draws on a canvas
        page.get_by_role("tab", name="Report").click()
        page.get_by_role("button", name="Build the report").click()
        download_button = page.get_by_role("button", name="Download the report (HTML)")
        download_button.wait_for(timeout=120_000)
        with page.expect_download(timeout=60_000) as info:
            download_button.click()
        report = tmp_path / "report.html"
        info.value.save_as(report)

        requests: list[str] = []
        viewer = page.context.browser.new_page()
        viewer.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        viewer.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
        viewer.goto(report.as_uri(), wait_until="load")
        viewer.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        assert viewer.locator(".js-plotly-plot").count() >= 1
        text = viewer.locator("body").inner_text()
        assert "<b>lr 0.001</b>" in text  # a run name shown as typed, not rendered
        assert not dialogs and not requests, (dialogs, requests)
