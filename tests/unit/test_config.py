"""RLConfig: validation messages that say what to change, presets, YAML round trip."""

from __future__ import annotations

import pytest

import dataclasses

from llmrl_core.lm_rl.config import PRESETS, RLConfig, make_preset_config
from llmrl_core.core.errors import InputError


def test_defaults_are_valid_and_derived_values():
    cfg = RLConfig()
    assert cfg.batch_size == cfg.prompts_per_step * cfg.num_generations
    assert cfg.clip_high == cfg.epsilon
    assert not cfg.needs_reference


@pytest.mark.parametrize("changes, message", [
    ({"algorithm": "dpo"}, "algorithm must be one of grpo, rloo, reinforce, ppo"),
    ({"num_generations": 1}, "set num_generations to 2 or more"),
    ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
    ({"loss_type": "mean"}, "loss_type must be one of grpo, dapo, dr_grpo"),
    ({"kl_estimator": "k2"}, "kl_estimator must be one of k1, k3"),
    ({"steps": 0}, "steps must be a whole number at least 1"),
    ({"algorithm": "reinforce", "num_epochs": 2}, "set num_epochs to 1"),
    ({"grad_accum_steps": 100}, "set it to at most 16"),
    ({"rewards": []}, "add at least one reward"),
    ({"rewards": [{"weight": 1}]}, "needs a 'type'"),
    ({"temperature": 0}, "temperature must be above 0"),
    ({"epsilon": 1.5}, "epsilon must be between 0 and 1"),
    ({"beta": -0.1}, "beta must be 0 or more"),
])
def test_validation_messages(changes, message):
    with pytest.raises(InputError, match=message):
        RLConfig(**changes)


def test_unknown_field_suggests_the_close_one():
    with pytest.raises(InputError, match="did you mean 'learning_rate'"):
        RLConfig.from_dict({"learning_rat": 1e-5})


def test_strings_from_forms_are_coerced():
    cfg = RLConfig.from_dict({"steps": "7", "learning_rate": "2e-5", "use_lora": "true", "prompt_limit": "none",
                              "lora_target_modules": "q_proj, v_proj"})
    assert (cfg.steps, cfg.learning_rate, cfg.use_lora, cfg.prompt_limit) == (7, 2e-5, True, None)
    assert cfg.lora_target_modules == ["q_proj", "v_proj"]
    with pytest.raises(InputError, match="steps must be a whole number"):
        RLConfig.from_dict({"steps": "many"})


def test_yaml_round_trip(tmp_path):
    cfg = RLConfig(algorithm="ppo", beta=0.05, rewards=[{"type": "vader", "weight": 0.5}, {"type": "length", "target": 10}],
                   use_lora=True, epsilon_high=0.28, system_prompt="Be kind.")
    assert RLConfig.from_yaml(cfg.to_yaml()) == cfg
    path = cfg.save(tmp_path / "run.yaml")
    assert RLConfig.load(path) == cfg
    assert RLConfig.from_yaml("algorithm: rloo\n").algorithm == "rloo"  # missing fields keep defaults
    with pytest.raises(InputError, match="mapping"):
        RLConfig.from_yaml("- just\n- a list\n")
    with pytest.raises(InputError, match="No config file"):
        RLConfig.load(tmp_path / "missing.yaml")


def test_presets_build_and_round_trip():
    assert {"make-it-positive", "learn-arithmetic"} <= set(PRESETS)
    for name in PRESETS:
        cfg = make_preset_config(name)
        assert RLConfig.from_yaml(cfg.to_yaml()) == cfg
    positive = make_preset_config("make-it-positive", steps=3)
    assert positive.rewards[0]["type"] == "vader" and positive.prompt_set == "sentence-starters" and positive.steps == 3
    arithmetic = make_preset_config("learn-arithmetic")
    assert arithmetic.rewards[0]["type"] == "exact_answer" and arithmetic.prompt_set == "arithmetic"
    with pytest.raises(InputError, match="Unknown preset"):
        make_preset_config("make-it-rich")


def test_every_field_has_help_for_the_form():
    help_text = RLConfig.field_docs()
    assert set(help_text) == {f.name for f in dataclasses.fields(RLConfig)}
    assert "KL coefficient" in help_text["beta"]
