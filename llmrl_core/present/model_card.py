"""The model card (README.md with the Hugging Face Hub's YAML header) that goes with every exported LM model.

The Hub reads the YAML front matter (base_model, library_name, tags, pipeline_tag, model-index for
results) to index a model; people read the Markdown under it. The card tells the run's story: base
model, algorithm and its key settings, rewards with their one-line descriptions, prompt set, steps
and duration, the before/after result with its CI when one was measured, the alarms that fired, and
how to load the files. Every string that came from the user (run name, model spec, prompts, reward
settings) is escaped for Markdown (present.common.escape_markdown); the header is yaml.safe_dump'd.

The lm_rl kind names it (RunKindSpec.model_card) and runs/export.py writes it into every exported HF
folder and beside every GGUF. It lives in present/ because it is a Markdown view of a run, like the
HTML report (features may not import present/, where the one Markdown escaper is).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import yaml

from llmrl_core.present.common import escape_markdown

BUNDLED_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the workbench's 'bundled' model is
KEY_SETTINGS = ("algorithm", "learning_rate", "beta", "num_generations", "prompts_per_step", "max_new_tokens",
                "temperature", "epsilon", "loss_type", "use_lora", "lora_r", "lora_alpha", "seed")


def describe_base_model(spec: str) -> str:
    """The Hub id of the base model when known ('bundled' -> SmolLM2), else the spec as given."""
    return BUNDLED_BASE if spec in ("", "bundled") else spec


def _format_duration(run: Mapping[str, Any]) -> str:
    start, end = run.get("started"), run.get("ended")
    if not start or not end:
        return "unknown (the run has not finished)"
    return str(dt.timedelta(seconds=round(float(end) - float(start))))


def _describe_reward(spec: Mapping[str, Any]) -> str:
    from llmrl_core.lm_rl.rewards.registry import REWARD_TYPES

    key = str(spec.get("type", "?"))
    rtype = REWARD_TYPES.get(key)
    description = rtype.description if rtype is not None else "a reward type this version does not know"
    settings = {k: v for k, v in spec.items() if k not in ("type", "weight", "code")}
    shown = f" ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else ""
    return (f"- **{escape_markdown(key)}**, weight {escape_markdown(spec.get('weight', 1.0))}{escape_markdown(shown)}: "
            f"{escape_markdown(description)}")


def make_front_matter(run: Mapping[str, Any], before_after: Any | None, *, library: str) -> dict[str, Any]:
    """The YAML header the Hub indexes; `library` is transformers, peft (an adapter alone) or gguf."""
    config = run.get("config") or {}
    header: dict[str, Any] = {
        "base_model": describe_base_model(str(config.get("model", "bundled"))),
        "library_name": library,
        "pipeline_tag": "text-generation",
        "tags": ["llmrl-workbench", "reinforcement-learning", str(config.get("algorithm", "grpo"))] + (["gguf"] if library == "gguf" else []),
    }
    if before_after is not None:
        header["model-index"] = [{
            "name": str(run.get("name") or f"run {run.get('id')}"),
            "results": [{
                "task": {"type": "text-generation", "name": "RL fine-tuning"},
                "dataset": {"type": "prompts", "name": str(config.get("prompt_set", "unknown"))},
                "metrics": [
                    {"type": "reward", "name": "mean reward before", "value": round(float(before_after.before_mean), 4)},
                    {"type": "reward", "name": "mean reward after", "value": round(float(before_after.after_mean), 4)},
                    {"type": "reward", "name": "reward change", "value": round(float(before_after.diff), 4)},
                ],
            }],
        }]
    return header


def make_model_card(run: Mapping[str, Any], *, before_after: Any | None = None, alarms: list[Any] = (),
                    gguf_name: str | None = None, quant: str | None = None, adapter_only: bool = False) -> str:
    """README.md text: YAML front matter, then the run's story and how to load it (a GGUF's when gguf_name)."""
    config = run.get("config") or {}
    header = yaml.safe_dump(make_front_matter(
        run, before_after, library="gguf" if gguf_name else "peft" if adapter_only else "transformers"), sort_keys=False,
                            allow_unicode=True)
    name = escape_markdown(" ".join(str(run.get("name") or f"run {run.get('id')}").split()))  # one heading line
    base = escape_markdown(describe_base_model(str(config.get("model", "bundled"))))
    lines = [f"---\n{header}---", "", f"# {name}", "",
             f"Fine-tuned from **{base}** with reinforcement learning in the LLM·RL Workbench (run {int(run['id'])}).",
             "", "## Training", ""]
    lines.append(f"- Algorithm: **{escape_markdown(config.get('algorithm', 'grpo'))}**")
    settings = ", ".join(f"{k}={config[k]}" for k in KEY_SETTINGS[1:] if k in config)
    if settings:
        lines.append(f"- Key settings: {escape_markdown(settings)}")
    lines.append(f"- Prompt set: {escape_markdown(config.get('prompt_set', 'unknown'))}")
    lines.append(f"- Steps: {escape_markdown(run.get('step') or 0)} of {escape_markdown(run.get('total_steps') or config.get('steps', '?'))}; "
                 f"duration {escape_markdown(_format_duration(run))}")
    lines += ["", "## Rewards", ""]
    lines += [_describe_reward(spec) for spec in config.get("rewards") or []] or ["- none recorded"]
    lines += ["", "## Result", ""]
    if before_after is not None:
        lines.append(f"Mean reward on the prompt set, base model vs this model ({before_after.samples} answer(s) per "
                     f"prompt, {'greedy' if before_after.greedy else 'sampled'}): "
                     f"{before_after.before_mean:.3f} → {before_after.after_mean:.3f}, change {before_after.diff:+.3f} "
                     f"({before_after.confidence:.0%} CI {before_after.low:+.3f} to {before_after.high:+.3f}).")
    else:
        lines.append("No before/after comparison was measured for this run.")
    lines += ["", "## Alarms", ""]
    if alarms:
        for alarm in alarms:
            since = f" (from step {alarm.from_step})" if alarm.from_step is not None else ""
            lines.append(f"- **{escape_markdown(alarm.title)}**{since}, {escape_markdown(alarm.severity)}: "
                         f"{escape_markdown(alarm.what_it_saw)}")
    else:
        lines.append("No health alarm (reward hacking, collapse, runaway KL) fired.")
    lines += ["", "## How to load it", ""]
    if gguf_name is not None:
        stem = gguf_name.rsplit(".", 1)[0]
        lines += [f"This is a GGUF file ({escape_markdown(quant or 'f16')} weights) with its tokenizer and chat template.",
                  "", "llama.cpp:", "", "```", f"llama-cli -m {gguf_name} -cnv", "```", "",
                  f"Ollama (the Modelfile beside it is {stem}.Modelfile):", "", "```",
                  f"ollama create {_ollama_name(stem)} -f {stem}.Modelfile", f"ollama run {_ollama_name(stem)}", "```",
                  "", "transformers:", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
                  f"model = AutoModelForCausalLM.from_pretrained('.', gguf_file={gguf_name!r})",
                  f"tokenizer = AutoTokenizer.from_pretrained('.', gguf_file={gguf_name!r})", "```"]
    else:
        lines += ["transformers (this folder):", "", "```python",
                  "from transformers import AutoModelForCausalLM, AutoTokenizer",
                  "model = AutoModelForCausalLM.from_pretrained('PATH_OR_REPO_ID')",
                  "tokenizer = AutoTokenizer.from_pretrained('PATH_OR_REPO_ID')", "```", "",
                  f"llama.cpp and Ollama: export it as GGUF with `python -m llmrl_core export {int(run['id'])} --what gguf "
                  "--quant q8_0 --out model.gguf` (a Modelfile is written beside it)."]
    return "\n".join(lines) + "\n"


def _ollama_name(stem: str) -> str:
    """A model name Ollama accepts: lowercase letters, digits, '-', '_' and '.'."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem.lower()).strip("-.")
    return cleaned or "model"


def read_run_card(store: Any, run: Mapping[str, Any], **kwargs: Any) -> str:
    """make_model_card with the run's latest before/after and its alarms read from the store."""
    from llmrl_core.lm_rl.alarms import read_run_alarms
    from llmrl_core.lm_rl.evaluate import read_latest_before_after

    return make_model_card(run, before_after=read_latest_before_after(store, int(run["id"])),
                           alarms=read_run_alarms(store, int(run["id"])), **kwargs)
