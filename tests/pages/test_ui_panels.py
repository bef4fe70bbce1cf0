"""AppTest checks of the reusable panels: prompt picker, reward editor and reward lab."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from llmrl_core.lm_rl.prompts import load_prompt_set


def picker_page():
    import streamlit as st

    from ui.prompt_picker import prompt_picker_ui

    source, frame = prompt_picker_ui("pp")
    st.markdown(f"RESULT source={source} rows={None if frame is None else len(frame)}")


def editor_page(allow: bool):
    import streamlit as st

    from ui.reward_lab import reward_editor_ui

    specs = reward_editor_ui("re", allow, "Custom Python is off: TEST REASON.")
    st.session_state["specs_out"] = specs


def lab_page():
    from ui.reward_lab import reward_lab_ui

    reward_lab_ui([{"type": "vader", "name": "sentiment"},
                   {"type": "length", "target": 3, "falloff": 3, "weight": 0.5},
                   {"type": "exact_answer", "weight": 2.0}], key="lab")


def _result(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("RESULT"))


def shown_errors(at) -> list[str]:
    """Error texts as the user reads them (the panels backslash-escape Markdown in messages that quote input)."""
    return [e.value.replace("\\", "") for e in at.error]


def test_prompt_picker_builtin_upload_and_errors():
    at = AppTest.from_function(picker_page, default_timeout=30).run()
    assert not at.exception
    assert _result(at) == f"RESULT source=sentence-starters rows={len(load_prompt_set('sentence-starters'))}"
    assert at.dataframe[0].value["prompt"].iloc[0] == "The weather today"
    at.selectbox(key="pp_builtin").set_value("arithmetic").run()
    assert list(at.dataframe[0].value.columns) == ["prompt", "answer"] and "extra columns" in at.caption[-1].value

    at.radio(key="pp_mode").set_value("Upload a file").run()
    assert _result(at) == "RESULT source= rows=None"
    at.file_uploader(key="pp_upload").set_value(("mine.csv", b"prompt,answer\n<b>hi</b>,1\nsecond,2\n", "text/csv")).run()
    assert _result(at) == "RESULT source=upload:mine.csv rows=2"
    assert at.dataframe[0].value["prompt"].tolist() == ["<b>hi</b>", "second"]  # shown as data, not HTML
    at.file_uploader(key="pp_upload").set_value(("bad.csv", b"question\nx\n", "text/csv")).run()
    assert _result(at) == "RESULT source=upload:bad.csv rows=None"
    assert "has no prompt column (its columns are: question)" in shown_errors(at)[0]
    assert not at.dataframe

    at.radio(key="pp_mode").set_value("Hugging Face dataset").run()
    at.text_input(key="pp_hf_id").set_value("openai/gsm8k").run()
    at.button(key="pp_hf_load").click().run()
    assert "the hub is unreachable" in shown_errors(at)[0]
    assert _result(at) == "RESULT source=hf:openai/gsm8k rows=None"


def test_reward_editor_adds_edits_removes_and_explains_custom_code_refusal():
    at = AppTest.from_function(editor_page, args=(False,), default_timeout=30).run()
    assert not at.exception
    assert at.session_state["specs_out"] == [{"type": "vader", "name": "sentiment", "weight": 1.0, "target": "positive"}]
    assert "custom" not in at.selectbox(key="re_new_type").options
    assert any("TEST REASON" in c.value for c in at.caption)

    at.selectbox(key="re_new_type").set_value("length").run()
    at.button(key="re_add").click().run()
    at.number_input(key="re_1_target").set_value(12).run()
    at.number_input(key="re_1_weight").set_value(0.25).run()
    specs = at.session_state["specs_out"]
    assert specs[1] == {"type": "length", "name": "length", "weight": 0.25, "target": 12, "unit": "words", "falloff": 50}
    assert isinstance(specs[1]["target"], int)
    assert "length · Length target · weight 0.25" in [e.label for e in at.expander]

    at.number_input(key="re_1_falloff").set_value(0).run()
    assert "Reward 'length' (Length target): The fall-off must be above 0 words" in shown_errors(at)[0]
    at.number_input(key="re_1_falloff").set_value(6).run()
    assert not at.error
    at.selectbox(key="re_1_unit").set_value("chars").run()
    at.button(key="re_0_remove").click().run()
    assert [s["type"] for s in at.session_state["specs_out"]] == ["length"]
    assert at.session_state["specs_out"][0]["unit"] == "chars"

    at.selectbox(key="re_new_type").set_value("keywords").run()
    at.button(key="re_add").click().run()
    assert any("needs words to include or to avoid" in e for e in shown_errors(at))
    at.text_input(key="re_2_include").set_value("sun, happy ,").run()
    assert at.session_state["specs_out"][1]["include"] == ["sun", "happy"] and not at.error
    at.button(key="re_2_remove").click().run()

    at.selectbox(key="re_new_type").set_value("regex").run()
    at.button(key="re_add").click().run()
    at.text_input(key="re_3_name").set_value("bad/name").run()
    assert any("without '/'" in e for e in shown_errors(at))


def test_reward_editor_offers_custom_code_when_allowed():
    at = AppTest.from_function(editor_page, args=(True,), default_timeout=30).run()
    at.selectbox(key="re_new_type").set_value("custom").run()
    at.button(key="re_add").click().run()
    assert not at.exception
    assert "def reward(prompts, completions, **kwargs)" in at.text_area(key="re_1_code").value
    assert at.session_state["specs_out"][1]["timeout_s"] == 10.0


def test_reward_lab_scores_typed_text_with_each_reward_and_the_total():
    at = AppTest.from_function(lab_page, default_timeout=60).run()
    at.text_area(key="lab_typed").set_value("I love it!\n---\nbad awful thing happened here 42")
    at.text_input(key="lab_answer").set_value("42")
    at.button(key="lab_score").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table.columns) == ["completion", "sentiment", "length", "exact_answer", "total"]
    assert table["completion"].tolist() == ["I love it!", "bad awful thing happened here 42"]
    assert table["length"].tolist() == [1.0, 0.0]  # 3 words at target 3; 6 words is 3 away (falloff 3)
    assert table["exact_answer"].tolist() == [0.0, 1.0]
    expected = table["sentiment"] + 0.5 * table["length"] + 2.0 * table["exact_answer"]
    assert table["total"].tolist() == pytest.approx(expected.tolist())
    assert table["sentiment"].iloc[0] > 0.5 > -0.5 > table["sentiment"].iloc[1]
    assert "total = 1 × sentiment + 0.5 × length + 2 × exact_answer" in at.caption[-1].value


def test_reward_lab_reports_reward_errors_in_place():
    at = AppTest.from_function(lab_page, default_timeout=60).run()
    at.button(key="lab_score").click().run()  # no answer column: exact_answer fails with its name
    assert "Reward 'exact_answer' failed" in shown_errors(at)[0] and "no 'answer' column" in shown_errors(at)[0]
    assert not at.dataframe


def test_reward_lab_samples_from_the_loaded_model(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("LLMRL_MODEL", str(tiny_model_dir))
    from ui.state import get_model_holder

    get_model_holder.clear()  # a fresh holder that loads LLMRL_MODEL
    at = AppTest.from_function(lab_page, default_timeout=120).run()
    at.radio(key="lab_source").set_value("Samples from the loaded model").run()
    at.number_input(key="lab_n").set_value(2)
    at.number_input(key="lab_max_new").set_value(4)
    at.text_input(key="lab_answer").set_value("7")
    at.button(key="lab_sample").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert len(table) == 2 and table["total"].notna().all()
    get_model_holder.clear()
