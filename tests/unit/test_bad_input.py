"""The bad-input matrix: every entry point fed wrong types, empty, huge, NaN/inf, unknown keys, bad encodings,
path traversal and markup.

Each case expects a one-line message that names the field (and the fix), never a traceback:
  * engine functions raise WorkbenchError (InputError, ModelLoadError) with one line naming the field;
  * the CLI (`python -m llmrl_core ...`, called in process through main(argv), plus a few real
    subprocesses) exits 2 with exactly one stderr line starting "error:" and leaves the store as it was;
  * the pages show an st.error or st.warning naming the field and no st.exception (AppTest, in
    tests/pages/test_pages_bad_input.py).
Run names, reward names and upload names are display strings: the harmless-input tests prove they never
become paths. `CASES` at the bottom of this file and of the pages' file count every case (the hardening note quotes them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmrl_core.core.errors import WorkbenchError
from tests.support.bad_input import MARKUP, TRAVERSAL, count_store_rows

ROOT = Path(__file__).resolve().parents[2]
NAN, INF = float("nan"), float("inf")


def _one_line(message: str) -> str:
    assert message and "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message
    return message


def _raises_naming(fn, *needles: str) -> str:
    """Call fn; it must raise a WorkbenchError whose one-line message holds every needle."""
    with pytest.raises(WorkbenchError) as info:
        fn()
    message = _one_line(str(info.value))
    for needle in needles:
        assert needle.lower() in message.lower(), f"{needle!r} not in {message!r}"
    return message


# ============================================================================ RLConfig (forms, YAML, --set)

RL_CONFIG_CASES = [
    # wrong types
    pytest.param({"learning_rate": "abc"}, ["learning_rate", "number"], id="learning_rate-text"),
    pytest.param({"learning_rate": [1]}, ["learning_rate", "number"], id="learning_rate-list"),
    pytest.param({"learning_rate": True}, ["learning_rate", "number"], id="learning_rate-bool"),
    pytest.param({"steps": 2.5}, ["steps", "whole number"], id="steps-float"),
    pytest.param({"steps": "many"}, ["steps", "whole number"], id="steps-text"),
    pytest.param({"steps": None}, ["steps", "whole number"], id="steps-none"),
    pytest.param({"use_lora": "maybe"}, ["use_lora", "true or false"], id="use_lora-text"),
    pytest.param({"use_lora": 3}, ["use_lora", "true or false"], id="use_lora-int"),
    pytest.param({"name": 5}, ["name", "text"], id="name-int"),
    pytest.param({"name": None}, ["name", "text"], id="name-none"),
    pytest.param({"model": ["bundled"]}, ["model", "text"], id="model-list"),
    pytest.param({"rewards": "vader"}, ["rewards", "list"], id="rewards-text"),
    pytest.param({"rewards": [{"weight": 1}]}, ["reward #1", "type"], id="rewards-no-type"),
    pytest.param({"rewards": ["vader"]}, ["reward #1", "type"], id="rewards-item-text"),
    pytest.param({"lora_target_modules": 5}, ["lora_target_modules", "list"], id="lora_targets-int"),
    pytest.param({"lora_target_modules": [1, 2]}, ["lora_target_modules", "module names"], id="lora_targets-ints"),
    pytest.param({"system_prompt": 5}, ["system_prompt", "text"], id="system_prompt-int"),
    pytest.param({"resume_from": 5}, ["resume_from", "text"], id="resume_from-int"),
    pytest.param({"prompt_limit": "abc"}, ["prompt_limit", "whole number"], id="prompt_limit-text"),
    # empty values
    pytest.param({"name": "   "}, ["name", "empty"], id="name-empty"),
    pytest.param({"model": ""}, ["model", "empty"], id="model-empty"),
    pytest.param({"prompt_set": ""}, ["prompt_set", "empty"], id="prompt_set-empty"),
    pytest.param({"rewards": []}, ["rewards", "at least one"], id="rewards-empty"),
    pytest.param({"use_lora": True, "lora_target_modules": ""}, ["lora_target_modules", "empty"], id="lora_targets-empty"),
    # NaN and inf in every float field that matters
    *[pytest.param({name: value}, [name, "finite"], id=f"{name}-{label}")
      for name in ("learning_rate", "beta", "temperature", "top_p", "epsilon", "weight_decay", "max_grad_norm",
                   "lora_dropout", "gamma", "lam", "vf_coef", "baseline_decay", "cliprange_value")
      for value, label in ((NAN, "nan"), (INF, "inf"))],
    pytest.param({"epsilon_high": NAN}, ["epsilon_high", "finite"], id="epsilon_high-nan"),
    pytest.param({"learning_rate": -INF}, ["learning_rate", "finite"], id="learning_rate-minus-inf"),
    # out of range and huge
    pytest.param({"learning_rate": 0}, ["learning_rate", "positive"], id="learning_rate-zero"),
    pytest.param({"learning_rate": 10}, ["learning_rate", "diverge"], id="learning_rate-huge"),
    pytest.param({"temperature": 0}, ["temperature", "above 0"], id="temperature-zero"),
    pytest.param({"temperature": 1e9}, ["temperature", "at most 100"], id="temperature-huge"),
    pytest.param({"steps": 0}, ["steps", "at least 1"], id="steps-zero"),
    pytest.param({"steps": 10**15}, ["steps", "at most"], id="steps-huge"),
    pytest.param({"seed": -1}, ["seed", "at least 0"], id="seed-negative"),
    pytest.param({"seed": 2**70}, ["seed", "at most"], id="seed-huge"),
    pytest.param({"prompts_per_step": 10**7}, ["prompts_per_step", "at most"], id="prompts_per_step-huge"),
    pytest.param({"num_generations": 1000}, ["num_generations", "at most 64"], id="num_generations-huge"),
    pytest.param({"max_new_tokens": 10**9}, ["max_new_tokens", "at most"], id="max_new_tokens-huge"),
    pytest.param({"max_new_tokens": -5}, ["max_new_tokens", "at least 1"], id="max_new_tokens-negative"),
    pytest.param({"lora_alpha": -5}, ["lora_alpha", "at least 1"], id="lora_alpha-negative"),
    pytest.param({"grad_accum_steps": 10**6}, ["grad_accum_steps", "at most 16"], id="grad_accum-above-batch"),
    pytest.param({"beta": -1.0}, ["beta", "0 or more"], id="beta-negative"),
    pytest.param({"top_p": 2.0}, ["top_p", "(0, 1]"], id="top_p-above-1"),
    pytest.param({"name": "x" * 10_000}, ["name", "characters"], id="name-huge"),
    # unknown keys and choices: "did you mean"
    pytest.param({"learnig_rate": 1e-5}, ["learnig_rate", "did you mean 'learning_rate'"], id="unknown-key-typo"),
    pytest.param({"lr": 1e-5}, ["'lr'", "valid fields"], id="unknown-key-far"),
    pytest.param({"algorithm": "grop"}, ["algorithm", "did you mean 'grpo'"], id="algorithm-typo"),
    pytest.param({"mixed_precision": "bf17"}, ["mixed_precision", "did you mean 'bf16'"], id="mixed_precision-typo"),
    pytest.param({"loss_type": "drgrpo"}, ["loss_type", "did you mean 'dr_grpo'"], id="loss_type-typo"),
    pytest.param({"chat": 1}, ["chat", "text"], id="chat-int"),
]


@pytest.mark.parametrize(("data", "needles"), RL_CONFIG_CASES)
def test_rl_config_refuses_with_the_field_named(data, needles):
    from llmrl_core.lm_rl.config import RLConfig

    _raises_naming(lambda: RLConfig.from_dict(data), *needles)


RL_CONFIG_SHAPE_CASES = [
    pytest.param([1, 2], ["mapping"], id="config-is-list"),
    pytest.param("learning_rate=1", ["mapping"], id="config-is-text"),
]


@pytest.mark.parametrize(("data", "needles"), RL_CONFIG_SHAPE_CASES)
def test_rl_config_from_something_not_a_mapping(data, needles):
    from llmrl_core.lm_rl.config import RLConfig

    _raises_naming(lambda: RLConfig.from_dict(data), *needles)


YAML_TEXT_CASES = [
    pytest.param("algorithm: [grpo", ["not valid yaml", "line 1"], id="yaml-unclosed-bracket"),
    pytest.param("a: b: c", ["not valid yaml"], id="yaml-bad-mapping"),
    pytest.param("- grpo\n- rloo", ["mapping"], id="yaml-list"),
    pytest.param("just text", ["mapping"], id="yaml-scalar"),
    pytest.param("beta: .nan", ["beta", "finite"], id="yaml-nan"),
    pytest.param("temperature: .inf", ["temperature", "finite"], id="yaml-inf"),
    pytest.param("learnig_rate: 1.0e-5", ["did you mean 'learning_rate'"], id="yaml-unknown-key"),
    pytest.param("steps: !!python/object/apply:os.system ['true']", ["not valid yaml"], id="yaml-python-tag"),
    pytest.param("[" * 5000, ["yaml"], id="yaml-deep-nesting"),
    pytest.param("1: 2", ["unknown config field"], id="yaml-int-key"),
]


@pytest.mark.parametrize(("text", "needles"), YAML_TEXT_CASES)
def test_yaml_text_is_refused_on_one_line(text, needles):
    from llmrl_core.lm_rl.config import RLConfig

    _raises_naming(lambda: RLConfig.from_yaml(text), *needles)


CONFIG_FILE_CASES = [
    pytest.param("name: caf\xe9\n".encode("latin-1"), ["not utf-8", "0xe9"], id="file-latin-1"),
    pytest.param("name: x\n".encode("utf-16"), ["not utf-8", "0xff"], id="file-utf-16"),
    pytest.param(bytes(range(256)) * 4, ["not utf-8"], id="file-binary-garbage"),
    pytest.param(b"name: a\x00b\n", ["binary"], id="file-nul-bytes"),
    pytest.param(b"", None, id="file-empty-is-defaults"),
]


@pytest.mark.parametrize(("data", "needles"), CONFIG_FILE_CASES)
def test_config_files_in_wrong_encodings(tmp_path, data, needles):
    from llmrl_core.lm_rl.config import RLConfig

    path = tmp_path / "run.yaml"
    path.write_bytes(data)
    if needles is None:
        assert RLConfig.load(path) == RLConfig()
    else:
        _raises_naming(lambda: RLConfig.load(path), str(path), *needles)


def test_config_file_missing_or_a_folder(tmp_path):
    from llmrl_core.lm_rl.config import RLConfig

    _raises_naming(lambda: RLConfig.load(tmp_path / "nope.yaml"), "no config file", "--dump-config")
    _raises_naming(lambda: RLConfig.load(tmp_path), "no config file")


# ============================================================================ gym settings

GYM_CASES = [
    pytest.param({"learning_rate": "abc"}, ["learning_rate", "number"], id="gym-learning_rate-text"),
    pytest.param({"learning_rate": NAN}, ["learning_rate", "finite"], id="gym-learning_rate-nan"),
    pytest.param({"learning_rate": INF}, ["learning_rate", "finite"], id="gym-learning_rate-inf"),
    pytest.param({"gamma": NAN}, ["gamma", "finite"], id="gym-gamma-nan"),
    pytest.param({"ent_coef": INF}, ["ent_coef", "finite"], id="gym-ent_coef-inf"),
    pytest.param({"clip_range": -INF}, ["clip_range", "finite"], id="gym-clip_range-minus-inf"),
    pytest.param({"batch_size": 2.5}, ["batch_size", "whole number"], id="gym-batch_size-float"),
    pytest.param({"batch_size": "x"}, ["batch_size", "whole number"], id="gym-batch_size-text"),
    pytest.param({"n_envs": "4"}, ["n_envs", "whole number"], id="gym-n_envs-text"),
    pytest.param({"n_envs": 0}, ["n_envs", "between 1 and 64"], id="gym-n_envs-zero"),
    pytest.param({"n_envs": 10_000}, ["n_envs", "between 1 and 64"], id="gym-n_envs-huge"),
    pytest.param({"total_steps": NAN}, ["total_steps", "whole number"], id="gym-total_steps-nan"),
    pytest.param({"total_steps": True}, ["total_steps", "whole number"], id="gym-total_steps-bool"),
    pytest.param({"total_steps": 10**12}, ["total_steps", "50 million"], id="gym-total_steps-huge"),
    pytest.param({"n_steps": 10**12}, ["n_steps", "between 2 and"], id="gym-n_steps-huge"),
    pytest.param({"eval_freq": None}, ["eval_freq", "whole number"], id="gym-eval_freq-none"),
    pytest.param({"eval_episodes": 0}, ["eval_episodes", "between 1 and 100"], id="gym-eval_episodes-zero"),
    pytest.param({"seed": "x"}, ["seed", "whole number"], id="gym-seed-text"),
    pytest.param({"seed": -1}, ["seed", "0 to"], id="gym-seed-negative"),
    pytest.param({"torch_threads": NAN}, ["torch_threads", "whole number"], id="gym-torch_threads-nan"),
    pytest.param({"stop_when_solved": "yes"}, ["stop_when_solved", "true or false"], id="gym-stop_when_solved-text"),
    pytest.param({"init_from": 5}, ["init_from", "text"], id="gym-init_from-int"),
    pytest.param({"net_arch": "abc"}, ["net_arch", "64,64"], id="gym-net_arch-text"),
    pytest.param({"net_arch": [1.5]}, ["net_arch", "whole"], id="gym-net_arch-floats"),
    pytest.param({"net_arch": 5}, ["net_arch", "list"], id="gym-net_arch-int"),
    pytest.param({"net_arch": [10**6]}, ["net_arch", "4096"], id="gym-net_arch-huge"),
    pytest.param({"lerning_rate": 1e-3}, ["lerning_rate", "did you mean 'learning_rate'"], id="gym-unknown-typo"),
    pytest.param({"momentum": 0.9}, ["momentum", "its settings are"], id="gym-unknown-far"),
    pytest.param({"gamma": 1.5}, ["gamma", "at most 1"], id="gym-gamma-above-1"),
]


@pytest.mark.parametrize(("overrides", "needles"), GYM_CASES)
def test_gym_settings_refuse_with_the_field_named(overrides, needles):
    from llmrl_core.gym.config import make_gym_config

    _raises_naming(lambda: make_gym_config("CartPole-v1", "ppo", **overrides), *needles)


GYM_CONFIG_DICT_CASES = [
    pytest.param({"env": "CartPole-v1"}, ["env", "did you mean"], id="gymcfg-unknown-key"),
    pytest.param({"env_id": "CartPol-v1"}, ["did you mean 'CartPole-v1'"], id="gymcfg-env-typo"),
    pytest.param({"algo": "ppp"}, ["did you mean 'ppo'"], id="gymcfg-algo-typo"),
    pytest.param({"env_id": ["CartPole-v1"]}, ["unknown environment"], id="gymcfg-env-list"),
    pytest.param({"params": "lr=1"}, ["params", "mapping"], id="gymcfg-params-text"),
    pytest.param({"algo": "dqn", "env_id": "Pendulum-v1"}, ["continuous", "PPO or A2C"], id="gymcfg-dqn-continuous"),
]


@pytest.mark.parametrize(("data", "needles"), GYM_CONFIG_DICT_CASES)
def test_gym_config_dicts(data, needles):
    from llmrl_core.gym.config import GymConfig

    _raises_naming(lambda: GymConfig.from_dict(data), *needles)


def test_gym_config_from_not_a_mapping():
    from llmrl_core.gym.config import GymConfig

    _raises_naming(lambda: GymConfig.from_dict(["CartPole-v1"]), "mapping")


# ============================================================================ reward specs

REWARD_CASES = [
    pytest.param({"type": "vadr"}, ["did you mean 'vader'"], id="reward-type-typo"),
    pytest.param({"type": ["vader"]}, ["unknown reward type"], id="reward-type-list"),
    pytest.param({"type": {"a": 1}}, ["unknown reward type"], id="reward-type-dict"),
    pytest.param({"type": None}, ["unknown reward type"], id="reward-type-none"),
    pytest.param({"type": "vader", "targte": "positive"}, ["targte", "did you mean 'target'"], id="reward-param-typo"),
    pytest.param({"type": "vader", 5: 1}, ["no parameter 5"], id="reward-param-int-key"),
    pytest.param({"type": "vader", "target": "neutral"}, ["target", "'positive'"], id="reward-choice-bad"),
    pytest.param({"type": "vader", "weight": "nan"}, ["weight", "finite"], id="reward-weight-nan"),
    pytest.param({"type": "vader", "weight": INF}, ["weight", "finite"], id="reward-weight-inf"),
    pytest.param({"type": "vader", "weight": "heavy"}, ["weight", "number"], id="reward-weight-text"),
    pytest.param({"type": "length", "target": INF}, ["target", "finite"], id="reward-length-target-inf"),
    pytest.param({"type": "length", "target": "long"}, ["target", "number"], id="reward-length-target-text"),
    pytest.param({"type": "length", "unit": "lines"}, ["unit", "'words'"], id="reward-length-unit-bad"),
    pytest.param({"type": "keywords", "include": 5}, ["include", "list of words"], id="reward-keywords-int"),
    pytest.param({"type": "keywords", "whole_word": "maybe"}, ["whole_word", "true or false"], id="reward-bool-text"),
    pytest.param({"type": "custom", "timeout_s": NAN}, ["timeout_s", "finite"], id="reward-custom-timeout-nan"),
    pytest.param({"type": "vader", "name": TRAVERSAL}, ["name", "'/'"], id="reward-name-traversal"),
    pytest.param({"type": "vader", "name": "x" * 10_000}, ["name", "characters"], id="reward-name-huge"),
    pytest.param({"type": "vader", "name": "total"}, ["reserved"], id="reward-name-reserved"),
    pytest.param({"type": "vader", "name": 5}, ["name"], id="reward-name-int"),
    pytest.param("vader", ["must be a dict"], id="reward-spec-text"),
    pytest.param(None, ["must be a dict"], id="reward-spec-none"),
]


@pytest.mark.parametrize(("spec", "needles"), REWARD_CASES)
def test_reward_specs_refuse_with_the_parameter_named(spec, needles):
    from llmrl_core.lm_rl.rewards import parse_spec

    _raises_naming(lambda: parse_spec(spec, allow_custom_code=True), *needles)


def test_custom_code_refused_without_permission():
    from llmrl_core.lm_rl.rewards import parse_spec

    _raises_naming(lambda: parse_spec({"type": "custom"}, allow_custom_code=False), "not allowed")


# ============================================================================ prompt uploads and prompt sets

UPLOAD_CASES = [
    pytest.param("p.csv", "prompt\ncaf\xe9\n".encode("latin-1"), ["p.csv", "not utf-8", "0xe9"], id="upload-csv-latin-1"),
    pytest.param("p.csv", "prompt\nhello\n".encode("utf-16"), ["not utf-8", "0xff"], id="upload-csv-utf-16"),
    pytest.param("p.jsonl", bytes(range(128, 256)) * 8, ["not utf-8"], id="upload-jsonl-binary"),
    pytest.param("p.txt", b"hello\x00world", ["binary"], id="upload-txt-nul"),
    pytest.param("p.txt", b"   \n\n", ["empty"], id="upload-txt-blank"),
    pytest.param("p.csv", b"", ["empty"], id="upload-csv-empty"),
    pytest.param("p.csv", b"text\nhello\n", ["no prompt column", "text"], id="upload-csv-no-prompt-column"),
    pytest.param("p.csv", b'prompt\n"unclosed\n', ["not a valid csv"], id="upload-csv-bad-quoting"),
    pytest.param("p.csv", b"prompt,answer\n,1\n", ["empty", "rows 1"], id="upload-csv-empty-prompt"),
    pytest.param("p.jsonl", b'{"prompt": "a"}\nnot json\n', ["line 2", "not valid json"], id="upload-jsonl-bad-line"),
    pytest.param("p.jsonl", b'["a"]\n', ["line 1", "not an object"], id="upload-jsonl-list-line"),
    pytest.param("p.jsonl", b'{"text": "a"}\n', ["line 1", "no \"prompt\""], id="upload-jsonl-no-prompt"),
    pytest.param("p.jsonl", b'{"prompt": null}\n', ["row 1", "not text"], id="upload-jsonl-prompt-null"),
    pytest.param("p.jsonl", b'{"prompt": 42}\n', ["row 1", "not text"], id="upload-jsonl-prompt-number"),
    pytest.param("p.json", b"[" * 100_000, ["nested too deeply"], id="upload-json-deep-nesting"),
    pytest.param("p.json", b'{"prompt": ["a", "b"], "answer": ["1"]}', ["different lengths"], id="upload-json-ragged"),
    pytest.param("p.json", b'{"prompt": "a"}', ["list of objects"], id="upload-json-object"),
    pytest.param("p.json", b"1e999", ["list of objects"], id="upload-json-number"),
    pytest.param("p.json", b'[{"prompt": {"role": "user"}}]', ["row 1", "not text"], id="upload-json-prompt-dict"),
    pytest.param("p.json", b'[{"prompt": "x", "completions": 1}]', ["completions", "clashes"], id="upload-json-reserved-column"),
    pytest.param("p.exe", b"MZ\x90\x00", ["unsupported file type", ".exe"], id="upload-wrong-extension"),
    pytest.param(TRAVERSAL, b"x", ["unsupported file type"], id="upload-name-traversal"),
    pytest.param("p.txt", b"x" * 2048, ["MB", "limit"], id="upload-too-large"),
]


@pytest.mark.parametrize(("filename", "data", "needles"), UPLOAD_CASES)
def test_prompt_uploads_refuse_with_what_to_change(filename, data, needles):
    from llmrl_core.lm_rl.prompts import read_prompt_upload

    max_bytes = 1024 if len(data) == 2048 else 50 * 2**20
    _raises_naming(lambda: read_prompt_upload(filename, data, max_bytes=max_bytes), *needles)


PROMPT_SET_CASES = [
    pytest.param("", ["choose a prompt set"], id="promptset-empty"),
    pytest.param("sentence-starter", ["unknown prompt set"], id="promptset-typo"),
    pytest.param(TRAVERSAL, ["unsupported file type"], id="promptset-traversal"),
    pytest.param("/etc", ["unknown prompt set"], id="promptset-folder"),
    pytest.param("a\x00b", ["unknown prompt set"], id="promptset-nul"),
    pytest.param("hf:", ["dataset id"], id="promptset-hf-empty"),
]


@pytest.mark.parametrize(("source", "needles"), PROMPT_SET_CASES)
def test_prompt_set_sources(source, needles, monkeypatch):
    from llmrl_core.lm_rl.prompts import load_prompt_set

    monkeypatch.chdir(ROOT)
    _raises_naming(lambda: load_prompt_set(source), *needles)


def test_prompt_limit_wrong_type():
    from llmrl_core.lm_rl.prompts import load_prompt_set

    _raises_naming(lambda: load_prompt_set("arithmetic", limit=0), "prompt limit")
    _raises_naming(lambda: load_prompt_set("arithmetic", limit="5"), "prompt limit")


# ============================================================================ model specs and checkpoints

MODEL_SPEC_CASES = [
    pytest.param(TRAVERSAL, ["not a .gguf model"], id="spec-traversal-to-a-file"),
    pytest.param("/etc", ["no config.json"], id="spec-folder-without-config"),
    pytest.param("/no/such/folder", ["no file or folder"], id="spec-missing-path"),
    pytest.param("model.gguf", ["no file or folder"], id="spec-missing-gguf"),
    pytest.param("<script>alert(1)</script>", ["not a model spec"], id="spec-markup"),
    pytest.param("a/b/c", ["not a model spec"], id="spec-three-parts"),
    pytest.param("a\x00b", ["control characters"], id="spec-nul-byte"),
    pytest.param("x" * 5000, ["not a model spec"], id="spec-huge"),
    pytest.param("y" * 300, ["cannot use", "too long"], id="spec-name-too-long-for-the-file-system"),
    pytest.param(5, ["must be text"], id="spec-int"),
]


@pytest.mark.parametrize(("spec", "needles"), MODEL_SPEC_CASES)
def test_model_specs_refuse_before_loading(spec, needles, monkeypatch):
    from llmrl_core.lm.models import resolve_spec

    monkeypatch.chdir(ROOT)
    _raises_naming(lambda: resolve_spec(spec), *needles)


CHECKPOINT_CASES = [
    pytest.param(TRAVERSAL, ["resume_from", "no folder"], id="ckpt-traversal"),
    pytest.param("/etc", ["resume_from", "not a training checkpoint"], id="ckpt-not-a-checkpoint"),
    pytest.param("/no/such/checkpoint", ["resume_from", "no folder"], id="ckpt-missing"),
    pytest.param("a\x00b", ["resume_from", "no folder"], id="ckpt-nul-byte"),
]


@pytest.mark.parametrize(("path", "needles"), CHECKPOINT_CASES)
def test_checkpoint_paths(path, needles, monkeypatch):
    from llmrl_core.lm_rl.checkpoints import check_checkpoint

    monkeypatch.chdir(ROOT)
    _raises_naming(lambda: check_checkpoint(path), *needles)


# ============================================================================ harmless inputs: names never become paths


@pytest.mark.parametrize("name", [
    pytest.param(TRAVERSAL, id="runname-traversal"),
    pytest.param(MARKUP, id="runname-markup"),
    pytest.param("C:\\Windows\\system32", id="runname-windows-path"),
])
def test_run_names_are_labels_never_paths(name, store):
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.core.paths import get_artifact_dir

    cfg = RLConfig(name=name)
    assert cfg.name == name  # kept verbatim: the runs table escapes it when it shows it
    run_id = store.create_run("lm_rl", cfg.name, cfg.to_dict(), total_steps=cfg.steps)
    assert store.get_run(run_id)["name"] == name
    folder = get_artifact_dir(run_id)
    assert folder.name == f"run-{run_id:05d}" and "etc" not in folder.parts and "passwd" not in str(folder)


# ============================================================================ the CLI, in process


@pytest.fixture()
def cli_files(tmp_path):
    """Files the CLI cases point at: configs in bad encodings, a folder named like an output file."""
    files = {
        "latin1": tmp_path / "latin1.yaml", "utf16": tmp_path / "utf16.yaml", "garbage": tmp_path / "garbage.yaml",
        "badyaml": tmp_path / "bad.yaml", "listyaml": tmp_path / "list.yaml", "typo": tmp_path / "typo.yaml",
        "nan": tmp_path / "nan.yaml", "dir_npz": tmp_path / "maps.npz", "tmp": tmp_path,
    }
    files["latin1"].write_bytes("name: caf\xe9\n".encode("latin-1"))
    files["utf16"].write_bytes("name: x\n".encode("utf-16"))
    files["garbage"].write_bytes(os.urandom(64) + b"\xff\xfe")
    files["badyaml"].write_text("algorithm: [grpo\n")
    files["listyaml"].write_text("- grpo\n")
    files["typo"].write_text("learnig_rate: 1.0e-5\n")
    files["nan"].write_text("learning_rate: .nan\n")
    files["dir_npz"].mkdir()
    return files


P = "make-it-positive"
CLI_CASES = [
    # the dispatcher and argparse
    pytest.param([], ["command"], id="cli-no-command"),
    pytest.param(["fly"], ["invalid choice", "fly"], id="cli-unknown-command"),
    pytest.param(["train", "--bogus"], ["unrecognized", "--bogus"], id="cli-unknown-flag"),
    # train
    pytest.param(["train"], ["--preset"], id="train-nothing-given"),
    pytest.param(["train", "--preset", "make-it-positve"], ["did you mean 'make-it-positive'"], id="train-preset-typo"),
    pytest.param(["train", "--preset", P, "--steps", "abc"], ["--steps", "invalid int"], id="train-steps-text"),
    pytest.param(["train", "--preset", P, "--steps", "0"], ["steps", "at least 1"], id="train-steps-zero"),
    pytest.param(["train", "--preset", P, "--steps", str(10**13)], ["steps", "at most"], id="train-steps-huge"),
    pytest.param(["train", "--preset", P, "--name", " "], ["name", "empty"], id="train-name-empty"),
    pytest.param(["train", "--preset", P, "--set", "learning_rate=nan"], ["learning_rate", "finite"], id="train-set-nan"),
    pytest.param(["train", "--preset", P, "--set", "beta=.inf"], ["beta", "finite"], id="train-set-inf"),
    pytest.param(["train", "--preset", P, "--set", "temperature=-.inf"], ["temperature", "finite"], id="train-set-minus-inf"),
    pytest.param(["train", "--preset", P, "--set", "learning_rate=fast"], ["learning_rate", "number"], id="train-set-text"),
    pytest.param(["train", "--preset", P, "--set", "learnig_rate=1"], ["did you mean 'learning_rate'"], id="train-set-typo"),
    pytest.param(["train", "--preset", P, "--set", "name=[unclosed"], ["--set name", "not valid yaml"], id="train-set-bad-yaml"),
    pytest.param(["train", "--preset", P, "--set", "learning_rate"], ["key=value"], id="train-set-no-equals"),
    pytest.param(["train", "--preset", P, "--set", "=1"], ["key=value"], id="train-set-no-key"),
    pytest.param(["train", "--preset", P, "--set", "rewards=vader"], ["rewards", "list"], id="train-set-rewards-text"),
    pytest.param(["train", "--preset", P, "--set", "rewards=[{type: vadr}]"], ["did you mean 'vader'"], id="train-set-reward-typo"),
    pytest.param(["train", "--preset", P, "--set", "rewards=[{type: vader, targte: x}]"], ["did you mean 'target'"],
                 id="train-set-reward-param-typo"),
    pytest.param(["train", "--preset", P, "--set", "mixed_precision=bf17"], ["did you mean 'bf16'"], id="train-set-choice-typo"),
    pytest.param(["train", "--preset", P, "--set", f"model={TRAVERSAL}"], ["not a .gguf model"], id="train-model-traversal"),
    pytest.param(["train", "--preset", P, "--set", "model=<b>x</b>"], ["not a model spec"], id="train-model-markup"),
    pytest.param(["train", "--preset", P, "--set", f"resume_from={TRAVERSAL}"], ["resume_from"], id="train-resume-traversal"),
    pytest.param(["train", "--preset", P, "--set", "resume_from=/etc"], ["resume_from", "not a training checkpoint"],
                 id="train-resume-not-a-checkpoint"),
    pytest.param(["train", "--preset", P, "--set", "prompt_set=/etc"], None, id="train-promptset-folder-accepted-at-parse"),
    pytest.param(["train", "--config", "{latin1}"], ["not utf-8"], id="train-config-latin-1"),
    pytest.param(["train", "--config", "{utf16}"], ["not utf-8"], id="train-config-utf-16"),
    pytest.param(["train", "--config", "{garbage}"], ["not utf-8"], id="train-config-garbage"),
    pytest.param(["train", "--config", "{badyaml}"], ["bad.yaml", "not valid yaml", "line 2"], id="train-config-bad-yaml"),
    pytest.param(["train", "--config", "{listyaml}"], ["mapping"], id="train-config-list"),
    pytest.param(["train", "--config", "{typo}"], ["did you mean 'learning_rate'"], id="train-config-unknown-key"),
    pytest.param(["train", "--config", "{nan}"], ["learning_rate", "finite"], id="train-config-nan"),
    pytest.param(["train", "--config", "{tmp}"], ["no config file"], id="train-config-folder"),
    pytest.param(["train", "--config", TRAVERSAL], ["passwd", "mapping of field: value"], id="train-config-traversal"),
    # gym
    pytest.param(["gym", "--env", "CartPol-v1"], ["--env", "invalid choice"], id="gym-env-unknown"),
    pytest.param(["gym", "--algo", "sac"], ["--algo", "invalid choice"], id="gym-algo-unknown"),
    pytest.param(["gym", "--env", "Pendulum-v1", "--algo", "dqn"], ["continuous"], id="gym-dqn-on-pendulum"),
    pytest.param(["gym", "--steps", "abc"], ["--steps", "invalid int"], id="gym-steps-text"),
    pytest.param(["gym", "--steps", "0"], ["total_steps", "at least 1"], id="gym-steps-zero"),
    pytest.param(["gym", "--steps", str(10**12)], ["total_steps", "50 million"], id="gym-steps-huge"),
    pytest.param(["gym", "--n-envs", "0"], ["n_envs"], id="gym-n-envs-zero"),
    pytest.param(["gym", "--eval-freq", "-1"], ["eval_freq"], id="gym-eval-freq-negative"),
    pytest.param(["gym", "--eval-episodes", "1000"], ["eval_episodes"], id="gym-eval-episodes-huge"),
    pytest.param(["gym", "--seed", "-1"], ["seed"], id="gym-seed-negative"),
    pytest.param(["gym", "--set", "lerning_rate=1e-3"], ["did you mean 'learning_rate'"], id="gym-set-typo"),
    pytest.param(["gym", "--set", "learning_rate=nan"], ["learning_rate", "finite"], id="gym-set-nan"),
    pytest.param(["gym", "--set", "learning_rate=inf"], ["learning_rate", "finite"], id="gym-set-inf"),
    pytest.param(["gym", "--set", "learning_rate=fast"], ["learning_rate", "number"], id="gym-set-text"),
    pytest.param(["gym", "--set", "batch_size=2.5"], ["batch_size", "whole number"], id="gym-set-float-for-int"),
    pytest.param(["gym", "--set", "net_arch=<b>"], ["net_arch"], id="gym-set-net-arch-markup"),
    pytest.param(["gym", "--set", "=3"], ["setting name"], id="gym-set-no-key"),
    pytest.param(["gym", "--set", "gamma"], ["key=value"], id="gym-set-no-equals"),
    pytest.param(["gym", "--init-from", TRAVERSAL], ["--init-from", ".zip"], id="gym-init-from-traversal"),
    pytest.param(["gym", "--init-from", "/no/agent.zip"], ["--init-from"], id="gym-init-from-missing"),
    pytest.param(["gym", "--name", ""], ["--name", "empty"], id="gym-name-empty"),
    # attention (checked before the model loads)
    pytest.param(["attention", "--text", "hi", "--out", TRAVERSAL], ["--out", ".npz"], id="attention-out-traversal"),
    pytest.param(["attention", "--text", "hi", "--out", "/no/such/dir/m.npz"], ["--out", "does not exist"],
                 id="attention-out-missing-folder"),
    pytest.param(["attention", "--text", "hi", "--out", "{dir_npz}"], ["--out", "folder"], id="attention-out-is-a-folder"),
    pytest.param(["attention", "--text", "hi", "--out", ""], ["--out", ".npz"], id="attention-out-empty"),
    pytest.param(["attention", "--text", "hi", "--max-tokens", "0"], ["--max-tokens"], id="attention-max-tokens-zero"),
    pytest.param(["attention", "--text", "hi", "--max-tokens", str(10**9)], ["--max-tokens"], id="attention-max-tokens-huge"),
    pytest.param(["attention", "--text", "hi", "--max-tokens", "nan"], ["--max-tokens", "invalid int"], id="attention-max-tokens-nan"),
    pytest.param(["attention", "--text", "hi", "--generate", "-1"], ["--generate"], id="attention-generate-negative"),
    pytest.param(["attention", "--text", "hi", "--generate", str(10**6)], ["--generate"], id="attention-generate-huge"),
    pytest.param(["attention", "--text", "hi", "--model", TRAVERSAL], ["not a .gguf model"], id="attention-model-traversal"),
    # generate, prepare, runs, demo
    pytest.param(["generate", "--prompt", "hi", "--n", "0"], ["number of samples"], id="generate-n-zero"),
    pytest.param(["generate", "--prompt", "hi", "--n", "abc"], ["--n", "invalid int"], id="generate-n-text"),
    pytest.param(["generate", "--prompt", "hi", "--temperature", "nan"], ["temperature"], id="generate-temperature-nan"),
    pytest.param(["generate", "--prompt", "hi", "--top-p", "inf"], ["top-p"], id="generate-top-p-inf"),
    pytest.param(["generate", "--prompt", "hi", "--temperature", "inf"], ["temperature"], id="generate-temperature-inf"),
    pytest.param(["generate", "--prompt", "hi", "--seed", "9" * 40], ["seed"], id="generate-seed-huge"),
    pytest.param(["generate", "--prompt", "hi", "--max-new-tokens", "-1"], ["max new tokens"], id="generate-max-new-negative"),
    pytest.param(["generate", "--prompt", "hi", "--model", "<script>"], ["not a model spec"], id="generate-model-markup"),
    pytest.param(["generate", "--prompt", "hi", "--model", TRAVERSAL], ["not a .gguf model"], id="generate-model-traversal"),
    pytest.param(["prepare", "--model", "/no/such.gguf"], ["no file or folder"], id="prepare-missing-gguf"),
    pytest.param(["runs", "show", "abc"], ["invalid int"], id="runs-show-text"),
    pytest.param(["runs", "show", "999999"], ["no run with id"], id="runs-show-missing"),
    pytest.param(["runs", "stop"], ["needs a run id"], id="runs-stop-no-id"),
    pytest.param(["runs", "explode", "1"], ["invalid choice"], id="runs-unknown-action"),
    pytest.param(["demo", "--steps", "-1"], ["--steps", "at least 1"], id="demo-steps-negative"),
    pytest.param(["demo", "--delay", "nan"], ["--delay"], id="demo-delay-nan"),
    pytest.param(["demo", "--delay", "-1"], ["--delay"], id="demo-delay-negative"),
    pytest.param(["demo", "--delay", "abc"], ["--delay", "invalid float"], id="demo-delay-text"),
]


@pytest.mark.parametrize(("argv", "needles"), CLI_CASES)
def test_cli_exits_2_with_one_error_line_and_the_store_unchanged(argv, needles, cli_files, capsys, monkeypatch):
    from llmrl_core.cli import main

    monkeypatch.chdir(ROOT)
    argv = [a.format(**cli_files) if a.startswith("{") else a for a in argv]
    if needles is None:  # accepted by the parser; --dump-config proves it without starting a run
        argv = argv + ["--dump-config"]
    before = count_store_rows()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    out, err = capsys.readouterr()
    assert count_store_rows() == before
    if needles is None:
        assert code == 0, err
        return
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"


def test_cli_keeps_markup_and_traversal_names_as_plain_labels(capsys):
    import yaml

    from llmrl_core.cli import main

    assert main(["train", "--preset", P, "--name", TRAVERSAL, "--set", f"system_prompt={MARKUP!r}", "--dump-config"]) == 0
    dumped = yaml.safe_load(capsys.readouterr().out)
    assert dumped["name"] == TRAVERSAL and dumped["system_prompt"] == MARKUP


def test_train_prints_preflight_warnings_before_anything_runs(capsys, monkeypatch):
    from llmrl_core.lm_rl import preflight
    from llmrl_core.lm_rl import cli as train_cli

    monkeypatch.setattr(preflight, "read_device_info", lambda device="auto": preflight.DeviceInfo(
        "cpu", "AMD EPYC 7B12 (Zen 2)", 64 * 2**30, 128 * 2**30, cpu_capability="AVX2", cpu_flags=frozenset({"avx2"})))
    from llmrl_core.lm_rl.config import make_preset_config

    train_cli.check_before_start(make_preset_config(P, mixed_precision="bf16"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: mixed_precision:") and "130 s" in err[0]


# ============================================================================ the CLI, end to end (a few real processes)

SUBPROCESS_CASES = [
    pytest.param(["train", "--preset", P, "--set", "learning_rate=nan"], "learning_rate", id="proc-train-nan"),
    pytest.param(["attention", "--text", "hi", "--out", TRAVERSAL], "--out", id="proc-attention-out-traversal"),
    pytest.param(["gym", "--steps", "abc"], "--steps", id="proc-gym-steps-text"),
]


@pytest.mark.parametrize(("argv", "needle"), SUBPROCESS_CASES)
def test_real_process_exits_2_without_a_traceback(argv, needle, workbench_home):
    before = count_store_rows()
    proc = subprocess.run([sys.executable, "-m", "llmrl_core", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LLMRL_HOME": str(workbench_home)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert count_store_rows() == before


CASES = sum(len(group) for group in (
    RL_CONFIG_CASES, RL_CONFIG_SHAPE_CASES, YAML_TEXT_CASES, CONFIG_FILE_CASES, GYM_CASES, GYM_CONFIG_DICT_CASES,
    REWARD_CASES, UPLOAD_CASES, PROMPT_SET_CASES, MODEL_SPEC_CASES, CHECKPOINT_CASES, CLI_CASES, SUBPROCESS_CASES,
))
