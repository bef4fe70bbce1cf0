"""The same jobs as the dashboard, headless: `python -m llmrl_core <command> ...`.

Commands: generate, runs (list/show/stop/pause/resume), prepare; every run kind's verb (its spec's
`cli`, e.g. train, gym, agent) and the other command modules (`_PLUGIN_MODULES`) add themselves
through `add_cli(subparsers)`. Every command
writes to the same run store as the dashboard, so runs started here show up there live.
User errors print one clear line to stderr and exit with status 2; nothing raises a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from typing import Any, NoReturn, Sequence

from llmrl_core.core.errors import WorkbenchError

# Modules that add subcommands besides the run kinds' own (RunKindSpec.cli): each defines add_cli(subparsers).
_PLUGIN_MODULES: list[str] = ["llmrl_core.attention.cli", "llmrl_core.review_cli", "llmrl_core.runs.worker",
                               "llmrl_core.sweep_cli"]


def _cmd_generate(args: argparse.Namespace) -> int:
    """Print completions for one prompt (JSON with per-token log-probs under --json)."""
    from llmrl_core.lm.generation import SamplingConfig, generate
    from llmrl_core.lm.models import load_causal_lm

    cfg = SamplingConfig(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        n=args.n, seed=args.seed, greedy=args.greedy,
    )
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    progress = (lambda f, m: print(f"[{f:4.0%}] {m}", file=sys.stderr)) if not args.quiet else (lambda f, m: None)
    loaded = load_causal_lm(args.model, device=args.device, progress=progress)
    chat = {"auto": None, "chat": True, "raw": False}[args.mode]
    result = generate(loaded, [prompt], cfg, chat=chat, system=args.system)
    if args.json:
        payload = {
            "model": loaded.describe(),
            "prompt": prompt,
            "seconds": round(result.seconds, 4),
            "tokens_per_second": round(result.tokens_per_second, 2),
            "completions": [
                {
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "tokens": [
                        {"id": i, "text": t, "logprob": lp, "top": [{"text": a, "logprob": v} for a, v in alts]}
                        for i, t, lp, alts in zip(c.token_ids, c.tokens, c.logprobs, c.top_alternatives or [[]] * len(c.tokens))
                    ],
                }
                for c in result.completions
            ],
        }
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for c in result.completions:
            if len(result.completions) > 1:
                print(f"--- sample {c.sample_index + 1}")
            print(c.text)
        print(f"({result.new_tokens} tokens in {result.seconds:.2f} s, {result.tokens_per_second:.1f} tok/s)", file=sys.stderr)
    return 0


def _format_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts and ts == ts else "-"


def _cmd_runs(args: argparse.Namespace) -> int:
    """List, show, control, rename, annotate or delete runs in the store."""
    from llmrl_core.runs import RunStore

    store = RunStore()
    if args.action == "queue":
        return _show_queue(store, args)
    if args.action == "free-space":
        from llmrl_core.runs.files import free_space

        count, runs, freed = free_space(store)
        print(f"Freed {freed / 1e6:.1f} MB: {count} older checkpoint{'s' if count != 1 else ''} of {runs} ended "
              f"run{'s' if runs != 1 else ''} (each keeps its final checkpoint).")
        return 0
    if args.action == "list":
        store.recover_interrupted()
        runs = store.list_runs(kind=args.kind)
        if args.json:
            print(runs.to_json(orient="records"))
            return 0
        if runs.empty:
            print("No runs yet. Start one from the dashboard or with: python -m llmrl_core train --preset make-it-positive")
            return 0
        print(f"{'id':>5}  {'kind':<8} {'status':<12} {'step':>11}  {'created':<16}  name")
        for r in runs.itertuples():
            total = f"/{int(r.total_steps)}" if r.total_steps == r.total_steps and r.total_steps else ""
            step = f"{int(r.step or 0)}{total}"
            print(f"{r.id:>5}  {r.kind:<8} {r.status:<12} {step:>11}  {_format_time(r.created):<16}  {r.name}")
        return 0
    if args.run_id is None:
        raise WorkbenchError(f"'runs {args.action}' needs a run id, e.g. python -m llmrl_core runs {args.action} 3")
    run = store.get_run(args.run_id)
    if run is None:
        raise WorkbenchError(f"No run with id {args.run_id}. See the ids with: python -m llmrl_core runs list")
    if args.action == "show":
        metrics = store.read_metrics_wide(args.run_id)
        run["last_metrics"] = metrics.iloc[-1].dropna().to_dict() if not metrics.empty else {}
        print(json.dumps(run, indent=2, default=str))
        return 0
    if args.action == "rename":
        if args.text is None:
            raise WorkbenchError("'runs rename' needs the new name, e.g. python -m llmrl_core runs rename 3 \"lr 2e-5\"")
        store.rename_run(args.run_id, args.text)
        print(f"Run {args.run_id} is now called {args.text.strip()!r}.")
        return 0
    if args.action == "note":
        store.set_note(args.run_id, args.text or None)
        print(f"Run {args.run_id}: note {'set' if args.text else 'cleared'}.")
        return 0
    if args.action == "delete":
        from llmrl_core.runs.files import delete_run_files

        store.delete_run(args.run_id)  # refuses a live run, before any file goes
        freed = delete_run_files(args.run_id) if args.with_files else 0
        print(f"Deleted run {args.run_id}" + (f" and {freed / 1e6:.1f} MB of files." if args.with_files else "."))
        return 0
    from llmrl_core.runs import queue

    if args.action == "move":
        if args.to is None:
            raise WorkbenchError("'runs move' needs the new position, e.g. python -m llmrl_core runs move 7 --to 1")
        print(f"Run {args.run_id} is now number {queue.move(store, args.run_id, args.to)} in the queue.")
        return 0
    if args.action == "cancel" or (args.action == "stop" and queue.get_queue_position(store, args.run_id)):
        queue.cancel(store, args.run_id)
        print(f"Run {args.run_id} left the queue (cancelled before it started).")
        return 0
    store.request_control(args.run_id, args.action)
    print(f"Asked run {args.run_id} to {args.action}.")
    return 0


def _show_queue(store: Any, args: argparse.Namespace) -> int:
    """`runs queue [--max-concurrent N]`: the waiting runs in order, the slots in use and the limit."""
    from llmrl_core.runs import queue

    if args.max_concurrent is not None:
        limit = queue.set_max_concurrent(store, args.max_concurrent if args.max_concurrent > 0 else None)
        print(f"Runs at once: {limit}" + (" (the default)" if args.max_concurrent == 0 else "") + ".")
    waiting = queue.list_queue(store)
    used, limit = queue.count_used_slots(store), queue.get_max_concurrent(store)
    if args.json:
        print(json.dumps({"max_concurrent": limit, "slots_in_use": used, "waiting": waiting.to_dict(orient="records")}))
        return 0
    print(f"Slots in use: {used} of {limit}. " + ("Nothing waits." if waiting.empty else f"{len(waiting)} waiting:"))
    for r in waiting.itertuples():
        who = "" if not r.owner else "  (started by a command with --queue)"
        print(f"{r.position:>3}. run {r.id:<5} {r.kind:<8} {r.slots} slot{'s' if r.slots > 1 else ''}  {r.name}{who}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    """Convert the bundled model (or a .gguf file) once, showing progress, so the dashboard starts fast."""
    from llmrl_core.lm.models import load_causal_lm

    loaded = load_causal_lm(args.model, progress=lambda f, m: print(f"[{f:4.0%}] {m}", file=sys.stderr))
    facts = loaded.describe()
    print(f"ready: {facts['name']} · {facts['parameters'] / 1e6:.1f} M parameters · {facts['device']} · {facts['dtype']}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the workbench's error format: one 'error: ...' line naming the fix, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, plug-in commands included."""
    parser = _Parser(prog="python -m llmrl_core", description="LLM·RL Workbench, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="sample completions from a model")
    gen.add_argument("--model", default="bundled", help="hub id, model folder, .gguf file, or 'bundled' (default)")
    gen.add_argument("--prompt", help="the prompt (read from stdin when omitted)")
    gen.add_argument("--mode", choices=["auto", "chat", "raw"], default="auto",
                     help="chat template: auto uses it when the model has one")
    gen.add_argument("--system", help="system message for chat prompts")
    gen.add_argument("--n", type=int, default=1, help="samples")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.7)
    gen.add_argument("--top-p", type=float, default=0.95)
    gen.add_argument("--top-k", type=int, default=50)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--greedy", action="store_true")
    gen.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    gen.add_argument("--json", action="store_true", help="JSON with per-token log-probs and top-5 alternatives")
    gen.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    gen.set_defaults(func=_cmd_generate)

    runs = sub.add_parser("runs", help="list, show or control runs in the store")
    runs.add_argument("action", choices=["list", "show", "stop", "pause", "resume", "rename", "note", "delete", "queue",
                                         "cancel", "move", "free-space"])
    runs.add_argument("run_id", nargs="?", type=int)
    runs.add_argument("text", nargs="?", help="the new name (rename) or the note (note; empty clears it)")
    runs.add_argument("--with-files", action="store_true", help="delete: also remove the run's files on disk")
    runs.add_argument("--kind", help="only runs of this kind")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--to", type=int, help="move: the new queue position (1 = next)")
    runs.add_argument("--max-concurrent", type=int, dest="max_concurrent",
                      help="queue: set how many runs may run at once (0: the default, one per GPU or 1 on a CPU)")
    runs.set_defaults(func=_cmd_runs)

    prep = sub.add_parser("prepare", help="convert the bundled model once (the dashboard then starts in a second)")
    prep.add_argument("--model", default="bundled")
    prep.set_defaults(func=_cmd_prepare)

    from llmrl_core.runs.kinds import list_kinds

    for module_name in [spec.cli for spec in list_kinds() if spec.cli] + _PLUGIN_MODULES:
        importlib.import_module(module_name).add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run a command; user errors exit 2 with one clear line."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as err:
        print("error: " + " ".join(str(err).splitlines()), file=sys.stderr)  # one line, whatever the message
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
