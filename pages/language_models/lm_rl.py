"""RL fine-tuning: set up a run (presets, every RLConfig field, prompts, rewards, YAML), start it, watch it live.

Runs are ordinary 'lm_rl' jobs, each in a worker process of its own (the run manager launches it), so
they keep going when the tab is closed; the Dashboard tab finds active and past runs in the store and polls the
newest active one once a second (ui/rl_dashboard.py). The form keeps its values in one dict in
session state ("rl_config"), so presets, a loaded YAML file and "Edit a copy" all fill it the
same way, and RLConfig's validation speaks for every field before anything starts.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pandas as pd
import streamlit as st

from llmrl_core.lm_rl.algorithms.registry import REGISTRY
from llmrl_core.lm_rl.config import PRESETS, RLConfig
from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.lm_rl.prompts import BUILTIN_PROMPT_SETS, load_prompt_set
from llmrl_core.runs import ACTIVE_STATUSES
from llmrl_core.present.common import escape_markdown
from ui.clone import take_clone_request
from ui.guided_step import guided_step_ui
from ui.config_widgets import config_field_ui
from ui.prompt_picker import MODES as PROMPT_MODES
from ui.prompt_picker import prompt_picker_ui, show_prompt_preview_ui
from ui.reward_lab import custom_code_policy_ui, reward_editor_ui, reward_lab_ui
from ui.live_run import live_run_ui, run_picker_ui
from ui.rl_dashboard import rl_dashboard_ui
from ui.scale import scale_ui
from ui.state import default_model_spec, get_run_manager, get_store
from ui.sweep_form import sweep_form_ui

VIEW_KEY = "rl_view"
VIEWS = ("Dashboard", "New run")
FIELD_PREFIX = "rl_f_"
PROMPT_KEY = "rl_prompts"
SETTING_LABELS = {"lam": "lam (GAE lambda)"}  # an algorithm's setting whose field name needs words
SETTING_STEPS = {"baseline_decay": 0.05, "vf_coef": 0.05, "cliprange_value": 0.05, "gamma": 0.01, "lam": 0.01}


def label_algorithm(name: str) -> str:
    """The algorithm's short name for the UI (its Algorithm.label), the name itself if unknown."""
    return REGISTRY[name].label if name in REGISTRY else str(name)
DEVICES = ("auto", "cpu", "cuda", "mps")


# ----------------------------------------------------------------------------- the form's state


def _config() -> dict:
    """The form's values (every RLConfig field), seeded once with the defaults and the default model."""
    if "rl_config" not in st.session_state:
        st.session_state["rl_config"] = RLConfig(model=default_model_spec()).to_dict()
    return st.session_state["rl_config"]


def _reward_editor_key() -> str:
    """The reward editor's key; a new version re-seeds the editor from the config's rewards."""
    return f"rl_rewards_v{st.session_state.get('rl_rewards_version', 0)}"


def apply_config(data: dict, keep_model: bool = False) -> None:
    """Put a whole config into the form: every field widget, the prompt picker and the reward editor."""
    old = _config()
    new = dict(data)
    if keep_model:
        new["model"], new["device"] = old.get("model", new["model"]), old.get("device", new["device"])
    st.session_state["rl_config"] = new
    for key in [k for k in st.session_state if str(k).startswith(FIELD_PREFIX)]:
        del st.session_state[key]  # re-seeded from rl_config when the widgets render
    st.session_state["rl_rewards_version"] = st.session_state.get("rl_rewards_version", 0) + 1
    _seed_prompt_picker(new.get("prompt_set", ""))


def _seed_prompt_picker(source: str) -> None:
    """Show a config's prompt set in the picker: a built-in set selected, anything else as 'from the config'."""
    if source in BUILTIN_PROMPT_SETS:
        st.session_state[f"{PROMPT_KEY}_mode"] = PROMPT_MODES[0]
        st.session_state[f"{PROMPT_KEY}_builtin"] = source
        st.session_state.pop("rl_prompt_fixed", None)
    else:
        st.session_state["rl_prompt_fixed"] = source


