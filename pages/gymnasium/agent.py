"""Agent: the language model itself plays a Gymnasium environment in words and learns from the reward.

Pick the model, the environment, the prompt template (with a live preview of the prompt for a
real state and the tokenizer's checks), the algorithm and the budget; the run is an ordinary
'agent' job in a worker process. The live view (ui/live_run.py) shows the episode return against
the random policy's and a Stable-Baselines3 agent's (from a completed Gym run on the same
environment), the zero-shot and trained evaluations with their difference, and replays the
latest episode with the model's action probabilities at each step beneath the scene.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import streamlit as st

from llmrl_core.agent.config import AGENT_PRESETS, ALGOS, NORMALISATIONS, AgentConfig
from llmrl_core.agent.job import find_gym_baseline
from llmrl_core.agent.text_env import ADAPTERS, get_adapter, make_env, render_prompt
from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.gym.config import ENVS
from llmrl_core.present.agent import (
    compute_agent_player_height,
    make_agent_diagnostics_figure,
    make_agent_losses_figure,
    make_agent_return_figure,
    render_agent_player_html,
)
from llmrl_core.present.common import escape_markdown
from ui.episodes import pick_episode_to_show
from ui.live_run import LiveRun, live_run_ui, run_controls_ui, run_heading_ui, run_picker_ui, run_progress_ui, select_run
from ui.run_views import run_error_ui
from ui.state import get_run_manager, get_store
from ui.sweep_form import sweep_form_ui

ALGO_LABELS = {"ppo": "PPO (value head, GLAM)", "reinforce": "REINFORCE (value baseline)"}
PICK_KEY, SELECTED_KEY = "agent_pick", "agent_run_id"
FORM_KEY, PRESET_KEY = "agent_form", "agent_preset_applied"  # what the form starts from, per environment
SVG_HEIGHT = 220
TUNING_FIELDS = ("learning_rate", "value_learning_rate", "n_steps", "n_epochs", "minibatch_size", "gamma", "gae_lambda",
                 "clip_range", "ent_coef", "vf_coef", "max_grad_norm", "normalisation", "use_lora", "lora_r",
                 "lora_alpha", "lora_last_layers", "eval_episodes", "greedy_eval", "seed", "device", "torch_threads")
CHOICES = {"normalisation": list(NORMALISATIONS), "device": ["auto", "cpu", "cuda", "mps"]}


# ----------------------------------------------------------------------------- settings


def _widget_for(name: str, default: Any, key: str, help_text: str | None) -> Any:
    """One input per setting, by the default's type; no bounds, so the config's checks speak instead."""
    if name in CHOICES:
        return st.selectbox(name, CHOICES[name], index=CHOICES[name].index(default), key=key, help=help_text)
    if isinstance(default, bool):
        return st.checkbox(name, value=default, key=key, help=help_text)
    if isinstance(default, int):
        return int(st.number_input(name, value=default, step=1, key=key, help=help_text))
    if isinstance(default, float):
        step = 10.0 ** (math.floor(math.log10(abs(default))) - 1) if default else 0.01
        return float(st.number_input(name, value=default, step=step, format="%g", key=key, help=help_text))
    return st.text_input(name, value=str(default), key=key, help=help_text)


@st.cache_resource(show_spinner="Loading the tokenizer…", max_entries=4)
def _prompt_tokenizer(spec: str) -> Any:
    """(tokenizer, context length) for the preview's checks; None when only the network has it."""
    from llmrl_core.agent.policy import load_prompt_tokenizer

    return load_prompt_tokenizer(spec)


@st.cache_data(show_spinner=False, max_entries=16)
def _preview_observation(env_id: str, seed: int) -> list:
    """The first observation of an episode (the state the preview shows)."""
    env = make_env(env_id, seed)
    try:
        obs, _ = env.reset(seed=seed)
    finally:
        env.close()
    return [float(x) for x in np.asarray(obs, dtype=float).reshape(-1)]


