"""report_to: a tiny run's metrics read back with TensorBoard's and MLflow's own readers; bad names; a failing tracker."""

from __future__ import annotations

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.runs import RunManager
from llmrl_core.runs.trackers import Trackers, check_report_to, check_trackers_ready, get_mlflow_uri, get_tracker_home


def read_tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a TensorBoard run folder, through TensorBoard's EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_demo_run_writes_tensorboard_and_mlflow(store, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))  # a trackers folder of its own
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id, status = RunManager(store).run_foreground(
        "demo", {"steps": 3, "delay": 0, "report_to": ["tensorboard", "mlflow"]}, name="tracked")
    assert status == "completed"
    stored = store.read_metrics_wide(run_id).set_index("step")

    tb = read_tensorboard_scalars(get_tracker_home() / "tensorboard" / f"run-{run_id:05d}")
    assert set(tb) == {"reward", "reward_std", "step_time"}
    assert [step for step, _ in tb["reward"]] == [1, 2, 3]
    for step, value in tb["reward"]:  # float32 in the event file
        assert value == pytest.approx(stored.loc[step, "reward"], rel=1e-6)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=get_mlflow_uri(get_tracker_home()))
    experiment = client.get_experiment_by_name("llmrl-workbench")
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`llmrl.run_id` = '{run_id}'")
    assert run.info.status == "FINISHED" and run.info.run_name == f"run-{run_id:05d}"
    assert run.data.params["steps"] == "3" and run.data.tags["llmrl.name"] == "tracked"
    history = client.get_metric_history(run.info.run_id, "reward")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (step, stored.loc[step, "reward"]) for step in (1, 2, 3)]
    assert "Reporting metrics to tensorboard, mlflow." in store.read_logs(run_id)["message"].tolist()


def test_unknown_tracker_gets_did_you_mean():
    with pytest.raises(InputError, match=r"Unknown tracker 'tensorbord'.*did you mean 'tensorboard'"):
        check_report_to(["tensorbord"])
    with pytest.raises(InputError, match="list of tracker names"):
        check_report_to(42)
    assert check_report_to(None) == [] and check_report_to("none") == [] and check_report_to([]) == []
    assert check_report_to(["TensorBoard", "mlflow", "tensorboard"]) == ["tensorboard", "mlflow"]
    assert check_report_to("tensorboard,mlflow") == ["tensorboard", "mlflow"]


def test_unknown_tracker_fails_the_run_at_its_first_step(store, workbench_home):
    run_id, status = RunManager(store).run_foreground("demo", {"steps": 3, "delay": 0, "report_to": ["mlfow"]})
    assert status == "failed"
    assert "did you mean 'mlflow'" in store.get_run(run_id)["error"]
    assert store.get_run(run_id)["step"] == 0


def test_trackers_that_need_a_network_fail_fast(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(InputError, match=r"'wandb'.*not installed.*pip install wandb"):
            check_trackers_ready(["wandb"])
    else:  # installed: without WANDB_MODE=offline it must reach its server, which we point nowhere
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
        with pytest.raises(InputError, match="WANDB_MODE=offline"):
            check_trackers_ready(["wandb"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(InputError, match="does not answer"):
        check_trackers_ready(["mlflow"])


class _Recorder:
    name = "recorder"

    def __init__(self):
        self.steps: list[int] = []
        self.closed = ""

    def log(self, step, metrics):
        self.steps.append(step)

    def close(self, status):
        self.closed = status


class _Breaks(_Recorder):
    name = "breaks"

    def log(self, step, metrics):
        if step >= 2:
            raise ConnectionError("server went away")


def test_a_tracker_that_fails_mid_run_is_dropped_with_one_warning(store, workbench_home, monkeypatch):
    import llmrl_core.runs.trackers as trackers_module

    recorder = _Recorder()

    def fake_open(names, run_name, config, logdir, warn=None, tags=None):
        return Trackers([_Breaks(), recorder], warn)

    monkeypatch.setattr(trackers_module, "open_trackers", fake_open)
    run_id, status = RunManager(store).run_foreground("demo", {"steps": 4, "delay": 0, "report_to": ["tensorboard"]})
    assert status == "completed"
    assert recorder.steps == [1, 2, 3, 4] and recorder.closed == "completed"  # the other tracker went on
    logs = store.read_logs(run_id)
    warnings = logs[logs["level"] == "warning"]["message"].tolist()
    assert len(warnings) == 1 and "'breaks' failed at step 2" in warnings[0] and "server went away" in warnings[0]
    assert len(store.read_metrics_wide(run_id)) == 4


def test_non_finite_and_non_numeric_values_are_not_sent():
    recorder = _Recorder()
    seen = {}
    recorder.log = lambda step, metrics: seen.update(metrics)
    Trackers([recorder], print).log(1, {"a": 1, "b": float("nan"), "c": "text", "d": None})
    assert seen == {"a": 1.0}
