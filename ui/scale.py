"""The LM RL form's "Scale and trackers" tab: processes, machines and strategy (Hugging Face Accelerate),
the memory estimate before Start, the commands for other machines, and the trackers that mirror metrics.

The run manager launches `accelerate launch ... -m llmrl_core worker RUN_ID` when num_processes > 1
(llmrl_core/runs/launch.py); this tab only edits the config and shows what will happen.
"""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st
import yaml

from llmrl_core.core.errors import WorkbenchError
from llmrl_core.present.common import escape_markdown

TRACKERS = ("tensorboard", "mlflow", "wandb", "trackio")


@st.cache_data(show_spinner=False, max_entries=8)
def _read_model_facts(spec: str) -> dict[str, Any] | None:
    """Parameter count and shapes of a model from its config.json alone (no weights loaded, nothing converted or
    downloaded: None until the model is on disk)."""
    from transformers import AutoConfig

    from llmrl_core.lm_rl.preflight import find_model_config
    from llmrl_core.lm_rl.memory import read_model_facts

    found = find_model_config(spec)
    if not found:
        return None
    found = dict(found)
    return read_model_facts(AutoConfig.for_model(found.pop("model_type"), **found))


def memory_estimate_ui(cfg: dict, device: str) -> None:
    """'needs about N GiB per GPU with ZeRO-2': weights, gradients, optimizer state and activations."""
    from llmrl_core.lm_rl.memory import estimate_from_config

    try:
        facts = _read_model_facts(str(cfg.get("model")))
        if facts is None:
            st.caption("The memory estimate appears once the model is on this machine (load it in the Playground, "
                       "or `python -m llmrl_core prepare` for the bundled one).")
            return
        estimate = estimate_from_config(cfg, facts)  # RLConfig's num_processes, num_machines, distributed_strategy
    except (WorkbenchError, OSError, ValueError) as err:
        st.caption(f"No memory estimate: {escape_markdown(err)}")
        return
    st.info(f"This run {escape_markdown(estimate.describe(device))}.", icon=":material/memory:")
    parts = {name: value for name, value in estimate.as_dict().items() if value and name != "total per device"}
    st.caption(" · ".join(f"{name} {value / 2**30:.2f} GiB" for name, value in parts.items()))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def other_machines_ui(cfg: dict) -> None:
    """The Accelerate config the worker will use and the command to run on each other machine."""
    from llmrl_core.runs.launch import build_accelerate_config, describe_other_machine_commands

    processes, machines = int(cfg.get("num_processes") or 1), int(cfg.get("num_machines") or 1)
    if processes <= 1:
        return
    use_cpu = not _has_cuda()
    topology = dict(num_processes=processes, num_machines=machines, main_process_ip=cfg.get("main_process_ip"),
                    main_process_port=int(cfg.get("main_process_port") or 29500))
    try:
        accelerate_config = build_accelerate_config(strategy=cfg.get("distributed_strategy", "ddp"), use_cpu=use_cpu,
                                                    **topology)
        commands = describe_other_machine_commands(0, config_path="run-NNNNN/accelerate.yaml", use_cpu=use_cpu,
                                                   **topology) if machines > 1 else []
    except WorkbenchError as err:
        st.error(escape_markdown(err))
        return
    with st.expander("Accelerate config (also usable with `accelerate launch` by hand)"):
        st.code(yaml.safe_dump(accelerate_config, sort_keys=False), language="yaml")
    if commands:
        st.markdown("**On each other machine**, once the run has started (its id replaces 0):")
        st.code("\n".join(commands), language="bash")
        st.caption("The run waits for them; it fails with a message when they do not join in time.")


def scale_ui(field: Callable[..., Any], cfg: dict) -> None:
    """Draw the fields through the page's `field(name, label=..., container=...)` and the estimate below them."""
    device = "GPU" if _has_cuda() else "CPU process"
    c1, c2, c3 = st.columns(3)
    field("num_processes", "Processes", container=c1, min_value=1)
    field("num_machines", "Machines", container=c2, min_value=1)
    field("distributed_strategy", "Strategy", container=c3)
    if int(cfg.get("num_machines") or 1) > 1:
        c4, c5 = st.columns(2)
        field("main_process_ip", "Main machine's address", container=c4)
        field("main_process_port", "Port", container=c5)
    field("report_to", "Mirror metrics to (comma-separated: tensorboard, mlflow, wandb, trackio)")
    st.caption("TensorBoard and MLflow write under $LLMRL_HOME/trackers and work offline; wandb and trackio need "
               "their package and a network, and a run asking for them fails at once when either is missing.")
    st.divider()
    memory_estimate_ui(cfg, device)
    other_machines_ui(cfg)
