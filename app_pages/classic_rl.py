"""Classic RL: train a Gymnasium agent (SB3 PPO, A2C, DQN, or the random baseline) and watch it learn.

Settings start from RL Zoo's tuned values and are validated before a run starts. The run is an
ordinary 'gym' job in the run manager; this page polls the store once a second for its curves
and its latest recorded evaluation episode, which replays in the browser from recorded states.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import streamlit as st

from llmrl_core.envs.config import (
    ALGOS,
    ENVS,
    PARAMS_CLASSES,
    GymConfig,
    compatible_algos,
    get_field_docs,
    make_gym_config,
)
from llmrl_core.envs.episodes import load_episode, play_agent_episode, play_random_episode
from llmrl_core.errors import InputError, WorkbenchError
from llmrl_core.runs import ACTIVE_STATUSES
from llmrl_core.viz_gym import make_fps_figure, make_losses_figure, make_return_figure, render_episode_player_html
from ui.run_views import run_error_ui
from ui.state import get_run_manager, get_store

POLL_SECONDS = 1.0
ALGO_LABELS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "random": "Random policy (baseline)"}
PLAYER_HEIGHT = 340
RUN_FIELDS = ("total_steps", "seed", "n_envs", "eval_freq", "eval_episodes", "stop_when_solved")


# ----------------------------------------------------------------------------- settings


def _widget_for(name: str, default: Any, key: str, help_text: str | None) -> Any:
    """One input for one setting, chosen by the default's type; no bounds, so validation speaks instead."""
    if isinstance(default, bool):
        return st.checkbox(name, value=default, key=key, help=help_text)
    if isinstance(default, int):
        return int(st.number_input(name, value=default, step=1, key=key, help=help_text))
    if isinstance(default, float):
        step = 10.0 ** (math.floor(math.log10(abs(default))) - 1) if default else 0.01  # 0.98 -> 0.01, 1e-3 -> 1e-4
        return float(st.number_input(name, value=default, step=step, format="%g", key=key, help=help_text))
    if name.endswith("schedule"):
        return st.selectbox(name, ["constant", "linear"], index=["constant", "linear"].index(default), key=key,
                            help=help_text)
    if name == "net_arch":
        return st.text_input(name, value=", ".join(str(w) for w in default), key=key, help=help_text)
    return st.text_input(name, value=str(default), key=key, help=help_text)


def settings_ui() -> None:
    """Environment, algorithm, budget and every hyperparameter; Train validates, then starts the run."""
    env_id = st.selectbox("Environment", list(ENVS), key="gym_env")
    st.caption(ENVS[env_id].blurb)
    algo = st.selectbox("Algorithm", list(ALGOS), format_func=ALGO_LABELS.get, key="gym_algo")
    if algo not in compatible_algos(env_id):
        try:
            make_gym_config(env_id, algo)
        except InputError as err:
            st.warning(str(err))
        st.button("Train", disabled=True, key="gym_train_disabled", help="This algorithm cannot act in this environment.")
        return
    defaults = make_gym_config(env_id, algo)
    prefix = f"gym_{env_id}_{algo}_"  # per pair, so switching pairs shows that pair's tuned values
    run_docs = get_field_docs(GymConfig)
    overrides: dict[str, Any] = {}
    c1, c2 = st.columns(2)
    overrides["total_steps"] = _widget_for("total_steps", defaults.total_steps, prefix + "total_steps", run_docs.get("total_steps"))
    overrides["seed"] = int(c1.number_input("seed", value=defaults.seed, step=1, key=prefix + "seed",
                                            help=run_docs.get("seed")))
    overrides["eval_freq"] = int(c2.number_input("eval_freq", value=defaults.eval_freq, step=100, key=prefix + "eval_freq",
                                                 help=run_docs.get("eval_freq")))
    if defaults.solved_return is not None:
        overrides["stop_when_solved"] = st.checkbox(
            f"Stop when solved (evaluation mean ≥ {defaults.solved_return:g})", value=False, key=prefix + "solved",
            help=run_docs.get("stop_when_solved"))
    with st.expander("Hyperparameters (RL Zoo's tuned settings)" if algo != "random" else "Settings"):
        overrides["n_envs"] = _widget_for("n_envs", defaults.n_envs, prefix + "n_envs", run_docs.get("n_envs"))
        overrides["eval_episodes"] = _widget_for("eval_episodes", defaults.eval_episodes, prefix + "eval_episodes",
                                                 run_docs.get("eval_episodes"))
        docs = get_field_docs(PARAMS_CLASSES[algo])
        for f in fields(PARAMS_CLASSES[algo]):
            overrides[f.name] = _widget_for(f.name, defaults.params[f.name], prefix + f.name, docs.get(f.name))
    if st.button("Train", type="primary", key="gym_train"):
        try:
            config = make_gym_config(env_id, algo, **overrides)
        except InputError as err:
            st.error(str(err))
            return
        run_id = get_run_manager().start("gym", config.to_dict(), name=f"{ALGO_LABELS[algo].split(' ')[0]} · {env_id}",
                                         total_steps=config.total_steps)
        st.session_state["gym_run_id"] = run_id
        st.session_state.pop("gym_pick", None)
        st.rerun()


