"""Reward building blocks: the reward-type record, named rewards, reward sets and their scores.

A reward function follows TRL's interface (trl/trainer/grpo_trainer.py, trl/rewards/):
`fn(prompts=[...], completions=[...], **columns) -> [float | None, ...]`, one value per
completion; None means "does not apply" and is left out of the weighted sum. Several are
combined with weights into a total, as TRL does with `nansum(rewards * weights)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from llmrl_core.core.errors import InputError, WorkbenchError

RewardFn = Callable[..., list[float | None]]


class RewardError(WorkbenchError):
    """A reward function failed or returned something unusable; the message names the reward."""


@dataclass(frozen=True)
class RewardType:
    """One kind of reward the UI can offer: its parameters with defaults and what it needs."""

    key: str  # the spec's "type"
    label: str  # shown in menus
    description: str  # one or two sentences: what it scores and in what range
    params: dict[str, Any]  # parameter name -> default value (its type is the parameter's type; [] = list of words)
    needs_network: bool  # may download a model from the Hugging Face hub
    runs_user_code: bool  # executes code typed by the user (gated by security.custom_code_allowed)
    loads_model: bool = False  # building it loads a neural model (seconds), so editors only check types
    choices: dict[str, tuple] = field(default_factory=dict)  # parameter -> allowed values
    help: dict[str, str] = field(default_factory=dict)  # parameter -> one-line help for the UI
    build: Callable[[dict[str, Any]], RewardFn] | None = field(default=None, repr=False, compare=False)


# --------------------------------------------------------------------------- parameters


def _coerce_bool(value: Any, what: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "on", "false", "no", "0", "off"}:
        return value.strip().lower() in {"true", "yes", "1", "on"}
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise InputError(f"{what} must be true or false (got {value!r}).")


def coerce_number(value: Any, kind: type, what: str) -> int | float:
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{what} must be a number (got {value!r}).")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number (got {value!r}).") from None
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite number (got {value!r}).")
    if kind is int:
        if number != int(number):
            raise InputError(f"{what} must be a whole number (got {value!r}).")
        return int(number)
    return number


def coerce_params(rtype: RewardType, raw: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the type's params filled with defaults, each converted to its default's type.

    Raises InputError naming the reward and the parameter for unknown names, wrong types and
    values outside `choices`.
    """
    unknown = sorted(set(raw) - set(rtype.params))
    if unknown:
        accepted = ", ".join(rtype.params) or "none"
        raise InputError(
            f"Reward {name!r} ({rtype.label}) has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {accepted}."
        )
    out: dict[str, Any] = {}
    for param, default in rtype.params.items():
        value = raw.get(param, default)
        what = f"Reward {name!r}: {param}"
        if isinstance(default, bool):
            value = _coerce_bool(value, what)
        elif isinstance(default, int):
            value = coerce_number(value, int, what)
        elif isinstance(default, float):
            value = coerce_number(value, float, what)
        elif isinstance(default, str):
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise InputError(f"{what} must be text (got {value!r}).")
        elif isinstance(default, (list, tuple)):  # a list of words: ['a', 'b'] or 'a, b'
            if value is None:
                value = []
            if not isinstance(value, (str, list, tuple)):
                raise InputError(f"{what} must be a list of words or comma-separated text (got {value!r}).")
            value = split_words_list(value)
        allowed = rtype.choices.get(param)
        if allowed and value not in allowed:
            raise InputError(f"{what} must be one of {', '.join(map(repr, allowed))} (got {value!r}).")
        out[param] = value
    return out


def split_words_list(value: str | Sequence[str]) -> list[str]:
    """'good, great' or ['good', 'great'] -> ['good', 'great'] (blank entries dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


# --------------------------------------------------------------------------- named rewards


def check_reward_output(name: str, values: Any, n: int) -> list[float | None]:
    """Validate a reward's return value: one real number or None per completion (NaN counts as None)."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        raise RewardError(
            f"Reward {name!r} returned {type(values).__name__}; it must return a list with one number "
            f"(or None) per completion ({n} here)."
        )
    if len(values) != n:
        raise RewardError(f"Reward {name!r} returned {len(values)} values for {n} completions; return one per completion.")
    out: list[float | None] = []
    for i, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number)):
            raise RewardError(f"Reward {name!r} returned {value!r} for completion {i}; return a number or None.")
        number = float(value)
        if math.isnan(number):
            out.append(None)
        elif math.isinf(number):
            raise RewardError(f"Reward {name!r} returned {number} for completion {i}; rewards must be finite.")
        else:
            out.append(number)
    return out


class NamedReward:
    """A reward callable with a name: checks its output and re-raises any failure with that name.

    TRL names rewards by `__name__`, so the wrapper carries one. `close()` releases what the
    reward holds (e.g. the worker process of a custom-code reward).
    """

    def __init__(self, name: str, fn: Callable[..., Any], type_key: str | None = None,
                 close: Callable[[], None] | None = None) -> None:
        self.name, self.fn, self.type_key, self._close = name, fn, type_key, close
        self.__name__ = name

    def __call__(self, prompts: Sequence[str] | None = None, completions: Sequence[str] | None = None,
                 **columns: Any) -> list[float | None]:
        """Score completions; any exception comes back as RewardError('Reward <name> failed: ...')."""
        completions = list(completions or [])
        prompts = list(prompts) if prompts is not None else [""] * len(completions)
        try:
            values = self.fn(prompts=prompts, completions=completions, **columns)
        except RewardError:
            raise
        except WorkbenchError as err:
            raise RewardError(f"Reward {self.name!r} failed: {err}") from err
        except Exception as err:
            raise RewardError(f"Reward {self.name!r} failed with {type(err).__name__}: {err}") from err
        return check_reward_output(self.name, values, len(completions))

    def close(self) -> None:
        """Release resources held by the reward (idempotent)."""
        if self._close is not None:
            self._close()

    def __repr__(self) -> str:
        return f"NamedReward({self.name!r}, type={self.type_key!r})"


