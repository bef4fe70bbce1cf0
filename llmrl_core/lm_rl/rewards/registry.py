"""The reward registry (type key -> RewardType) and building rewards from plain-dict specs.

A spec is what the UI and the CLI store in a run's config, e.g.
`{"type": "vader", "name": "sentiment", "weight": 1.0}` or
`{"type": "length", "target": 30, "unit": "words", "falloff": 30}`.
"""

from __future__ import annotations

import difflib
from typing import Any, Sequence

from llmrl_core.core.config import suggest
from llmrl_core.core.errors import InputError, WorkbenchError
from llmrl_core.lm_rl.rewards import custom, hf_models, sentiment, text
from llmrl_core.lm_rl.rewards.base import NamedReward, RewardSet, RewardType, coerce_number, coerce_params, unique_names

_TYPES = [
    RewardType(
        key="vader", label="Sentiment (VADER)",
        description="VADER's compound sentiment score of the completion, in [-1, 1]; rule-based, offline and instant.",
        params={"target": "positive"}, needs_network=False, runs_user_code=False,
        choices={"target": ("positive", "negative")},
        help={"target": "Reward positive text (the score) or negative text (minus the score)."},
        build=sentiment.make_vader_reward,
    ),
    RewardType(
        key="classifier", label="Sentiment / text classifier (HF model)",
        description="Probability (or logit) a Hugging Face text-classification model gives one label, "
                    "e.g. POSITIVE from distilbert-base-uncased-finetuned-sst-2-english.",
        params={"model": "", "label": "POSITIVE", "output": "probability", "batch_size": 16},
        needs_network=True, runs_user_code=False, loads_model=True,
        choices={"output": ("probability", "logit")},
        help={"model": "Hub id or local folder of an AutoModelForSequenceClassification.",
              "label": "The label whose score is the reward (case-insensitive).",
              "output": "probability in [0, 1], or the raw logit (TRL's sentiment example uses the logit)."},
        build=hf_models.make_classifier_reward,
    ),
    RewardType(
        key="length", label="Length target",
        description="1 at exactly the target length, falling linearly to 0 at the fall-off distance: "
                    "max(0, 1 - |length - target| / falloff).",
        params={"target": 50, "unit": "words", "falloff": 50}, needs_network=False, runs_user_code=False,
        choices={"unit": ("words", "tokens", "chars")},
        help={"target": "The length that earns the full reward.",
              "unit": "words (split on spaces), tokens (the policy's own) or characters.",
              "falloff": "How far from the target the reward reaches 0."},
        build=text.make_length_reward,
    ),
    RewardType(
        key="keywords", label="Keywords",
        description="Fraction of the 'include' keywords present minus fraction of the 'avoid' keywords present; in [-1, 1].",
        params={"include": [], "avoid": [], "case_sensitive": False, "whole_word": True},
        needs_network=False, runs_user_code=False,
        help={"include": "Words to reward (comma-separated).", "avoid": "Words to penalise (comma-separated).",
              "whole_word": "Match whole words only (cat does not match category)."},
        build=text.make_keywords_reward,
    ),
    RewardType(
        key="regex", label="Regex / format match",
        description="1 when the pattern matches, else 0. 'search' finds it anywhere; 'fullmatch' needs the whole "
                    "(stripped) completion to match. '.' crosses lines.",
        params={"pattern": "<answer>.+</answer>", "mode": "search", "ignore_case": False},
        needs_network=False, runs_user_code=False,
        choices={"mode": ("search", "fullmatch")},
        help={"pattern": "A Python regular expression."},
        build=text.make_regex_reward,
    ),
    RewardType(
        key="distinct_n", label="Repetition (distinct-n)",
        description="Distinct word n-grams / all word n-grams: 1 means nothing repeats; text shorter than n words scores 0.",
        params={"n": 2}, needs_network=False, runs_user_code=False,
        help={"n": "n-gram size in words (2 = bigrams)."},
        build=text.make_distinct_n_reward,
    ),
    RewardType(
        key="similarity", label="Embedding similarity",
        description="Cosine similarity between the completion and a target text, embedded with the bundled "
                    "all-MiniLM-L6-v2 (offline); in [-1, 1].",
        params={"target": "What a wonderful day, everyone was happy.", "model": ""},
        needs_network=False, runs_user_code=False, loads_model=True,
        help={"target": "The text completions should resemble in meaning.",
              "model": "Blank for the bundled MiniLM, or a sentence-transformers folder or hub id."},
        build=hf_models.make_similarity_reward,
    ),
    RewardType(
        key="reward_model", label="Reward model (HF)",
        description="The scalar score of a reward model (AutoModelForSequenceClassification with one output) "
                    "for the prompt and completion.",
        params={"model": "", "with_prompt": True, "batch_size": 8}, needs_network=True, runs_user_code=False,
        loads_model=True,
        help={"model": "Hub id or local folder.",
              "with_prompt": "Score the prompt with the completion (chat template or text pair), or the completion alone."},
        build=hf_models.make_reward_model_reward,
    ),
    RewardType(
        key="exact_answer", label="Exact answer (verifiable)",
        description="1 when the completion's answer equals the prompt set's answer column, else 0 (None where a row "
                    "has no answer). 'number' compares the last number in each; 'text' the normalised final answer.",
        params={"column": "answer", "mode": "number"}, needs_network=False, runs_user_code=False,
        choices={"mode": ("number", "text")},
        help={"column": "The prompt-set column holding expected answers."},
        build=text.make_exact_answer_reward,
    ),
    RewardType(
        key="custom", label="Custom Python",
        description="Your own def reward(prompts, completions, **kwargs) returning one number (or None) per "
                    "completion; runs in a separate worker process with a time limit per call.",
        params={"code": custom.EXAMPLE_CODE, "timeout_s": 10.0}, needs_network=False, runs_user_code=True,
        help={"code": "Define def reward(prompts, completions, **kwargs); kwargs holds the prompt set's extra columns.",
              "timeout_s": "Seconds one call may take before the worker is stopped."},
        build=custom.make_custom_reward,
    ),
]

