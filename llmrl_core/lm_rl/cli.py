"""`python -m llmrl_core train`: RL fine-tuning from the command line, into the dashboard's run store.

    python -m llmrl_core train --preset make-it-positive --steps 20
    python -m llmrl_core train --config run.yaml --set learning_rate=2e-5 --set use_lora=true
    python -m llmrl_core train --list-presets
    python -m llmrl_core train --preset learn-arithmetic --dump-config > run.yaml

A preset is the starting point, the YAML file's fields override it, then --set and --steps.
The run shows up live on the dashboard; stop it there, with Ctrl-C, or with `runs stop ID`.

With --set num_processes=N (N > 1) the run goes through `accelerate launch` on N processes (one
per GPU, or CPU processes with gloo), in the foreground; the Accelerate config is written beside
the run's artifacts and can be reused with `accelerate launch` by hand.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmrl_core.core.errors import InputError


def build_config(args: argparse.Namespace) -> Any:
    """The RLConfig from --preset, --config, --set and --steps, in that order of precedence (last wins)."""
    from llmrl_core.core.config import get_preset_overrides, parse_set_items
    from llmrl_core.lm_rl.config import PRESETS, RLConfig

    data: dict[str, Any] = {}
    if args.preset:
        data.update(get_preset_overrides(PRESETS, args.preset, " (see --list-presets)"))
    if args.config:
        data.update(_read_yaml_fields(args.config))
    data.update(parse_set_items(args.set, RLConfig))  # values read as YAML, then as the field's type
    if args.steps is not None:
        data["steps"] = args.steps
    if args.name:
        data["name"] = args.name
    return RLConfig.from_dict(data)


def _read_yaml_fields(path: str) -> dict:
    """Only the fields a YAML file sets (so a preset's other fields survive)."""
    import yaml

    from llmrl_core.lm_rl.config import RLConfig

    RLConfig.load(path)  # validates, with the usual messages (encoding, YAML, fields)
    with open(path, encoding="utf-8-sig") as fh:
        return dict(yaml.safe_load(fh) or {})


def check_before_start(cfg: Any) -> None:
    """Refuse what would fail once the run exists (bad model spec, reward, checkpoint); print preflight warnings.

    Everything here is cheap (no weights loaded), so a mistake costs a second, not a run in the store.
    """
    from llmrl_core.lm_rl.checkpoints import check_checkpoint
    from llmrl_core.lm.models import resolve_spec
    from llmrl_core.lm_rl.preflight import preflight_rl_config
    from llmrl_core.lm_rl.rewards import parse_spec

    resolve_spec(cfg.model)
    for spec in cfg.rewards:
        parse_spec(spec, cfg.allow_custom_code)
    if cfg.resume_from:
        check_checkpoint(cfg.resume_from)
    for warning in preflight_rl_config(cfg):
        print(f"warning: {warning}", file=sys.stderr)


def _cmd_train(args: argparse.Namespace) -> int:
    """Run one RL fine-tuning job in the foreground with a progress bar."""
    from llmrl_core.lm_rl.config import PRESETS

    if args.list_presets:
        for key, preset in PRESETS.items():
            print(f"{key:<24} {preset.title}: {preset.description}")
        return 0
    if not args.preset and not args.config:
        raise InputError("Give --config run.yaml or --preset NAME (see --list-presets), e.g. "
                         "python -m llmrl_core train --preset make-it-positive")
    cfg = build_config(args)
    if args.dump_config:
        sys.stdout.write(cfg.to_yaml())
        return 0
    check_before_start(cfg)
    from llmrl_core.lm.precision import describe_config_precision

    print(describe_config_precision(cfg.mixed_precision, cfg.device))  # what 'auto' chose, and why
    from llmrl_core.runs import RunStore
    from llmrl_core.runs.foreground import announce_queue

    if cfg.num_processes > 1:
        if args.queue:
            raise InputError("--queue waits for one process's run; a multi-process run from the command line starts "
                             "at once. Queue it from the dashboard (it takes one slot per process), or leave out --queue.")
        announce_queue(RunStore(), False)
        return _train_on_processes(cfg, quiet=args.quiet)

    from tqdm import tqdm

    from llmrl_core.runs import RunManager
    from llmrl_core.runs.foreground import print_queue_wait
    from llmrl_core.lm_rl.job import run_lm_rl_job
    from llmrl_core.lm_rl.trainer import StepResult

    manager = RunManager()
    announce_queue(manager.store, args.queue)
    bar = tqdm(total=cfg.steps, desc=cfg.name, unit="step", disable=args.quiet)

    def on_step(result: StepResult) -> None:
        m = result.metrics
        bar.n = result.step
        bar.set_postfix(reward=f"{m['reward']:.3f}", len=f"{m['completions/mean_length']:.0f}",
                        s_per_step=f"{m['step_time']:.1f}", refresh=False)
        bar.refresh()

    try:
        run_id, status = manager.run_foreground(
            "lm_rl", cfg.to_dict(), name=cfg.name, total_steps=cfg.steps,
            job=lambda ctx: run_lm_rl_job(ctx, on_step=on_step), queue=args.queue, on_wait=print_queue_wait,
        )
    finally:
        bar.close()
    run = manager.store.get_run(run_id) or {}
    print(f"run {run_id}: {status}")
    if status == "failed":
        print((run.get("error") or "").split("\n\n")[0], file=sys.stderr)
        return 1
    summary = run.get("summary") or {}
    if isinstance(summary, dict) and summary.get("checkpoint"):
        print(f"checkpoint: {summary['checkpoint']}")
    return 0


def _train_on_processes(cfg: Any, quiet: bool = False) -> int:
    """Create the run and run its `accelerate launch` in the foreground; Ctrl-C asks the run to stop."""
    import os
    import subprocess
    import time

    from tqdm import tqdm

    from llmrl_core.runs import RunStore
    from llmrl_core.runs.manager import make_accelerate_launch
    from llmrl_core.runs.store import make_owner

    store = RunStore()
    run_id = store.create_run("lm_rl", cfg.name, cfg.to_dict(), cfg.steps)
    command, launch_env = make_accelerate_launch(store, run_id, cfg.to_dict())
    print(f"run {run_id}: {cfg.num_processes} processes through accelerate launch", file=sys.stderr)
    if cfg.num_machines > 1:  # the commands for the other machines, as the run's log has them
        print(str(store.read_logs(run_id)["message"].iloc[-1]), file=sys.stderr)
    bar = tqdm(total=cfg.steps, desc=cfg.name, unit="step", disable=quiet)
    # its own session: Ctrl-C reaches this process only, which turns it into a clean stop through the store
    proc = subprocess.Popen(command, env={**os.environ, **launch_env}, start_new_session=True)
    store.assign_owner(run_id, make_owner(proc.pid))  # the run has a live owner while the processes gather
    try:
        while proc.poll() is None:
            try:
                time.sleep(1.0)
            except KeyboardInterrupt:
                print("\nStopping at the end of this step (Ctrl-C again to kill)...", file=sys.stderr)
                store.request_control(run_id, "stop")
                try:
                    proc.wait()
                except KeyboardInterrupt:
                    os.killpg(proc.pid, 9)
                    raise
            run = store.get_run(run_id) or {}
            bar.n = int(run.get("step") or 0)
            bar.refresh()
    finally:
        bar.close()
    run = store.get_run(run_id) or {}
    status = run.get("status", "failed")
    if status in ("queued", "running", "paused"):  # the launcher ended before the run recorded an outcome
        hint = (" The other machines may not have joined in time (see the commands in the run's log)."
                if cfg.num_machines > 1 and status == "queued" else "")
        store.set_status(run_id, "failed", error=f"accelerate launch exited with status {proc.returncode}.{hint}")
        run = store.get_run(run_id) or {}
        status = "failed"
    print(f"run {run_id}: {status}")
    if status == "failed":
        print((run.get("error") or f"accelerate launch exited with status {proc.returncode}").split("\n\n")[0],
              file=sys.stderr)
        return 1
    summary = run.get("summary") or {}
    if isinstance(summary, dict) and summary.get("checkpoint"):
        print(f"checkpoint: {summary['checkpoint']}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register the `train` subcommand."""
    train = subparsers.add_parser("train", help="RL fine-tuning of the language model (GRPO, RLOO, REINFORCE, PPO)",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", help="YAML file of RLConfig fields (write one with --dump-config)")
    train.add_argument("--preset", help="start from a preset, e.g. make-it-positive, learn-arithmetic")
    train.add_argument("--steps", type=int, help="override the number of steps")
    train.add_argument("--name", help="run name shown in the runs table")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one field (repeatable)")
    train.add_argument("--list-presets", action="store_true", help="list presets and exit")
    train.add_argument("--dump-config", action="store_true", help="print the final config as YAML and exit")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--queue", action="store_true", help="wait in the run queue for a free slot (default: start now)")
    train.set_defaults(func=_cmd_train)
