"""Sweeps (llmrl_core/runs/sweep_spec.py, runs/sweeps.py): bad specs refused with one line and nothing queued,
grid/random/TPE trial sets, seeds, the best set's CI over seeds, Optuna's median pruner on a synthetic metric,
cancel, the supervisor finishing a dashboard sweep, and the CLI end to end."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from llmrl_core.core.errors import InputError
from llmrl_core.gym.config import make_gym_config
from llmrl_core.runs import queue
from llmrl_core.runs import sweeps as sw
from llmrl_core.runs.sweep_spec import SweepParam, SweepSpec, build_spec, make_base_config, parse_seeds
from tests.support.cli import run_cli

METRIC = "charts/episodic_return"


@pytest.fixture()
def base() -> dict:
    return make_gym_config("CartPole-v1", "ppo", total_steps=1000).to_dict()


def _counts(store) -> tuple[int, int]:
    return (store.fetch_rows("SELECT COUNT(*) FROM runs")[0][0], store.fetch_rows("SELECT COUNT(*) FROM sweeps")[0][0])


def _take(store, run_id: int) -> None:
    """Take a queued run out of the queue as a starting worker would (the test then plays the run by hand)."""
    with store.write_transaction() as conn:
        conn.execute("UPDATE runs SET queue_pos=NULL WHERE id=?", (run_id,))


def _finish(store, run_id: int, values: list[float], total: int = 1000) -> None:
    """Run a queued run by hand: its main metric logged evenly over its budget, then completed."""
    _take(store, run_id)
    store.mark_started(run_id)
    for i, v in enumerate(values, start=1):
        store.log_metrics(run_id, int(total * i / len(values)), {METRIC: v})
    store.set_status(run_id, "completed")


# ---------------------------------------------------------------------- the spec


@pytest.mark.parametrize("texts, kwargs, message", [
    ({"lerning_rate": "1e-3"}, {}, "Unknown field 'lerning_rate' for a gym sweep (did you mean 'learning_rate'?)"),
    ({"seed": "1,2"}, {}, "seeds are their own dimension"),
    ({}, {}, "Pick at least one field"),
    ({"learning_rate": "1e-3", "n_steps": "32", "gamma": "0.9", "gae_lambda": "0.9"}, {}, "at most 3 fields"),
    ({"learning_rate": ""}, {}, "it is empty"),
    ({"learning_rate": "1e-3,,3e-4"}, {}, "an empty value"),
    ({"learning_rate": "fast"}, {}, "learning_rate must be a number"),
    ({"learning_rate": "1e-2:1e-4"}, {"method": "random"}, "the range 0.01:0.0001 is empty"),
    ({"learning_rate": "1e-3:1e-3"}, {"method": "tpe"}, "is empty"),
    ({"learning_rate": "0:1e-2:log"}, {"method": "tpe"}, "a log range needs a low end above 0"),
    ({"learning_rate": "1e-4:1e-2"}, {}, "a grid needs values"),
    ({"learning_rate": "1e-4:1e-2:lin"}, {"method": "random"}, "a range is low:high or low:high:log"),
    ({"n_steps": "0, 32"}, {}, "The trial n_steps=0 is not a valid config: n_steps must be between 2"),
    ({"learning_rate": "1e-4:1e-2"}, {"method": "random", "trials": 0}, "number of trials must be a whole number"),
    ({"learning_rate": ",".join(f"{i}e-4" for i in range(1, 9)), "n_steps": "32,64,128,256"}, {"seeds": "0,1,2"},
     "This sweep would queue 96 runs (over 64); confirm"),
    ({"learning_rate": "1e-3"}, {"seeds": "a"}, "Seeds are whole numbers"),
    ({"learning_rate": "1e-3"}, {"method": "bayes"}, "Unknown sweep method 'bayes'"),
])
def test_bad_specs_get_one_line_and_queue_nothing(store, base, texts, kwargs, message) -> None:
    with pytest.raises(InputError) as err:
        spec = build_spec("gym", base, texts, **kwargs)
        sw.create_sweep(store, spec, base)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert _counts(store) == (0, 0)


def test_a_large_grid_queues_once_confirmed(store, base) -> None:
    texts = {"learning_rate": ",".join(f"{i}e-4" for i in range(1, 9)), "n_steps": "32,64,128,256"}
    spec = build_spec("gym", base, texts, seeds="0-2", confirmed=True)
    assert spec.n_runs == 96
    sw.create_sweep(store, spec, base)
    assert _counts(store) == (96, 1)


def test_seeds_parse_as_lists_and_spans() -> None:
    assert parse_seeds("0, 1, 2") == (0, 1, 2) and parse_seeds("3-5") == (3, 4, 5) and parse_seeds("1,1") == (1,)
    with pytest.raises(InputError, match="At most 16 seeds"):
        parse_seeds("0-20")


def test_a_grid_queues_every_combination_and_seed_in_order(store, base) -> None:
    spec = build_spec("gym", base, {"learning_rate": "1e-3, 3e-4", "n_steps": "32, 64"}, seeds="0,1", name="lr x n")
    sweep_id = sw.create_sweep(store, spec, base)
    trials = sw.read_trials(store, sweep_id)
    assert len(trials) == 8 and trials["status"].eq("queued").all()
    assert trials[["trial", "seed", "learning_rate", "n_steps"]].values.tolist() == [
        [1, 0, 1e-3, 32], [1, 1, 1e-3, 32], [2, 0, 1e-3, 64], [2, 1, 1e-3, 64],
        [3, 0, 3e-4, 32], [3, 1, 3e-4, 32], [4, 0, 3e-4, 64], [4, 1, 3e-4, 64]]
    assert queue.list_queue(store)["id"].tolist() == trials["run_id"].tolist()  # queued in trial order
    run = store.get_run(int(trials["run_id"].iloc[3]))
    assert run["config"]["params"]["learning_rate"] == 1e-3 and run["config"]["params"]["n_steps"] == 64  # gym's params
    assert run["config"]["seed"] == 1 and run["total_steps"] == 1000
    assert run["name"] == "lr x n · t2 learning_rate=0.001 n_steps=64 · seed 1"
    listed = sw.list_sweeps(store).iloc[0]
    assert listed["runs"] == 8 and listed["status"] == "running" and "2 seeds: 8 runs" in listed["description"]


def test_random_sets_stay_in_their_ranges(store, base) -> None:
    spec = build_spec("gym", base, {"learning_rate": "1e-5:1e-2:log", "n_steps": "32:128", "gamma": "0.9, 0.99"},
                      method="random", trials=12)
    trials = sw.read_trials(store, sw.create_sweep(store, spec, base))
    assert len(trials) == 12
    assert trials["learning_rate"].between(1e-5, 1e-2).all() and trials["n_steps"].between(32, 128).all()
    assert set(trials["gamma"]) <= {0.9, 0.99} and trials["n_steps"].map(lambda v: float(v).is_integer()).all()
    assert trials["learning_rate"].nunique() == 12  # drawn, not repeated


def test_tpe_asks_for_more_as_trials_finish_and_the_sweep_completes(store, base) -> None:
    spec = build_spec("gym", base, {"learning_rate": "1e-5:1e-2:log"}, method="tpe", trials=6)
    sweep_id = sw.create_sweep(store, spec, base)
    assert sw.count_tpe_startup(spec) == 2
    assert len(sw.read_trials(store, sweep_id)) == 2  # the random start-up sets only
    for step in range(4):
        trials = sw.read_trials(store, sweep_id)
        for run_id, lr, status in trials[["run_id", "learning_rate", "status"]].values:
            if status == "queued":
                _finish(store, int(run_id), [100 * math.log10(lr / 1e-5)] * 5)  # larger rates score higher
        sw.advance_sweeps(store)
        assert len(sw.read_trials(store, sweep_id)["trial"].unique()) == min(6, 3 + step)
    for run_id, lr, status in sw.read_trials(store, sweep_id)[["run_id", "learning_rate", "status"]].values:
        if status == "queued":
            _finish(store, int(run_id), [100 * math.log10(lr / 1e-5)] * 5)
    sw.advance_sweeps(store)
    assert sw.get_sweep(store, sweep_id)["status"] == "completed"
    trials = sw.read_trials(store, sweep_id)
    assert len(trials) == 6 and trials["status"].eq("completed").all()
    assert sw.describe_best(sw.read_sweep_view(store, sweep_id)).startswith("best: trial")


def test_the_best_set_gets_a_t_interval_over_seeds(store, base) -> None:
    spec = build_spec("gym", base, {"learning_rate": "1e-3, 3e-4"}, seeds="0,1,2")
    sweep_id = sw.create_sweep(store, spec, base)
    scores = {1: [100.0, 120.0, 140.0], 2: [50.0, 60.0, 70.0]}
    trials = sw.read_trials(store, sweep_id)
    for (trial, seed_index), run_id in zip([(t, i) for t in (1, 2) for i in range(3)], trials["run_id"]):
        _finish(store, int(run_id), [scores[trial][seed_index]] * 5)
    sets = sw.summarize_sets(sw.read_trials(store, sweep_id), ["learning_rate"])
    best = sets[sets["is_best"]].iloc[0]
    half = stats.t.ppf(0.975, 2) * 20.0 / math.sqrt(3)  # sd of 100, 120, 140 is 20: hand-computed
    assert best["learning_rate"] == 1e-3 and best["mean"] == pytest.approx(120.0)
    assert (best["low"], best["high"]) == (pytest.approx(120 - half), pytest.approx(120 + half))
    assert half == pytest.approx(49.683, abs=1e-3)


def test_the_median_pruner_stops_a_clearly_bad_trial(store, base) -> None:
    spec = build_spec("gym", base, {"learning_rate": "1e-3,2e-3,3e-3,4e-4,5e-4,6e-4"}, prune=True)
    sweep_id = sw.create_sweep(store, spec, base)
    ids = [int(r) for r in sw.read_trials(store, sweep_id)["run_id"]]
    for run_id, level in zip(ids[:3], (100.0, 110.0, 120.0)):  # three finished trials: the median is 110
        _finish(store, run_id, [level * i / 10 for i in range(1, 11)])
    bad, good, early = ids[3], ids[4], ids[5]
    for run_id, values in ((bad, [1.0, 2.0, 3.0, 4.0, 5.0]), (good, [20.0, 40.0, 60.0, 80.0, 100.0]), (early, [0.0, 0.0])):
        _take(store, run_id)
        store.mark_started(run_id)
        for i, v in enumerate(values, start=1):
            store.log_metrics(run_id, 100 * i, {sw.get_main_metric("gym")[0]: v})
    assert sw.compute_tenths(sw.read_metric_curve(store, bad, METRIC), 1000) == {1: 1.0, 2: 1.5, 3: 2.0, 4: 2.5, 5: 3.0}
    assert sw.prune_running(store, sweep_id) == [bad]  # early is within the warm-up (2 tenths of 3)
    assert store.read_control(bad) == "stop" and store.read_control(good) is None and store.read_control(early) is None
    assert "Pruned by the sweep" in store.read_logs(bad)["message"].iloc[-1]
    store.set_status(bad, "stopped")
    assert sw.read_trials(store, sweep_id).set_index("run_id").loc[bad, "status"] == "pruned"
    assert sw.prune_running(store, sweep_id) == []  # pruned once


def test_no_pruning_before_enough_trials_have_finished(store, base) -> None:
    spec = build_spec("gym", base, {"learning_rate": "1e-3,2e-3,3e-3"}, prune=True)
    sweep_id = sw.create_sweep(store, spec, base)
    ids = [int(r) for r in sw.read_trials(store, sweep_id)["run_id"]]
    _finish(store, ids[0], [100.0] * 10)
    _take(store, ids[1])
    store.mark_started(ids[1])
    for i in range(1, 8):
        store.log_metrics(ids[1], 100 * i, {METRIC: 0.0})
    assert sw.prune_running(store, sweep_id) == []


def test_cancel_takes_waiting_trials_out_and_stops_the_sweep(store, base) -> None:
    sweep_id = sw.create_sweep(store, build_spec("gym", base, {"learning_rate": "1e-3, 3e-4"}), base)
    first, second = (int(r) for r in sw.read_trials(store, sweep_id)["run_id"])
    assert queue.claim_next(store, "x") == first  # the first one is being started
    store.mark_started(first)
    assert sw.cancel_sweep(store, sweep_id) == (1, 1)
    assert store.read_control(first) == "stop" and store.get_run(second)["status"] == "stopped"
    assert sw.get_sweep(store, sweep_id)["status"] == "stopped" and queue.list_queue(store).empty


def test_the_spec_round_trips_and_describes_itself() -> None:
    spec = SweepSpec("gym", (SweepParam("learning_rate", low=1e-5, high=1e-3, log=True), SweepParam("n_steps", (32, 64))),
                     method="tpe", trials=10, seeds=(0, 1))
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.describe() == ("10 TPE trials over learning_rate in 1e-05..0.001 (log) × n_steps ∈ {32, 64}, "
                               "2 seeds: 20 runs")


def test_a_base_config_comes_from_the_kind_and_its_presets() -> None:
    gym = make_base_config("gym", {"learning_rate": 1e-3})
    assert gym["params"]["learning_rate"] == 1e-3 and gym["params"]["n_steps"] == 32  # RL Zoo's CartPole values
    lm = make_base_config("lm_rl", {"steps": 3}, preset="make-it-positive")
    assert lm["steps"] == 3 and lm["loss_type"] == "dapo"
    with pytest.raises(InputError, match="Unknown preset"):
        make_base_config("lm_rl", preset="make-it-negative")


# ---------------------------------------------------------------------- running: the supervisor and the CLI


def test_the_supervisor_runs_a_dashboard_sweep_to_its_end(tmp_path, monkeypatch) -> None:
    from llmrl_core.runs import RunManager, RunStore

    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    store = RunStore(tmp_path / "home" / "runs.sqlite")
    queue.set_max_concurrent(store, 1)
    base = make_gym_config("CartPole-v1", "ppo", total_steps=256, eval_freq=256, eval_episodes=1).to_dict()
    sweep_id = sw.create_sweep(store, build_spec("gym", base, {"learning_rate": "1e-3, 3e-4"}), base)
    with RunManager(store, supervise_every_s=0.2) as manager:
        manager.start_waiting()
        import time

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and sw.get_sweep(store, sweep_id)["status"] == "running":
            time.sleep(0.3)
    trials = sw.read_trials(store, sweep_id)
    assert sw.get_sweep(store, sweep_id)["status"] == "completed", trials
    assert trials["status"].eq("completed").all() and trials["value"].notna().all()
    first, second = (store.get_run(int(r)) for r in trials["run_id"])
    assert second["started"] >= first["ended"]  # one after the other


def test_the_cli_runs_a_sweep_and_shows_and_reports_it(tmp_path) -> None:
    home = tmp_path / "home"
    done = run_cli("sweep", "start", "gym", "--set", "total_steps=256", "--set", "eval_freq=256", "--set",
                   "eval_episodes=1", "--param", "learning_rate=1e-3,3e-4", "--seeds", "0,1", "--name", "cli <b>",
                   home=home)
    assert done.returncode == 0, done.stderr
    assert "Sweep 1: grid over learning_rate ∈ {0.001, 0.0003}, 2 seeds: 4 runs." in done.stdout
    assert "Parameter sets over seeds:" in done.stdout and "best: trial" in done.stdout
    shown = run_cli("sweep", "show", "1", "--json", home=home)
    data = json.loads(shown.stdout)
    assert data["status"] == "completed" and len(data["trials"]) == 4 and len(data["sets"]) == 2
    assert all(t["status"] == "completed" for t in data["trials"])
    listed = run_cli("sweep", "list", home=home)
    assert "completed" in listed.stdout and "4/4 runs ended" in listed.stdout
    report = run_cli("sweep", "report", "1", "--out", str(tmp_path / "s.html"), home=home)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "s.html").read_text()
    assert "Sweep #1: cli &lt;b&gt;" in page and "<b>" not in page.split("</head>")[1] and "parcoords" in page
    bad = run_cli("sweep", "start", "gym", "--param", "lerning_rate=1e-3", home=home)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "did you mean 'learning_rate'" in bad.stderr
    assert run_cli("sweep", "show", "9", home=home).returncode == 2