def apply_preset(name: str) -> None:
    """Callback: fill the form from a preset (keeping the model spec and device the user chose)."""
    base = RLConfig().to_dict()
    apply_config({**base, **PRESETS[name].overrides}, keep_model=True)
    st.session_state["rl_preset_applied"] = name


def clone_config(config: dict) -> None:
    """Copy a run's config into the form and open the New run tab (a full rerun)."""
    data = {**RLConfig().to_dict(), **{k: v for k, v in config.items() if k in RLConfig.__dataclass_fields__}}
    data["resume_from"] = None  # a clone starts fresh; resuming is the checkpoint panel's job
    data["name"] = f"{data.get('name', 'rl run')} (copy)"
    apply_config(data)
    st.session_state["rl_view_next"] = VIEWS[1]
    st.rerun()


def _field(name: str, label: str | None = None, container: Any = st, **kwargs: Any) -> Any:
    """Draw one RLConfig field's widget (ui/config_widgets.py) under a stable key seeded from rl_config; write it back."""
    cfg = _config()
    cfg[name] = config_field_ui(RLConfig, name, key=FIELD_PREFIX + name, value=cfg.get(name), label=label,
                                container=container, **kwargs)
    return cfg[name]


# ----------------------------------------------------------------------------- setup sections


def presets_ui() -> None:
    """One button per preset; each fills the whole form."""
    st.markdown("**Start from a preset**")
    cols = st.columns(len(PRESETS))
    for col, (name, preset) in zip(cols, PRESETS.items()):
        col.button(preset.title, key=f"rl_preset_{name}", on_click=apply_preset, args=(name,), width="stretch",
                   help=preset.description)
    applied = st.session_state.get("rl_preset_applied")
    if applied in PRESETS:
        st.caption(f"Preset **{PRESETS[applied].title}** applied: {PRESETS[applied].description} "
                   "(the model spec and device stay as you set them)")


def run_and_model_ui() -> None:
    """Name, budget, seed, the model spec, LoRA or full fine-tuning."""
    c1, c2, c3 = st.columns([2, 1, 1])
    _field("name", "Run name", c1)
    _field("steps", container=c2)
    _field("seed", container=c3)
    c1, c2, c3 = st.columns([2, 1, 1])
    _field("model", "Model spec", c1)
    _field("device", container=c2, choices=DEVICES)
    _field("mixed_precision", container=c3)
    st.caption("Model spec: 'bundled' (SmolLM2-135M-Instruct), a model folder, a .gguf file or a hub id.")
    mode = _field("use_lora", "Train", widget="radio", horizontal=True,
                  format_func=lambda v: "LoRA adapters" if v else "every weight (full fine-tuning)")
    if mode:
        c1, c2, c3, c4 = st.columns(4)
        _field("lora_r", "LoRA rank (lora_r)", c1)
        _field("lora_alpha", container=c2)
        _field("lora_dropout", container=c3, step=0.05)
        _field("lora_target_modules", container=c4)


def algorithm_settings_ui(algo: str) -> None:
    """The settings only the chosen algorithm reads (its Algorithm.settings), three to a row."""
    settings = REGISTRY[algo].settings if algo in REGISTRY else ()
    for start in range(0, len(settings), 3):
        for column, name in zip(st.columns(3), settings[start:start + 3]):
            steps = {"step": SETTING_STEPS[name]} if name in SETTING_STEPS else {}
            _field(name, SETTING_LABELS.get(name), column, **steps)


