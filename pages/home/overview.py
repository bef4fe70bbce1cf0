"""Overview: the front page. What the workbench does, the latest runs with their headline result, and
one-click entries to the three things one shows in a demo. A card promises only what bench/bench_demos.py
measures on the card's preset (held-out reward before and after, evaluation return before and after)."""

from __future__ import annotations

import time

import streamlit as st

from llmrl_core.present.common import escape_markdown
from llmrl_core.runs.headline import describe_run_headline
from ui.guided_step import guided_step_ui
from ui.live_run import format_status
from ui.state import get_store

LATEST = 6  # runs shown: one screen, no scrolling

DEMOS = [
    ("pages/language_models/lm_rl.py", ":material/model_training:", "Fine-tune a language model",
     "GRPO, RLOO, REINFORCE or PPO against rewards you pick; every generation and its reward on screen as it trains. "
     "Make it positive raises the sentiment of answers to prompts it never trained on within minutes on a CPU."),
    ("pages/language_models/attention.py", ":material/visibility:", "Look inside its attention",
     "Every layer and head for any text, and how fine-tuning moved them."),
    ("pages/gymnasium/gym_agents.py", ":material/smart_toy:", "Balance a pole",
     "Train PPO, A2C or DQN on CartPole and watch its episodes replay live; PPO reaches the top return of 500 "
     "within its default budget."),
]


def demo_entries_ui() -> None:
    """Three cards, one click each."""
    for column, (page, icon, label, blurb) in zip(st.columns(len(DEMOS)), DEMOS):
        with column.container(border=True):
            st.page_link(page, label=label, icon=icon)
            st.caption(blurb)


def latest_runs_ui() -> None:
    """The newest runs with what each achieved (one metric read per run)."""
    store = get_store()
    runs = store.list_runs()
    st.subheader("Latest runs")
    if runs.empty:
        st.info("No runs yet: start one from the cards above, or with `python -m llmrl_core train|gym` on the "
                "command line (CLI runs show up here too).")
        return
    for run_id in runs["id"].head(LATEST).tolist():
        run = store.get_run(int(run_id))
        if run is None:  # deleted between the two reads
            continue
        headline = describe_run_headline(store, run)
        mark = {True: ":green[▲]", False: ":orange[■]", None: ""}[headline.good]
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created"]))
        c_name, c_result = st.columns([2, 3])
        c_name.markdown(f"**#{run['id']} {escape_markdown(run['name'])}**  \n"
                        f"{format_status(run['status'])} · {escape_markdown(run['kind'])} · {created}")
        c_result.markdown(f"{mark} {escape_markdown(headline.text)}")
    st.page_link("pages/runs/runs.py", label="All runs, compare, export and reports", icon=":material/monitoring:")


def main() -> None:
    st.title("LLM·RL Workbench")
    st.markdown(
        "Reinforcement learning with language models, on your own machine.  \n"
        "Fine-tune a model against rewards and watch every generation and reward as it learns.  \n"
        "Look inside its attention, train classic agents on Gymnasium, and compare, export and report what worked."
    )
    demo_entries_ui()
    guided_step_ui("home_guide")
    latest_runs_ui()


main()
