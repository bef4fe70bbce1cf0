"""Run a worker on several processes and machines through Hugging Face Accelerate.

A multi-process run is the ordinary worker (``python -m llmrl_core worker RUN_ID``) started by
``accelerate launch`` instead of by itself. This module writes the Accelerate config file the
launch reads (shown on the page, usable by hand) and builds the launch command for this machine
and, for several machines, the command to run on each other one.

Keys follow the file ``accelerate config`` writes (accelerate.commands.config.cluster) and are
checked against Accelerate's own classes: the top level by ClusterConfig, the nested
deepspeed_config and fsdp_config keys by the flags of ``accelerate launch``, which is how the
launcher reads them (``fsdp_config.x`` becomes ``--fsdp_x``).

Two facts of Accelerate 1.x on CPUs shape the DDP file (checked by a real 2-process launch in the
tests): ``distributed_type: MULTI_CPU`` makes ``accelerate launch`` start a single process unless
mpirun is configured, so CPU data parallelism is written as ``MULTI_GPU`` with ``use_cpu: true``,
which starts the processes through torchrun; and those processes join one gloo process group only
when their ``Accelerator`` is created with ``cpu=True`` (or ACCELERATE_USE_CPU=true in their
environment, see `get_launch_env`), since the torchrun path does not pass ``use_cpu`` on.
A job run this way must end with ``accelerator.end_training()`` (it destroys the process group):
without it a gloo process that did all its work can still die at exit with SIGABRT ("terminate
called without an active exception"), 2 launches in 8 here, and torchrun then fails the launch.
Destroying the group is not always enough: about 1 two-process launch in 30 still aborted after it, in
the interpreter's teardown (no Python frame left), so a launched process leaves through `exit_rank`.

A launched process learns what it is from the environment torchrun sets (`is_distributed_launch`,
`uses_cpu`) and joins the process group through `init_process_group` (the worker) or
`make_accelerator` (a training job); every collective then waits at most COLLECTIVE_TIMEOUT_S.
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

import yaml

from llmrl_core.core.errors import InputError

STRATEGIES = ("single", "ddp", "fsdp", "zero2", "zero3")
MIXED_PRECISION = ("no", "fp16", "bf16")
DISTRIBUTED_TYPES = {"single": "NO", "ddp": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}
DEFAULT_PORT = 29500  # torch.distributed's customary rendezvous port

# A collective waits at most this long for the other processes: it bounds how long other machines
# may take to join, and how long a multi-process run may stay paused (the other ranks wait in the
# stop broadcast while the main one is paused).
COLLECTIVE_TIMEOUT_S = 3 * 3600

# FSDP2 settings for fine-tuning a Hugging Face causal LM (the choices `accelerate config` offers first).
FSDP_DEFAULTS: dict[str, Any] = {
    "fsdp_version": 2,
    "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # one shard unit per decoder layer (model._no_split_modules)
    "fsdp_reshard_after_forward": True,  # FULL_SHARD: weights gathered per layer, freed after use (ZeRO-3)
    "fsdp_offload_params": False,
    "fsdp_state_dict_type": "FULL_STATE_DICT",  # checkpoints stay ordinary Hugging Face folders
    "fsdp_cpu_ram_efficient_loading": True,  # rank 0 reads the weights, the others receive them...
    "fsdp_sync_module_states": True,  # ...which Accelerate requires with the line above
    "fsdp_activation_checkpointing": False,
}


def _check_topology(num_processes: int, num_machines: int, machine_rank: int, main_process_ip: str | None,
                    main_process_port: int) -> None:
    """Raise InputError for process and machine counts Accelerate would reject or misread."""
    if int(num_processes) < 1 or int(num_machines) < 1:
        raise InputError(f"processes and machines must be at least 1 (got {num_processes} processes, {num_machines} machines).")
    if num_processes % num_machines:
        raise InputError(f"The total of {num_processes} processes does not split evenly over {num_machines} machines; "
                         "give every machine the same number of processes.")
    if not 0 <= int(machine_rank) < num_machines:
        raise InputError(f"machine_rank must be between 0 and {num_machines - 1} (got {machine_rank}).")
    if num_machines > 1 and not main_process_ip:
        raise InputError("Several machines need the main machine's address (main_process_ip) that the others can reach.")
    if not 1024 <= int(main_process_port) <= 65535:
        raise InputError(f"main_process_port must be between 1024 and 65535 (got {main_process_port}).")


def _launch_flags() -> set[str]:
    """The option names ``accelerate launch`` accepts (its own parser, so they match the installed version)."""
    from accelerate.commands.launch import launch_command_parser

    return {option.lstrip("-") for action in launch_command_parser()._actions for option in action.option_strings}


def build_accelerate_config(*, strategy: str, num_processes: int, num_machines: int = 1, machine_rank: int = 0,
                            main_process_ip: str | None = None, main_process_port: int = DEFAULT_PORT,
                            mixed_precision: str = "no", zero_stage: int | None = None,
                            fsdp_options: Mapping[str, Any] | None = None, use_cpu: bool = False) -> dict[str, Any]:
    """The Accelerate config as a dict (what `write_accelerate_config` saves); see there for the arguments."""
    if strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    if mixed_precision not in MIXED_PRECISION:
        raise InputError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)} (got {mixed_precision!r}).")
    _check_topology(num_processes, num_machines, machine_rank, main_process_ip, main_process_port)
    if strategy == "single" and (num_processes != 1 or num_machines != 1):
        raise InputError(f"strategy 'single' runs one process; pick 'ddp', 'fsdp', 'zero2' or 'zero3' for {num_processes}.")
    if use_cpu and strategy in ("fsdp", "zero2", "zero3"):
        raise InputError(f"strategy {strategy!r} needs GPUs (NCCL); on CPUs use 'ddp', which shards nothing but runs "
                         "the processes in parallel.")
    stage = {"zero2": 2, "zero3": 3}.get(strategy)
    if zero_stage is not None and zero_stage != stage:
        raise InputError(f"zero_stage={zero_stage} contradicts strategy {strategy!r}; pick strategy 'zero2' or 'zero3' instead.")
    if fsdp_options and strategy != "fsdp":
        raise InputError(f"fsdp_options only apply to strategy 'fsdp' (got strategy {strategy!r}).")

    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": DISTRIBUTED_TYPES[strategy],
        "num_processes": int(num_processes),  # the total over all machines
        "num_machines": int(num_machines),
        "machine_rank": int(machine_rank),
        "main_process_port": int(main_process_port),
        "mixed_precision": mixed_precision,
        "use_cpu": bool(use_cpu),
        "debug": False,
        "rdzv_backend": "static",
        "same_network": True,
    }
    if main_process_ip:
        config["main_process_ip"] = str(main_process_ip)
    if stage is not None:
        config["deepspeed_config"] = {
            "zero_stage": stage,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "gradient_accumulation_steps": 1,  # the trainer splits its batch itself (grad_accum_steps)
            "zero3_init_flag": stage == 3,  # build the model already sharded
            **({"zero3_save_16bit_model": True} if stage == 3 else {}),  # checkpoints as one gathered model
        }
    if strategy == "fsdp":
        options = {(key if key.startswith("fsdp_") else f"fsdp_{key}"): value for key, value in (fsdp_options or {}).items()}
        config["fsdp_config"] = {**FSDP_DEFAULTS, **options}
        unknown = sorted(key for key in config["fsdp_config"] if key not in _launch_flags())
        if unknown:
            raise InputError(f"Unknown FSDP option(s) {', '.join(unknown)}; `accelerate launch --help` lists the fsdp_* options.")
    return config


def write_accelerate_config(path: Path | str, *, strategy: str, num_processes: int, num_machines: int = 1,
                            machine_rank: int = 0, main_process_ip: str | None = None,
                            main_process_port: int = DEFAULT_PORT, mixed_precision: str = "no",
                            zero_stage: int | None = None, fsdp_options: Mapping[str, Any] | None = None,
                            use_cpu: bool = False) -> Path:
    """Write an Accelerate config YAML for `strategy` and return its path.

    strategy: 'single' (one process), 'ddp' (replicas, averaged gradients), 'fsdp' (FSDP2, fully
    sharded), 'zero2' / 'zero3' (DeepSpeed ZeRO stage 2 / 3). `num_processes` is the total over
    `num_machines`; `main_process_ip` and `main_process_port` are where the other machines find rank 0.
    `zero_stage` may restate the stage of 'zero2'/'zero3'; `fsdp_options` override FSDP_DEFAULTS
    (names with or without the 'fsdp_' prefix, as in the YAML). `use_cpu`: processes on CPUs with gloo.
    """
    config = build_accelerate_config(
        strategy=strategy, num_processes=num_processes, num_machines=num_machines, machine_rank=machine_rank,
        main_process_ip=main_process_ip, main_process_port=main_process_port, mixed_precision=mixed_precision,
        zero_stage=zero_stage, fsdp_options=fsdp_options, use_cpu=use_cpu)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Accelerate config written by the LLM·RL Workbench (strategy: {strategy}).\n"
    if strategy == "ddp" and use_cpu:
        header += ("# MULTI_GPU with use_cpu: true starts the processes through torchrun on CPUs (MULTI_CPU would start\n"
                   "# one process without mpirun); the job's Accelerator must be made with cpu=True.\n")
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def get_launch_env(use_cpu: bool = False) -> dict[str, str]:
    """Environment variables a launch needs beyond the command: ACCELERATE_USE_CPU for CPU processes."""
    return {"ACCELERATE_USE_CPU": "true"} if use_cpu else {}


def build_launch_command(run_id: int, *, config_path: Path | str, num_processes: int, num_machines: int = 1,
                         machine_rank: int = 0, main_process_ip: str | None = None,
                         main_process_port: int = DEFAULT_PORT, python: str = sys.executable,
                         store_path: Path | str | None = None) -> list[str]:
    """The argv that starts run `run_id`'s worker on this machine's processes through ``accelerate launch``.

    ``python -m accelerate.commands.launch`` is the ``accelerate`` script of the same interpreter (no
    reliance on PATH); ``-m llmrl_core worker RUN_ID`` makes every process run the worker module.
    """
    _check_topology(num_processes, num_machines, machine_rank, main_process_ip, main_process_port)
    command = [python, "-m", "accelerate.commands.launch", "--config_file", str(config_path),
               "--num_processes", str(num_processes), "--num_machines", str(num_machines),
               "--machine_rank", str(machine_rank)]
    if main_process_ip:
        command += ["--main_process_ip", str(main_process_ip)]
    command += ["--main_process_port", str(main_process_port), "-m", "llmrl_core", "worker", str(int(run_id))]
    if store_path is not None:
        command += ["--store", str(store_path)]
    return command


def describe_other_machine_commands(run_id: int, *, config_path: Path | str, num_processes: int, num_machines: int,
                                    main_process_ip: str, main_process_port: int = DEFAULT_PORT,
                                    python: str = "python", store_path: Path | str | None = None,
                                    use_cpu: bool = False) -> list[str]:
    """The shell command to run on each other machine (ranks 1 .. num_machines-1), in rank order.

    Each machine needs the workbench, the same config file at `config_path` and `python` naming its
    interpreter; the run starts once every machine has joined rank 0 at main_process_ip:main_process_port.
    """
    if num_machines < 2:
        return []
    prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in get_launch_env(use_cpu).items())
    commands = []
    for rank in range(1, num_machines):
        argv = build_launch_command(run_id, config_path=config_path, num_processes=num_processes,
                                    num_machines=num_machines, machine_rank=rank, main_process_ip=main_process_ip,
                                    main_process_port=main_process_port, python=python, store_path=store_path)
        commands.append(f"{prefix} {shlex.join(argv)}".strip())
    return commands


# ---------------------------------------------------------------------- inside a launched process


def is_distributed_launch() -> bool:
    """True in a process started by ``accelerate launch`` / torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def uses_cpu(device: str = "auto") -> bool:
    """True when the launched processes run on CPUs (gloo): asked for, set by the launch, or no CUDA here."""
    import torch

    return (device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
            or not torch.cuda.is_available())


def init_process_group() -> Any:
    """Join the launch's process group (Accelerate's PartialState), waiting COLLECTIVE_TIMEOUT_S for the others."""
    from accelerate import PartialState

    return PartialState(cpu=uses_cpu(), timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))


def make_accelerator(cpu: bool) -> Any:
    """The Accelerator of a launched process; its process group waits COLLECTIVE_TIMEOUT_S for the others."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    return Accelerator(cpu=cpu, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))])


def exit_rank(code: int) -> None:
    """End this launched process now with `code`, after its work is done and its process group destroyed.

    Why not a normal exit: in the interpreter's teardown gloo's C++ threads can still abort the process
    ("terminate called without an active exception", about 1 two-process CPU launch in 30 here, after
    destroy_process_group), and torchrun then fails the whole launch for a rank that finished. os._exit
    skips that teardown; stdio is flushed first, and the run store has committed everything by now.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
