"""`python -m llmrl_core export|report`: files written where asked, user errors as one 'error:' line and exit 2."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest
import yaml

from llmrl_core.cli import build_parser, main
from llmrl_core.runs.store import RunStore


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A fresh LLMRL_HOME holding one finished demo run (id 1)."""
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    assert main(["demo", "--steps", "3", "--delay", "0", "--name", "cli demo"]) == 0
    return tmp_path


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_both_commands_are_listed():
    text = build_parser().format_help()
    assert "export" in text and "report" in text


def test_export_metrics_config_samples_then_refuse_then_overwrite(home, capsys):
    out = home / "out" / "run1.csv"
    assert main(["export", "1", "--what", "metrics", "--out", str(out)]) == 0
    assert f"to {out}" in capsys.readouterr().out
    assert pd.read_csv(out)["step"].tolist() == [1, 2, 3]
    assert main(["export", "1", "--what", "metrics", "--out", str(out)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--overwrite" in lines[0]
    assert main(["export", "1", "--what", "metrics", "--out", str(out), "--overwrite"]) == 0
    assert main(["export", "1", "--what", "config", "--out", str(home / "c.yaml")]) == 0
    assert yaml.safe_load((home / "c.yaml").read_text()) == RunStore().get_run(1)["config"]
    assert main(["export", "1", "--what", "samples", "--out", str(home / "s.jsonl")]) == 0
    assert (home / "s.jsonl").is_file()


@pytest.mark.parametrize("argv, message", [
    (["export", "9", "--what", "metrics", "--out", "x.csv"], "No run with id 9"),
    (["export", "1", "--what", "model", "--out", "model"], "trains no model"),
    (["report", "1", "7", "--out", "r.html"], "No run with id 7"),
])
def test_user_errors_exit_2_with_one_line(home, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(home)
    assert main(argv) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (home / "model").exists()


def test_bad_choice_is_an_argparse_error(home, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "1", "--what", "weights", "--out", "x"])
    assert exit_info.value.code == 2 and "error:" in capsys.readouterr().err


def test_report_calls_write_report_with_the_runs(home, capsys, monkeypatch):
    calls = []

    def write_report(store, run_ids, out_path):
        calls.append((run_ids, out_path))
        out_path.write_text("<html></html>")
        return out_path

    fake = types.ModuleType("llmrl_core.present.report")
    fake.write_report = write_report
    monkeypatch.setitem(sys.modules, "llmrl_core.present.report", fake)
    assert main(["demo", "--steps", "2", "--delay", "0"]) == 0
    out = home / "report.html"
    assert main(["report", "1", "2", "1", "--out", str(out)]) == 0
    assert calls == [([1, 2], out)] and out.read_text() == "<html></html>"
    assert "runs 1, 2" in capsys.readouterr().out
    assert main(["report", "1", "--out", str(home)]) == 2  # a folder, not a file
    assert "is a folder" in error_lines(capsys)[0]