def prompt_preview_ui(config: AgentConfig) -> bool:
    """The prompt for a real start state and the tokenizer's checks; True when the template passed them."""
    from llmrl_core.agent.policy import check_prompt_tokens
    from llmrl_core.agent.text_env import render_state

    adapter = get_adapter(config.env_id)
    obs = _preview_observation(config.env_id, config.seed)
    obs_value = obs if config.env_id == "CartPole-v1" else int(obs[0])
    prompt = render_prompt(adapter, config.instruction, config.state_template, obs_value)
    st.caption("Prompt for the first state of an episode (the action word follows after a space):")
    st.code(prompt + " ⟨" + " | ".join(config.action_words) + "⟩", language=None, wrap_lines=True)
    try:
        found = _prompt_tokenizer(config.model)
    except WorkbenchError as err:
        st.warning(f"Cannot load the model's tokenizer to check the template: {escape_markdown(str(err))}")
        return False
    if found is None:
        st.caption("The tokenizer is checked when the run starts (the model is not on disk yet).")
        return True
    tokenizer, context = found
    try:
        counts = check_prompt_tokens(tokenizer, config.instruction, config.action_words,
                                     render_state(adapter, config.state_template, obs_value), context)
    except InputError as err:
        st.error(escape_markdown(str(err)))
        return False
    st.caption(f"✓ action words are distinct token sequences · instruction {counts['instruction']} tokens (cached once), "
               f"state {counts['state']} tokens per step · context {context}")
    return True


def apply_agent_preset(name: str) -> None:
    """Callback: fill the form from a preset (the environment, the algorithm and every field it sets; the model
    stays the user's). The form's widgets are dropped, so they render again from the preset's values."""
    values = dict(AGENT_PRESETS[name].overrides)
    env_id = values.get("env_id", list(ADAPTERS)[0])
    st.session_state["agent_env"] = env_id
    st.session_state["agent_algo"] = values.get("algo", AgentConfig.algo)
    st.session_state.setdefault(FORM_KEY, {})[env_id] = values
    prefix = f"agent_{env_id}_"
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]
    st.session_state[PRESET_KEY] = name


def presets_ui() -> None:
    """One button per preset; each fills the whole form."""
    for name, preset in AGENT_PRESETS.items():
        st.button(preset.title, key=f"agent_preset_{name}", on_click=apply_agent_preset, args=(name,), width="stretch",
                  help=preset.description, icon=":material/bolt:")
    applied = st.session_state.get(PRESET_KEY)
    if applied in AGENT_PRESETS:
        st.caption(f"Preset **{AGENT_PRESETS[applied].title}** applied: {AGENT_PRESETS[applied].description}")


