"""The step inspector's push view: what one update did to each token, its formula, other algorithms (issue 21).

Shown in the token view of the LM RL dashboard and of the Runs page's Samples tab when "update push" is
picked. Tokens are clickable (a small st.components.v2 component that only reports the clicked index); a
number input picks the same token from the keyboard. The numbers come from llmrl_core/present/token_objective.py.
Tokens are model output: they reach the page through render_token_html (escaped) or as plain text.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from llmrl_core.lm_rl.algorithms import get_algorithm
from llmrl_core.present.common import escape_markdown, render_token_html
from llmrl_core.present.lm_rl import make_token_tooltips
from llmrl_core.present.token_objective import (PUSH_LEGEND, LOSS_TYPE_LABELS, compare_sequence_weights,
                                                compute_step_pushes, explain_token, list_comparable, list_push_rows,
                                                load_step_batch, max_abs, push_values)

# The markup passed in is render_token_html's, whose tokens are escaped; the script only wires clicks.
_PICKER_JS = """
export default function(component) {
  const { data, setStateValue, parentElement } = component;
  let root = parentElement.querySelector('.llmrl-token-picker');
  if (!root) {
    root = document.createElement('div');
    root.className = 'llmrl-token-picker';
    parentElement.appendChild(root);
  }
  root.innerHTML = data.markup;
  root.querySelectorAll('[data-i]').forEach((el) => {
    el.style.cursor = 'pointer';
    if (Number(el.dataset.i) === data.selected) { el.style.outline = '2px solid #31333f'; }
    el.onclick = () => setStateValue('token', Number(el.dataset.i));
  });
}
"""
_token_picker = st.components.v2.component("llmrl_token_picker", js=_PICKER_JS)


def _strongest(values: list[float]) -> int:
    """Index of the largest |value| (the token the update cared most about)."""
    return max(range(len(values)), key=lambda i: abs(values[i])) if values else 0


def push_inspector_ui(run: dict, samples: pd.DataFrame, sample_id: int) -> None:
    """The push view of one stored sample: coloured, clickable tokens; the picked token's formula; other algorithms."""
    run_id, config = run["id"], run["config"]
    row = samples[samples["id"] == sample_id]
    if row.empty:
        return
    extras, rewards, step = row.iloc[0]["extras"] or {}, row.iloc[0]["rewards"] or {}, int(row.iloc[0]["step"])
    values, note = push_values(extras)
    if values is None or not values:
        st.info(note)
        return
    step_samples = samples[samples["step"] == step]
    scale = max_abs([push_values(e)[0] or [] for e in step_samples["extras"]])  # one scale for the step's samples
    key = f"rl_push_token_{run_id}_{sample_id}"
    picked = st.session_state.get(key)
    index = None if picked is None else min(int(picked), len(values) - 1)
    markup = render_token_html(extras["tokens"], values, make_token_tooltips(extras), mode="diverging", scale=scale,
                               struck=set(extras.get("clipped") or []))
    strongest = _strongest(values)
    st.caption(f"{PUSH_LEGEND} {note} Click a token to see its formula (the strongest push here is on token "
               f"{strongest}).")

    def take_click() -> None:
        clicked = (st.session_state.get(f"{key}_picker") or {}).get("token")
        if clicked is not None:
            st.session_state[key] = int(clicked)

    _token_picker(key=f"{key}_picker", data={"markup": markup, "selected": -1 if index is None else index},
                  default={"token": None}, on_token_change=take_click)
    st.number_input("Token", min_value=0, max_value=len(values) - 1, value=None, step=1, key=key,
                    placeholder="click a token above, or type its number",
                    help="The token whose push is written out below.")
    if index is not None:  # the formula panel waits for a pick: a live run redraws this tab at every step
        formula_panel_ui(extras, index, config, rewards, step_samples)
    others = st.expander("The same batch under other algorithms", expanded=False, key=f"rl_push_others_{run_id}",
                         on_change="rerun")  # computed only while open: a live run redraws this tab every second
    if others.open:
        with others:
            compare_algorithms_ui(run_id, step_samples, config, extras)


