"""Real browser: open a finished GRPO run's samples, click a token, read its push written out (issue 21)."""

from __future__ import annotations

import pytest

from llmrl_core.lm_rl.samples import read_push
from llmrl_core.runs import RunManager, RunStore
from tests.support.browser import open_browser, serve_app, wait_idle


@pytest.mark.browser
def test_click_a_token_and_see_its_formula_with_numbers(tmp_path, workbench_home, tiny_model_dir):
    from llmrl_core.lm_rl.config import make_preset_config

    manager = RunManager(RunStore(workbench_home / "runs.sqlite"))
    cfg = make_preset_config("make-it-positive", model=str(tiny_model_dir), device="cpu", steps=2, max_new_tokens=8,
                             beta=0.1, loss_type="grpo")
    run_id = manager.start("lm_rl", cfg.to_dict(), name="inspect me", total_steps=cfg.steps)
    assert manager.wait(run_id, 120), manager.store.get_run(run_id)
    run = manager.store.get_run(run_id)
    assert run["status"] == "completed", run["error"]
    samples = manager.store.read_samples(run_id)

    with serve_app(workbench_home) as url, open_browser() as page:
        page.goto(f"{url}/lm_rl", wait_until="domcontentloaded")
        page.get_by_role("tab", name="Samples").wait_for(timeout=90_000)  # the dashboard of the newest run
        page.get_by_role("tab", name="Samples").click()
        wait_idle(page)
        picker = page.locator(".llmrl-token-picker .tok")  # inside the component (Playwright pierces its shadow root)
        picker.first.wait_for(timeout=60_000)
        page.get_by_text("Click a token to see its formula").wait_for(timeout=30_000)
        count = picker.count()  # the view shows a sample of the latest step: those with this many tokens
        candidates = [e for e in samples[samples["step"] == 2]["extras"] if len(e["tokens"]) == count]
        assert candidates, (count, [len(e["tokens"]) for e in samples["extras"]])
        target = 1 if count > 1 else 0
        picker.nth(target).click()
        # the pick reruns the script; the formula panel appears only after it (under load the rerun can start
        # later than wait_idle's first look, so wait for what the pick draws rather than for idleness)
        recorded = page.locator("p:visible", has_text="The trainer recorded a push of")  # not the closed guide's
        recorded.wait_for(timeout=60_000)
        wait_idle(page)
        token_box = page.get_by_role("spinbutton", name="Token", exact=True)
        assert token_box.input_value() == str(target)
        text = recorded.inner_text()
        assert "the numbers above give" in text
        assert any(f"recorded a push of {read_push(e)[0][target]:.4g} " in text for e in candidates), text
        katex = page.locator(".katex:visible")  # st.latex renders with KaTeX: the loss, advantage, weight, push, numbers
        assert katex.count() >= 5
        page.locator(".llmrl-token-picker").first.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "inspector.png"), full_page=False)
        assert (tmp_path / "inspector.png").stat().st_size > 10_000
    manager.close()
