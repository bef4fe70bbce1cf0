"""`python -m llmrl_core train` with a tiny budget writes a run to the store."""

from __future__ import annotations

import pytest

from llmrl_core.cli import main
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.runs import RunStore


def test_train_command_writes_a_run(tiny_model_dir, tmp_path, capsys):
    config = RLConfig(model=str(tiny_model_dir), device="cpu", steps=5, prompts_per_step=2, num_generations=2,
                      max_new_tokens=4, chat="raw", rewards=[{"type": "length", "target": 10, "unit": "chars"}],
                      name="cli tiny")
    path = config.save(tmp_path / "run.yaml")
    code = main(["train", "--config", str(path), "--steps", "2", "--set", "learning_rate=1e-3", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    store = RunStore()
    runs = store.list_runs(kind="lm_rl")
    run = store.get_run(int(runs.iloc[0]["id"]))
    assert run["name"] == "cli tiny" and run["status"] == "completed" and run["step"] == 2
    assert run["config"]["learning_rate"] == pytest.approx(1e-3)
    assert list(store.read_metrics_wide(run["id"])["step"]) == [1, 2]
    assert f"run {run['id']}: completed" in out and "checkpoint:" in out


def test_train_command_presets_and_errors(capsys):
    assert main(["train", "--list-presets"]) == 0
    assert "make-it-positive" in capsys.readouterr().out
    assert main(["train", "--preset", "learn-arithmetic", "--set", "use_lora=true", "--dump-config"]) == 0
    dumped = RLConfig.from_yaml(capsys.readouterr().out)
    assert dumped.use_lora and dumped.prompt_set == "arithmetic"
    assert main(["train"]) == 2
    assert "--preset" in capsys.readouterr().err
    assert main(["train", "--preset", "make-it-positive", "--set", "num_generations=1"]) == 2
    assert "num_generations to 2 or more" in capsys.readouterr().err