def formula_panel_ui(extras: dict, index: int, config: dict, rewards: dict, step_samples: pd.DataFrame) -> None:
    """The picked token's push: the loss, the advantage and the weight written out, then filled in."""
    try:
        shown = explain_token(extras, index, config, rewards, step_samples)
    except ValueError as err:
        st.info(str(err))
        return
    st.markdown(f"**Token {shown.index}** ({shown.algorithm}, loss type "
                f"{escape_markdown(config.get('loss_type', ''))}):")
    st.code(shown.token, language=None)  # model output, shown as text
    st.latex(shown.loss_formula)
    st.latex(shown.advantage_formula)
    st.latex(shown.weight_formula)
    st.latex(shown.push_formula)
    st.latex(shown.substituted)
    st.dataframe(pd.DataFrame({"symbol": [f.symbol for f in shown.factors], "value": [f.value for f in shown.factors],
                               "where it comes from": [f.source for f in shown.factors]}),
                 hide_index=True, width="stretch", column_config={"value": st.column_config.NumberColumn(format="%.6g")})
    for line in shown.advantage_source:
        st.markdown(f"- {escape_markdown(line)}")
    if shown.clip_range is not None:
        low, high = shown.clip_range
        verdict = "outside it in the advantage's direction: clipped, no gradient" if shown.clipped else "no clipping here"
        st.caption(f"Clip range [{low:.3g}, {high:.3g}]; this token's ratio {extras['ratio'][index]:.4g}: {verdict}.")
    parts = [f"The trainer recorded a push of {shown.recorded:.4g} on this token; the numbers above give "
             f"{shown.contribution:.4g}."]
    if shown.kl_push is not None:
        parts.append(f"The KL term adds {shown.kl_push:.4g} (toward the reference model).")
    elif not get_algorithm(config.get("algorithm", "grpo")).kl_in_loss and float(config.get("beta", 0)) > 0:
        parts.append("PPO has its KL in the per-token rewards, so it reaches this token through the advantage.")
    st.caption(" ".join(parts))


def compare_algorithms_ui(run_id: int, step_samples: pd.DataFrame, config: dict, extras: dict) -> None:
    """This sample's tokens under every algorithm and loss type the stored step allows, and the weights table."""
    step = load_step_batch(step_samples, config)
    if not step.complete:
        st.caption(f"Only {len(step.extras)} samples of this step are stored (samples_per_step is below the batch): "
                   "group statistics and token counts below use those.")
    pairs = list_comparable(config, step)
    loss_types = sorted({lt for _, lt in pairs}, key=list(LOSS_TYPE_LABELS).index)
    chosen = st.segmented_control("Loss type", loss_types, default=config.get("loss_type", loss_types[0]),
                                  key=f"rl_push_compare_lt_{run_id}", format_func=lambda lt: LOSS_TYPE_LABELS[lt])
    chosen = chosen or config.get("loss_type", loss_types[0])
    row = next((i for i, e in enumerate(step.extras)
                if e.get("prompt_index") == extras.get("prompt_index") and e.get("sample_index") == extras.get("sample_index")), 0)
    rows = {}
    for name, loss_type in pairs:
        if loss_type != chosen:
            continue
        push, clipped = compute_step_pushes(step, config, name, loss_type, ran=name == config.get("algorithm"))
        rows[name] = (list_push_rows(push, step)[row], set(clipped[row].nonzero().squeeze(1).tolist()))
    scale = max_abs([values for values, _ in rows.values()])
    tokens = step.extras[row].get("tokens") or []
    for name, (values, struck) in rows.items():
        label = get_algorithm(name).label + (" (this run)" if name == config.get("algorithm") else "")
        st.markdown(f"**{label}** · pushed up {sum(v for v in values if v > 0):.3g}, down {sum(v for v in values if v < 0):.3g}")
        st.html(render_token_html(tokens, values, mode="diverging", scale=scale, struck=struck))
    if "reinforce" in rows and config.get("algorithm") != "reinforce":
        st.caption("REINFORCE here uses this batch's mean reward as its baseline (the rule of its first step): its "
                   "running baseline depends on steps this run did not take.")
    st.markdown("**How each loss type weighs the completions of this step** (w per token, and its sum per completion)")
    st.dataframe(compare_sequence_weights(step, config), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.4g")
                                for c in ("advantage", "grpo: w per token", "grpo: sum of w", "dapo: w per token",
                                          "dapo: sum of w", "dr_grpo: w per token", "dr_grpo: sum of w")})
    st.caption("grpo gives every completion the same total weight, so each token of a long one counts less (the "
               "length bias Dr. GRPO names); dapo counts every token the same; dr_grpo divides by a constant.")
