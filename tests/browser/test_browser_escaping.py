"""Real browser: script, HTML, javascript: links, Markdown and LaTeX in user text show literally on every page.

The payload goes where users and models put text: run names and config values, prompts and
completions (written into the store as a run's samples), log lines, error messages, an uploaded
file's name, the Playground's model spec and prompt, the Attention page's text. Each page is
checked for: no dialog (alert) fired, the payload's pieces visible as typed, and nothing built
from them (no <img src=x>, no javascript: link, no bold, heading or KaTeX, no <script>), in the
page and in its iframes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pytest

from tests.support.browser import open_browser, serve_app

SCRIPT, IMG, LINK = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))"
BOLD, LATEX, HEADING = "**bold**", "$\\frac{1}{2}$", "# heading"
PAYLOAD = " ".join((SCRIPT, IMG, LINK, BOLD, LATEX))
NAME = f"{HEADING} {PAYLOAD}"  # run names, config values, log lines, errors
MULTILINE = f"{HEADING}\n{SCRIPT}\n{IMG}\n{LINK}\n{BOLD}\n{LATEX}"  # prompts and completions: a heading at a line start
HEADING_, ERROR, CODE, CAPTION = ('[data-testid="stHeading"]', '[data-testid="stAlertContentError"]',
                                  '[data-testid="stCode"]', '[data-testid="stCaptionContainer"]')

# Elements that only exist if some piece of the payload was interpreted.
BUILT_FROM_PAYLOAD = {
    "img src=x": "img[src='x']",
    "javascript: link": "a[href^='javascript' i]",
    "KaTeX": ".katex:has(annotation:has-text('frac{1}{2}'))",  # the Attention page's own formula is fine
    "bold": "strong:text-is('bold'), b:text-is('bold')",
    "heading": ":is(h1, h2, h3, h4, h5, h6):text-is('heading')",
    "script": "script:has-text('alert(1)')",
}


def seed_store(home: Path) -> dict[str, int]:
    """Runs whose every text field carries the payload: an RL run and a Gymnasium run, both failed."""
    os.environ["LLMRL_HOME"] = str(home)
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.runs import RunStore

    store = RunStore(home / "runs.sqlite")
    config = {**RLConfig().to_dict(), "name": NAME, "system_prompt": NAME, "prompt_set": NAME}
    rl = store.create_run("lm_rl", NAME, config, total_steps=2)
    store.mark_started(rl)
    store.log_metrics(rl, 1, {"reward": 0.5, "reward_std": 0.1})
    store.add_samples(rl, 1, [{"prompt": MULTILINE, "completion": MULTILINE, "rewards": {"vader": 0.25},
                               "extras": {"advantage": 1.0}}])
    store.add_log(rl, f"LOG {NAME}", "warning")
    store.set_status(rl, "failed", error=f"ValueError: {NAME}\n\nTraceback (most recent call last):\n{MULTILINE}")
    gym = store.create_run("gym", NAME, {"env_id": NAME, "algo": "ppo", "seed": 0}, total_steps=100)
    store.mark_started(gym)
    store.add_log(gym, f"LOG {NAME}")
    store.set_status(gym, "failed", error=f"RuntimeError: {NAME}")
    return {"lm_rl": rl, "gym": gym}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, workbench_home: Path, bundled_dir: Path):
    """(url, page, dialogs): the dashboard over a store of payload runs, one Chromium page, the dialogs seen."""
    home = tmp_path_factory.mktemp("escaping_home")
    (home / "cache").symlink_to(workbench_home / "cache")  # the bundled model, converted once per session
    saved = os.environ["LLMRL_HOME"]
    try:
        runs = seed_store(home)
    finally:
        os.environ["LLMRL_HOME"] = saved
    dialogs: list[str] = []
    with serve_app(home) as url, open_browser() as page:
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        yield url, page, dialogs, runs, home


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the script run finishes (Streamlit shows its status widget while running)."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)


def shown_text(page, scope: str | None, table: int | None) -> str:
    """The visible text of the page, of the elements matching `scope`, or of table number `table` (st.dataframe
    draws on a canvas; its cells are mirrored in an accessibility table, filled a moment after the canvas)."""
    if table is not None:
        tables = page.locator('[data-testid="stDataFrame"]')
        return tables.nth(table if table >= 0 else tables.count() + table).text_content() if tables.count() else ""
    if scope is not None:
        return "\n".join(page.locator(scope).all_inner_texts())
    return page.evaluate("document.body.innerText")


def check_literal(page, dialogs: list[str], where: str, expected: Sequence[str] = (), scope: str | None = None,
                  table: int | None = None) -> None:
    """No dialog; each `expected` text shown exactly (in `scope` or `table`); nothing built from the payload."""
    page.wait_for_timeout(300)
    assert dialogs == [], f"{where}: a dialog fired: {dialogs}"
    for _ in range(30):
        text = shown_text(page, scope, table)
        missing = [e for e in expected if e not in text]
        if not missing:
            break
        page.wait_for_timeout(500)
    assert not missing, f"{where}: not shown literally: {missing}\n--- shown:\n{text[:3000]}"
    for frame in page.frames:
        for what, selector in BUILT_FROM_PAYLOAD.items():
            assert frame.locator(selector).count() == 0, f"{where}: the payload made a {what} element ({frame.url})"
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: the page raised"


def pick(page, label: str, option_text: str) -> None:
    """Choose the option containing `option_text` in the select box `label`."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option").filter(has_text=option_text).first.click()
    wait_idle(page)


