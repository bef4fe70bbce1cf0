"""The config base (llmrl_core/core/config.py): docs, specs, type checks, text coercion, unknown keys, YAML, --set."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from llmrl_core.core.config import (
    ConfigBase,
    check_field_types,
    coerce_text,
    get_field_docs,
    get_field_specs,
    parse_set_items,
)
from llmrl_core.core.errors import InputError
from llmrl_core.gym.algorithms import GYM_ALGORITHMS, PPOParams, get_gym_algorithm
from llmrl_core.gym.config import ALGOS, ENVS, GymConfig, compatible_algos, make_gym_config
from llmrl_core.lm_rl.config import RLConfig


@dataclass
class Toy(ConfigBase):
    """A config with one field of each kind the base knows."""

    FIELD_CHOICES = {"mode": ("fast", "slow")}

    rate: float = 0.5
    """a number;
    on two lines"""
    count: int = 3
    """a whole number"""
    flag: bool = False
    """true or false"""
    limit: int | None = None
    """a whole number or None"""
    mode: str = "fast"
    """one of two words"""
    widths: list[int] = field(default_factory=lambda: [64, 64])
    """layer widths"""
    names: list[str] = field(default_factory=list)
    """module names"""
    specs: list[dict] = field(default_factory=list)
    """mappings"""
    undocumented: str = "x"

    def __post_init__(self) -> None:
        self.check_types()


def spec(name: str, cls: type = Toy):
    return get_field_specs(cls)[name]


# ----------------------------------------------------------------------------- specs and docs


def test_specs_read_the_annotations():
    specs = get_field_specs(Toy)
    assert list(specs) == ["rate", "count", "flag", "limit", "mode", "widths", "names", "specs", "undocumented"]
    assert (specs["rate"].kind, specs["rate"].optional, specs["rate"].default) == (float, False, 0.5)
    assert (specs["limit"].kind, specs["limit"].optional, specs["limit"].default) == (int, True, None)
    assert (specs["widths"].kind, specs["widths"].item, specs["widths"].default) == (list, int, [64, 64])
    assert (specs["specs"].kind, specs["specs"].item) == (list, dict)
    assert specs["mode"].choices == ("fast", "slow") and specs["count"].choices == ()
    assert get_field_specs(RLConfig)["algorithm"].choices == ("grpo", "rloo", "reinforce", "ppo")
    assert get_field_specs(PPOParams)["lr_schedule"].choices == ("constant", "linear")


def test_docs_are_the_string_under_each_field_on_one_line():
    docs = get_field_docs(Toy)
    assert docs["rate"] == "a number; on two lines"
    assert docs["limit"] == "a whole number or None"
    assert "undocumented" not in docs
    assert Toy.field_docs() is docs
    for cls in (RLConfig, GymConfig, *(a.params_class for a in GYM_ALGORITHMS.values())):
        assert set(get_field_docs(cls)) == set(get_field_specs(cls)), cls.__name__


# ----------------------------------------------------------------------------- coercion of typed text

COERCIONS = [
    ("rate", "2e-5", 2e-05),
    ("rate", " 0.25 ", 0.25),
    ("rate", "3", 3.0),
    ("count", "7", 7),
    ("count", "1e5", 100_000),  # a whole number written as a float
    ("count", "-1", -1),
    ("flag", "true", True),
    ("flag", "Yes", True),
    ("flag", "on", True),
    ("flag", "0", False),
    ("flag", "off", False),
    ("limit", "none", None),
    ("limit", "", None),
    ("limit", "null", None),
    ("limit", "12", 12),
    ("mode", "slow", "slow"),
    ("widths", "[64, 64]", [64, 64]),
    ("widths", "32,16", [32, 16]),
    ("widths", "(128, 128)", [128, 128]),
    ("widths", "", []),
    ("names", "q_proj, v_proj", ["q_proj", "v_proj"]),
    ("names", "['q_proj', 'k_proj']", ["q_proj", "k_proj"]),
    ("specs", "[{type: vader}]", [{"type": "vader"}]),
    ("specs", "vader", "vader"),  # not a list: the type check names the field
]


@pytest.mark.parametrize(("name", "text", "expected"), COERCIONS)
def test_typed_text_becomes_the_field_type(name, text, expected):
    value = coerce_text(spec(name), text)
    assert value == expected and type(value) is type(expected)


def test_nan_and_inf_text_become_floats_that_the_check_refuses():
    assert math.isnan(coerce_text(spec("rate"), "nan")) and coerce_text(spec("rate"), "-inf") == -math.inf
    with pytest.raises(InputError, match="rate must be a finite number"):
        Toy(rate=coerce_text(spec("rate"), "inf"))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("count", "2.5", "count must be a whole number (got '2.5'); the default is 3"),
    ("count", "many", "count must be a whole number"),
    ("rate", "fast", "rate must be a number (got 'fast'); the default is 0.5"),
    ("flag", "maybe", "flag must be true or false"),
    ("limit", "abc", "limit must be a whole number (got 'abc'); leave it empty for the default"),
    ("widths", "64,x", "widths must be whole numbers separated by commas, like 64,64 (got '64,x')"),
])
def test_text_that_is_not_the_type_names_the_field(name, text, message):
    with pytest.raises(InputError) as info:
        coerce_text(spec(name), text)
    assert str(info.value).startswith(message)


# ----------------------------------------------------------------------------- type checks


def test_type_check_normalises_numbers_and_lists():
    toy = Toy(rate=1, count=4.0, widths=(8, 8), names="a, b")
    assert (toy.rate, type(toy.rate), toy.count, type(toy.count)) == (1.0, float, 4, int)
    assert toy.widths == [8, 8] and toy.names == ["a", "b"]
    assert Toy(widths="16, 16").widths == [16, 16]


@pytest.mark.parametrize(("changes", "message"), [
    ({"rate": "0.5"}, r"rate must be a number \(got '0.5' \(str\)\)"),  # text is coerce_text's job, not the check's
    ({"rate": True}, "rate must be a number"),
    ({"count": 2.5}, "count must be a whole number"),
    ({"count": math.nan}, "count must be a whole number"),
    ({"flag": 1}, "flag must be true or false"),
    ({"limit": "3"}, "limit must be a whole number"),
    ({"mode": "fats"}, r"mode must be one of fast, slow \(got 'fats'\) \(did you mean 'fast'\?\)"),
    ({"mode": 3}, "mode must be text"),
    ({"widths": 5}, "widths must be a list"),
    ({"widths": [1.5]}, "widths must be a list of whole numbers, like 64,64"),
    ({"widths": [True]}, "widths must be a list of whole numbers"),
    ({"specs": "vader"}, "specs must be a list"),
])
def test_type_check_names_the_field(changes, message):
    with pytest.raises(InputError, match=message):
        Toy(**changes)


def test_check_field_types_works_on_any_dataclass():
    toy = Toy()
    toy.count = 9.0
    check_field_types(toy)
    assert toy.count == 9 and type(toy.count) is int


# ----------------------------------------------------------------------------- dicts, unknown keys, YAML


def test_from_dict_coerces_text_and_names_unknown_keys():
    assert Toy.from_dict({"rate": "1e-3", "flag": "true", "limit": "none"}) == Toy(rate=1e-3, flag=True)
    with pytest.raises(InputError, match=r"Unknown config field\(s\): 'cont' \(did you mean 'count'\?\)"):
        Toy.from_dict({"cont": 1})
    with pytest.raises(InputError, match=r"A config must be a mapping .*\(got list\)"):
        Toy.from_dict([1])
    with pytest.raises(InputError, match=r"Unknown gym setting\(s\): 'algorithm' \(did you mean 'algo'\?\)"):
        GymConfig.from_dict({"algorithm": "ppo"})


def test_gym_config_takes_typed_values_only():
    """GymConfig's callers (page widgets, --set) coerce text first; a Python caller's text is refused by name."""
    with pytest.raises(InputError, match="n_envs must be a whole number"):
        GymConfig.from_dict({"n_envs": "4"})


def test_yaml_round_trips_for_every_config(tmp_path):
    toy = Toy(rate=0.1, limit=5, widths=[3], names=["q"], specs=[{"type": "vader"}])
    assert Toy.from_yaml(toy.to_yaml()) == toy
    assert Toy.load(toy.save(tmp_path / "toy.yaml")) == toy
    gym = make_gym_config("CartPole-v1", "dqn", total_steps=5000, seed=3)
    assert GymConfig.load(gym.save(tmp_path / "gym.yaml")) == gym
    rl = RLConfig(algorithm="rloo", epsilon_high=0.28, rewards=[{"type": "length", "target": 10}])
    assert RLConfig.from_yaml(rl.to_yaml()) == rl
    assert rl.replace(steps=7).steps == 7 and isinstance(rl.replace(steps=7), RLConfig)
    with pytest.raises(InputError, match="No config file .*GymConfig\\(\\).save"):
        GymConfig.load(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="The gym config is not valid YAML"):
        GymConfig.from_yaml("algo: [ppo")


# ----------------------------------------------------------------------------- --set


def test_set_items_for_the_train_command():
    items = ["learning_rate=2e-5", "use_lora=true", "prompt_limit=none", "lora_target_modules=q_proj, v_proj",
             "rewards=[{type: vader, weight: 0.5}]", "system_prompt='a: b'", "steps=1e3", "name=", "beta=.inf"]
    parsed = parse_set_items(items, RLConfig)
    assert parsed == {"learning_rate": 2e-05, "use_lora": True, "prompt_limit": None,
                      "lora_target_modules": ["q_proj", "v_proj"], "rewards": [{"type": "vader", "weight": 0.5}],
                      "system_prompt": "a: b", "steps": 1000, "name": None, "beta": math.inf}


def test_set_items_for_the_gym_command_keep_the_literal_spellings_working():
    """The gym CLI read values with ast.literal_eval; YAML plus the field's type gives the same for these."""
    classes = (GymConfig, get_gym_algorithm("ppo").params_class)
    cases = {
        "learning_rate=1e-3": 1e-3, "learning_rate=3e-4": 3e-4, "gamma=0.99": 0.99, "batch_size=128": 128,
        "n_steps=1_024": 1024, "net_arch=[32, 32]": [32, 32], "net_arch=(32, 32)": [32, 32], "net_arch=32,32": [32, 32],
        "use_sde=True": True, "use_sde=False": False, "init_from=None": None, "lr_schedule='linear'": "linear",
        "lr_schedule=linear": "linear", "seed=3": 3, "params={'gamma': 0.9}": {"gamma": 0.9},
        "use_sde=true": True,  # literal_eval read this as the text 'true' (then refused); now it is the bool
    }
    for item, expected in cases.items():
        ((key, value),) = parse_set_items([item], classes).items()
        assert value == expected and type(value) is type(expected), (item, value)
    config = make_gym_config("CartPole-v1", "ppo", **parse_set_items(["seed=3", "net_arch=32,32", "gamma=0.95"], classes))
    assert (config.seed, config.params["net_arch"], config.params["gamma"]) == (3, [32, 32], 0.95)
    nan = parse_set_items(["learning_rate=nan"], classes)["learning_rate"]
    assert math.isnan(nan)  # refused by the config with the field named, not taken as text
    with pytest.raises(InputError, match="learning_rate must be a finite number"):
        make_gym_config("CartPole-v1", "ppo", learning_rate=nan)


