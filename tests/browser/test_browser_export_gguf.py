"""Real browser: a finished run's Export tab writes a GGUF with its Modelfile and shows the two Ollama commands."""

from __future__ import annotations

import shutil

import pytest

from llmrl_core.runs import RunStore
from tests.support.browser import open_browser, serve_app, wait_idle


@pytest.mark.browser
def test_export_tab_writes_a_gguf_journey(tmp_path, workbench_home, tiny_model_dir):
    from llmrl_core.lm_rl.checkpoints import STATE_FILE

    store = RunStore(workbench_home / "runs.sqlite")
    run_id = store.create_run("lm_rl", "tiny gguf", {"model": str(tiny_model_dir), "algorithm": "grpo"}, total_steps=1)
    checkpoint = tmp_path / "checkpoint-1"
    shutil.copytree(tiny_model_dir, checkpoint)
    (checkpoint / STATE_FILE).write_bytes(b"")  # what marks a finished checkpoint folder
    store.add_artifact(run_id, 1, "checkpoint", checkpoint)
    store.mark_started(run_id, "test")
    store.set_progress(run_id, 1, 1)
    store.set_status(run_id, "completed")
    out = tmp_path / "tuned.gguf"

    with serve_app(workbench_home) as url, open_browser() as page:
        page.goto(f"{url}/runs", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Runs").first.wait_for(timeout=90_000)
        wait_idle(page)
        page.get_by_role("tab", name="Export & report").click()
        wait_idle(page)
        what = page.get_by_role("combobox", name="What", exact=True)
        what.click()
        what.type("GGUF")
        what.press("Enter")
        wait_idle(page)
        target = page.get_by_role("textbox", name="Write to")
        target.fill(str(out))
        target.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Export", exact=True).click()
        page.get_by_text("ollama create").first.wait_for(timeout=120_000)
        assert out.read_bytes()[:4] == b"GGUF" and (tmp_path / "tuned.Modelfile").is_file()
        assert (tmp_path / "tuned.README.md").is_file()  # the model card beside the file
        assert page.get_by_text("ollama run").count() > 0
        written = page.get_by_test_id("stAlertContentSuccess").inner_text()
        assert str(out) in written and "\\" not in written  # the path as it is, no Markdown escapes showing
        page.screenshot(path=str(tmp_path / "export_gguf.png"), full_page=True)
        assert (tmp_path / "export_gguf.png").stat().st_size > 10_000
