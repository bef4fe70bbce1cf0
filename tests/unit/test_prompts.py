"""Prompt sets: built-ins, file parsing, and a clear InputError for each malformed upload."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.prompts import BUILTIN_PROMPT_SETS, load_prompt_set, make_arithmetic_problems, read_prompt_upload


def test_builtin_sets_have_prompts_and_arithmetic_answers_are_right():
    assert set(BUILTIN_PROMPT_SETS) == {"sentence-starters", "review-openers", "arithmetic", "chat-questions"}
    for name in BUILTIN_PROMPT_SETS:
        frame = load_prompt_set(name)
        assert frame["prompt"].map(lambda p: isinstance(p, str) and p.strip() != "").all()
        assert frame["prompt"].is_unique
    assert len(load_prompt_set("sentence-starters")) >= 50
    assert "The weather today" in set(load_prompt_set("sentence-starters")["prompt"])
    problems = make_arithmetic_problems(50, seed=3)
    for prompt, answer in zip(problems["prompt"], problems["answer"]):
        a, op, b = re.fullmatch(r"What is (\d+) (.) (\d+)\? Answer with a number\.", prompt).groups()
        assert int(answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op] >= 0
    assert problems.equals(make_arithmetic_problems(50, seed=3))
    assert not problems.equals(make_arithmetic_problems(50, seed=4))


def test_limit_keeps_a_seeded_sample_in_order():
    full = load_prompt_set("chat-questions")
    five = load_prompt_set("chat-questions", limit=5, seed=1)
    assert len(five) == 5 and five.equals(load_prompt_set("chat-questions", limit=5, seed=1))
    positions = [full.index[full["prompt"] == p][0] for p in five["prompt"]]
    assert positions == sorted(positions)
    assert len(load_prompt_set("chat-questions", limit=10_000)) == len(full)
    with pytest.raises(InputError, match="at least 1"):
        load_prompt_set("chat-questions", limit=0)


def test_csv_jsonl_json_txt_parse_with_extra_columns():
    csv = read_prompt_upload("p.csv", "prompt,answer\nWhat is 2 + 2?,4\n\"Hi, there\",007\n".encode())
    assert csv.to_dict("records") == [{"prompt": "What is 2 + 2?", "answer": "4"}, {"prompt": "Hi, there", "answer": "007"}]
    jsonl = read_prompt_upload("p.jsonl", b'{"prompt": "a", "answer": 1}\n\n{"prompt": "b", "answer": 2}\n')
    assert jsonl["prompt"].tolist() == ["a", "b"] and jsonl["answer"].tolist() == [1, 2]
    as_json = read_prompt_upload("p.json", json.dumps([{"topic": "x", "prompt": "a"}]).encode())
    assert list(as_json.columns) == ["prompt", "topic"]  # prompt first
    txt = read_prompt_upload("p.txt", "\ufeffFirst prompt\n\n  second prompt  \r\n".encode())
    assert txt["prompt"].tolist() == ["First prompt", "second prompt"]
    assert read_prompt_upload("p.csv", b"Prompt\nx\n")["prompt"].tolist() == ["x"]  # case-insensitive header


def test_load_prompt_set_reads_files_and_rejects_unknown_sources(tmp_path: Path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "hello"}\n', encoding="utf-8")
    assert load_prompt_set(str(path))["prompt"].tolist() == ["hello"]
    with pytest.raises(InputError, match=r"Unknown prompt set 'nope': not a built-in set \(sentence-starters"):
        load_prompt_set("nope")


@pytest.mark.parametrize("filename, data, message", [
    ("p.csv", "prompt\ncaf\xe9\n".encode("latin-1"), r"p.csv is not UTF-8 text \(byte 0xe9 at position 10"),
    ("p.csv", b"question,answer\nWhat?,4\n", r"has no prompt column \(its columns are: question, answer\)\. Name the column holding the prompts 'prompt', or upload a \.txt file with one prompt a line"),
    ("p.jsonl", b'{"text": "a"}\n', r'line 1 has no "prompt" field \(it has: text\)'),
    ("p.csv", b"", "p.csv is empty"),
    ("p.txt", b"  \n\n", "p.txt is empty"),
    ("p.csv", b"prompt\n", "has no prompts: it needs at least one row"),
    ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": "broken"\n{"prompt": "ok"}\n', r"p.jsonl, line 2 is not valid JSON"),
    ("p.jsonl", b'{"prompt": "ok"}\n["a list"]\n', r"line 2 holds a JSON list, not an object"),
    ("p.jsonl", b'{"prompt": [{"role": "user", "content": "hi"}]}\n', r"prompt in row 1 is list, not text"),
    ("p.csv", b"prompt,answer\nok,1\n,2\n", r"1 prompt\(s\) are empty \(rows 2\)"),
    ("p.xlsx", b"PK\x03\x04", r"unsupported file type '.xlsx'; upload a .csv, .jsonl, .json or .txt file"),
    ("p.txt", b"a\x00b", "looks like a binary file"),
    ("p.csv", b"prompt,completions\na,b\n", "column named 'completions', which clashes with an argument"),
])
def test_malformed_uploads_each_get_a_clear_error(filename, data, message):
    with pytest.raises(InputError, match=message):
        read_prompt_upload(filename, data)


def test_upload_over_the_size_limit_is_refused_before_parsing():
    payload = bytes(100 * 2**20)  # 100 MB of zeros, in memory only
    with pytest.raises(InputError, match=r"big.csv is 100.0 MB; the limit is 50 MB"):
        read_prompt_upload("big.csv", payload)
    with pytest.raises(InputError, match="is 0.0 MB; the limit is 0 MB"):
        read_prompt_upload("p.txt", b"x" * 20, max_bytes=10)


def test_file_over_the_size_limit_is_refused_without_reading_it(tmp_path: Path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(100 * 2**20)  # sparse: nothing is written
    with pytest.raises(InputError, match="huge.txt is 100.0 MB; the limit is 50 MB"):
        load_prompt_set(str(path))


def test_hf_datasets_fail_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"Cannot load the Hugging Face dataset 'openai/gsm8k': the hub is unreachable"):
        load_prompt_set("hf:openai/gsm8k:train")
    with pytest.raises(InputError, match="Give a dataset id after hf:"):
        load_prompt_set("hf:")


def test_frames_are_plain_pandas():
    assert isinstance(load_prompt_set("arithmetic", limit=3), pd.DataFrame)
