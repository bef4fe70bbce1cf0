"""One config base for every run config: field docs, type checks, coercion of typed text, dict/YAML, `--set`.

The workbench's configs (RLConfig, GymConfig and the Gymnasium algorithms' params) are flat
dataclasses in CleanRL's style: one annotated field per setting with a one-line docstring under
it. This module reads what those dataclasses already say, once, for all of them:

  * `get_field_docs(cls)`: the docstring under each field (form tooltips, CLI help);
  * `get_field_specs(cls)`: each field's annotation resolved to a `FieldSpec` (its base type,
    whether None is allowed, a list's item type, the allowed choices, the default), which the
    type check, the coercion and the widget builder (ui/config_widgets.py) all read;
  * `check_field_types(obj)`: each field holds its type, normalised in place (2.0 -> 2, 3 -> 3.0,
    comma text -> a list of scalars), NaN and inf refused, choices enforced;
  * `coerce_text(spec, text)`: text typed in a box or after `--set key=` as the field's type
    ("2e-5" -> 2e-05, "true" -> True, "[64, 64]" or "64, 64" -> [64, 64], "none" -> None);
  * `ConfigBase`: to_dict/from_dict/to_yaml/from_yaml/save/load/replace for such a dataclass;
  * `parse_set_items(["k=v", ...], cls)`: the one `--set` parser of the train and gym commands.

Every refusal is an InputError whose one line names the field and says what to change, so a
form or the CLI shows it as is.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import math
import numbers
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from llmrl_core.core.errors import InputError

C = TypeVar("C", bound="ConfigBase")

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NONE_WORDS = ("", "none", "null", "~")
SCALARS = (bool, int, float, str)  # list items that typed text can spell, comma-separated
KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list",
              dict: "a mapping of name: value"}
ITEM_WORDS = {bool: "true or false values", int: "whole numbers", float: "numbers", str: "names"}


# ----------------------------------------------------------------------------- what a field's annotation says


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One config field as its annotation, its class and its default describe it."""

    name: str
    """the field's name"""
    kind: type
    """bool, int, float, str, list or dict: the annotation without `| None` and without item types"""
    optional: bool
    """True when the annotation allows None (`X | None`)"""
    item: type | None
    """the item type of a list field (`list[int]` -> int), else None"""
    choices: tuple
    """the allowed values (`Literal[...]` or the class's FIELD_CHOICES), or () for any"""
    default: Any
    """the default value (a fresh one for a default_factory), or dataclasses.MISSING"""


@functools.lru_cache(maxsize=None)
def get_field_specs(cls: type) -> dict[str, FieldSpec]:
    """Each dataclass field of `cls` as a FieldSpec, in field order (resolved once per class)."""
    hints = typing.get_type_hints(cls)
    extra_choices: Mapping[str, Iterable] = getattr(cls, "FIELD_CHOICES", {}) or {}
    specs: dict[str, FieldSpec] = {}
    for f in dataclasses.fields(cls):
        hint, optional = hints[f.name], False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # int | None
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0] if len(args) == 1 else object
        choices: tuple = ()
        if typing.get_origin(hint) is typing.Literal:
            choices = typing.get_args(hint)
            hint = type(choices[0])
        origin = typing.get_origin(hint) or hint
        item = None
        if origin is list:
            args = typing.get_args(hint)
            item = (typing.get_origin(args[0]) or args[0]) if args else None
        kind = origin if origin in (bool, int, float, str, list, dict) else (dict if origin is Mapping else object)
        if f.name in extra_choices:
            choices = tuple(extra_choices[f.name])
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = dataclasses.MISSING
        specs[f.name] = FieldSpec(f.name, kind, optional, item, choices, default)
    return specs


@functools.lru_cache(maxsize=None)
def get_field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a config dataclass, on one line (what forms show as help).

    Reads the class source: the pattern is an annotated field followed by a string expression,
    as in CleanRL and TRL. Fields of dataclass bases are included; a class without source gives {}.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body  # type: ignore[attr-defined]
        except (OSError, TypeError, IndexError, AttributeError, SyntaxError):
            continue
        for node, following in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                    and isinstance(following.value.value, str):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


# ----------------------------------------------------------------------------- messages


