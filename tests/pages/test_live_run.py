"""The shared live-run view: a poll where the run did not move reads no metric rows and builds no figure."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def test_a_poll_without_change_reads_and_builds_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    import llmrl_core.present.gym as viz_gym
    from llmrl_core.gym.config import make_gym_config
    from llmrl_core.runs.store import RunStore
    from ui import state

    state.get_run_manager.clear()
    store = state.get_store()
    run_id = store.create_run("gym", "PPO · CartPole-v1", make_gym_config("CartPole-v1", "ppo").to_dict(), 5000)
    store.mark_started(run_id)  # owned by this process, so it stays 'running'
    for step in range(256, 2561, 256):
        store.log_metrics(run_id, step, {"rollout/ep_rew_mean": step / 100, "time/fps": 2000.0, "train/loss": 0.1})
    store.set_progress(run_id, 2560)

    builds: list[str] = []
    reads: list[int] = []
    real_figure, real_read = viz_gym.make_return_figure, RunStore.read_metrics_after

    def counted_figure(*args, **kwargs):
        builds.append("return")
        return real_figure(*args, **kwargs)

    def counted_read(self, rid, after_rowid=0):
        reads.append(after_rowid)
        return real_read(self, rid, after_rowid)

    monkeypatch.setattr(viz_gym, "make_return_figure", counted_figure)
    monkeypatch.setattr(RunStore, "read_metrics_after", counted_read)
    at = AppTest.from_file(str(ROOT / "pages" / "gymnasium" / "gym_agents.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert (len(builds), reads) == (1, [0])  # the first draw reads every row and builds the figure
    assert len(at.get("plotly_chart")) == 3
    assert any("Live" in c.value for c in at.caption)

    at.run()  # a poll: nothing moved
    assert (len(builds), len(reads)) == (1, 1)  # no metric read, no figure built...
    assert len(at.get("plotly_chart")) == 3  # ...and the charts are still drawn (from the cached figures)

    last_row = store.read_run_heartbeat(run_id).last_metric_row
    store.log_metrics(run_id, 2816, {"rollout/ep_rew_mean": 30.0})
    store.set_progress(run_id, 2816)
    at.run()  # the run moved: only the new row is read, the figure is built again
    assert reads[-1] == last_row and len(builds) == 2
    store.set_status(run_id, "stopped")
