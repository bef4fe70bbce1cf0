"""A test run kind, "fit": proves that a new kind is one module plus one registration.

It stands for a supervised fine-tuning run without a model: its job fits a line to noisy points by
gradient steps and logs the loss (lower is better). Its spec declares every part a feature kind
declares (job, config class, main metric, samples per step, headline, model export, report
sections, compare metrics, table columns) and the workbench shows it with no other change:
tests/unit/test_run_kinds.py registers it and walks it through the runs table, the headline,
Compare, the report and export.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import pandas as pd

from llmrl_core.core.config import ConfigBase
from llmrl_core.core.errors import InputError
from llmrl_core.core.paths import get_artifact_dir
from llmrl_core.present.report import ReportParts, escape_text
from llmrl_core.runs.headline import Headline, read_metric_values
from llmrl_core.runs.kinds import RunKindSpec
from llmrl_core.runs.manager import JobContext


@dataclass
class FitConfig(ConfigBase):
    """One line fit."""

    CONFIG_LABEL: ClassVar[str] = "fit config"

    steps: int = 10
    """gradient steps"""
    batch_size: int = 8
    """points per step"""
    optimizer: str = "sgd"
    """shown in the runs table's algorithm column"""
    dataset: str = "noisy-line"
    """shown in the runs table's model column"""
    learning_rate: float = 0.1
    """step size"""
    seed: int = 0
    """random seed of the points"""

    def __post_init__(self) -> None:
        self.check_types()
        if self.steps < 1:
            raise InputError(f"steps must be at least 1 (got {self.steps}).")


def run_fit_job(ctx: JobContext) -> dict:
    """Fit y = 2x + 1 by SGD on fresh noisy points each step; log loss, save the weights as the 'model'."""
    cfg = FitConfig.from_dict(ctx.config)
    rng = random.Random(cfg.seed)
    w = b = 0.0
    loss = float("nan")
    for step in range(1, cfg.steps + 1):
        if ctx.should_stop():
            break
        xs = [rng.uniform(-1, 1) for _ in range(cfg.batch_size)]
        errors = [(w * x + b) - (2 * x + 1 + rng.gauss(0, 0.01)) for x in xs]
        loss = sum(e * e for e in errors) / len(errors)
        w -= cfg.learning_rate * 2 * sum(e * x for e, x in zip(errors, xs)) / len(xs)
        b -= cfg.learning_rate * 2 * sum(errors) / len(xs)
        ctx.log_metrics(step, {"loss": loss, "weight": w})
        ctx.add_samples(step, [{"prompt": "x=0.5", "completion": f"{w * 0.5 + b:.3f}", "rewards": {"total": -loss}}])
        ctx.set_progress(step, cfg.steps)
    weights = get_artifact_dir(ctx.run_id) / "line.txt"
    weights.write_text(f"{w} {b}\n")
    ctx.add_artifact(cfg.steps, "weights", weights)
    return {"weight": w, "bias": b, "loss": loss}


def describe_fit_result(store: Any, run: Mapping[str, Any]) -> Headline:
    """'loss 1.2 → 0.003': the first and the last logged loss."""
    values = read_metric_values(store, int(run["id"]), "loss").dropna()
    if values.empty:
        return Headline("no loss logged yet")
    first, last = float(values.iloc[0]), float(values.iloc[-1])
    return Headline(f"loss {first:.3g} → {last:.3g}", good=last < first)


def write_fit_model(store: Any, run: dict, tmp: Path, **_options: Any) -> None:
    """The 'model' of a fit run: its weights file, as a .txt."""
    weights = store.list_artifacts(run["id"], kind="weights")
    if weights.empty:
        raise InputError(f"Run {run['id']} saved no weights.")
    tmp.write_text(Path(weights["path"].iloc[-1]).read_text())


def _weights_section(store: Any, run: Mapping[str, Any], metrics: pd.DataFrame, before_after: Any) -> str:
    """The fitted line, from the run's summary."""
    summary = run.get("summary") or {}
    return f"<p>Fitted weight {escape_text(summary.get('weight'))}, bias {escape_text(summary.get('bias'))}.</p>"


REPORT_PARTS = ReportParts(
    describe_goal=lambda config: f"Fit a line to {config.get('dataset')} with {config.get('optimizer')}.",
    config_fields=("optimizer", "learning_rate", "steps"),
    main_metrics=("loss",),
    sections=(("Fitted line", _weights_section),),
    y_label="loss",
)


SPEC = RunKindSpec(
    name="fit",
    label="Line fit (a test kind)",
    job="tests.support.fit_kind:run_fit_job",
    config_class="tests.support.fit_kind:FitConfig",
    main_metric="loss",
    higher_is_better=False,
    samples_per_step=lambda config: int(config.get("batch_size", 8)),
    headline=describe_fit_result,
    export_formats=("model", "metrics", "samples", "config"),
    model_exporter="tests.support.fit_kind:write_fit_model",
    model_suffix=".txt",
    report="tests.support.fit_kind:REPORT_PARTS",
    compare_metrics=("loss",),
    table_columns={"model": "dataset", "algorithm": "optimizer"},
)
