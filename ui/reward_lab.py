"""Reusable reward panels: an editor for a weighted list of rewards, and a lab to try them on text.

`reward_editor_ui(key, allow_custom_code, reason)` returns reward specs (plain dicts that a
run's config stores and llmrl_core.lm_rl.rewards.build_reward_set turns into functions);
`reward_lab_ui(specs, key)` scores typed completions, or fresh samples from the loaded
model, with those specs and shows every reward and the weighted total in a table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.lm_rl.rewards import REWARD_TYPES, RewardType, build_reward, build_reward_set, parse_spec
from llmrl_core.core.security import custom_code_allowed
from llmrl_core.present.common import escape_markdown

DEFAULT_SPECS = [{"type": "vader", "name": "sentiment", "weight": 1.0}]
SEPARATOR = "---"  # a line holding only this separates typed completions
DEFAULT_COMPLETIONS = "was sunny and everyone in the park was smiling.\n---\nwas grey, cold and miserable.\n---\nwas."


def custom_code_policy_ui() -> tuple[bool, str]:
    """Whether this server may run custom reward code, and the sentence saying why (from server.address)."""
    return custom_code_allowed(st.get_option("server.address"))


# --------------------------------------------------------------------------- editor


def _rows(key: str, initial: list[dict] | None = None) -> list[dict]:
    """The editor's rows in session state: [{"uid", "spec"}], seeded once from `initial` or DEFAULT_SPECS."""
    rows_key = f"{key}_rows"
    if rows_key not in st.session_state:
        seed = [s for s in (DEFAULT_SPECS if initial is None else initial) if s.get("type") in REWARD_TYPES]
        st.session_state[rows_key] = [{"uid": i, "spec": dict(s)} for i, s in enumerate(seed)]
        st.session_state[f"{key}_next_uid"] = len(seed)
    return st.session_state[rows_key]


def _add_row(key: str) -> None:
    type_key = st.session_state[f"{key}_new_type"]
    uid = st.session_state[f"{key}_next_uid"]
    st.session_state[f"{key}_next_uid"] = uid + 1
    taken = {row["spec"].get("name") or row["spec"]["type"] for row in _rows(key)}
    name, k = type_key, 2
    while name in taken:
        name, k = f"{type_key}_{k}", k + 1
    _rows(key).append({"uid": uid, "spec": {"type": type_key, "name": name, "weight": 1.0}})


def _remove_row(key: str, uid: int) -> None:
    st.session_state[f"{key}_rows"] = [row for row in _rows(key) if row["uid"] != uid]


def _param_widget_ui(rtype: RewardType, param: str, value: Any, wkey: str) -> Any:
    """One widget for one parameter, chosen by its default's type."""
    default = rtype.params[param]
    label = param[:-2] + " (s)" if param.endswith("_s") else param  # timeout_s -> timeout (s)
    label, help_text = label.replace("_", " "), rtype.help.get(param)
    if param in rtype.choices:
        options = list(rtype.choices[param])
        return st.selectbox(label, options, index=options.index(value) if value in options else 0, key=wkey, help=help_text)
    if isinstance(default, bool):
        return st.checkbox(label, value=bool(value), key=wkey, help=help_text)
    if isinstance(default, int):
        return int(st.number_input(label, value=int(value), step=1, key=wkey, help=help_text))
    if isinstance(default, float):
        return float(st.number_input(label, value=float(value), step=0.5, format="%g", key=wkey, help=help_text))
    if isinstance(default, (list, tuple)):
        text = st.text_input(label, value=", ".join(map(str, value or [])), key=wkey, help=help_text)
        return [w.strip() for w in text.split(",") if w.strip()]
    if param == "code":
        return st.text_area(label, value=str(value), height=180, key=wkey, help=help_text)
    return st.text_input(label, value=str(value), key=wkey, help=help_text)


def _reward_row_ui(key: str, row: dict, allow_custom_code: bool, reason: str) -> dict:
    """An expander editing one reward; returns its current spec."""
    uid, spec = row["uid"], row["spec"]
    rtype = REWARD_TYPES[spec["type"]]
    base = f"{key}_{uid}"
    name = st.session_state.get(f"{base}_name", spec.get("name") or rtype.key)
    weight = st.session_state.get(f"{base}_weight", float(spec.get("weight", 1.0)))
    with st.expander(f"{escape_markdown(name)} · {rtype.label} · weight {weight:g}", expanded=True):
        st.caption(rtype.description)
        c_name, c_weight, c_remove = st.columns([3, 2, 1], vertical_alignment="bottom")
        name = c_name.text_input("Name", value=spec.get("name") or rtype.key, key=f"{base}_name",
                                 help="Shown in tables and metrics as rewards/<name>/mean.")
        weight = c_weight.number_input("Weight", value=float(spec.get("weight", 1.0)), step=0.1, format="%g",
                                       key=f"{base}_weight", help="The total is the weighted sum of the rewards.")
        c_remove.button("Remove", key=f"{base}_remove", on_click=_remove_row, args=(key, uid), width="stretch")
        if rtype.runs_user_code and not allow_custom_code:
            st.warning(reason)
        if rtype.needs_network:
            st.caption("A hub id needs the network unless the model is already cached; a local folder always works.")
        params = {p: _param_widget_ui(rtype, p, spec.get(p, d), f"{base}_{p}") for p, d in rtype.params.items()}
        current = {"type": rtype.key, "name": name, "weight": weight, **params}
        try:
            parse_spec(current, allow_custom_code)
            if not (rtype.loads_model or rtype.runs_user_code):
                build_reward(current)  # instant for these: also checks value rules (fall-off > 0, valid regex)
        except WorkbenchError as err:
            st.error(escape_markdown(err))  # may quote the user's pattern or words
    return current  # row["spec"] keeps the initial values, so widget defaults never change under their keys


