"""LM RL on several processes (llmrl_core/lm_rl/distributed.py, the trainer under accelerate launch).

Pure math first (the batch split and group advantages over a split group, with an in-process
fake of the collectives), then real 2-process gloo runs on the CPU through `accelerate launch`:
the same parameters as one process on the same global batch, only rank 0 writing to the store,
and a stop reaching both processes.

Generations are made identical on one process and on two by overriding
`RLTrainer.sample_completions`: every sample's tokens are drawn from a generator seeded by its
global index in the batch and the step (the trainer passes the index of its slice's first row).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from llmrl_core.lm_rl.algorithms import AdvantageInputs, compute_token_weights, get_algorithm
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.lm_rl.distributed import (LocalCollective, gather_advantage_inputs, get_sample_slice, sync_stop,
                                          take_local)
from llmrl_core.core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]

# Both set-ups agree to this (max over all parameters of |theta_2proc - theta_1proc|) after 2 AdamW steps
# at lr 1e-3: the gradients differ only in the order of float32 sums (all-reduce vs one batch), ~1e-7
# relative, and Adam's first steps move each weight by about lr whatever the gradient's size (measured:
# 8e-8 GRPO, 1.1e-6 PPO, 1.6e-6 LoRA at lr 1e-2, 1.2e-7 RLOO with 2 epochs).
PARAM_ATOL = 1e-5


# ---------------------------------------------------------------------- pure: split and advantages


class FakeWorld:
    """In-process stand-in for N processes' collectives: one thread per process, a barrier per call."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.slots: list = [None] * n
        self.barrier = threading.Barrier(n)

    def rank(self, index: int) -> "FakeRank":
        return FakeRank(self, index)

    def run(self, fn) -> list:
        """fn(comm) on every rank in its own thread; their results in rank order."""
        results: list = [None] * self.n
        errors: list = []

        def target(i: int) -> None:
            try:
                results[i] = fn(self.rank(i))
            except Exception as err:  # surfaced below
                errors.append(err)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(i,)) for i in range(self.n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        if errors:
            raise errors[0]
        return results


class FakeRank:
    def __init__(self, world: FakeWorld, index: int) -> None:
        self.world, self.num_processes, self.process_index = world, world.n, index

    def _exchange(self, value):
        self.world.slots[self.process_index] = value
        self.world.barrier.wait()
        values = list(self.world.slots)
        self.world.barrier.wait()
        return values

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._exchange(tensor))

    def gather_objects(self, items: list) -> list:
        return [x for part in self._exchange(list(items)) for x in part]

    def broadcast_flag(self, flag: bool) -> bool:
        return bool(self._exchange(flag)[0])


def test_sample_slices_are_contiguous_prompt_major_and_cover_the_batch():
    assert [get_sample_slice(12, 3, i) for i in range(3)] == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError):
        get_sample_slice(10, 3, 0)


