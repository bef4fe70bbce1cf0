"""The custom-code worker: runs user code, reports its errors by line, times out and recovers, is refused when off."""

from __future__ import annotations

import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.rewards import RewardError, build_reward, build_reward_set
from llmrl_core.core.sandbox import CodeSandbox, SandboxError, SandboxTimeout, check_code

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


# --------------------------------------------------------------------------- limits (issue 13, hardening)

LIMITS_CODE = '''
import os, resource

def reward(prompts, completions, **kwargs):
    what = completions[0]
    if what == "allocate":
        hog = [0] * (300 * 2**20)  # 2.4 GB of list slots
        return [float(len(hog))]
    if what == "spin":
        while True:
            pass
    if what == "limits":
        return [float(resource.getrlimit(resource.RLIMIT_AS)[0]), float(resource.getrlimit(resource.RLIMIT_CORE)[0])]
    return [1.0]
'''


def test_memory_limit_gives_a_clear_error_and_the_worker_recovers():
    import time

    with CodeSandbox(LIMITS_CODE, timeout_s=30, memory_limit_bytes=2**30) as box:
        start = time.monotonic()
        with pytest.raises(SandboxError, match=r"MemoryError: your code needed more memory than the sandbox allows "
                                               r"\(1 GiB of address space\) \(line 7 of your code"):
            box(prompts=["p"], completions=["allocate"])
        assert time.monotonic() - start < 10
        assert box(prompts=["p"], completions=["ok"]) == [1.0] and box.restarts == 0  # the same worker goes on


def test_cpu_limit_stops_a_busy_call_before_the_wall_clock_does():
    import time

    with CodeSandbox(LIMITS_CODE, timeout_s=60, cpu_limit_s=1) as box:
        start = time.monotonic()
        with pytest.raises(SandboxError, match=r"died \(it used more than its 1 s of CPU time"):
            box(prompts=["p"], completions=["spin"])
        assert time.monotonic() - start < 15  # not the 60 s wall-clock limit
        assert box(prompts=["p"], completions=["ok"]) == [1.0] and box.restarts == 1


def test_default_limits_are_applied_and_still_let_numpy_and_torch_import():
    from llmrl_core.core.sandbox import MEMORY_LIMIT_BYTES

    with CodeSandbox(LIMITS_CODE) as box:
        assert box(prompts=["p"], completions=["limits"]) == [float(MEMORY_LIMIT_BYTES), 0.0]
    code = ("import numpy as np\nimport torch\n"
            "def reward(prompts, completions, **kwargs):\n"
            "    x = torch.ones(256, 256) @ torch.ones(256, 256)\n"
            "    return [float(x[0, 0]) + float(np.ones(3).sum()) for c in completions]\n")
    with CodeSandbox(code, timeout_s=60) as box:
        assert box(prompts=["p", "p"], completions=["a", "b"]) == [259.0, 259.0]


def test_user_code_does_not_see_the_servers_secrets(monkeypatch):
    secrets = {"HF_TOKEN": "hf_fake", "HUGGING_FACE_HUB_TOKEN": "hf_fake", "WANDB_API_KEY": "w",
               "MLFLOW_TRACKING_PASSWORD": "m", "AWS_ACCESS_KEY_ID": "a", "AWS_REGION": "eu-west-1",
               "OPENAI_API_KEY": "o", "MY_APP_SECRET": "s", "github_token": "g"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LLMRL_VISIBLE", "yes")
    code = ("import os\n"
            "def reward(prompts, completions, **kwargs):\n"
            "    return [os.environ.get(name) is not None for name in completions]\n")
    names = [*secrets, "LLMRL_VISIBLE", "PATH", "HOME"]
    with CodeSandbox(code) as box:
        seen = box(prompts=[""] * len(names), completions=names)
    assert dict(zip(names, seen)) == {**{name: False for name in secrets}, "LLMRL_VISIBLE": True, "PATH": True,
                                      "HOME": True}


PARENT_SCRIPT = '''
import sys, threading, time
sys.path.insert(0, {root!r})
from llmrl_core.core.sandbox import CodeSandbox
boxes = []
thread = threading.Thread(target=lambda: boxes.append(CodeSandbox("def reward(prompts, completions):\\n    return [1.0]\\n")))
thread.start(); thread.join()  # started from a thread that has ended, as from a Streamlit script run
time.sleep(0.5)
print(boxes[0].pid, boxes[0](prompts=["p"], completions=["c"]), flush=True)
time.sleep(600)
'''


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for its reaper counts as gone)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        return not os.path.exists(f"/proc/{pid}")


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_worker_dies_with_its_parent_even_when_started_from_a_finished_thread():
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen([sys.executable, "-c", PARENT_SCRIPT.format(root=root)], stdout=subprocess.PIPE, text=True)
    try:
        pid_text, answer = parent.stdout.readline().split(" ", 1)
        worker_pid = int(pid_text)
        assert answer.strip() == "[1.0]"  # still alive after the thread that started it ended
        assert not _gone(worker_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while not _gone(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(worker_pid), "the sandbox worker outlived its killed parent"
