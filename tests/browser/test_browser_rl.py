"""Real browser: start the "Make it positive" preset from the RL page, watch reward points and samples arrive, stop it.

The tiny random Llama stands in for the bundled model (same tokenizer), so a step takes well under
a second on a loaded CPU; the page, the job and the store are the real ones.
"""

from __future__ import annotations

import time

import pytest

from llmrl_core.runs import RunStore
from tests.support.browser import open_browser, serve_app

_REWARD_POINTS_JS = """() => {
  const d = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const trace = ((d && d._fullData) || []).find((t) => t.name === 'reward');
  return (trace && trace.x && trace.x.length) || 0;
}"""


def _reward_points(page) -> int:
    """Points on the reward line of the dashboard's first chart (read from the plotly div's data)."""
    return page.evaluate(_REWARD_POINTS_JS)


def _wait_idle(page) -> None:
    """Wait until Streamlit is not running the script (the status widget is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=60_000)


@pytest.mark.browser
def test_rl_make_it_positive_journey(tmp_path, workbench_home, tiny_model_dir):
    with serve_app(workbench_home) as url, open_browser() as page:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("link", name="LM RL", exact=True).click()
        page.get_by_role("heading", name="LM RL").wait_for(timeout=90_000)
        page.get_by_role("tab", name="New run").click()
        _wait_idle(page)
        page.get_by_role("button", name="Make it positive", exact=True).click()
        page.get_by_text("Preset Make it positive applied").wait_for(timeout=30_000)

        model = page.get_by_role("textbox", name="Model spec")
        model.fill(str(tiny_model_dir))
        model.press("Enter")
        _wait_idle(page)
        for tab, label, value in (("Run and model", "steps", "50"),
                                  ("Sampling and algorithm", "samples per prompt (num_generations)", "4"),
                                  ("Sampling and algorithm", "max_new_tokens", "8")):
            page.get_by_role("tab", name=tab).click()
            box = page.get_by_role("spinbutton", name=label, exact=True)
            box.fill(value)
            box.press("Enter")
            _wait_idle(page)
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Live: refreshing every second.").wait_for(timeout=60_000)

        # Reward points arrive while the run is live (the page polls the store once a second).
        store = RunStore(workbench_home / "runs.sqlite")
        seen: list[int] = []
        lags: list[float] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            seen.append(_reward_points(page))
            if len(seen) > 1 and seen[-1] > seen[-2]:  # how long after its step was logged did the point show?
                run_id = int(store.list_runs(kind="lm_rl")["id"].iloc[0])
                logged = store.read_metrics(run_id, since_step=seen[-1] - 1, names=["reward"])
                if not logged.empty:
                    lags.append(time.time() - float(logged["wall_time"].iloc[0]))
            if seen[-1] >= 3 and len({n for n in seen if n > 0}) >= 2:  # grown live, one step after another
                break
            time.sleep(0.1)
        print(f"reward point shown {', '.join(f'{s:.2f}' for s in lags)} s after its step was logged")
        assert seen[-1] >= 3, f"the reward chart never grew: {seen[-10:]}"
        assert len({n for n in seen if n > 0}) >= 2, f"points did not arrive one by one: {seen}"

        # The samples table has rows, and the token view shows a coloured completion.
        table = page.locator('[data-testid="stDataFrame"]:visible').first  # the samples table (the token view's follow)
        table.wait_for(timeout=30_000)
        grid = table.locator('[role="grid"]')  # the data grid's accessible table (drawn on a canvas)
        grid.wait_for(state="attached", timeout=30_000)
        assert int(grid.get_attribute("aria-rowcount")) >= 3, "the samples table shows no rows"
        assert table.locator('[role="gridcell"]').count() > 0
        token = page.locator(".token-view .tok").first
        token.wait_for(timeout=30_000)
        assert "advantage" in token.get_attribute("title")  # st.html keeps the hover text
        assert "background" in token.get_attribute("style")  # ... and the colour

        page.get_by_role("button", name="Stop", exact=True).click()
        page.get_by_test_id("stAlertContentInfo").get_by_text("Stopped by request.").wait_for(timeout=60_000)
        # The run's end triggers a full rerun, which stops polling. The sidebar's active runs are a live fragment
        # of their own now, so "No run is active." can show before that rerun: wait for the live caption to go.
        page.get_by_test_id("stSidebar").get_by_text("No run is active.").wait_for(timeout=30_000)
        page.get_by_text("Live: refreshing every second.").wait_for(state="detached", timeout=30_000)
        _wait_idle(page)
        assert _reward_points(page) >= 3
        assert page.get_by_text("Live: refreshing every second.").count() == 0
        page.screenshot(path=str(tmp_path / "rl.png"))
        page.locator(".token-view").first.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "rl_samples.png"))
        assert (tmp_path / "rl.png").stat().st_size > 10_000
