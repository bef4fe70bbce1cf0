"""The custom-code worker: runs user code, reports its errors by line, times out and recovers, is refused when off."""

from __future__ import annotations

import pytest

from llmrl_core.errors import InputError
from llmrl_core.rewards import RewardError, build_reward, build_reward_set
from llmrl_core.sandbox import CodeSandbox, SandboxError, SandboxTimeout, check_code

CODE = '''
import time

def reward(prompts, completions, **kwargs):
    if completions[0] == "slow":
        time.sleep(60)
    if completions[0] == "crash":
        return 1 / 0
    if completions[0] == "exit":
        import os
        os._exit(3)
    answers = kwargs.get("answer", [None] * len(completions))
    return [float(len(c)) if a is None else float(c == a) for c, a in zip(completions, answers)]
'''


def test_sandbox_runs_times_out_and_recovers():
    with CodeSandbox(CODE, timeout_s=1.0) as box:
        first_pid = box.pid
        assert box(prompts=["p", "p"], completions=["abc", "hello"]) == [3.0, 5.0]
        with pytest.raises(SandboxTimeout, match=r"did not return within 1 s, so it was stopped"):
            box(prompts=["p"], completions=["slow"])
        assert not box.alive and box.restarts == 1
        assert box(prompts=["p"], completions=["ok"], answer=["ok"]) == [1.0]  # a fresh worker answers
        assert box.pid != first_pid
        with pytest.raises(SandboxError, match=r"ZeroDivisionError: division by zero \(line 8 of your code, in reward: `return 1 / 0`\)"):
            box(prompts=["p"], completions=["crash"])
        assert box.alive  # an exception does not cost the worker
        with pytest.raises(SandboxError, match=r"died \(exit code 3\)"):
            box(prompts=["p"], completions=["exit"])
        assert box(prompts=["p"], completions=["xy"]) == [2.0]
    assert not box.alive


@pytest.mark.parametrize("code, message", [
    ("def reward(:\n  pass", "syntax error at line 1"),
    ("def score(prompts, completions):\n    return []", r"must define a top-level function named `reward` \(functions found: score\)"),
    ("", "The code is empty"),
])
def test_code_is_checked_before_a_worker_starts(code, message):
    with pytest.raises(InputError, match=message):
        check_code(code, "reward")


def test_failing_module_body_is_reported_when_the_reward_is_built():
    with pytest.raises(InputError, match=r"Reward 'mine' .*failed when it was run: ModuleNotFoundError: .*no_such_module.*line 1"):
        build_reward({"type": "custom", "name": "mine", "code": "import no_such_module\ndef reward(prompts, completions, **kw):\n    return []"},
                     allow_custom_code=True)


def test_custom_reward_in_a_set_scores_names_errors_and_closes():
    code = "def reward(prompts, completions, **kwargs):\n    return [len(c) / 10 for c in completions]\n"
    rs = build_reward_set([{"type": "custom", "name": "mine", "code": code, "weight": 2.0},
                           {"type": "distinct_n", "n": 1}], allow_custom_code=True)
    try:
        out = rs.score(["p", "p"], ["a b", "a a"])
        assert out.per_reward["mine"].tolist() == [0.3, 0.3]
        assert out.total.tolist() == pytest.approx([2 * 0.3 + 1.0, 2 * 0.3 + 0.5])
        sandbox = rs.fns[0].fn.sandbox
        assert sandbox.alive
    finally:
        rs.close()
    assert not sandbox.alive


def test_custom_reward_errors_carry_the_reward_name():
    code = "def reward(prompts, completions, **kwargs):\n    return [kwargs['missing'] for c in completions]\n"
    fn = build_reward({"type": "custom", "name": "mine", "code": code, "timeout_s": 5}, allow_custom_code=True)
    try:
        with pytest.raises(RewardError, match=r"Reward 'mine' failed: KeyError: 'missing' \(line 2 of your code"):
            fn(prompts=["p"], completions=["c"])
    finally:
        fn.close()


def test_custom_reward_is_refused_when_custom_code_is_off():
    with pytest.raises(InputError, match=r"Reward 'custom': Custom Python rewards are not allowed here"):
        build_reward({"type": "custom"}, allow_custom_code=False)
