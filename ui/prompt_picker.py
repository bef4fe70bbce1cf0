"""A reusable panel to choose RL prompts: a built-in set, an uploaded file, or a Hugging Face dataset.

Pages call `prompt_picker_ui(key)` and get back a source description (what a run's config
stores) and the prompt frame, or None while nothing usable is chosen. Errors are shown
in place and leave nothing half-loaded.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.lm_rl.prompts import BUILTIN_PROMPT_SETS, FILE_TYPES, MAX_UPLOAD_BYTES, load_prompt_set, read_prompt_upload
from llmrl_core.present.common import escape_markdown

PREVIEW_ROWS = 8  # rows shown under the picker
MODES = ("Built-in set", "Upload a file", "Hugging Face dataset")


@st.cache_data(show_spinner=False, max_entries=16)
def _load_builtin(name: str) -> pd.DataFrame:
    return load_prompt_set(name)


def show_prompt_preview_ui(frame: pd.DataFrame) -> None:
    """Row count, columns and the first rows (st.dataframe escapes the text)."""
    extra = [c for c in frame.columns if c != "prompt"]
    st.caption(f"{len(frame)} prompts" + (f" · extra columns passed to rewards: {', '.join(map(str, extra))}" if extra else ""))
    st.dataframe(frame.head(PREVIEW_ROWS), hide_index=True)


def _builtin_ui(key: str) -> tuple[str, pd.DataFrame | None]:
    name = st.selectbox("Prompt set", list(BUILTIN_PROMPT_SETS), key=f"{key}_builtin")
    st.caption(BUILTIN_PROMPT_SETS[name])
    return name, _load_builtin(name)


def _upload_ui(key: str) -> tuple[str, pd.DataFrame | None]:
    upload = st.file_uploader(
        "Prompt file", type=[t.lstrip(".") for t in FILE_TYPES], key=f"{key}_upload",
        max_upload_size=MAX_UPLOAD_BYTES // 2**20,
        help="CSV or JSON(L) with a 'prompt' column (other columns, e.g. 'answer', go to the rewards), "
             "or a .txt file with one prompt a line. UTF-8, up to 50 MB.",
    )
    if upload is None:
        st.caption("Upload a .csv, .jsonl, .json or .txt file.")
        return "", None
    cache_key = f"{key}_parsed"
    cached = st.session_state.get(cache_key)
    if cached is None or cached[0] != upload.file_id:  # parse each upload once, not on every rerun
        try:
            result: pd.DataFrame | str = read_prompt_upload(upload.name, upload.getvalue())
        except WorkbenchError as err:
            result = str(err)
        st.session_state[cache_key] = cached = (upload.file_id, result)
    if isinstance(cached[1], str):
        st.error(escape_markdown(cached[1]))  # quotes the file name
        return f"upload:{upload.name}", None
    return f"upload:{upload.name}", cached[1]


def _hub_ui(key: str) -> tuple[str, pd.DataFrame | None]:
    col_id, col_btn = st.columns([4, 1], vertical_alignment="bottom")
    dataset = col_id.text_input("Dataset id[:split]", placeholder="openai/gsm8k:train", key=f"{key}_hf_id",
                                help="A Hugging Face dataset with a 'prompt' column; the split defaults to train.")
    state_key = f"{key}_hf_loaded"
    if col_btn.button("Load", key=f"{key}_hf_load", width="stretch"):
        source = f"hf:{dataset.strip()}"
        with st.spinner(f"Loading {dataset}…"):
            try:
                st.session_state[state_key] = (source, load_prompt_set(source))
            except WorkbenchError as err:
                st.session_state[state_key] = (source, str(err))
    loaded = st.session_state.get(state_key)
    if loaded is None:
        st.caption("Needs the Hugging Face hub; offline, download the data as .csv or .jsonl and upload it.")
        return "", None
    source, result = loaded
    if isinstance(result, str):
        st.error(escape_markdown(result))  # quotes the dataset id
        return source, None
    return source, result


def prompt_picker_ui(key: str) -> tuple[str, pd.DataFrame | None]:
    """Pick prompts; returns (source, frame): a built-in name, 'upload:<file>' or 'hf:<id>', and the frame or None."""
    mode = st.radio("Prompts from", MODES, horizontal=True, key=f"{key}_mode")
    if mode == MODES[0]:
        source, frame = _builtin_ui(key)
    elif mode == MODES[1]:
        source, frame = _upload_ui(key)
    else:
        source, frame = _hub_ui(key)
    if frame is not None:
        show_prompt_preview_ui(frame)
    return source, frame
