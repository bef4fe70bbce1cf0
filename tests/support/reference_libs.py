"""Harnesses that run the reference libraries' own code on inputs we choose (tests/unit/test_reference_math.py).

* TRL's GRPOTrainer._compute_loss is a method of a 3,000-line trainer; `call_trl_grpo_loss` calls the
  unbound method on a small stand-in object that holds only the attributes it reads, and whose
  `_get_per_token_logps_and_entropies` returns fixed log-probs instead of running a model.
* TRL computes advantages inline inside GRPOTrainer._generate_and_score_completions and
  RLOOTrainer._generate_and_score_completions, between generation and logging. `run_source_block`
  cuts the exact lines out of the installed method's source (between two marker lines) and runs
  them on our rewards: the code that runs is TRL's own text, so a change in TRL shows up here.
* SB3's GAE is a public method (RolloutBuffer.compute_returns_and_advantage), called as is.
  SB3's PPO losses live in PPO.train; `run_sb3_ppo_train` runs that method on a filled rollout
  buffer with a stand-in policy whose new log-probs, values and entropies are parameters we set,
  and returns what SB3 logged and the gradients it produced.

Everything runs in float64: the harnesses replace SB3's float32 buffers by float64 arrays.
"""

from __future__ import annotations

import inspect
import textwrap
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

# ----------------------------------------------------------------------------- running a method's lines


def run_source_block(method: Callable, first: str, last: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute the lines of `method`'s source from the line starting with `first` to the one starting with `last`.

    Lines are matched after stripping indentation; both markers must occur exactly once, so a
    reshuffled TRL fails loudly here instead of running something else. Returns the namespace after the run.
    """
    lines = inspect.getsource(method).splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(first)]
    ends = [i for i, line in enumerate(lines) if line.strip().startswith(last)]
    assert len(starts) == 1 and len(ends) == 1, (
        f"{method.__qualname__}: expected one line starting with {first!r} and one with {last!r}, found "
        f"{len(starts)} and {len(ends)}; the reference library changed, update the markers")
    block = textwrap.dedent("\n".join(lines[starts[0]: ends[0] + 1]))
    exec(compile(block, f"<{method.__qualname__} lines {starts[0]}-{ends[0]}>", "exec"), namespace)
    return namespace


def compute_trl_grpo_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str) -> torch.Tensor:
    """TRL GRPOTrainer's advantages for one reward function (weight 1), by its own lines ('group' or 'none')."""
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.utils import nanstd

    rewards_per_func = rewards.unsqueeze(1)  # (B, 1): one reward function
    trainer = SimpleNamespace(multi_objective_aggregation="sum_then_normalize", scale_rewards=scale_rewards,
                              reward_weights=torch.ones(1, dtype=rewards.dtype))
    out = run_source_block(
        GRPOTrainer._generate_and_score_completions,
        'if self.multi_objective_aggregation == "sum_then_normalize":',
        "advantages = torch.nan_to_num(advantages, nan=0.0)",
        {"self": trainer, "torch": torch, "nanstd": nanstd, "rewards_per_func": rewards_per_func,
         "unscorable_mask": torch.isnan(rewards_per_func).all(dim=1), "num_generations": num_generations,
         "device": rewards.device},
    )
    return out["advantages"]


def compute_trl_rloo_advantages(rewards: torch.Tensor, num_generations: int, normalize: bool = False) -> torch.Tensor:
    """TRL RLOOTrainer's leave-one-out advantages (beta = 0, no reward clipping), by its own lines."""
    from trl.trainer.rloo_trainer import RLOOTrainer
    from trl.trainer.utils import nanstd

    out = run_source_block(
        RLOOTrainer._generate_and_score_completions,
        "grouped_rewards = rewards.view(-1, num_generations)",
        "advantages = torch.nan_to_num(advantages, nan=0.0)",
        {"self": SimpleNamespace(normalize_advantages=normalize), "torch": torch, "nanstd": nanstd,
         "rewards": rewards.clone(), "num_generations": num_generations},
    )
    return out["advantages"]


# ----------------------------------------------------------------------------- TRL's GRPO loss


class _SingleProcess:
    """What GRPOTrainer._compute_loss asks of its Accelerator, for one process."""

    num_processes = 1

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def reduce(self, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return x

    gather_for_metrics = gather


def call_trl_grpo_loss(loss_type: str, logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                       mask: torch.Tensor, *, beta: float = 0.0, ref_logp: torch.Tensor | None = None,
                       epsilon_low: float = 0.2, epsilon_high: float = 0.2, max_completion_length: int | None = None,
                       ) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """GRPOTrainer._compute_loss on fixed per-token log-probs; returns (loss, TRL's logged metrics).

    One process, no gradient accumulation, one optimiser step per generation batch, token-level
    importance sampling, no entropy bonus, no vLLM, no off-policy mask: TRL's defaults.
    `logp` (B, T) should require grad, so the gradient of TRL's loss can be compared too.
    """
    from trl.trainer.grpo_trainer import GRPOTrainer

    batch, width = mask.shape
    metrics: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    trainer = SimpleNamespace(
        loss_type=loss_type, beta=beta, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
        max_completion_length=max_completion_length or width, top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, importance_sampling_level="token", use_vllm=False,
        vllm_importance_sampling_correction=False, aux_loss_enabled=False, _entropy_bonus_enabled=False,
        current_gradient_accumulation_steps=1, model=SimpleNamespace(training=True), accelerator=_SingleProcess(),
        args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1), _metrics=metrics,
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logp, torch.zeros_like(logp), None),
    )
    inputs = {
        "prompt_ids": torch.zeros(batch, 1, dtype=torch.long), "prompt_mask": torch.ones(batch, 1, dtype=torch.long),
        "completion_ids": torch.zeros(batch, width, dtype=torch.long), "completion_mask": mask,
        "advantages": advantages, "old_per_token_logps": old_logp, "num_items_in_batch": mask.sum(),
    }
    if ref_logp is not None:
        inputs["ref_per_token_logps"] = ref_logp
    loss = GRPOTrainer._compute_loss(trainer, None, inputs)
    return loss, {k: list(v) for k, v in metrics["train"].items()}