@pytest.mark.parametrize(("items", "message"), [
    (["gamma"], r"--set takes key=value"),
    (["=3"], r"--set needs a setting name before '=', as in key=value"),
    (["lerning_rate=1"], r"--set lerning_rate: no such setting \(did you mean 'learning_rate'\?\)"),
    (["name=[unclosed"], r"--set name: the value '\[unclosed' is not valid YAML"),
    (["batch_size=many"], r"batch_size must be a whole number \(got 'many'\)"),
])
def test_set_items_refuse_with_the_setting_named(items, message):
    with pytest.raises(InputError, match=message):
        parse_set_items(items, (GymConfig, PPOParams, RLConfig))


# ----------------------------------------------------------------------------- the Gymnasium registry


def test_registry_drives_the_gym_config():
    assert ALGOS == tuple(GYM_ALGORITHMS) == ("ppo", "a2c", "dqn", "random")
    assert {name: a.discrete_only for name, a in GYM_ALGORITHMS.items()} == \
        {"ppo": False, "a2c": False, "dqn": True, "random": False}
    for env_id, info in ENVS.items():
        assert ("dqn" in compatible_algos(env_id)) == info.discrete
    assert make_gym_config("CartPole-v1", "random").n_envs == 1  # default_n_envs
    assert make_gym_config("Pendulum-v1", "ppo").algorithm is GYM_ALGORITHMS["ppo"]
    with pytest.raises(InputError, match=r"Unknown algorithm 'pop' \(did you mean 'ppo'\?\)"):
        get_gym_algorithm("pop")
    with pytest.raises(InputError, match="No Stable-Baselines3 agent for 'random'; pick ppo, a2c, dqn"):
        get_gym_algorithm("random").load_sb3_class()


def test_build_model_applies_the_registry_schedules():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from llmrl_core.gym.job import LinearDecay, build_model

    config = make_gym_config("CartPole-v1", "ppo", n_envs=1, n_steps=64, batch_size=32)  # tuned: both schedules linear
    env = make_vec_env(config.env_id, n_envs=1, seed=0)
    try:
        model = build_model(config, env)
    finally:
        env.close()
    assert isinstance(model, PPO)
    assert isinstance(model.learning_rate, LinearDecay)
    # Halfway through (progress_remaining 0.5) both are half their tuned values.
    assert model.lr_schedule(0.5) == pytest.approx(5e-4) and model.clip_range(0.5) == pytest.approx(0.1)
