"""Accelerate configs and launch commands, checked with Accelerate itself, and a real 2-process CPU launch."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from functools import lru_cache

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.runs.launch import (
    build_launch_command,
    describe_other_machine_commands,
    get_launch_env,
    write_accelerate_config,
)


@lru_cache(maxsize=1)
def read_launch_help() -> str:
    """`accelerate launch --help` of the installed Accelerate, as a user would read it."""
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def documented_flags() -> set[str]:
    """Every option the help text documents, e.g. 'num_processes', 'm', 'module'."""
    return set(re.findall(r"(?<![\w-])--?([A-Za-z][\w-]*)", read_launch_help()))


def load_with_accelerate(path):
    from accelerate.commands.config.config_args import ClusterConfig

    return ClusterConfig.from_yaml_file(yaml_file=str(path))


@pytest.mark.parametrize("strategy, distributed_type", [
    ("single", "NO"), ("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"),
])
def test_config_loads_with_accelerates_own_class(tmp_path, strategy, distributed_type):
    n = 1 if strategy == "single" else 4
    path = write_accelerate_config(tmp_path / "accelerate.yaml", strategy=strategy, num_processes=n,
                                   mixed_precision="bf16", main_process_port=29611)
    cfg = load_with_accelerate(path)
    assert cfg.distributed_type.value == distributed_type
    assert (cfg.num_processes, cfg.num_machines, cfg.machine_rank, cfg.main_process_port) == (n, 1, 0, 29611)
    assert cfg.mixed_precision == "bf16" and cfg.use_cpu is False
    if strategy.startswith("zero"):
        assert cfg.deepspeed_config["zero_stage"] == int(strategy[-1])
    if strategy == "fsdp":
        assert cfg.fsdp_config["fsdp_version"] == 2 and cfg.fsdp_config["fsdp_reshard_after_forward"] is True
    # The launcher turns deepspeed_config.x into --x and fsdp_config.x into --fsdp_x: each must be a documented flag.
    nested = list(cfg.deepspeed_config) + list(cfg.fsdp_config)
    assert nested == [] or set(nested) <= documented_flags()


def test_several_machines_and_fsdp_options(tmp_path):
    path = write_accelerate_config(tmp_path / "a.yaml", strategy="fsdp", num_processes=8, num_machines=2,
                                   machine_rank=1, main_process_ip="10.0.0.1",
                                   fsdp_options={"offload_params": True, "fsdp_activation_checkpointing": True})
    cfg = load_with_accelerate(path)
    assert (cfg.num_processes, cfg.num_machines, cfg.machine_rank, cfg.main_process_ip) == (8, 2, 1, "10.0.0.1")
    assert cfg.fsdp_config["fsdp_offload_params"] is True and cfg.fsdp_config["fsdp_activation_checkpointing"] is True


@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="zero4", num_processes=2), "Unknown strategy"),
    (dict(strategy="ddp", num_processes=3, num_machines=2, main_process_ip="h"), "does not split evenly"),
    (dict(strategy="ddp", num_processes=4, num_machines=2), "main machine's address"),
    (dict(strategy="zero2", num_processes=2, zero_stage=3), "contradicts"),
    (dict(strategy="zero3", num_processes=2, use_cpu=True), "needs GPUs"),
    (dict(strategy="single", num_processes=2), "runs one process"),
    (dict(strategy="fsdp", num_processes=2, fsdp_options={"shardng": 1}), "Unknown FSDP option"),
])
def test_bad_settings_say_what_to_change(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        write_accelerate_config(tmp_path / "a.yaml", **kwargs)


def test_command_uses_documented_flags_and_parses_with_accelerates_parser(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    command = build_launch_command(7, config_path=tmp_path / "a.yaml", num_processes=4, num_machines=2,
                                   machine_rank=0, main_process_ip="10.0.0.1", main_process_port=29600,
                                   python="/venv/bin/python", store_path="/data/runs.sqlite")
    assert command[:3] == ["/venv/bin/python", "-m", "accelerate.commands.launch"]
    flags = [arg.lstrip("-") for arg in command[3:command.index("llmrl_core")] if arg.startswith("-")]
    assert flags == ["config_file", "num_processes", "num_machines", "machine_rank", "main_process_ip",
                     "main_process_port", "m"]
    assert set(flags) <= documented_flags()
    assert "Change each process to interpret the launch script as" in read_launch_help()  # what -m does
    args = launch_command_parser().parse_args(command[3:])
    assert (args.num_processes, args.num_machines, args.machine_rank) == (4, 2, 0)
    assert (args.main_process_ip, args.main_process_port, args.module) == ("10.0.0.1", 29600, True)
    assert args.training_script == "llmrl_core"
    assert args.training_script_args == ["worker", "7", "--store", "/data/runs.sqlite"]


def test_other_machine_commands_differ_only_in_rank(tmp_path):
    lines = describe_other_machine_commands(3, config_path="/shared/a.yaml", num_processes=6, num_machines=3,
                                            main_process_ip="192.168.1.5", main_process_port=29555, use_cpu=True)
    assert len(lines) == 2
    for rank, line in enumerate(lines, start=1):
        assert line.startswith("ACCELERATE_USE_CPU=true python -m accelerate.commands.launch --config_file /shared/a.yaml")
        assert f"--machine_rank {rank} " in line and "--main_process_ip 192.168.1.5 --main_process_port 29555" in line
        assert line.endswith("-m llmrl_core worker 3")
    assert describe_other_machine_commands(3, config_path="a", num_processes=2, num_machines=1, main_process_ip="h") == []


PROBE = textwrap.dedent("""
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    total = accelerator.reduce(torch.tensor([accelerator.process_index + 1.0]), reduction="sum")
    print(f"rank {accelerator.process_index} of {accelerator.num_processes} backend {accelerator.state.backend} "
          f"sum {total.item():g}", flush=True)
    # Without this, a process can die at exit with SIGABRT ("terminate called without an active
    # exception") while gloo's threads still run: 2 launches in 8 did here. end_training destroys the group.
    accelerator.wait_for_everyone()
    accelerator.end_training()
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_all_reduce_through_the_built_command(tmp_path):
    """The command form really starts 2 gloo processes here: the worker module swapped for a probe module."""
    (tmp_path / "allreduce_probe.py").write_text(PROBE)
    port = free_port()
    config = write_accelerate_config(tmp_path / "accelerate.yaml", strategy="ddp", num_processes=2,
                                     main_process_port=port, use_cpu=True)
    command = build_launch_command(1, config_path=config, num_processes=2, main_process_port=port)
    command = command[:command.index("llmrl_core")] + ["allreduce_probe"]  # same flags, same -m, another module
    env = dict(os.environ, OMP_NUM_THREADS="1", **get_launch_env(use_cpu=True))
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    reports = sorted(re.findall(r"rank \d+ of \d+ backend \w+ sum \d+", done.stdout))  # the two prints may share a line
    assert reports == ["rank 0 of 2 backend gloo sum 3", "rank 1 of 2 backend gloo sum 3"]  # 1 + 2 over both ranks
