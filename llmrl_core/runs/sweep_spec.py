"""What a sweep tries, checked before anything is queued: one to three fields, their values or ranges, the seeds.

A sweep runs one kind's job (lm_rl, gym, agent) many times from one base config. Each field the user
picks gets either values (a grid: "1e-3, 3e-4", every combination is tried) or a range
("1e-5:1e-3:log", drawn from by Optuna: at random, or by its TPE sampler that learns from finished
trials). Seeds are a dimension of their own: every parameter set runs once per seed, so the best set
can be given a confidence interval over seeds.

The one text syntax serves the form and the CLI (`--param name=TEXT`):
  values:  "1e-3, 3e-4"      (any field: numbers, true/false, one of a field's choices)
  range:   "1e-5:1e-3"       (int and float fields; random and TPE only)
           "1e-5:1e-3:log"   (drawn on a log scale: learning rates, KL weights)

Every message is one line naming the field, and a spec that fails any check queues nothing: the
trial configs are all built and validated by the kind's config class before the first run exists.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Mapping, Sequence

from llmrl_core.core.config import FieldSpec, coerce_text, get_field_specs, suggest
from llmrl_core.core.errors import InputError, WorkbenchError

METHODS = ("grid", "random", "tpe")
METHOD_LABELS = {"grid": "Grid (every combination)", "random": "Random (Optuna)", "tpe": "TPE (Optuna, learns as it goes)"}
MAX_FIELDS = 3
MAX_UNCONFIRMED_RUNS = 64  # a sweep queuing more runs needs an explicit confirmation
MAX_RUNS = 1000  # a hard ceiling even with confirmation: one store, one queue
MAX_SEEDS = 16
MAX_VALUES = 64  # values per grid field
NOT_SWEPT = frozenset({"seed", "name", "num_processes", "num_machines", "init_from", "model", "resume_from"})
"""Fields a sweep does not vary: seeds are their own dimension; names, models and process layout are not
hyperparameters (a sweep over models is a Compare of runs)."""


@dataclasses.dataclass(frozen=True)
class SweepParam:
    """One swept field: its values (a grid, or choices for random/TPE), or a numeric range."""

    name: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def describe(self) -> str:
        """'learning_rate ∈ {0.001, 0.0003}' or 'learning_rate in 1e-05..0.001 (log)'."""
        if self.is_range:
            return f"{self.name} in {self.low:g}..{self.high:g}{' (log)' if self.log else ''}"
        return f"{self.name} ∈ {{{', '.join(format_value(v) for v in self.values)}}}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values), "low": self.low, "high": self.high, "log": self.log}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: the kind, the swept fields, how trials are chosen, the seeds, pruning."""

    kind: str
    params: tuple[SweepParam, ...]
    method: str = "grid"
    trials: int = 8  # parameter sets for random and TPE (a grid has as many as its combinations)
    seeds: tuple[int, ...] = (0,)
    prune: bool = False  # stop clearly bad runs early (Optuna's median rule on the kind's main metric)
    name: str = ""
    confirmed: bool = False  # the user agreed to queue more than MAX_UNCONFIRMED_RUNS runs

    @property
    def n_sets(self) -> int:
        """Parameter sets the sweep tries."""
        if self.method == "grid":
            return math.prod(len(p.values) for p in self.params) if self.params else 0
        return self.trials

    @property
    def n_runs(self) -> int:
        """Runs it queues in all: one per parameter set and seed."""
        return self.n_sets * len(self.seeds)

    def describe(self) -> str:
        """One line: 'grid over learning_rate ∈ {…} × n_steps ∈ {…}, 2 seeds: 8 runs'."""
        how = "grid over" if self.method == "grid" else f"{self.trials} {self.method.upper() if self.method == 'tpe' else 'random'} trials over"
        seeds = f"{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''}"
        return f"{how} {' × '.join(p.describe() for p in self.params)}, {seeds}: {self.n_runs} runs"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": [p.to_dict() for p in self.params], "method": self.method,
                "trials": self.trials, "seeds": list(self.seeds), "prune": self.prune, "name": self.name,
                "confirmed": self.confirmed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepSpec":
        params = tuple(SweepParam(p["name"], tuple(p.get("values") or ()), p.get("low"), p.get("high"), bool(p.get("log")))
                       for p in data.get("params") or ())
        return cls(kind=str(data["kind"]), params=params, method=str(data.get("method", "grid")),
                   trials=int(data.get("trials", 8)), seeds=tuple(int(s) for s in data.get("seeds") or (0,)),
                   prune=bool(data.get("prune")), name=str(data.get("name") or ""), confirmed=bool(data.get("confirmed")))