# ----------------------------------------------------------------------------- the player


def episode_player_ui(episode: dict, title: str) -> None:
    """Replay an episode in the browser (st.iframe of a self-contained SVG player; same HTML, no restart)."""
    st.iframe(render_episode_player_html(episode, title=title), height=PLAYER_HEIGHT, alt=f"Episode player: {title}")


def _pick_episode_to_show(run_id: int, episodes: Any) -> Any:
    """The episode the player shows: the newest, but only once the one on screen has played through."""
    state = st.session_state.setdefault("gym_shown", {})
    shown = state.get(run_id)
    newest = episodes.iloc[-1]
    if shown is not None and shown["id"] in set(episodes["id"]):
        meta = shown["meta"]
        duration = meta.get("length", 0) / max(meta.get("fps", 30), 1) + 1.5
        if shown["id"] == newest["id"] or time.monotonic() - shown["since"] < duration:
            return episodes[episodes["id"] == shown["id"]].iloc[0]
    state[run_id] = {"id": newest["id"], "since": time.monotonic(), "meta": newest["meta"]}
    return newest


def recorded_episode_ui(run: dict) -> None:
    """The latest evaluation episode of a run (or one picked by step), replayed."""
    episodes = get_store().list_artifacts(run["id"], kind="episode")
    if episodes.empty:
        st.info("The first evaluation episode is recorded after eval_freq steps.")
        return
    options = ["latest"] + episodes["step"].tolist()[::-1]
    choice = st.selectbox("Episode", options, key=f"gym_ep_pick_{run['id']}",
                          format_func=lambda s: "latest (follows training)" if s == "latest" else f"after {s} steps")
    row = _pick_episode_to_show(run["id"], episodes) if choice == "latest" else episodes[episodes["step"] == choice].iloc[-1]
    try:
        episode = load_episode(row["path"]).to_dict()
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


def run_controls_ui(run: dict) -> None:
    """Stop / pause / resume for an active run; watch or keep training a finished one."""
    manager = get_run_manager()
    run_id, status = run["id"], run["status"]
    cols = st.columns(3)
    if status in ACTIVE_STATUSES:
        if cols[0].button("Stop", key=f"gym_stop_{run_id}", type="primary"):
            manager.stop(run_id)
        if status == "running" and cols[1].button("Pause", key=f"gym_pause_{run_id}"):
            manager.pause(run_id)
        if status == "paused" and cols[1].button("Resume", key=f"gym_resume_{run_id}"):
            manager.resume(run_id)
        return
    agents = get_store().list_artifacts(run_id, kind="agent")
    if agents.empty:
        return
    agent = agents.iloc[-1]
    config = run["config"]
    if cols[0].button("Watch the saved agent", key=f"gym_watch_{run_id}", help="Plays a new episode with the saved agent."):
        try:
            from llmrl_core.envs.job import load_agent

            model = load_agent(agent["path"], config["algo"])
            st.session_state["gym_agent_episode"] = play_agent_episode(model, config["env_id"],
                                                                       train_step=int(agent["step"])).to_dict()
        except WorkbenchError as err:
            st.error(str(err))
    if cols[1].button("Keep training", key=f"gym_continue_{run_id}",
                      help="A new run that starts from this run's saved agent."):
        new_config = {**config, "init_from": agent["path"]}
        new_id = manager.start("gym", new_config, name=f"{run['name']} (continued)", total_steps=config["total_steps"])
        st.session_state["gym_run_id"] = new_id
        st.session_state.pop("gym_pick", None)
        st.rerun()
    cols[2].caption(f"Agent saved: `{Path(agent['path']).name}` (SB3 zip)")
    watched = st.session_state.get("gym_agent_episode")
    if watched and watched["env_id"] == config["env_id"]:
        episode_player_ui(watched, f"Saved agent · return {watched['return']:.1f} over {watched['length']} steps")