def test_group_advantages_over_a_prompt_split_across_processes():
    """2 prompts x 3 samples on 2 processes: prompt 0's third sample and prompt 1's first sit on different ranks."""
    rewards = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])  # prompt-major: group (1, 2, 6), group (0, 0, 3)
    # by hand: group 1 mean 3, sample std sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7); group 2 mean 1, std sqrt(3)
    expected = torch.tensor([-2 / 7 ** 0.5, -1 / 7 ** 0.5, 3 / 7 ** 0.5, -1 / 3 ** 0.5, -1 / 3 ** 0.5, 2 / 3 ** 0.5])
    masks = [torch.tensor([[1.0, 1, 0], [1, 0, 0], [1, 1, 1]]), torch.tensor([[1.0, 0], [1, 1], [1, 0]])]  # widths 3, 2
    cfg = RLConfig(prompts_per_step=2, num_generations=3, num_processes=2, loss_type="dapo")
    grpo = get_algorithm("grpo")

    def one_rank(comm):
        rows = get_sample_slice(6, 2, comm.process_index)
        batch, width = gather_advantage_inputs(comm, AdvantageInputs(rewards[rows], masks[comm.process_index]))
        adv = grpo.compute_advantages(cfg, batch, {}).advantages  # (6,) on every rank
        weights = compute_token_weights(batch.mask, cfg.loss_type, cfg.max_new_tokens)  # (6, 3)
        local_width = masks[comm.process_index].shape[1]
        return adv, take_local(comm, adv), take_local(comm, weights, local_width), width, batch.mask

    (adv0, local0, w0, width, mask), (adv1, local1, w1, _, _) = FakeWorld(2).run(one_rank)
    torch.testing.assert_close(adv0, expected, atol=2e-4, rtol=0)  # eps 1e-4 in the denominator
    torch.testing.assert_close(adv1, adv0)
    torch.testing.assert_close(torch.cat([local0, local1]), adv0)
    assert width == 3 and mask[3:, 2].sum() == 0  # rank 1's rows padded with mask 0
    # dapo: every token weighs 1 / (all 10 tokens of the batch), not 1 / (the rank's own 6 or 4)
    assert torch.allclose(w0[masks[0].bool()], torch.tensor(1 / 10)) and w1.shape == (3, 2)
    assert torch.allclose(w1[masks[1].bool()], torch.tensor(1 / 10))


def test_stop_flag_is_the_main_processes_answer():
    assert FakeWorld(2).run(lambda comm: sync_stop(comm, comm.process_index == 0)) == [True, True]
    assert FakeWorld(2).run(lambda comm: sync_stop(comm, comm.process_index == 1)) == [False, False]
    assert sync_stop(LocalCollective(), True) is True


@pytest.mark.parametrize("changes, message", [
    ({"num_processes": 3}, "do not split"),
    ({"num_processes": 4, "num_machines": 3}, "split evenly"),
    ({"num_processes": 2, "num_machines": 2}, "main_process_ip"),
    ({"num_processes": 4, "grad_accum_steps": 8}, "each of the 4"),
    ({"distributed_strategy": "zero4"}, "zero3"),
    ({"report_to": ["tensorbored"]}, "tensorboard"),
])
def test_bad_process_settings_say_what_to_change(changes, message):
    with pytest.raises(InputError, match=message):
        RLConfig(prompts_per_step=4, num_generations=4, **changes)


# ---------------------------------------------------------------------- real processes (gloo on CPUs)

PROBE = textwrap.dedent('''
    """One training run of the tiny model with fixed completions; rank 0 writes the weights and metrics."""
    import json, os, sys
    import pandas as pd
    import torch
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.lm_rl.trainer import RLTrainer

    class FixedTrainer(RLTrainer):
        def sample_completions(self, prompt_ids, prompt_mask, first_index):
            rows = []
            for i in range(prompt_ids.shape[0]):
                g = torch.Generator().manual_seed(1000 * self.step_count + first_index + i)
                clipped = (first_index + i) % 3 == 0  # every third runs to max_new_tokens without EOS, as generate does
                length = self.cfg.max_new_tokens if clipped else 1 + (first_index + i) % (self.cfg.max_new_tokens - 1)
                ids = torch.randint(300, 3000, (length,), generator=g).tolist()
                rows.append(ids + ([] if clipped else [self.eos_ids[0]]))
            width = max(len(r) for r in rows)
            return torch.tensor([r + [self.eos_ids[0]] * (width - len(r)) for r in rows])  # (b, T), T varies

    frame = pd.DataFrame({"prompt": ["Hello there", "The movie was", "Today I feel", "Once upon a time"]})
    results = {}
    for name, config in json.loads(os.environ["PROBE_CONFIGS"]).items():  # one launch runs every configuration
        cfg = RLConfig.from_dict(config)
        trainer = FixedTrainer(cfg, prompts=frame)
        start = {k: v.detach().clone() for k, v in trainer.policy.named_parameters()}
        metrics = [trainer.train_step().metrics for _ in range(cfg.steps)]
        results[name] = {"params": {k: v.detach().clone() for k, v in trainer.policy.named_parameters()},
                         "start": start, "metrics": metrics}
        trainer.comm.wait_for_everyone()
    if trainer.is_main_process:
        torch.save(results, os.environ["PROBE_OUT"])
    trainer.comm.end_training()
    if trainer.comm.num_processes > 1:
        from llmrl_core.runs.launch import exit_rank
        exit_rank(0)  # as the worker leaves (gloo can abort a finished rank in the interpreter's teardown)
''')


