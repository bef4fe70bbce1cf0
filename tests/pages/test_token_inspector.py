"""AppTest of the step inspector's push view (ui/token_inspector.py) on a real tiny GRPO step (issue 21)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from llmrl_core.lm_rl.samples import read_push
from llmrl_core.lm_rl.trainer import RLTrainer
from tests.unit.test_trainer import PROMPTS, tiny_config


@pytest.fixture(scope="module")
def grpo_step(tiny_model_dir) -> tuple[dict, pd.DataFrame]:
    """A run row and the stored samples of its second step (GRPO, grpo loss type, beta 0.1: a KL push too)."""
    cfg = tiny_config(tiny_model_dir, algorithm="grpo", loss_type="grpo", beta=0.1)
    trainer = RLTrainer(cfg, prompts=PROMPTS)
    result = [trainer.train_step() for _ in range(2)][-1]
    samples = pd.DataFrame(result.samples)
    samples.insert(0, "id", range(1, len(samples) + 1))
    samples.insert(1, "step", result.step)
    samples.loc[0, "extras"]["tokens"][0] = "<b>bold</b>"  # model output that looks like markup
    return {"id": 7, "config": cfg.to_dict()}, samples


def _inspector(run, samples, sample_id) -> None:
    from ui.token_inspector import push_inspector_ui

    push_inspector_ui(run, samples, sample_id)


def _open(run, samples) -> AppTest:
    at = AppTest.from_function(_inspector, kwargs={"run": run, "samples": samples, "sample_id": 1}, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_inspector_names_the_strongest_token_and_writes_its_formula_once_picked(grpo_step):
    run, samples = grpo_step
    extras = samples.loc[0, "extras"]
    at = _open(run, samples)
    push = read_push(extras)[0]
    strongest = max(range(len(push)), key=lambda i: abs(push[i]))
    assert at.number_input(key="rl_push_token_7_1").value is None
    assert not at.get("latex"), "no formula before a token is picked (a live run redraws this tab)"
    assert any(f"the strongest push here is on token {strongest}" in c.value for c in at.caption)
    at.number_input(key="rl_push_token_7_1").set_value(strongest).run()
    assert not at.exception, at.exception
    latex = " ".join(e.value for e in at.get("latex"))
    assert r"\min" in latex and r"\mathrm{std}" in latex and "c_{i,t}" in latex  # GRPO's loss, advantage, push
    captions = " ".join(c.value for c in at.caption)
    assert "Red: this update makes the token more likely" in captions
    assert f"recorded a push of {push[strongest]:.4g}" in captions
    assert any("group" in m.value and "mean" in m.value for m in at.markdown)  # where A came from
    assert "The KL term adds" in captions  # beta > 0


def test_picking_another_token_fills_in_its_numbers(grpo_step):
    run, samples = grpo_step
    extras = samples.loc[0, "extras"]
    at = _open(run, samples)
    at.number_input(key="rl_push_token_7_1").set_value(0).run()
    assert not at.exception, at.exception
    factors = at.dataframe[0].value
    w, r, a = factors["value"].tolist()
    assert w == pytest.approx(extras["token_weight"]) and r == pytest.approx(extras["ratio"][0])
    assert a == pytest.approx(extras["advantage"])
    substituted = at.get("latex")[-1].value
    assert f"{w * r * a:.4g}" in substituted  # the push from the numbers shown


def test_tokens_reach_the_page_escaped(grpo_step):
    run, samples = grpo_step
    at = _open(run, samples)
    markup = json.loads(at.get("bidi_component")[0].proto.json)["markup"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in markup and "<b>bold" not in markup
    at.number_input(key="rl_push_token_7_1").set_value(0).run()
    assert at.code[0].value == "<b>bold</b>"  # st.code shows it as text


def test_side_by_side_lists_the_algorithms_the_step_allows(grpo_step):
    run, samples = grpo_step
    at = _open(run, samples)
    assert len(at.dataframe) == 0, "closed, the side-by-side computes nothing"
    at.session_state["rl_push_others_7"] = True  # open it, as a click does
    at.run()
    labels = " ".join(m.value for m in at.markdown)
    assert "GRPO (this run)" in labels and "RLOO" in labels and "REINFORCE" in labels and "PPO" not in labels
    weights = at.dataframe[0].value
    assert {"grpo: sum of w", "dapo: sum of w", "dr_grpo: sum of w"} <= set(weights.columns)
    at.segmented_control(key="rl_push_compare_lt_7").set_value("dapo").run()
    assert not at.exception, at.exception


def test_runs_page_samples_tab_shows_the_push_view(grpo_step, workbench_home):
    from tests.support.apptest import ROOT
    from ui import state

    run, samples = grpo_step
    state.get_run_manager.clear()
    store = state.get_store()
    run_id = store.create_run("lm_rl", "inspect on Runs", run["config"], total_steps=2)
    store.mark_started(run_id)
    store.add_samples(run_id, 2, samples.drop(columns=["id", "step"]).to_dict("records"))
    store.set_progress(run_id, 2, 2)
    store.set_status(run_id, "completed")
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("pages/runs/runs.py").run()
        at.session_state[f"runs_tabs_{run_id}"] = "Samples"
        at.run()
        assert not at.exception, at.exception
        assert at.get("bidi_component"), "the clickable push view"
        assert any("Click a token to see its formula" in c.value for c in at.caption)
    finally:
        state.get_run_manager.clear()
