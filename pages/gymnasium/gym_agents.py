"""Gym: train a Gymnasium agent (SB3 PPO, A2C, DQN, or the random baseline) and watch it learn.

Settings start from RL Zoo's tuned values and are validated before a run starts. The run is an
ordinary 'gym' job in the run manager; this page watches it through the shared live-run view
(ui/live_run.py: redraws only when the run moved on) and replays its latest recorded evaluation
episode in the browser from recorded states.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from llmrl_core.gym.algorithms import GYM_ALGORITHMS, get_gym_algorithm
from llmrl_core.gym.config import ENVS, GymConfig, compatible_algos, make_gym_config
from llmrl_core.gym.episodes import load_episode, play_agent_episode, play_random_episode
from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.present.gym import (
    compute_player_height,
    make_fps_figure,
    make_losses_figure,
    make_return_figure,
    render_episode_player_html,
)
from llmrl_core.present.common import escape_markdown
from ui.clone import take_clone_request
from ui.config_widgets import config_field_ui, config_form_ui
from ui.episodes import pick_episode_to_show
from ui.live_run import LiveRun, live_run_ui, run_controls_ui, run_heading_ui, run_picker_ui, run_progress_ui, select_run
from ui.run_views import run_error_ui
from ui.sweep_form import sweep_form_ui
from ui.state import get_run_manager, get_store

ALGO_LABELS = {name: algorithm.label for name, algorithm in GYM_ALGORITHMS.items()}
PLAYER_HEIGHT = compute_player_height(240)
PICK_KEY, SELECTED_KEY = "gym_pick", "gym_run_id"


# ----------------------------------------------------------------------------- settings


def settings_ui() -> None:
    """Environment, algorithm, budget and every hyperparameter; Train validates, then starts the run."""
    env_id = st.selectbox("Environment", list(ENVS), key="gym_env")
    st.caption(ENVS[env_id].blurb)
    algo = st.selectbox("Algorithm", list(GYM_ALGORITHMS), format_func=ALGO_LABELS.get, key="gym_algo")
    if algo not in compatible_algos(env_id):
        try:
            make_gym_config(env_id, algo)
        except InputError as err:
            st.warning(str(err))
        st.button("Train", disabled=True, key="gym_train_disabled", help="This algorithm cannot act in this environment.")
        return
    algorithm = get_gym_algorithm(algo)
    prefix = f"gym_{env_id}_{algo}_"  # per pair, so switching pairs shows that pair's tuned values
    cloned = st.session_state.get("gym_cloned")
    defaults = (GymConfig.from_dict(cloned) if cloned and (cloned["env_id"], cloned["algo"]) == (env_id, algo)
                else make_gym_config(env_id, algo))
    overrides: dict[str, Any] = {}
    c1, c2 = st.columns(2)
    overrides["total_steps"] = config_field_ui(defaults, "total_steps", key=prefix + "total_steps")
    overrides["seed"] = config_field_ui(defaults, "seed", key=prefix + "seed", container=c1)
    overrides["eval_freq"] = config_field_ui(defaults, "eval_freq", key=prefix + "eval_freq", container=c2, step=100)
    if defaults.solved_return is not None:
        overrides["stop_when_solved"] = config_field_ui(
            defaults, "stop_when_solved", key=prefix + "solved", value=False,
            label=f"Stop when solved (evaluation mean ≥ {defaults.solved_return:g})")
    with st.expander("Hyperparameters (RL Zoo's tuned settings)" if algorithm.trains else "Settings"):
        overrides.update(config_form_ui(defaults, key_prefix=prefix, names=("n_envs", "vec_env", "eval_episodes")))
        overrides.update(config_form_ui(defaults.make_params(), key_prefix=prefix))
    if st.button("Train", type="primary", key="gym_train"):
        try:
            config = make_gym_config(env_id, algo, **overrides)
        except InputError as err:
            st.error(str(err))
            return
        run_id = get_run_manager().start("gym", config.to_dict(), name=f"{algorithm.short} · {env_id}",
                                         total_steps=config.total_steps)
        select_run(run_id, PICK_KEY, SELECTED_KEY)
        st.rerun()
    if algorithm.trains:
        sweep_form_ui("gym", lambda: make_gym_config(env_id, algo, **overrides).to_dict(), key="gym_sweep")


# ----------------------------------------------------------------------------- the player


@st.cache_data(show_spinner=False, max_entries=16)
def _render_player_html(episode_json: str, title: str) -> str:
    import json as _json

    return render_episode_player_html(_json.loads(episode_json), title=title, svg_height=240)


def episode_player_ui(episode: dict, title: str) -> None:
    """Replay an episode in the browser (st.iframe of a self-contained SVG player; same HTML, no restart)."""
    html = _render_player_html(json.dumps(episode), title)
    st.iframe(html, height=PLAYER_HEIGHT, alt=f"Episode player: {title}")


@st.cache_data(show_spinner=False, max_entries=16)
def _load_episode(path: str) -> dict:
    """A recorded episode (files are written once, so reading one per poll would only repeat work)."""
    return load_episode(path).to_dict()


def recorded_episode_ui(view: LiveRun) -> None:
    """The latest evaluation episode of a run (or one picked by step), replayed."""
    run = view.run
    episodes = view.memo("episodes", lambda: get_store().list_artifacts(run["id"], kind="episode"))
    if episodes.empty:
        st.info("The first evaluation episode is recorded after eval_freq steps.")
        return
    options = ["latest"] + episodes["step"].tolist()[::-1]
    choice = st.selectbox("Episode", options, key=f"gym_ep_pick_{run['id']}",
                          format_func=lambda s: "latest (follows training)" if s == "latest" else f"after {s} steps")
    row = pick_episode_to_show(run["id"], episodes, "gym_shown") if choice == "latest" else episodes[episodes["step"] == choice].iloc[-1]
    try:
        episode = _load_episode(str(row["path"]))
    except (OSError, ValueError) as err:
        st.warning(f"Cannot read the episode file {row['path']}: {err}")
        return
    title = f"Trained policy after {int(row['step'])} steps · return {episode['return']:.1f} over {episode['length']} steps"
    episode_player_ui(episode, title)


def random_contrast_ui(env_id: str) -> None:
    """A button that plays the random policy once, shown next to the trained agent."""
    if st.button("Play a random-policy episode", key="gym_random_btn", help="What an untrained agent does."):
        st.session_state["gym_random_episode"] = play_random_episode(env_id).to_dict()
    episode = st.session_state.get("gym_random_episode")
    if episode and episode["env_id"] == env_id:
        episode_player_ui(episode, f"Random policy · return {episode['return']:.1f} over {episode['length']} steps")


# ----------------------------------------------------------------------------- the live run


def finished_run_ui(run: dict) -> None:
    """Watch or keep training the saved agent of a finished run."""
    manager = get_run_manager()
    run_id = run["id"]
    agents = get_store().list_artifacts(run_id, kind="agent")
    if agents.empty:
        return
    agent = agents.iloc[-1]
    config = run["config"]
    cols = st.columns(3)
    if cols[0].button("Watch the saved agent", key=f"gym_watch_{run_id}", help="Plays a new episode with the saved agent."):
        try:
            from llmrl_core.gym.job import load_agent

            model = load_agent(agent["path"], config["algo"])
            st.session_state["gym_agent_episode"] = play_agent_episode(model, config["env_id"],
                                                                       train_step=int(agent["step"])).to_dict()
        except WorkbenchError as err:
            st.error(str(err))
    if cols[1].button("Keep training", key=f"gym_continue_{run_id}",
                      help="A new run that starts from this run's saved agent."):
        new_config = {**config, "init_from": agent["path"]}
        new_id = manager.start("gym", new_config, name=f"{run['name']} (continued)", total_steps=config["total_steps"])
        select_run(new_id, PICK_KEY, SELECTED_KEY)
        st.rerun()
    cols[2].caption(f"Agent saved: `{Path(agent['path']).name}` (SB3 zip)")
    watched = st.session_state.get("gym_agent_episode")
    if watched and watched["env_id"] == config["env_id"]:
        episode_player_ui(watched, f"Saved agent · return {watched['return']:.1f} over {watched['length']} steps")


def find_solved(run: dict, metrics: Any, solved_return: float | None) -> tuple[int | None, float | None]:
    """(step, seconds) at which the run's evaluation first reached the solved return: from the summary once the
    run has ended, from the eval/mean_reward curve while it runs (seconds unknown until the summary)."""
    summary = run.get("summary") or {}
    if summary.get("solved_at_step") is not None:
        return int(summary["solved_at_step"]), summary.get("solved_seconds")
    if solved_return is None or "eval/mean_reward" not in metrics.columns:
        return None, None
    reached = metrics.loc[metrics["eval/mean_reward"] >= solved_return, "step"]
    return (int(reached.iloc[0]), None) if not reached.empty else (None, None)


def gym_run_ui(view: LiveRun) -> None:
    """Status, solved tile, curves and the latest episode of one run (the live view's body)."""
    run, run_id, metrics = view.run, view.run_id, view.metrics
    config = run["config"]
    run_heading_ui(run, escape_markdown(f"{ALGO_LABELS.get(config.get('algo'), config.get('algo'))} on "
                                        f"{config.get('env_id')} · seed {config.get('seed')}"))  # config text, shown as is
    solved_return = ENVS[config["env_id"]].solved_return if config.get("env_id") in ENVS else None
    solved_step, solved_seconds = find_solved(run, metrics, solved_return)
    early = solved_step is not None and config.get("stop_when_solved") and run["status"] == "completed"
    run_progress_ui(run, " · stopped when solved, as asked" if early else "")
    run_error_ui(run)
    run_controls_ui(run, "gym")
    last = lambda key: (metrics[key].dropna().iloc[-1] if key in metrics.columns and metrics[key].notna().any() else None)  # noqa: E731
    m1, m2, m3, m4, m5 = st.columns(5)
    rew, ev, fps = last("rollout/ep_rew_mean"), last("eval/mean_reward"), last("time/fps")
    m1.metric("steps", f"{int(run.get('step') or 0):,}")
    m2.metric("episode return (mean of 100)", "–" if rew is None else f"{rew:.1f}")
    m3.metric("evaluation return", "–" if ev is None else f"{ev:.1f}")
    m4.metric("steps / s", "–" if fps is None else f"{fps:.0f}")
    if solved_return is not None:
        m5.metric("solved at", "–" if solved_step is None else f"{solved_step:,} steps",
                  help=f"The first evaluation whose mean return reached {solved_return:g}.")
    if solved_step is not None:
        took = "" if solved_seconds is None else f" in {solved_seconds:.1f} s"
        st.success(f"Solved at {solved_step:,} steps{took}: the evaluation mean return reached {solved_return:g}.",
                   icon=":material/flag:")
    if not view.active:
        finished_run_ui(run)
    plot = view.plot_metrics()
    left, right = st.columns([3, 2])
    with left:
        view.chart("return", lambda: make_return_figure(plot, solved_return))
    with right:
        recorded_episode_ui(view)
        random_contrast_ui(config["env_id"])
    left, right = st.columns([3, 2])
    with left:
        view.chart("losses", lambda: make_losses_figure(plot))
    with right:
        view.chart("fps", lambda: make_fps_figure(plot))
    with st.expander("Config and summary"):
        st.code(json.dumps(config, indent=2), language="json")
        if run.get("summary"):
            st.json(run["summary"])


def apply_clone(config: dict) -> None:
    """Fill the form from a run's config (the Runs page's Clone): its pair selected, its values in the inputs."""
    config = {**config, "init_from": None}  # a clone trains from scratch; "continue training" is its own action
    try:
        GymConfig.from_dict(config)
    except WorkbenchError as err:
        st.warning(f"That run's config no longer validates, so the form keeps its values: {escape_markdown(err)}")
        return
    st.session_state["gym_env"], st.session_state["gym_algo"] = config["env_id"], config["algo"]
    prefix = f"gym_{config['env_id']}_{config['algo']}_"
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]  # re-seeded from the clone when the inputs draw
    st.session_state["gym_cloned"] = config
    st.toast("The form holds a copy of that run's settings: press Train to start it.")


def main() -> None:
    st.title("Gym")
    cloned = take_clone_request("gym")
    if cloned is not None:
        apply_clone(cloned)
    st.caption("Train Stable-Baselines3 agents on Gymnasium tasks and watch them learn: curves, and the latest "
               "evaluation episode replayed. The same job runs headless with `python -m llmrl_core gym`.")
    settings_col, view_col = st.columns([1, 3])
    with settings_col:
        settings_ui()
    with view_col:
        run_id = run_picker_ui(get_store().list_runs(kind="gym"), PICK_KEY, SELECTED_KEY)
        if run_id is None:
            st.info("No Gymnasium run yet: pick an environment and an algorithm, then press Train. "
                    "PPO solves CartPole-v1 in about 12k steps, a few seconds on a CPU.")
            random_contrast_ui(st.session_state.get("gym_env", "CartPole-v1"))
            return
        live_run_ui(run_id, gym_run_ui, key="gym")


main()
