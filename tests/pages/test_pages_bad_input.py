"""The bad-input matrix, pages part (Streamlit AppTest): each page shows an st.error or st.warning naming the
field (and the fix) and no st.exception, and a refused start leaves the store as it was. The engine and CLI
part is tests/unit/test_bad_input.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.apptest import open_page, read_shown_messages
from tests.support.bad_input import MARKUP, TRAVERSAL, count_store_rows

ROOT = Path(__file__).resolve().parents[2]


def _click_and_expect(at: AppTest, button: str, needles: list[str], before: tuple | None = None) -> None:
    """Click `button`; the page must raise nothing, name every needle in an error or warning, and (given
    `before`) leave the store as it was."""
    at.button(key=button).click()
    at.run()
    assert not at.exception, at.exception
    shown = read_shown_messages(at)
    for needle in needles:
        assert needle.lower() in shown.lower(), (needle, shown)
    if before is not None:
        assert count_store_rows() == before


def _rl_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "language_models" / "lm_rl.py"), default_timeout=120)
    at.run()
    at.session_state["rl_view"] = "New run"
    at.run()
    assert not at.exception, at.exception
    return at


RL_PAGE_CASES = [
    pytest.param("text_input", "rl_f_model", TRAVERSAL, ["not a .gguf model"], id="rlpage-model-traversal"),
    pytest.param("text_input", "rl_f_model", MARKUP, ["not a model spec"], id="rlpage-model-markup"),
    pytest.param("text_input", "rl_f_model", "", ["model is empty"], id="rlpage-model-empty"),
    pytest.param("text_input", "rl_f_name", "  ", ["name is empty"], id="rlpage-name-empty"),
    pytest.param("text_input", "rl_f_name", "n" * 500, ["name", "characters"], id="rlpage-name-huge"),
    pytest.param("text_input", "rl_f_epsilon_high", "abc", ["epsilon_high", "number"], id="rlpage-epsilon_high-text"),
    pytest.param("text_input", "rl_f_epsilon_high", "nan", ["epsilon_high", "finite"], id="rlpage-epsilon_high-nan"),
    pytest.param("text_input", "rl_f_epsilon_high", "inf", ["epsilon_high", "finite"], id="rlpage-epsilon_high-inf"),
    pytest.param("text_input", "rl_f_resume_from", TRAVERSAL, ["resume_from", "no folder"], id="rlpage-resume-traversal"),
    pytest.param("text_input", "rl_f_resume_from", MARKUP, ["resume_from"], id="rlpage-resume-markup"),
    pytest.param("number_input", "rl_f_learning_rate", 0.0, ["learning_rate", "positive"], id="rlpage-learning_rate-zero"),
    pytest.param("number_input", "rl_f_learning_rate", 1e6, ["learning_rate", "diverge"], id="rlpage-learning_rate-huge"),
    pytest.param("number_input", "rl_f_steps", 0, ["steps", "at least 1"], id="rlpage-steps-zero"),
    pytest.param("number_input", "rl_f_steps", 10**9, ["steps", "at most"], id="rlpage-steps-huge"),
    pytest.param("number_input", "rl_f_num_generations", 1, ["num_generations to 2"], id="rlpage-num_generations-one"),
    pytest.param("number_input", "rl_f_temperature", 0.0, ["temperature"], id="rlpage-temperature-zero"),
    pytest.param("number_input", "rl_f_max_new_tokens", 10**7, ["max_new_tokens", "at most"], id="rlpage-max_new_tokens-huge"),
    pytest.param("number_input", "rl_f_seed", -5, ["seed", "at least 0"], id="rlpage-seed-negative"),
]


@pytest.mark.parametrize(("kind", "key", "value", "needles"), RL_PAGE_CASES)
def test_rl_page_form_refuses_with_the_field_named(kind, key, value, needles, page_env):
    at = _rl_page()
    before = count_store_rows()
    getattr(at, kind)(key=key).set_value(value)
    at.run()
    _click_and_expect(at, "rl_start", needles, before)


RL_YAML_CASES = [
    pytest.param("learning_rate: .nan", ["learning_rate", "finite"], id="rlyaml-nan"),
    pytest.param("learnig_rate: 1.0e-5", ["did you mean 'learning_rate'"], id="rlyaml-unknown-key"),
    pytest.param("algorithm: [grpo", ["not valid YAML", "line 1"], id="rlyaml-syntax"),
    pytest.param("- grpo", ["mapping"], id="rlyaml-list"),
    pytest.param(f"name: 5\nmodel: '{MARKUP}'", ["name must be text"], id="rlyaml-wrong-type"),
]


@pytest.mark.parametrize(("text", "needles"), RL_YAML_CASES)
def test_rl_page_yaml_loader_refuses_with_the_field_named(text, needles, page_env):
    at = _rl_page()
    at.session_state["rl_yaml_text"] = text
    at.run()
    _click_and_expect(at, "rl_yaml_load", needles)


def test_rl_page_shows_preflight_warnings_above_start(page_env, monkeypatch):
    from llmrl_core.lm_rl import preflight

    monkeypatch.setattr(preflight, "read_device_info", lambda device="auto": preflight.DeviceInfo(
        "cpu", "AMD EPYC 7B12 (Zen 2)", 64 * 2**30, 128 * 2**30, cpu_capability="AVX2", cpu_flags=frozenset({"avx2"})))
    at = _rl_page()
    at.selectbox(key="rl_f_mixed_precision").set_value("bf16")
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any("mixed_precision" in w and "130 s" in w and "to 'no'" in w for w in warnings), warnings
    at.selectbox(key="rl_f_mixed_precision").set_value("no")
    at.run()
    assert not any("mixed_precision" in w.value.replace("\\", "") for w in at.warning)


GYM_PAGE_CASES = [
    pytest.param("text_input", "net_arch", "abc", ["net_arch", "64,64"], id="gympage-net_arch-text"),
    pytest.param("text_input", "net_arch", MARKUP, ["net_arch"], id="gympage-net_arch-markup"),
    pytest.param("text_input", "net_arch", "", ["net_arch"], id="gympage-net_arch-empty"),
    pytest.param("text_input", "net_arch", "100000", ["net_arch", "4096"], id="gympage-net_arch-huge"),
    pytest.param("number_input", "learning_rate", 0.0, ["learning_rate"], id="gympage-learning_rate-zero"),
    pytest.param("number_input", "learning_rate", 5.0, ["learning_rate", "at most 1"], id="gympage-learning_rate-huge"),
    pytest.param("number_input", "gamma", 2.0, ["gamma"], id="gympage-gamma-above-1"),
    pytest.param("number_input", "n_envs", 0, ["n_envs"], id="gympage-n_envs-zero"),
]


@pytest.mark.parametrize(("kind", "field", "value", "needles"), GYM_PAGE_CASES)
def test_gym_page_form_refuses_with_the_field_named(kind, field, value, needles, page_env):
    at = open_page("gymnasium/gym_agents.py", timeout=120)
    before = count_store_rows()
    getattr(at, kind)(key=f"gym_CartPole-v1_ppo_{field}").set_value(value)
    _click_and_expect(at, "gym_train", needles, before)


PLAYGROUND_CASES = [
    pytest.param("pg_spec", TRAVERSAL, "pg_load", ["not a .gguf model"], id="playground-spec-traversal"),
    pytest.param("pg_spec", MARKUP, "pg_load", ["not a model spec"], id="playground-spec-markup"),
    pytest.param("pg_seed", "nan", "pg_generate", ["seed"], id="playground-seed-nan"),
    pytest.param("pg_seed", "1e999", "pg_generate", ["seed"], id="playground-seed-inf"),
    pytest.param("pg_seed", "-1", "pg_generate", ["seed"], id="playground-seed-negative"),
    pytest.param("pg_seed", "9" * 40, "pg_generate", ["seed"], id="playground-seed-huge"),
]


@pytest.mark.parametrize(("key", "value", "button", "needles"), PLAYGROUND_CASES)
def test_playground_refuses_with_the_field_named(key, value, button, needles, page_env):
    at = open_page("language_models/playground.py", timeout=120)
    at.text_input(key=key).set_value(value)
    _click_and_expect(at, button, needles)


ATTENTION_CASES = [
    pytest.param("", ["type some text"], id="attention-text-empty"),
    pytest.param("   \n ", ["type some text"], id="attention-text-blank"),
]


@pytest.mark.parametrize(("text", "needles"), ATTENTION_CASES)
def test_attention_page_refuses_with_what_to_change(text, needles, page_env):
    at = open_page("language_models/attention.py", timeout=120)
    at.text_area(key="att_text").set_value(text)
    at.button[0].click().run()
    assert not at.exception, at.exception
    shown = read_shown_messages(at)
    for needle in needles:
        assert needle.lower() in shown.lower(), (needle, shown)


CASES = sum(len(group) for group in (RL_PAGE_CASES, RL_YAML_CASES, GYM_PAGE_CASES, PLAYGROUND_CASES, ATTENTION_CASES))
