"""Gymnasium environments in words: an observation becomes a short prompt, an action becomes a word.

A `TextAdapter` knows one environment with a discrete action space and a documented observation:
the named values it reads off an observation (`describe_state`), the default instruction (the
constant prefix, whose key/value cache is computed once), the default state template (filled from
those values with Python's str.format, so `{pole_angle:.0f}` works) and the default action words in
the order of the environment's action indices. The prompt the model reads is

    instruction + state_template.format(**values) + " " + action word

tokenised piecewise (instruction, state, " word") so the instruction's tokens never change and the
cached prefix is exact. `check_template` refuses templates that cannot work before anything starts.

CartPole-v1's observation (Gymnasium docs): cart position (m), cart velocity (m/s), pole angle
(rad, positive leaning right), pole angular velocity (rad/s). FrozenLake-v1's: the cell index
row * ncol + col on the 4x4 map; actions 0 left, 1 down, 2 right, 3 up.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from llmrl_core.core.errors import InputError

# ----------------------------------------------------------------------------- the adapters


@dataclass(frozen=True)
class TextAdapter:
    """How one environment reads as text."""

    env_id: str
    instruction: str
    """the constant prefix: what the task is and which words name the actions"""
    state_template: str
    """one observation in words; str.format fields from `fields`"""
    action_words: tuple[str, ...]
    """one word per action index, in the environment's order"""
    fields: tuple[str, ...]
    """the names a state template may use"""
    describe: Callable[[Any], dict[str, Any]]
    """observation -> {field: value}"""
    blurb: str
    """one line for the page"""

    def describe_state(self, obs: Any) -> dict[str, Any]:
        """The named values of one observation (what a template's fields read)."""
        return self.describe(obs)


def describe_cartpole(obs: Any) -> dict[str, Any]:
    """CartPole's four numbers, with the pole's lean and turn also as the words 'left'/'right'.

    pole_angle and pole_speed are magnitudes in degrees and degrees per second; pole_side and
    pole_turning say which way (a positive angle leans right, a positive angular velocity turns right).
    """
    x, v, theta, omega = (float(o) for o in np.asarray(obs, dtype=np.float64).reshape(-1)[:4])
    return {
        "cart_position": x,
        "cart_velocity": v,
        "pole_angle": abs(math.degrees(theta)),
        "pole_side": "right" if theta >= 0 else "left",
        "pole_speed": abs(math.degrees(omega)),
        "pole_turning": "right" if omega >= 0 else "left",
        "pole_angle_rad": theta,
        "pole_velocity_rad": omega,
    }


FROZEN_LAKE_MAP = ("SFFF", "FHFH", "FFFH", "HFFG")
"""Gymnasium's default 4x4 FrozenLake map (S start, F frozen, H hole, G goal)."""
_CELL_WORDS = {"S": "ice", "F": "ice", "H": "a hole", "G": "the goal"}


def describe_frozen_lake(obs: Any, desc: Sequence[str] = FROZEN_LAKE_MAP) -> dict[str, Any]:
    """Row and column of the cell (from 0, top left), and what lies one step left/down/right/up."""
    nrow, ncol = len(desc), len(desc[0])
    cell = int(np.asarray(obs).reshape(-1)[0])
    row, col = divmod(cell, ncol)

    def look(dr: int, dc: int) -> str:
        r, c = row + dr, col + dc
        return _CELL_WORDS[desc[r][c]] if 0 <= r < nrow and 0 <= c < ncol else "the edge"

    return {"row": row, "col": col, "goal_row": nrow - 1, "goal_col": ncol - 1,
            "left": look(0, -1), "down": look(1, 0), "right": look(0, 1), "up": look(-1, 0)}


ADAPTERS: dict[str, TextAdapter] = {
    "CartPole-v1": TextAdapter(
        env_id="CartPole-v1",
        # Words, not numbers, carry the decision: the model learns "falling right -> right" within minutes
        # (bench/bench_lm_agent.py), while digits cost tokens and a 135M model does not learn to read them in that
        # time. The instruction names no side to favour ("toward the lean" was a weaker rule than the fall).
        instruction="Balance a pole on a cart. Each step, push the cart left or right.\n",
        state_template="Pole leans {pole_side}, falling {pole_turning}. Push the cart",
        action_words=("left", "right"),
        fields=("cart_position", "cart_velocity", "pole_angle", "pole_side", "pole_speed", "pole_turning",
                "pole_angle_rad", "pole_velocity_rad"),
        describe=describe_cartpole,
        blurb="Keep the pole upright by pushing the cart left or right; +1 per step, 500 at most.",
    ),
    "FrozenLake-v1": TextAdapter(
        env_id="FrozenLake-v1",
        instruction=("Cross a frozen lake from the top left to the goal at the bottom right without falling "
                     "into a hole. The ice is slippery. Each step, move left, down, right or up.\n"),
        state_template=("You are at row {row}, column {col}. Left is {left}, down is {down}, right is {right}, "
                        "up is {up}. Move"),
        action_words=("left", "down", "right", "up"),
        fields=("row", "col", "goal_row", "goal_col", "left", "down", "right", "up"),
        describe=describe_frozen_lake,
        blurb="Reach the goal across slippery ice without falling in a hole; reward 1 at the goal, else 0.",
    ),
}


