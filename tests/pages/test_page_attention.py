"""AppTest for the Attention page (in-process, no browser), on the tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.apptest import open_page

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "<script>alert(1)</script>"


def _page() -> AppTest:
    return open_page("language_models/attention.py", timeout=120)


def _compute(at: AppTest, text: str) -> AppTest:
    at.text_area(key="att_text").set_value(text)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, [e.value for e in at.exception]
    return at


def _open_tab(at: AppTest, label: str) -> AppTest:
    """Open one of the lazy tabs (only the open tab runs)."""
    at.session_state["att_tabs"] = label
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _head_view_markup(at: AppTest) -> str:
    return " ".join(el.proto.srcdoc for el in at.get("iframe"))


def test_page_maps_a_text_and_shows_the_views(page_env):
    at = _page()
    assert at.title[0].value == "Attention explorer"
    assert any("Compute attention" in i.value for i in at.info)
    _compute(at, f"The cat sat. {SCRIPT} The cat")
    assert not at.error
    assert at.session_state["att_layer"] == 1  # the last of the tiny model's 2 layers opens first
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the grid and the head heatmap; the head view (first tab) is an iframe
    body = _head_view_markup(at)
    # The tokenizer splits the tag into ' <', 'script', '>': each arrives escaped, none as markup.
    assert "&lt;" in body and "&gt;" in body and "<script" not in body
    assert "<script" not in " ".join(c.proto.spec for c in charts)
    assert any("2 layers × 4 query heads sharing 2 key/value heads" in c.value for c in at.caption)
    for tab, key in (("Aggregates", "att_agg"), ("One token", "att_tok_bar")):
        _open_tab(at, tab)
        assert any(c.key == key for c in at.get("plotly_chart")), tab
        assert not at.get("iframe")  # closed tabs do not run
    _open_tab(at, "Aggregates").radio(key="att_agg_kind").set_value("Rollout").run()
    assert not at.exception


def test_grid_click_opens_that_head(page_env):
    at = _compute(_page(), "one two three four")
    at.session_state["att_grid"] = {"selection": {"points": [{"customdata": [0, 3]}]}}
    at.run()
    assert not at.exception
    assert (at.session_state["att_layer"], at.session_state["att_head"]) == (0, 3)
    assert at.multiselect(key="att_hv_heads").value == [3]  # the head view follows the chosen head
    at.selectbox(key="att_head").set_value(1).run()  # the selectboxes still work after a click
    assert at.session_state["att_head"] == 1 and at.multiselect(key="att_hv_heads").value == [1]
    at.button[0].click().run()  # a new text opens its default head, not the old click
    assert (at.session_state["att_layer"], at.session_state["att_head"]) != (0, 3)
    assert at.session_state["att_layer"] == 1
    at.multiselect(key="att_hv_heads").set_value([0, 1, 2]).run()  # several heads at once, in colours
    assert _head_view_markup(at).count("■ head") == 3
    assert not at.exception and not at.warning


def test_over_long_text_shows_the_message(page_env):
    at = _compute(_page(), "alpha beta gamma delta " * 120)
    warnings = " ".join(w.value for w in at.warning)
    assert "attention is mapped for the first 256" in warnings  # the tiny model's context


def test_generated_completion_is_selectable(page_env):
    at = _page()
    at.radio(key="att_mode").set_value("Prompt + generated completion")
    at.number_input(key="att_max_new").set_value(4)
    _compute(at, "Once upon a time")
    maps = at.session_state["att_maps"]
    assert maps.n_prompt < maps.n_tokens
    _open_tab(at, "One token")
    assert "(generated)" in at.selectbox(key="att_tok_choice").value


def test_compare_same_model_and_refused_shapes(page_env):
    at = _open_tab(_compute(_page(), "compare these maps"), "Compare models")
    at.selectbox(key="att_cmp_model_choice").set_value("Other (type a path or hub id)…").run()
    at.text_input(key="att_cmp_model_typed").set_value(str(page_env))
    at.button(key="att_cmp_go").click().run()
    assert not at.exception and not at.error
    assert any("identical" in i.value for i in at.info)
    at.text_input(key="att_cmp_model_typed").set_value("")
    at.button(key="att_cmp_go").click().run()
    assert any("Type a model spec" in e.value for e in at.error)
    at.text_input(key="att_cmp_model_typed").set_value("/no/such/checkpoint")
    at.button(key="att_cmp_go").click().run()
    assert any("No file or folder" in e.value for e in at.error)


def test_compare_lists_run_checkpoints(page_env):
    """A fine-tuning run's 'checkpoint' artifact is offered as the second model and compares cleanly."""
    from ui import state

    store = state.get_store()
    run_id = store.create_run("grpo", "attention-page-test", {})
    store.add_artifact(run_id, 3, "checkpoint", str(page_env), {})
    store.add_artifact(run_id, 4, "checkpoint", "/gone/checkpoint", {})  # deleted since: not offered
    at = _open_tab(_compute(_page(), "compare these maps"), "Compare models")
    options = at.selectbox(key="att_cmp_model_choice").options
    label = f"checkpoint: run #{run_id} attention-page-test · step 3"
    assert label in options and not any("step 4" in o for o in options if f"#{run_id} " in o)
    at.selectbox(key="att_cmp_model_choice").set_value(label).run()
    at.button(key="att_cmp_go").click().run()
    assert not at.exception and not at.error
    assert any("identical" in i.value for i in at.info)


def test_a_typed_spec_with_markup_is_shown_literally_in_the_error(page_env):
    at = _open_tab(_compute(_page(), "compare these maps"), "Compare models")
    at.selectbox(key="att_cmp_model_choice").set_value("Other (type a path or hub id)…").run()
    at.text_input(key="att_cmp_model_typed").set_value("/no/**such**/[x](javascript:alert(1))")
    at.button(key="att_cmp_go").click().run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert r"\*\*such\*\*" in shown and r"\[x\]" in shown, shown  # escaped: Markdown shows it as typed
