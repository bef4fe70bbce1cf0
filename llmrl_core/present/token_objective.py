"""What one update did to each token of a stored step, explained: the push, its formula, other algorithms.

The trainer stores with every sample the push it computed on each token (read back with lm_rl.samples.read_push), -dL/d(log pi_t) of the loss's
policy term (llmrl_core/lm_rl/algorithms/common.py), the KL term's push apart, the clipped positions and
the sample's aggregation weight w. From those and the stored rewards, ratios and advantages this module:

  * explains one token (`explain_token`): the algorithm's loss, advantage and push formulas, the numbers
    that go into them with where each comes from (the group's rewards, mean and std for GRPO; the other
    samples' mean for RLOO; the baseline for REINFORCE; the value and the GAE advantage for PPO), and the
    push recomputed from exactly the numbers shown, next to the one the trainer recorded;
  * recomputes a stored step under the other algorithms and loss types (`compare_algorithms`), from the
    stored rewards, ratios and completion lengths, with no model forward: the same functions the trainer
    runs (the registry's compute_advantages, compute_token_weights, compute_push);
  * tabulates how the three loss aggregations weigh short and long completions (`compare_sequence_weights`).

Nothing here imports Streamlit. Tokens are model output: pages show them through render_token_html, which
escapes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Sequence

import pandas as pd
import torch

from llmrl_core.lm_rl.algorithms import REGISTRY, AdvantageInputs, LossInputs, compute_token_weights, get_algorithm
from llmrl_core.lm_rl.algorithms.common import LOSS_TYPES
from llmrl_core.lm_rl.samples import read_push

PUSH_LEGEND = ("Red: this update makes the token more likely. Blue: less likely. White: barely touched. "
               "Struck through: the ratio was clipped there, so the token got no gradient from the policy term.")
LOSS_TYPE_LABELS = {"grpo": "grpo (per-sequence mean)", "dapo": "dapo (global token mean)",
                    "dr_grpo": "dr_grpo (constant: B x max_new_tokens)"}
WEIGHT_FORMULAS = {
    "grpo": r"w_{i,t} = \frac{1}{B\,|o_i|}",
    "dapo": r"w_{i,t} = \frac{1}{\sum_j |o_j|}",
    "dr_grpo": r"w_{i,t} = \frac{1}{B\,T_{max}}",
}


@dataclass
class Factor:
    """One number of the formula: its symbol (LaTeX), its value and where it comes from."""

    symbol: str
    value: float
    source: str


@dataclass
class TokenExplanation:
    """One token's push, written out with the numbers that make it."""

    algorithm: str  # label, e.g. 'GRPO'
    loss_formula: str  # LaTeX
    advantage_formula: str  # LaTeX
    push_formula: str  # LaTeX
    weight_formula: str  # LaTeX of this loss type's w
    token: str  # the token's text (model output: escape before rendering as markup)
    index: int
    factors: list[Factor]
    clipped: bool
    clip_range: tuple[float, float] | None  # [1 - epsilon_low, 1 + epsilon_high], None without a ratio (REINFORCE)
    contribution: float  # the push recomputed from exactly the factors shown
    recorded: float | None  # the push the trainer recorded
    kl_push: float | None  # the KL term's push on this token, when it is in the loss
    substituted: str  # LaTeX: the push formula with the numbers in it
    advantage_source: list[str] = field(default_factory=list)  # plain lines: how the advantage was formed


def _group_rewards(step_samples: pd.DataFrame, prompt_index: int) -> list[float]:
    """Total rewards of one prompt's samples at one step, in sample order."""
    rows = [(int(e.get("sample_index", 0)), float(r.get("total", float("nan"))))
            for e, r in zip(step_samples["extras"], step_samples["rewards"]) if int(e.get("prompt_index", -1)) == prompt_index]
    return [reward for _, reward in sorted(rows)]