REWARD_TYPES: dict[str, RewardType] = {t.key: t for t in _TYPES}

CUSTOM_CODE_REFUSED = (
    "Custom Python rewards are not allowed here, because they run code typed by whoever can reach this workbench. "
    "The app allows them when the server listens on 127.0.0.1 or LLMRL_ALLOW_CUSTOM_CODE=1 is set; "
    "otherwise use the built-in rewards."
)

_SPEC_KEYS = ("type", "name", "weight")
MAX_NAME_CHARS = 64  # a reward name becomes part of metric names (rewards/<name>/mean)
RESERVED_NAMES = ("total", "completion", "prompt")  # columns of score tables


def parse_spec(spec: dict, allow_custom_code: bool = False) -> tuple[RewardType, str, float, dict[str, Any]]:
    """Validate a spec without loading anything: (type, name, weight, params with defaults filled in)."""
    if not isinstance(spec, dict):
        raise InputError(f"A reward spec must be a dict like {{'type': 'vader'}} (got {type(spec).__name__}).")
    key = spec.get("type")
    if not isinstance(key, str) or key not in REWARD_TYPES:
        raise InputError(f"Unknown reward type {key!r}{suggest(key, REWARD_TYPES)}; choose one of: {', '.join(REWARD_TYPES)}.")
    rtype = REWARD_TYPES[key]
    name = spec.get("name") or key
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise InputError(f"The reward name {name!r} must be non-empty text without '/' (it is used in metric names).")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"The reward name {name[:40]!r}… is {len(name)} characters long; keep it under {MAX_NAME_CHARS} "
                         "(it is part of metric names).")
    unknown = [k for k in spec if k not in _SPEC_KEYS and k not in rtype.params]
    if unknown:
        close = [c for c in (difflib.get_close_matches(str(k), [*rtype.params, *_SPEC_KEYS], n=1) for k in unknown) if c]
        hint = f" Did you mean {' or '.join(repr(c[0]) for c in close)}?" if close else ""
        raise InputError(f"Reward {name!r} ({rtype.label}) has no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters are: {', '.join(rtype.params) or 'none'}.{hint}")
    if name in RESERVED_NAMES:
        raise InputError(f"The reward name {name!r} is reserved (tables use it for the weighted total and the text); pick another.")
    weight = coerce_number(spec.get("weight", 1.0), float, f"The weight of reward {name!r}")
    if rtype.runs_user_code and not allow_custom_code:
        raise InputError(f"Reward {name!r}: {CUSTOM_CODE_REFUSED}")
    params = coerce_params(rtype, {k: v for k, v in spec.items() if k not in _SPEC_KEYS}, name)
    return rtype, name, weight, params


def build_reward(spec: dict, allow_custom_code: bool = False) -> NamedReward:
    """Build one reward function from a spec; InputError (naming the reward) for bad params.

    The result is a TRL-style callable named `spec["name"]` (default: the type key); heavy
    models are loaded here, once per process, so mistakes surface before training starts.
    """
    rtype, name, _, params = parse_spec(spec, allow_custom_code)
    try:
        fn = rtype.build(params)
    except WorkbenchError as err:  # same class (InputError, ModelLoadError...), message names the reward
        raise type(err)(f"Reward {name!r} ({rtype.label}): {err}") from err
    return NamedReward(name, fn, type_key=rtype.key, close=getattr(fn, "close", None))


def build_reward_set(specs: Sequence[dict], allow_custom_code: bool = False) -> RewardSet:
    """Build every spec into one weighted RewardSet (repeated names get _2, _3 suffixes)."""
    specs = list(specs)
    if not specs:
        raise InputError("Add at least one reward.")
    parsed = [parse_spec(spec, allow_custom_code) for spec in specs]  # validate all before loading any model
    names = unique_names([name for _, name, _, _ in parsed])
    fns: list[NamedReward] = []
    try:
        for spec, name in zip(specs, names):
            fns.append(build_reward({**spec, "name": name}, allow_custom_code))
    except BaseException:
        for fn in fns:
            fn.close()
        raise
    return RewardSet(names=names, fns=fns, weights=[weight for _, _, weight, _ in parsed])
