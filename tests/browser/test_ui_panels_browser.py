"""Real browser: the prompt picker and reward panels on a tiny page, served on loopback (custom code allowed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import ROOT, open_browser, serve_app

PAGE = f'''
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from ui.prompt_picker import prompt_picker_ui
from ui.reward_lab import custom_code_policy_ui, reward_editor_ui, reward_lab_ui

st.set_page_config(page_title="Reward panels", layout="wide")
allowed, reason = custom_code_policy_ui()
st.subheader("Prompts")
source, frame = prompt_picker_ui("pp")
st.subheader("Rewards")
specs = reward_editor_ui("re", allowed, reason)
st.subheader("Reward lab")
reward_lab_ui(specs, "lab")
'''

CUSTOM = "def reward(prompts, completions, **kwargs):\n    return [float(len(c.split())) for c in completions]\n"


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run finishes (Streamlit shows its status widget while running)."""
    page.wait_for_timeout(300)  # let a rerun triggered by the last action begin
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)


@pytest.mark.browser
def test_reward_panels_journey(tmp_path: Path, workbench_home: Path):
    script = tmp_path / "panels.py"
    script.write_text(PAGE, encoding="utf-8")
    upload = tmp_path / "mine.jsonl"
    upload.write_text('{"prompt": "What is 6 × 7?", "answer": "42"}\n{"prompt": "<i>Say hi</i>", "answer": "hi"}\n',
                      encoding="utf-8")
    with serve_app(workbench_home, script=script) as url, open_browser() as page:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("open sentence starters").wait_for(timeout=60_000)

        # Prompts: upload a JSONL file and see its preview.
        page.get_by_text("Upload a file").click()
        page.locator('input[type="file"]').set_input_files(str(upload))
        page.get_by_text("2 prompts · extra columns passed to rewards: answer").wait_for(timeout=30_000)
        wait_idle(page)

        # Rewards: add a custom Python reward (allowed: the server listens on loopback).
        page.get_by_role("combobox", name="Add a reward").click()
        page.get_by_role("option", name="Custom Python").click()
        wait_idle(page)
        page.get_by_role("button", name="Add", exact=True).click()
        code = page.get_by_role("textbox", name="code", exact=True)
        code.wait_for(timeout=30_000)
        code.fill(CUSTOM)
        code.press("Control+Enter")
        wait_idle(page)

        # Lab: score the default typed completions.
        page.get_by_role("button", name="Score", exact=True).click()
        page.get_by_text("total = 1 × sentiment + 1 × custom").wait_for(timeout=60_000)
        grid = page.locator('[data-testid="stDataFrame"]').last
        grid.locator("canvas").first.wait_for(timeout=30_000)
        page.set_viewport_size({"width": 1400, "height": 2600})  # the app scrolls inside its own container
        page.wait_for_timeout(500)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        page.screenshot(path=str(tmp_path / "reward_panels.png"), full_page=True)
        assert (tmp_path / "reward_panels.png").stat().st_size > 10_000