def probe_config(tiny_model_dir, **changes) -> dict:
    base = dict(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=4,
                max_new_tokens=6, chat="raw", learning_rate=1e-3, seed=0, grad_accum_steps=2, loss_type="dapo",
                mixed_precision="no",  # float32: the equivalence is about the maths, not bf16's rounding
                rewards=[{"type": "length", "target": 20, "unit": "chars", "falloff": 40}])
    return RLConfig(**{**base, **changes}).to_dict()


def run_probe(tmp_path: Path, configs: dict[str, dict], num_processes: int) -> dict:
    """Run PROBE over `configs` (name -> RLConfig dict) on `num_processes` CPU processes (1: plainly; 2: through the
    built accelerate command); one launch runs them all, so process start-up is paid once, not once per config."""
    from llmrl_core.runs.launch import build_launch_command, get_launch_env, write_accelerate_config
    from llmrl_core.runs.manager import _find_free_port

    (tmp_path / "distributed_probe.py").write_text(PROBE)
    out = tmp_path / f"probe-{num_processes}.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PROBE_CONFIGS=json.dumps(configs), PROBE_OUT=str(out),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    if num_processes == 1:
        command = [sys.executable, "-m", "distributed_probe"]
    else:
        port = _find_free_port()
        path = write_accelerate_config(tmp_path / "accelerate.yaml", strategy="ddp", num_processes=num_processes,
                                       main_process_port=port, use_cpu=True)
        command = build_launch_command(1, config_path=path, num_processes=num_processes, main_process_port=port)
        command = command[:command.index("llmrl_core")] + ["distributed_probe"]
        env.update(get_launch_env(use_cpu=True))
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[:6000]
    return torch.load(out)


EQUIVALENCE_CASES = {
    "grpo-dapo": {},  # GRPO, dapo (one token count over both processes), 2 micro-batches (no_sync on the first)
    "ppo": {"algorithm": "ppo", "beta": 0.1, "kl_estimator": "k1"},  # value head averaged by hand, whitening over the batch
    "grpo-lora": {"use_lora": True, "beta": 0.1, "loss_type": "grpo", "learning_rate": 1e-2},  # reference = adapters off
    "rloo-2-epochs": {"algorithm": "rloo", "num_epochs": 2, "loss_type": "dr_grpo"},  # old log-probs, two optimizer steps
}


@pytest.fixture(scope="module")
def equivalence_runs(tiny_model_dir, tmp_path_factory) -> tuple[dict, dict]:
    """(one process, two processes): every EQUIVALENCE_CASES run's start weights, final weights and metrics."""
    folder = tmp_path_factory.mktemp("equivalence")
    one = {name: probe_config(tiny_model_dir, **changes) for name, changes in EQUIVALENCE_CASES.items()}
    two = {name: {**config, "num_processes": 2} for name, config in one.items()}
    return run_probe(folder, one, 1), run_probe(folder, two, 2)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EQUIVALENCE_CASES))
