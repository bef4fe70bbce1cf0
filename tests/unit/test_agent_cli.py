"""`python -m llmrl_core agent`: a tiny run writes to the store; bad templates exit 2 before any run exists."""

from __future__ import annotations

import json

from tests.support.cli import run_cli


def test_agent_cli_tiny_run_writes_to_the_store(tiny_model_dir, tmp_path):
    out = run_cli("agent", "--env", "CartPole-v1", "--model", str(tiny_model_dir), "--algo", "reinforce",
                  "--steps", "16", "--n-envs", "2", "--device", "cpu", "--set", "n_steps=8", "--set", "eval_episodes=2",
                  "--set", "lora_target_modules=[q_proj, v_proj]", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    payload = json.loads(out.stdout[out.stdout.index("{"):])
    assert payload["status"] == "completed"
    assert payload["summary"]["steps"] == 16 and "zero_shot_return" in payload["summary"]
    from llmrl_core.runs import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    runs = store.list_runs(kind="agent")
    assert len(runs) == 1 and not store.list_artifacts(int(runs["id"].iloc[0]), kind="episode").empty


def test_agent_cli_refuses_bad_templates_before_a_run(tiny_model_dir, tmp_path):
    missing = run_cli("agent", "--model", str(tiny_model_dir), "--set", "action_words=[left, jump]", home=tmp_path)
    assert missing.returncode == 2 and "'jump' does not appear" in missing.stderr and "Traceback" not in missing.stderr
    long = run_cli("agent", "--model", str(tiny_model_dir), "--set",
                   "instruction=" + "Push the cart left or right. " * 40, home=tmp_path)
    assert long.returncode == 2 and "more than the model's context of 256" in long.stderr
    from llmrl_core.runs import RunStore

    assert RunStore(tmp_path / "runs.sqlite").list_runs(kind="agent").empty


def test_a_preset_fills_the_config_and_flags_win():
    import argparse

    import pytest

    from llmrl_core.agent.cli import add_cli, make_cli_config
    from llmrl_core.agent.config import AGENT_PRESETS
    from llmrl_core.core.errors import InputError

    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    name, preset = next(iter(AGENT_PRESETS.items()))
    config = make_cli_config(parser.parse_args(["agent", "--preset", name, "--minutes", "2", "--set", "seed=3"]))
    assert config.max_minutes == 2 and config.seed == 3  # the flag and --set over the preset
    assert config.eval_episodes == preset.overrides["eval_episodes"] and config.total_steps == preset.overrides["total_steps"]
    with pytest.raises(InputError, match=f"Unknown preset '{name[:-1]}'.*{name}"):
        make_cli_config(parser.parse_args(["agent", "--preset", name[:-1]]))
