"""AppTest for the Export tab's GGUF export: the quantisation choice, the Hub field, the file and its Modelfile
written, and the two Ollama commands shown."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def test_export_tab_writes_a_gguf_and_shows_the_ollama_commands(monkeypatch, tiny_model_dir, tmp_path):
    monkeypatch.setenv("LLMRL_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(ROOT)
    from llmrl_core.lm_rl.checkpoints import STATE_FILE
    from ui import state

    state.get_model_holder.clear()
    state.get_run_manager.clear()
    store = state.get_store()
    run_id = store.create_run("lm_rl", "tiny", {"model": str(tiny_model_dir), "algorithm": "grpo"}, total_steps=1)
    checkpoint = tmp_path / "checkpoint-1"
    shutil.copytree(tiny_model_dir, checkpoint)
    (checkpoint / STATE_FILE).write_bytes(b"")  # what marks a finished checkpoint folder
    store.add_artifact(run_id, 1, "checkpoint", checkpoint)
    store.mark_started(run_id, "test")
    store.set_progress(run_id, 1, 1)
    store.set_status(run_id, "completed")

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.switch_page("pages/runs/runs.py").run()
    at.session_state[f"runs_tabs_{run_id}"] = "Export & report"  # a lazy tab: only the open one runs
    at.run()
    at.selectbox(key=f"export_what_{run_id}").set_value("gguf").run()
    at.radio(key=f"export_quant_{run_id}").set_value("q8_0").run()
    out = tmp_path / "tuned.gguf"
    at.text_input(key=f"export_out_{run_id}_gguf").input(str(out)).run()
    at.text_input(key=f"export_push_{run_id}").input("someone/tuned").run()
    at.button(key=f"export_go_{run_id}").click().run()
    assert not at.exception, at.exception
    assert out.read_bytes()[:4] == b"GGUF" and (tmp_path / "tuned.Modelfile").is_file()
    commands = "\n".join(c.value for c in at.code)
    assert "ollama create run-" in commands and "-f tuned.Modelfile" in commands and "ollama run run-" in commands
    assert any("unreachable" in e.value for e in at.error)  # the push, offline: one line, the export kept
    state.get_model_holder.clear()
    state.get_run_manager.clear()
