"""The "lm_rl" run kind: RL fine-tuning of a language model, as the runs table, reports and exports see it.

Light on purpose (no torch): listing the kinds imports this module; the job, the config class, the
exporter and the report sections are named as "module:attr" and imported when used.
"""

from __future__ import annotations

from typing import Any, Mapping

from llmrl_core.runs.headline import Headline, describe_change, read_metric_values
from llmrl_core.runs.kinds import RunKindSpec


def describe_lm_rl_result(store: Any, run: Mapping[str, Any]) -> Headline:
    """'reward 0.12 → 0.71 (+0.59)': the mean reward of the first and last logged steps."""
    return describe_change(read_metric_values(store, int(run["id"]), "reward"), "reward")


def count_completions_per_step(config: Mapping[str, Any]) -> int:
    """Completions per step (prompts_per_step x num_generations, RLConfig.batch_size), RLConfig's defaults filling gaps."""
    from llmrl_core.lm_rl.config import RLConfig

    defaults = RLConfig.__dataclass_fields__
    prompts = config.get("prompts_per_step", defaults["prompts_per_step"].default)
    generations = config.get("num_generations", defaults["num_generations"].default)
    try:
        return max(1, int(prompts) * int(generations))
    except (TypeError, ValueError):
        return 1


def uses_lora(config: Mapping[str, Any]) -> bool:
    """A LoRA run can export its adapter alone."""
    return bool(config.get("use_lora"))


SPEC = RunKindSpec(
    name="lm_rl",
    label="RL fine-tuning of a language model",
    job="llmrl_core.lm_rl.job:run_lm_rl_job",
    config_class="llmrl_core.lm_rl.config:RLConfig",
    main_metric="reward",  # the mean reward of a step's completions
    samples_per_step=count_completions_per_step,
    headline=describe_lm_rl_result,
    export_formats=("model", "gguf", "metrics", "samples", "config"),
    model_exporter="llmrl_core.lm_rl.export:write_lm_model",
    gguf_exporter="llmrl_core.lm_rl.export:write_lm_gguf",
    model_card="llmrl_core.present.model_card:read_run_card",
    exports_adapter=uses_lora,
    clone_page="pages/language_models/lm_rl.py",
    report="llmrl_core.present.lm_rl_report:REPORT_PARTS",
    compare_metrics=("reward", "kl", "entropy"),
    table_columns={"model": "model", "algorithm": "algorithm"},
    alarms="llmrl_core.lm_rl.alarms:read_run_alarms",
    before_after=True,
    cli="llmrl_core.lm_rl.cli",
    presets="llmrl_core.lm_rl.config:PRESETS",
)
