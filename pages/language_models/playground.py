"""Playground: load a model, prompt it (raw text or chat), and read its samples token by token."""

from __future__ import annotations

import time

import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.lm.generation import SamplingConfig, generate
from llmrl_core.lm.models import BUNDLED_SPEC
from llmrl_core.present.common import make_logprob_tooltips, render_token_html
from llmrl_core.present.common import escape_markdown
from ui.state import ensure_model_ui, get_model_holder, load_model_ui

STREAM_REFRESH_SECONDS = 0.12  # redraw streaming text at most ~8 times a second


def model_picker_ui() -> None:
    """Spec box plus the bundled default; loading shows progress and keeps the old model on failure."""
    holder = get_model_holder()
    current = holder.current
    with st.expander("Model", expanded=current is None):
        col_spec, col_device, col_btn = st.columns([4, 1, 1], vertical_alignment="bottom")
        spec = col_spec.text_input(
            "Model spec", value=current.spec if current else BUNDLED_SPEC, key="pg_spec",
            help="A Hugging Face hub id (gpt2), a local model folder, a .gguf file, or 'bundled' (SmolLM2-135M-Instruct).",
        )
        device = col_device.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="pg_device")
        if col_btn.button("Load", key="pg_load", width="stretch"):
            bar = st.progress(0.0, text=f"Loading {escape_markdown(spec)}…")
            try:
                holder.load(spec, device=device, progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
                bar.empty()
                st.rerun()
            except WorkbenchError as err:
                bar.empty()
                kept = f" {holder.current.resolved.display_name} stays loaded." if holder.current else ""
                st.error(escape_markdown(f"{err}{kept}"))  # quotes the spec
        if current is not None and current.spec != BUNDLED_SPEC and st.button("Back to the bundled model", key="pg_bundled"):
            if load_model_ui(BUNDLED_SPEC):
                st.rerun()


def sampling_controls_ui() -> tuple[SamplingConfig | None, dict]:
    """Sampling settings; returns the validated config (or None with an error shown) and display options."""
    c1, c2, c3, c4 = st.columns(4)
    greedy = c1.toggle("Greedy", value=False, key="pg_greedy", help="Always take the most likely token (n must be 1).")
    temperature = c1.slider("Temperature", 0.05, 2.0, 0.7, 0.05, key="pg_temp", disabled=greedy)
    top_p = c2.slider("Top-p", 0.05, 1.0, 0.95, 0.05, key="pg_top_p", disabled=greedy)
    top_k = c2.number_input("Top-k (0 = off)", 0, 1000, 50, key="pg_top_k", disabled=greedy)
    max_new = c3.number_input("Max new tokens", 1, 100_000, 64, key="pg_max_new")
    n = c3.number_input("Samples", 1, 8, 1 if greedy else 2, key="pg_n", disabled=greedy)
    seed_text = c4.text_input("Seed (blank = random)", "", key="pg_seed")
    show_tokens = c4.toggle("Token view", value=True, key="pg_tokens", help="Colour tokens by probability; hover for alternatives.")
    try:
        seed = int(seed_text) if seed_text.strip() else None
    except ValueError:
        st.error(f"The seed must be a whole number, not {seed_text!r}.")
        return None, {}
    try:
        cfg = SamplingConfig(max_new_tokens=int(max_new), temperature=float(temperature), top_p=float(top_p),
                             top_k=int(top_k), n=1 if greedy else int(n), seed=seed, greedy=greedy)
    except WorkbenchError as err:
        st.error(str(err))
        return None, {}
    return cfg, {"show_tokens": show_tokens}


def chat_history_ui() -> list[dict]:
    """The conversation so far (chat mode); each turn shown as plain text, never interpreted."""
    history: list[dict] = st.session_state.setdefault("pg_chat", [])
    for message in history:
        with st.chat_message(message["role"]):
            st.text(message["content"])
    if history and st.button("Clear the conversation", key="pg_clear_chat"):
        history.clear()
        st.session_state.pop("pg_result", None)
        st.rerun()
    return history


def prompt_ui(is_chat_model: bool) -> tuple[str | list[dict], bool, str | None]:
    """Prompt box and mode; returns (prompt or chat messages, use_chat_template, system message)."""
    modes = ["Chat", "Raw text"] if is_chat_model else ["Raw text", "Chat"]
    mode = st.radio("Prompt as", modes, horizontal=True, key="pg_mode",
                    help="Chat wraps your message in the model's chat template; raw text is continued as is.")
    system = None
    history: list[dict] = []
    if mode == "Chat":
        system = st.text_input("System message (optional)", "", key="pg_system") or None
        history = chat_history_ui()
    label = "Your next message" if history else "Prompt"
    prompt = st.text_area(label, "Write a short poem about reinforcement learning.", height=110, key="pg_prompt")
    if history:
        return history + [{"role": "user", "content": prompt}], True, system
    return prompt, mode == "Chat", system


def stream_into_columns(loaded, prompt: str, cfg: SamplingConfig, chat: bool, system: str | None):
    """Generate with text appearing live in one column per sample; returns the GenerationResult."""
    columns = st.columns(cfg.n)
    slots = [col.empty() for col in columns]
    ids: list[list[int]] = [[] for _ in range(cfg.n)]
    last_draw = [0.0]
    tokenizer = loaded.tokenizer

    def draw() -> None:
        for k, slot in enumerate(slots):
            slot.text(tokenizer.decode(ids[k], skip_special_tokens=True) + " ▌")

    def on_step(step: int, new_ids: list[int]) -> None:
        for k, token_id in enumerate(new_ids[: cfg.n]):
            ids[k].append(token_id)
        now = time.monotonic()
        if now - last_draw[0] >= STREAM_REFRESH_SECONDS:
            last_draw[0] = now
            draw()

    with get_model_holder().generation_lock:
        result = generate(loaded, [prompt], cfg, chat=chat, system=system, on_step=on_step)
    for slot in slots:
        slot.empty()
    return result


def continue_chat(result: dict, sample: int) -> None:
    """Keep the user's message and one sample as the assistant's reply, for the next turn."""
    history = st.session_state.setdefault("pg_chat", [])
    history.append({"role": "user", "content": result["user_message"]})
    history.append({"role": "assistant", "content": result["completions"][sample]["text"]})
    st.session_state.pop("pg_result", None)


def results_ui(result: dict) -> None:
    """Show the last generation: timing, then each sample side by side (token view or plain text)."""
    m1, m2, m3 = st.columns(3)
    m1.metric("Time", f"{result['seconds']:.2f} s")
    m2.metric("Tokens", result["new_tokens"])
    m3.metric("Tokens/s", f"{result['tokens_per_second']:.1f}")
    completions = result["completions"]
    columns = st.columns(len(completions))
    for col, comp in zip(columns, completions):
        with col:
            st.markdown(f"**Sample {comp['sample_index'] + 1}** · {len(comp['token_ids'])} tokens · ended by {comp['finish_reason']}")
            if result["show_tokens"]:
                tips = make_logprob_tooltips(comp["logprobs"], comp["top_alternatives"])
                st.html(render_token_html(comp["tokens"], comp["logprobs"], tips, mode="logprob"))
            st.text(comp["text"])  # st.text never interprets markup
            if result.get("chat"):
                st.button("Reply with this", key=f"pg_keep_{comp['sample_index']}", on_click=continue_chat,
                          args=(result, comp["sample_index"]), help="Add it to the conversation and write the next message.")
    if result["show_tokens"]:
        st.caption("Token colour: green = likely, red = unlikely under the model (temperature 1). Hover a token for the top-5 alternatives.")
    with st.expander("Exact prompt the model saw"):
        st.code(result["prompt_text"], language=None)


def main() -> None:
    st.title("Playground")
    st.caption("Prompt the loaded model and see every token with its probability.")
    model_picker_ui()
    loaded = ensure_model_ui()
    if loaded is None:
        st.info("Load a model above to start.")
        return
    prompt, chat, system = prompt_ui(loaded.is_chat)
    cfg, options = sampling_controls_ui()
    if st.button("Generate", type="primary", key="pg_generate", disabled=cfg is None):
        try:
            result = stream_into_columns(loaded, prompt, cfg, chat, system)
        except WorkbenchError as err:
            st.error(str(err))
        else:
            st.session_state["pg_result"] = {
                "seconds": result.seconds,
                "new_tokens": result.new_tokens,
                "tokens_per_second": result.tokens_per_second,
                "prompt_text": result.prompt_texts[0],
                "chat": chat,
                "user_message": prompt[-1]["content"] if isinstance(prompt, list) else prompt,
                "show_tokens": options.get("show_tokens", True),
                "completions": [c.__dict__ for c in result.completions],
            }
    if "pg_result" in st.session_state:
        results_ui(st.session_state["pg_result"])


main()
