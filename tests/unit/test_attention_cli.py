"""`python -m llmrl_core attention`: summary, JSON, the .npz file, and a clear error."""

from __future__ import annotations

import json

import numpy as np

from llmrl_core.cli import main


def test_attention_cli_json_and_npz(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "maps.npz"
    code = main(["attention", "--model", str(tiny_model_dir), "--device", "cpu", "--text", "one two three four",
                 "--generate", "3", "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layers"] == 2 and summary["query_heads"] == 4 and summary["kv_heads"] == 2
    assert summary["n_prompt"] < summary["tokens"] and summary["default_head"]["layer"] == 1
    saved = np.load(out, allow_pickle=True)
    assert saved["weights"].shape == (2, 4, summary["tokens"], summary["tokens"]) and saved["weights"].dtype == np.float16
    assert len(saved["tokens"]) == summary["tokens"]


def test_attention_cli_caps_and_reports(tiny_model_dir, capsys):
    code = main(["attention", "--model", str(tiny_model_dir), "--device", "cpu", "--text", "a b c d e f g h i j k l",
                 "--max-tokens", "5"])
    assert code == 0
    captured = capsys.readouterr()
    assert "first 5" in captured.err and "5 tokens, 2 layers x 4 query heads" in captured.out


def test_attention_cli_bad_model_is_one_line(capsys):
    assert main(["attention", "--model", "/no/such/folder", "--text", "hi"]) == 2
    assert "No file or folder" in capsys.readouterr().err
