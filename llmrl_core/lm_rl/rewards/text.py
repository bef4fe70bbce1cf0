"""Rewards computed from the text alone: length target, keywords, regex format, distinct-n, exact answer.

Each `make_*` takes validated params (see the registry) and returns a TRL-style reward
`fn(prompts, completions, **columns) -> list[float | None]`. All are pure Python and offline.
The user's pattern in the regex reward runs on the `regex` package with a time limit per
completion (REGEX_TIMEOUT_S), so a catastrophic pattern cannot stall a run.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import regex

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.rewards.base import RewardFn

REGEX_TIMEOUT_S = 1.0  # per completion; a sane pattern takes microseconds, a catastrophic one grows without bound

# --------------------------------------------------------------------------- length


def count_length(text: str, unit: str, token_ids: Sequence[int] | None = None) -> int:
    """Length of a completion in words (whitespace-separated), characters, or tokens (from its ids)."""
    if unit == "words":
        return len(text.split())
    if unit == "chars":
        return len(text)
    if token_ids is None:
        raise InputError(
            "A length in tokens needs the completions' token ids (the trainer passes them as completion_ids); "
            "use words or chars to score typed text."
        )
    return len(token_ids)


def make_length_reward(params: dict[str, Any]) -> RewardFn:
    """1 at exactly `target` units, falling linearly to 0 at `falloff` units away: max(0, 1 - |n - target| / falloff)."""
    target, unit, falloff = params["target"], params["unit"], params["falloff"]
    if target < 0:
        raise InputError(f"The length target must be 0 or more {unit} (got {target}).")
    if falloff <= 0:
        raise InputError(f"The fall-off must be above 0 {unit} (got {falloff}); it is how far from the target the reward reaches 0.")

    def length_reward(prompts: list[str], completions: list[str], completion_ids: Any = None, **_: Any) -> list[float]:
        ids = completion_ids if completion_ids is not None else [None] * len(completions)
        return [max(0.0, 1.0 - abs(count_length(c, unit, i) - target) / falloff) for c, i in zip(completions, ids)]

    return length_reward


# --------------------------------------------------------------------------- keywords


def _keyword_pattern(word: str, case_sensitive: bool, whole_word: bool) -> re.Pattern:
    body = re.escape(word)
    if whole_word:
        body = rf"(?<!\w){body}(?!\w)"  # \b fails next to punctuation inside the keyword ("c++")
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def make_keywords_reward(params: dict[str, Any]) -> RewardFn:
    """Fraction of `include` keywords present minus fraction of `avoid` keywords present; in [-1, 1]."""
    include, avoid = params["include"], params["avoid"]  # lists of words (coerce_params split any text)
    if not include and not avoid:
        raise InputError("The keywords reward needs words to include or to avoid (comma-separated).")
    flags = (params["case_sensitive"], params["whole_word"])
    include_re = [_keyword_pattern(w, *flags) for w in include]
    avoid_re = [_keyword_pattern(w, *flags) for w in avoid]

    def keywords_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        scores = []
        for text in completions:
            score = sum(bool(p.search(text)) for p in include_re) / len(include_re) if include_re else 0.0
            score -= sum(bool(p.search(text)) for p in avoid_re) / len(avoid_re) if avoid_re else 0.0
            scores.append(score)
        return scores

    return keywords_reward


# --------------------------------------------------------------------------- regex / format


def make_regex_reward(params: dict[str, Any]) -> RewardFn:
    """1.0 when the pattern matches (anywhere for 'search'; the whole stripped text for 'fullmatch'), else 0.0.

    The pattern runs with DOTALL, so `.` crosses lines, as in TRL's format rewards. It runs on the
    `regex` package (Python's `re` syntax) with REGEX_TIMEOUT_S per completion: a pattern that
    backtracks catastrophically (e.g. `(a|aa)+$` on "aaa...b") raises InputError naming the pattern
    and the completion, rather than returning None, because None means "does not apply" and would
    quietly train without this reward while every step waits out the limit.
    """
    pattern = params["pattern"]
    if not pattern:
        raise InputError("The regex reward needs a pattern, e.g. <answer>.+</answer>.")
    flags = regex.DOTALL | (regex.IGNORECASE if params["ignore_case"] else 0)
    try:
        compiled = regex.compile(pattern, flags)
    except regex.error as err:
        raise InputError(f"The pattern {pattern!r} is not a valid regular expression: {err}.") from err
    full = params["mode"] == "fullmatch"

    def matches(text: str, i: int) -> float:
        try:
            found = compiled.fullmatch(text.strip(), timeout=REGEX_TIMEOUT_S) if full else \
                compiled.search(text, timeout=REGEX_TIMEOUT_S)
        except TimeoutError:
            raise InputError(
                f"The pattern {pattern!r} took more than {REGEX_TIMEOUT_S:g} s on completion {i} "
                f"({len(text)} characters), so it was stopped: it backtracks catastrophically. Avoid nested "
                f"repeats such as (a+)+ or (a|aa)+; make the alternatives exclusive."
            ) from None
        return 1.0 if found else 0.0

    def regex_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [matches(c, i) for i, c in enumerate(completions)]

    return regex_reward


# --------------------------------------------------------------------------- repetition


def compute_distinct_n(text: str, n: int) -> float:
    """Distinct word n-grams / all word n-grams (case-folded); 0.0 when the text has fewer than n words.

    Scoring empty or too-short text 0 keeps the policy from escaping repetition by saying nothing.
    """
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def make_distinct_n_reward(params: dict[str, Any]) -> RewardFn:
    """distinct-n (Li et al. 2016, arXiv 1510.03055) per completion: 1.0 means no n-gram repeats."""
    n = params["n"]
    if not 1 <= n <= 10:
        raise InputError(f"n must be between 1 and 10 words (got {n}).")

    def distinct_n_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [compute_distinct_n(c, n) for c in completions]

    return distinct_n_reward


# --------------------------------------------------------------------------- exact answer

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is|:)?\s*:?\s*(.+)", re.IGNORECASE)


def extract_last_number(text: str) -> float | None:
    """The last number in the text ('1,234.5' -> 1234.5, '-3' -> -3.0); None when there is none."""
    matches = _NUMBER.findall(text)
    return float(matches[-1].replace(",", "")) if matches else None


def normalize_answer(text: str) -> str:
    """Lower-case, collapse spaces and strip surrounding quotes, spaces and punctuation."""
    return " ".join(text.lower().split()).strip(" \t\"'`.,;:!?()[]{}*")


def extract_final_answer(text: str) -> str:
    """The final answer of a completion: the last \\boxed{...}, else what follows the last 'answer:' or
    'answer is', else the last non-empty line; normalised."""
    boxed = _BOXED.findall(text)
    if boxed:
        return normalize_answer(boxed[-1])
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        found = _ANSWER_IS.findall(line)
        if found:
            return normalize_answer(found[-1])
    return normalize_answer(lines[-1]) if lines else ""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def make_exact_answer_reward(params: dict[str, Any]) -> RewardFn:
    """1.0 when the completion's answer equals the `column` value, else 0.0; None where the row has no answer.

    mode 'number' compares the last number in the completion with the last number in the
    answer (so GSM8K's '... #### 72' works), within 1e-6 relative; mode 'text' compares the
    normalised final answer (see extract_final_answer) with the normalised expected text.
    """
    column, mode = params["column"], params["mode"]
    if not column:
        raise InputError("Name the column holding the expected answers (usually answer).")

    def exact_answer_reward(prompts: list[str], completions: list[str], **columns: Any) -> list[float | None]:
        if column not in columns:
            shown = ", ".join(sorted(columns)) or "none"
            raise InputError(
                f"the prompt set has no {column!r} column (extra columns: {shown}); "
                f"use a prompt set with expected answers, e.g. the built-in arithmetic set."
            )
        scores: list[float | None] = []
        for i, (text, expected) in enumerate(zip(completions, columns[column])):
            if _is_missing(expected):
                scores.append(None)
                continue
            if mode == "text":
                scores.append(1.0 if extract_final_answer(text) == normalize_answer(str(expected)) else 0.0)
                continue
            want = extract_last_number(str(expected))
            if want is None:
                raise InputError(f"the expected answer {str(expected)[:60]!r} (row {i}) has no number; use mode text.")
            got = extract_last_number(text)
            scores.append(1.0 if got is not None and abs(got - want) <= 1e-6 * max(1.0, abs(want)) else 0.0)
        return scores

    return exact_answer_reward
