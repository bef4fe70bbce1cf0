"""`python -m llmrl_core`: generate, runs, demo; user errors exit 2 with one clear line."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.cli import ROOT, run_cli


def test_generate_json_has_token_logprobs(tiny_model_dir, workbench_home):
    out = run_cli("generate", "--model", str(tiny_model_dir), "--prompt", "Hello", "--n", "2",
                  "--max-new-tokens", "4", "--seed", "1", "--mode", "raw", "--json", "--quiet", home=workbench_home)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert len(payload["completions"]) == 2
    token = payload["completions"][0]["tokens"][0]
    assert set(token) == {"id", "text", "logprob", "top"} and len(token["top"]) == 5 and token["logprob"] <= 0


def test_generate_bad_inputs_exit_2(tiny_model_dir, workbench_home, tmp_path):
    bad = run_cli("generate", "--model", "/nope/model", "--prompt", "x", home=workbench_home)
    assert bad.returncode == 2 and "error: No file or folder at '/nope/model'" in bad.stderr
    assert "Traceback" not in bad.stderr
    empty = run_cli("generate", "--model", str(tiny_model_dir), "--prompt", "", "--quiet", home=workbench_home)
    assert empty.returncode == 2 and "prompt is empty" in empty.stderr
    long = run_cli("generate", "--model", str(tiny_model_dir), "--prompt", "x", "--max-new-tokens", "5000",
                   "--quiet", "--mode", "raw", home=workbench_home)
    assert long.returncode == 2 and "exceeds this model's context" in long.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    home = run_cli("runs", "list", home=blocker / "home")
    assert home.returncode == 2 and "not writable" in home.stderr


def test_demo_then_runs_list_and_show(tmp_path):
    demo = run_cli("demo", "--steps", "3", "--delay", "0", home=tmp_path)
    assert demo.returncode == 0 and "completed" in demo.stdout
    listed = run_cli("runs", "list", home=tmp_path)
    assert listed.returncode == 0 and "demo" in listed.stdout and "completed" in listed.stdout and "3/3" in listed.stdout
    as_json = json.loads(run_cli("runs", "list", "--json", home=tmp_path).stdout)
    assert as_json[0]["status"] == "completed"
    shown = json.loads(run_cli("runs", "show", "1", home=tmp_path).stdout)
    assert shown["last_metrics"]["step"] == 3
    missing = run_cli("runs", "show", "99", home=tmp_path)
    assert missing.returncode == 2 and "No run with id 99" in missing.stderr


def test_runs_rename_note_and_delete(workbench_home, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert run_cli("demo", "--steps", "2", "--delay", "0", "--name", "first", home=home).returncode == 0
    renamed = run_cli("runs", "rename", "1", "lr 2e-5", home=home)
    assert renamed.returncode == 0 and "'lr 2e-5'" in renamed.stdout
    assert run_cli("runs", "note", "1", "the good one", home=home).returncode == 0
    shown = json.loads(run_cli("runs", "show", "1", home=home).stdout)
    assert shown["name"] == "lr 2e-5" and shown["note"] == "the good one"
    empty = run_cli("runs", "rename", "1", "   ", home=home)
    assert empty.returncode == 2 and empty.stderr.startswith("error:") and "Traceback" not in empty.stderr
    folder = home / "artifacts" / "run-00001"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.bin").write_bytes(b"x" * 1000)
    deleted = run_cli("runs", "delete", "1", "--with-files", home=home)
    assert deleted.returncode == 0 and not folder.exists()
    assert run_cli("runs", "show", "1", home=home).returncode == 2


def test_building_the_parser_imports_no_torch():
    """`python -m llmrl_core runs list` must not pay for torch (about 2 s): every verb's parser is built for any
    command, so each feature's add_cli imports its heavy modules inside its handlers."""
    code = ("import sys; from llmrl_core.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