# --------------------------------------------------------------------------- sets and scores


@dataclass
class RewardScores:
    """Scores for one batch: each reward's values and the weighted total."""

    per_reward: dict[str, np.ndarray]  # name -> (N,) float64, NaN where the reward returned None
    total: np.ndarray  # (N,) weighted sum ignoring NaN (TRL's nansum); NaN where every reward was None

    def as_frame(self) -> pd.DataFrame:
        """One row per completion, a column per reward and `total`."""
        return pd.DataFrame({**self.per_reward, "total": self.total})

    def summarize(self) -> dict[str, float]:
        """TRL-named batch metrics: reward and reward_std of the total, rewards/<name>/mean and /std.

        A NaN (a reward that returned None) is left out; a mean over no values is NaN, and a std is
        the sample std (ddof=1, as torch.std and TRL use), 0 with fewer than two values. The trainer
        logs these (it counts a NaN total as 0 first and replaces reward_std by the per-group std).
        """
        out = {"reward": _finite_mean(self.total), "reward_std": _finite_std(self.total)}
        for name, values in self.per_reward.items():
            out[f"rewards/{name}/mean"] = _finite_mean(values)
            out[f"rewards/{name}/std"] = _finite_std(values)
        return out


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite entries of `values`; NaN when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def _finite_std(values: np.ndarray) -> float:
    """Sample std (ddof=1) of the finite entries of `values`; 0 with fewer than two."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def unique_names(names: Sequence[str]) -> list[str]:
    """Make names unique by suffixing _2, _3... to repeats (metric keys must not collide)."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, k = name, 2
        while candidate in taken:
            candidate, k = f"{name}_{k}", k + 1
        taken.add(candidate)
        out.append(candidate)
    return out


@dataclass
class RewardSet:
    """Several rewards with weights; `score` runs them all and sums them like TRL."""

    names: list[str]
    fns: list[RewardFn]
    weights: list[float]

    def __post_init__(self) -> None:
        if not self.fns:
            raise InputError("Add at least one reward function.")
        if not len(self.names) == len(self.fns) == len(self.weights):
            raise InputError(
                f"Give one name and one weight per reward ({len(self.fns)} rewards, {len(self.names)} names, "
                f"{len(self.weights)} weights)."
            )
        if len(set(self.names)) != len(self.names):
            raise InputError(f"Reward names must be unique (got {self.names}); rename the repeats.")
        self.weights = [coerce_number(w, float, f"The weight of reward {n!r}") for n, w in zip(self.names, self.weights)]

    @classmethod
    def from_callables(cls, fns: Sequence[Callable[..., Any]], weights: Sequence[float] | None = None,
                       names: Sequence[str] | None = None) -> "RewardSet":
        """Wrap plain TRL-style reward functions; names default to each function's __name__."""
        fns = list(fns)
        if names is None:
            names = [getattr(fn, "__name__", "") or f"reward_{i}" for i, fn in enumerate(fns)]
            names = ["reward_%d" % i if n == "<lambda>" else n for i, n in enumerate(names)]
            names = unique_names(names)
        weights = [1.0] * len(fns) if weights is None else list(weights)
        wrapped = [fn if isinstance(fn, NamedReward) and fn.name == name else NamedReward(name, fn)
                   for name, fn in zip(names, fns)]
        return cls(names=list(names), fns=wrapped, weights=weights)

    def score(self, prompts: Sequence[str], completions: Sequence[str], **columns: Any) -> RewardScores:
        """Run every reward on the batch; `columns` are lists aligned with `completions`."""
        n = len(completions)
        if len(prompts) != n:
            raise InputError(f"Got {len(prompts)} prompts for {n} completions; repeat each prompt once per sample.")
        for column, values in columns.items():
            if hasattr(values, "__len__") and not isinstance(values, str) and len(values) != n:
                raise InputError(f"Column {column!r} has {len(values)} values for {n} completions; align it with them.")
        per_reward: dict[str, np.ndarray] = {}
        for name, fn in zip(self.names, self.fns):
            guarded = fn if isinstance(fn, NamedReward) else NamedReward(name, fn)
            values = guarded(prompts=list(prompts), completions=list(completions), **columns)
            per_reward[name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)  # (N,)
        stacked = np.stack([per_reward[name] * w for name, w in zip(self.names, self.weights)])  # (R, N)
        total = np.nansum(stacked, axis=0)  # (N,)
        total[np.isnan(stacked).all(axis=0)] = math.nan
        return RewardScores(per_reward=per_reward, total=total)

    def close(self) -> None:
        """Release what the rewards hold (custom-code workers); safe to call twice."""
        for fn in self.fns:
            closer = getattr(fn, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> "RewardSet":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
