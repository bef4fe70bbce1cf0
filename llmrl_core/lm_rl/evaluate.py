"""Before / after: the same prompts answered by the base model and by a checkpoint, scored with the run's rewards.

- `compare_before_after(base_spec, checkpoint_path, prompts, reward_specs, ...)` generates with each model in
  turn (one in memory at a time), scores every answer with `build_reward_set(reward_specs)` and returns a
  `BeforeAfter`: one row per (prompt, sample) with both answers and their rewards, each side's mean reward
  and the difference (after - before) with a bootstrap confidence interval over prompts.
- `bootstrap_mean_diff(a, b)`: mean(b) - mean(a) and its percentile bootstrap interval (Efron & Tibshirani
  1993, ch. 13); paired (resample prompts, keep each prompt's two scores together) when a and b line up.
- `compare_run_before_after(config, checkpoint_path, prompts, ...)`: the same with the run's model, rewards, chat
  mode and sampling settings taken from its config.
- `held_out_prompts(config, n)`: prompts of the run's own set that training never drew, else a built-in set.
- `save_before_after(store, run_id, result)` / `load_before_after(path)`: keep a result with the run (an
  artifact of kind 'before_after', a JSON file), so the report and the pages can show it later.

A checkpoint folder loads as a model spec: a full one directly, a LoRA one onto the base it names and merged
(llmrl_core.lm.models.load_causal_lm).
"""

from __future__ import annotations

import gc
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from llmrl_core.core.errors import InputError

BEFORE_AFTER_KIND = "before_after"  # artifact kind of a stored result
FALLBACK_SETS = {  # a built-in set to use when the run's own set has nothing held out
    "sentence-starters": "review-openers",
    "review-openers": "sentence-starters",
    "chat-questions": "sentence-starters",
}


@dataclass
class BeforeAfter:
    """The result of compare_before_after: the answers side by side and the reward difference."""

    base_spec: str
    checkpoint: str
    rows: pd.DataFrame  # prompt, sample, before, after, before_reward, after_reward, before/<name>, after/<name>
    before_mean: float  # mean total reward of the base model's answers
    after_mean: float  # ... of the checkpoint's answers
    diff: float  # after_mean - before_mean
    low: float  # confidence interval of diff (bootstrap over prompts)
    high: float
    confidence: float
    greedy: bool
    samples: int  # answers per prompt and side
    reward_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able dict (rows as records)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["rows"] = json.loads(self.rows.to_json(orient="records"))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BeforeAfter":
        """Inverse of to_dict."""
        values = dict(data)
        rows = pd.DataFrame(values.get("rows") or [])
        for column in rows.columns:  # JSON null -> NaN in the score columns
            if column.endswith("_reward") or column.startswith(("before/", "after/")):
                rows[column] = pd.to_numeric(rows[column], errors="coerce").astype(float)
        values["rows"] = rows
        for key in ("before_mean", "after_mean", "diff", "low", "high"):
            values[key] = math.nan if values.get(key) is None else float(values[key])
        return cls(**{k: values[k] for k in cls.__dataclass_fields__ if k in values})

    def summary(self) -> str:
        """One sentence: means and the difference with its interval."""
        return (f"Mean reward {self.before_mean:.3f} before, {self.after_mean:.3f} after: {self.diff:+.3f} "
                f"({self.confidence:.0%} CI {self.low:+.3f} to {self.high:+.3f}, {len(self.rows)} answers per side, "
                f"{'greedy' if self.greedy else 'sampled'}).")


# ---------------------------------------------------------------------- statistics