def _fmt(value: float) -> str:
    """A number for LaTeX: 4 significant digits, as a power of ten outside [1e-3, 1e4)."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    return rf"{float(mantissa):.4g} \times 10^{{{int(exponent)}}}"


def explain_token(extras: dict, index: int, config: dict, rewards: dict, step_samples: pd.DataFrame | None = None
                  ) -> TokenExplanation:
    """Token `index` of one stored sample (its `extras` and `rewards`) under its run's `config`.

    `step_samples` (the samples of the same step, with `extras` and `rewards` columns) supplies the group's
    rewards for GRPO and RLOO. Raises ValueError when the sample has no recorded push (runs before issue 21).
    """
    push, kl_pushes = read_push(extras)
    if push is None:
        raise ValueError("This sample was stored before the per-token push was recorded: train a new step to see it.")
    tokens = extras.get("tokens") or []
    if not 0 <= index < len(tokens):
        raise ValueError(f"token {index} is outside this completion ({len(tokens)} tokens)")
    algo = get_algorithm(config.get("algorithm", "grpo"))
    loss_type = config.get("loss_type", "dapo")
    eps_low = float(config.get("epsilon", 0.2))
    eps_high = float(config["epsilon_high"]) if config.get("epsilon_high") is not None else eps_low
    weight = float(extras.get("token_weight") or 0.0)
    ratio = float(extras["ratio"][index])
    per_token = extras.get("token_advantages") is not None
    advantage = float(extras["token_advantages"][index] if per_token else extras.get("advantage", 0.0))
    clipped = index in set(extras.get("clipped") or [])
    total = float(rewards.get("total", float("nan")))

    factors = [Factor(r"w_{i,t}", weight, f"the {LOSS_TYPE_LABELS.get(loss_type, loss_type)} aggregation weight of this completion's tokens")]
    uses_ratio = algo.name != "reinforce"
    if uses_ratio:
        factors.append(Factor(r"r_{i,t}", ratio, "pi_new / pi_old on this token, in the update's last epoch"))
    factors.append(Factor(r"A_{i,t}" if per_token else r"A_i", advantage, "the advantage the update used (stored)"))
    source = describe_advantage(algo.name, extras, config, total, advantage, step_samples)
    if clipped:
        contribution = 0.0
    else:
        contribution = weight * advantage * (ratio if uses_ratio else 1.0)
    product = r" \cdot ".join(_fmt(f.value) for f in factors)
    if clipped:
        substituted = (rf"c_{{i,t}} = 0 \quad\text{{(clipped: }} r = {_fmt(ratio)} \notin [{_fmt(1 - eps_low)},\,"
                       rf"{_fmt(1 + eps_high)}] \text{{ in the advantage's direction)}}")
    else:
        substituted = rf"c_{{i,t}} = {product} = {_fmt(contribution)}"
    kl_push = float(kl_pushes[index]) if kl_pushes is not None and index < len(kl_pushes) else None
    return TokenExplanation(
        algorithm=algo.label, loss_formula=algo.loss_formula, advantage_formula=algo.advantage_formula,
        push_formula=algo.push_formula, weight_formula=WEIGHT_FORMULAS.get(loss_type, ""), token=str(tokens[index]),
        index=index, factors=factors, clipped=clipped, clip_range=(1 - eps_low, 1 + eps_high) if uses_ratio else None,
        contribution=contribution,
        recorded=float(push[index]), kl_push=kl_push, substituted=substituted, advantage_source=source,
    )


def describe_advantage(name: str, extras: dict, config: dict, total: float, advantage: float,
                       step_samples: pd.DataFrame | None) -> list[str]:
    """Plain lines saying where this sample's advantage came from, with the numbers."""
    lines = [f"This completion's total reward R = {total:.4g}."]
    group = _group_rewards(step_samples, int(extras.get("prompt_index", 0))) if step_samples is not None else []
    k = int(config.get("num_generations", len(group) or 1))
    if name == "grpo":
        if len(group) == k and k > 1:
            mean = sum(group) / k
            std = math.sqrt(sum((g - mean) ** 2 for g in group) / (k - 1))
            lines.append(f"Its group (the {k} samples of this prompt) has rewards {', '.join(f'{g:.4g}' for g in group)}: "
                         f"mean {mean:.4g}, std {std:.4g}.")
            if config.get("scale_rewards", True):
                lines.append(f"A = (R - mean) / (std + 1e-4) = ({total:.4g} - {mean:.4g}) / ({std:.4g} + 1e-4) "
                             f"= {(total - mean) / (std + 1e-4):.4g}.")
            else:
                lines.append(f"scale_rewards is off: A = R - mean = {total - mean:.4g}.")
        else:
            lines.append("The rest of its group is not among the stored samples (samples_per_step is below the batch).")
    elif name == "rloo":
        if len(group) == k and k > 1:
            others = (sum(group) - total) / (k - 1)
            lines.append(f"The other {k - 1} samples of this prompt have mean reward {others:.4g}: "
                         f"A = R - {others:.4g} = {total - others:.4g}.")
        else:
            lines.append("The rest of its group is not among the stored samples (samples_per_step is below the batch).")
    elif name == "reinforce":
        lines.append(f"The baseline b = R - A = {total - advantage:.4g} (a moving average of earlier steps' mean "
                     f"reward, decay {config.get('baseline_decay', 0.9)}).")
    elif name == "ppo":
        lines.append("Per-token rewards: -beta x KL on every token, plus R on the last one; the value head V_t "
                     "estimates what follows, and GAE sums the TD errors (gamma "
                     f"{config.get('gamma', 1.0)}, lambda {config.get('lam', 0.95)})"
                     + (", then the advantages are whitened over the batch." if config.get("whiten_advantages", True) else "."))
    return lines


