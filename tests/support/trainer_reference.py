"""The trainer's fp32 reference numbers: 3 steps of 8 configs on the tiny Llama, recorded once, compared forever.

tests/unit/data/trainer_reference.json holds, for each config, every step's metrics (timings left out)
and the final trainable weights as a SHA-256 of their bytes plus each tensor's sum and norm (so a
mismatch says which tensor moved). It was written by the trainer as it stood before the split of
lm_rl/trainer.py (issue 16) and the refactored trainer must reproduce it bit for bit in float32.

Regenerate (only when the maths is meant to change, and say why in the commit):
    LLMRL_WRITE_TRAINER_REFERENCE=1 python -m pytest -q \
        tests/unit/test_trainer.py::test_fp32_numbers_match_the_recorded_reference
(the test builds the tiny model through conftest's fixture, so the numbers always belong to that model).

Float sums depend on the CPU's kernels, so the file also records torch's version and CPU capability;
on another one the comparison is skipped with a message saying to regenerate, rather than failing on
the last bit of a different machine's arithmetic. Runs use one torch thread for the same reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "unit" / "data" / "trainer_reference.json"
WRITE_ENV = "LLMRL_WRITE_TRAINER_REFERENCE"
STEPS = 3

PROMPTS = pd.DataFrame({"prompt": ["Hello there", "The movie was", "Today I feel", "Once upon a time"],
                        "answer": ["1", "2", "3", "4"]})
BASE = dict(device="cpu", steps=STEPS, prompts_per_step=2, num_generations=2, max_new_tokens=6, chat="raw",
            learning_rate=1e-3, rewards=[{"type": "length", "target": 20, "unit": "chars", "falloff": 40}],
            prompt_set="sentence-starters", seed=0, mixed_precision="no",
            # recorded with transformers' generate: the fast loop draws the same distribution from the RNG in
            # another order (tests/unit/test_fast_generate.py), so the split is checked on generate's tokens
            generation_backend="generate")

# The 8 configs (TRL's bnpo loss type is not offered here, so the three loss types there are run).
CONFIGS: dict[str, dict[str, Any]] = {
    "grpo-grpo": {"algorithm": "grpo", "loss_type": "grpo"},
    "grpo-dapo": {"algorithm": "grpo", "loss_type": "dapo", "grad_accum_steps": 2},
    "grpo-dr_grpo": {"algorithm": "grpo", "loss_type": "dr_grpo"},
    "rloo": {"algorithm": "rloo", "grad_accum_steps": 2},
    "reinforce": {"algorithm": "reinforce"},
    "ppo": {"algorithm": "ppo", "beta": 0.1, "kl_estimator": "k1", "grad_accum_steps": 2},
    "grpo-beta-2-epochs": {"algorithm": "grpo", "beta": 0.1, "num_epochs": 2},
    "grpo-lora": {"algorithm": "grpo", "use_lora": True, "beta": 0.1, "loss_type": "grpo", "learning_rate": 1e-2},
}

# Wall-clock metrics differ from run to run; everything else must not.
TIMING_PREFIXES = ("time/", "step_time", "tokens_per_second")


def describe_platform() -> dict[str, str]:
    """What the float arithmetic depends on: torch's version and the CPU kernels it picked."""
    return {"torch": torch.__version__.split("+")[0], "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def fingerprint_weights(named: list[tuple[str, torch.Tensor]]) -> dict[str, Any]:
    """A SHA-256 over the bytes of the tensors, and each tensor's float64 sum and norm."""
    digest = hashlib.sha256()
    tensors = {}
    for name, tensor in named:
        data = tensor.detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(data.numpy().tobytes())
        as64 = data.double()
        tensors[name] = {"sum": float(as64.sum()), "norm": float(as64.norm())}
    return {"sha256": digest.hexdigest(), "tensors": tensors}


def run_config(model_dir: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """STEPS steps of one config; its metrics per step (timings left out) and its final trainable weights."""
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.lm_rl.trainer import RLTrainer

    cfg = RLConfig(**{**BASE, "model": str(model_dir), **changes})
    trainer = RLTrainer(cfg, prompts=PROMPTS)
    steps = []
    for _ in range(cfg.steps):
        metrics = trainer.train_step().metrics
        steps.append({k: float(v) for k, v in sorted(metrics.items()) if not k.startswith(TIMING_PREFIXES)})
    named = [(n, p) for n, p in trainer.policy.named_parameters() if p.requires_grad]
    if trainer.value_head is not None:
        named += [(f"value_head.{n}", p) for n, p in trainer.value_head.named_parameters()]
    return {"config": changes, "metrics": steps, "weights": fingerprint_weights(named)}


def run_all(model_dir: Path) -> dict[str, Any]:
    """Every config, on one torch thread (so the float sums do not depend on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"platform": describe_platform(), "steps": STEPS,
                "runs": {name: run_config(model_dir, changes) for name, changes in CONFIGS.items()}}
    finally:
        torch.set_num_threads(threads)


def write_reference(result: dict[str, Any]) -> None:
    """Save `result` as the reference (floats at full precision: json writes repr(float))."""
    REFERENCE_PATH.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE_PATH.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


def load_reference() -> dict[str, Any]:
    """The recorded reference."""
    return json.loads(REFERENCE_PATH.read_text())
