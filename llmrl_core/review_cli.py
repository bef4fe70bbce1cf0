"""`python -m llmrl_core export|report`: take a run's results out of the workbench (issue 10).

Examples:
  python -m llmrl_core export 12 --what model --out exports/tuned          # LoRA merged into the base
  python -m llmrl_core export 12 --what model --out exports/adapter --adapter-only
  python -m llmrl_core export 7 --what model --out cartpole.zip           # a Gymnasium run's SB3 agent
  python -m llmrl_core export 12 --what gguf --quant q8_0 --out tuned.gguf  # + tuned.Modelfile, tuned.README.md
  python -m llmrl_core export 12 --what model --out exports/tuned --push-to you/tuned   # then to the Hub (private)
  python -m llmrl_core export 12 --what metrics --out run12.csv
  python -m llmrl_core export 12 --what samples --out run12.jsonl
  python -m llmrl_core export 12 --what config --out run12.yaml            # then: train --config run12.yaml
  python -m llmrl_core report 12 --out report.html                         # one run
  python -m llmrl_core report 12 14 15 --out compare.html                  # a comparison
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llmrl_core.core.errors import InputError, WorkbenchError


def _cmd_export(args: argparse.Namespace) -> int:
    """Export one part of a run and say where it went."""
    from llmrl_core.runs.export import export_run
    from llmrl_core.runs.store import RunStore

    if args.push_to and args.what not in ("model", "gguf"):
        raise InputError("--push-to uploads a model; use it with --what model or --what gguf.")
    if args.push_to:
        from llmrl_core.lm.hub_push import check_repo_id

        check_repo_id(args.push_to)  # before minutes of export, not after
    out = export_run(RunStore(), args.run_id, args.what, args.out, merge_lora=not args.adapter_only,
                     overwrite=args.overwrite, checkpoint=args.checkpoint, quant=args.quant)
    print(f"Exported the {args.what} of run {args.run_id} to {out}")
    if args.what == "gguf":
        from llmrl_core.runs.export import name_gguf_siblings

        modelfile = name_gguf_siblings(out)["Modelfile"]
        if modelfile.is_file():
            print(f"Ollama: cd {out.parent} && ollama create run-{args.run_id} -f {modelfile.name} && "
                  f"ollama run run-{args.run_id}")
    if args.push_to:
        from llmrl_core.lm.hub_push import push_export

        url = push_export(out, args.push_to)
        print(f"Pushed to {url} (private)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Write a self-contained HTML report of one run or a comparison of several."""
    from llmrl_core.runs.store import RunStore

    try:
        from llmrl_core.present.report import write_report
    except ImportError as err:
        raise WorkbenchError(f"Reports are not available in this version of the workbench ({err}).") from None
    store = RunStore()
    run_ids = list(dict.fromkeys(args.run_ids))
    for run_id in run_ids:
        if store.get_run(run_id) is None:
            raise InputError(f"No run with id {run_id}. See the ids with: python -m llmrl_core runs list")
    out = Path(args.out).expanduser()
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name such as {out / 'report.html'}.")
    path = write_report(store, run_ids, out)
    print(f"Wrote the report of run{'s' if len(run_ids) > 1 else ''} {', '.join(map(str, run_ids))} to {path}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Add the `export` and `report` commands."""
    from llmrl_core.runs.export import EXPORT_WHAT

    export = subparsers.add_parser("export", help="export a run's model, metrics, samples or config",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("run_id", type=int, help="the run (see: runs list)")
    export.add_argument("--what", required=True, choices=list(EXPORT_WHAT),
                        help="model: HF folder (LM) or SB3 .zip (gym); gguf: one .gguf file for llama.cpp/Ollama "
                             "(LM); metrics: CSV; samples: JSONL; config: YAML")
    export.add_argument("--quant", choices=["f16", "q8_0"], default="f16",
                        help="--what gguf: f16 (exact to half precision) or q8_0 (about half the size)")
    export.add_argument("--push-to", metavar="REPO_ID",
                        help="then upload it to this Hugging Face Hub repo (created private; token from "
                             "`hf auth login` or HF_TOKEN)")
    export.add_argument("--out", required=True, help="the file or folder to write (must not exist, or --overwrite)")
    export.add_argument("--adapter-only", action="store_true",
                        help="LoRA runs: export the adapter alone instead of merging it into the base model")
    export.add_argument("--checkpoint", help="a checkpoint folder of the run to export (default: its newest)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export at --out")
    export.set_defaults(func=_cmd_export)

    report = subparsers.add_parser("report", help="write a self-contained HTML report of runs (opens offline)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("run_ids", type=int, nargs="+", metavar="RUN_ID", help="one run, or several to compare")
    report.add_argument("--out", required=True, help="the HTML file to write, e.g. report.html")
    report.set_defaults(func=_cmd_report)