def settings_ui() -> None:
    """Model, environment, template, algorithm and budget; Train validates everything, then starts the run."""
    presets_ui()
    env_id = st.selectbox("Environment", list(ADAPTERS), key="agent_env")
    adapter = get_adapter(env_id)
    st.caption(adapter.blurb)
    model = st.text_input("Model", value="bundled", key="agent_model",
                          help="'bundled' (SmolLM2-135M-Instruct), a model folder, a .gguf file or a Hub id")
    algo = st.selectbox("Algorithm", list(ALGOS), format_func=ALGO_LABELS.get, key="agent_algo")
    docs = AgentConfig.field_docs()
    seeded = st.session_state.get(FORM_KEY, {}).get(env_id, {})  # a preset's values, else the config's defaults
    defaults = AgentConfig.from_dict({k: v for k, v in seeded.items() if k not in ("model", "algo")} | {"env_id": env_id})
    prefix = f"agent_{env_id}_"
    c1, c2 = st.columns(2)
    values: dict[str, Any] = {"env_id": env_id, "model": model.strip(), "algo": algo}
    values["total_steps"] = int(c1.number_input("total_steps", value=defaults.total_steps, step=256, key=prefix + "total_steps",
                                                help=docs.get("total_steps")))
    values["max_minutes"] = float(c2.number_input("max_minutes", value=defaults.max_minutes, step=1.0, format="%g",
                                                  key=prefix + "max_minutes", help=docs.get("max_minutes")))
    values["n_envs"] = int(c1.number_input("n_envs", value=defaults.n_envs, step=1, key=prefix + "n_envs",
                                           help=docs.get("n_envs")))
    values["max_episodes"] = int(c2.number_input("max_episodes", value=defaults.max_episodes, step=10,
                                                 key=prefix + "max_episodes", help=docs.get("max_episodes")))
    with st.expander("Prompt template", expanded=True):
        values["instruction"] = st.text_area("instruction", value=defaults.instruction, key=prefix + "instruction",
                                             help=docs.get("instruction"), height=80)
        values["state_template"] = st.text_area(
            "state_template", value=defaults.state_template, key=prefix + "state_template", height=80,
            help=f"{docs.get('state_template')}; fields: " + ", ".join("{" + f + "}" for f in adapter.fields))
        words = st.text_input("action_words", value=", ".join(defaults.action_words), key=prefix + "action_words",
                              help=docs.get("action_words") + " (comma-separated)")
        values["action_words"] = [w.strip() for w in words.split(",")]
        try:
            config = AgentConfig.from_dict(values)
        except InputError as err:
            st.error(escape_markdown(str(err)))
            config = None
        template_ok = config is not None and prompt_preview_ui(config)
    with st.expander("Hyperparameters"):
        for name in TUNING_FIELDS:
            values[name] = _widget_for(name, getattr(defaults, name), prefix + name, docs.get(name))
    if st.button("Train", type="primary", key="agent_train", disabled=config is None or not template_ok):
        try:
            config = AgentConfig.from_dict(values)
        except InputError as err:
            st.error(escape_markdown(str(err)))
            return
        run_id = get_run_manager().start("agent", config.to_dict(), name=f"LM {algo.upper()} · {env_id}",
                                         total_steps=config.total_steps)
        select_run(run_id, PICK_KEY, SELECTED_KEY)
        st.rerun()
    sweep_form_ui("agent", lambda: AgentConfig.from_dict(values).to_dict(), key="agent_sweep")


# ----------------------------------------------------------------------------- the player


