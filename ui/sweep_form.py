"""The sweep form under a page's Train/Start: pick up to three fields, give values or ranges, seeds, and queue.

The page passes a function that builds its form's validated config: the sweep's base. Everything is
checked by llmrl_core/runs/sweep_spec.py before anything is queued (one line naming the problem);
the trials are queued runs, which the server's supervisor starts in order (runs/sweeps.py); the
Sweeps page (pages/runs/sweeps.py) watches them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import streamlit as st
from streamlit.errors import StreamlitAPIException

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.present.common import escape_markdown
from llmrl_core.runs.sweep_spec import (MAX_FIELDS, MAX_RUNS, MAX_UNCONFIRMED_RUNS, METHOD_LABELS, METHODS, SweepSpec,
                                        build_spec, format_value, list_sweep_fields, parse_param_text, parse_seeds)
from ui.state import get_run_manager, get_store

SWEEPS_PAGE = "pages/runs/sweeps.py"
SELECTED_KEY = "sweep_selected"  # the sweep the Sweeps page opens on


def read_base_value(base: Mapping[str, Any], name: str) -> Any:
    """A field's value in the base config (top level, or gym's nested hyperparameters)."""
    if name in base:
        return base[name]
    params = base.get("params")
    return params.get(name) if isinstance(params, Mapping) else None


def _example(spec: Any, value: Any, method: str) -> str:
    """What the value box shows as a placeholder: values around the current one, or a range."""
    if spec.kind is bool:
        return "true, false"
    if spec.choices:
        return ", ".join(map(str, spec.choices[:3]))
    if method == "grid" or value is None:
        if isinstance(value, float) and value:
            return f"{format_value(value)}, {format_value(value * 3)}, {format_value(value / 3)}"
        if isinstance(value, int) and value:
            return f"{value}, {value * 2}"
        return "values, separated by commas"
    if isinstance(value, float) and value > 0:
        return f"{format_value(value / 10)}:{format_value(value * 10)}:log"
    if isinstance(value, int) and value > 0:
        return f"{max(1, value // 2)}:{value * 2}"
    return "low:high"


def _count_runs(kind: str, base: Mapping[str, Any], texts: Mapping[str, str], method: str, trials: int,
                seeds: str) -> int | None:
    """Runs the form would queue, or None while a value box cannot be read yet (the button then names why)."""
    fields = list_sweep_fields(kind, base)
    try:
        params = tuple(parse_param_text(fields[name], text) for name, text in texts.items() if name in fields)
        return SweepSpec(kind, params, method=method, trials=int(trials), seeds=parse_seeds(seeds)).n_runs
    except WorkbenchError:
        return None


def sweep_form_ui(kind: str, build_base: Callable[[], dict], key: str, validate: Callable[[], Any] | None = None) -> None:
    """The collapsed 'Sweep' section: fields, values or ranges, trials, seeds, pruning, and 'Queue sweep'.

    build_base: the page form's config (cheap: called at every rerun); validate: the page's full check (the
    model found, the rewards built), run once on Queue, as Start runs it."""
    with st.expander("Sweep: try several settings", icon=":material/tune:"):
        try:
            base = build_base()
        except WorkbenchError as err:
            st.caption(f"Fix the form first; the sweep starts from its settings. {escape_markdown(err)}")
            return
        fields = list_sweep_fields(kind, base)
        st.caption("Every trial is a run with the form's settings and the swept values, queued and started in order "
                   "(the queue's limit, on the Runs page). Same from the CLI: `python -m llmrl_core sweep start`.")
        chosen = st.multiselect(f"Fields to sweep (up to {MAX_FIELDS})", list(fields), max_selections=MAX_FIELDS,
                                key=f"{key}_fields")
        method = st.radio("Trials", list(METHODS), format_func=METHOD_LABELS.get, horizontal=True, key=f"{key}_method",
                          help="Grid tries every combination of the values. Random and TPE draw the trial count of "
                               "sets from ranges (low:high, or low:high:log) or values; TPE (Optuna) learns from "
                               "finished trials where to look next.")
        texts: dict[str, str] = {}
        for name in chosen:
            value = read_base_value(base, name)
            texts[name] = st.text_input(
                name, key=f"{key}_value_{name}", placeholder=_example(fields[name], value, method),
                help=f"Now {format_value(value)}. Values: '1e-3, 3e-4'. A range (random and TPE, numbers only): "
                     "'1e-5:1e-3', or '1e-5:1e-3:log' to draw on a log scale.")
        c_trials, c_seeds = st.columns(2)
        trials = c_trials.number_input("Trial count", min_value=1, max_value=MAX_RUNS, value=8, step=1,
                                       key=f"{key}_trials", disabled=method == "grid",
                                       help="Parameter sets to draw (random and TPE; a grid has one per combination)")
        seeds = c_seeds.text_input("Seeds", value="0", key=f"{key}_seeds",
                                   help="Every set runs once per seed ('0, 1, 2' or '0-2'); with two or more, the "
                                        "best set gets a 95% confidence interval over seeds.")
        prune = st.checkbox("Stop clearly bad trials early (Optuna's median pruner)", value=False, key=f"{key}_prune",
                            help="Once 3 runs have finished, a running trial whose result is below their median at the "
                                 "same point of its budget (past 30%) is stopped.")
        n_runs = _count_runs(kind, base, texts, method, trials, seeds) if chosen else None
        confirmed = False
        if n_runs:
            st.caption(f"{n_runs} run{'s' if n_runs != 1 else ''} to queue.")
            if n_runs > MAX_UNCONFIRMED_RUNS:
                confirmed = st.checkbox(f"Yes, queue all {n_runs} runs", key=f"{key}_confirm")
        if st.button("Queue sweep", key=f"{key}_go", disabled=not chosen):
            try:
                if validate is not None:
                    validate()
                spec = build_spec(kind, base, texts, method=method, trials=int(trials), seeds=seeds, prune=prune,
                                  confirmed=confirmed)
                from llmrl_core.runs.sweeps import create_sweep

                sweep_id = create_sweep(get_store(), spec, base)
            except WorkbenchError as err:
                st.error(escape_markdown(err))
                return
            get_run_manager().start_waiting()
            st.session_state[SELECTED_KEY] = sweep_id
            st.session_state[f"{key}_queued"] = (sweep_id, spec.describe())
        queued = st.session_state.get(f"{key}_queued")
        if queued:
            st.success(f"Sweep #{queued[0]} queued: {escape_markdown(queued[1])}.")
            try:
                st.page_link(SWEEPS_PAGE, label="Watch it on the Sweeps page", icon=":material/tune:")
            except StreamlitAPIException:  # the page runs outside the app's navigation (a page test)
                st.caption("Watch it on Runs → Sweeps.")
