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