def test_two_processes_give_the_parameters_of_one_on_the_same_global_batch(equivalence_runs, case):
    one, two = equivalence_runs[0][case], equivalence_runs[1][case]
    moved = max(float((one["params"][k] - one["start"][k]).abs().max()) for k in one["params"])
    assert moved > 1e-4  # the steps really changed the weights
    worst = max(float((two["params"][k] - one["params"][k]).abs().max()) for k in one["params"])
    assert worst < PARAM_ATOL, f"2 processes differ from 1 by {worst:g} (updates of {moved:g})"
    for m1, m2 in zip(one["metrics"], two["metrics"]):  # metrics over the whole batch, as one process logs them
        for key in ("reward", "reward_std", "loss/policy", "completions/mean_length", "num_tokens", "entropy",
                    "advantage/std", "grad_norm"):
            assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-6), key


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, ppid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(parent: int) -> list[int]:
    """Live child processes of `parent` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat_fields(int(entry.name))
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def _is_running(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_run_manager_launches_two_processes_only_rank_0_writes_and_stop_reaches_both(tiny_model_dir, tmp_path):
    """A long 2-process run from RunManager: one row per step, one 'Started.', rank 1 never opens the store;
    pause holds both processes, resume lets them go on, stop ends the launcher and both ranks."""
    from llmrl_core.runs import RunManager, RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    manager = RunManager(store)
    config = probe_config(tiny_model_dir, steps=500, num_processes=2, max_new_tokens=4, save_final=False,
                          prompt_set="sentence-starters")
    run_id = manager.start("lm_rl", config, name="two processes", total_steps=500)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            run = store.get_run(run_id)
            if run["status"] == "failed":
                pytest.fail(run["error"])
            if (run.get("step") or 0) >= 2:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the 2-process run did not reach step 2 in 240 s: " + Path(
                store.path.parent / "workers" / f"run-{run_id:05d}.log").read_text()[-3000:])
        launcher = manager._worker_pid(run_id)
        ranks = {}  # torchrun starts each rank in its own session: find them as the launcher's children
        for pid in _children(launcher):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            rank = next((e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"RANK=")), None)
            if rank is not None:
                ranks[rank] = pid
        assert set(ranks) == {"0", "1"}, ranks
        opened = {rank: any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == str(store.path.resolve())
                            for fd in os.listdir(f"/proc/{pid}/fd")) for rank, pid in ranks.items()}
        assert opened == {"0": True, "1": False}, opened  # only rank 0 holds the store open

        manager.pause(run_id)  # the main process blocks at the step boundary; rank 1 waits in the stop broadcast
        wait_for(lambda: store.get_run(run_id)["status"] == "paused", 120)
        paused_at = store.get_run(run_id)["step"]
        time.sleep(3)
        assert store.get_run(run_id)["step"] == paused_at and all(map(_is_running, ranks.values()))
        manager.resume(run_id)
        wait_for(lambda: store.get_run(run_id)["step"] > paused_at, 120)

        manager.stop(run_id)
        assert manager.wait(run_id, timeout=120)
        time.sleep(0.5)
        assert [pid for pid in [launcher, *ranks.values()] if _is_running(pid)] == []  # launcher and both ranks gone
        run = store.get_run(run_id)
        assert run["status"] == "stopped", run.get("error")
        steps = list(store.read_metrics(run_id, names=["reward"])["step"])
        assert len(steps) >= 2 and len(steps) == len(set(steps)), "a step was logged twice: another rank wrote"
        messages = list(store.read_logs(run_id)["message"])
        assert messages.count("Started.") == 1 and sum("Launching 2 processes" in m for m in messages) == 1
    finally:
        manager.kill(run_id)


@pytest.mark.slow
def test_train_cli_with_two_processes_runs_through_accelerate(tiny_model_dir, tmp_path):
    """`python -m llmrl_core train --set num_processes=2`: one run, 2 steps logged once each, a checkpoint, completed."""
    from llmrl_core.runs import RunStore

    config = probe_config(tiny_model_dir, num_processes=2, save_final=True)
    (tmp_path / "run.yaml").write_text(RLConfig.from_dict(config).to_yaml())
    home = tmp_path / "home"
    env = dict(os.environ, LLMRL_HOME=str(home), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "llmrl_core", "train", "--config", str(tmp_path / "run.yaml"),
                           "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert re.search(r"run 1: completed", done.stdout)
    store = RunStore(home / "runs.sqlite")
    assert list(store.read_metrics(1, names=["reward"])["step"]) == [1, 2]
    assert (home / "artifacts" / "run-00001" / "accelerate.yaml").is_file()
    assert (home / "artifacts" / "run-00001" / "checkpoint-000002").is_dir()


def test_launch_for_two_machines_logs_the_other_machines_command(store, tmp_path):
    """The run's log names the wait and the exact command for machine rank 1; this machine's argv is rank 0's."""
    from llmrl_core.runs.manager import make_accelerate_launch

    config = RLConfig(num_processes=4, num_machines=2, main_process_ip="10.0.0.5", main_process_port=29555,
                      device="cpu").to_dict()
    run_id = store.create_run("lm_rl", "two machines", config, 1)
    command, env = make_accelerate_launch(store, run_id, config)
    assert command[command.index("--machine_rank") + 1] == "0" and "10.0.0.5" in command and "29555" in command
    assert command[-5:-2] == ["llmrl_core", "worker", str(run_id)] and env["ACCELERATE_USE_CPU"] == "true"
    log = "\n".join(store.read_logs(run_id)["message"])
    assert "Waiting up to 10 minutes for 1 other machine(s) to join 10.0.0.5:29555" in log
    other = log.splitlines()[-1]
    assert other.startswith("ACCELERATE_USE_CPU=true python -m accelerate.commands.launch --config_file ")
    assert "--num_processes 4 --num_machines 2 --machine_rank 1 --main_process_ip 10.0.0.5 --main_process_port 29555" in other
    assert other.endswith(f"-m llmrl_core worker {run_id}")  # no --store: only rank 0, on this machine, opens it