def suggest(word: Any, choices: Iterable[Any]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices` (difflib), or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show_value(value: Any) -> str:
    """A value and its type for a message, cut short: \"'abc' (str)\"."""
    text = repr(value)
    return f"{text[:80] + '…' if len(text) > 80 else text} ({type(value).__name__})"


def describe_default(spec: FieldSpec) -> str:
    """'; the default is X' for a message ('; leave it empty for the default' when that is None)."""
    if spec.default is None:
        return "; leave it empty for the default"
    if spec.default is dataclasses.MISSING:
        return ""
    return f"; the default is {spec.default!r}"


def describe_yaml_error(err: Exception) -> str:
    """One line for a YAML syntax error: what is wrong and where (PyYAML's own text spans several lines)."""
    problem = getattr(err, "problem", None) or str(err).split("\n")[0]
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def check_known_keys(keys: Iterable[Any], names: Iterable[str], what: str) -> None:
    """Refuse keys that are not among `names`, each with the closest name: 'Unknown config field(s): 'lr' ...'."""
    names = list(names)
    unknown = [k for k in keys if k not in names]
    if unknown:
        hints = ", ".join(f"{k!r}{suggest(k, names)}" for k in unknown)
        raise InputError(f"Unknown {what}(s): {hints}. Valid fields: {', '.join(names)}.")


def _like(spec: FieldSpec) -> str:
    """', like 64,64' from a list field's default (how a text box or --set spells it), or ''."""
    if isinstance(spec.default, list) and spec.default and all(isinstance(v, SCALARS) for v in spec.default):
        return f", like {','.join(str(v) for v in spec.default)}"
    return ""


# ----------------------------------------------------------------------------- typed text -> the field's type


def coerce_text(spec: FieldSpec, text: str) -> Any:
    """Text typed in a form or after `--set key=` as the field's type; InputError naming the field when it cannot be.

    bool: true/yes/on/1 or false/no/off/0; int: '7', also '1e5' (a whole number written as a float);
    float: anything float() reads ('2e-5', 'nan' and 'inf' too: the type check refuses those with the
    field named); `X | None`: '', 'none' or 'null' give None; a list of scalars: '[64, 64]' or
    '64, 64'; a list or mapping of anything else: read as YAML when it starts with [ or {. Other
    text is returned as is (str fields keep it; for the rest the type check says what it needs).
    """
    stripped = text.strip()
    if spec.optional and stripped.lower() in NONE_WORDS:
        return None
    if spec.kind in (bool, int, float):
        return _coerce_scalar(spec, spec.kind, stripped, text)
    if spec.kind is list and spec.item in SCALARS:
        inner = stripped[1:-1] if stripped[:1] + stripped[-1:] in ("[]", "()") else stripped
        parts = [p.strip().strip("'\"") for p in inner.split(",")]
        parts = [p for p in parts if p]
        if spec.item is str:
            return parts
        try:
            return [_coerce_scalar(spec, spec.item, p, text) for p in parts]
        except InputError:
            raise InputError(f"{spec.name} must be {ITEM_WORDS[spec.item]} separated by commas{_like(spec)} "
                             f"(got {text!r}).") from None
    if spec.kind in (list, dict) and stripped[:1] in ("[", "{"):
        try:
            return yaml.safe_load(stripped)
        except (yaml.YAMLError, RecursionError):
            return text  # the type check names the field
    return text


def _coerce_scalar(spec: FieldSpec, kind: type, stripped: str, text: str) -> Any:
    """`stripped` as a bool, int or float; InputError naming `spec` when it is not one."""
    lowered = stripped.lower()
    if kind is bool and lowered in TRUE_WORDS + FALSE_WORDS:
        return lowered in TRUE_WORDS
    if kind is int:
        try:
            return int(stripped)
        except ValueError:
            try:
                number = float(stripped)
            except ValueError:
                number = math.nan
            if math.isfinite(number) and number.is_integer():
                return int(number)  # '1e5'
    if kind is float:
        try:
            return float(stripped)
        except ValueError:
            pass
    raise InputError(f"{spec.name} must be {KIND_WORDS[kind]} (got {text!r}){describe_default(spec)}.")


def coerce_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each text value of a known field of `cls` coerced to the field's type (other values as given)."""
    specs = get_field_specs(cls)
    return {k: coerce_text(specs[k], v) if isinstance(v, str) and k in specs else v for k, v in data.items()}


# ----------------------------------------------------------------------------- the type check


def check_field_types(obj: Any) -> None:
    """Check that each field of a config dataclass holds its declared type, and normalise it in place.

    bool fields take True/False only; int fields whole numbers (2.0 becomes 2); float fields finite
    numbers (NaN and inf are refused); str, list and dict fields text, lists and mappings, where a
    list of scalars may also be given as comma text ('64, 64') and its items are checked; `X | None`
    also takes None; a field with choices takes one of them. Text is not read as a number here: that
    is coerce_text's job, for the sources that give text (forms, YAML strings, --set).
    """
    for spec in get_field_specs(type(obj)).values():
        value = getattr(obj, spec.name)
        if value is None and spec.optional:
            continue
        checked = check_value(spec, value)
        if checked is not value:
            setattr(obj, spec.name, checked)


def check_value(spec: FieldSpec, value: Any) -> Any:
    """`value` checked against `spec` and normalised (see check_field_types); InputError naming the field."""
    name, kind = spec.name, spec.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{name} must be true or false (got {show_value(value)}).")
    elif kind is int:
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)) \
                and math.isfinite(float(value)) and float(value).is_integer():
            value = int(value)  # 1e5 typed as a float
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InputError(f"{name} must be a whole number (got {show_value(value)}){describe_default(spec)}.")
        value = int(value)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputError(f"{name} must be a number (got {show_value(value)}){describe_default(spec)}.")
        if not math.isfinite(float(value)):
            raise InputError(f"{name} must be a finite number, not {value!r}{describe_default(spec)}.")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise InputError(f"{name} must be text (got {show_value(value)}){describe_default(spec)}.")
    elif kind is list:
        if isinstance(value, str) and spec.item in SCALARS:
            value = coerce_text(spec, value)  # 'q_proj, v_proj' from a form or a Python caller
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise InputError(f"{name} must be a list (got {show_value(value)}){describe_default(spec)}.")
        if spec.item in SCALARS:
            value = [_check_item(spec, v) for v in value]
    elif kind is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"{name} must be a mapping of name: value (got {show_value(value)}){describe_default(spec)}.")
    if spec.choices and value not in spec.choices:
        choices = ", ".join(map(str, spec.choices))
        raise InputError(f"{name} must be one of {choices} (got {value!r}){suggest(value, spec.choices)}.")
    return value


def _check_item(spec: FieldSpec, value: Any) -> Any:
    """One item of a list of scalars, checked (whole numbers stay whole; no bools for numbers)."""
    item = spec.item
    ok = isinstance(value, item) and not (item is not bool and isinstance(value, bool))
    if item is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok, value = math.isfinite(float(value)), float(value)
    if not ok:
        raise InputError(f"{spec.name} must be a list of {ITEM_WORDS[item]}{_like(spec)} (got {show_value(value)}).")
    return value


# ----------------------------------------------------------------------------- the base


class ConfigBase:
    """Mixin for a config dataclass: type checks, dict and YAML round trips, one message style.

    A subclass is a @dataclass whose fields carry a one-line docstring each; its __post_init__ calls
    `self.check_types()` first, then checks values. Class attributes (not fields) tune the messages:
    CONFIG_LABEL names the config in them, UNKNOWN_LABEL an unknown key, LOAD_HINT says how to make a
    file; FIELD_CHOICES maps a str field to its allowed values; COERCE_TEXT=False keeps from_dict from
    reading text as numbers (a config that only Python callers, the CLI's --set and forms fill).
    """

    CONFIG_LABEL: ClassVar[str] = "config"
    UNKNOWN_LABEL: ClassVar[str] = "config field"
    LOAD_HINT: ClassVar[str] = "write one with save(path)"
    FIELD_CHOICES: ClassVar[Mapping[str, Iterable]] = {}
    COERCE_TEXT: ClassVar[bool] = True

    def check_types(self) -> None:
        """Each field holds its declared type (see check_field_types); call it first in __post_init__."""
        check_field_types(self)

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each field's one-line doc (form tooltips)."""
        return get_field_docs(cls)

    @classmethod
    def field_specs(cls) -> dict[str, FieldSpec]:
        """Each field's FieldSpec."""
        return get_field_specs(cls)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (what the run store keeps as the run's config)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any] | None) -> C:
        """Build and validate from a dict: unknown keys named with the closest field; text coerced where typed."""
        if data is not None and not isinstance(data, Mapping):
            raise InputError(f"A {cls.CONFIG_LABEL} must be a mapping of field: value, e.g. {{'seed': 1}} "
                             f"(got {type(data).__name__}).")
        data = dict(data or {})
        check_known_keys(data, get_field_specs(cls), cls.UNKNOWN_LABEL)
        if cls.COERCE_TEXT:
            data = coerce_fields(cls, data)
        return cls(**data)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_yaml(self) -> str:
        """YAML text of every field, in field order."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls: type[C], text: str) -> C:
        """Parse YAML text (a mapping of field: value); missing fields keep their defaults."""
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise InputError(f"The {cls.CONFIG_LABEL} is not valid YAML: {describe_yaml_error(err)}.") from None
        except RecursionError:
            raise InputError(f"The {cls.CONFIG_LABEL} YAML is nested too deeply; a config is a flat mapping of "
                             "field: value.") from None
        if not isinstance(data, dict):
            raise InputError(f"The {cls.CONFIG_LABEL} YAML must be a mapping of field: value, one per line, "
                             "e.g. 'seed: 1'.")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the YAML to `path` and return it."""
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a YAML config file; encoding, YAML and field problems are named with the file."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"No config file at {str(path)!r}; {cls.LOAD_HINT}.")
        try:
            data = path.read_bytes()
        except OSError as err:
            raise InputError(f"Cannot read the config file {str(path)!r}: {err.strerror or err}.") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise InputError(
                f"The config file {str(path)!r} is not UTF-8 text (byte 0x{data[err.start:err.start + 1].hex()} at "
                f"position {err.start}); save it as UTF-8 YAML."
            ) from None
        if "\x00" in text:
            raise InputError(f"The config file {str(path)!r} looks binary (it holds NUL bytes); give a YAML text file.")
        try:
            return cls.from_yaml(text)
        except InputError as err:
            raise InputError(f"{str(path)!r}: {err}") from None


# ----------------------------------------------------------------------------- --set key=value


def parse_set_items(items: Iterable[str] | None, cls: type | tuple[type, ...], flag: str = "--set") -> dict[str, Any]:
    """`--set key=value` items as {field: value} for the config class(es) `cls` (the first class naming a field wins).

    The value is read as YAML (so 0.99, true, null, [64, 64] and {type: vader} mean what they look
    like, and 'quoted text' stays text); text left over is coerced to the field's type by
    coerce_text ('2e-5' -> 2e-05, 'nan' -> nan, which the config then refuses by name). Keys no
    class knows are refused with the closest field. An empty value means None.
    """
    classes = cls if isinstance(cls, tuple) else (cls,)
    specs: dict[str, FieldSpec] = {}
    for klass in classes:
        for name, spec in get_field_specs(klass).items():
            specs.setdefault(name, spec)
    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep:
            raise InputError(f"{flag} takes key=value, e.g. {flag} learning_rate=2e-5 (got {item!r}).")
        if not key:
            raise InputError(f"{flag} needs a setting name before '=', as in key=value, e.g. {flag} learning_rate=2e-5 "
                             f"(got {item!r}).")
        if key not in specs:
            raise InputError(f"{flag} {key}: no such setting{suggest(key, specs)}. Settings: {', '.join(specs)}.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise InputError(f"{flag} {key}: the value {raw!r} is not valid YAML ({describe_yaml_error(err)}); "
                             f"quote text that holds : [ ] {{ }} or #, e.g. {flag} 'system_prompt=\"a: b\"'.") from None
        except RecursionError:
            raise InputError(f"{flag} {key}: the value is nested too deeply.") from None
        if isinstance(value, str):
            value = coerce_text(specs[key], value)
        parsed[key] = value
    return parsed


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named starting point of a run kind's form: a title and description for the UI, and the fields it sets."""

    title: str
    description: str
    overrides: dict


def get_preset_overrides(presets: Mapping[str, Preset], name: str, hint: str = "") -> dict:
    """The fields preset `name` sets (a copy), or an InputError naming the presets there are (and `hint`)."""
    if name not in presets:
        raise InputError(f"Unknown preset {name!r}{suggest(name, presets)}; choose one of: {', '.join(presets)}{hint}.")
    return dict(presets[name].overrides)