def _algorithm_config(config: dict, algorithm: str, loss_type: str) -> SimpleNamespace:
    """The fields the algorithms read (spec.AlgorithmConfig), from a stored run config, with another algorithm."""
    eps = float(config.get("epsilon", 0.2))
    high = config.get("epsilon_high")
    beta = float(config.get("beta", 0.0))
    return SimpleNamespace(
        algorithm=algorithm, loss_type=loss_type, num_generations=int(config.get("num_generations", 1)),
        num_epochs=int(config.get("num_epochs", 1)), beta=beta, kl_estimator=config.get("kl_estimator", "k3"),
        epsilon=eps, clip_high=float(high) if high is not None else eps, scale_rewards=bool(config.get("scale_rewards", True)),
        baseline_decay=float(config.get("baseline_decay", 0.9)), vf_coef=float(config.get("vf_coef", 0.1)),
        cliprange_value=float(config.get("cliprange_value", 0.2)), gamma=float(config.get("gamma", 1.0)),
        lam=float(config.get("lam", 0.95)), whiten_advantages=bool(config.get("whiten_advantages", True)),
        needs_reference=beta > 0,
    )


@dataclass
class StepBatch:
    """A stored step as tensors, in the trainer's row order (prompt-major)."""

    extras: list[dict]
    rewards: torch.Tensor  # (B,) totals
    mask: torch.Tensor  # (B, T)
    ratio: torch.Tensor  # (B, T)
    complete: bool  # every sample of the step's batch is stored


def load_step_batch(step_samples: pd.DataFrame, config: dict) -> StepBatch:
    """The samples of one step as tensors; `complete` says whether the whole batch was stored."""
    rows = sorted(zip(step_samples["extras"], step_samples["rewards"]),
                  key=lambda er: (int(er[0].get("prompt_index", 0)), int(er[0].get("sample_index", 0))))
    lengths = [len(e.get("tokens") or []) for e, _ in rows]
    width = max(lengths + [1])
    mask = torch.zeros(len(rows), width)  # (B, T)
    ratio = torch.ones(len(rows), width)  # (B, T)
    for i, ((extras, _), n) in enumerate(zip(rows, lengths)):
        mask[i, :n] = 1.0
        ratio[i, :n] = torch.tensor([float(r) for r in (extras.get("ratio") or [1.0] * n)][:n])
    rewards = torch.tensor([float(r.get("total", float("nan"))) for _, r in rows])  # (B,)
    batch = int(config.get("prompts_per_step", 0)) * int(config.get("num_generations", 0))
    return StepBatch(extras=[e for e, _ in rows], rewards=rewards, mask=mask, ratio=ratio, complete=len(rows) == batch)


def _stored_advantages(step: StepBatch) -> torch.Tensor:
    """The advantages the update used, as stored: (B,) or (B, T) when they are per token."""
    if all(e.get("token_advantages") is not None for e in step.extras):
        adv = torch.zeros_like(step.mask)
        for i, e in enumerate(step.extras):
            adv[i, :len(e["token_advantages"])] = torch.tensor([float(v) for v in e["token_advantages"]])
        return adv
    return torch.tensor([float(e.get("advantage", 0.0)) for e in step.extras])


