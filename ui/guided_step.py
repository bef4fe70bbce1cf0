""""What does one GRPO step do?": a guided walk through one stored step (front page and LM RL page, issue 21).

Three stops over the same step: the group and its advantages, the push on each token with one token's
formula filled in, and the same batch under the other algorithms. The step is the user's newest recorded one
(llmrl_core/present/step_example.find_example_step) or, before any run, a step of the bundled model stored
with the package. Completions are model output: tables show them as text, tokens go through
render_token_html (escaped).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from llmrl_core.lm_rl.algorithms import get_algorithm
from llmrl_core.present.common import escape_markdown, render_token_html
from llmrl_core.present.step_example import find_example_step, load_bundled_example
from llmrl_core.present.token_objective import PUSH_LEGEND, max_abs, push_values
from ui.state import get_store
from ui.token_inspector import compare_algorithms_ui, formula_panel_ui


def guided_step_ui(key: str) -> None:
    """The walkthrough in an expander; `key` keeps its widgets apart on each page that shows it. Its body runs
    only while it is open (on_change="rerun"), so a closed guide costs a live page nothing."""
    guide = st.expander("What does one GRPO step do? A guided look at a real step", expanded=False, key=key,
                        on_change="rerun")
    if not guide.open:
        return
    with guide:
        found = find_example_step(get_store())
        if found is None:
            run, samples = load_bundled_example()
            st.caption("No run of yours has a recorded step yet, so this is a step of the bundled model on "
                       "\"Make it positive\", stored with the workbench. Train a run to see your own.")
        else:
            run, samples = found
            st.caption(f"Step {int(samples['step'].iloc[0])} of your newest run, "
                       f"#{run['id']} {escape_markdown(run['name'])}.")
        walk_through_step(run, samples, key)


def walk_through_step(run: dict, samples: pd.DataFrame, key: str) -> None:
    """The three stops over `samples` (one step of `run`)."""
    config = run["config"]
    algo = get_algorithm(config.get("algorithm", "grpo"))
    k = int(config.get("num_generations", 1))
    groups = sorted({int(e.get("prompt_index", 0)) for e in samples["extras"]})
    group = st.selectbox("Prompt", groups, key=f"{key}_group",
                         format_func=lambda g: f"prompt {g + 1}: {_prompt_of(samples, g)[:70]!r}")
    rows = samples[[int(e.get("prompt_index", 0)) == group for e in samples["extras"]]]

    st.markdown(f"**1. Sample and score.** The policy wrote {k} completions for this prompt and each got a reward. "
                f"{algo.label} turns rewards into advantages:")
    st.latex(algo.advantage_formula)
    table = pd.DataFrame({"completion": rows["completion"].tolist(),
                          "reward": [r.get("total") for r in rows["rewards"]],
                          "advantage": [e.get("advantage") for e in rows["extras"]]})
    st.dataframe(table, hide_index=True, width="stretch",  # completions are shown as text
                 column_config={"completion": st.column_config.TextColumn(width="large"),
                                "reward": st.column_config.NumberColumn(format="%.4f"),
                                "advantage": st.column_config.NumberColumn(format="%.4f")})

    st.markdown("**2. Push each token.** The loss gives every token of a completion a push on its log-probability: "
                "its advantage times its ratio times its aggregation weight (zero where the ratio was clipped).")
    st.caption(PUSH_LEGEND)
    scale = max_abs([push_values(e)[0] or [] for e in samples["extras"]])
    for extras, reward in zip(rows["extras"], rows["rewards"]):
        st.caption(f"reward {reward.get('total', float('nan')):.3f} · advantage {extras.get('advantage', 0.0):+.3f}")
        st.html(render_token_html(extras.get("tokens") or [], push_values(extras)[0] or [], mode="diverging",
                                  scale=scale, struck=set(extras.get("clipped") or [])))
    best = max(range(len(rows)), key=lambda i: abs(rows.iloc[i]["extras"].get("advantage") or 0.0))
    extras, rewards = rows.iloc[best]["extras"], rows.iloc[best]["rewards"]
    push = push_values(extras)[0] or [0.0]
    token = max(range(len(push)), key=lambda i: abs(push[i]))
    st.markdown("One token written out (the completion with the largest |advantage|, its strongest push):")
    formula_panel_ui(extras, token, config, rewards, samples)

    st.markdown("**3. Other algorithms on the same batch.** The same rewards and tokens under RLOO, REINFORCE and "
                "the three loss aggregations, recomputed without running the model:")
    compare_algorithms_ui(f"{key}_{run['id']}", samples, config, extras)


def _prompt_of(samples: pd.DataFrame, group: int) -> str:
    """The prompt text of group `group` (the first of its samples)."""
    for prompt, extras in zip(samples["prompt"], samples["extras"]):
        if int(extras.get("prompt_index", 0)) == group:
            return str(prompt)
    return ""
