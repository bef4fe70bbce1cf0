"""What a run kind means, declared once: one `RunKindSpec` per kind, read by everything that shows or handles runs.

A run kind (lm_rl, gym, agent) is a job and everything the workbench must know to show its runs:
its config class, the metric that says how well a run does, its one-line headline, what it can
export, which page Clone opens, the report sections and the runs-table columns. The feature
package that owns the job declares them in one module, `llmrl_core/<package>/kind.py`, as
`SPEC = RunKindSpec(...)`; the runs layer (manager, table, headline, export, compare), present/
(the report), ui/, the pages and the CLI read the spec and never name a kind.

Where the specs come from, without a list of them here:
  * each sub-package of llmrl_core that has a `kind.py` declares the kind of its own name
    (one feature, one package, one name);
  * `register_kind(name, "module:attr")` adds one from anywhere else (a plug-in, the test kinds in
    tests/support) and writes it to LLMRL_EXTRA_JOBS ("name=module:attr,..."), so the worker
    processes this process launches know it too. The attr may be a RunKindSpec or a bare job
    function (a kind with only a job: every other field takes its default).

Heavy parts (the job, the config class, the exporter, the report sections) are "module:attr"
strings imported on first use, so listing the kinds imports no torch; the light ones (headline,
samples per step) are plain functions of the spec's own module.

To add a kind: see "How to add a run kind" in the README.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from llmrl_core.core.errors import InputError

EXTRA_JOBS_ENV = "LLMRL_EXTRA_JOBS"  # "name=module:attr,..."; inherited by worker processes
SPEC_MODULE = "kind"  # llmrl_core/<package>/kind.py declares the package's kind
SPEC_ATTR = "SPEC"
EXPORT_FORMATS = ("model", "gguf", "metrics", "samples", "config")  # everything export_run can write


def count_one_sample(config: Mapping[str, Any]) -> int:
    """Samples per logged step of a kind whose step already counts its samples (or has none)."""
    return 1


def has_no_adapter(config: Mapping[str, Any]) -> bool:
    """A run that trains no adapter (so 'adapter only' is no export choice)."""
    return False


@dataclass(frozen=True)
class RunKindSpec:
    """One kind of run: its job and how the workbench shows, compares, reports and exports its runs.

    The defaults describe the plainest kind (a job that logs a 'reward'): only what sets a kind
    apart needs declaring. "module:attr" strings are imported on first use.
    """

    name: str  # stored with every run (runs.kind); the package, CLI verb and page share it
    label: str  # for people: "RL fine-tuning of a language model"
    job: str  # "module:function" the worker runs: job(ctx: JobContext) -> dict | None
    config_class: str | None = None  # "module:Class", a ConfigBase: `export --what config` writes its YAML
    main_metric: str = "reward"  # how well a run does: the runs table's first/best/last reward
    higher_is_better: bool = True  # of main_metric: the runs table's best is the max (else the min)
    samples_per_step: Callable[[Mapping[str, Any]], int] = count_one_sample  # Compare's "samples seen" x axis
    step_label: str = "step"  # what one logged step counts, as an x axis names it ('environment steps'); Compare, report
    headline: Callable[[Any, Mapping[str, Any]], Any] | None = None  # (store, run) -> headline.Headline; None: steps
    export_formats: tuple[str, ...] = ("metrics", "samples", "config")  # of EXPORT_FORMATS
    model_exporter: str | None = None  # "module:function"(store, run, tmp, *, merge_lora, checkpoint) for 'model'
    model_suffix: str = ""  # the file ending an exported model must have ('.zip': an SB3 agent); "" a folder
    gguf_exporter: str | None = None  # "module:function"(store, run, tmp, *, quant, checkpoint, name) -> {sibling: text}
    model_card: str | None = None  # "module:function"(store, run, *, gguf_name, quant, adapter_only) -> README.md text
    exports_adapter: Callable[[Mapping[str, Any]], bool] = has_no_adapter  # (config) -> LoRA adapter alone possible
    clone_page: str | None = None  # the page Clone opens with the run's config filled in; None: no Clone
    report: str | None = None  # "module:attr" of a present.report.ReportParts: its report sections
    compare_metrics: tuple[str, ...] = ()  # drawn first on the Compare page and in a comparison report
    table_columns: Mapping[str, str] = field(default_factory=dict)  # runs-table column ('model', 'algorithm') -> config field
    alarms: str | None = None  # "module:function"(store, run_id) -> health alarms; None: none watched
    before_after: bool = False  # its checkpoints answer prompts next to the base model (Before/after page)
    cli: str | None = None  # module with add_cli(subparsers): its CLI verb
    make_config: str | None = None  # "module:function"(**fields) -> config from flat fields (a sweep's base); None: config_class
    presets: str | None = None  # "module:attr" of its {name: core.config.Preset} (`sweep start --preset`)


_REGISTERED: dict[str, str | RunKindSpec] = {}  # register_kind in this process: name -> target


def _package_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _find_builtin_kinds() -> dict[str, str]:
    """name -> 'module:SPEC' for every llmrl_core sub-package that has a kind.py (no import)."""
    root = _package_root()
    return {folder.name: f"{root.name}.{folder.name}.{SPEC_MODULE}:{SPEC_ATTR}"
            for folder in sorted(root.iterdir()) if (folder / f"{SPEC_MODULE}.py").is_file()}


def _read_extra_kinds() -> dict[str, str]:
    """name -> 'module:attr' registered by a parent process through LLMRL_EXTRA_JOBS."""
    found = {}
    for item in os.environ.get(EXTRA_JOBS_ENV, "").split(","):
        name, _, target = item.partition("=")
        if name.strip() and ":" in target:
            found[name.strip()] = target.strip()
    return found


def _targets() -> dict[str, str | RunKindSpec]:
    """Every known kind: registered here, then the built-in ones, then those inherited through the environment."""
    targets: dict[str, str | RunKindSpec] = dict(_read_extra_kinds())
    targets.update(_find_builtin_kinds())
    targets.update(_REGISTERED)
    return targets


def import_target(target: str) -> Any:
    """The object a 'module:attr' string names (imports the module)."""
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise InputError(f"Cannot load {target!r}: {err}. Give 'module:attr' of an importable module.") from err


def _load(name: str, target: str | RunKindSpec) -> RunKindSpec:
    """The spec a registry entry stands for: a RunKindSpec, or a job function made into a job-only kind."""
    found = target if isinstance(target, RunKindSpec) else import_target(target)
    if isinstance(found, RunKindSpec):
        return found if found.name == name else replace(found, name=name)
    if callable(found) and isinstance(target, str):
        return RunKindSpec(name=name, label=name, job=target)
    raise InputError(f"{target!r} is neither a RunKindSpec nor a job function; kind {name!r} cannot load.")


def register_kind(name: str, target: str) -> None:
    """Register a kind, given as 'module:attr' of a RunKindSpec or a job function, here and for launched workers."""
    if not name or "," in name or "=" in name:
        raise InputError(f"A kind name needs letters and no ',' or '=' (got {name!r}).")
    _REGISTERED[name] = target
    extra = [item for item in os.environ.get(EXTRA_JOBS_ENV, "").split(",") if item and not item.startswith(f"{name}=")]
    os.environ[EXTRA_JOBS_ENV] = ",".join(extra + [f"{name}={target}"])


def list_kind_names() -> list[str]:
    """The names of every known kind, sorted (imports nothing)."""
    return sorted(_targets())


def get_kind(name: str) -> RunKindSpec:
    """The spec of kind `name`; InputError naming the known kinds otherwise."""
    targets = _targets()
    if name not in targets:
        raise InputError(f"Unknown job kind {name!r}; known kinds: {', '.join(sorted(targets))}.")
    return _load(name, targets[name])


def find_kind(name: str) -> RunKindSpec | None:
    """The spec of kind `name`, or None for a kind this installation does not know (an old run's)."""
    targets = _targets()
    try:
        return _load(name, targets[name]) if name in targets else None
    except InputError:
        return None


def list_kinds() -> list[RunKindSpec]:
    """Every known kind's spec, by name (imports each kind's light spec module, never torch)."""
    return [spec for spec in (find_kind(name) for name in list_kind_names()) if spec is not None]


def load_part(spec: RunKindSpec, part: str) -> Any:
    """The object a spec's 'module:attr' field names (job, config_class, model_exporter, report, alarms), or None."""
    target = getattr(spec, part)
    return import_target(target) if target else None
