"""The widget builder (ui/config_widgets.py): each field type gets its widget, help and a value of the field's type."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402


def _form_script() -> None:
    """Draws a PPOParams form and the RLConfig fields that need options, storing what the builder returned."""
    import streamlit as st

    from llmrl_core.gym.algorithms import PPOParams
    from llmrl_core.lm_rl.config import RLConfig
    from ui.config_widgets import config_field_ui, config_form_ui

    values = config_form_ui(PPOParams(learning_rate=1e-3), key_prefix="ppo_")
    values["prompt_limit"] = config_field_ui(RLConfig, "prompt_limit", key="rl_prompt_limit", none_as=0, min_value=0)
    values["epsilon_high"] = config_field_ui(RLConfig, "epsilon_high", key="rl_epsilon_high")
    values["use_lora"] = config_field_ui(RLConfig, "use_lora", key="rl_use_lora", widget="radio", horizontal=True)
    values["device"] = config_field_ui(RLConfig, "device", key="rl_device", choices=("auto", "cpu"), label="Device")
    st.session_state["values"] = values


@pytest.fixture()
def at() -> AppTest:
    app = AppTest.from_function(_form_script, default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    return app


def test_each_type_gets_its_widget_with_the_field_doc_as_help(at):
    assert at.number_input(key="ppo_learning_rate").value == pytest.approx(1e-3)
    assert at.number_input(key="ppo_learning_rate").step == pytest.approx(1e-4)  # a tenth of the value's magnitude
    assert at.number_input(key="ppo_n_steps").value == 2048 and at.number_input(key="ppo_n_steps").step == 1
    assert at.selectbox(key="ppo_lr_schedule").options == ["constant", "linear"]  # the field's choices
    assert at.checkbox(key="ppo_use_sde").value is False
    assert at.text_input(key="ppo_net_arch").value == "64, 64"
    assert at.number_input(key="ppo_gamma").help == "discount factor"
    assert at.text_input(key="rl_epsilon_high").value == ""
    assert at.radio(key="rl_use_lora").options == ["False", "True"]
    assert at.selectbox(key="rl_device").label == "Device" and at.selectbox(key="rl_device").options == ["auto", "cpu"]
    values = at.session_state["values"]
    assert values["net_arch"] == [64, 64] and values["learning_rate"] == pytest.approx(1e-3)
    assert values["prompt_limit"] is None and values["epsilon_high"] is None and values["use_lora"] is False


def test_widget_values_come_back_as_the_field_type(at):
    at.text_input(key="ppo_net_arch").input("32, 16")
    at.number_input(key="ppo_n_epochs").set_value(4)
    at.selectbox(key="ppo_lr_schedule").set_value("linear")
    at.number_input(key="rl_prompt_limit").set_value(5)
    at.text_input(key="rl_epsilon_high").input("0.28")
    at.radio(key="rl_use_lora").set_value(True)
    at.run()
    values = at.session_state["values"]
    assert values["net_arch"] == [32, 16] and values["n_epochs"] == 4 and type(values["n_epochs"]) is int
    assert values["lr_schedule"] == "linear" and values["prompt_limit"] == 5 and values["use_lora"] is True
    assert values["epsilon_high"] == pytest.approx(0.28)


def test_text_that_is_not_the_type_comes_back_as_typed_for_validation_to_name(at):
    at.text_input(key="ppo_net_arch").input("64,x")
    at.text_input(key="rl_epsilon_high").input("abc")
    at.run()
    assert not at.exception, at.exception
    values = at.session_state["values"]
    assert values["net_arch"] == "64,x" and values["epsilon_high"] == "abc"