def reward_editor_ui(key: str, allow_custom_code: bool, reason: str, initial: list[dict] | None = None) -> list[dict]:
    """Edit a weighted list of rewards; returns their specs (every shown reward, valid or not).

    `initial` seeds the editor the first time it renders under `key` (e.g. a cloned run's specs);
    later reruns keep what the user edited.
    """
    specs = [_reward_row_ui(key, row, allow_custom_code, reason) for row in list(_rows(key, initial))]
    if not specs:
        st.info("No reward yet: add one below.")
    offered = [k for k, t in REWARD_TYPES.items() if allow_custom_code or not t.runs_user_code]
    c_type, c_add = st.columns([4, 1], vertical_alignment="bottom")
    c_type.selectbox("Add a reward", offered, format_func=lambda k: REWARD_TYPES[k].label, key=f"{key}_new_type")
    c_add.button("Add", key=f"{key}_add", on_click=_add_row, args=(key,), width="stretch")
    if not allow_custom_code:
        st.caption(reason)
    return specs


# --------------------------------------------------------------------------- lab


def split_completions(text: str) -> list[str]:
    """Completions typed in one box, separated by lines holding only ---; blank ones dropped."""
    parts, current = [], []
    for line in text.splitlines():
        if line.strip() == SEPARATOR:
            parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current))
    return [p.strip("\n") for p in parts if p.strip()]


def score_table(specs: list[dict], prompts: list[str], completions: list[str], allow_custom_code: bool,
                **columns: Any) -> pd.DataFrame:
    """Build the rewards, score the completions, and return completion, each reward, and total as a frame."""
    with build_reward_set(specs, allow_custom_code=allow_custom_code) as rewards:
        scores = rewards.score(prompts, completions, **columns)
    return pd.concat([pd.DataFrame({"completion": completions}), scores.as_frame()], axis=1)


def _token_ids(completions: list[str]) -> list[list[int]] | None:
    """Token ids of typed text under the loaded model's tokenizer (for length in tokens), if one is loaded."""
    from ui.state import get_model_holder

    loaded = get_model_holder().current
    if loaded is None:
        return None
    return loaded.tokenizer(completions, add_special_tokens=False)["input_ids"]


def _sample_ui(key: str, prompt: str) -> tuple[list[str], list[list[int]]] | None:
    """Sample completions of `prompt` from the loaded model (loading the default first if needed)."""
    from llmrl_core.lm.generation import SamplingConfig, generate
    from ui.state import ensure_model_ui

    n = int(st.session_state.get(f"{key}_n", 4))
    max_new = int(st.session_state.get(f"{key}_max_new", 32))
    loaded = ensure_model_ui()
    if loaded is None:
        return None
    with st.spinner(f"Sampling {n} completions…"):
        result = generate(loaded, [prompt], SamplingConfig(n=n, max_new_tokens=max_new))
    return [c.text for c in result.completions], [c.token_ids for c in result.completions]


def reward_lab_ui(specs: list[dict], key: str) -> None:
    """Score typed text or fresh model samples with `specs`; shows each reward and the weighted total."""
    source = st.radio("Completions", ["Typed text", "Samples from the loaded model"], horizontal=True, key=f"{key}_source")
    c_prompt, c_answer = st.columns([3, 1])
    prompt = c_prompt.text_input("Prompt", value="The weather today", key=f"{key}_prompt")
    answer = c_answer.text_input("answer column (optional)", value="", key=f"{key}_answer",
                                 help="Passed to the rewards as the answer column, for exact-answer rewards.")
    if source == "Typed text":
        typed = st.text_area(f"Completions (separate them with a line holding only {SEPARATOR})",
                             value=DEFAULT_COMPLETIONS, height=150, key=f"{key}_typed")
        clicked = st.button("Score", key=f"{key}_score", type="primary")
    else:
        c_n, c_max = st.columns(2)
        c_n.number_input("Samples", 1, 16, 4, key=f"{key}_n")
        c_max.number_input("Max new tokens", 1, 512, 32, key=f"{key}_max_new")
        clicked = st.button("Sample and score", key=f"{key}_sample", type="primary")
    result_key = f"{key}_result"
    if clicked:
        st.session_state.pop(result_key, None)
        try:
            if source == "Typed text":
                completions, ids = split_completions(typed), None
                if not completions:
                    raise WorkbenchError("Type at least one completion to score.")
                ids = _token_ids(completions)
            else:
                sampled = _sample_ui(key, prompt)
                if sampled is None:
                    return
                completions, ids = sampled
            columns: dict[str, Any] = {}
            if answer.strip():
                columns["answer"] = [answer.strip()] * len(completions)
            if ids is not None:
                columns["completion_ids"] = ids
            allowed, _ = custom_code_policy_ui()
            table = score_table(specs, [prompt] * len(completions), completions, allowed, **columns)
            names = [c for c in table.columns if c not in ("completion", "total")]
            weights = " + ".join(f"{float(s.get('weight', 1.0)):g} × {n}" for s, n in zip(specs, names))
            st.session_state[result_key] = (table, f"total = {weights} (a reward that returns None is left out)")
        except WorkbenchError as err:
            st.error(escape_markdown(err))  # may quote the typed completion or the pattern
    result = st.session_state.get(result_key)
    if result is not None:  # kept across reruns until the next score
        table, formula = result
        st.caption(formula)
        st.dataframe(table, hide_index=True, column_config={"completion": st.column_config.TextColumn(width="large")})
