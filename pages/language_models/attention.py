"""Attention explorer: what every layer and head of a loaded model attends to, offline, in six views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from llmrl_core.attention import maps as att
from llmrl_core.present import attention as viz
from llmrl_core.core.errors import WorkbenchError
from llmrl_core.lm.generation import SamplingConfig
from llmrl_core.lm.models import BUNDLED_SPEC
from llmrl_core.present.common import escape_markdown
from ui.state import default_model_spec, get_model_holder, get_store

DEFAULT_TEXT = "The cat sat on the mat because it was tired. Then the cat sat on the"
OTHER = "Other (type a path or hub id)…"


@st.cache_resource(show_spinner=False, max_entries=3)
def get_attention_model(spec: str):
    """An eager-attention copy of `spec`, shared by sessions (the shared sdpa model returns no weights)."""
    return att.load_attention_model(spec)


def list_checkpoint_specs() -> list[tuple[str, str]]:
    """(label, path) of checkpoints saved by fine-tuning runs that still exist on disk, newest run first."""
    found: list[tuple[str, str]] = []
    try:
        store = get_store()
        runs = store.list_runs()
        for run in runs.head(50).itertuples():
            arts = store.list_artifacts(int(run.id), kind="checkpoint")
            for art in arts.itertuples():
                if Path(str(art.path)).is_dir():
                    found.append((f"run #{run.id} {run.name or run.kind} · step {art.step}", str(art.path)))
    except Exception:  # the store is optional here: no checkpoints is a valid answer
        return []
    return found


def model_choice_ui(label: str, key: str, default: str) -> str:
    """Pick a spec: the default, the bundled model, a run checkpoint, or a typed one."""
    options: dict[str, str] = {f"{default} (the loaded model)" if default != BUNDLED_SPEC else "bundled (SmolLM2-135M-Instruct)": default}
    if default != BUNDLED_SPEC:
        options["bundled (SmolLM2-135M-Instruct)"] = BUNDLED_SPEC
    for name, path in list_checkpoint_specs():
        options[f"checkpoint: {name}"] = path
    options[OTHER] = ""
    choice = st.selectbox(label, list(options), key=f"{key}_choice")
    if choice == OTHER:
        return st.text_input("Spec", "", key=f"{key}_typed", placeholder="/path/to/hf_folder, model.gguf or gpt2").strip()
    return options[choice]


def load_model_for_attention_ui(spec: str):
    """Load (or reuse) the eager copy of `spec`; show the error and return None on failure."""
    if not spec:
        st.error("Type a model spec (a model folder, a .gguf file or a hub id), or choose one from the list.")
        return None
    try:
        with st.spinner(f"Loading an eager-attention copy of {escape_markdown(spec or 'bundled')} (once per model)…"):
            return get_attention_model(spec)
    except WorkbenchError as err:  # messages quote the typed spec: shown as text, never as Markdown
        st.error(escape_markdown(str(err)))
        return None
    except (ImportError, RuntimeError) as err:  # e.g. a first transformers import racing another session
        st.error(escape_markdown(f"Loading {spec or 'bundled'} failed ({err}); press the button again."))
        return None


def explanation_ui() -> None:
    """What attention is, with the formula the maps come from."""
    with st.expander("What am I looking at?", expanded=False):
        st.markdown(
            "Each layer lets every token gather information from the tokens before it. A **head** does this "
            "with its own query, key and value projections:"
        )
        st.latex(r"A = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right), \qquad \text{output} = A\,V")
        st.markdown(
            "Row *q* of **A** is what query token *q* attends to: the weights over the keys sum to 1, and the causal "
            "mask **M** blanks everything above the diagonal, because a token never sees later ones. Q and K carry "
            "rotary position embeddings. In grouped-query models several query heads share one key/value head; "
            "each query head still has its own map, and that is what is shown. The test suite recomputes one "
            "layer from the model's own Q and K with this formula and matches it to 1e-5.\n\n"
            "*Rollout* multiplies the layers' head-averaged maps (each mixed with the identity for the residual "
            "stream) to estimate how much each input token reaches each position (Abnar & Zuidema 2020)."
        )


def input_ui(default_spec: str) -> None:
    """Text, mode and model; computes the maps into session state on click."""
    spec = model_choice_ui("Model", "att_model", default_spec)
    with st.form("att_form", border=True):
        text = st.text_area("Text (or prompt)", DEFAULT_TEXT, height=90, key="att_text")
        c1, c2, c3 = st.columns([2, 1, 1])
        mode = c1.radio("Map", ["Text only", "Prompt + generated completion"], horizontal=True, key="att_mode")
        chat = c2.toggle("Chat template", value=False, key="att_chat", help="Wrap the text in the model's chat template.")
        max_new = c3.number_input("New tokens", 1, 256, 24, key="att_max_new", help="Completion length (greedy).")
        submitted = st.form_submit_button("Compute attention", type="primary")
    if not submitted:
        return
    loaded = load_model_for_attention_ui(spec)
    if loaded is None:
        return
    try:
        with st.spinner("Running the model with attention weights…"):
            if mode == "Text only":
                maps = att.extract_attention(loaded, text, chat=chat)
            else:
                cfg = SamplingConfig(max_new_tokens=int(max_new), greedy=True)
                maps = att.generate_and_extract(loaded, text, cfg, chat=chat)
    except WorkbenchError as err:
        st.error(escape_markdown(str(err)))
        return
    layer, head = att.pick_default_head(maps)
    st.session_state.update(
        att_maps=maps, att_spec=spec, att_layer=layer, att_head=head, att_compare=None, att_last_click=read_grid_click(),
        att_scores=att.compute_entropy_contrast(maps.weights), att_canvas=viz.make_thumbnail_canvas(maps.weights),
    )


def read_grid_click() -> tuple[int, int] | None:
    """The (layer, head) of the tile selected in the model-view grid, as Streamlit keeps it under its key."""
    event = st.session_state.get("att_grid")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, dict):  # a typed array serialised by index
            custom = [custom.get("0", custom.get(0)), custom.get("1", custom.get(1))]
        if isinstance(custom, (list, tuple)) and len(custom) == 2 and None not in custom:
            return int(custom[0]), int(custom[1])
    return None


def apply_grid_click() -> None:
    """Open the clicked tile's head, once per click (the selectboxes may change it afterwards)."""
    click = read_grid_click()
    if click is not None and click != st.session_state.get("att_last_click"):
        st.session_state.att_last_click = click
        st.session_state.att_layer, st.session_state.att_head = click