def bootstrap_mean_diff(a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95,
                        seed: int = 0, paired: bool | None = None) -> tuple[float, float, float]:
    """mean(b) - mean(a) and its percentile bootstrap interval (low, high).

    Paired (default when a and b have the same length): the differences d = b - a are resampled with
    replacement, n at a time, `n_resamples` times (indices from numpy's default_rng(seed).integers(0, n,
    (n_resamples, n))). Unpaired: a and b are resampled independently (a first, then b, from the same generator).
    The interval is the (1 - confidence)/2 and (1 + confidence)/2 quantiles of the resampled differences.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)  # (n_a,), (n_b,)
    if a.size == 0 or b.size == 0:
        raise InputError("Need at least one score on each side to compare.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("Scores must be finite numbers (a reward returned None/NaN); drop or fill them first.")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1 (got {confidence!r}).")
    if n_resamples < 1:
        raise InputError(f"n_resamples must be at least 1 (got {n_resamples!r}).")
    paired = a.size == b.size if paired is None else paired
    rng = np.random.default_rng(seed)
    diff = float(b.mean() - a.mean())
    if paired:
        if a.size != b.size:
            raise InputError(f"A paired comparison needs as many scores on each side (got {a.size} and {b.size}).")
        d = b - a  # (n,)
        idx = rng.integers(0, d.size, size=(n_resamples, d.size))  # (R, n)
        resampled = d[idx].mean(axis=1)  # (R,)
    else:
        ia = rng.integers(0, a.size, size=(n_resamples, a.size))  # (R, n_a)
        ib = rng.integers(0, b.size, size=(n_resamples, b.size))  # (R, n_b)
        resampled = b[ib].mean(axis=1) - a[ia].mean(axis=1)  # (R,)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return diff, float(low), float(high)


# ---------------------------------------------------------------------- prompts


def _prompt_frame(prompts: Sequence[str] | pd.DataFrame) -> pd.DataFrame:
    """Prompts as a frame with a 'prompt' column plus extra columns for the rewards (e.g. 'answer')."""
    if isinstance(prompts, pd.DataFrame):
        if "prompt" not in prompts.columns:
            raise InputError("The prompt table needs a 'prompt' column.")
        frame = prompts.reset_index(drop=True)
    else:
        frame = pd.DataFrame({"prompt": [str(p) for p in prompts]})
    frame = frame[frame["prompt"].map(lambda p: bool(str(p).strip()))].reset_index(drop=True)
    if frame.empty:
        raise InputError("Give at least one non-empty prompt to compare the models on.")
    return frame


def held_out_prompts(config: Mapping[str, Any], n: int = 16) -> pd.DataFrame:
    """Up to n prompts the run did not train on: from its own set when it allows, else from a built-in set.

    Training draws from the set loaded with `prompt_limit` (a seeded sample) in shuffled passes
    (RLTrainer._next_prompt_rows: the first pass is random.Random(seed * 1_000_003) over the rows).
    Held out are the full set's rows outside that sample, plus rows the first pass had not reached
    after steps x prompts_per_step draws. Without any, the prompts come from FALLBACK_SETS (or, for
    'arithmetic', problems generated with another seed, none equal to a training prompt).
    The returned frame has a 'prompt' column (plus the set's extra columns) and attrs['source'],
    a sentence saying where the prompts came from.
    """
    from llmrl_core.lm_rl.prompts import BUILTIN_PROMPT_SETS, load_prompt_set, make_arithmetic_problems

    if n < 1:
        raise InputError(f"Ask for at least one prompt (got {n!r}).")
    source = str(config.get("prompt_set") or "sentence-starters")
    seed, limit = int(config.get("seed") or 0), config.get("prompt_limit")
    steps, per_step = int(config.get("steps") or 0), int(config.get("prompts_per_step") or 1)
    full = load_prompt_set(source, seed=seed)
    used = load_prompt_set(source, limit=limit, seed=seed) if limit else full
    drawn = steps * per_step
    if drawn < len(used):
        order = list(range(len(used)))
        random.Random(seed * 1_000_003).shuffle(order)
        seen = set(used["prompt"].iloc[order[:drawn]].astype(str))
    else:
        seen = set(used["prompt"].astype(str))
    held = full[~full["prompt"].astype(str).isin(seen)]
    if len(held):
        frame = held.head(n).reset_index(drop=True)
        frame.attrs["source"] = f"{len(frame)} prompts of the run's own set {source!r} that training never drew."
        return frame
    if source == "arithmetic":
        fresh = make_arithmetic_problems(seed=seed + 1)
        frame = fresh[~fresh["prompt"].isin(seen)].head(n).reset_index(drop=True)
        frame.attrs["source"] = f"{len(frame)} new arithmetic problems (generated with seed {seed + 1}); training used every problem of its set."
        return frame
    other = FALLBACK_SETS.get(source, "sentence-starters")
    assert other in BUILTIN_PROMPT_SETS
    frame = load_prompt_set(other, seed=seed).head(n).reset_index(drop=True)
    frame.attrs["source"] = f"{len(frame)} prompts of the built-in set {other!r}; training drew every prompt of {source!r}."
    return frame


# ---------------------------------------------------------------------- generation and scoring


def _answer(spec: str, prompts: list[str], sampling: Any, device: str, chat: bool | None, system: str | None) -> list:
    """Load `spec`, answer every prompt, free the model; the completions come back prompt-major."""
    from llmrl_core.lm.generation import generate
    from llmrl_core.lm.models import load_causal_lm

    loaded = load_causal_lm(spec, device=device)
    try:
        return generate(loaded, prompts, sampling, chat=chat, system=system, top_alternatives=0).completions
    finally:
        del loaded
        gc.collect()


def compare_before_after(base_spec: str, checkpoint_path: str | Path, prompts: Sequence[str] | pd.DataFrame,
                         reward_specs: Sequence[Mapping[str, Any]], *, greedy: bool, samples: int = 1,
                         max_new_tokens: int = 64, seed: int = 0, temperature: float = 1.0, device: str = "auto",
                         chat: bool | None = None, system: str | None = None, allow_custom_code: bool = False,
                         confidence: float = 0.95, n_resamples: int = 2000) -> BeforeAfter:
    """Answer the same prompts with the base model and with a checkpoint; score both with the run's rewards.

    `prompts`: texts, or a frame with a 'prompt' column and the extra columns the rewards read (held_out_prompts).
    Greedy answers one per prompt (`samples` is then 1); sampled gives `samples` answers per prompt, the same
    seed on both sides. The difference and its interval are over prompts (each prompt's mean reward, paired).
    """
    from llmrl_core.lm.generation import SamplingConfig
    from llmrl_core.lm_rl.rewards import build_reward_set

    checkpoint = Path(checkpoint_path).expanduser()
    if not checkpoint.is_dir():
        raise InputError(f"No checkpoint folder at {str(checkpoint)!r}; pick one listed under the run's artifacts.")
    frame = _prompt_frame(prompts)
    samples = 1 if greedy else int(samples)
    sampling = SamplingConfig(max_new_tokens=int(max_new_tokens), temperature=temperature, top_p=1.0, top_k=0,
                              n=samples, seed=int(seed), greedy=bool(greedy))
    reward_set = build_reward_set(list(reward_specs), allow_custom_code=allow_custom_code)
    texts = list(frame["prompt"].astype(str))
    try:
        sides = {}
        for side, spec in (("before", base_spec), ("after", str(checkpoint))):
            completions = _answer(spec, texts, sampling, device, chat, system)
            answers = [c.text for c in completions]  # (P * samples,) prompt-major
            repeat = [i for i in range(len(frame)) for _ in range(samples)]
            columns = {c: list(frame[c].iloc[repeat]) for c in frame.columns if c != "prompt"}
            scores = reward_set.score([texts[i] for i in repeat], answers,
                                      completion_ids=[c.token_ids for c in completions], **columns)
            sides[side] = (answers, scores)
    finally:
        reward_set.close()
    repeat = [i for i in range(len(frame)) for _ in range(samples)]
    rows = pd.DataFrame({"prompt": [texts[i] for i in repeat], "sample": [k % samples for k in range(len(repeat))]})
    for side, (answers, scores) in sides.items():
        rows[side] = answers
        rows[f"{side}_reward"] = np.nan_to_num(scores.total, nan=0.0)  # TRL: no reward counts as 0
        for name, values in scores.per_reward.items():
            rows[f"{side}/{name}"] = values
    per_prompt = rows.groupby(rows.index // samples)[["before_reward", "after_reward"]].mean()  # (P, 2)
    diff, low, high = bootstrap_mean_diff(per_prompt["before_reward"], per_prompt["after_reward"],
                                          n_resamples=n_resamples, confidence=confidence, seed=seed, paired=True)
    return BeforeAfter(base_spec=str(base_spec), checkpoint=str(checkpoint), rows=rows,
                       before_mean=float(rows["before_reward"].mean()), after_mean=float(rows["after_reward"].mean()),
                       diff=diff, low=low, high=high, confidence=confidence, greedy=bool(greedy), samples=samples,
                       reward_names=list(sides["before"][1].per_reward))


def compare_run_before_after(config: Mapping[str, Any], checkpoint_path: str | Path,
                             prompts: Sequence[str] | pd.DataFrame, *, greedy: bool, samples: int = 1, seed: int = 0,
                             max_new_tokens: int | None = None, device: str | None = None) -> BeforeAfter:
    """compare_before_after with what a run's config says: its base model, rewards, chat mode, system prompt,
    temperature, completion budget (unless `max_new_tokens` is given) and custom-code permission."""
    chat = {"auto": None, "chat": True, "raw": False}.get(str(config.get("chat", "auto")))
    return compare_before_after(
        str(config.get("model") or "bundled"), checkpoint_path, prompts, list(config.get("rewards") or []),
        greedy=greedy, samples=samples, seed=seed,
        max_new_tokens=int(max_new_tokens or config.get("max_new_tokens") or 64),
        temperature=float(config.get("temperature") or 1.0), device=device or str(config.get("device") or "auto"),
        chat=chat, system=config.get("system_prompt"), allow_custom_code=bool(config.get("allow_custom_code")),
    )


# ---------------------------------------------------------------------- keeping a result with its run


def save_before_after(store: Any, run_id: int, result: BeforeAfter, step: int | None = None) -> Path:
    """Write the result as JSON in the run's artifact folder and register it (kind 'before_after')."""
    from llmrl_core.core.paths import get_artifact_dir
    from llmrl_core.runs.store import dumps

    folder = get_artifact_dir(run_id) / "before_after"
    folder.mkdir(parents=True, exist_ok=True)
    existing = len(list(folder.glob("before-after-*.json")))
    path = folder / f"before-after-{existing + 1:03d}.json"
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(dumps(result.to_dict()), encoding="utf-8")
    tmp.replace(path)
    if step is None:
        run = store.get_run(run_id) or {}
        step = int(run.get("step") or 0)
    store.add_artifact(run_id, step, BEFORE_AFTER_KIND, path, {"diff": result.diff, "checkpoint": result.checkpoint})
    return path


def load_before_after(path: str | Path) -> BeforeAfter:
    """Read a result written by save_before_after."""
    return BeforeAfter.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def read_latest_before_after(store: Any, run_id: int) -> BeforeAfter | None:
    """The newest stored before/after result of a run, or None (a missing or unreadable file is skipped)."""
    artifacts = store.list_artifacts(run_id, kind=BEFORE_AFTER_KIND)
    for path in list(artifacts["path"])[::-1]:
        try:
            return load_before_after(path)
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return None