def live_run_ui(run_id: int, was_live: bool = False) -> None:
    """Status, curves and the latest episode of one run; polls while it is active."""
    store = get_store()
    run = store.get_run(run_id)
    if run is None:
        st.warning(f"Run {run_id} no longer exists.")
        return
    config = run["config"]
    active = run["status"] in ACTIVE_STATUSES
    st.subheader(f"#{run['id']} · {run['name']}")
    total = run.get("total_steps")
    step = int(run.get("step") or 0)
    st.caption(f"{run['status']} · {ALGO_LABELS.get(config.get('algo'), config.get('algo'))} on {config.get('env_id')} · "
               f"seed {config.get('seed')}")
    if total:
        st.progress(min(step / total, 1.0), text=f"step {step} of {total}")
    run_error_ui(run)
    run_controls_ui(run)
    metrics = store.read_metrics_wide(run_id)
    last = lambda key: (metrics[key].dropna().iloc[-1] if key in metrics.columns and metrics[key].notna().any() else None)  # noqa: E731
    m1, m2, m3, m4 = st.columns(4)
    rew, ev, fps = last("rollout/ep_rew_mean"), last("eval/mean_reward"), last("time/fps")
    m1.metric("steps", f"{step}")
    m2.metric("episode return (mean of 100)", "–" if rew is None else f"{rew:.1f}")
    m3.metric("evaluation return", "–" if ev is None else f"{ev:.1f}")
    m4.metric("steps / s", "–" if fps is None else f"{fps:.0f}")
    solved = ENVS[config["env_id"]].solved_return if config.get("env_id") in ENVS else None
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(make_return_figure(metrics, solved), width="stretch", key=f"gym_ret_{run_id}")
    with right:
        recorded_episode_ui(run)
        random_contrast_ui(config["env_id"])
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(make_losses_figure(metrics), width="stretch", key=f"gym_loss_{run_id}")
    with right:
        st.plotly_chart(make_fps_figure(metrics), width="stretch", key=f"gym_fps_{run_id}")
    with st.expander("Config and summary"):
        st.code(json.dumps(config, indent=2), language="json")
        if run.get("summary"):
            st.json(run["summary"])
    if active:
        st.caption("Live: refreshing every second.")
    elif was_live:
        st.rerun()  # the run ended: a full rerun stops this fragment's polling


def pick_run_ui() -> int | None:
    """Choose which gym run to show: the one just started, else the newest."""
    runs = get_store().list_runs(kind="gym")
    if runs.empty:
        return None
    ids = runs["id"].tolist()
    wanted = st.session_state.get("gym_run_id", ids[0])
    names = runs.set_index("id")["name"].to_dict()
    status = runs.set_index("id")["status"].to_dict()
    run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else 0, key="gym_pick",
                          format_func=lambda i: f"#{i} {names[i]} · {status[i]}")
    st.session_state["gym_run_id"] = run_id
    return run_id


def main() -> None:
    st.title("Classic RL")
    st.caption("Train Stable-Baselines3 agents on Gymnasium tasks and watch them learn: curves, and the latest "
               "evaluation episode replayed. The same job runs headless with `python -m llmrl_core gym`.")
    settings_col, view_col = st.columns([1, 3])
    with settings_col:
        settings_ui()
    with view_col:
        run_id = pick_run_ui()
        if run_id is None:
            st.info("No Gymnasium run yet: pick an environment and an algorithm, then press Train. "
                    "PPO solves CartPole-v1 in about 12k steps, a few seconds on a CPU.")
            random_contrast_ui(st.session_state.get("gym_env", "CartPole-v1"))
            return
        run = get_store().get_run(run_id)
        live = run is not None and run["status"] in ACTIVE_STATUSES
        st.fragment(run_every=POLL_SECONDS if live else None)(live_run_ui)(run_id, live)


main()