# ----------------------------------------------------------------------------- SB3


def _make_discrete_env(n_actions: int) -> Any:
    import gymnasium as gym

    class IndexEnv(gym.Env):
        """An environment that only carries spaces: actions are row indices into the fixed tensors."""

        observation_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float64)
        action_space = gym.spaces.Discrete(n_actions)

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
            return np.zeros(1), {}

        def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
            return np.zeros(1), 0.0, True, False, {}

    return IndexEnv()


def compute_sb3_gae(rewards: np.ndarray, values: np.ndarray, episode_starts: np.ndarray, last_values: np.ndarray,
                    dones: np.ndarray, gamma: float, gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """SB3's RolloutBuffer.compute_returns_and_advantage on (T, N) float64 arrays; returns (advantages, returns).

    SB3's conventions: episode_starts[t] is 1 when observation t began a new episode; `dones` (N,)
    says whether the step after the rollout's last one is a new episode (no bootstrap).
    """
    from stable_baselines3.common.buffers import RolloutBuffer

    n_steps, n_envs = rewards.shape
    env = _make_discrete_env(2)
    buffer = RolloutBuffer(n_steps, env.observation_space, env.action_space, device="cpu", gae_lambda=gae_lambda,
                           gamma=gamma, n_envs=n_envs)
    buffer.rewards = np.array(rewards, dtype=np.float64)
    buffer.values = np.array(values, dtype=np.float64)
    buffer.episode_starts = np.array(episode_starts, dtype=np.float64)
    buffer.advantages = np.zeros((n_steps, n_envs), dtype=np.float64)
    buffer.compute_returns_and_advantage(torch.as_tensor(last_values, dtype=torch.float64), np.asarray(dones))
    return buffer.advantages, buffer.returns


class _FixedPolicy(nn.Module):
    """Stands in for SB3's ActorCriticPolicy: row i's new log-prob, value and entropy are parameters."""

    def __init__(self, logp: torch.Tensor, values: torch.Tensor, entropy: torch.Tensor) -> None:
        super().__init__()
        self.logp = nn.Parameter(logp.clone())
        self.values = nn.Parameter(values.clone())
        self.entropy = nn.Parameter(entropy.clone())
        self.optimizer = torch.optim.SGD(self.parameters(), lr=0.0)

    def set_training_mode(self, mode: bool) -> None:
        """Nothing to switch."""

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(values, log-probs, entropies) of the rows named by `actions`."""
        return self.values[actions], self.logp[actions], self.entropy[actions]


def run_sb3_ppo_train(old_logp: torch.Tensor, new_logp: torch.Tensor, advantages: torch.Tensor,
                      returns: torch.Tensor, old_values: torch.Tensor, values: torch.Tensor, entropy: torch.Tensor,
                      *, clip_range: float, ent_coef: float, vf_coef: float, normalize_advantage: bool,
                      clip_range_vf: float | None = None) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """SB3's PPO.train, one epoch over N transitions as one minibatch; returns (its logged values, gradients).

    All inputs are (N,) float64. The gradients are those of SB3's `loss` with respect to the new
    log-probs, values and entropies (gradient clipping is off: max_grad_norm is infinite).
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    n = len(old_logp)
    env = _make_discrete_env(n)
    model = PPO("MlpPolicy", env, n_steps=n, batch_size=n, n_epochs=1, clip_range=clip_range, clip_range_vf=clip_range_vf,
                ent_coef=ent_coef, vf_coef=vf_coef, normalize_advantage=normalize_advantage,
                max_grad_norm=float("inf"), device="cpu", seed=0)
    model.set_logger(configure(None, []))
    model.policy = _FixedPolicy(new_logp.detach().double(), values.detach().double(), entropy.detach().double())
    buffer = model.rollout_buffer
    column = lambda t: t.detach().double().numpy().reshape(n, 1)  # noqa: E731  (N, 1): N steps of one env
    buffer.observations = np.zeros((n, 1, 1))
    buffer.actions = np.arange(n, dtype=np.float64).reshape(n, 1, 1)
    buffer.log_probs, buffer.advantages, buffer.returns = column(old_logp), column(advantages), column(returns)
    buffer.values = column(old_values)
    buffer.rewards, buffer.episode_starts = np.zeros((n, 1)), np.zeros((n, 1))
    buffer.full, buffer.pos, buffer.generator_ready = True, n, False
    model.train()
    logged = {k: float(v) for k, v in model.logger.name_to_value.items()}
    policy = model.policy
    grads = {"logp": policy.logp.grad.clone(), "values": policy.values.grad.clone(), "entropy": policy.entropy.grad.clone()}
    return logged, grads