PROBE_ANGLES_DEG = (1.0, 3.0, 6.0, 10.0)
"""Pole angles of the CartPole probe states, each leaning left and right: small to near the 12-degree limit."""


def make_probe_states(env_id: str) -> tuple[list[np.ndarray], list[int]] | None:
    """Fixed states to watch the policy on, with the action a good policy takes in each; None without probes.

    CartPole-v1: the cart at rest in the middle, the pole leaning left or right by PROBE_ANGLES_DEG
    and falling that way (angular velocity 0.3 rad/s toward the lean); the good action pushes the
    cart toward the lean (action 1, right, when the angle is positive). The mean probability of that
    action moves before the greedy return can: 'always left' and 'always right' score the same.
    """
    if env_id != "CartPole-v1":
        return None
    observations, toward = [], []
    for degrees in PROBE_ANGLES_DEG:
        for side in (-1.0, 1.0):
            theta = side * math.radians(degrees)
            observations.append(np.array([0.0, 0.0, theta, side * 0.3], dtype=np.float32))
            toward.append(1 if side > 0 else 0)
    return observations, toward


def get_adapter(env_id: str) -> TextAdapter:
    """The text adapter of `env_id`, or InputError naming the ones there are."""
    if env_id not in ADAPTERS:
        raise InputError(f"No text view of {env_id!r}: the agent plays {', '.join(ADAPTERS)}.")
    return ADAPTERS[env_id]


# ----------------------------------------------------------------------------- prompts


def render_state(adapter: TextAdapter, state_template: str, obs: Any) -> str:
    """The state text for one observation (no instruction, no action word)."""
    return state_template.format(**adapter.describe_state(obs))


def render_prompt(adapter: TextAdapter, instruction: str, state_template: str, obs: Any) -> str:
    """The whole prompt the model reads before its action word: instruction + state text."""
    return instruction + render_state(adapter, state_template, obs)


def format_action_text(word: str) -> str:
    """The text appended to the prompt for one action: a space, then the word."""
    return " " + word


def check_template(adapter: TextAdapter, instruction: str, state_template: str, action_words: Sequence[str]) -> None:
    """Raise InputError (one line saying what to change) when the template cannot work; tokenizer-free checks.

    The state template must only use the adapter's fields and format; there must be one distinct,
    non-empty action word per action; every action word must appear in the instruction or the state
    template, so the model is told its choices.
    """
    if not isinstance(instruction, str) or not isinstance(state_template, str):
        raise InputError("The instruction and the state template must be text.")
    if not state_template.strip():
        raise InputError("The state template is empty: describe the observation, e.g. "
                         f"{adapter.state_template!r}.")
    if state_template != state_template.rstrip():
        raise InputError("The state template ends with a space or a line break; remove it (the action word "
                         "follows after one space).")
    for literal, name, spec, conv in _parse_format(state_template):
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if base == "" or base.isdigit():
            raise InputError(f"The state template uses a positional field {{{name}}}; name a field instead: "
                             f"{', '.join(adapter.fields)}.")
        if base not in adapter.fields:
            raise InputError(f"The state template uses {{{name}}}, which {adapter.env_id} does not have; "
                             f"its fields are {', '.join(adapter.fields)}.")
    try:
        state_template.format(**adapter.describe_state(make_example_observation(adapter)))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise InputError(f"The state template cannot be filled in: {err}. Check the format after ':' "
                         "in each {field}, e.g. {pole_angle:.0f}.") from None
    words = [w for w in action_words]
    n_actions = len(adapter.action_words)
    if len(words) != n_actions or not all(isinstance(w, str) for w in words):
        raise InputError(f"{adapter.env_id} has {n_actions} actions: give {n_actions} action words, in order "
                         f"({', '.join(adapter.action_words)}); got {len(words)}.")
    for w in words:
        if not w.strip() or w != w.strip():
            raise InputError(f"Action word {w!r} is empty or has spaces around it; give plain words like "
                             f"{', '.join(adapter.action_words)}.")
    if len(set(words)) != len(words):
        raise InputError(f"The action words repeat ({', '.join(words)}); give each action its own word.")
    text = instruction + " " + state_template
    for w in words:
        if not re.search(r"(?<!\w)" + re.escape(w) + r"(?!\w)", text, flags=re.IGNORECASE):
            raise InputError(f"The action word {w!r} does not appear in the template's list of actions; name every "
                             f"action in the instruction (e.g. '... push the cart {' or '.join(words)}') so the "
                             "model knows its choices.")


def _parse_format(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError as err:
        raise InputError(f"The state template's braces do not match: {err}. Write fields as {{name}} and a "
                         "literal brace as {{ or }}.") from None


def make_example_observation(adapter: TextAdapter) -> Any:
    """An observation to try a template on."""
    return np.array([0.01, -0.2, 0.03, 0.3]) if adapter.env_id == "CartPole-v1" else 0


def make_env(env_id: str, seed: int | None = None) -> Any:
    """One Gymnasium environment of `env_id` (its default options, as Gymnasium registers it)."""
    import gymnasium as gym

    env = gym.make(env_id)
    if seed is not None:
        env.action_space.seed(seed)
    return env