def overview_ui(maps: att.AttentionMaps) -> None:
    """Views 1 and 2: the model-view grid (click a tile) next to the chosen head's heatmap."""
    apply_grid_click()
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Model view**: every layer × head; click a tile to open it")
        grid = viz.make_model_view(
            maps.weights, selected=(st.session_state.att_layer, st.session_state.att_head), scores=st.session_state.att_scores,
            canvas=st.session_state.att_canvas,
        )
        st.plotly_chart(grid, key="att_grid", on_select="rerun", selection_mode="points", config={"displayModeBar": False})
    with right:
        c1, c2 = st.columns(2)
        c1.selectbox("Layer", list(range(maps.n_layers)), key="att_layer")
        c2.selectbox("Head", list(range(maps.n_heads)), key="att_head",
                     help="Query heads; in grouped-query models several share one key/value head.")
        layer, head = st.session_state.att_layer, st.session_state.att_head
        kv = head // max(maps.n_heads // max(maps.n_kv_heads, 1), 1)
        title = f"Layer {layer}, head {head} (key/value head {kv})"
        sink = st.toggle("Colour scale ignores the first token", value=True, key="att_sink",
                         help="Many heads park most weight on the first token (an 'attention sink'); scaling colours "
                              "without it shows where the rest goes. Hover values stay exact.")
        fig = viz.make_head_heatmap(maps.head(layer, head), maps.tokens, title, n_prompt=maps.n_prompt, scale_without_first=sink)
        st.plotly_chart(fig, key="att_heatmap")