def compute_step_pushes(step: StepBatch, config: dict, algorithm: str, loss_type: str,
                        ran: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token push (B, T) and clipped (B, T) of a stored step under `algorithm` and `loss_type`.

    Advantages are recomputed from the stored rewards with the algorithm's own compute_advantages, except
    where they cannot be: PPO's (they need its value head; only a PPO run has them, stored) and, for the
    algorithm that ran (`ran`), REINFORCE's (its baseline depends on earlier steps; the stored ones are used).
    A REINFORCE that did not run starts from this batch's mean, the rule of its first step.
    """
    cfg = _algorithm_config(config, algorithm, loss_type)
    algo = get_algorithm(algorithm)
    if algo.needs_value_head or (ran and algorithm == "reinforce"):
        advantages = _stored_advantages(step)
    else:
        advantages = algo.compute_advantages(cfg, AdvantageInputs(step.rewards, step.mask), algo.init_state()).advantages
    weights = compute_token_weights(step.mask, loss_type, int(config.get("max_new_tokens", step.mask.shape[1])))
    mb = LossInputs(logp=torch.zeros_like(step.mask), old_logp=torch.zeros_like(step.mask), advantages=advantages,
                    weights=weights, mask=step.mask)
    push, clipped = algo.compute_push(cfg, mb, step.ratio)
    return push * step.mask, clipped & step.mask.bool()


def list_comparable(config: dict, step: StepBatch) -> list[tuple[str, str]]:
    """(algorithm, loss type) pairs a stored step can be recomputed under: PPO only when the run had a value head,
    GRPO and RLOO only when whole groups are stored."""
    has_values = all(e.get("token_advantages") is not None for e in step.extras)
    k = int(config.get("num_generations", 1))
    pairs = []
    for name, algo in REGISTRY.items():
        if algo.needs_value_head and not has_values:
            continue
        if algo.needs_groups and (k < 2 or len(step.extras) % k):
            continue
        pairs += [(name, lt) for lt in LOSS_TYPES]
    return pairs


def compare_sequence_weights(step: StepBatch, config: dict) -> pd.DataFrame:
    """How much each completion weighs in the loss under each aggregation: per token (w) and in total (sum of w).

    grpo gives every completion the same total weight 1/B, so a long completion's tokens each weigh less;
    dapo gives every token the same weight, so a long completion weighs more in total; dr_grpo is dapo's
    rule with a constant denominator (B x max_new_tokens), the same for every batch.
    """
    max_new = int(config.get("max_new_tokens", step.mask.shape[1]))
    lengths = step.mask.sum(1)
    frame = pd.DataFrame({"sample": [f"p{e.get('prompt_index', 0)}·s{e.get('sample_index', 0)}" for e in step.extras],
                          "tokens": lengths.long().tolist(), "advantage": _stored_advantages(step).float().reshape(len(step.extras), -1)[:, 0].tolist()})
    for loss_type in LOSS_TYPES:
        w = compute_token_weights(step.mask, loss_type, max_new)  # (B, T)
        frame[f"{loss_type}: w per token"] = w[:, 0].tolist()
        frame[f"{loss_type}: sum of w"] = w.sum(1).tolist()
    return frame


def list_push_rows(push: torch.Tensor, step: StepBatch) -> list[list[float]]:
    """A push matrix as one list per completion, cut to its length (for render_token_html)."""
    return [push[i, :len(e.get("tokens") or [])].tolist() for i, e in enumerate(step.extras)]


def max_abs(rows: Sequence[Sequence[float]]) -> float:
    """The largest |value| over rows (a shared colour scale), at least a tiny positive number."""
    best = max((abs(v) for row in rows for v in row if v is not None and math.isfinite(v)), default=0.0)
    return best if best > 0 else 1e-12


def push_values(extras: dict) -> tuple[list[float] | None, str]:
    """The stored push per token for the token view, and a note."""
    push, _ = read_push(extras)
    if push is None:
        return None, "This sample was stored before the per-token push was recorded (train a new step to see it)."
    clipped = len(extras.get("clipped") or [])
    note = f"{clipped} token(s) clipped." if clipped else "No token was clipped."
    return push, note
