"""Several browser sessions on the live pages while two runs train (issue 13, part 5): behaviour, not speed.

Two runs train in worker processes (an LM RL run on the tiny random Llama and a Gymnasium random-policy
run); SESSIONS Playwright contexts of one Chromium open the Runs page and the LM RL page in turn and stay
open, each polling its live view. Checked: no page error and no error or traceback in the server's log while
they are open, every page shows its run, the server answers HTTP requests for a page meanwhile, and the LM run
keeps advancing. How fast (20 sessions, answer times, page times, the run's step time under load) is
bench/bench_sessions.py's figure: timings are benchmarks, not tests.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

from llmrl_core.runs import RunManager, RunStore
from tests.support.browser import CHROMIUM_ARGS, find_chromium, serve_app
from tests.support.waiting import stop_runs

SESSIONS = 4  # two on each page; bench/bench_sessions.py opens 20 and times them
POLLS = 6


def _step_times(store: RunStore, run_id: int, after: float, before: float) -> list[float]:
    df = store.read_metrics(run_id, names=["step_time"])
    return df[(df["wall_time"] > after) & (df["wall_time"] <= before)]["value"].tolist()


@pytest.mark.browser
@pytest.mark.slow
def test_sessions_on_live_pages_while_two_runs_train(tmp_path, tiny_model_dir):
    from playwright.sync_api import sync_playwright

    from llmrl_core.lm_rl.config import make_preset_config
    from llmrl_core.gym.config import make_gym_config

    home = tmp_path / "home"
    home.mkdir()
    manager = RunManager(RunStore(home / "runs.sqlite"))
    store = manager.store
    lm_cfg = make_preset_config("make-it-positive", model=str(tiny_model_dir), device="cpu", steps=100_000)
    gym_cfg = make_gym_config("CartPole-v1", "random", total_steps=50_000_000)
    lm_run = manager.start("lm_rl", lm_cfg.to_dict(), name="load: LM", total_steps=lm_cfg.steps)
    gym_run = manager.start("gym", gym_cfg.to_dict(), name="load: gym", total_steps=gym_cfg.total_steps)
    try:
        deadline = time.monotonic() + 120
        while min(store.get_run(lm_run)["step"], store.get_run(gym_run)["step"]) < 3:
            assert time.monotonic() < deadline, (store.get_run(lm_run)["error"], store.get_run(gym_run)["error"])
            time.sleep(0.5)
        with serve_app(home) as url, sync_playwright() as pw:
            log_path = next(home.glob("streamlit-*.log"))
            browser = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_ARGS)
            pages = []
            t_load = time.time()
            for i in range(SESSIONS):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda err, errors=errors: errors.append(str(err)))
                path, shows = ("runs", "load: ") if i % 2 == 0 else ("lm_rl", "load: LM")
                page.goto(f"{url}/{path}", wait_until="domcontentloaded")
                page.get_by_text(shows).first.wait_for(timeout=180_000)
                pages.append((page, errors))
            for _ in range(POLLS):  # every session polls its live view meanwhile; the server must keep answering
                with urllib.request.urlopen(f"{url}/runs", timeout=60) as resp:
                    assert resp.status == 200 and b"<html" in resp.read().lower()
                time.sleep(0.5)
            loaded = _step_times(store, lm_run, t_load, time.time())
            for page, errors in pages:
                assert not errors, errors
            log = log_path.read_text(errors="replace")  # before closing: a closing tab may cut a send short
            browser.close()
    finally:
        stop_runs(manager, (lm_run, gym_run))

    assert "Traceback" not in log and "Error" not in log, log[-3000:]
    assert store.get_run(lm_run)["status"] in {"stopped", "completed"}, store.get_run(lm_run)["error"]
    assert store.get_run(gym_run)["status"] in {"stopped", "completed"}, store.get_run(gym_run)["error"]
    assert loaded, "the LM run made no step while the sessions were open"