def open_expander(page, title: str) -> None:
    page.locator('[data-testid="stExpander"] summary').filter(has_text=title).first.click()
    page.wait_for_timeout(300)


@pytest.mark.browser
def test_runs_page_shows_payload_runs_literally(app):
    url, page, dialogs, runs, _ = app
    page.goto(f"{url}/runs", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Runs").first.wait_for(timeout=60_000)
    wait_idle(page)
    check_literal(page, dialogs, "Runs page, runs table", [NAME], table=0)
    for kind, run_id in runs.items():
        pick(page, "Run", f"#{run_id} ")
        check_literal(page, dialogs, f"Runs page, {kind} run heading", [f"#{run_id} · {NAME}"], HEADING_)
        error = "ValueError" if kind == "lm_rl" else "RuntimeError"
        check_literal(page, dialogs, f"Runs page, {kind} run error", [f"{error}: {NAME}"], ERROR)
        page.get_by_role("tab", name="Log").click()
        check_literal(page, dialogs, f"Runs page, {kind} run log", [f"LOG {NAME}"], CODE)
        page.get_by_role("tab", name="Config").click()
        check_literal(page, dialogs, f"Runs page, {kind} run config", [json.dumps(NAME)], CODE)
    pick(page, "Run", f"#{runs['lm_rl']} ")
    page.get_by_role("tab", name="Samples").click()
    check_literal(page, dialogs, "Runs page, samples table", [MULTILINE], table=-1)
    page.get_by_role("tab", name="Health").click()
    check_literal(page, dialogs, "Runs page, health tab")
    page.goto(f"{url}/compare", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Compare").first.wait_for(timeout=60_000)
    wait_idle(page)
    check_literal(page, dialogs, "Compare page (legend, finals)", [NAME])
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="LLM·RL Workbench").first.wait_for(timeout=60_000)
    wait_idle(page)
    check_literal(page, dialogs, "Overview, latest runs", [NAME])


@pytest.mark.browser
def test_rl_page_shows_payload_run_literally(app):
    url, page, dialogs, runs, _ = app
    page.goto(f"{url}/lm_rl", wait_until="domcontentloaded")
    page.get_by_role("heading", name="LM RL").first.wait_for(timeout=60_000)
    wait_idle(page)
    check_literal(page, dialogs, "RL page, run heading", [f"#{runs['lm_rl']} · {NAME}"], HEADING_)
    check_literal(page, dialogs, "RL page, config values in the caption", [f"prompts {NAME} · "], CAPTION)
    check_literal(page, dialogs, "RL page, error", [f"ValueError: {NAME}"], ERROR)
    check_literal(page, dialogs, "RL page, samples table", [MULTILINE], table=-1)
    page.get_by_role("tab", name="Log", exact=True).click()
    check_literal(page, dialogs, "RL page, log", [f"LOG {NAME}"], CODE)
    page.get_by_role("tab", name="Config", exact=True).click()
    # The YAML folds the long value after the link; its first line carries the markup literally.
    check_literal(page, dialogs, "RL page, config", [f"name: '{HEADING} {SCRIPT} {IMG} {LINK}"], CODE)


@pytest.mark.browser
def test_rl_page_upload_with_a_payload_file_name(app, tmp_path: Path):
    url, page, dialogs, _, _ = app
    opening_tag = SCRIPT.split("</")[0]  # a file name cannot hold "/"
    upload = tmp_path / f"{HEADING} {opening_tag} {IMG} {LINK} {BOLD} {LATEX}.jsonl"
    upload.write_bytes(b"")  # empty: the error message names the file
    page.goto(f"{url}/lm_rl", wait_until="domcontentloaded")
    page.get_by_role("heading", name="LM RL").first.wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("tab", name="New run").click()
    wait_idle(page)
    page.get_by_role("tab", name="Prompts").click()
    page.get_by_text("Upload a file").click()
    wait_idle(page)
    page.locator('[data-testid="stFileUploader"]').filter(has_text="Prompt file").locator('input[type="file"]') \
        .set_input_files(str(upload))
    page.get_by_text("is empty; it needs at least one prompt").wait_for(timeout=30_000)
    wait_idle(page)
    check_literal(page, dialogs, "RL page, uploaded file name", [f"{upload.name} is empty"], ERROR)


@pytest.mark.browser
def test_rl_page_reward_error_quotes_a_payload_pattern_literally(app):
    url, page, dialogs, _, _ = app
    page.goto(f"{url}/lm_rl", wait_until="domcontentloaded")
    page.get_by_role("heading", name="LM RL").first.wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("tab", name="New run").click()
    wait_idle(page)
    page.get_by_role("tab", name="Rewards", exact=True).click()
    page.get_by_role("combobox", name="Add a reward").click()
    page.get_by_role("option", name="Regex / format match").click()
    wait_idle(page)
    page.get_by_role("button", name="Add", exact=True).click()
    wait_idle(page)
    pattern = page.get_by_role("textbox", name="pattern").last
    pattern.fill(f"{NAME} (")  # not a valid regex: the error quotes it
    pattern.press("Enter")
    page.get_by_text("is not a valid regular expression").wait_for(timeout=30_000)
    check_literal(page, dialogs, "RL page, reward error", [f"The pattern {NAME + ' ('!r} is not a valid"], ERROR)


@pytest.mark.browser
def test_gym_page_shows_payload_run_literally(app):
    url, page, dialogs, runs, _ = app
    page.goto(f"{url}/gym", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Gym", exact=True).first.wait_for(timeout=60_000)
    wait_idle(page)
    check_literal(page, dialogs, "Gymnasium page, run heading", [f"#{runs['gym']} · {NAME}"], HEADING_)
    check_literal(page, dialogs, "Gymnasium page, config values in the caption", [f"{NAME} · seed 0"], CAPTION)
    check_literal(page, dialogs, "Gymnasium page, error", [f"RuntimeError: {NAME}"], ERROR)
    open_expander(page, "Config and summary")
    check_literal(page, dialogs, "Gymnasium page, config", [json.dumps(NAME)], CODE)


@pytest.mark.browser
def test_playground_shows_payload_spec_and_prompt_literally(app):
    url, page, dialogs, _, _ = app
    page.goto(f"{url}/playground", wait_until="domcontentloaded")
    prompt = page.get_by_role("textbox", name="Prompt")
    prompt.wait_for(timeout=120_000)  # the bundled model loads first
    wait_idle(page)
    page.get_by_text("Raw text", exact=True).click()
    wait_idle(page)
    prompt.fill(MULTILINE)
    page.get_by_role("spinbutton", name="Max new tokens").fill("3")
    page.get_by_role("spinbutton", name="Max new tokens").press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Exact prompt the model saw").wait_for(timeout=120_000)
    wait_idle(page)
    open_expander(page, "Exact prompt the model saw")
    check_literal(page, dialogs, "Playground, prompt", [MULTILINE], CODE)
    # A model spec that cannot load: the error quotes it.
    open_expander(page, "Model")
    spec = page.get_by_role("textbox", name="Model spec")
    spec.fill(NAME)
    spec.press("Enter")
    page.get_by_role("button", name="Load", exact=True).click()
    wait_idle(page)
    page.locator(ERROR).first.wait_for(timeout=60_000)
    check_literal(page, dialogs, "Playground, model spec error", [repr(NAME)], ERROR)


@pytest.mark.browser
def test_attention_page_shows_payload_text_literally(app):
    url, page, dialogs, _, _ = app
    page.goto(f"{url}/attention", wait_until="domcontentloaded")
    text = page.get_by_role("textbox", name="Text (or prompt)")
    text.wait_for(timeout=120_000)
    wait_idle(page)
    text.fill(PAYLOAD)
    page.get_by_role("button", name="Compute attention").click()
    page.get_by_text("Model view").first.wait_for(timeout=120_000)
    wait_idle(page)
    check_literal(page, dialogs, "Attention page")  # tokens are pieces of the payload, drawn in charts and SVG
