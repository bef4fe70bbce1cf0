"""Export: a finished tiny LM run's model reloads with from_pretrained and gives the trained logits (full and
LoRA, merged or adapter alone); metrics CSV, samples JSONL, config YAML the train CLI accepts; a gym agent;
an existing target is refused; an export that fails half-way leaves nothing that looks complete."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from llmrl_core.core.errors import InputError
from llmrl_core.runs import RunManager, RunStore
from llmrl_core.runs import export as export_module
from llmrl_core.runs.export import ExportError, export_run

LENGTH_REWARD = [{"type": "length", "target": 20, "unit": "chars", "falloff": 40}]


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory):
    """One store with a full fine-tuning run and a LoRA run (2 steps each on the tiny Llama), and a gym run."""
    from llmrl_core.lm_rl.config import RLConfig

    store = RunStore(tmp_path_factory.mktemp("export_store") / "runs.sqlite")
    manager = RunManager(store)
    base = dict(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                max_new_tokens=6, chat="raw", learning_rate=1e-2, rewards=LENGTH_REWARD,
                prompt_set="sentence-starters", seed=0, save_every=1)
    ids = {}
    for key, changes in {"full": {}, "lora": {"use_lora": True, "lora_r": 4, "lora_alpha": 8}}.items():
        cfg = RLConfig(**{**base, **changes})
        run_id, status = manager.run_foreground("lm_rl", cfg.to_dict(), name=f"tiny {key}", total_steps=cfg.steps)
        assert status == "completed", store.get_run(run_id)["error"]
        ids[key] = run_id
    from llmrl_core.gym.config import make_gym_config
    from llmrl_core.runs.files import get_run_dir

    gym = store.create_run("gym", "ppo cartpole", make_gym_config("CartPole-v1", "ppo").to_dict(), 100)
    agent = get_run_dir(gym) / "agent.zip"
    agent.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(agent, "w") as zf:
        zf.writestr("data", "{}")
    store.add_artifact(gym, 100, "agent", agent)
    store.set_status(gym, "completed")
    ids["gym"] = gym
    return store, ids


def checkpoints(store, run_id) -> list[Path]:
    return [Path(p) for p in store.list_artifacts(run_id, kind="checkpoint")["path"]]


def logits_of(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("The movie was great and", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_full_model_reloads_with_the_trained_logits(finished, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store, ids = finished
    out = export_run(store, ids["full"], "model", tmp_path / "tuned")
    assert out == tmp_path / "tuned" and not (out / "trainer_state.pt").exists()
    exported = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    trained = AutoModelForCausalLM.from_pretrained(checkpoints(store, ids["full"])[-1])  # the weights the run ended with
    assert torch.equal(logits_of(exported, tokenizer), logits_of(trained, tokenizer))
    with pytest.raises(InputError, match="no adapter alone"):
        export_run(store, ids["full"], "model", tmp_path / "adapter", merge_lora=False)
    first = checkpoints(store, ids["full"])[0]
    export_run(store, ids["full"], "model", tmp_path / "step1", checkpoint=first)
    assert (tmp_path / "step1" / "config.json").is_file()
    with pytest.raises(InputError, match="not a checkpoint of run"):
        export_run(store, ids["full"], "model", tmp_path / "elsewhere", checkpoint=tmp_path)


def test_lora_merged_and_adapter_alone_give_the_same_logits(finished, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store, ids = finished
    merged_dir = export_run(store, ids["lora"], "model", tmp_path / "merged")
    adapter_dir = export_run(store, ids["lora"], "model", tmp_path / "adapter", merge_lora=False)
    assert (merged_dir / "config.json").is_file() and not (merged_dir / "adapter_config.json").exists()
    assert (adapter_dir / "adapter_config.json").is_file() and not (adapter_dir / "config.json").exists()
    assert not (adapter_dir / "trainer_state.pt").exists() and (adapter_dir / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_dir)
    trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                        checkpoints(store, ids["lora"])[-1])  # the run's final weights, unmerged
    expected = logits_of(trained, tokenizer)
    assert torch.allclose(logits_of(merged, tokenizer), expected, atol=1e-5)
    assert torch.equal(logits_of(with_adapter, tokenizer), expected)


def test_metrics_csv_samples_jsonl_and_config_yaml(finished, tmp_path):
    from llmrl_core.cli import build_parser
    from llmrl_core.lm_rl.cli import build_config

    store, ids = finished
    run_id = ids["full"]
    csv = pd.read_csv(export_run(store, run_id, "metrics", tmp_path / "m.csv"))
    wide = store.read_metrics_wide(run_id)
    assert csv["step"].tolist() == [1, 2] and csv.columns[0] == "step"
    assert set(csv.columns) == set(wide.columns) and "reward" in csv.columns
    assert csv["reward"].tolist() == pytest.approx(wide["reward"].tolist())

    lines = export_run(store, run_id, "samples", tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    stored = store.read_samples(run_id, limit=-1)
    assert len(records) == len(stored) == 2 * 4  # 2 steps x 2 prompts x 2 samples
    assert [r["completion"] for r in records] == stored["completion"].tolist()
    assert {"step", "prompt", "completion", "rewards", "extras"} <= set(records[0]) and "total" in records[0]["rewards"]

    path = export_run(store, run_id, "config", tmp_path / "run.yaml")
    args = build_parser().parse_args(["train", "--config", str(path)])
    assert build_config(args).to_dict() == store.get_run(run_id)["config"]  # what train --config would run

    gym_yaml = yaml.safe_load(export_run(store, ids["gym"], "config", tmp_path / "gym.yaml").read_text())
    assert gym_yaml == store.get_run(ids["gym"])["config"]


def test_gym_model_is_the_saved_agent_zip(finished, tmp_path):
    store, ids = finished
    out = export_run(store, ids["gym"], "model", tmp_path / "cartpole.zip")
    agent = Path(store.list_artifacts(ids["gym"], kind="agent")["path"].iloc[-1])
    assert out.read_bytes() == agent.read_bytes()
    with pytest.raises(InputError, match="ending in .zip"):
        export_run(store, ids["gym"], "model", tmp_path / "cartpole")


def test_existing_target_is_refused_unless_overwrite(finished, tmp_path):
    store, ids = finished
    out = export_run(store, ids["full"], "metrics", tmp_path / "m.csv")
    out.write_text("old")
    with pytest.raises(InputError, match="exists; pass overwrite=True / --overwrite"):
        export_run(store, ids["full"], "metrics", out)
    assert out.read_text() == "old"
    export_run(store, ids["full"], "metrics", out, overwrite=True)
    assert out.read_text().startswith("step,")
    model = export_run(store, ids["full"], "model", tmp_path / "tuned")
    export_run(store, ids["full"], "model", model, overwrite=True)  # an earlier export may be replaced
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="does not look like an exported model"):
        export_run(store, ids["full"], "model", precious, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "precious", "tuned"]  # no partial left over


@pytest.mark.parametrize("error, raised", [(OSError(28, "No space left on device"), ExportError),
                                           (KeyboardInterrupt(), KeyboardInterrupt)], ids=["disk-full", "ctrl-c"])
def test_an_export_interrupted_half_way_leaves_nothing_that_looks_complete(finished, tmp_path, monkeypatch, error,
                                                                           raised):
    store, ids = finished
    real_copy = export_module.shutil.copy2
    copied = []

    def copy_then_fail(src, dst, *a, **kw):
        if copied:  # the first file lands, the second fails: a half-written folder
            raise error
        copied.append(dst)
        return real_copy(src, dst, *a, **kw)

    monkeypatch.setattr(export_module.shutil, "copy2", copy_then_fail)
    with pytest.raises(raised):
        export_run(store, ids["full"], "model", tmp_path / "tuned")
    assert copied and list(tmp_path.iterdir()) == []  # neither tuned/ nor its .partial sibling

    previous = tmp_path / "kept"
    monkeypatch.setattr(export_module.shutil, "copy2", real_copy)
    export_run(store, ids["full"], "model", previous)
    before = sorted(p.name for p in previous.iterdir())
    copied.clear()
    monkeypatch.setattr(export_module.shutil, "copy2", copy_then_fail)
    with pytest.raises(raised, match="No space left on device. Nothing was left there" if raised is ExportError else None):
        export_run(store, ids["full"], "model", previous, overwrite=True)
    assert sorted(p.name for p in previous.iterdir()) == before  # the earlier export is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]


def test_bad_requests_say_what_to_change(finished, tmp_path):
    store, ids = finished
    with pytest.raises(InputError, match="pick one of: model, gguf, metrics, samples, config"):
        export_run(store, ids["full"], "weights", tmp_path / "x")
    with pytest.raises(InputError, match="No run with id 999"):
        export_run(store, 999, "metrics", tmp_path / "x.csv")
    demo = store.create_run("demo", "demo", {})
    with pytest.raises(InputError, match="trains no model"):
        export_run(store, demo, "model", tmp_path / "x")
    no_checkpoint = store.create_run("lm_rl", "never saved", store.get_run(ids["full"])["config"])
    with pytest.raises(InputError, match="has no checkpoint on disk"):
        export_run(store, no_checkpoint, "model", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ExportError, match="Could not export to .*a-file/m.csv"):
        export_run(store, ids["full"], "metrics", tmp_path / "a-file" / "m.csv")  # its folder is a file
