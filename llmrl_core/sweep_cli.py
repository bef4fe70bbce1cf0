"""`python -m llmrl_core sweep ...`: start, watch, list, cancel and report sweeps (runs/sweeps.py) headless.

Examples:
  python -m llmrl_core sweep start gym --param learning_rate=1e-3,3e-4 --param n_steps=64,128 --seeds 0,1
  python -m llmrl_core sweep start gym --set total_steps=20000 --param learning_rate=1e-5:1e-2:log \\
      --method tpe --trials 12 --prune
  python -m llmrl_core sweep start lm_rl --preset make-it-positive --param learning_rate=1e-5,5e-5 --detach
  python -m llmrl_core sweep show 3        (its trials, the parameter sets over seeds, the best)
  python -m llmrl_core sweep report 3 --out sweep3.html
`start` runs the trials here, one after another in the run queue (Ctrl-C stops the sweep); with --detach it
only queues them, for the dashboard's server to run. Either way they show live on the dashboard.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from llmrl_core.core.errors import InputError

INTERRUPTED = "Interrupted from the keyboard."  # execute_run's error for a run stopped with Ctrl-C


def _parse_params(items: list[str] | None) -> dict[str, str]:
    texts: dict[str, str] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--param takes name=values or name=low:high[:log], e.g. --param learning_rate=1e-3,3e-4 "
                             f"(got {item!r}).")
        if name.strip() in texts:
            raise InputError(f"--param {name.strip()} is given twice; give each field once.")
        texts[name.strip()] = text
    return texts


def _base_config(args: argparse.Namespace) -> dict[str, Any]:
    """--config FILE, then --preset, then --set items, as the kind builds a config (gym: RL Zoo values)."""
    from llmrl_core.core.config import parse_set_items
    from llmrl_core.runs.kinds import get_kind, load_part
    from llmrl_core.runs.sweep_spec import make_base_config

    cls = load_part(get_kind(args.kind), "config_class")
    fields: dict[str, Any] = cls.load(args.config).to_dict() if args.config else {}
    classes = [cls]
    if args.set:
        first = make_base_config(args.kind, fields, args.preset)
        if hasattr(cls, "make_params"):  # a kind with nested hyperparameters (gym): --set names those too
            classes.append(type(cls.from_dict(first).make_params()))
        fields.update(parse_set_items(args.set, tuple(classes)))
    return make_base_config(args.kind, fields, args.preset)


def _print_sweep(store: Any, sweep_id: int, as_json: bool = False) -> None:
    from llmrl_core.present.sweep import format_sets_table, format_trials_table
    from llmrl_core.runs.sweeps import describe_best, read_sweep_view

    view = read_sweep_view(store, sweep_id)
    if as_json:
        print(json.dumps({"sweep_id": sweep_id, "status": view.sweep["status"], "spec": view.spec.to_dict(),
                          "metric": view.metric, "trials": json.loads(view.trials.to_json(orient="records")),
                          "sets": json.loads(view.sets.to_json(orient="records")), "best": describe_best(view)}, indent=2))
        return
    print(f"Sweep {sweep_id} ({view.sweep['kind']}, {view.sweep['status']}): {view.spec.describe()}; result = mean of "
          f"the last logged {view.metric}")
    print(format_trials_table(view.trials, view.spec, view.best_trial).to_string(index=False))
    if len(view.spec.seeds) > 1:
        print("\nParameter sets over seeds:")
        print(format_sets_table(view.sets, view.names).to_string(index=False))
    print(describe_best(view))


def _prune_while(store: Any, sweep_id: int, done: threading.Event) -> None:
    """The CLI's pruning thread: Optuna's median rule on the sweep's running trials every PRUNE_EVERY_S."""
    from llmrl_core.runs.sweeps import PRUNE_EVERY_S, prune_running

    while not done.wait(PRUNE_EVERY_S):
        try:
            for run_id in prune_running(store, sweep_id):
                print(f"run {run_id}: pruned (below the median of finished trials)", file=sys.stderr)
        except Exception as err:  # pruning must never end the sweep
            print(f"pruning skipped: {type(err).__name__}: {err}", file=sys.stderr)


