"""Before/after: the base model and a checkpoint of an RL run answer the same prompts side by side, each
answer scored with the run's rewards, with the mean difference and its bootstrap confidence interval;
and a chat that sends one prompt to both."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.runs.kinds import list_kinds
from ui.reward_lab import custom_code_policy_ui
from llmrl_core.present.common import escape_markdown
from ui.state import get_store

PROMPT_SOURCES = ("Held out from the run's prompt set", "A built-in set", "Typed prompts")


def pick_checkpoint_ui() -> tuple[dict, str] | None:
    """An RL fine-tuning run that saved checkpoints, and one of them (newest first)."""
    store = get_store()
    kinds = [spec.name for spec in list_kinds() if spec.before_after]  # kinds whose checkpoints answer prompts
    runs = store.list_runs()
    runs = runs[runs["kind"].isin(kinds)] if not runs.empty else runs
    if runs.empty:
        st.info("No RL fine-tuning runs yet: train one on the LM RL page, then compare it with its base model here.")
        st.page_link("pages/language_models/lm_rl.py", label="Fine-tune a language model", icon=":material/model_training:")
        return None
    names = runs.set_index("id")["name"].to_dict()
    c_run, c_ckpt = st.columns(2)
    run_id = c_run.selectbox("Run", runs["id"].tolist(), format_func=lambda i: f"#{i} {names.get(i, '')}", key="ba_run")
    checkpoints = store.list_artifacts(int(run_id), kind="checkpoint")
    if checkpoints.empty:
        c_ckpt.info("This run saved no checkpoint yet.")
        return None
    paths = list(checkpoints["path"])[::-1]
    steps = dict(zip(checkpoints["path"], checkpoints["step"]))
    path = c_ckpt.selectbox("Checkpoint", paths, format_func=lambda p: f"step {steps[p]}", key=f"ba_ckpt_{run_id}")
    return store.get_run(int(run_id)), str(path)


def prompts_ui(config: dict) -> pd.DataFrame | None:
    """The prompts both models answer."""
    from llmrl_core.lm_rl.evaluate import held_out_prompts
    from llmrl_core.lm_rl.prompts import BUILTIN_PROMPT_SETS, load_prompt_set

    c_source, c_n = st.columns([3, 1])
    source = c_source.radio("Prompts", PROMPT_SOURCES, horizontal=True, key="ba_source")
    n = c_n.number_input("How many", 1, 64, 8, key="ba_n")
    if source == PROMPT_SOURCES[0]:
        frame = held_out_prompts(config, int(n))
        st.caption(escape_markdown(frame.attrs.get("source", "")))
        return frame
    if source == PROMPT_SOURCES[1]:
        name = st.selectbox("Set", list(BUILTIN_PROMPT_SETS), format_func=lambda k: f"{k}: {BUILTIN_PROMPT_SETS[k]}",
                            key="ba_builtin")
        return load_prompt_set(name, limit=int(n), seed=1)
    typed = st.text_area("One prompt per line", key="ba_typed", placeholder="Write a review of a café.")
    lines = [line.strip() for line in typed.splitlines() if line.strip()]
    return pd.DataFrame({"prompt": lines}) if lines else None


def compare_ui(run: dict, checkpoint: str) -> None:
    """Settings, the Compare button, and the result (kept with the run so the report can show it)."""
    from llmrl_core.lm_rl.evaluate import compare_run_before_after, read_latest_before_after, save_before_after

    config = run["config"]
    prompts = prompts_ui(config)
    c_mode, c_samples, c_tokens = st.columns(3)
    greedy = c_mode.radio("Decoding", ["Greedy", "Sampled"], horizontal=True, key="ba_mode") == "Greedy"
    samples = c_samples.number_input("Answers per prompt", 1, 8, 1 if greedy else 4, key="ba_samples", disabled=greedy)
    max_new = c_tokens.number_input("Max new tokens", 1, 512, int(config.get("max_new_tokens", 64)), key="ba_tokens")
    if st.button("Answer with both and score", type="primary", key="ba_go", disabled=prompts is None or prompts.empty):
        try:
            with st.spinner("The base model answers, then the checkpoint; both scored with the run's rewards..."):
                allowed = bool(config.get("allow_custom_code")) and custom_code_policy_ui()[0]  # this server's policy
                result = compare_run_before_after({**config, "allow_custom_code": allowed}, checkpoint, prompts,
                                                  greedy=greedy, samples=int(samples), seed=int(config.get("seed", 0)),
                                                  max_new_tokens=int(max_new))
            save_before_after(get_store(), int(run["id"]), result)
        except WorkbenchError as err:
            st.error(escape_markdown(err))
            return
    result = read_latest_before_after(get_store(), int(run["id"]))
    if result is None:
        return
    if result.checkpoint != checkpoint:
        st.caption(f"Last result, for {escape_markdown(result.checkpoint)}:")
    c_before, c_after, c_diff = st.columns(3)
    c_before.metric("Base model, mean reward", f"{result.before_mean:.3f}")
    c_after.metric("Checkpoint, mean reward", f"{result.after_mean:.3f}", f"{result.diff:+.3f}")
    c_diff.metric(f"Difference, {result.confidence:.0%} CI", f"{result.low:+.3f} to {result.high:+.3f}",
                  help="Bootstrap over prompts (each prompt's mean reward, paired): an interval that excludes 0 "
                       "says the change is more than sampling noise.")
    shown = result.rows.rename(columns={"before": "base model", "after": "checkpoint",
                                        "before_reward": "base reward", "after_reward": "checkpoint reward"})
    st.dataframe(shown, hide_index=True, width="stretch")  # every cell shown as text


@st.cache_resource(max_entries=2, show_spinner=False)
def _load_for_chat(spec: str):
    from llmrl_core.lm.models import load_causal_lm

    return load_causal_lm(spec)


def chat_ui(run: dict, checkpoint: str) -> None:
    """One prompt to both models, answers side by side."""
    from llmrl_core.lm.generation import SamplingConfig, generate

    prompt = st.text_area("Prompt for both", key="ba_chat_prompt", placeholder="Tell me about your day.")
    if not st.button("Send to both", key="ba_chat_go", disabled=not prompt.strip()):
        return
    config = run["config"]
    sampling = SamplingConfig(max_new_tokens=int(config.get("max_new_tokens", 64)), greedy=True)
    chat = {"auto": None, "chat": True, "raw": False}.get(str(config.get("chat", "auto")))  # as the run prompted
    columns = st.columns(2)
    for column, (label, spec) in zip(columns, (("Base model", config.get("model", "bundled")), ("Checkpoint", checkpoint))):
        with column:
            st.markdown(f"**{label}**")
            try:
                with st.spinner(f"{label} answers..."):
                    result = generate(_load_for_chat(str(spec)), [prompt], sampling, chat=chat,
                                      system=config.get("system_prompt") or None)
            except WorkbenchError as err:
                st.error(escape_markdown(err))
                continue
            st.text(result.completions[0].text)  # model output shown literally


def main() -> None:
    st.title("Before/after")
    st.caption("Did fine-tuning help? The base model and a checkpoint answer the same prompts, scored with the run's "
               "own rewards.")
    picked = pick_checkpoint_ui()
    if picked is None:
        return
    run, checkpoint = picked
    tab_compare, tab_chat = st.tabs(["Same prompts, scored", "Chat with both"])
    with tab_compare:
        compare_ui(run, checkpoint)
    with tab_chat:
        chat_ui(run, checkpoint)


main()