def format_value(value: Any) -> str:
    """A swept value as people read it: 0.0003 → '0.0003', 1e-05 → '1e-05', True → 'true'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------------- the fields a kind can sweep


def _config_class(kind: str) -> type:
    from llmrl_core.runs.kinds import get_kind, load_part

    cls = load_part(get_kind(kind), "config_class")
    if cls is None:
        raise InputError(f"Runs of kind {kind!r} have no config class, so they cannot be swept.")
    return cls


def _is_sweepable(spec: FieldSpec) -> bool:
    return spec.name not in NOT_SWEPT and (spec.kind in (bool, int, float) or (spec.kind is str and bool(spec.choices)))


def list_sweep_fields(kind: str, config: Mapping[str, Any]) -> dict[str, FieldSpec]:
    """Every field a sweep of `kind` may vary, starting from `config`: the config's own numeric, true/false and
    choice fields, and for a kind with nested hyperparameters (gym's `params`) those of its algorithm."""
    cls = _config_class(kind)
    fields = {name: spec for name, spec in get_field_specs(cls).items() if _is_sweepable(spec)}
    nested = config.get("params")
    if isinstance(nested, Mapping):
        try:
            params = cls.from_dict(config).make_params()
        except (WorkbenchError, AttributeError):
            params = None
        if params is not None and dataclasses.is_dataclass(params):
            for name, spec in get_field_specs(type(params)).items():
                if _is_sweepable(spec):
                    fields.setdefault(name, spec)
    return fields


def apply_values(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` with each field of `values` set: at the top level, or in the nested `params` dict
    (gym's hyperparameters) when that is where the field lives."""
    out = {**config}
    nested = dict(out["params"]) if isinstance(out.get("params"), Mapping) else None
    for name, value in values.items():
        if name in out or nested is None:
            out[name] = value
        else:
            nested[name] = value
    if nested is not None:
        out["params"] = nested
    return out


def make_trial_config(kind: str, base: Mapping[str, Any], values: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The validated config of one trial: `base` with the swept `values` and the `seed` (InputError naming the trial)."""
    cls = _config_class(kind)
    try:
        return cls.from_dict(apply_values(base, {**values, "seed": int(seed)})).to_dict()
    except WorkbenchError as err:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in values.items())
        raise InputError(f"The trial {shown} is not a valid config: {err}") from None


# ---------------------------------------------------------------------- reading the text syntax


def parse_param_text(field: FieldSpec, text: str) -> SweepParam:
    """'1e-3, 3e-4' (values) or '1e-5:1e-3[:log]' (a range) for `field` as a SweepParam; InputError on bad text."""
    raw = str(text).strip()
    if not raw:
        raise InputError(f"{field.name}: give values ('1e-3, 3e-4') or a range ('1e-5:1e-3:log'); it is empty.")
    if ":" in raw and field.kind in (int, float):
        parts = [p.strip() for p in raw.split(":")]
        log = len(parts) == 3 and parts[2].lower() == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise InputError(f"{field.name}: a range is low:high or low:high:log (got {raw!r}).")
        low, high = (_coerce_one(field, p) for p in parts[:2])
        return SweepParam(field.name, low=low, high=high, log=log)
    items = [p.strip() for p in raw.split(",")]
    if any(not p for p in items):
        raise InputError(f"{field.name}: an empty value in {raw!r}; separate values with single commas.")
    values = tuple(dict.fromkeys(_coerce_one(field, p) for p in items))  # a repeated value is tried once
    return SweepParam(field.name, values=values)


def _coerce_one(field: FieldSpec, text: str) -> Any:
    value = coerce_text(dataclasses.replace(field, optional=False), text)
    if field.kind in (int, float) and isinstance(value, str):
        raise InputError(f"{field.name}: {text!r} is not a number.")
    if field.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if field.kind is float and not math.isfinite(value):
        raise InputError(f"{field.name}: {text!r} is not a finite number.")
    if field.choices and value not in field.choices:
        raise InputError(f"{field.name}: {text!r} is not one of {', '.join(map(str, field.choices))}{suggest(text, field.choices)}.")
    return value


def parse_seeds(text: str | Sequence[int]) -> tuple[int, ...]:
    """'0, 1, 2' or '0-4' (a span) as distinct seeds; InputError on anything else."""
    if not isinstance(text, str):
        seeds = [int(s) for s in text]
    else:
        seeds = []
        for part in [p.strip() for p in text.split(",") if p.strip()]:
            first, dash, last = part.partition("-")
            try:
                seeds.extend(range(int(first), int(last) + 1) if dash and first else [int(part)])
            except ValueError:
                raise InputError(f"Seeds are whole numbers separated by commas, or a span like 0-3 (got {part!r}).") from None
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        raise InputError("Give at least one seed (e.g. 0, or 0, 1, 2 to repeat every trial three times).")
    if len(seeds) > MAX_SEEDS:
        raise InputError(f"At most {MAX_SEEDS} seeds per sweep (got {len(seeds)}).")
    if any(not 0 <= s < 2**32 for s in seeds):
        raise InputError("Seeds must be whole numbers from 0 to 4294967295.")
    return tuple(seeds)


# ---------------------------------------------------------------------- checking a whole spec


def build_spec(kind: str, base: Mapping[str, Any], texts: Mapping[str, str], method: str = "grid", trials: int = 8,
               seeds: str | Sequence[int] = "0", prune: bool = False, name: str = "", confirmed: bool = False) -> SweepSpec:
    """A SweepSpec from the form's or the CLI's text, checked (check_spec); InputError on the first problem."""
    if method not in METHODS:
        raise InputError(f"Unknown sweep method {method!r}{suggest(method, METHODS)}; choose grid, random or tpe.")
    fields = list_sweep_fields(kind, base)
    params = []
    for field_name, text in texts.items():
        if field_name not in fields:
            hint = " (seeds are their own dimension: use seeds)" if field_name == "seed" else suggest(field_name, fields)
            raise InputError(f"Unknown field {field_name!r} for a {kind} sweep{hint}. Fields: {', '.join(fields)}.")
        params.append(parse_param_text(fields[field_name], text))
    spec = SweepSpec(kind=kind, params=tuple(params), method=method, trials=int(trials), seeds=parse_seeds(seeds),
                     prune=bool(prune), name=str(name).strip(), confirmed=bool(confirmed))
    check_spec(spec, base)
    return spec


def check_spec(spec: SweepSpec, base: Mapping[str, Any]) -> None:
    """Everything that makes a sweep impossible, as a one-line InputError, before a run is queued:
    no field or more than three, a repeated or unknown field, empty values, an empty or non-positive log
    range, a range in a grid, a bad trial count, too many runs without confirmation, a trial config the
    kind refuses (its bounds, its values)."""
    if spec.method not in METHODS:
        raise InputError(f"Unknown sweep method {spec.method!r}; choose grid, random or tpe.")
    if not spec.params:
        raise InputError("Pick at least one field to sweep (up to three).")
    if len(spec.params) > MAX_FIELDS:
        raise InputError(f"A sweep varies at most {MAX_FIELDS} fields at once (got {len(spec.params)}); fix the others.")
    names = [p.name for p in spec.params]
    if len(set(names)) != len(names):
        raise InputError(f"Each field appears once in a sweep ({', '.join(names)}).")
    fields = list_sweep_fields(spec.kind, base)
    for p in spec.params:
        if p.name not in fields:
            raise InputError(f"Unknown field {p.name!r} for a {spec.kind} sweep{suggest(p.name, fields)}.")
        if p.is_range:
            if spec.method == "grid":
                raise InputError(f"{p.name}: a grid needs values ('1e-3, 3e-4'); ranges are for random and TPE.")
            if fields[p.name].kind not in (int, float):
                raise InputError(f"{p.name}: only number fields take a range.")
            if not p.low < p.high:
                raise InputError(f"{p.name}: the range {p.low:g}:{p.high:g} is empty; the low end must be below the high end.")
            if p.log and p.low <= 0:
                raise InputError(f"{p.name}: a log range needs a low end above 0 (got {p.low:g}).")
        elif not p.values:
            raise InputError(f"{p.name}: give at least one value.")
        elif len(p.values) > MAX_VALUES:
            raise InputError(f"{p.name}: at most {MAX_VALUES} values per field (got {len(p.values)}).")
    if spec.method != "grid" and (isinstance(spec.trials, bool) or not 1 <= spec.trials <= MAX_RUNS):
        raise InputError(f"The number of trials must be a whole number from 1 to {MAX_RUNS} (got {spec.trials}).")
    parse_seeds(list(spec.seeds))
    if spec.n_runs > MAX_RUNS:
        raise InputError(f"This sweep would queue {spec.n_runs} runs; the limit is {MAX_RUNS}. Use fewer values, trials or seeds.")
    if spec.n_runs > MAX_UNCONFIRMED_RUNS and not spec.confirmed:
        raise InputError(f"This sweep would queue {spec.n_runs} runs (over {MAX_UNCONFIRMED_RUNS}); confirm to queue them "
                         "all (tick the box on the form, --yes on the CLI), or use fewer values, trials or seeds.")
    for values in _corner_values(spec):
        make_trial_config(spec.kind, base, values, spec.seeds[0])


def _corner_values(spec: SweepSpec) -> list[dict[str, Any]]:
    """The trial values whose configs must validate: every grid combination; for random and TPE each range's
    ends and each choice (with the other fields at their first value or low end)."""
    if spec.method == "grid":
        return list_grid(spec)
    first = {p.name: (p.low if p.is_range else p.values[0]) for p in spec.params}
    corners = [first]
    for p in spec.params:
        for value in ((p.low, p.high) if p.is_range else p.values):
            corners.append({**first, p.name: value})
    return corners


def list_grid(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of a grid's values, the first field varying slowest (itertools.product order)."""
    names = [p.name for p in spec.params]
    return [dict(zip(names, combo)) for combo in itertools.product(*(p.values for p in spec.params))]


def make_base_config(kind: str, fields: Mapping[str, Any] | None = None, preset: str | None = None) -> dict[str, Any]:
    """A sweep's validated base config from flat fields, as the kind builds one (RunKindSpec.make_config, e.g.
    gym's RL Zoo values with hyperparameters in params), optionally starting from one of its presets."""
    from llmrl_core.core.config import get_preset_overrides
    from llmrl_core.runs.kinds import get_kind, load_part

    spec = get_kind(kind)
    fields = dict(fields or {})
    if preset:
        presets = load_part(spec, "presets")
        if not presets:
            raise InputError(f"Runs of kind {kind!r} have no presets.")
        fields = {**get_preset_overrides(presets, preset), **fields}
    maker = load_part(spec, "make_config")
    return (maker(**fields) if maker is not None else _config_class(kind).from_dict(fields)).to_dict()
