"""The model card: YAML front matter the Hub indexes (base_model, library_name, tags, pipeline_tag, model-index
when a before/after was measured) plus Markdown that tells the run's story; a hostile run name is escaped."""

from __future__ import annotations

import pandas as pd
import yaml

from llmrl_core.lm_rl.alarms import Alarm
from llmrl_core.lm_rl.evaluate import BeforeAfter
from llmrl_core.present.model_card import make_model_card

HOSTILE = "*pwn* [click](http://evil) <script>x</script> `code` :red[alert] $x$\n---\nbase_model: evil"


def split_card(text: str) -> tuple[dict, str]:
    """(front matter, Markdown body) of a README.md as the Hub reads it."""
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def make_run(**changes) -> dict:
    config = dict(model="bundled", algorithm="rloo", learning_rate=1e-5, beta=0.04, num_generations=4,
                  prompt_set="sentence-starters", steps=20, use_lora=True, lora_r=8,
                  rewards=[{"type": "vader", "weight": 1.0}, {"type": "length", "weight": 0.5, "target": 20}])
    return {"id": 7, "name": HOSTILE, "config": config, "step": 20, "total_steps": 20,
            "started": 1000.0, "ended": 1125.0, **changes}


def test_card_is_front_matter_plus_markdown_and_escapes_a_hostile_name():
    before_after = BeforeAfter(base_spec="bundled", checkpoint="ckpt", rows=pd.DataFrame(), before_mean=0.1,
                               after_mean=0.4, diff=0.3, low=0.12, high=0.47, confidence=0.95, greedy=True, samples=1)
    alarm = Alarm(kind="length_cap", severity="warning", title="Answers hit the length cap", from_step=12,
                  what_it_saw="80% of completions end at max_new_tokens")
    header, body = split_card(make_model_card(make_run(), before_after=before_after, alarms=[alarm]))
    assert header["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the hostile text did not add keys
    assert header["library_name"] == "transformers" and header["pipeline_tag"] == "text-generation"
    assert "rloo" in header["tags"]
    metrics = header["model-index"][0]["results"][0]["metrics"]
    assert [m["value"] for m in metrics] == [0.1, 0.4, 0.3]
    assert header["model-index"][0]["name"] == HOSTILE  # YAML carries it verbatim, safely quoted
    title = body.splitlines()[1]
    assert title.startswith("# ") and r"\-\-\- base\_model\: evil" in title  # one heading line and "<script>" not in body and "[click](" not in body
    assert r"\*pwn\*" in title and r"\`code\`" in title
    assert "0.100 → 0.400, change +0.300 (95% CI +0.120 to +0.470)" in body
    assert "Answers hit the length cap** (from step 12)" in body
    assert r"**vader**, weight 1\.0: VADER" in body and r"duration 0\:02\:05" in body  # CommonMark escapes
    assert "transformers" in body and "llmrl_core export 7 --what gguf" in body


def test_gguf_card_and_a_run_without_measurements():
    header, body = split_card(make_model_card(make_run(name="plain"), gguf_name="tuned.gguf", quant="q8_0"))
    assert header["library_name"] == "gguf" and "gguf" in header["tags"] and "model-index" not in header
    assert "No before/after comparison was measured" in body and "No health alarm" in body
    assert "llama-cli -m tuned.gguf" in body and "ollama create tuned -f tuned.Modelfile" in body
    assert "gguf_file='tuned.gguf'" in body
    adapter_header, _ = split_card(make_model_card(make_run(name="plain"), adapter_only=True))
    assert adapter_header["library_name"] == "peft"
