"""Hardening limits outside the sandbox worker: regex rewards time out, secrets are recognised, limits are checked."""

from __future__ import annotations

import time

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.rewards import RewardError, build_reward
from llmrl_core.lm_rl.rewards.text import REGEX_TIMEOUT_S
from llmrl_core.core.sandbox import CodeSandbox
from llmrl_core.core.security import is_secret_env_name, scrub_environment


def test_catastrophic_regex_is_stopped_with_a_clear_error():
    reward = build_reward({"type": "regex", "name": "format", "pattern": "(a|aa)+$"})
    start = time.monotonic()
    with pytest.raises(RewardError, match=r"Reward 'format' failed: The pattern '\(a\|aa\)\+\$' took more than 1 s "
                                          r"on completion 1 \(61 characters\), so it was stopped"):
        reward(prompts=["p", "p"], completions=["fine", "a" * 60 + "b"])  # Python's re needs hours for this one
    assert time.monotonic() - start < 2 * REGEX_TIMEOUT_S + 1


@pytest.mark.parametrize("mode", ["search", "fullmatch"])
def test_nested_quantifier_that_stalls_re_answers_at_once(mode):
    reward = build_reward({"type": "regex", "pattern": "(a+)+$", "mode": mode})
    start = time.monotonic()
    assert reward(prompts=["p", "p"], completions=["a" * 40 + "b", "aaa"]) == [0.0, 1.0]
    assert time.monotonic() - start < 1  # re.search takes ~2.5 s at 25 a's and doubles with each more


@pytest.mark.parametrize("name, secret", [
    ("HF_TOKEN", True), ("HUGGING_FACE_HUB_TOKEN", True), ("WANDB_API_KEY", True), ("MLFLOW_TRACKING_PASSWORD", True),
    ("AWS_DEFAULT_REGION", True), ("OPENAI_API_KEY", True), ("my_client_secret", True), ("PGPASSWD", True),
    ("GOOGLE_APPLICATION_CREDENTIALS", True),
    ("PATH", False), ("HOME", False), ("LANG", False), ("PYTHONPATH", False), ("LLMRL_HOME", False),
    ("CUDA_VISIBLE_DEVICES", False), ("HF_HUB_OFFLINE", False),
])
def test_secret_variable_names(name, secret):
    assert is_secret_env_name(name) is secret


def test_scrub_environment_keeps_the_rest():
    env = {"PATH": "/bin", "HF_TOKEN": "x", "LANG": "C.UTF-8", "AWS_PROFILE": "p"}
    assert scrub_environment(env) == {"PATH": "/bin", "LANG": "C.UTF-8"}


@pytest.mark.parametrize("kwargs, message", [
    ({"cpu_limit_s": 0}, "CPU-time limit must be above 0"),
    ({"memory_limit_bytes": 2**20}, "memory limit must be at least 128 MiB"),
])
def test_sandbox_limits_are_checked(kwargs, message):
    with pytest.raises(InputError, match=message):
        CodeSandbox("def reward(prompts, completions):\n    return []\n", **kwargs)