@st.cache_data(show_spinner=False, max_entries=16)
def _load_episode(path: str) -> dict:
    """A recorded episode (written once, so one read per file)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@st.cache_data(show_spinner=False, max_entries=16)
def _render_player(episode_json: str, title: str) -> str:
    return render_agent_player_html(json.loads(episode_json), title=title, svg_height=SVG_HEIGHT)


def episode_ui(view: LiveRun) -> None:
    """The latest recorded episode (zero-shot, training or trained), replayed with the action probabilities."""
    episodes = view.memo("episodes", lambda: get_store().list_artifacts(view.run_id, kind="episode"))
    if episodes.empty:
        st.info("The zero-shot evaluation records the first episode.")
        return
    row = pick_episode_to_show(view.run_id, episodes, "agent_shown")
    try:
        episode = _load_episode(str(row["path"]))
    except (OSError, ValueError) as err:
        st.warning(f"Cannot read the episode file {row['path']}: {err}")
        return
    kind = {"zero-shot": "Zero-shot", "lm": "Training", "trained": "Trained"}.get(episode.get("policy"), "Episode")
    title = (f"{kind} episode after {int(row['step']):,} steps · return {episode['return']:.1f} "
             f"over {episode['length']} steps")
    height = compute_agent_player_height(SVG_HEIGHT, len(episode.get("action_names", [])))
    st.iframe(_render_player(json.dumps(episode), title), height=height, alt=f"Agent episode player: {title}")


# ----------------------------------------------------------------------------- the live run


def comparison_ui(run: dict) -> None:
    """Zero-shot against trained, with the difference and its 95% confidence interval."""
    summary = run.get("summary") or {}
    if summary.get("trained_return") is None:
        return
    low, high = summary["difference_ci95"]
    st.success(f"Trained {summary['trained_return']:.1f} vs zero-shot {summary['zero_shot_return']:.1f}: "
               f"difference {summary['difference']:+.1f} (95% CI {low:+.1f} to {high:+.1f}) over "
               f"{run['config'].get('eval_episodes')} episodes each.", icon=":material/compare_arrows:")


def agent_run_ui(view: LiveRun) -> None:
    """Status, tiles, the return against the baselines, the latest episode and the losses of one run."""
    run, metrics = view.run, view.metrics
    config = run["config"]
    run_heading_ui(run, escape_markdown(f"{ALGO_LABELS.get(config.get('algo'), config.get('algo'))} · "
                                        f"{config.get('env_id')} · {config.get('model')}"))
    run_progress_ui(run)
    run_error_ui(run)
    run_controls_ui(run, "agent")

    def last(key: str) -> float | None:
        return float(metrics[key].dropna().iloc[-1]) if key in metrics.columns and metrics[key].notna().any() else None

    sb3 = view.memo("sb3", lambda: find_gym_baseline(get_store(), config.get("env_id")))
    random_return, zero = last("baseline/random_return"), last("eval/zero_shot_return")
    m = st.columns(5)
    m[0].metric("steps", f"{int(run.get('step') or 0):,}")
    m[1].metric("random policy", "–" if random_return is None else f"{random_return:.1f}")
    m[2].metric("zero-shot", "–" if zero is None else f"{zero:.1f}", help="The untrained model over the evaluation episodes.")
    trained = last("eval/trained_return")
    m[3].metric("trained", "–" if trained is None else f"{trained:.1f}",
                delta=None if trained is None or zero is None else f"{trained - zero:+.1f}")
    fps = last("time/fps")
    m[4].metric("steps / s", "–" if fps is None else f"{fps:.1f}")
    comparison_ui(run)
    if sb3 is not None:
        st.caption(f"Stable-Baselines3 {sb3[1].upper()} on the same environment: run #{sb3[0]}, last mean return {sb3[2]:.1f}.")
    plot = view.plot_metrics()
    solved = ENVS[config["env_id"]].solved_return if config.get("env_id") in ENVS else None
    left, right = st.columns([3, 2])
    with left:
        view.chart("return", lambda: make_agent_return_figure(plot, random_return, None if sb3 is None else sb3[2], solved))
    with right:
        episode_ui(view)
    st.caption("Learning shows here before the greedy return moves: the probability of pushing toward the pole's "
               "lean on fixed probe states, and whether the rollouts still explore (entropy, minority actions).")
    view.chart("diagnostics", lambda: make_agent_diagnostics_figure(plot))
    view.chart("losses", lambda: make_agent_losses_figure(plot))
    with st.expander("Config and summary"):
        st.code(json.dumps(config, indent=2), language="json")
        if run.get("summary"):
            st.json(run["summary"])


def main() -> None:
    st.title("Agent")
    st.caption("The language model is the policy: each observation becomes a prompt, each action a word, and RL "
               "fine-tuning (PPO with a value head, or REINFORCE) teaches it from the reward. The same job runs "
               "headless with `python -m llmrl_core agent`.")
    settings_col, view_col = st.columns([1, 3])
    with settings_col:
        settings_ui()
    with view_col:
        run_id = run_picker_ui(get_store().list_runs(kind="agent"), PICK_KEY, SELECTED_KEY)
        if run_id is None:
            st.info("No agent run yet: pick a model and an environment, check the prompt, then press Train. "
                    "The untrained model is evaluated first (zero-shot), so its return shows before any training.")
            return
        live_run_ui(run_id, agent_run_ui, key="agent")


main()