def head_view_ui(maps: att.AttentionMaps) -> None:
    """View 3: lines from each token to the tokens it attends to, for one or several heads of a layer."""
    chosen = (st.session_state.att_layer, st.session_state.att_head)
    if st.session_state.get("att_hv_for") != chosen:  # follow the head chosen above (grid click or selectboxes)
        st.session_state.update(att_hv_for=chosen, att_hv_layer=chosen[0], att_hv_heads=[chosen[1]])
    c1, c2, c3, c4 = st.columns([1, 2, 1, 2])
    layer = c1.selectbox("Layer", list(range(maps.n_layers)), key="att_hv_layer")
    heads = c2.multiselect("Heads", list(range(maps.n_heads)), key="att_hv_heads")
    threshold = c3.slider("Hide below", 0.0, 0.5, 0.02, 0.01, key="att_hv_threshold")
    focus_options = ["all tokens"] + [f"{i}: {t!r}" for i, t in enumerate(maps.tokens)]
    focus = c4.selectbox("From token", focus_options, key="att_hv_focus", help="Or hover a token on the left.")
    if not heads:
        st.info("Choose at least one head.")
        return
    focus_index = None if focus == focus_options[0] else focus_options.index(focus) - 1
    layer_weights = maps.weights[layer].astype(np.float32)  # (H, T, T)
    svg = viz.render_head_view_svg(layer_weights, maps.tokens, heads, threshold=threshold, focus=focus_index)
    # st.html sanitises SVG away; a srcdoc iframe keeps it (and its CSS hover), still with no JavaScript.
    st.iframe(svg, height=min(18 * maps.n_tokens + 70, 1200))
    st.caption("Hover a token on the left to see only its lines; line width and opacity follow the weight.")


def aggregates_ui(maps: att.AttentionMaps) -> None:
    """View 4: the mean over heads of a layer, or attention rollout up to a layer."""
    c1, c2 = st.columns([1, 3])
    aggregate = c1.radio("Aggregate", ["Mean over heads", "Rollout"], key="att_agg_kind")
    layer = c2.slider("Up to layer" if aggregate == "Rollout" else "Layer", 0, maps.n_layers - 1, maps.n_layers - 1, key="att_agg_layer")
    if aggregate == "Rollout":
        if st.session_state.get("att_rollout_for") is not maps:
            st.session_state.att_rollout = att.compute_rollout(maps.weights)
            st.session_state.att_rollout_for = maps
        grid, title = st.session_state.att_rollout[layer], f"Attention rollout through layer {layer}"
    else:
        grid, title = att.compute_head_mean(maps.weights[layer : layer + 1])[0], f"Layer {layer}, mean over {maps.n_heads} heads"
    fig = viz.make_head_heatmap(grid, maps.tokens, title, n_prompt=maps.n_prompt, colorscale="Purples",
                                scale_without_first=st.session_state.get("att_sink", True))
    st.plotly_chart(fig, key="att_agg")


def token_ui(maps: att.AttentionMaps) -> None:
    """View 5: what one (generated) token attends to, as bars over the prompt and earlier tokens."""
    first = maps.n_prompt if maps.n_prompt < maps.n_tokens else maps.n_tokens - 1
    options = [f"{i}: {t!r}" + (" (generated)" if i >= maps.n_prompt else "") for i, t in enumerate(maps.tokens)]
    c1, c2 = st.columns([2, 2])
    choice = c1.selectbox("Token", options, index=first, key="att_tok_choice")
    source = c2.radio("Weights from", ["Chosen head", "Mean over heads", "Rollout (all layers)"], horizontal=True, key="att_tok_src")
    query = options.index(choice)
    layer, head = st.session_state.att_layer, st.session_state.att_head
    if source == "Chosen head":
        row, what = maps.weights[layer, head, query], f"layer {layer}, head {head}"
    elif source == "Mean over heads":
        row, what = maps.weights[layer, :, query].astype(np.float32).mean(axis=0), f"layer {layer}, mean over heads"
    else:
        row, what = att.compute_rollout(maps.weights[:, :, : query + 1, : query + 1])[-1, query], "rollout over all layers"
    title = f"What token {query} {viz.format_token_label(maps.tokens[query])} attends to ({what})"
    st.plotly_chart(viz.make_token_bar(row, maps.tokens, query, n_prompt=maps.n_prompt, title=title), key="att_tok_bar")
    if maps.n_prompt >= maps.n_tokens:
        st.caption("Tip: choose 'Prompt + generated completion' above to pick generated tokens (orange bars).")