def _run_here(store: Any, sweep_id: int, owner: str) -> int:
    """Run the sweep's trials in this process, in queue order, until it has none left; returns the exit code."""
    from llmrl_core.runs import RunManager
    from llmrl_core.runs.foreground import print_queue_wait
    from llmrl_core.runs.sweeps import advance_sweeps, cancel_sweep, get_sweep

    manager = RunManager(store)
    spec = get_sweep(store, sweep_id)["spec"]
    done = threading.Event()
    if spec.prune:
        threading.Thread(target=_prune_while, args=(store, sweep_id, done), daemon=True).start()
    try:
        while True:
            advance_sweeps(store, owner=owner, sweep_id=sweep_id)
            waiting = store.fetch_rows("SELECT id, name FROM runs WHERE sweep_id=? AND status='queued' "
                                       "AND queue_pos IS NOT NULL ORDER BY queue_pos, id LIMIT 1", (sweep_id,))
            if not waiting:
                if get_sweep(store, sweep_id)["status"] != "running":
                    break
                done.wait(0.5)
                continue
            run_id, name = waiting[0]
            print(f"run {run_id}: {name}", file=sys.stderr)
            status = manager.run_queued_foreground(int(run_id), owner, on_wait=print_queue_wait)
            run = store.get_run(int(run_id)) or {}
            print(f"run {run_id}: {status}", file=sys.stderr)
            if status == "stopped" and run.get("error") == INTERRUPTED:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        cancelled, _ = cancel_sweep(store, sweep_id)
        print(f"Sweep {sweep_id} stopped: {cancelled} waiting run{'s' if cancelled != 1 else ''} cancelled.", file=sys.stderr)
    finally:
        done.set()
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from llmrl_core.runs import RunStore
    from llmrl_core.runs.store import make_owner
    from llmrl_core.runs.sweeps import cancel_sweep, create_sweep, get_sweep, list_sweeps

    store = RunStore()
    if args.action == "list":
        sweeps = list_sweeps(store)
        if sweeps.empty:
            print("No sweeps yet: python -m llmrl_core sweep start KIND --param NAME=VALUES")
        for s in sweeps.itertuples():
            print(f"{s.id:>4}  {s.kind:<6} {s.status:<9} {s.ended_runs}/{s.runs} runs ended  {s.name}: {s.description}")
        return 0
    if args.action == "start":
        from llmrl_core.runs.sweep_spec import build_spec

        if not args.kind:
            raise InputError("sweep start needs the kind of run: gym, lm_rl or agent, e.g. sweep start gym --param ...")
        base = _base_config(args)
        spec = build_spec(args.kind, base, _parse_params(args.param), method=args.method, trials=args.trials,
                          seeds=args.seeds, prune=args.prune, name=args.name or "", confirmed=args.yes)
        owner = None if args.detach else make_owner()
        sweep_id = create_sweep(store, spec, base, owner=owner)
        print(f"Sweep {sweep_id}: {spec.describe()}.")
        if args.detach:
            print("Queued for the dashboard's server, which starts the runs in order (Runs → Sweeps shows them); "
                  "nothing runs until it is up.")
            return 0
        _run_here(store, sweep_id, owner)
        _print_sweep(store, sweep_id, args.json)
        return 0
    if args.sweep_id is None:
        raise InputError(f"sweep {args.action} needs a sweep id (see: python -m llmrl_core sweep list).")
    if args.action == "show":
        _print_sweep(store, args.sweep_id, args.json)
    elif args.action == "cancel":
        cancelled, stopping = cancel_sweep(store, args.sweep_id)
        print(f"Sweep {args.sweep_id} stopped: {cancelled} waiting run{'s' if cancelled != 1 else ''} cancelled, "
              f"{stopping} running run{'s' if stopping != 1 else ''} asked to stop.")
    elif args.action == "report":
        from llmrl_core.present.sweep import write_sweep_report

        if not args.out:
            raise InputError("sweep report needs --out FILE.html")
        get_sweep(store, args.sweep_id)
        print(f"Wrote the report of sweep {args.sweep_id} to {write_sweep_report(store, args.sweep_id, Path(args.out))}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register the `sweep` command."""
    from llmrl_core.runs.sweep_spec import METHODS

    sweep = subparsers.add_parser("sweep", help="try several settings: grid, random or Optuna TPE, over seeds",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("action", choices=["start", "list", "show", "cancel", "report"])
    sweep.add_argument("target", nargs="?", help="start: the run kind (gym, lm_rl, agent); show/cancel/report: the sweep id")
    sweep.add_argument("--param", action="append", metavar="NAME=VALUES",
                       help="a swept field (1 to 3): values '1e-3,3e-4' or a range '1e-5:1e-3[:log]' (random, tpe)")
    sweep.add_argument("--method", choices=list(METHODS), default="grid",
                       help="grid: every combination; random or tpe: --trials sets drawn by Optuna")
    sweep.add_argument("--trials", type=int, default=8, help="random/tpe: parameter sets to try (default 8)")
    sweep.add_argument("--seeds", default="0", help="each set runs once per seed: '0,1,2' or '0-2' (default 0)")
    sweep.add_argument("--prune", action="store_true", help="stop clearly bad trials early (Optuna's median rule)")
    sweep.add_argument("--config", help="start: a YAML config of the kind as the base (from `export ID --what config`)")
    sweep.add_argument("--preset", help="start: begin from one of the kind's presets (e.g. make-it-positive)")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="start: a base setting (repeatable)")
    sweep.add_argument("--name", help="start: the sweep's name (its runs are named after it)")
    sweep.add_argument("--yes", action="store_true", help="start: queue more than 64 runs")
    sweep.add_argument("--detach", action="store_true", help="start: only queue the runs, for the dashboard's server")
    sweep.add_argument("--out", help="report: the HTML file to write")
    sweep.add_argument("--json", action="store_true", help="start/show: print the table as JSON")
    sweep.set_defaults(func=_cmd_sweep_args)


def _cmd_sweep_args(args: argparse.Namespace) -> int:
    """Read the positional target as the kind (start) or the sweep id (the others)."""
    args.kind, args.sweep_id = None, None
    if args.action == "start":
        args.kind = args.target
    elif args.target is not None:
        if not str(args.target).isdigit():
            raise InputError(f"sweep {args.action} takes a sweep id, a whole number (got {args.target!r}).")
        args.sweep_id = int(args.target)
    return _cmd_sweep(args)
