"""GGUF export: a finished tiny LLaMA run (2 layers, 4 query heads sharing 2 kv heads) exported to GGUF loads back
through transformers' gguf_file loader with the same greedy tokens and logits (f16; q8_0 within a measured
tolerance), a LoRA run is merged first, other architectures are refused, the write is atomic, the Ollama
Modelfile's Go template renders a two-turn chat exactly like the tokenizer's chat template, and an offline push
fails fast with one line."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch

from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.runs import RunManager, RunStore
from llmrl_core.runs.export import export_run, name_gguf_siblings

PROMPTS = ["The movie was great and", "Once upon a time", "2 + 2 ="]
LENGTH_REWARD = [{"type": "length", "target": 20, "unit": "chars", "falloff": 40}]
F16_LOGIT_TOLERANCE = 2e-3  # f16 weights: measured max |diff| about 2e-4 on these prompts
Q8_LOGIT_TOLERANCE = 5e-2  # Q8_0 (32-value blocks, one f16 scale): measured max |diff| about 6e-3


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory):
    """A store with a full fine-tuning run and a LoRA run, 2 steps each on the tiny Llama."""
    from llmrl_core.lm_rl.config import RLConfig

    store = RunStore(tmp_path_factory.mktemp("gguf_store") / "runs.sqlite")
    manager = RunManager(store)
    base = dict(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                max_new_tokens=6, chat="raw", learning_rate=1e-2, rewards=LENGTH_REWARD,
                prompt_set="sentence-starters", seed=0)
    ids = {}
    for key, changes in {"full": {}, "lora": {"use_lora": True, "lora_r": 4, "lora_alpha": 8}}.items():
        cfg = RLConfig(**{**base, **changes})
        run_id, status = manager.run_foreground("lm_rl", cfg.to_dict(), name=f"tiny {key}", total_steps=cfg.steps)
        assert status == "completed", store.get_run(run_id)["error"]
        ids[key] = run_id
    return store, ids


def load_gguf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def compare(reference, tokenizer, exported, exported_tokenizer) -> float:
    """Assert identical prompt ids and greedy tokens for PROMPTS; return the largest logit difference."""
    worst = 0.0
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        assert exported_tokenizer(prompt, return_tensors="pt").input_ids.tolist() == ids.tolist()
        with torch.no_grad():
            worst = max(worst, (reference(ids).logits - exported(ids).logits).abs().max().item())
            want = reference.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.eos_token_id)
            got = exported.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        assert got.tolist() == want.tolist(), prompt
    return worst


def final_checkpoint(store, run_id) -> Path:
    return Path(list(store.list_artifacts(run_id, kind="checkpoint")["path"])[-1])


@pytest.mark.parametrize("quant, tolerance", [("f16", F16_LOGIT_TOLERANCE), ("q8_0", Q8_LOGIT_TOLERANCE)])
def test_gguf_loads_back_with_the_trained_greedy_tokens(finished, tmp_path, quant, tolerance):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store, ids = finished
    out = export_run(store, ids["full"], "gguf", tmp_path / "tuned.gguf", quant=quant)
    assert out == tmp_path / "tuned.gguf" and out.read_bytes()[:4] == b"GGUF"
    siblings = name_gguf_siblings(out)
    assert siblings["Modelfile"].read_text().startswith("FROM ./tuned.gguf\n")
    assert siblings["card"].read_text().startswith("---\n")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left behind
    trained = AutoModelForCausalLM.from_pretrained(final_checkpoint(store, ids["full"]), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(final_checkpoint(store, ids["full"]))
    exported, exported_tokenizer = load_gguf(out)
    worst = compare(trained, tokenizer, exported, exported_tokenizer)
    assert worst < tolerance, f"{quant}: max |logit diff| {worst:.2e}"
    chat = [{"role": "user", "content": "hi"}]
    assert exported_tokenizer.apply_chat_template(chat, tokenize=False) == tokenizer.apply_chat_template(chat, tokenize=False)


def test_gguf_of_a_lora_run_is_the_merged_model(finished, tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrl_core.cli import main
    from llmrl_core.runs import store as store_module

    store, ids = finished
    merged = export_run(store, ids["lora"], "model", tmp_path / "merged")
    assert (merged / "README.md").read_text().startswith("---\nbase_model: ")  # every HF export carries its card
    monkeypatch.setattr(store_module, "RunStore", lambda: store)  # the CLI's store is this test's
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "lora.gguf"
    argv = ["export", str(ids["lora"]), "--what", "gguf", "--out", str(out), "--push-to", "someone/lora"]
    assert main(argv) == 2  # exported, then the push fails offline in one line
    captured = capsys.readouterr()
    assert f"to {out}" in captured.out and "ollama create run-" in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error")]  # (progress bars aside)
    assert len(errors) == 1 and "unreachable" in errors[0] and "safe at" in errors[0]
    reference = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    worst = compare(reference, AutoTokenizer.from_pretrained(merged), *load_gguf(out))
    assert worst < F16_LOGIT_TOLERANCE


def test_permutation_is_what_the_transformers_loader_reverses():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from llmrl_core.lm.gguf_export import permute_for_llama_cpp

    weights = torch.randn(2 * 8, 12).numpy()  # 2 kv heads of dim 8
    permuted = permute_for_llama_cpp(weights, 4, 2)
    assert not (permuted == weights).all()
    restored = LlamaTensorProcessor(config={})._reverse_permute_weights(permuted, 4, 2)
    assert (restored == weights).all()


def test_rope_theta_is_read_from_either_config_layout():
    from llmrl_core.lm.gguf_export import read_rope

    assert read_rope({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}) == (100000.0, "default", None)
    assert read_rope({"rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 2.0}}) == (5e5, "linear", 2.0)
    assert read_rope({}) == (10000.0, None, None)


def test_other_architectures_and_bad_targets_are_refused(finished, tmp_path):
    import json

    from llmrl_core.lm.gguf_export import write_llama_gguf

    store, ids = finished
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(InputError, match="supports LlamaForCausalLM.*GPT2LMHeadModel"):
        write_llama_gguf(folder, tmp_path / "x.gguf")
    with pytest.raises(InputError, match="ending in .gguf"):
        export_run(store, ids["full"], "gguf", tmp_path / "tuned.bin")
    with pytest.raises(InputError, match="pick one of: f16, q8_0"):
        export_run(store, ids["full"], "gguf", tmp_path / "q4.gguf", quant="q4_0")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*"))
    (tmp_path / "taken.gguf").write_bytes(b"mine")
    with pytest.raises(InputError, match="exists"):
        export_run(store, ids["full"], "gguf", tmp_path / "taken.gguf")
    assert (tmp_path / "taken.gguf").read_bytes() == b"mine"


# ----------------------------------------------------------------------------- Ollama Modelfile


def render_go_template(template: str, messages: list[dict]) -> str:
    """A Go text/template subset, enough for the Modelfile we write: range .Messages, if / else if eq .Role "x",
    end, .Content, literal text, and the {{- / -}} whitespace trims."""
    parts = re.split(r"({{-?\s*.*?\s*-?}})", template)
    tokens: list[tuple[str, str]] = []
    for part in parts:
        if part.startswith("{{"):
            if part.startswith("{{-") and tokens and tokens[-1][0] == "text":
                tokens[-1] = ("text", tokens[-1][1].rstrip())
            tokens.append(("action", part.strip("{}-").strip()))
            if part.endswith("-}}"):
                tokens.append(("trim", ""))
        elif part:
            if tokens and tokens[-1][0] == "trim":
                part = part.lstrip()
            tokens.append(("text", part))
    tokens = [t for t in tokens if t[0] != "trim"]

    def parse(pos: int, stops: tuple[str, ...]) -> tuple[list, int]:
        nodes: list = []
        while pos < len(tokens):
            kind, value = tokens[pos]
            if kind == "action" and value.split()[0] in ("end", "else") and value.split()[0] in stops:
                return nodes, pos
            if kind == "text":
                nodes.append(("text", value))
                pos += 1
            elif value == "range .Messages":
                body, pos = parse(pos + 1, ("end",))
                nodes.append(("range", body))
                pos += 1
            elif value.startswith("if "):
                branches = []
                condition = value[3:]
                while True:
                    body, pos = parse(pos + 1, ("end", "else"))
                    branches.append((condition, body))
                    closing = tokens[pos][1]
                    if closing == "end":
                        break
                    condition = closing[len("else if "):] if closing.startswith("else if ") else "true"
                nodes.append(("if", branches))
                pos += 1
            elif value in (".Content", ".Role"):
                nodes.append(("field", value[1:]))
                pos += 1
            else:
                raise AssertionError(f"the test renderer does not know {{{{ {value} }}}}")
        return nodes, pos

    def holds(condition: str, message: dict) -> bool:
        if condition == "true":
            return True
        match = re.fullmatch(r'eq \.Role "(\w+)"', condition)
        assert match, condition
        return message["role"] == match.group(1)

    def run(nodes: list, message: dict | None) -> str:
        text = ""
        for kind, value in nodes:
            if kind == "text":
                text += value
            elif kind == "field":
                text += message["content" if value == "Content" else "role"]
            elif kind == "range":
                text += "".join(run(value, m) for m in messages)
            elif kind == "if":
                text += next((run(body, message) for cond, body in value if holds(cond, message)), "")
        return text

    tree, _ = parse(0, ())
    return run(tree, None)


def read_modelfile(text: str) -> dict[str, list[str]]:
    """Directive -> values of a Modelfile (triple-quoted values may span lines)."""
    found: dict[str, list[str]] = {}
    for match in re.finditer(r'^(FROM|TEMPLATE|SYSTEM|PARAMETER) (?:"""(.*?)"""|([^\n]*))$', text, re.S | re.M):
        found.setdefault(match.group(1), []).append(match.group(2) if match.group(2) is not None else match.group(3))
    return found


def test_modelfile_template_renders_a_two_turn_chat_like_the_chat_template(tiny_model_dir):
    from transformers import AutoTokenizer

    from llmrl_core.lm.ollama import make_modelfile

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    modelfile = read_modelfile(make_modelfile("tuned.gguf", tokenizer))
    assert modelfile["FROM"] == ["./tuned.gguf"]
    assert modelfile["PARAMETER"] == ['stop "<|im_start|>"', 'stop "<|im_end|>"']
    chat = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
            {"role": "user", "content": "And 3+3?\nShow it."}]
    want = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    # Ollama puts the Modelfile's SYSTEM in front when the chat has no system message
    system = [{"role": "system", "content": modelfile["SYSTEM"][0]}]
    assert render_go_template(modelfile["TEMPLATE"][0], system + chat) == want
    with_system = [{"role": "system", "content": "Be brief."}] + chat
    assert render_go_template(modelfile["TEMPLATE"][0], with_system) == tokenizer.apply_chat_template(
        with_system, tokenize=False, add_generation_prompt=True)


def test_the_test_renderer_trims_like_go():
    assert render_go_template("a  {{- range .Messages }} {{ .Content }}{{ end -}}  b", [{"role": "u", "content": "x"}]) == "a xb"


# ----------------------------------------------------------------------------- Hub push


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_offline_push_fails_fast_with_one_line(tmp_path, monkeypatch, env):
    from llmrl_core.lm.hub_push import push_export

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_do_not_print")
    folder = tmp_path / "tuned"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    start = time.monotonic()
    with pytest.raises(WorkbenchError) as caught:
        push_export(folder, "someone/tuned")
    assert time.monotonic() - start < 6.0  # the probe's 4 s timeout at most, not the client's retries
    message = str(caught.value)
    assert "unreachable" in message and "\n" not in message and "hf_secret" not in message
    with pytest.raises(InputError, match="not a Hub repo id"):
        push_export(folder, "bad repo id!")