def sampling_and_algorithm_ui() -> None:
    """Sampling per step, the algorithm and its knobs (only the relevant ones shown)."""
    st.markdown("**Sampling**")
    c1, c2, c3 = st.columns(3)
    _field("prompts_per_step", container=c1)
    _field("num_generations", "samples per prompt (num_generations)", c2)
    _field("max_new_tokens", container=c3)
    c1, c2, c3 = st.columns(3)
    _field("temperature", container=c1, step=0.1)
    _field("top_p", container=c2, step=0.05)
    _field("top_k", container=c3)
    st.markdown("**Algorithm**")
    c1, c2, c3 = st.columns(3)
    algo = _field("algorithm", container=c1, format_func=label_algorithm)
    _field("learning_rate", container=c2, step=1e-6)
    _field("num_epochs", "epochs per batch (num_epochs)", c3)
    c1, c2, c3 = st.columns(3)
    _field("beta", "beta (KL coefficient)", c1, step=0.01)
    _field("kl_estimator", container=c2)
    _field("loss_type", container=c3)
    with st.expander("More settings: clipping, schedule, checkpoints"):
        c1, c2, c3 = st.columns(3)
        _field("epsilon", container=c1, step=0.01)
        _field("epsilon_high", container=c2, placeholder="empty: same as epsilon")
        _field("max_grad_norm", container=c3, step=0.1)
        algorithm_settings_ui(algo)
        c1, c2, c3 = st.columns(3)
        _field("lr_scheduler", container=c1)
        _field("warmup_steps", container=c2)
        _field("weight_decay", container=c3, step=0.01)
        c1, c2, c3 = st.columns(3)
        _field("grad_accum_steps", container=c1)
        _field("save_every", "checkpoint every N steps (save_every)", c2)
        _field("samples_per_step", container=c3)
        c1, c2 = st.columns(2)
        _field("save_final", container=c1)
        _field("keep_for_resuming", "keep for resuming (optimizer state in the final checkpoint)", c2)
        _field("resume_from", "resume_from (checkpoint folder; empty: start fresh)")


def _persist_upload(name: str, frame: pd.DataFrame) -> str:
    """Write an uploaded prompt set to the cache as JSONL (once per content), so the job can read it by path."""
    from llmrl_core.core.paths import get_cache_dir

    text = frame.to_json(orient="records", lines=True, force_ascii=False)
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.rsplit(".", 1)[0])[:40] or "prompts"
    path = get_cache_dir("prompt_uploads") / f"{stem}-{digest}.jsonl"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return str(path)


@st.cache_data(show_spinner=False, max_entries=8)
def _preview_prompt_set(source: str) -> pd.DataFrame | str:
    """A prompt set named by path or hf:id for the preview, or the error message."""
    try:
        return load_prompt_set(source)
    except WorkbenchError as err:
        return str(err)


def prompts_ui() -> None:
    """The prompt set (picker, or the one a loaded config names), its limit and chat settings."""
    cfg = _config()
    fixed = st.session_state.get("rl_prompt_fixed")
    if fixed:
        st.markdown("Prompts from:")
        st.code(fixed, language="text")
        if st.button("Pick other prompts", key="rl_prompt_unfix"):
            st.session_state.pop("rl_prompt_fixed")
            st.rerun()
        preview = _preview_prompt_set(fixed)
        if isinstance(preview, str):
            st.error(escape_markdown(preview))
        else:
            show_prompt_preview_ui(preview)
        cfg["prompt_set"] = fixed
    else:
        if f"{PROMPT_KEY}_mode" not in st.session_state:  # widgets were hidden: show the config's set again
            _seed_prompt_picker(cfg.get("prompt_set", ""))
            if st.session_state.get("rl_prompt_fixed"):
                st.rerun()
        source, frame = prompt_picker_ui(PROMPT_KEY)
        if source.startswith("upload:") and frame is not None:
            source = _persist_upload(source[len("upload:"):], frame)
        cfg["prompt_set"] = source if frame is not None else ""
    c1, c2 = st.columns(2)
    _field("prompt_limit", "prompt_limit (0: all)", c1, none_as=0, min_value=0)
    _field("chat", container=c2)
    _field("system_prompt", "System prompt (chat only; empty: none)")


def rewards_ui() -> list[dict]:
    """The reward editor (custom Python only where the server allows it), seeded from the config."""
    allowed, reason = custom_code_policy_ui()
    key = _reward_editor_key()
    if f"{key}_rows" in st.session_state and f"{key}_new_type" not in st.session_state:
        # The editor's widgets were hidden (other tab) and forgot their values: re-seed from the config.
        st.session_state["rl_rewards_version"] = st.session_state.get("rl_rewards_version", 0) + 1
        key = _reward_editor_key()
    cfg = _config()
    specs = reward_editor_ui(key, allowed, reason, initial=cfg.get("rewards") or [])
    cfg["rewards"] = specs
    cfg["allow_custom_code"] = allowed
    if allowed:
        st.caption(reason)
    return specs