def compare_ui(maps: att.AttentionMaps) -> None:
    """View 6: the same tokens under a second model, as a difference heatmap per head."""
    st.caption("Map the same tokens under a second model (a fine-tuning checkpoint, or any spec sharing the tokenizer).")
    spec_b = model_choice_ui("Second model (B)", "att_cmp_model", BUNDLED_SPEC)
    go_compare = st.button("Compare", key="att_cmp_go")
    if go_compare:
        loaded_b = load_model_for_attention_ui(spec_b)
        if loaded_b is not None:
            try:
                with st.spinner("Mapping the same tokens under the second model…"):
                    maps_b = att.extract_attention_like(loaded_b, maps)
                    diff = att.compute_attention_difference(maps, maps_b)
                st.session_state.att_compare = {"spec": spec_b, "diff": diff, "summary": att.summarize_difference(diff)}
            except WorkbenchError as err:
                st.error(escape_markdown(str(err)))
    result = st.session_state.get("att_compare")
    if not result:
        return
    summary = result["summary"]
    st.markdown(f"A = `{st.session_state.att_spec}`, B = `{result['spec']}`; largest mean |B − A| per head: "
                f"{float(summary.max()):.5f}")
    if float(summary.max()) == 0.0:
        st.info("The two models give identical maps for this text (the same weights?).")
    left, right = st.columns([2, 3])
    left.plotly_chart(viz.make_layer_head_grid(summary, "Mean |B − A| per head", "mean |Δ|"), key="att_cmp_grid")
    with right:
        top_layer, top_head = np.unravel_index(int(np.argmax(summary)), summary.shape)
        c1, c2 = st.columns(2)
        layer = c1.selectbox("Layer", list(range(maps.n_layers)), index=int(top_layer), key="att_cmp_layer")
        head = c2.selectbox("Head", list(range(maps.n_heads)), index=int(top_head), key="att_cmp_head")
        st.plotly_chart(
            viz.make_difference_heatmap(result["diff"][layer, head], maps.tokens, f"Layer {layer}, head {head}: B − A"),
            key="att_cmp_heatmap",
        )


def summary_ui(maps: att.AttentionMaps) -> None:
    """One line on what was mapped, the truncation message, and the completion if any."""
    if maps.message:
        st.warning(escape_markdown(maps.message))
    kv = f" sharing {maps.n_kv_heads} key/value heads" if maps.n_kv_heads and maps.n_kv_heads < maps.n_heads else ""
    st.caption(
        f"{maps.model_name} · {maps.n_tokens} tokens · {maps.n_layers} layers × {maps.n_heads} query heads{kv} · "
        f"mapped in {maps.seconds:.2f} s. Opened first: the last layer's head with the highest entropy contrast "
        "(sharp for some tokens, diffuse for others)."
    )
    if "completion_text" in maps.extra:
        st.markdown(f"Generated ({maps.n_tokens - maps.n_prompt} tokens, orange in the charts):")
        st.code(maps.extra["completion_text"], language=None, wrap_lines=True)


TAB_VIEWS = {"Head view (lines)": head_view_ui, "Aggregates": aggregates_ui, "One token": token_ui, "Compare models": compare_ui}

st.title("Attention explorer")
st.caption("What every layer and head attends to, for any model, offline. Six views: head, model grid, "
           "head lines, aggregates, one token, and a comparison of two models.")
explanation_ui()
holder_model = get_model_holder().current
input_ui(holder_model.spec if holder_model is not None else default_model_spec())
maps_now: att.AttentionMaps | None = st.session_state.get("att_maps")
if maps_now is None:
    st.info("Type a text and press **Compute attention**: the model view and a heatmap appear here.")
else:
    summary_ui(maps_now)
    overview_ui(maps_now)
    # Lazy tabs: only the open one runs and is drawn, which keeps a compute-to-grid rerun light.
    tabs = st.tabs(list(TAB_VIEWS), key="att_tabs", on_change="rerun")
    for tab, view in zip(tabs, TAB_VIEWS.values()):
        if tab.open:
            with tab:
                view(maps_now)
