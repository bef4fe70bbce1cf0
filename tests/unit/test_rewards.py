"""Rewards against hand-computed values: text rewards, VADER, weighted sums with None, errors with names."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.rewards import REWARD_TYPES, RewardError, RewardSet, build_reward, build_reward_set
from llmrl_core.lm_rl.rewards.text import compute_distinct_n, extract_final_answer, extract_last_number


def score(spec: dict, completions: list[str], **columns) -> list:
    fn = build_reward(spec)
    return fn(prompts=["p"] * len(completions), completions=completions, **columns)


# --------------------------------------------------------------------------- VADER


def test_vader_positive_and_negative_match_hand_computation():
    # VADER: compound = s / sqrt(s^2 + 15), s = sum of lexicon valences (+0.292 per '!', up to 4).
    # love 3.2 + wonderful 2.7 + one '!' 0.292 = 6.192 -> 6.192 / sqrt(6.192^2 + 15) = 0.8478
    # terrible -2.1 + awful -2.0 = -4.1 -> -4.1 / sqrt(4.1^2 + 15) = -0.7269
    s_pos, s_neg = 3.2 + 2.7 + 0.292, -2.1 - 2.0
    pos, neg, neutral = score({"type": "vader"}, [
        "I love this movie, it is wonderful!", "This is a terrible, awful day.", "The table is brown."])
    assert pos == pytest.approx(round(s_pos / math.sqrt(s_pos**2 + 15), 4), abs=1e-4)
    assert neg == pytest.approx(round(s_neg / math.sqrt(s_neg**2 + 15), 4), abs=1e-4)
    assert neutral == 0.0
    flipped = score({"type": "vader", "target": "negative"}, ["This is a terrible, awful day."])
    assert flipped == [pytest.approx(0.7269, abs=1e-4)]


# --------------------------------------------------------------------------- text rewards


def test_length_peaks_at_target_and_falls_linearly():
    spec = {"type": "length", "target": 10, "unit": "words", "falloff": 10}
    texts = [" ".join(["w"] * n) for n in (10, 15, 5, 20, 30, 0)]
    assert score(spec, texts) == [1.0, 0.5, 0.5, 0.0, 0.0, 0.0]
    chars = score({"type": "length", "target": 4, "unit": "chars", "falloff": 2}, ["abcd", "abc", "abcdefgh"])
    assert chars == [1.0, 0.5, 0.0]


def test_length_in_tokens_uses_completion_ids_and_says_when_they_are_missing():
    spec = {"type": "length", "target": 4, "unit": "tokens", "falloff": 4}
    assert score(spec, ["a", "b"], completion_ids=[[1, 2, 3, 4], [1, 2]]) == [1.0, 0.5]
    with pytest.raises(RewardError, match=r"Reward 'length' failed: .*token ids.*use words or chars"):
        score(spec, ["a"])


def test_keywords_fraction_included_minus_fraction_avoided():
    spec = {"type": "keywords", "include": "happy, sun", "avoid": "rain,cold,grey,wet"}
    assert score(spec, [
        "A happy day in the sun.",  # 2/2 - 0/4
        "Happy but cold and wet.",  # 1/2 - 2/4
        "Sunny weather.",  # whole words only: sun does not match Sunny -> 0 - 0
        "grey rain, cold, wet",  # 0 - 4/4
    ]) == [1.0, 0.0, 0.0, -1.0]
    assert score({**spec, "whole_word": False}, ["Sunny"]) == [0.5]
    assert score({"type": "keywords", "include": ["happy", " sun "]}, ["sun"]) == [0.5]  # lists work too
    assert score({**spec, "case_sensitive": True}, ["HAPPY sun"]) == [0.5]


def test_regex_search_and_fullmatch():
    texts = ["<answer>42</answer>", "  <answer>\n4\n</answer>\n", "The answer is <answer>7</answer> ok", "no tags"]
    assert score({"type": "regex", "pattern": "<answer>.+</answer>"}, texts) == [1.0, 1.0, 1.0, 0.0]
    assert score({"type": "regex", "pattern": "<answer>.+</answer>", "mode": "fullmatch"}, texts) == [1.0, 1.0, 0.0, 0.0]
    assert score({"type": "regex", "pattern": "NO TAGS", "ignore_case": True}, texts) == [0.0, 0.0, 0.0, 1.0]


def test_distinct_n_hand_values():
    # "the cat the cat the cat": bigrams (the cat)(cat the)(the cat)(cat the)(the cat) -> 2 distinct / 5
    assert compute_distinct_n("the cat the cat the cat", 2) == pytest.approx(2 / 5)
    assert compute_distinct_n("a b c d", 2) == 1.0
    assert compute_distinct_n("The the THE", 1) == pytest.approx(1 / 3)  # case-folded
    assert compute_distinct_n("single", 2) == 0.0 and compute_distinct_n("", 1) == 0.0
    assert score({"type": "distinct_n", "n": 2}, ["the cat the cat the cat", "a b c d"]) == [0.4, 1.0]


def test_number_and_final_answer_extraction():
    assert extract_last_number("17 + 25 = 42.") == 42.0
    assert extract_last_number("It costs $1,234.50 in total") == 1234.5
    assert extract_last_number("minus: -3") == -3.0
    assert extract_last_number("no digits") is None
    assert extract_final_answer("Thinking...\nThe answer is Paris.") == "paris"
    assert extract_final_answer("so \\boxed{7} done") == "7"
    assert extract_final_answer("a\n\n  Lisbon  \n") == "lisbon"


def test_exact_answer_numbers_text_and_missing_rows():
    completions = ["17 + 25 = 42", "I think 41", "The answer: 1,000", "no idea", "x"]
    answers = ["42", "42", "#### 1000", "5", None]  # last row has no answer -> None
    assert score({"type": "exact_answer"}, completions, answer=answers) == [1.0, 0.0, 1.0, 0.0, None]
    text = score({"type": "exact_answer", "mode": "text"}, ["Answer: Paris.", "It is Rome"], answer=["paris", "Paris"])
    assert text == [1.0, 0.0]


def test_exact_answer_without_the_column_names_the_columns_there_are():
    with pytest.raises(RewardError, match=r"Reward 'exact_answer' failed: .*no 'answer' column \(extra columns: topic\)"):
        score({"type": "exact_answer"}, ["42"], topic=["math"])


# --------------------------------------------------------------------------- sets and weights


def test_weighted_sum_ignores_none_and_is_nan_when_all_are_none():
    def first(prompts, completions, **kw):
        return [1.0, None, None]

    def second(prompts, completions, **kw):
        return [0.5, 2.0, None]

    rs = RewardSet.from_callables([first, second], weights=[2.0, -1.0])
    out = rs.score(["p"] * 3, ["a", "b", "c"])
    assert rs.names == ["first", "second"]
    np.testing.assert_array_equal(out.per_reward["first"], [1.0, np.nan, np.nan])
    assert out.per_reward["first"].dtype == np.float64
    # row 0: 2*1 - 0.5 = 1.5; row 1: None ignored -> -2.0; row 2: all None -> NaN
    np.testing.assert_allclose(out.total[:2], [1.5, -2.0])
    assert math.isnan(out.total[2])
    summary = out.summarize()
    assert summary["reward"] == pytest.approx(-0.25) and summary["rewards/second/mean"] == pytest.approx(1.25)
    assert list(out.as_frame().columns) == ["first", "second", "total"]


def test_build_reward_set_from_specs_with_weights_and_unique_names():
    rs = build_reward_set([
        {"type": "length", "target": 2, "falloff": 2, "weight": 0.5},
        {"type": "length", "target": 4, "falloff": 4},
        {"type": "keywords", "name": "polite", "include": "please", "weight": 2},
    ])
    assert rs.names == ["length", "length_2", "polite"] and rs.weights == [0.5, 1.0, 2.0]
    out = rs.score(["p"], ["please help"])
    assert out.total[0] == pytest.approx(0.5 * 1.0 + 1.0 * 0.5 + 2.0 * 1.0)


def test_score_checks_alignment_of_prompts_and_columns():
    rs = build_reward_set([{"type": "distinct_n"}])
    with pytest.raises(InputError, match="2 prompts for 1 completions"):
        rs.score(["a", "b"], ["x"])
    with pytest.raises(InputError, match="Column 'answer' has 2 values for 1 completions"):
        rs.score(["a"], ["x"], answer=["1", "2"])


def test_an_exception_inside_a_reward_propagates_with_its_name():
    def fussy(prompts, completions, **kw):
        raise ValueError("cannot score this")

    rs = RewardSet.from_callables([fussy])
    with pytest.raises(RewardError, match=r"Reward 'fussy' failed with ValueError: cannot score this") as info:
        rs.score(["p"], ["c"])
    assert isinstance(info.value.__cause__, ValueError)


def test_bad_return_values_are_reported_with_the_reward_name():
    cases = {
        "short": lambda prompts, completions, **kw: [1.0],
        "texty": lambda prompts, completions, **kw: ["1"] * len(completions),
        "infinite": lambda prompts, completions, **kw: [math.inf] * len(completions),
    }
    for name, fn in cases.items():
        with pytest.raises(RewardError, match=f"Reward '{name}' returned"):
            RewardSet.from_callables([fn], names=[name]).score(["p", "p"], ["a", "b"])
    nan_is_none = RewardSet.from_callables([lambda prompts, completions, **kw: [float("nan"), np.float32(2)]])
    assert math.isnan(nan_is_none.score(["p", "p"], ["a", "b"]).total[0])


@pytest.mark.parametrize("spec, message", [
    ({"type": "nope"}, "Unknown reward type 'nope'; choose one of: vader"),
    ({"type": "length", "taget": 3}, r"no parameter 'taget'; its parameters are: target, unit, falloff"),
    ({"type": "length", "target": "ten"}, "target must be a number"),
    ({"type": "length", "target": 2.5}, "target must be a whole number"),
    ({"type": "length", "falloff": 0}, "fall-off must be above 0"),
    ({"type": "length", "unit": "lines"}, "unit must be one of 'words', 'tokens', 'chars'"),
    ({"type": "keywords"}, "needs words to include or to avoid"),
    ({"type": "regex", "pattern": "(unclosed"}, "not a valid regular expression"),
    ({"type": "distinct_n", "n": 0}, "n must be between 1 and 10"),
    ({"type": "vader", "weight": "heavy"}, "weight of reward 'vader' must be a number"),
    ({"type": "vader", "name": "a/b"}, "without '/'"),
    ({"type": "vader", "name": "total"}, "'total' is reserved"),
])
def test_bad_specs_raise_input_errors_that_say_what_to_change(spec, message):
    with pytest.raises(InputError, match=message):
        build_reward(spec)


def test_registry_describes_every_type_and_its_defaults_build():
    assert {"vader", "classifier", "length", "keywords", "regex", "distinct_n", "similarity", "reward_model",
            "exact_answer", "custom"} <= set(REWARD_TYPES)
    for rtype in REWARD_TYPES.values():
        assert rtype.label and rtype.description and isinstance(rtype.params, dict)
        for param, allowed in rtype.choices.items():
            assert rtype.params[param] in allowed
    assert REWARD_TYPES["custom"].runs_user_code and REWARD_TYPES["reward_model"].needs_network
    assert not REWARD_TYPES["similarity"].needs_network
    for key in ("vader", "length", "regex", "distinct_n", "exact_answer"):  # offline types build from defaults
        assert callable(build_reward({"type": key}))


def test_custom_code_is_refused_unless_allowed():
    with pytest.raises(InputError, match="Custom Python rewards are not allowed here"):
        build_reward({"type": "custom", "name": "mine"})
    with pytest.raises(InputError, match="not allowed"):
        build_reward_set([{"type": "vader"}, {"type": "custom"}])
