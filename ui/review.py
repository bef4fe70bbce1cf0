"""UI parts for "did it work, and how do I show it": health alarms, export and the stakeholder report.

Shared by the Runs page (any run), the Compare page (a report of several runs) and the LM RL page's
live dashboard (alarms while a run trains). The engine does the work (the run kind's alarms, e.g.
llmrl_core/lm_rl/alarms.py, llmrl_core/runs/export.py, llmrl_core/present/report.py); these functions only
draw and call it, as the run's kind declares (llmrl_core/runs/kinds.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import streamlit as st

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.core.paths import get_home
from llmrl_core.present.common import escape_markdown
from llmrl_core.runs.kinds import find_kind, get_kind, list_kinds, load_part
from ui.state import get_store

SEVERITY_ICONS = {"critical": ":material/error:", "warning": ":material/warning:"}
EXPORT_LABELS = {
    "model": "Model (Hugging Face folder; SB3 .zip for a Gymnasium run)",
    "gguf": "GGUF (one file for llama.cpp, Ollama, LM Studio; with a Modelfile)",
    "metrics": "Metrics (CSV, one row per step)",
    "samples": "Samples (JSONL: prompt, completion, rewards)",
    "config": "Config (YAML the CLI accepts)",
}


@st.cache_data(show_spinner=False, max_entries=64, ttl=600)
def _read_alarms(kind: str, run_id: int, moved: tuple) -> list[dict]:
    """The run's alarms as dicts (its kind's RunKindSpec.alarms); `moved` (step, status) keys the cache so a run
    that moved is read again."""
    read_run_alarms = load_part(get_kind(kind), "alarms")
    return [alarm.to_dict() for alarm in read_run_alarms(get_store(), run_id)]


def alarms_ui(run: dict, compact: bool = False) -> int:
    """Show the run's reward-hacking and health alarms; return how many fired.

    compact=True draws one line per alarm (for the live dashboard), else each with its evidence,
    examples and what to change.
    """
    spec = find_kind(str(run.get("kind")))
    if spec is None or not spec.alarms:
        if not compact:
            watched = ", ".join(s.label for s in list_kinds() if s.alarms) or "no kind of run"
            st.caption(f"Health alarms (reward hacking, collapse, KL) watch: {escape_markdown(watched)}.")
        return 0
    try:
        alarms = _read_alarms(spec.name, int(run["id"]), (run.get("step"), run.get("status")))
    except WorkbenchError as err:
        st.warning(escape_markdown(err))
        return 0
    if not alarms:
        if not compact:
            st.success("No alarm: no sign of reward hacking, collapse or a runaway KL in what was logged so far.",
                       icon=":material/check_circle:")
        return 0
    for alarm in alarms:
        icon = SEVERITY_ICONS.get(alarm["severity"], ":material/warning:")
        since = f" (from step {alarm['from_step']})" if alarm.get("from_step") is not None else ""
        headline = f"**{escape_markdown(alarm['title'])}**{since}"
        box = st.error if alarm["severity"] == "critical" else st.warning
        if compact:
            box(f"{headline}: {escape_markdown(alarm['suggestion'])}", icon=icon)
            continue
        box(f"{headline}  \n{escape_markdown(alarm['what_it_saw'])}  \n**What to change:** "
            f"{escape_markdown(alarm['suggestion'])}", icon=icon)
        if alarm.get("examples"):
            with st.expander(f"Example completions ({len(alarm['examples'])})"):
                for text in alarm["examples"]:
                    st.text(text)  # st.text: model output shown literally
    return len(alarms)


def _default_export_path(run: dict, what: str) -> Path:
    spec = find_kind(str(run["kind"]))
    suffix = {"model": spec.model_suffix if spec is not None else "", "gguf": ".gguf", "metrics": ".csv",
              "samples": ".jsonl", "config": ".yaml"}[what]
    return get_home() / "exports" / f"run-{int(run['id']):05d}-{what}{suffix}"


def export_ui(run: dict) -> None:
    """Export one part of a run to a path on this machine (atomic; asks before overwriting)."""
    from llmrl_core.runs.export import export_run

    run_id = int(run["id"])
    spec = find_kind(str(run["kind"]))
    formats = [w for w in EXPORT_LABELS if spec is None or w in spec.export_formats]
    what = st.selectbox("What", formats, format_func=EXPORT_LABELS.get, key=f"export_what_{run_id}")
    merge = True
    if what == "model" and spec is not None and spec.exports_adapter(run.get("config") or {}):
        merge = st.radio("LoRA", ["Merge into the base model", "Adapter only"], horizontal=True,
                         key=f"export_lora_{run_id}") == "Merge into the base model"
    quant = "f16"
    if what == "gguf":
        quant = st.radio("Weights", ["f16", "q8_0"], horizontal=True, key=f"export_quant_{run_id}",
                         help="f16: half precision, the same answers. q8_0: about half the size, nearly the same.")
    out = st.text_input("Write to", str(_default_export_path(run, what)), key=f"export_out_{run_id}_{what}")
    push_to = ""
    if what in ("model", "gguf"):
        push_to = st.text_input("Then push to the Hugging Face Hub (optional)", "", placeholder="your-name/model-name",
                                key=f"export_push_{run_id}", help="Created private; uses the token of `hf auth login` "
                                                                  "or HF_TOKEN. Leave empty to keep it local.").strip()
    exists = bool(out.strip()) and Path(out).expanduser().exists()
    overwrite = False
    if exists:
        overwrite = st.checkbox(f"{Path(out).name} exists: replace it", value=False, key=f"export_over_{run_id}")
    if st.button("Export", key=f"export_go_{run_id}", disabled=exists and not overwrite):
        try:
            with st.spinner("Exporting..."):
                path = export_run(get_store(), run_id, what, out.strip(), merge_lora=merge, overwrite=overwrite,
                                  quant=quant)
        except WorkbenchError as err:
            st.error(escape_markdown(err))
            return
        st.success(f"Written to {escape_markdown(path)}.")  # escaped, so not in a code span (it would show the backslashes)
        if what == "gguf":
            _ollama_commands_ui(path, run_id)
        if push_to:
            _push_ui(path, push_to)
        if path.is_file() and path.stat().st_size < 50_000_000:
            st.download_button("Download it", path.read_bytes(), file_name=path.name, key=f"export_dl_{run_id}")
    cli = f"python -m llmrl_core export {run_id} --what {what}" + (f" --quant {quant}" if what == "gguf" else "")
    st.caption(f"Same from the CLI: `{cli} --out PATH`" + (" `--push-to REPO_ID`" if push_to else "") + ".")


def _ollama_commands_ui(path: Path, run_id: int) -> None:
    """The two commands that run an exported GGUF in Ollama (its Modelfile is beside it)."""
    from llmrl_core.runs.export import name_gguf_siblings

    modelfile = name_gguf_siblings(path)["Modelfile"]
    if not modelfile.is_file():
        return
    name = f"run-{run_id}"
    st.markdown("Run it in Ollama:")
    st.code(f"cd {path.parent}\nollama create {name} -f {modelfile.name}\nollama run {name}", language="bash")


def _push_ui(path: Path, repo_id: str) -> None:
    """Upload the export to a private Hub repo and say where it went (or why not, in one line)."""
    from llmrl_core.lm.hub_push import push_export

    try:
        with st.spinner(f"Pushing to {repo_id}..."):
            url = push_export(path, repo_id)
    except WorkbenchError as err:
        st.error(escape_markdown(err))
        return
    st.success(f"Pushed to {escape_markdown(url)} (private).")


def report_ui(run_ids: Sequence[int], key: str) -> None:
    """Build the self-contained HTML report (and a PNG of the main chart for one run), then offer the downloads."""
    from llmrl_core.present.report import write_report, write_report_png

    run_ids = [int(r) for r in run_ids]
    if not run_ids:
        return
    name = f"run-{run_ids[0]:05d}" if len(run_ids) == 1 else "compare-" + "-".join(str(r) for r in run_ids[:6])
    folder = get_home() / "reports"
    if st.button("Build the report", key=f"report_go_{key}", type="primary",
                 help="One HTML file that opens offline in any browser: goal, config, curves, before/after, "
                      "alarms, best and worst samples (and the episode player for Gymnasium runs)."):
        try:
            with st.spinner("Writing the report..."):
                html_path = write_report(get_store(), run_ids, folder / f"{name}.html")
                png_path = write_report_png(get_store(), run_ids[0], folder / f"{name}.png") if len(run_ids) == 1 else None
        except WorkbenchError as err:
            st.error(escape_markdown(err))
            return
        st.session_state[f"report_paths_{key}"] = (str(html_path), str(png_path) if png_path else None)
    paths = st.session_state.get(f"report_paths_{key}")
    if paths:
        html_path, png_path = Path(paths[0]), Path(paths[1]) if paths[1] else None
        c_html, c_png = st.columns(2)
        if html_path.is_file():
            c_html.download_button("Download the report (HTML)", html_path.read_bytes(), file_name=html_path.name,
                                   mime="text/html", key=f"report_dl_{key}")
        if png_path is not None and png_path.is_file():
            c_png.download_button("Download the main chart (PNG)", png_path.read_bytes(), file_name=png_path.name,
                                  mime="image/png", key=f"report_png_{key}")
        st.caption(f"Also saved as `{escape_markdown(html_path)}`.")
    ids = " ".join(str(r) for r in run_ids)
    st.caption(f"Same from the CLI: `python -m llmrl_core report {ids} --out report.html`.")
