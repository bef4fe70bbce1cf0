"""Reward-hacking and health alarms for RL fine-tuning runs: what went wrong, from when, and what to change.

`check_alarms(metrics, samples, config)` looks at a run's logged metrics (TRL's names, as the trainer
logs them: reward, reward_std, frac_reward_zero_std, kl, entropy, completions/clipped_ratio,
completions/mean_length, rewards/<name>/mean) and its stored samples (prompt, completion, rewards,
extras with prompt_index and finish_reason), and returns a list of `Alarm`s. Each says what it saw
with numbers, from which step, shows a few completions and suggests which RLConfig fields to change.
It works on a finished run and on one still training (the page calls it on what is stored so far).
`read_run_alarms(store, run_id)` reads all of that from the run store.

Trend alarms compare an early window (the first `WINDOW_FRACTION` of the logged steps) with a late
window (the last `WINDOW_FRACTION`), and need at least `MIN_STEPS` logged steps.

| alarm (kind)         | fires when                                                                                  | constant(s)                                      |
|----------------------|---------------------------------------------------------------------------------------------|--------------------------------------------------|
| diversity_collapse   | the reward rose (late mean - early mean >= REWARD_RISE_MIN_STD x early reward_std, or        | REWARD_RISE_MIN_STD = 0.5, DISTINCT_N = 2,       |
|                      | REWARD_RISE_MIN_ABS without reward_std) while distinct-n of a step's completions fell to     | DISTINCT_DROP_RATIO = 0.6,                       |
|                      | <= DISTINCT_DROP_RATIO of its early value, or the share of repeated completions within a     | DUPLICATE_FRACTION_MAX = 0.5,                    |
|                      | group reached DUPLICATE_FRACTION_MAX; when every reward pays one right answer per prompt     | SINGLE_ANSWER_REWARDS = ('exact_answer',)        |
|                      | (SINGLE_ANSWER_REWARDS), only distinct-n across prompts (each group's distinct completions)  |                                                  |
| length_cap           | the late mean of completions/clipped_ratio (or the share of samples with finish_reason       | CLIPPED_RATIO_MAX = 0.5,                         |
|                      | 'length') is >= CLIPPED_RATIO_MAX; with truncation_expected (a cap the user chose for short  | CLIPPED_RISE_MIN = 0.3                           |
|                      | continuations, e.g. make-it-positive's 16 tokens) only when it also rose by CLIPPED_RISE_MIN |                                                  |
|                      | or more over the early window                                                               |                                                  |
| entropy_collapse     | late entropy <= ENTROPY_DROP_RATIO x early entropy, or below ENTROPY_FLOOR nats per token     | ENTROPY_DROP_RATIO = 0.2, ENTROPY_FLOOR = 0.05   |
| kl_runaway           | late kl >= KL_MAX, or late kl >= KL_GROWTH_RATIO x early kl and >= KL_GROWTH_MIN             | KL_MAX = 1.0, KL_GROWTH_RATIO = 10,              |
|                      |                                                                                             | KL_GROWTH_MIN = 0.3                              |
| no_signal            | frac_reward_zero_std stayed >= 0.999 for ZERO_STD_STREAK steps in a row or more             | ZERO_STD_STREAK = 5                              |
| reward_nan           | a reward gave None/NaN for >= REWARD_NAN_FRACTION of the stored samples (or its mean was     | REWARD_NAN_FRACTION = 0.5                        |
|                      | NaN on that share of steps)                                                                  |                                                  |
| reward_wrong_count   | a run message says a reward 'returned N values for M completions' (the run stops on it)     | -                                                |

Severities: 'critical' when the run cannot learn or stopped (no_signal, reward_nan, reward_wrong_count,
kl_runaway above KL_MAX); 'warning' otherwise.

Calibrated on healthy runs: no alarm may fire on a shipped preset's healthy run (tests/unit/test_alarms.py
builds one per preset, shaped like its real run). The one that did was length_cap on make-it-positive: its
completions are continuations cut at 16 tokens on purpose, so the base model already hits the cap on nearly
every sample from step 1 (clipped ratio about 1.0 throughout) and nothing is wrong. Such a preset says so
(RLConfig.truncation_expected); the alarm then watches only what the cap can still reveal there, a policy
that learns to run into the cap more and more (length being rewarded): the clipped ratio rising by
CLIPPED_RISE_MIN from the early to the late window. Without the flag a high level alone still fires, because
a cap that cuts answers the reward needs whole (an arithmetic answer) is a real problem from step 1.

A third was kl_runaway's growth rule on make-it-positive-lora: a policy that starts at the reference (LoRA adapters
start at zero) has KL 0 at first, so any learning is a ten-fold rise; the healthy 30-step run, fluent and
positive, went from 0.007 to 0.17 nats per token. The rise now needs to end above KL_GROWTH_MIN = 0.3, past
where GRPO runs usually sit. The same preset's old 60-step run, which ended in "wonderful wonderful amazing..."
at 1.3 nats per token (late quarter), still fires it, as critical (tests use both measured series).

The other was diversity_collapse on learn-arithmetic (issue 17: a run whose held-out accuracy rose from 0.125
to over 0.3). Its reward (exact_answer) pays one right answer per prompt, so a policy that learns gives the
same answer to all the samples of a prompt: repeats within a group, and a batch distinct-2 that falls with them
(0.64 -> 0.35, 38% repeats), are what learning looks like there, not a collapse. When every weighted reward of
a run is of a SINGLE_ANSWER_REWARDS type, the alarm therefore drops the repeats within each group and measures
distinct-n across prompts only (each group's distinct completions once), and ignores the within-group repeat
share: a policy that answers every prompt alike (one stock answer) still fires it.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------- thresholds (see the table above)
MIN_STEPS = 6  # trend alarms need an early and a late window of real steps
WINDOW_FRACTION = 0.25  # early window = first quarter of the steps, late window = last quarter
REWARD_RISE_MIN_STD = 0.5  # "the reward rose": by half the early within-batch reward std or more
REWARD_RISE_MIN_ABS = 1e-3  # ... or by this much when reward_std was not logged (or was 0)
DISTINCT_N = 2  # distinct-2: unique word bigrams / all word bigrams of a step's completions
DISTINCT_DROP_RATIO = 0.6  # diversity collapsed: late distinct-n at most 60% of early distinct-n
DUPLICATE_FRACTION_MAX = 0.5  # half the completions in a group repeat another one of that group
SINGLE_ANSWER_REWARDS = ("exact_answer",)  # reward types that pay one right answer per prompt (a group may agree)
CLIPPED_RATIO_MAX = 0.5  # half the completions stop at max_new_tokens rather than at end-of-sequence
CLIPPED_RISE_MIN = 0.3  # with truncation_expected: the clipped share rose this much (early vs late window)
ENTROPY_DROP_RATIO = 0.2  # entropy fell to a fifth of where it started
ENTROPY_FLOOR = 0.05  # nats per token: the policy is almost deterministic
KL_MAX = 1.0  # nats per token from the reference: far past where GRPO runs usually sit (0.01-0.2)
KL_GROWTH_RATIO = 10.0  # ... or ten times the early KL
KL_GROWTH_MIN = 0.3  # ... and at least this much: above the 0.01-0.2 where runs usually sit (a LoRA policy starts
# at the reference, KL 0, so any learning is a ten-fold rise: the healthy LoRA preset went 0.007 -> 0.17)
ZERO_STD_STREAK = 5  # steps in a row with every group's rewards identical
REWARD_NAN_FRACTION = 0.5  # a reward that gives None/NaN for half the completions or more
MAX_EXAMPLES = 3  # example completions shown per alarm
EXAMPLE_CHARS = 300  # each cut to this length
MAX_SAMPLE_STEPS = 200  # read_run_alarms reads the samples of at most this many steps, spread over the run

SEVERITIES = ("warning", "critical")
_WRONG_COUNT = re.compile(r"Reward '?(?P<name>[^']+?)'? returned (?P<got>\d+) values for (?P<want>\d+) completions")


@dataclass
class Alarm:
    """One problem seen in a run: what, how bad, from which step, examples and what to change."""

    kind: str  # diversity_collapse, length_cap, entropy_collapse, kl_runaway, no_signal, reward_nan, reward_wrong_count
    severity: str  # 'warning' or 'critical'
    title: str  # one line for a heading
    what_it_saw: str  # the evidence, with numbers
    from_step: int | None  # first step where it showed (None when unknown)
    examples: list[str] = field(default_factory=list)  # a few completions that show it
    suggestion: str = ""  # what to change, naming RLConfig fields

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for the store, an export or the report)."""
        return dict(kind=self.kind, severity=self.severity, title=self.title, what_it_saw=self.what_it_saw,
                    from_step=self.from_step, examples=list(self.examples), suggestion=self.suggestion)


