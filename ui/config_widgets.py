"""Widgets from config fields: one builder that maps a field's type and doc to a Streamlit input.

`config_field_ui(RLConfig, "temperature", key=...)` draws the input that the field's annotation
calls for (llmrl_core/core/config.py reads it once for every config), with the field's one-line
doc as help, and returns the value as the field's type:

    bool                        -> checkbox (or a radio, widget="radio")
    choices (FIELD_CHOICES,
      Literal, or choices=)     -> selectbox
    int, float                  -> number_input (no bounds unless given: the config's checks speak)
    X | None                    -> text_input, empty for None (or a number_input where none_as means None)
    str                         -> text_input
    list of scalars             -> text_input of comma-separated items, read back by the base's coercion

The widget's state lives under `key`. It is seeded once from `value` (or the config's own value)
and never passed `value=` afterwards, so a page can keep its form in a dict and re-seed widgets
that Streamlit forgot (hidden tabs) without warnings. Text that cannot be read as the field's
type comes back as typed, so the config's validation names the field when the form is submitted.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import streamlit as st

from llmrl_core.core.config import SCALARS, FieldSpec, coerce_text, get_field_docs, get_field_specs
from llmrl_core.core.errors import InputError

_UNSET: Any = object()


def config_field_ui(config: Any, name: str, *, key: str, value: Any = _UNSET, label: str | None = None,
                    container: Any = st, choices: Sequence | None = None, format_func: Callable[[Any], str] | None = None,
                    step: float | None = None, placeholder: str | None = None, none_as: Any = None,
                    help: str | None = _UNSET, widget: str | None = None, **widget_kwargs: Any) -> Any:
    """Draw the input for field `name` of `config` (a config class or instance) and return its value as the field's type.

    value: what the widget starts from (default: the instance's value, or the class default);
    label: shown above it (default: the field name); container: st or a column;
    choices/format_func: a selectbox's options (default: the field's own choices) and their labels;
    step/placeholder: passed on (a float's default step is a tenth of its value's magnitude);
    none_as: for `int | None` and `float | None`, draw a number_input where this value means None;
    help: the tooltip (default: the field's doc); widget='radio': a bool or a choice as radio buttons;
    widget_kwargs: passed to the Streamlit call (min_value, horizontal, width, ...).
    """
    cls = config if isinstance(config, type) else type(config)
    spec = get_field_specs(cls)[name]
    if value is _UNSET:
        value = spec.default if isinstance(config, type) else getattr(config, name)
    help_text = get_field_docs(cls).get(name) if help is _UNSET else help
    options = list(choices) if choices is not None else list(spec.choices)
    label = label or name
    common = dict(key=key, help=help_text, **widget_kwargs)

    if key not in st.session_state:
        st.session_state[key] = _to_widget(spec, value, none_as, bool(options))
    if options and st.session_state[key] not in options:
        st.session_state[key] = options[0]  # a loaded config named something this list lacks: validation said so

    if widget == "radio":
        options = options or [False, True]
        return container.radio(label, options, format_func=format_func or str, **common)
    if options:
        return container.selectbox(label, options, format_func=format_func or str, **common)
    if spec.kind is bool:
        return bool(container.checkbox(label, **common))
    if spec.kind in (int, float) and (not spec.optional or none_as is not None):
        if spec.kind is int:
            number = container.number_input(label, step=int(step or 1), **common)
            number = int(number)
        else:
            number = container.number_input(label, step=step or _default_step(value), format="%g", **common)
            number = float(number)
        return None if spec.optional and number == none_as else number
    if spec.kind in (int, float, str) or (spec.kind is list and spec.item in SCALARS):
        text = container.text_input(label, placeholder=placeholder, **common)
        return _from_text(spec, text)
    raise TypeError(f"config_field_ui has no widget for {cls.__name__}.{name} ({spec.kind.__name__}); draw it yourself.")


def config_form_ui(config: Any, *, key_prefix: str, names: Sequence[str] | None = None, container: Any = st,
                   **per_field: dict[str, Any]) -> dict[str, Any]:
    """One input per field of `config` (or the fields in `names`), in field order, keyed key_prefix + name.

    Returns {field: value}. `per_field` maps a field name to extra config_field_ui arguments,
    e.g. eval_freq={"step": 100}.
    """
    names = list(names) if names is not None else list(get_field_specs(config if isinstance(config, type) else type(config)))
    return {name: config_field_ui(config, name, key=key_prefix + name, container=container, **per_field.get(name, {}))
            for name in names}


def _to_widget(spec: FieldSpec, value: Any, none_as: Any, has_options: bool) -> Any:
    """A config field's value as its widget holds it."""
    if has_options:
        return value
    if spec.kind is bool:
        return bool(value)
    if spec.kind in (int, float) and (not spec.optional or none_as is not None):
        if value is None:
            return none_as if none_as is not None else spec.kind(0)
        return spec.kind(value)
    if spec.kind is list:
        return ", ".join(str(v) for v in value or [])
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _from_text(spec: FieldSpec, text: str) -> Any:
    """A text box's content as the field's value; text that is not one comes back as typed, for validation to name."""
    if spec.kind is str:
        return (text.strip() or None) if spec.optional else text
    try:
        return coerce_text(spec, text)
    except InputError:
        return text


def _default_step(value: Any) -> float:
    """A step a tenth of the value's magnitude: 0.98 -> 0.01, 1e-3 -> 1e-4; 0.01 for 0."""
    value = float(value or 0)
    if not value or not math.isfinite(value):
        return 0.01
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1)
