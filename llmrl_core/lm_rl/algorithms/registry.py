"""The algorithms the trainer can run, by name: `get_algorithm(cfg.algorithm)`.

Each module (grpo.py, rloo.py, reinforce.py, ppo.py) declares one `Algorithm` (spec.py) next to
its math; this table is the only list of them. To add one: write its module with its math and
its `Algorithm`, and add it here; the config, the trainer, the CLI and the form then offer it.
"""

from __future__ import annotations

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.algorithms.grpo import GRPO
from llmrl_core.lm_rl.algorithms.ppo import PPO
from llmrl_core.lm_rl.algorithms.reinforce import REINFORCE
from llmrl_core.lm_rl.algorithms.rloo import RLOO
from llmrl_core.lm_rl.algorithms.spec import Algorithm

REGISTRY: dict[str, Algorithm] = {algo.name: algo for algo in (GRPO, RLOO, REINFORCE, PPO)}
ALGORITHMS: tuple[str, ...] = tuple(REGISTRY)  # the valid values of cfg.algorithm, in the order the UI offers them


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called `name` (cfg.algorithm); InputError naming the valid ones otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"algorithm must be one of {', '.join(ALGORITHMS)} (got {name!r}).") from None
