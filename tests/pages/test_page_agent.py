"""AppTest for the Agent page: the prompt preview and its checks, refused templates, a tiny run shown live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "gymnasium" / "agent.py")
CODE_PREFIX = "Balance a pole on a cart. Each step, push the cart left or right"


def _page(model: Path) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="agent_model").set_value(str(model))
    at.run()
    assert not at.exception, at.exception
    return at


def _codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_preview_shows_the_prompt_and_the_token_checks(tiny_model_dir) -> None:
    at = _page(tiny_model_dir)
    assert at.selectbox(key="agent_env").options == ["CartPole-v1", "FrozenLake-v1"]
    assert any(c.startswith(CODE_PREFIX) and c.endswith("Push the cart ⟨left | right⟩") for c in _codes(at)), _codes(at)
    assert any("action words are distinct token sequences" in c.value for c in at.caption)
    assert not at.button(key="agent_train").disabled
    at.selectbox(key="agent_env").set_value("FrozenLake-v1")
    at.run()
    assert any("You are at row 0, column 0." in c and "⟨left | down | right | up⟩" in c for c in _codes(at))


def test_a_preset_fills_the_form_and_keeps_the_model(tiny_model_dir) -> None:
    from llmrl_core.agent.config import AGENT_PRESETS, AgentConfig

    name, preset = next(iter(AGENT_PRESETS.items()))
    values = preset.overrides
    env = values["env_id"]
    at = _page(tiny_model_dir)
    at.number_input(key=f"agent_{env}_n_envs").set_value(3)  # a change the preset replaces with its own value
    at.selectbox(key="agent_env").set_value("FrozenLake-v1")
    at.run()
    at.button(key=f"agent_preset_{name}").click()
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="agent_env").value == env
    assert at.text_input(key="agent_model").value == str(tiny_model_dir)  # the user's model stays
    expected = AgentConfig.from_dict({k: v for k, v in values.items() if k != "model"})
    for field in ("total_steps", "max_minutes", "n_envs", "eval_episodes", "learning_rate", "lora_last_layers"):
        assert at.number_input(key=f"agent_{env}_{field}").value == getattr(expected, field), field
    assert at.text_area(key=f"agent_{env}_state_template").value == expected.state_template
    assert any(f"Preset **{preset.title}** applied" in c.value for c in at.caption)
    assert any(c.endswith("Push the cart ⟨left | right⟩") and "falling" in c for c in _codes(at)), _codes(at)
    assert not at.button(key="agent_train").disabled


def test_bad_templates_are_refused_and_train_is_disabled(tiny_model_dir) -> None:
    from ui.state import get_store

    before = len(get_store().list_runs(kind="agent"))
    at = _page(tiny_model_dir)
    at.text_input(key="agent_CartPole-v1_action_words").set_value("left, jump")
    at.run()
    assert any("'jump' does not appear in the template's list of actions" in e.value for e in at.error)
    assert at.button(key="agent_train").disabled
    at.text_input(key="agent_CartPole-v1_action_words").set_value("left, right")
    at.text_area(key="agent_CartPole-v1_instruction").set_value("Push the cart left or right. " * 40)
    at.run()
    assert any("more than the model's context of 256" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="agent_train").disabled
    assert len(get_store().list_runs(kind="agent")) == before


def test_tiny_run_from_the_page_shows_curves_comparison_and_player(tiny_model_dir) -> None:
    from ui.state import get_run_manager

    at = _page(tiny_model_dir)
    p = "agent_CartPole-v1_"
    at.number_input(key=p + "total_steps").set_value(16)
    at.number_input(key=p + "n_envs").set_value(2)
    at.number_input(key=p + "n_steps").set_value(8)
    at.number_input(key=p + "minibatch_size").set_value(8)
    at.number_input(key=p + "eval_episodes").set_value(2)
    at.selectbox(key=p + "device").set_value("cpu")
    at.button(key="agent_train").click()
    at.run()
    run_id = at.session_state["agent_run_id"]
    assert get_run_manager().wait(run_id, timeout=240)
    at.run()
    assert not at.exception, at.exception
    run = get_run_manager().store.get_run(run_id)
    assert run["status"] == "completed", run.get("error")
    assert run["config"]["model"] == str(tiny_model_dir) and run["config"]["total_steps"] == 16
    assert at.selectbox(key="agent_pick").value == run_id
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # return, diagnostics, losses
    specs = [json.loads(c.proto.spec) for c in charts]
    diagnostics = [s for s in specs if any("probe states" in str(t.get("name")) for t in s.get("data", []))]
    assert len(diagnostics) == 1, [[t.get("name") for t in s.get("data", [])] for s in specs]
    names = {t["name"]: t for t in diagnostics[0]["data"]}
    assert set(names) == {"p(push toward the lean), probe states", "policy entropy per rollout (nats)",
                          "minority actions per rollout"}
    recorded = get_run_manager().store.read_metrics(run_id, names=["diag/p_toward_lean", "diag/minority_actions"])
    assert sorted(recorded["step"]) == [0, 16, 16]  # the probes before training and after the one update
    assert any("probe states" in c.value for c in at.caption)
    assert len(at.get("iframe")) >= 1  # the latest episode's player
    assert any("difference" in s.value and "95% CI" in s.value for s in at.success), [s.value for s in at.success]
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["zero-shot"] != "–" and tiles["trained"] != "–" and tiles["random policy"] != "–"