@pytest.mark.slow
def test_kill_of_the_launcher_ends_both_ranks(tiny_model_dir, tmp_path):
    """torchrun gives each rank its own session; they ask to die with the launcher, so Kill leaves no rank behind."""
    from llmrl_core.runs import RunManager, RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    manager = RunManager(store)
    config = probe_config(tiny_model_dir, steps=500, num_processes=2, max_new_tokens=4, save_final=False)
    run_id = manager.start("lm_rl", config, name="to kill", total_steps=500)
    try:
        wait_for(lambda: (store.get_run(run_id).get("step") or 0) >= 1, 240)
        launcher = manager._worker_pid(run_id)
        ranks = _children(launcher)
        assert len(ranks) == 2, ranks
        assert manager.kill(run_id)
        wait_for(lambda: not any(map(_is_running, [launcher, *ranks])), 30)
        manager.wait(run_id, timeout=30)
        assert store.get_run(run_id)["status"] == "failed"  # killed: the supervisor records it
    finally:
        manager.kill(run_id)


def test_a_multi_machine_run_whose_machines_never_joined_fails_with_what_to_do(store, tmp_path):
    """The launcher gave up waiting (still queued, 2 machines): the failure says the other machine never joined."""
    from llmrl_core.runs.manager import RunManager
    from llmrl_core.runs.store import make_owner

    config = RLConfig(num_processes=4, num_machines=2, main_process_ip="10.0.0.5", device="cpu").to_dict()
    run_id = store.create_run("lm_rl", "two machines", config, 1)
    store.assign_owner(run_id, make_owner())  # its launcher is alive while it waits: not an orphan
    log = tmp_path / "worker.log"
    log.write_text("torch.distributed: timed out waiting for rendezvous\n", encoding="utf-8")
    RunManager(store)._record_vanished(run_id, "The worker exited with status 1.", log)
    error = store.get_run(run_id)["error"]
    assert "1 other machine(s), which never joined within 10 minutes" in error
    assert "timed out waiting for rendezvous" in error  # the launcher's own words follow
