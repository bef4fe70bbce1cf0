"""Reward-hacking and health alarms: each on a synthetic run that triggers it and one that does not."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmrl_core.lm_rl import alarms as A
from llmrl_core.lm_rl.alarms import check_alarms, compute_batch_distinct_n, compute_duplicate_fraction, read_run_alarms

STEPS = 20
CONFIG = {"max_new_tokens": 32, "beta": 0.04}
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def make_metrics(**series) -> pd.DataFrame:
    """A wide metrics frame: step 1..STEPS, each keyword a function of the step (0-based fraction t in [0, 1])."""
    rows = []
    for step in range(1, STEPS + 1):
        t = (step - 1) / (STEPS - 1)
        rows.append({"step": step, **{name.replace("__", "/"): fn(t) for name, fn in series.items()}})
    return pd.DataFrame(rows)


def varied(step: int, i: int) -> str:
    """A completion unlike the others of its step."""
    return " ".join(WORDS[(step * 7 + i * 3 + k * (i + 2)) % len(WORDS)] for k in range(6))


def make_samples(text=varied, groups: int = 2, per_group: int = 4, rewards=None, finish=lambda step, i: "eos"):
    """A list of sample dicts as the trainer stores them (prompt-major groups)."""
    out = []
    for step in range(1, STEPS + 1):
        for i in range(groups * per_group):
            out.append({"step": step, "prompt": f"prompt {i // per_group}", "completion": text(step, i),
                        "rewards": (rewards or (lambda s, j: {"vader": 0.1, "total": 0.1}))(step, i),
                        "extras": {"prompt_index": i // per_group, "sample_index": i % per_group,
                                   "finish_reason": finish(step, i)}})
    return out


def kinds(alarms) -> set[str]:
    return {a.kind for a in alarms}


HEALTHY = dict(reward=lambda t: 0.2 + 0.3 * t, reward_std=lambda t: 0.3, frac_reward_zero_std=lambda t: 0.0,
               entropy=lambda t: 2.0 - 0.5 * t, kl=lambda t: 0.01 + 0.03 * t, completions__clipped_ratio=lambda t: 0.1,
               completions__mean_length=lambda t: 12.0, rewards__vader__mean=lambda t: 0.2 + 0.3 * t)


def test_healthy_run_raises_no_alarm():
    assert check_alarms(make_metrics(**HEALTHY), make_samples(), CONFIG) == []


# ---------------------------------------------------------------------- measures by hand


def test_distinct_n_by_hand():
    # bigrams: (a b) (b a) (a b) | (a b) -> 4 bigrams, 2 unique
    assert compute_batch_distinct_n(["a b a b", "a b"], n=2) == pytest.approx(2 / 4)
    assert compute_batch_distinct_n(["one", ""], n=2) != compute_batch_distinct_n(["one", ""], n=2)  # NaN without bigrams
    assert compute_batch_distinct_n(["x y z"], n=1) == 1.0


def test_duplicate_fraction_by_hand():
    assert compute_duplicate_fraction(["a", "a", "a", "b"]) == pytest.approx(2 / 4)
    assert compute_duplicate_fraction(["a", "b"]) == 0.0


# ---------------------------------------------------------------------- diversity collapse


def collapsing(step: int, i: int) -> str:
    return "great great great wonderful day" if step > STEPS // 2 else varied(step, i)


def test_diversity_collapse_fires_when_reward_rises_and_completions_repeat():
    metrics = make_metrics(**HEALTHY)
    found = [a for a in check_alarms(metrics, make_samples(collapsing), CONFIG) if a.kind == "diversity_collapse"]
    assert len(found) == 1
    alarm = found[0]
    assert alarm.from_step == STEPS // 2 + 1
    assert "great great" in alarm.examples[0]
    assert "distinct-2" in alarm.what_it_saw and "beta" in alarm.suggestion


def test_diversity_collapse_needs_a_rising_reward():
    flat = {**HEALTHY, "reward": lambda t: 0.3}
    assert "diversity_collapse" not in kinds(check_alarms(make_metrics(**flat), make_samples(collapsing), CONFIG))


def test_diversity_collapse_quiet_while_completions_stay_varied():
    assert "diversity_collapse" not in kinds(check_alarms(make_metrics(**HEALTHY), make_samples(varied), CONFIG))


ARITHMETIC = {"max_new_tokens": 24, "beta": 0.0, "rewards": [{"type": "exact_answer", "weight": 1.0}]}


def agreeing(step: int, i: int, per_group: int = 8) -> str:
    """Arithmetic answers: varied at first, then the samples of each prompt agree on its (prompt's own) answer."""
    prompt = i // per_group
    return f"{10 + prompt} + {20 + step} = {30 + prompt + step}" if step > STEPS // 2 else varied(step, i)


def stock_answer(step: int, i: int) -> str:
    """Every prompt gets the same answer in the second half: a collapse whatever the reward."""
    return "The answer is 42." if step > STEPS // 2 else varied(step, i)


def test_pays_one_answer_reads_the_weighted_reward_types():
    assert A.pays_one_answer(ARITHMETIC)
    assert A.pays_one_answer({"rewards": [{"type": "exact_answer"}, {"type": "vader", "weight": 0}]})
    assert not A.pays_one_answer({"rewards": [{"type": "exact_answer"}, {"type": "vader", "weight": 0.5}]})
    assert not A.pays_one_answer(CONFIG) and not A.pays_one_answer({"rewards": []})


def test_diversity_collapse_lets_a_single_answer_group_agree():
    metrics = make_metrics(**HEALTHY)
    samples = make_samples(agreeing, groups=4, per_group=8)
    assert "diversity_collapse" not in kinds(check_alarms(metrics, samples, ARITHMETIC))
    # the same completions under a reward that pays more than one answer (VADER): the repeats are a collapse
    assert "diversity_collapse" in kinds(check_alarms(metrics, samples, CONFIG))


def test_diversity_collapse_fires_on_a_single_answer_run_that_answers_every_prompt_alike():
    samples = make_samples(stock_answer, groups=4, per_group=8)
    (alarm,) = [a for a in check_alarms(make_metrics(**HEALTHY), samples, ARITHMETIC) if a.kind == "diversity_collapse"]
    assert alarm.from_step == STEPS // 2 + 1 and "across prompts" in alarm.what_it_saw
    assert alarm.examples[0] == "The answer is 42."


# ---------------------------------------------------------------------- length cap


def test_length_cap_fires_from_clipped_ratio():
    metrics = make_metrics(**{**HEALTHY, "completions__clipped_ratio": lambda t: 0.9 if t > 0.5 else 0.1})
    samples = make_samples(finish=lambda step, i: "length" if step > 10 else "eos")
    (alarm,) = [a for a in check_alarms(metrics, samples, CONFIG) if a.kind == "length_cap"]
    assert alarm.from_step == 11
    assert "90%" in alarm.what_it_saw and "max_new_tokens = 32" in alarm.what_it_saw
    assert alarm.examples and "max_new_tokens" in alarm.suggestion


def test_length_cap_by_design_fires_only_when_the_clipped_share_rises():
    by_design = {**CONFIG, "truncation_expected": True}
    always_cut = make_metrics(**{**HEALTHY, "completions__clipped_ratio": lambda t: 1.0})
    assert "length_cap" in kinds(check_alarms(always_cut, make_samples(), CONFIG))  # no flag: the level fires
    assert "length_cap" not in kinds(check_alarms(always_cut, make_samples(), by_design))
    growing = make_metrics(**{**HEALTHY, "completions__clipped_ratio": lambda t: 0.9 if t > 0.5 else 0.2})
    (alarm,) = [a for a in check_alarms(growing, make_samples(), by_design) if a.kind == "length_cap"]
    assert alarm.from_step == 11 and "up from 20%" in alarm.what_it_saw and "length penalty" in alarm.suggestion


def test_length_cap_falls_back_to_finish_reason_and_stays_quiet_below_the_cap():
    no_ratio = {k: v for k, v in HEALTHY.items() if k != "completions__clipped_ratio"}
    clipped = make_samples(finish=lambda step, i: "length" if i < 6 else "eos")  # 75% clipped
    assert "length_cap" in kinds(check_alarms(make_metrics(**no_ratio), clipped, CONFIG))
    few = make_samples(finish=lambda step, i: "length" if i < 2 else "eos")  # 25%
    assert "length_cap" not in kinds(check_alarms(make_metrics(**no_ratio), few, CONFIG))


# ---------------------------------------------------------------------- entropy


def test_entropy_collapse_fires_and_not():
    collapse = make_metrics(**{**HEALTHY, "entropy": lambda t: 2.0 if t < 0.5 else 0.02})
    (alarm,) = [a for a in check_alarms(collapse, make_samples(), CONFIG) if a.kind == "entropy_collapse"]
    assert alarm.from_step == 11 and "2 to 0.02" in alarm.what_it_saw and "learning_rate" in alarm.suggestion
    assert "entropy_collapse" not in kinds(check_alarms(make_metrics(**HEALTHY), make_samples(), CONFIG))


# ---------------------------------------------------------------------- KL


def test_kl_runaway_fires_above_the_limit_and_on_growth():
    runaway = make_metrics(**{**HEALTHY, "kl": lambda t: 0.02 * math.exp(6 * t)})  # 0.02 -> 8
    (alarm,) = [a for a in check_alarms(runaway, make_samples(), CONFIG) if a.kind == "kl_runaway"]
    assert alarm.severity == "critical" and "beta" in alarm.suggestion
    assert alarm.from_step is not None and 1 < alarm.from_step < STEPS
    grew = make_metrics(**{**HEALTHY, "kl": lambda t: 0.005 if t < 0.5 else 0.3})  # 60x, below KL_MAX
    (alarm,) = [a for a in check_alarms(grew, make_samples(), CONFIG) if a.kind == "kl_runaway"]
    assert alarm.severity == "warning" and alarm.from_step == 11


# make-it-positive-lora's KL per step, measured on the bundled model (issue 17): the 30-step preset (fluent, positive
# text) and the old 60-step one, whose last steps were "wonderful wonderful amazing amazing ..." (first 30 steps alike).
LORA_KL_30 = [0.0, 0.0018, 0.0046, 0.0063, 0.0082, 0.0079, 0.0158, 0.0147, 0.0272, 0.0298, 0.0426, 0.0527, 0.0756,
              0.0553, 0.0905, 0.0762, 0.0725, 0.069, 0.0696, 0.1033, 0.0702, 0.101, 0.126, 0.1264, 0.1443, 0.1507,
              0.1306, 0.225, 0.2009, 0.2252]
LORA_KL_60_TAIL = [0.1418, 0.107, 0.1045, 0.1319, 0.1051, 0.172, 0.2032, 0.2201, 0.2462, 0.1988, 0.2598, 0.2434,
                   0.4106, 0.404, 0.5025, 0.5778, 0.7641, 0.7296, 0.749, 1.0209, 0.8021, 1.1325, 1.1808, 1.3821,
                   1.2907, 1.3693, 1.6484, 1.9261, 2.3565, 2.2553]


def _series_metrics(kl: list[float]) -> pd.DataFrame:
    """A healthy run's metrics with `kl` as measured, one value per step."""
    n = len(kl)
    rows = [{"step": step, **{name.replace("__", "/"): fn((step - 1) / (n - 1)) for name, fn in HEALTHY.items()},
             "kl": kl[step - 1]} for step in range(1, n + 1)]
    return pd.DataFrame(rows)


def test_kl_runaway_reads_the_lora_presets_measured_runs():
    assert "kl_runaway" not in kinds(check_alarms(_series_metrics(LORA_KL_30), make_samples(), CONFIG))
    (alarm,) = [a for a in check_alarms(_series_metrics(LORA_KL_30 + LORA_KL_60_TAIL), make_samples(), CONFIG)
                if a.kind == "kl_runaway"]
    assert alarm.severity == "critical"


def test_kl_runaway_quiet_for_small_or_absent_kl():
    assert "kl_runaway" not in kinds(check_alarms(make_metrics(**HEALTHY), make_samples(), CONFIG))
    no_kl = {k: v for k, v in HEALTHY.items() if k != "kl"}
    assert "kl_runaway" not in kinds(check_alarms(make_metrics(**no_kl), make_samples(), CONFIG))


# ---------------------------------------------------------------------- no signal


def test_no_signal_fires_on_a_streak_of_flat_rewards():
    flat = make_metrics(**{**HEALTHY, "frac_reward_zero_std": lambda t: 1.0 if t > 0.6 else 0.25})
    (alarm,) = [a for a in check_alarms(flat, make_samples(), CONFIG) if a.kind == "no_signal"]
    assert alarm.severity == "critical" and alarm.from_step == 13
    assert "8 steps in a row" in alarm.what_it_saw and "num_generations" in alarm.suggestion


def test_no_signal_quiet_when_flat_steps_come_and_go():
    blinking = make_metrics(**{**HEALTHY, "frac_reward_zero_std": lambda t: 1.0 if round(t * 19) % 2 else 0.5})
    assert "no_signal" not in kinds(check_alarms(blinking, make_samples(), CONFIG))


# ---------------------------------------------------------------------- rewards that fail


def nan_rewards(step, i):
    return {"vader": 0.5, "exact": None if i % 4 else 1.0, "total": 0.5}


def test_reward_nan_fires_when_a_reward_gives_none_for_most_completions():
    (alarm,) = [a for a in check_alarms(make_metrics(**HEALTHY), make_samples(rewards=nan_rewards), CONFIG)
                if a.kind == "reward_nan"]
    assert "'exact'" in alarm.title and "75%" in alarm.what_it_saw and alarm.from_step == 1
    assert alarm.examples


def test_reward_nan_from_metrics_alone_and_quiet_when_rare():
    metrics = make_metrics(**HEALTHY, rewards__exact__mean=lambda t: float("nan") if t > 0.3 else 1.0)
    assert "reward_nan" in kinds(check_alarms(metrics, [], CONFIG))
    rare = make_samples(rewards=lambda s, i: {"vader": 0.5, "exact": None if i == 0 else 1.0, "total": 0.5})
    assert "reward_nan" not in kinds(check_alarms(make_metrics(**HEALTHY), rare, CONFIG))


def test_reward_wrong_count_from_the_run_error():
    from llmrl_core.lm_rl.rewards import RewardError, RewardSet

    def short(prompts, completions, **kw):
        return [1.0]

    with pytest.raises(RewardError) as caught:
        RewardSet.from_callables([short]).score(["p", "p"], ["a", "b"])
    (alarm,) = check_alarms(make_metrics(**HEALTHY), make_samples(), CONFIG, messages=["Training started.", str(caught.value)])
    assert alarm.kind == "reward_wrong_count" and alarm.severity == "critical"
    assert "'short'" in alarm.title and "1 values for 2" in alarm.what_it_saw
    assert check_alarms(make_metrics(**HEALTHY), make_samples(), CONFIG, messages=["Training started."]) == []


# ---------------------------------------------------------------------- inputs and the store


def test_long_format_and_empty_inputs():
    wide = make_metrics(**{**HEALTHY, "entropy": lambda t: 0.01})
    long = wide.melt(id_vars="step", var_name="name", value_name="value")
    assert kinds(check_alarms(long, None, CONFIG)) == kinds(check_alarms(wide, None, CONFIG)) == {"entropy_collapse"}
    assert check_alarms(pd.DataFrame(), [], {}) == []
    short = make_metrics(**HEALTHY).head(A.MIN_STEPS - 1).assign(entropy=0.001)
    assert "entropy_collapse" not in kinds(check_alarms(short, [], CONFIG))  # too few steps to call a trend


def test_read_run_alarms_reads_the_store(store):
    run_id = store.create_run("lm_rl", "hacked", CONFIG)
    metrics = make_metrics(**{**HEALTHY, "frac_reward_zero_std": lambda t: 1.0})
    for row in metrics.to_dict("records"):
        store.log_metrics(run_id, int(row.pop("step")), row)
    samples = make_samples(rewards=nan_rewards)
    for step in range(1, STEPS + 1):
        store.add_samples(run_id, step, [s for s in samples if s["step"] == step])
    store.set_status(run_id, "failed", error="Reward 'mine' returned 3 values for 8 completions; return one per completion.")
    found = read_run_alarms(store, run_id)
    assert kinds(found) == {"no_signal", "reward_nan", "reward_wrong_count"}
    assert all(a.severity == "critical" for a in found)
    assert read_run_alarms(store, 999) == []
    assert found[0].to_dict()["kind"] == found[0].kind


# ---------------------------------------------------------------------- the shipped presets' healthy runs

# Each shipped preset's healthy run, shaped like its real run on the bundled model (the series that differ
# from HEALTHY). make-it-positive(-lora): raw continuations cut at 16 tokens, so nearly every completion hits
# the cap from step 1 (clipped ratio 1.0, mean length 16) while the VADER reward climbs.
# learn-arithmetic (chat, 24 tokens, 4 prompts x 8 samples at temperature 0.7, lr 1e-5, 30 steps), measured
# (issue 17; the probe in notes/arith_tuning.md, whose steps the preset's job reproduces): early vs late quarter,
# reward 0.18 -> 0.46, entropy 0.73 -> 0.25 nats, clipped share 0.23 -> 0.02 (the long explanations that ran into
# the cap give way to 'a + b = c'), mean length 15.4 -> 11.9, frac_reward_zero_std about 0.58 throughout, and
# the samples of a prompt agree on one answer more and more (38% repeats in a group, batch distinct-2 0.64 ->
# 0.35): learning a single-answer task, which diversity_collapse lets be (pays_one_answer).
PRESET_RUNS = {
    "make-it-positive": dict(completions__clipped_ratio=lambda t: 1.0, completions__mean_length=lambda t: 16.0,
                             kl=lambda t: 0.0),  # beta 0: the trainer logs no real KL, 0 at most
    "make-it-positive-lora": dict(completions__clipped_ratio=lambda t: 1.0, completions__mean_length=lambda t: 16.0),
    "learn-arithmetic": dict(completions__clipped_ratio=lambda t: 0.4 - 0.39 * t, entropy=lambda t: 0.8 - 0.55 * t,
                             completions__mean_length=lambda t: 18.0 - 6.5 * t, reward=lambda t: 0.05 + 0.45 * t,
                             rewards__exact_answer__mean=lambda t: 0.05 + 0.45 * t, kl=lambda t: 0.0,
                             frac_reward_zero_std=lambda t: 0.6),
}
PRESET_SAMPLES = {  # (text, groups, per_group) of a healthy run's stored samples, where not make_samples' default
    "learn-arithmetic": (agreeing, 4, 8),
}


@pytest.mark.parametrize("name", list(PRESET_RUNS))
def test_shipped_preset_healthy_run_fires_nothing(name):
    from llmrl_core.lm_rl.config import make_preset_config

    config = make_preset_config(name).to_dict()
    cap = config["max_new_tokens"]
    metrics = make_metrics(**{**HEALTHY, **PRESET_RUNS[name]})
    clipped = float(metrics["completions/clipped_ratio"].mean())
    text, groups, per_group = PRESET_SAMPLES.get(name, (varied, 2, 4))
    n = groups * per_group
    samples = make_samples(text, groups, per_group, finish=lambda step, i: "length" if (i + 0.5) / n <= clipped else "eos")
    assert check_alarms(metrics, samples, config) == [], f"preset {name!r} (max_new_tokens {cap})"


def test_every_shipped_preset_has_a_healthy_run():
    from llmrl_core.lm_rl.config import PRESETS

    assert set(PRESET_RUNS) == set(PRESETS)


# learn-arithmetic with learning_rate 5e-5 (issue 17, measured): the answers turn to 'a + b is c', the reward
# peaks at step 4 and falls to 0, every group's samples then get the same (zero) reward, and held-out accuracy
# went from 0.125 to 0 by step 20. Per step: reward, frac_reward_zero_std, entropy.
ARITHMETIC_COLLAPSE = (
    [0.031, 0.156, 0.344, 0.406, 0.375, 0.125, 0.0, 0.0, 0.125, 0.031, 0.0, 0.0, 0.031] + [0.0] * 12,
    [0.75, 0.5, 0.5, 0.75, 0.5, 0.5, 1.0, 1.0, 0.75, 0.75, 1.0, 1.0, 0.75] + [1.0] * 12,
    [0.981, 0.594, 0.311, 0.225, 0.156, 0.119, 0.186, 0.139, 0.234, 0.201, 0.18, 0.224, 0.21, 0.108, 0.172, 0.236,
     0.202, 0.222, 0.204, 0.185, 0.233, 0.22, 0.298, 0.256, 0.369],
)


def test_arithmetic_collapse_mid_run_fires_no_signal():
    from llmrl_core.lm_rl.config import make_preset_config

    reward, flat, entropy = ARITHMETIC_COLLAPSE
    metrics = pd.DataFrame({"step": range(1, len(reward) + 1), "reward": reward, "frac_reward_zero_std": flat,
                            "entropy": entropy, "rewards/exact_answer/mean": reward})
    found = check_alarms(metrics, None, make_preset_config("learn-arithmetic").to_dict())
    (alarm,) = [a for a in found if a.kind == "no_signal"]
    assert alarm.severity == "critical" and alarm.from_step == 14 and "12 steps in a row" in alarm.what_it_saw
    partial = metrics.head(18)  # while the run is still going: 5 flat steps in a row are enough
    assert "no_signal" in kinds(check_alarms(partial, None, make_preset_config("learn-arithmetic").to_dict()))


def test_arithmetic_answers_cut_at_the_cap_all_run_long_fire_length_cap():
    from llmrl_core.lm_rl.config import make_preset_config

    config = make_preset_config("learn-arithmetic").to_dict()
    stuck = make_metrics(**{**HEALTHY, **PRESET_RUNS["learn-arithmetic"], "completions__clipped_ratio": lambda t: 0.5})
    (alarm,) = [a for a in check_alarms(stuck, make_samples(), config) if a.kind == "length_cap"]
    assert "max_new_tokens = 24" in alarm.what_it_saw and "Raise `max_new_tokens`" in alarm.suggestion
