"""AppTest for the LM RL page: presets, validation, YAML round trip, a tiny run shown with curves and samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.support.apptest import open_page  # noqa: E402

from llmrl_core.lm_rl.config import PRESETS  # noqa: E402

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "language_models" / "lm_rl.py")


def _page() -> AppTest:
    return open_page("language_models/lm_rl.py")


def _open(at: AppTest, view: str) -> None:
    at.session_state["rl_view"] = view
    at.run()
    assert not at.exception, at.exception


def _lm_rl_count() -> int:
    from ui.state import get_store

    return len(get_store().list_runs(kind="lm_rl"))


def _errors(at: AppTest) -> list[str]:
    """Error texts as shown (the page backslash-escapes Markdown in messages)."""
    return [e.value.replace("\\", "") for e in at.error]


def _shown_yaml(at: AppTest) -> dict:
    blocks = [c.value for c in at.code if c.language == "yaml"]
    assert blocks, "no YAML shown"
    return yaml.safe_load(blocks[0])


def test_presets_fill_the_config() -> None:
    at = _page()
    _open(at, "New run")
    at.button(key="rl_preset_learn-arithmetic").click()
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="rl_f_algorithm").value == "grpo"
    assert at.selectbox(key="rl_prompts_builtin").value == "arithmetic"
    assert at.selectbox(key="rl_f_chat").value == "chat"
    arithmetic = PRESETS["learn-arithmetic"].overrides
    assert at.number_input(key="rl_f_num_generations").value == arithmetic["num_generations"]
    assert at.number_input(key="rl_f_max_new_tokens").value == arithmetic["max_new_tokens"]
    assert [s["type"] for s in at.session_state["rl_config"]["rewards"]] == ["exact_answer"]

    at.button(key="rl_preset_make-it-positive").click()
    at.run()
    assert at.selectbox(key="rl_prompts_builtin").value == "sentence-starters"
    assert at.selectbox(key="rl_f_chat").value == "raw"
    assert at.number_input(key="rl_f_learning_rate").value == pytest.approx(PRESETS["make-it-positive"].overrides["learning_rate"])
    assert [s["type"] for s in at.session_state["rl_config"]["rewards"]] == ["vader"]
    assert _shown_yaml(at)["rewards"][0]["type"] == "vader"


def test_custom_python_rewards_follow_the_server_address() -> None:
    from streamlit import config

    at = _page()
    _open(at, "New run")
    assert any("Custom code is allowed because the server listens on loopback" in c.value for c in at.caption)
    old = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = _page()
        _open(at, "New run")
        assert any("Custom Python is off: this server listens on 0.0.0.0" in c.value for c in at.caption)
        assert "custom" not in at.selectbox(key="rl_rewards_v0_new_type").options
    finally:
        config.set_option("server.address", old)


def test_invalid_config_shows_what_to_change_and_starts_nothing() -> None:
    at = _page()
    _open(at, "New run")
    before = _lm_rl_count()
    at.number_input(key="rl_f_temperature").set_value(0.0)
    at.button(key="rl_start").click()
    at.run()
    assert not at.exception, at.exception
    assert any("temperature must be above 0" in e for e in _errors(at)), _errors(at)
    at.number_input(key="rl_f_temperature").set_value(1.0)
    at.number_input(key="rl_f_num_generations").set_value(1)
    at.button(key="rl_start").click()
    at.run()
    assert any("set num_generations to 2 or more" in e for e in _errors(at)), _errors(at)
    at.number_input(key="rl_f_num_generations").set_value(4)
    at.text_input(key="rl_f_model").input("/no/such/model")
    at.button(key="rl_start").click()
    at.run()
    assert any("No file or folder at '/no/such/model'" in e for e in _errors(at)), _errors(at)
    assert _lm_rl_count() == before


def test_yaml_round_trip_and_bad_yaml_messages() -> None:
    at = _page()
    _open(at, "New run")
    shown = _shown_yaml(at)
    assert shown["algorithm"] == "grpo"
    text = yaml.safe_dump({**shown, "algorithm": "rloo", "steps": 7, "beta": 0.05, "prompt_set": "review-openers"})
    at.text_area(key="rl_yaml_text").input(text)
    at.button(key="rl_yaml_load").click()
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="rl_f_algorithm").value == "rloo"
    assert at.number_input(key="rl_f_steps").value == 7
    assert at.number_input(key="rl_f_beta").value == pytest.approx(0.05)
    assert at.selectbox(key="rl_prompts_builtin").value == "review-openers"
    again = _shown_yaml(at)
    assert {k: again[k] for k in ("algorithm", "steps", "beta", "prompt_set")} == \
        {"algorithm": "rloo", "steps": 7, "beta": 0.05, "prompt_set": "review-openers"}

    at.text_area(key="rl_yaml_text").input("algorithm: [grpo\nsteps: 3")
    at.button(key="rl_yaml_load").click()
    at.run()
    assert any("not valid YAML" in e for e in _errors(at)), _errors(at)
    at.text_area(key="rl_yaml_text").input("algoritm: ppo")
    at.button(key="rl_yaml_load").click()
    at.run()
    assert any("did you mean 'algorithm'" in e for e in _errors(at)), _errors(at)
    assert at.selectbox(key="rl_f_algorithm").value == "rloo"  # a bad file changes nothing


def test_failed_run_shows_message_and_traceback() -> None:
    from ui.state import get_store

    store = get_store()
    run_id = store.create_run("lm_rl", "![x](http://evil) diverged run", {"algorithm": "grpo", "model": "bundled", "steps": 5}, 5)
    store.mark_started(run_id)
    store.set_status(run_id, "failed", error="The loss became nan at step 3: training diverged. Lower learning_rate."
                                             "\n\nTraceback (most recent call last):\n  File \"trainer.py\"\n<b>not html</b>")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["rl_run_id"] = run_id
    at.session_state["rl_view"] = "Dashboard"
    at.run()
    assert not at.exception, at.exception
    assert any("training diverged" in e and "Traceback" not in e for e in _errors(at))
    # Run names and messages can come from YAML files or model output: their Markdown is escaped.
    assert any(r"\!\[x\]\(http\://evil\)" in h.value for h in at.subheader), [h.value for h in at.subheader]
    assert any("Traceback (most recent call last)" in c.value for c in at.code)
    assert any(x.label == "Traceback" for x in at.expander)


def test_interrupted_run_says_so_and_offers_its_checkpoints(tmp_path) -> None:
    from ui.state import get_store

    store = get_store()
    run_id = store.create_run("lm_rl", "cut short", {"algorithm": "grpo", "model": "bundled", "steps": 9}, 9)
    store.set_status(run_id, "interrupted", error="The process running this run ended before the run did.")
    folder = tmp_path / "checkpoint-000003"
    folder.mkdir()
    store.add_artifact(run_id, 3, "checkpoint", folder, {"step": 3})
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["rl_run_id"] = run_id
    at.session_state["rl_view"] = "Dashboard"
    at.run()
    assert not at.exception, at.exception
    assert any("ended before the run did" in w.value and "Resume it" in w.value for w in at.warning)
    assert at.selectbox(key=f"rl_ckpt_{run_id}").value == str(folder)
    assert at.number_input(key=f"rl_ckpt_until_{run_id}_3").value == 9  # finish the planned steps
    assert not at.button(key=f"rl_resume_ckpt_{run_id}").disabled


def test_tiny_run_from_the_page_shows_curves_samples_and_resumes(tiny_model_dir) -> None:
    from ui.state import get_run_manager

    at = _page()
    _open(at, "New run")
    at.button(key="rl_preset_make-it-positive").click()
    at.run()
    at.text_input(key="rl_f_model").input(str(tiny_model_dir))
    at.selectbox(key="rl_f_device").set_value("cpu")
    for name, value in (("steps", 2), ("prompts_per_step", 2), ("num_generations", 2), ("max_new_tokens", 6)):
        at.number_input(key=f"rl_f_{name}").set_value(value)
    at.button(key="rl_start").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, _errors(at)
    run_id = at.session_state["rl_run_id"]
    assert at.session_state["rl_view"] == "Dashboard"
    assert get_run_manager().wait(run_id, timeout=90)
    at.run()
    assert not at.exception, at.exception
    run = get_run_manager().store.get_run(run_id)
    assert run["status"] == "completed", run.get("error")
    assert run["config"]["model"] == str(tiny_model_dir) and run["config"]["steps"] == 2
    assert at.selectbox(key="rl_pick").value == run_id
    charts = {c.key.rsplit("_", 1)[0] for c in at.get("plotly_chart")}
    assert charts == {"rl_reward"}, charts  # the reward chart; the small curves wait in their (closed, lazy) tab
    assert any(df.value.shape[0] == 4 and "completion" in df.value.columns for df in at.dataframe)  # step 2's samples
    assert at.get("html") or at.get("bidi_component"), "the token view renders (the push view is a component)"
    at.radio(key=f"rl_token_colour_{run_id}").set_value("per-token KL")
    at.run()
    assert any("beta = 0" in c.value for c in at.caption)
    at.session_state[f"rl_tabs_{run_id}"] = "Curves"
    at.run()
    charts = {c.key.rsplit("_", 1)[0] for c in at.get("plotly_chart")}
    assert {"rl_reward", "rl_entropy", "rl_policy_loss", "rl_length"} <= charts, charts  # reward + the default curves
    assert "rl_step_time" not in charts  # the rest one click away (each chart costs the browser at every step)
    assert not at.get("html") and not at.get("bidi_component"), "the samples tab is closed: no token view drawn"

    # Resume from the final checkpoint for one more step: a new run with resume_from set.
    at.session_state[f"rl_tabs_{run_id}"] = "Checkpoints"
    at.run()
    at.number_input(key=f"rl_ckpt_until_{run_id}_2").set_value(3)
    at.button(key=f"rl_resume_ckpt_{run_id}").click()
    at.run()
    assert not at.exception, at.exception
    new_id = at.session_state["rl_run_id"]
    assert new_id != run_id
    assert get_run_manager().wait(new_id, timeout=90)
    resumed = get_run_manager().store.get_run(new_id)
    assert resumed["status"] == "completed", resumed.get("error")
    assert resumed["config"]["resume_from"].endswith("checkpoint-000002")
    assert get_run_manager().store.read_metrics_wide(new_id)["step"].tolist() == [3]


def _wait_for_status(run_id: int, statuses: set[str], timeout: float = 60.0) -> str:
    import time

    from ui.state import get_store

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = get_store().get_run(run_id)["status"]
        if status in statuses:
            return status
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} stayed {status!r}, expected one of {statuses}")


def test_pause_resume_stop_and_edit_a_copy(tiny_model_dir) -> None:
    from ui.state import get_run_manager, get_store

    config = {"name": "controls", "model": str(tiny_model_dir), "device": "cpu", "steps": 500, "prompts_per_step": 1,
              "num_generations": 2, "max_new_tokens": 4, "beta": 0.1, "algorithm": "rloo"}
    run_id = get_run_manager().start("lm_rl", config, name="controls", total_steps=500)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["rl_view"] = "Dashboard"
    _wait_for_status(run_id, {"running"})
    at.run()
    assert at.selectbox(key="rl_pick").value == run_id  # the newest active run is shown on load
    at.button(key=f"rl_pause_{run_id}").click()
    at.run()
    _wait_for_status(run_id, {"paused"})
    at.run()
    at.button(key=f"rl_resume_{run_id}").click()
    at.run()
    _wait_for_status(run_id, {"running"})
    at.run()
    at.button(key=f"rl_stop_{run_id}").click()
    at.run()
    assert get_run_manager().wait(run_id, timeout=60)
    assert get_store().get_run(run_id)["status"] == "stopped"
    at.run()
    assert not at.exception, at.exception
    assert any("Stopped by request." in i.value for i in at.info)
    assert not get_store().list_artifacts(run_id, kind="checkpoint").empty  # a stop saves a checkpoint to resume from

    at.button(key=f"rl_clone_{run_id}").click()
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["rl_view"] == "New run"
    assert at.text_input(key="rl_f_name").value == "controls (copy)"
    assert at.selectbox(key="rl_f_algorithm").value == "rloo"
    assert at.number_input(key="rl_f_beta").value == pytest.approx(0.1)
    assert at.text_input(key="rl_f_model").value == str(tiny_model_dir)


def test_uploaded_prompts_and_yaml_file_reach_the_config() -> None:
    from llmrl_core.lm_rl.prompts import load_prompt_set

    at = _page()
    _open(at, "New run")
    at.radio(key="rl_prompts_mode").set_value("Upload a file").run()
    at.file_uploader(key="rl_prompts_upload").set_value(
        ("mine.csv", b"prompt,answer\n<b>What is 2+2?</b>,4\nWhat is 3+3?,6\n", "text/csv")).run()
    assert not at.exception, at.exception
    source = at.session_state["rl_config"]["prompt_set"]
    assert source.endswith(".jsonl") and "prompt_uploads" in source  # the job reads the upload back by path
    frame = load_prompt_set(source)
    assert frame["prompt"].tolist() == ["<b>What is 2+2?</b>", "What is 3+3?"]
    assert frame["answer"].astype(str).tolist() == ["4", "6"]

    at.file_uploader(key="rl_yaml_file").set_value(("run.yaml", b"algorithm: reinforce\nsteps: 9\n", "text/yaml")).run()
    at.button(key="rl_yaml_load").click()
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="rl_f_algorithm").value == "reinforce"
    assert at.number_input(key="rl_f_steps").value == 9


def test_form_keeps_its_values_across_tab_switches() -> None:
    at = _page()
    _open(at, "New run")
    at.text_input(key="rl_f_name").input("kept name")
    at.number_input(key="rl_f_temperature").set_value(0.7)
    weight_key = next(w.key for w in at.number_input if str(w.key).endswith("_weight"))
    at.number_input(key=weight_key).set_value(2.5)
    at.run()
    _open(at, "Dashboard")  # the form's widgets are not drawn, so Streamlit forgets their state
    _open(at, "New run")
    assert at.text_input(key="rl_f_name").value == "kept name"
    assert at.number_input(key="rl_f_temperature").value == pytest.approx(0.7)
    assert at.session_state["rl_config"]["rewards"][0]["weight"] == pytest.approx(2.5)
    assert [w.value for w in at.number_input if str(w.key).endswith("_weight")] == [pytest.approx(2.5)]


def test_scale_tab_estimates_memory_and_shows_other_machines_commands(tiny_model_dir, monkeypatch):
    """Processes, machines and strategy: the memory estimate follows them; two machines show rank 1's command."""
    monkeypatch.setenv("LLMRL_MODEL", str(tiny_model_dir))
    at = _page()
    _open(at, "New run")
    at.text_input(key="rl_f_model").set_value(str(tiny_model_dir)).run()
    single = [i.value for i in at.info if "needs about" in i.value]
    assert single and "on one" in single[0], [i.value for i in at.info]
    at.number_input(key="rl_f_num_processes").set_value(2).run()
    assert any("with DDP (2 processes)" in i.value.replace("\\", "") for i in at.info), [i.value for i in at.info]
    at.number_input(key="rl_f_num_machines").set_value(2).run()
    at.text_input(key="rl_f_main_process_ip").set_value("10.0.0.1").run()
    assert not at.exception, at.exception
    shown = " ".join(c.value for c in at.code)
    assert "--machine_rank 1" in shown and "--main_process_ip 10.0.0.1" in shown and "-m llmrl_core worker" in shown