def validate_config() -> RLConfig:
    """The form's config as a validated RLConfig; raises WorkbenchError with what to change."""
    from llmrl_core.lm.models import resolve_spec
    from llmrl_core.lm_rl.rewards import parse_spec

    cfg = RLConfig.from_dict(dict(_config()))
    if not cfg.prompt_set.strip():
        raise InputError("Choose a prompt set (a built-in set, an uploaded file or a loaded dataset).")
    for spec in cfg.rewards:
        parse_spec(spec, cfg.allow_custom_code)
    resolve_spec(cfg.model)  # a wrong path or spec is named now, not after the run started
    if cfg.resume_from:
        from llmrl_core.lm_rl.checkpoints import check_checkpoint

        check_checkpoint(cfg.resume_from)
    return cfg


def preflight_ui() -> None:
    """Warnings for settings that are valid but ruinous on this machine (llmrl_core.lm_rl.preflight), above Start."""
    from llmrl_core.lm_rl.preflight import preflight_rl_config

    try:
        warnings = preflight_rl_config(RLConfig.from_dict(dict(_config())))
    except WorkbenchError:
        return  # an invalid form: Start names the field
    for w in warnings:
        st.warning(f"**{escape_markdown(w.field)}**: {escape_markdown(w.message)} Fix: {escape_markdown(w.fix)}")


def precision_caption_ui() -> None:
    """Next to Start: the precision the run will use and why (what 'auto' chose on this machine)."""
    from llmrl_core.lm.precision import describe_config_precision

    form = dict(_config())
    try:
        st.caption(escape_markdown(describe_config_precision(form.get("mixed_precision", "auto"), form.get("device", "auto"))))
    except WorkbenchError:
        return  # an invalid form or an absent device: Start names the field


def start_run_ui() -> None:
    """Start: validate the form, start the lm_rl job, and switch to its dashboard; or say what to change."""
    preflight_ui()
    precision_caption_ui()
    if not st.button("Start training", type="primary", key="rl_start"):
        return
    try:
        cfg = validate_config()
    except WorkbenchError as err:
        st.error(escape_markdown(err))  # RLConfig's messages say what to change; never a traceback
        return
    run_id = get_run_manager().start("lm_rl", cfg.to_dict(), name=cfg.name, total_steps=cfg.steps)
    st.session_state["rl_run_id"] = run_id
    st.session_state.pop("rl_pick", None)
    st.session_state["rl_view_next"] = VIEWS[0]
    st.rerun()


# ----------------------------------------------------------------------------- YAML


def load_yaml_text() -> None:
    """Callback: load the pasted or uploaded YAML into the form, or keep the error to show."""
    upload = st.session_state.get("rl_yaml_file")
    text = st.session_state.get("rl_yaml_text", "")
    st.session_state.pop("rl_yaml_error", None)
    try:
        if upload is not None and not text.strip():
            try:
                text = upload.getvalue().decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"{upload.name} is not UTF-8 text ({err.reason}); save it as UTF-8 YAML.") from err
        if not text.strip():
            raise InputError("Paste a YAML config or upload a .yaml file first.")
        cfg = RLConfig.from_yaml(text)
    except WorkbenchError as err:
        st.session_state["rl_yaml_error"] = str(err)
        return
    apply_config(cfg.to_dict())
    st.session_state["rl_yaml_loaded"] = True


def yaml_ui() -> None:
    """The current config as YAML, and loading one (paste or upload) into the form."""
    try:
        current = RLConfig.from_dict(dict(_config())).to_yaml()
    except WorkbenchError as err:
        st.warning(f"The form's config is not valid yet, so it has no YAML: {escape_markdown(err)}")
        current = None
    if current is not None:
        st.code(current, language="yaml")
        st.download_button("Download YAML", current, file_name="rl_config.yaml", mime="text/yaml", key="rl_yaml_download")
        st.caption("Run it headless with `python -m llmrl_core train --config rl_config.yaml`.")
    st.markdown("**Load a config**")
    st.file_uploader("YAML file", type=["yaml", "yml"], key="rl_yaml_file", max_upload_size=1)
    st.text_area("…or paste YAML (used when not empty)", key="rl_yaml_text", height=140,
                 placeholder="algorithm: rloo\nsteps: 20\nrewards:\n- type: vader")
    st.button("Load into the form", key="rl_yaml_load", on_click=load_yaml_text)
    if st.session_state.get("rl_yaml_error"):
        st.error(escape_markdown(st.session_state["rl_yaml_error"]))  # may quote the file
    elif st.session_state.pop("rl_yaml_loaded", False):
        st.success("Loaded: every field of the form now shows the config.")


