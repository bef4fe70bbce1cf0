"""What every LM RL algorithm declares: one `Algorithm` per module, read by the trainer and the UI.

The trainer (llmrl_core/lm_rl/trainer.py, update.py) runs the same loop for every algorithm: sample,
score, advantages, update. It asks the algorithm only for what differs between them:

  * its needs: samples grouped per prompt (`needs_groups`), a value head (`needs_value_head`);
    the reference model is needed by every algorithm alike whenever beta > 0 (cfg.needs_reference);
  * `validate(cfg)`: the config problems specific to it, raised as InputError;
  * `init_state()`: what it carries from step to step (kept in checkpoints), e.g. REINFORCE's baseline;
  * `compute_advantages(cfg, batch, state)`: advantages (and value targets) for the scored batch;
  * `compute_loss(cfg, mb)`: the loss of one micro-batch, from log-probs the trainer computed;
  * `metric_keys`: the metrics it logs on top of the common ones; `label`/`description` for the UI;
  * `settings`: the config fields only it reads (the form shows them when it is picked);
  * `compute_push(cfg, mb, ratio)`: what the update does to each token, -dL/d(log pi_t) of the policy
    term (the KL term apart, common.compute_kl_push), and where the ratio was clipped; `kl_in_loss` says
    whether beta * KL is a term of its loss (PPO folds it into the rewards instead);
  * `loss_formula`, `advantage_formula`, `push_formula`: its math in LaTeX, for the step inspector.

The dataclasses below are the plain tensors passed across that line; shapes use B for
sequences (prompts x samples) and T for completion positions, b for a micro-batch's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch


class AlgorithmConfig(Protocol):
    """The RLConfig fields the algorithms read. RLConfig has them all; the algorithms name this protocol
    instead of RLConfig, because the config imports the algorithms (to check its own `algorithm`)."""

    algorithm: str  # the algorithm's name
    num_generations: int  # samples per prompt
    num_epochs: int  # optimisation passes over one batch
    beta: float  # KL coefficient (0: no reference model)
    kl_estimator: str  # 'k1', 'k2' or 'k3'
    epsilon: float  # lower clip of the ratio
    scale_rewards: bool  # GRPO: divide by the group's std
    baseline_decay: float  # REINFORCE: moving-average decay of the baseline
    vf_coef: float  # PPO: weight of the value loss
    cliprange_value: float  # PPO: clip of the value update
    gamma: float  # PPO: discount
    lam: float  # PPO: GAE lambda
    whiten_advantages: bool  # PPO: normalise advantages over the batch

    @property
    def clip_high(self) -> float: ...  # upper clip of the ratio (epsilon_high, else epsilon)

    @property
    def needs_reference(self) -> bool: ...  # a reference model is needed (beta > 0)


@dataclass
class AdvantageInputs:
    """A scored batch, as the trainer hands it to `compute_advantages`."""

    rewards: torch.Tensor  # (B,) total reward per completion, prompt-major (prompt 0's samples first)
    mask: torch.Tensor  # (B, T) 1.0 on completion tokens up to and including EOS
    old_logp: torch.Tensor | None = None  # (B, T) log-probs before the update (several epochs or a value head)
    ref_logp: torch.Tensor | None = None  # (B, T) reference log-probs, only when beta > 0
    old_values: torch.Tensor | None = None  # (B, T) the value head before the update, only with a value head


@dataclass
class Advantages:
    """What `compute_advantages` returns."""

    advantages: torch.Tensor  # (B,) one per completion, or (B, T) one per token
    returns: torch.Tensor | None = None  # (B, T) value-head targets, only with a value head
    metrics: dict[str, float] = field(default_factory=dict)  # this step's extra metrics (its `metric_keys`)


@dataclass
class LossInputs:
    """One micro-batch of b rows, as the trainer hands it to `compute_loss`."""

    logp: torch.Tensor  # (b, T) log-probs of the sampled tokens, with gradient
    old_logp: torch.Tensor  # (b, T) the same before the update, detached (equal to logp on a single epoch)
    advantages: torch.Tensor  # (b,) or (b, T)
    weights: torch.Tensor  # (b, T) this micro-batch's share of the batch loss (compute_token_weights)
    kl: torch.Tensor | None = None  # (b, T) KL(policy || reference) per token, only when beta > 0
    mask: torch.Tensor | None = None  # (b, T) completion mask
    values: torch.Tensor | None = None  # (b, T) the value head now, with gradient, only with a value head
    old_values: torch.Tensor | None = None  # (b, T) the value head before the update
    returns: torch.Tensor | None = None  # (b, T) value targets
    value_weights: torch.Tensor | None = None  # (b, T) this micro-batch's share of the value loss (token mean)


@dataclass
class Loss:
    """What `compute_loss` returns for one micro-batch."""

    loss: torch.Tensor  # () what the trainer backpropagates
    policy_loss: torch.Tensor  # () the policy part of it (logged as loss/policy)
    ratio: torch.Tensor  # (b, T) pi / pi_old per token, detached (1 on a single epoch)
    value_loss: torch.Tensor | None = None  # () the value part before vf_coef, only with a value head
    value_clipfrac: float = 0.0  # fraction of tokens whose value update was clipped


def compute_no_clip_push(cfg: AlgorithmConfig, mb: LossInputs, ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The push of a loss -A * log pi_t per token (no ratio, no clip): w_t * A, nothing clipped."""
    advantages = mb.advantages if mb.advantages.dim() == 2 else mb.advantages.unsqueeze(1)  # (b, T) or (b, 1)
    push = mb.weights * advantages  # (b, T)
    return push, torch.zeros_like(push, dtype=torch.bool)


def make_no_state() -> dict[str, Any]:
    """The state of an algorithm that carries nothing between steps."""
    return {}


def accept_any_config(cfg: AlgorithmConfig) -> None:
    """The check of an algorithm that runs with any valid RLConfig."""


@dataclass(frozen=True)
class Algorithm:
    """One RL algorithm for language models: its needs, its config checks, its advantages and loss.

    The defaults describe the simplest case (no groups, no value head, no state, no extra metrics).
    """

    name: str  # the config value (cfg.algorithm)
    label: str  # short name for the UI, e.g. 'GRPO'
    description: str  # one line for the UI: what it does and what it needs
    paper: str  # reference for the math
    compute_advantages: Callable[[AlgorithmConfig, AdvantageInputs, dict[str, Any]], Advantages]
    compute_loss: Callable[[AlgorithmConfig, LossInputs], Loss]
    validate: Callable[[AlgorithmConfig], None] = accept_any_config  # raise InputError for a config it cannot run
    needs_groups: bool = False  # compares the samples of one prompt: num_generations must be 2 or more
    needs_value_head: bool = False  # trains a value head next to the policy (and needs old values)
    metric_keys: frozenset[str] = frozenset()  # metrics logged on top of the common ones
    init_state: Callable[[], dict[str, Any]] = make_no_state  # state carried between steps; saved in checkpoints
    settings: tuple[str, ...] = ()  # the RLConfig fields only it reads: the form shows them when it is picked
    # -dL/d(log pi_t) of its policy term (b, T) and the clipped tokens (b, T), from a micro-batch and its ratio
    compute_push: Callable[[AlgorithmConfig, LossInputs, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = compute_no_clip_push
    kl_in_loss: bool = True  # beta * KL per token is a term of the loss (False: it is in the rewards, as in PPO)
    loss_formula: str = ""  # LaTeX: the loss of one step
    advantage_formula: str = ""  # LaTeX: where the advantage comes from
    push_formula: str = ""  # LaTeX: -dL/d(log pi_t), the push on one token
