"""AppTest for the Runs page (table, health, export, report, clone, delete refused), Compare and Before/after."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def app_env(monkeypatch, tiny_model_dir, tmp_path):
    """The whole app over a fresh home with two finished synthetic LM runs."""
    monkeypatch.setenv("LLMRL_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    from ui import state

    state.get_model_holder.clear()
    state.get_run_manager.clear()
    store = state.get_store()
    ids = []
    for i, (lr, slope) in enumerate(((1e-5, 0.01), (3e-5, 0.05))):
        run_id = store.create_run("lm_rl", f"<i>run {i}</i>", {"model": str(tiny_model_dir), "learning_rate": lr,
                                                               "algorithm": "grpo", "max_new_tokens": 8}, total_steps=20)
        store.mark_started(run_id)  # owned by this live process: the supervisor never fails it while it is set up
        for step in range(1, 21):
            store.log_metrics(run_id, step, {"reward": slope * step, "kl": 0.001 * step, "entropy": 1.0})
        store.add_samples(run_id, 20, [{"prompt": "p", "completion": "<script>alert(1)</script>",
                                        "rewards": {"total": 1.0}}])
        store.set_progress(run_id, 20, 20)
        store.set_status(run_id, "completed")
        ids.append(run_id)
    yield store, ids
    state.get_model_holder.clear()
    state.get_run_manager.clear()


def _open(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_runs_table_filters_and_searches(app_env):
    store, ids = app_env
    store.set_note(ids[0], "the slow one")
    at = _open("pages/runs/runs.py")
    table = at.dataframe[0].value
    assert set(table["id"]) == set(ids) and "best reward" in table.columns
    assert abs(table.set_index("id").loc[ids[1], "best reward"] - 1.0) < 1e-9  # 0.05 x 20
    at.text_input(key="runs_search").input("slow").run()
    assert list(at.dataframe[0].value["id"]) == [ids[0]]
    at.text_input(key="runs_search").input("").run()
    at.multiselect(key="runs_kind").set_value(["gym"]).run()
    assert any("No run matches" in i.value for i in at.info)


def test_run_detail_offers_health_export_and_report(app_env, tmp_path):
    store, ids = app_env
    at = _open("pages/runs/runs.py")
    labels = [t.label for t in at.tabs]
    assert {"Health", "Export & report"} <= set(labels)
    assert not [b for b in at.button if b.key == f"report_go_run{ids[1]}"]  # lazy tabs: a closed tab does not run
    at.session_state[f"runs_tabs_{ids[1]}"] = "Export & report"
    at.run()
    at.button(key=f"report_go_run{ids[1]}").click().run()
    assert not at.exception, at.exception
    html = (Path(store.path).parent / "reports" / f"run-{ids[1]:05d}.html")
    assert html.is_file() and "&lt;script&gt;alert(1)&lt;/script&gt;" in html.read_text(encoding="utf-8")
    assert [b for b in at.get("download_button")]
    at.selectbox(key=f"export_what_{ids[1]}").set_value("metrics").run()
    out = tmp_path / "m.csv"
    at.text_input(key=f"export_out_{ids[1]}_metrics").input(str(out)).run()
    at.button(key=f"export_go_{ids[1]}").click().run()
    assert out.is_file() and "reward" in out.read_text().splitlines()[0]
    at.run()  # the file now exists: Export waits for "replace it"
    assert at.button(key=f"export_go_{ids[1]}").disabled


def test_delete_of_a_running_run_is_refused(app_env):
    store, ids = app_env
    from llmrl_core.runs.store import make_owner

    store.assign_owner(ids[1], make_owner())  # owned by this live process, so the supervisor leaves it running
    store.set_status(ids[1], "running")
    at = _open("pages/runs/runs.py")
    assert any("stop it first" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == f"delete_{ids[1]}"]


def test_compare_overlays_runs_and_diffs_configs(app_env):
    store, ids = app_env
    at = _open("pages/runs/compare.py")
    assert at.multiselect(key="cmp_runs").value == [ids[1], ids[0]]
    assert at.get("plotly_chart")
    frames = [d.value for d in at.dataframe]
    diff = [f for f in frames if "learning_rate" in " ".join(map(str, f.index))]
    assert diff, frames  # only the differing field (learning_rate) is listed
    assert all("algorithm" not in " ".join(map(str, f.index)) for f in diff)
    at.radio(key="cmp_x").set_value("time").run()
    assert not at.exception


def test_compare_runs_of_different_kinds_gets_a_panel_each_and_no_cross_kind_diff(app_env):
    store, ids = app_env
    gym = store.create_run("gym", "cartpole", {"env_id": "CartPole-v1", "algo": "ppo"}, total_steps=4000)
    for step in range(1000, 4001, 1000):
        store.log_metrics(gym, step, {"charts/episodic_return": step / 10, "eval/mean_reward": step / 8})
    store.set_status(gym, "completed")
    at = _open("pages/runs/compare.py")  # the newest run (the gym one) alone, its metrics picked
    assert at.multiselect(key="cmp_metrics").value == ["charts/episodic_return", "eval/mean_reward"]
    at.multiselect(key="cmp_runs").set_value([ids[1], ids[0], gym]).run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # one panel per kind; the LM panel draws its own metrics (none of the picked ones)
    specs = [c.proto.spec for c in charts]
    assert '"environment steps"' in specs[1] and '"environment steps"' not in specs[0]
    assert '"reward"' in specs[0] and '"reward"' not in specs[1]
    assert any("its own main metrics" in c.value for c in at.caption)
    assert any("different kinds" in i.value for i in at.info)
    diff_tables = [d.value for d in at.dataframe if "learning_rate" in " ".join(map(str, d.value.index))]
    assert diff_tables and all("env_id" not in " ".join(map(str, d.index)) for d in diff_tables)


def test_before_after_page_without_checkpoints_says_so(app_env):
    at = _open("pages/runs/before_after.py")
    assert any("saved no checkpoint" in i.value for i in at.info)


def test_clone_opens_the_training_page_with_the_form_filled(app_env):
    store, ids = app_env
    at = _open("pages/runs/runs.py")
    at.selectbox(key="runs_pick").set_value(ids[1]).run()
    at.button(key=f"clone_{ids[1]}").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "LM RL"
    form = at.session_state["rl_config"]
    assert form["learning_rate"] == 3e-5 and form["name"].endswith("(copy)") and form["resume_from"] is None
    assert at.session_state["rl_view"] == "New run"


def test_clone_of_a_gym_run_selects_its_pair_and_values(app_env):
    store, _ = app_env
    from llmrl_core.gym.config import make_gym_config

    config = make_gym_config("CartPole-v1", "a2c", total_steps=1234, seed=7).to_dict()
    run_id = store.create_run("gym", "a2c run", config, total_steps=1234)
    store.set_status(run_id, "completed")
    at = _open("pages/runs/runs.py")
    at.selectbox(key="runs_pick").set_value(run_id).run()
    at.button(key=f"clone_{run_id}").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Gym"
    assert at.selectbox(key="gym_algo").value == "a2c"
    assert at.number_input(key="gym_CartPole-v1_a2c_total_steps").value == 1234
    assert at.number_input(key="gym_CartPole-v1_a2c_seed").value == 7


def test_before_after_scores_base_and_checkpoint_and_chats(app_env, tiny_model_dir):
    """A finished 2-step tiny run: typed prompts answered by base and checkpoint, scored, the CI shown; chat to both."""
    from llmrl_core.lm_rl.config import RLConfig
    from ui.state import get_run_manager

    store, _ = app_env
    cfg = RLConfig(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                   max_new_tokens=6, chat="raw", learning_rate=1e-2, prompt_set="sentence-starters", seed=0,
                   rewards=[{"type": "length", "target": 20, "unit": "chars", "falloff": 40}])
    run_id, status = get_run_manager().run_foreground("lm_rl", cfg.to_dict(), name="tiny", total_steps=2)
    assert status == "completed", store.get_run(run_id)["error"]
    at = _open("pages/runs/before_after.py")
    at.selectbox(key="ba_run").set_value(run_id).run()
    at.radio(key="ba_source").set_value("Typed prompts").run()
    at.text_area(key="ba_typed").input("The weather today\nMy favourite food").run()
    at.button(key="ba_go").click().run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "Base model, mean reward" in labels and any(label.startswith("Difference, 95% CI") for label in labels)
    table = [d.value for d in at.dataframe if "checkpoint" in d.value.columns][0]
    assert list(table["prompt"]) == ["The weather today", "My favourite food"]
    assert store.list_artifacts(run_id, kind="before_after").shape[0] == 1  # kept for the report
    at.text_area(key="ba_chat_prompt").input("Hello").run()
    at.button(key="ba_chat_go").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown if m.value in ("**Base model**", "**Checkpoint**")] == ["**Base model**", "**Checkpoint**"]