# ----------------------------------------------------------------------------- the two views


def new_run_ui() -> None:
    """Presets, the config form in sections, the reward lab, YAML, and Start."""
    presets_ui()
    t_run, t_prompts, t_rewards, t_algo, t_scale, t_lab, t_yaml = st.tabs(
        ["Run and model", "Prompts", "Rewards", "Sampling and algorithm", "Scale and trackers", "Reward lab", "YAML"])
    with t_run:
        run_and_model_ui()
    with t_prompts:
        prompts_ui()
    with t_rewards:
        specs = rewards_ui()
    with t_algo:
        sampling_and_algorithm_ui()
    with t_scale:
        scale_ui(_field, _config())
    with t_lab:
        st.caption("Score typed text, or fresh samples of the loaded model, with the rewards of the Rewards tab "
                   "before you spend a run on them.")
        reward_lab_ui(specs, key="rl_lab")
    with t_yaml:
        yaml_ui()
    st.divider()
    cfg = _config()
    st.caption(f"{label_algorithm(cfg.get('algorithm'))} · {cfg.get('steps')} steps × "
               f"{cfg.get('prompts_per_step')} prompts × {cfg.get('num_generations')} samples · up to "
               f"{cfg.get('max_new_tokens')} new tokens · {'LoRA' if cfg.get('use_lora') else 'full fine-tuning'} of "
               f"{escape_markdown(cfg.get('model'))}")
    start_run_ui()
    sweep_form_ui("lm_rl", lambda: RLConfig.from_dict(dict(_config())).to_dict(), key="rl_sweep",
                  validate=validate_config)  # the model and rewards are resolved on Queue, not at every rerun


def pick_run_ui() -> int | None:
    """Choose the lm_rl run to show: the one just started, else the newest active, else the newest."""
    runs = get_store().list_runs(kind="lm_rl")
    run_id = run_picker_ui(runs, "rl_pick", "rl_run_id")
    active = runs[runs["status"].isin(ACTIVE_STATUSES)]
    if not active.empty:
        st.caption("Active now: " + ", ".join(f"\\#{i} {escape_markdown(n)}" for i, n in zip(active["id"], active["name"])))
    return run_id


def dashboard_view_ui() -> None:
    """The run picker and the chosen run's live dashboard."""
    run_id = pick_run_ui()
    if run_id is None:
        st.info("No RL run yet. Open **New run**, pick a preset (e.g. Make it positive) and press Start training.")
        return
    live_run_ui(run_id, lambda view: rl_dashboard_ui(view, clone_config), key="rl")


def main() -> None:
    st.title("LM RL")
    cloned = take_clone_request("lm_rl")
    if cloned is not None:
        clone_config(cloned)  # fills the form, opens New run (a rerun)
    st.caption("Fine-tune the language model with GRPO, RLOO, REINFORCE or PPO against rewards you pick, and watch "
               "reward, KL and samples live. Runs go on when this tab closes; the CLI runs the same configs "
               "(`python -m llmrl_core train`).")
    guided_step_ui("rl_guide")
    if "rl_view_next" in st.session_state:  # set by Start or "Edit a copy" before their st.rerun()
        st.session_state[VIEW_KEY] = st.session_state.pop("rl_view_next")
    elif VIEW_KEY not in st.session_state and get_store().list_runs(kind="lm_rl").empty:
        st.session_state[VIEW_KEY] = VIEWS[1]  # nothing to watch yet: open the form
    dashboard, new_run = st.tabs(list(VIEWS), key=VIEW_KEY, on_change="rerun")
    if dashboard.open:
        with dashboard:
            dashboard_view_ui()
    if new_run.open:
        with new_run:
            new_run_ui()


main()
