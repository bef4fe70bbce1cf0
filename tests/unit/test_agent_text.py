"""The environments in words: the documented prompt text, and templates refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

from llmrl_core.agent.config import AgentConfig
from llmrl_core.agent.text_env import get_adapter, render_prompt, render_state
from llmrl_core.core.errors import InputError


def test_cartpole_prompt_is_exactly_as_documented() -> None:
    adapter = get_adapter("CartPole-v1")
    obs = np.array([0.012, -0.21, -0.05, 0.31])  # pole 2.9 degrees to the left, turning right
    assert render_state(adapter, adapter.state_template, obs) == "Pole leans left, falling right. Push the cart"
    assert render_prompt(adapter, adapter.instruction, adapter.state_template, obs) == (
        "Balance a pole on a cart. Each step, push the cart left or right.\n"
        "Pole leans left, falling right. Push the cart")
    numbers = "Cart {cart_position:+.1f} moving {cart_velocity:+.1f}. Pole leans {pole_side} {pole_angle:.0f} degrees."
    assert render_state(adapter, numbers, obs) == "Cart +0.0 moving -0.2. Pole leans left 3 degrees."
    values = adapter.describe_state(obs)
    assert values["pole_angle"] == pytest.approx(np.degrees(0.05))
    assert values["pole_speed"] == pytest.approx(np.degrees(0.31))
    assert adapter.action_words == ("left", "right")


def test_frozen_lake_prompt_names_the_cell_and_its_neighbours() -> None:
    adapter = get_adapter("FrozenLake-v1")
    assert render_state(adapter, adapter.state_template, 0) == (
        "You are at row 0, column 0. Left is the edge, down is ice, right is ice, up is the edge. Move")
    # Cell 4 is row 1, column 0: the hole at (1, 1) is to its right.
    assert render_state(adapter, adapter.state_template, 4) == (
        "You are at row 1, column 0. Left is the edge, down is ice, right is a hole, up is ice. Move")
    assert render_state(adapter, adapter.state_template, 14).endswith("right is the goal, up is ice. Move")
    assert adapter.action_words == ("left", "down", "right", "up")


def test_config_fills_the_environments_texts() -> None:
    cfg = AgentConfig(env_id="FrozenLake-v1")
    assert cfg.action_words == ["left", "down", "right", "up"]
    assert cfg.instruction.startswith("Cross a frozen lake")
    assert AgentConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(action_words=["left", "jump"]), "'jump' does not appear in the template's list of actions"),
    (dict(action_words=["left", "left"]), "The action words repeat"),
    (dict(action_words=["left"]), "CartPole-v1 has 2 actions"),
    (dict(action_words=["left", " right"]), "spaces around it"),
    (dict(state_template="Pole at {pole_tilt}. Push"), "{pole_tilt}, which CartPole-v1 does not have"),
    (dict(state_template="Pole at {pole_angle:.q}. Push"), "cannot be filled in"),
    (dict(state_template="Pole at {pole_angle. Push"), "braces do not match"),
    (dict(state_template="Push the cart "), "ends with a space"),
    (dict(env_id="Pong-v5"), "Unknown environment 'Pong-v5'"),
    (dict(algo="dqn"), "Unknown algorithm 'dqn'"),
    (dict(normalisation="char"), "normalisation must be one of"),
    (dict(n_envs=0), "n_envs must be between 1 and 256"),
    (dict(gamma=1.5), "gamma is a discount factor"),
    (dict(bogus=1), "Unknown agent setting(s): 'bogus'"),
])
def test_bad_settings_and_templates_are_refused_with_what_to_change(overrides: dict, message: str) -> None:
    with pytest.raises(InputError) as err:
        AgentConfig.from_dict(overrides)
    assert message in str(err.value)
