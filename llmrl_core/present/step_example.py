"""A stored LM RL step to walk through in "What does one GRPO step do?": the user's latest, or a bundled one.

`find_example_step(store)` returns the newest step of the newest lm_rl run whose samples carry the per-token
push (issue 21), as a run row and that step's samples. Without one, `load_bundled_example()` returns a step
recorded from the bundled model (SmolLM2-135M-Instruct, "Make it positive", GRPO, 4 prompts x 4 samples,
16 new tokens, beta 0.04): a real step, written by `python -m llmrl_core.present.step_example`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

EXAMPLE_PATH = Path(__file__).with_name("data") / "grpo_step_example.json"


def find_example_step(store: Any) -> tuple[dict, pd.DataFrame] | None:
    """(run, samples of its newest step) of the newest lm_rl run with a recorded push, or None."""
    runs = store.list_runs(kind="lm_rl")
    for run_id in runs["id"].tolist():
        samples = store.read_samples(int(run_id))
        if samples.empty:
            continue
        latest = samples[samples["step"] == samples["step"].max()]
        if all(isinstance(e, dict) and e.get("push_f16") is not None for e in latest["extras"]):
            return store.get_run(int(run_id)), latest.reset_index(drop=True)
    return None


def load_bundled_example() -> tuple[dict, pd.DataFrame]:
    """The bundled step: a run-like row (id 0, its config) and its samples."""
    data = json.loads(EXAMPLE_PATH.read_text())
    samples = pd.DataFrame(data["samples"])
    return {"id": 0, "name": data["name"], "config": data["config"]}, samples


def write_bundled_example(path: Path = EXAMPLE_PATH) -> None:
    """Train the bundled model for two steps of "Make it positive" and save the second step's samples."""
    from llmrl_core.lm_rl.config import make_preset_config
    from llmrl_core.lm_rl.trainer import RLTrainer

    cfg = make_preset_config("make-it-positive", device="cpu", steps=2, beta=0.04, seed=0)
    trainer = RLTrainer(cfg)
    result = [trainer.train_step() for _ in range(cfg.steps)][-1]
    samples = [{"id": i + 1, "step": result.step, **s} for i, s in enumerate(result.samples)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": "bundled example: Make it positive, step 2", "config": cfg.to_dict(),
                                "samples": samples}, indent=0))


if __name__ == "__main__":
    write_bundled_example()
    print(f"wrote {EXAMPLE_PATH}")
