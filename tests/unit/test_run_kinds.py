"""Run kinds are declared once (llmrl_core/runs/kinds.py): a new kind registered from outside the engine
(tests/support/fit_kind.py) goes through the runs table, the headline, Compare, the report and export
with no other change; listing the kinds imports no torch; the built-in kinds are found by their package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmrl_core.core.errors import InputError
from llmrl_core.runs import RunManager, kinds
from llmrl_core.runs.compare import read_compare_frame, summarize_finals
from llmrl_core.runs.export import export_run
from llmrl_core.runs.headline import describe_run_headline
from llmrl_core.runs.table import summarize_runs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def fit_kind(monkeypatch):
    """The test kind 'fit', registered for this test only (here and for workers through LLMRL_EXTRA_JOBS)."""
    monkeypatch.setattr(kinds, "_REGISTERED", dict(kinds._REGISTERED))
    monkeypatch.setenv(kinds.EXTRA_JOBS_ENV, kinds.os.environ.get(kinds.EXTRA_JOBS_ENV, ""))
    kinds.register_kind("fit", "tests.support.fit_kind:SPEC")
    return kinds.get_kind("fit")


@pytest.fixture()
def fit_runs(store, fit_kind):
    """Two finished fit runs with different learning rates."""
    manager = RunManager(store)
    slow, status = manager.run_foreground("fit", {"steps": 12, "learning_rate": 0.05}, name="slow")
    assert status == "completed"
    fast, status = manager.run_foreground("fit", {"steps": 12, "learning_rate": 0.3, "optimizer": "sgd+", "dataset": "noisy-line"}, name="<b>fast</b>")
    assert status == "completed"
    return slow, fast


def test_builtin_kinds_are_found_by_their_package():
    names = kinds.list_kind_names()
    assert {"lm_rl", "gym", "agent"} <= set(names)
    for name in ("lm_rl", "gym", "agent"):
        spec = kinds.get_kind(name)
        assert spec.name == name and spec.job.startswith(f"llmrl_core.{name}.")
        assert kinds.load_part(spec, "config_class").__name__.endswith("Config")
    with pytest.raises(InputError, match="Unknown job kind 'nope'.*known kinds: .*lm_rl"):
        kinds.get_kind("nope")


def test_listing_the_kinds_imports_no_torch():
    code = ("import sys\nfrom llmrl_core.runs.kinds import list_kinds\nspecs = list_kinds()\n"
            "print(len(specs), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, torch_loaded = out.stdout.split()
    assert int(count) >= 3 and torch_loaded == "False"


def test_a_bare_job_function_registers_as_a_job_only_kind(monkeypatch):
    monkeypatch.setattr(kinds, "_REGISTERED", dict(kinds._REGISTERED))
    monkeypatch.setenv(kinds.EXTRA_JOBS_ENV, "")
    kinds.register_kind("bare", "tests.support.worker_jobs:run_stubborn_job")
    spec = kinds.get_kind("bare")
    assert spec.job == "tests.support.worker_jobs:run_stubborn_job" and spec.headline is None and spec.report is None
    assert "bare=tests.support.worker_jobs:run_stubborn_job" in kinds.os.environ[kinds.EXTRA_JOBS_ENV]


def test_the_runs_table_reads_the_kind(store, fit_runs):
    slow, fast = fit_runs
    table = summarize_runs(store, kinds=["fit"], with_disk=False).set_index("id")
    assert table.loc[fast, "model"] == "noisy-line" and table.loc[fast, "algorithm"] == "sgd+"  # table_columns
    losses = store.read_metrics(fast, names=["loss"])["value"]
    assert table.loc[fast, "first_reward"] == pytest.approx(losses.iloc[0])
    assert table.loc[fast, "last_reward"] == pytest.approx(losses.iloc[-1])
    assert table.loc[fast, "best_reward"] == pytest.approx(losses.min())  # lower is better: the best is the minimum
    assert table.loc[fast, "best_reward"] < losses.max()


def test_headline_is_the_kinds_own(store, fit_runs):
    headline = describe_run_headline(store, store.get_run(fit_runs[1]))
    assert headline.text.startswith("loss ") and "→" in headline.text and headline.good is True


def test_compare_counts_the_kinds_samples_per_step(store, fit_runs):
    slow, fast = fit_runs
    frame = read_compare_frame(store, [slow, fast], ["loss"], x="samples")
    assert frame[frame.run_id == slow]["x"].tolist()[:3] == [8, 16, 24]  # batch_size 8 per step
    finals = summarize_finals(store, [slow, fast], ["loss"])
    assert len(finals) == 2


def test_report_has_the_kinds_sections(store, fit_runs, tmp_path):
    from llmrl_core.present.report import render_report_html, write_report_png

    slow, fast = fit_runs
    page = render_report_html(store, [slow, fast])
    assert "Fit a line to noisy-line with sgd+." in page  # the kind's goal sentence
    assert "<h3>Fitted line</h3>" in page and "Fitted weight" in page  # its own section
    assert "Result: loss " in page  # its headline
    assert "&lt;b&gt;fast&lt;/b&gt;" in page and "<b>fast</b>" not in page  # the run's name stays escaped
    png = write_report_png(store, fast, tmp_path / "fit.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_uses_the_kinds_exporter_and_config_class(store, fit_runs, tmp_path):
    fast = fit_runs[1]
    with pytest.raises(InputError, match=r"ending in \.txt"):
        export_run(store, fast, "model", tmp_path / "line")
    model = export_run(store, fast, "model", tmp_path / "line.txt")
    weight, bias = (float(v) for v in model.read_text().split())
    assert weight == pytest.approx(store.get_run(fast)["summary"]["weight"]) and bias > 0.5
    config = yaml.safe_load(export_run(store, fast, "config", tmp_path / "fit.yaml").read_text())
    assert config["optimizer"] == "sgd+" and config["batch_size"] == 8  # FitConfig's defaults filled in
