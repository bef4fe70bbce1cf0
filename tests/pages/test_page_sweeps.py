"""AppTest of sweeps: the form under Train (Gym, Agent, LM RL) queues a checked sweep or names the problem and queues
nothing; the Sweeps page shows the trials, the best set over seeds, the plot, and Compare the best 3 / Report / Cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from llmrl_core.gym.config import make_gym_config
from llmrl_core.runs import queue
from llmrl_core.runs import sweeps as sw
from llmrl_core.runs.sweep_spec import build_spec

ROOT = Path(__file__).resolve().parents[2]
METRIC = "charts/episodic_return"


@pytest.fixture()
def home(monkeypatch, tmp_path):
    """A fresh home with a manager over it; the limit at 1, so queued trials wait (no worker starts in a page test
    while one run holds the slot)."""
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    from ui import state

    state.get_run_manager.clear()
    store = state.get_store()
    queue.set_max_concurrent(store, 1)
    busy = store.create_run("demo", "busy", {"steps": 5})  # holds the only slot: nothing starts
    store.mark_started(busy)
    yield store
    store.set_status(busy, "stopped")
    for run_id in queue.list_queue(store)["id"]:
        queue.cancel(store, int(run_id))
    state.get_run_manager.clear()


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / path), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _fill_sweep(at: AppTest, key: str, values: dict[str, str], method: str = "grid", seeds: str = "0") -> None:
    at.multiselect(key=f"{key}_fields").set_value(list(values)).run()
    at.radio(key=f"{key}_method").set_value(method).run()
    for name, text in values.items():
        at.text_input(key=f"{key}_value_{name}").set_value(text).run()
    at.text_input(key=f"{key}_seeds").set_value(seeds).run()


def _errors(at: AppTest) -> str:
    return " ".join(e.value.replace("\\", "") for e in at.error)


def test_the_gym_form_queues_a_grid_sweep_with_the_forms_settings(home) -> None:
    at = _page("gymnasium/gym_agents.py")
    at.number_input(key="gym_CartPole-v1_ppo_total_steps").set_value(2048).run()
    _fill_sweep(at, "gym_sweep", {"learning_rate": "1e-3, 3e-4", "n_steps": "32, 64"}, seeds="0, 1")
    assert any("8 runs to queue." in c.value for c in at.caption)
    at.button(key="gym_sweep_go").click().run()
    assert not at.exception and not at.error
    assert "Sweep #1 queued: grid over" in at.success[0].value.replace("\\", "")
    trials = sw.read_trials(home, 1)
    assert len(trials) == 8 and trials["total_steps"].eq(2048).all()
    assert home.get_run(int(trials["run_id"].iloc[0]))["config"]["params"]["n_steps"] == 32


@pytest.mark.parametrize("values, method, seeds, message", [
    ({"learning_rate": "1e-2:1e-4"}, "random", "0", "the range 0.01:0.0001 is empty"),
    ({"learning_rate": "1e-4:1e-2"}, "grid", "0", "a grid needs values"),
    ({"learning_rate": "fast"}, "grid", "0", "learning_rate must be a number"),
    ({"learning_rate": "1e-3"}, "grid", "x", "Seeds are whole numbers"),
    ({"learning_rate": ",".join(f"{i}e-4" for i in range(1, 10)), "n_steps": "32,64,128,256"}, "grid", "0,1",
     "would queue 72 runs (over 64); confirm"),
])
def test_a_bad_sweep_is_named_in_one_line_and_queues_nothing(home, values, method, seeds, message) -> None:
    at = _page("gymnasium/gym_agents.py")
    _fill_sweep(at, "gym_sweep", values, method=method, seeds=seeds)
    at.button(key="gym_sweep_go").click().run()
    assert not at.exception
    assert message in _errors(at)
    assert sw.list_sweeps(home).empty and queue.list_queue(home).empty


def test_a_large_grid_needs_the_confirmation_box(home) -> None:
    at = _page("gymnasium/gym_agents.py")
    _fill_sweep(at, "gym_sweep", {"learning_rate": ",".join(f"{i}e-4" for i in range(1, 10)),
                                  "n_steps": "32,64,128,256"}, seeds="0,1")
    at.checkbox(key="gym_sweep_confirm").check().run()
    at.button(key="gym_sweep_go").click().run()
    assert not at.error and len(sw.read_trials(home, 1)) == 72


def test_the_agent_and_lm_pages_queue_sweeps_of_their_kinds(home, page_env) -> None:
    at = _page("gymnasium/agent.py")
    _fill_sweep(at, "agent_sweep", {"learning_rate": "1e-3, 3e-4"})
    at.button(key="agent_sweep_go").click().run()
    assert not at.exception and not at.error, _errors(at)
    lm = _page("language_models/lm_rl.py")
    _fill_sweep(lm, "rl_sweep", {"learning_rate": "1e-5, 5e-5", "num_generations": "2, 4"})
    lm.button(key="rl_sweep_go").click().run()
    assert not lm.exception and not lm.error, _errors(lm)
    kinds = sw.list_sweeps(home).set_index("id")["kind"].to_dict()
    assert kinds == {1: "agent", 2: "lm_rl"}
    lm_trials = sw.read_trials(home, 2)
    assert lm_trials[["learning_rate", "num_generations"]].values.tolist() == [[1e-5, 2], [1e-5, 4], [5e-5, 2], [5e-5, 4]]


# ---------------------------------------------------------------------- the Sweeps page


def _finished_sweep(store) -> int:
    """A grid of 4 sets x 2 seeds whose runs completed with known results: set 3 is best (mean 300)."""
    base = make_gym_config("CartPole-v1", "ppo", total_steps=1000).to_dict()
    spec = build_spec("gym", base, {"learning_rate": "1e-3, 3e-4", "n_steps": "32, 64"}, seeds="0, 1",
                      name="<i>lr</i> sweep")
    sweep_id = sw.create_sweep(store, spec, base)
    results = {1: (100, 120), 2: (200, 180), 3: (310, 290), 4: (50, 70)}
    for run_id, trial, seed in sw.read_trials(store, sweep_id)[["run_id", "trial", "seed"]].values:
        with store.write_transaction() as conn:
            conn.execute("UPDATE runs SET queue_pos=NULL WHERE id=?", (int(run_id),))
        store.mark_started(int(run_id))
        for step in range(100, 1001, 100):
            store.log_metrics(int(run_id), step, {METRIC: float(results[int(trial)][int(seed)])})
        store.set_status(int(run_id), "completed")
    sw.advance_sweeps(store)
    return sweep_id


def _sweeps_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/runs/sweeps.py").run()
    assert not at.exception, at.exception
    return at


def test_the_sweeps_page_says_how_to_start_one_when_there_is_none(home) -> None:
    at = _sweeps_page()
    assert "No sweep yet" in at.info[0].value


def test_the_sweeps_page_shows_trials_the_best_set_and_opens_compare(home) -> None:
    sweep_id = _finished_sweep(home)
    at = _sweeps_page()
    shown = " ".join(m.value.replace("\\", "") for m in at.markdown)
    assert "best: trial 3, learning_rate=0.0003 n_steps=32 · charts/episodic_return 300 (95% CI" in shown
    trials, sets = at.dataframe[1].value, at.dataframe[0].value
    assert len(trials) == 8 and trials["best"].tolist().count("★") == 2
    assert sets.loc[sets["best"] == "★", "mean"].tolist() == ["300"] and sets["seeds done"].eq("2/2").all()
    assert at.selectbox(key="sweep_pick").options[0].startswith("#1 <i>lr</i> sweep · gym · completed")  # plain text
    at.button(key="sweep_report").click().run()
    assert not at.exception
    report = Path(at.session_state["sweep_report_path"][1]).read_text()
    assert "&lt;i&gt;lr&lt;/i&gt; sweep" in report and "<i>lr</i>" not in report
    at.button(key="sweep_compare").click().run()
    assert not at.exception, at.exception
    best = sw.pick_best_runs(home, sweep_id, 3)
    assert len(best) == 3 and at.multiselect(key="cmp_runs").value == best


def test_cancel_on_the_sweeps_page_stops_a_running_sweep(home) -> None:
    base = make_gym_config("CartPole-v1", "ppo", total_steps=1000).to_dict()
    sweep_id = sw.create_sweep(home, build_spec("gym", base, {"learning_rate": "1e-3, 3e-4"}), base)
    at = _sweeps_page()
    assert any("running · 0 of 2 runs ended" in str(p.proto.text) for p in at.get("progress"))
    at.button(key="sweep_cancel").click().run()
    assert not at.exception
    assert sw.get_sweep(home, sweep_id)["status"] == "stopped" and queue.list_queue(home).empty