# ---------------------------------------------------------------------- inputs


def to_wide_metrics(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Metrics as one row per step (accepts RunStore's wide frame, or its long step/name/value frame)."""
    if metrics is None or len(metrics) == 0:
        return pd.DataFrame(columns=["step"])
    if {"name", "value"} <= set(metrics.columns):
        wide = metrics.pivot_table(index="step", columns="name", values="value", aggfunc="last", dropna=False)
        wide.columns.name = None
        metrics = wide.reset_index()
    return metrics.sort_values("step").reset_index(drop=True)


def to_samples_frame(samples: pd.DataFrame | Sequence[Mapping[str, Any]] | None) -> pd.DataFrame:
    """Samples as a frame with step, prompt, completion, rewards (dict) and extras (dict) columns."""
    columns = ["step", "prompt", "completion", "rewards", "extras"]
    if samples is None:
        return pd.DataFrame(columns=columns)
    frame = samples.copy() if isinstance(samples, pd.DataFrame) else pd.DataFrame(list(samples))
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for column, default in (("step", 0), ("prompt", ""), ("completion", "")):
        if column not in frame.columns:
            frame[column] = default
    for column in ("rewards", "extras"):
        frame[column] = [v if isinstance(v, Mapping) else {} for v in frame.get(column, [None] * len(frame))]
    frame["completion"] = frame["completion"].fillna("").astype(str)
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------- measures


def compute_batch_distinct_n(texts: Iterable[str], n: int = DISTINCT_N) -> float:
    """Distinct-n (Li et al. 2016, arXiv 1510.03055) over a whole batch: unique word n-grams / all word n-grams
    of all the texts together (case-folded); NaN without any. Unlike the per-completion distinct_n reward
    (rewards.text.compute_distinct_n), a batch whose completions all say the same thing scores low here."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = str(text).lower().split()
        grams.extend(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else math.nan


def compute_duplicate_fraction(texts: Sequence[str]) -> float:
    """Share of a group's completions that repeat an earlier one of the group (0 all differ, (k-1)/k all same)."""
    texts = [str(t).strip() for t in texts]
    return (len(texts) - len(set(texts))) / len(texts) if texts else math.nan


def pays_one_answer(config: Mapping[str, Any]) -> bool:
    """True when every weighted reward of the run (config['rewards']) is of a SINGLE_ANSWER_REWARDS type: each
    prompt has one right answer, so the samples of a prompt agreeing on it is learning, not a collapse."""
    specs = [spec for spec in (config.get("rewards") or []) if isinstance(spec, Mapping)]
    weighted = []
    for spec in specs:
        try:
            weight = float(spec.get("weight", 1.0))
        except (TypeError, ValueError):
            weight = 1.0
        if weight != 0:
            weighted.append(spec)
    return bool(weighted) and all(str(spec.get("type")) in SINGLE_ANSWER_REWARDS for spec in weighted)


def compute_sample_diversity(samples: pd.DataFrame, across_prompts: bool = False) -> pd.DataFrame:
    """Per step: distinct-n of its completions and the mean duplicate fraction of its groups.

    A group is the completions of one prompt (extras['prompt_index'], else the same prompt text).
    `across_prompts`: distinct-n over each group's distinct completions (repeats within a group counted once),
    so it falls only when different prompts get alike completions.
    """
    by_step: dict[int, dict[str, list[str]]] = {}
    for step, prompt, completion, extras in zip(samples["step"], samples["prompt"], samples["completion"], samples["extras"]):
        key = str(extras.get("prompt_index", prompt)) if isinstance(extras, Mapping) else str(prompt)
        by_step.setdefault(int(step), {}).setdefault(key, []).append(completion)
    rows = []
    for step in sorted(by_step):
        groups = list(by_step[step].values())
        dup = [compute_duplicate_fraction(g) for g in groups if len(g) > 1]
        texts = [t for g in groups for t in (dict.fromkeys(s.strip() for s in g) if across_prompts else g)]
        rows.append({"step": step, "distinct": compute_batch_distinct_n(texts),
                     "duplicates": float(np.mean(dup)) if dup else math.nan})
    return pd.DataFrame(rows, columns=["step", "distinct", "duplicates"])


def _windows(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The early and late windows of a step-indexed series (NaN dropped)."""
    values = series.dropna()
    k = max(1, int(math.ceil(len(values) * WINDOW_FRACTION)))
    return values.iloc[:k], values.iloc[-k:]


def _early_and_late(metrics: pd.DataFrame, name: str) -> tuple[pd.Series, float, float] | None:
    """A metric by step with the means of its early and late windows; None with fewer than MIN_STEPS values."""
    series = _series(metrics, name)
    if series.dropna().size < MIN_STEPS:
        return None
    early, late = _windows(series)
    return series, float(early.mean()), float(late.mean())


def _series(metrics: pd.DataFrame, name: str) -> pd.Series:
    """One metric indexed by step, as floats (NaN for missing); empty when not logged."""
    if name not in metrics.columns:
        return pd.Series(dtype=float)
    return pd.Series(pd.to_numeric(metrics[name], errors="coerce").to_numpy(dtype=float), index=metrics["step"].astype(int))


def _onset(series: pd.Series, bad: Any) -> int | None:
    """The first step of the last stretch where bad(value) held (the step it started), else the first bad step."""
    values = series.dropna()
    flags = [bool(bad(v)) for v in values]
    if not any(flags):
        return None
    if flags[-1]:
        i = len(flags) - 1
        while i > 0 and flags[i - 1]:
            i -= 1
        return int(values.index[i])
    return int(values.index[flags.index(True)])


def _clip(text: str) -> str:
    text = str(text)
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + "…"


def _late_examples(samples: pd.DataFrame, from_step: int | None, keep: Any = None) -> list[str]:
    """Up to MAX_EXAMPLES completions from from_step on (newest first), optionally those where keep(row) holds."""
    if samples.empty:
        return []
    part = samples if from_step is None else samples[samples["step"] >= from_step]
    if keep is not None and not part.empty:
        part = part[[bool(keep(row)) for row in part.itertuples(index=False)]]
    return [_clip(t) for t in list(part["completion"])[::-1][:MAX_EXAMPLES]]


# ---------------------------------------------------------------------- the alarms


def check_diversity_collapse(metrics: pd.DataFrame, samples: pd.DataFrame,
                             config: Mapping[str, Any] | None = None) -> Alarm | None:
    """Reward up while completions get alike: the policy found one answer the reward likes (hacking or collapse).

    When the rewards pay one right answer per prompt (pays_one_answer), a group agreeing is learning: only
    completions alike across prompts count (distinct-n over each group's distinct completions, no repeat share).
    """
    reward = _series(metrics, "reward")
    if samples.empty or reward.dropna().size < MIN_STEPS:
        return None
    one_answer = pays_one_answer(config or {})
    diversity = compute_sample_diversity(samples, across_prompts=one_answer).set_index("step")
    if one_answer:
        diversity["duplicates"] = math.nan  # a group agreeing on its one answer is what learning looks like
    if len(diversity) < MIN_STEPS:
        return None
    early_r, late_r = _windows(reward)
    rise = float(late_r.mean() - early_r.mean())
    early_std = _series(metrics, "reward_std").loc[lambda s: s.index <= early_r.index.max()].dropna()
    needed = REWARD_RISE_MIN_STD * float(early_std.mean()) if len(early_std) and early_std.mean() > 0 else REWARD_RISE_MIN_ABS
    if rise < needed:
        return None
    early_d, late_d = _windows(diversity["distinct"])
    distinct_before, distinct_after = float(early_d.mean()), float(late_d.mean())
    dup_after = float(_windows(diversity["duplicates"])[1].mean()) if diversity["duplicates"].notna().any() else math.nan
    distinct_fell = math.isfinite(distinct_before) and distinct_after <= DISTINCT_DROP_RATIO * distinct_before
    repeats = math.isfinite(dup_after) and dup_after >= DUPLICATE_FRACTION_MAX
    if not (distinct_fell or repeats):
        return None
    if distinct_fell:
        from_step = _onset(diversity["distinct"], lambda v: v <= DISTINCT_DROP_RATIO * distinct_before)
    else:
        from_step = _onset(diversity["duplicates"], lambda v: v >= DUPLICATE_FRACTION_MAX)
    late = samples[samples["step"] >= (from_step or 0)]
    common = [text for text, _ in Counter(late["completion"].str.strip()).most_common(MAX_EXAMPLES)]
    saw = (f"The mean reward rose from {early_r.mean():.3g} to {late_r.mean():.3g} while distinct-{DISTINCT_N} of the "
           f"completions{' across prompts' if one_answer else ''} went from {distinct_before:.2f} to {distinct_after:.2f}")
    if math.isfinite(dup_after):
        saw += f" and {dup_after:.0%} of the completions in a group repeat another one of the group"
    return Alarm(
        "diversity_collapse", "warning", "Reward rises while the completions collapse to a few answers",
        saw + " (early = first quarter of the steps, late = last quarter).", from_step, [_clip(t) for t in common],
        "Read the examples: if they game the reward, fix the reward (add a penalty or a second reward in `rewards`). "
        "To keep exploring, raise `beta` (KL to the reference, e.g. 0.04) or `temperature`, lower `learning_rate`, "
        "or raise `num_generations`.",
    )


def check_length_cap(metrics: pd.DataFrame, samples: pd.DataFrame, config: Mapping[str, Any]) -> Alarm | None:
    """Completions pile up at max_new_tokens: rewards judge cut-off text, and length may be what is rewarded."""
    clipped = _series(metrics, "completions/clipped_ratio")
    source = "completions/clipped_ratio"
    if clipped.dropna().empty and not samples.empty:
        finish = samples["extras"].map(lambda e: e.get("finish_reason"))
        if finish.notna().any():
            clipped = (finish == "length").groupby(samples["step"]).mean().astype(float)
            source = "samples with finish_reason 'length'"
    if clipped.dropna().empty:
        return None
    early, late = _windows(clipped)
    if late.mean() < CLIPPED_RATIO_MAX:
        return None
    expected = bool(config.get("truncation_expected"))
    rise = float(late.mean() - early.mean())
    if expected and rise < CLIPPED_RISE_MIN:
        return None  # cut at the cap by design, and no more so than at the start
    limit = max(CLIPPED_RATIO_MAX, float(early.mean()) + CLIPPED_RISE_MIN / 2) if expected else CLIPPED_RATIO_MAX
    from_step = _onset(clipped, lambda v: v >= limit)
    cap = config.get("max_new_tokens")
    length = _series(metrics, "completions/mean_length").dropna()
    saw = f"{late.mean():.0%} of the completions stopped at the length cap (max_new_tokens = {cap}) in the last steps ({source})"
    if expected:
        saw += (f", up from {early.mean():.0%} in the first steps: truncation is expected in this run, but the "
                "policy is writing longer and longer")
    if len(length):
        saw += f"; mean completion length {length.iloc[-1]:.1f} tokens"
    examples = _late_examples(samples, from_step, lambda row: row.extras.get("finish_reason") == "length")
    room = "" if expected else "Rewards are judging cut-off text. Raise `max_new_tokens` if answers need more room; "
    return Alarm(
        "length_cap", "warning", "Completions pile up at the length cap", saw + ".", from_step, examples,
        room + "If length itself is being rewarded, add a length penalty reward to `rewards`; `loss_type` 'dr_grpo' "
        "removes the length bias of the loss.",
    )


def check_entropy_collapse(metrics: pd.DataFrame, samples: pd.DataFrame) -> Alarm | None:
    """The policy's per-token entropy fell towards 0: it stops exploring and samples within a group look alike."""
    trend = _early_and_late(metrics, "entropy")
    if trend is None:
        return None
    entropy, before, after = trend
    if not (after <= ENTROPY_FLOOR or (before > 0 and after <= ENTROPY_DROP_RATIO * before)):
        return None
    limit = max(ENTROPY_FLOOR, ENTROPY_DROP_RATIO * before)
    from_step = _onset(entropy, lambda v: v <= limit)
    return Alarm(
        "entropy_collapse", "warning", "Entropy collapsed: the model stopped exploring",
        f"Entropy fell from {before:.3g} to {after:.3g} nats per token (early vs late quarter of the steps).",
        from_step, _late_examples(samples, from_step),
        "Lower `learning_rate`, raise `beta` (KL to the reference) or `temperature`; `epsilon_high` above "
        "`epsilon` (clip-higher, DAPO) lets rare tokens grow and keeps entropy up.",
    )


def check_kl_runaway(metrics: pd.DataFrame, samples: pd.DataFrame) -> Alarm | None:
    """KL to the reference keeps climbing: the model drifts away from the base (often with garbled text)."""
    trend = _early_and_late(metrics, "kl")
    if trend is None:
        return None
    kl, before, after = trend
    too_high = after >= KL_MAX
    grew = after >= KL_GROWTH_MIN and after >= KL_GROWTH_RATIO * max(before, 1e-12)
    if not (too_high or grew):
        return None
    limit = KL_MAX if too_high else max(KL_GROWTH_MIN, KL_GROWTH_RATIO * before)
    from_step = _onset(kl, lambda v: v >= limit)
    return Alarm(
        "kl_runaway", "critical" if too_high else "warning", "KL to the reference model runs away",
        f"The KL to the reference rose from {before:.3g} to {after:.3g} nats per token (early vs late quarter).",
        from_step, _late_examples(samples, from_step),
        "Raise `beta` (the KL penalty), lower `learning_rate` or `max_grad_norm`, or lower `epsilon` for smaller "
        "steps; with `use_lora` a smaller `lora_alpha` also slows the drift.",
    )


def check_no_signal(metrics: pd.DataFrame, samples: pd.DataFrame) -> Alarm | None:
    """frac_reward_zero_std stuck at 1: every group's samples got the same reward, so advantages are 0."""
    flat = _series(metrics, "frac_reward_zero_std").dropna()
    best, start, run, run_start = 0, None, 0, None
    for step, value in flat.items():
        if value >= 0.999:
            run, run_start = run + 1, run_start if run else int(step)
            if run > best:
                best, start = run, run_start
        else:
            run = 0
    if best < ZERO_STD_STREAK:
        return None
    return Alarm(
        "no_signal", "critical", "Nothing to learn from: every sample of a prompt got the same reward",
        f"frac_reward_zero_std was 1 for {best} steps in a row (from step {start}): each group's rewards were "
        "identical, so every advantage and the policy loss were 0.", start, _late_examples(samples, start),
        "Raise `temperature` or `num_generations` for more varied samples, or use a reward that tells samples "
        "apart more finely (partial credit) in `rewards`; check the reward is not constant.",
    )


def check_reward_nan(metrics: pd.DataFrame, samples: pd.DataFrame) -> list[Alarm]:
    """A reward returned None/NaN for most completions (it does not apply, or it fails silently)."""
    names: list[str] = []
    for rewards in samples["rewards"]:
        names.extend(n for n in rewards if n != "total" and n not in names)
    names.extend(c[len("rewards/"):-len("/mean")] for c in metrics.columns
                 if c.startswith("rewards/") and c.endswith("/mean") and c[len("rewards/"):-len("/mean")] not in names)
    alarms = []
    for name in names:
        share, what, from_step, examples = math.nan, "", None, []
        if not samples.empty:
            has = samples["rewards"].map(lambda r: name in r)
            if has.any():
                missing = samples.loc[has, "rewards"].map(lambda r: r.get(name) is None or not math.isfinite(float(r[name])))
                share, what = float(missing.mean()), f"{int(missing.sum())} of {int(has.sum())} stored completions"
                bad_steps = samples.loc[has, "step"][missing]
                from_step = int(bad_steps.min()) if len(bad_steps) else None
                examples = [_clip(t) for t in list(samples.loc[has, "completion"][missing])[::-1][:MAX_EXAMPLES]]
        column = f"rewards/{name}/mean"
        if not math.isfinite(share) and column in metrics.columns and "reward" in metrics.columns:
            steps = metrics[metrics["reward"].notna()]
            missing = steps[column].isna()
            if len(steps):
                share, what = float(missing.mean()), f"{int(missing.sum())} of {len(steps)} steps (its mean was NaN)"
                from_step = int(steps["step"][missing].min()) if missing.any() else None
        if not math.isfinite(share) or share < REWARD_NAN_FRACTION:
            continue
        alarms.append(Alarm(
            "reward_nan", "critical", f"Reward {name!r} gives no number for most completions",
            f"Reward {name!r} returned None or NaN for {share:.0%} of the completions ({what}); they count as 0 in "
            "the total, so it steers nothing.", from_step, examples,
            f"Check reward {name!r} in `rewards`: its parameters, and the prompt set's columns it reads (e.g. an "
            "'answer' column); a custom reward should return a float for every completion.",
        ))
    return alarms


def check_reward_wrong_count(messages: Iterable[str]) -> list[Alarm]:
    """A reward returned the wrong number of values (the trainer stops the run with RewardError)."""
    seen: dict[str, Alarm] = {}
    for message in messages:
        for match in _WRONG_COUNT.finditer(str(message or "")):
            name = match["name"]
            if name not in seen:
                seen[name] = Alarm(
                    "reward_wrong_count", "critical", f"Reward {name!r} returned the wrong number of values",
                    f"Reward {name!r} returned {match['got']} values for {match['want']} completions, so the step "
                    f"could not be scored: {_clip(message)}", None, [],
                    f"Fix reward {name!r} in `rewards` to return one number (or None) per completion, in order: "
                    "`[score(c) for c in completions]`.",
                )
    return list(seen.values())


def check_alarms(metrics: pd.DataFrame | None, samples: pd.DataFrame | Sequence[Mapping[str, Any]] | None,
                 config: Mapping[str, Any] | None, messages: Iterable[str] = ()) -> list[Alarm]:
    """Every alarm that fires on this run, critical ones first.

    `metrics`: RunStore.read_metrics_wide (or the long read_metrics) frame. `samples`: read_samples's frame or a
    list of dicts (prompt, completion, rewards, step, extras). `config`: the run's RLConfig as a dict.
    `messages`: the run's error and log lines (a reward's wrong-count failure only shows there).
    """
    wide, frame, config = to_wide_metrics(metrics), to_samples_frame(samples), dict(config or {})
    found: list[Alarm | None] = [
        check_diversity_collapse(wide, frame, config),
        check_length_cap(wide, frame, config),
        check_entropy_collapse(wide, frame),
        check_kl_runaway(wide, frame),
        check_no_signal(wide, frame),
        *check_reward_nan(wide, frame),
        *check_reward_wrong_count(messages),
    ]
    alarms = [a for a in found if a is not None]
    return sorted(alarms, key=lambda a: SEVERITIES.index(a.severity), reverse=True)


def read_alarm_samples(store: Any, run_id: int, steps: Sequence[int]) -> pd.DataFrame:
    """The samples of `steps` with only what the alarms read: step, prompt, completion, rewards (dict) and
    extras (prompt_index and finish_reason only). One indexed query that leaves the per-token extras
    (most of a sample's bytes) in the store."""
    steps = [int(s) for s in dict.fromkeys(steps)]
    if not steps:
        return to_samples_frame(None)
    rows = store.fetch_rows(
        "SELECT step, prompt, completion, rewards, json_extract(extras, '$.prompt_index'),"
        " json_extract(extras, '$.finish_reason') FROM samples"
        f" WHERE run_id=? AND step IN ({','.join('?' * len(steps))}) ORDER BY id", [int(run_id), *steps])
    records = [{"step": step, "prompt": prompt, "completion": completion, "rewards": json.loads(rewards or "{}"),
                "extras": {k: v for k, v in (("prompt_index", index), ("finish_reason", finish)) if v is not None}}
               for step, prompt, completion, rewards, index, finish in rows]
    return to_samples_frame(records)


def read_run_alarms(store: Any, run_id: int, metrics: pd.DataFrame | None = None,
                    max_sample_steps: int = MAX_SAMPLE_STEPS) -> list[Alarm]:
    """check_alarms on what the store holds for run `run_id`: metrics (pass the wide frame when already read),
    config, error and log lines, and the samples of up to `max_sample_steps` logged steps spread evenly from
    the first to the last (the trend alarms compare early with late steps; a long run stores far more)."""
    run = store.get_run(run_id)
    if run is None:
        return []
    if metrics is None:
        from llmrl_core.runs.reader import MetricsCache

        cache = MetricsCache(store, run_id)  # plain tuples in one pass: far faster than read_metrics_wide on a long run
        cache.update()
        metrics = cache.wide
    steps = sorted(int(s) for s in metrics["step"]) if len(metrics) else []
    if len(steps) > max_sample_steps:
        steps = [steps[i] for i in np.linspace(0, len(steps) - 1, max_sample_steps).round().astype(int)]
    logs = store.read_logs(run_id)
    messages = [run.get("error") or "", *list(logs["message"])]
    return check_alarms(metrics, read_alarm_samples(store, run_id, steps), run.get("config") or {}, messages)
