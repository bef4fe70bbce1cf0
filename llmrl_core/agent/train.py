"""Training the language-model agent on episode returns: PPO with a value head (GLAM) and REINFORCE.

`AgentTrainer` owns the environments, the policy (the model, with LoRA adapters by default, and
a value head) and the optimiser. One iteration, CleanRL style:

1. `collect_rollout`: n_steps steps in each of n_envs environments; at every step the states
   of all environments go through the model in one batched forward over the cached instruction
   prefix, an action is sampled from the TWOSOME distribution, and the environments step.
2. `update`: advantages by GAE (arXiv 1506.02438) with the episode ends inside the rollout;
   PPO (arXiv 1707.06347) takes n_epochs passes of clipped-ratio minibatch steps; REINFORCE
   (Williams 1992) one gradient step on (Monte Carlo return - value) * log pi over the whole rollout.
   The value head learns returns normalised by their running mean and std (`ReturnNormaliser`), and the
   adapters' and the value head's gradients are clipped each on their own: one joint clip let the
   value head's gradient shrink the adapters' below AdamW's eps (issue 17).

`evaluate` plays whole episodes in lockstep (greedy by default) and records the first one, with
the model's action probabilities at each step, for the episode player.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from llmrl_core.agent.config import AgentConfig
from llmrl_core.agent.policy import TextPolicy, check_state_fits
from llmrl_core.agent.text_env import get_adapter, make_env, make_example_observation, make_probe_states, render_state
from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.algorithms.common import compute_clipped_surrogate
from llmrl_core.lm_rl.algorithms.reinforce import compute_reinforce_loss

PLAYER_FPS = {"CartPole-v1": 50, "FrozenLake-v1": 4}
"""Replay speed of a recorded episode (CartPole's real time; FrozenLake slow enough to follow)."""


# ----------------------------------------------------------------------------- pure math


def compute_env_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
                    gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over a rollout of vectorised environments (arXiv 1506.02438, eq. 16), CleanRL's recursion.

    rewards, values, dones: (T, N); dones[t] is 1 when the episode ended with step t (the value
    after it is then 0 and the recursion restarts); next_value: (N,) value of the state after the
    rollout. Returns (advantages (T, N), returns = advantages + values (T, N)).
    """
    n_steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)  # (T, N)
    last = torch.zeros_like(next_value)  # (N,)
    for t in reversed(range(n_steps)):
        following = next_value if t == n_steps - 1 else values[t + 1]  # (N,)
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * alive - values[t]
        last = delta + gamma * lam * alive * last
        advantages[t] = last
    return advantages, advantages + values


@dataclass
class PPOLoss:
    """One minibatch's PPO loss and its parts (CleanRL's names)."""

    loss: torch.Tensor  # () what is backpropagated
    policy_loss: torch.Tensor  # () clipped surrogate, negated
    value_loss: torch.Tensor  # () 0.5 * mean squared error of the value
    entropy: torch.Tensor  # () mean entropy of the action distribution
    approx_kl: float  # mean of (ratio - 1) - log ratio (Schulman's k3), before the step
    clipfrac: float  # fraction of transitions whose ratio left [1 - clip, 1 + clip]


def compute_ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor,
                     returns: torch.Tensor, entropy: torch.Tensor, clip_range: float, ent_coef: float,
                     vf_coef: float) -> PPOLoss:
    """PPO's minibatch loss (arXiv 1707.06347) as CleanRL's ppo.py and SB3's PPO.train compute it; all inputs (M,).

    Advantages are normalised per minibatch (unbiased std + 1e-8, as both do); the value loss is
    CleanRL's 0.5 * squared error without value clipping (SB3 has no 0.5: its vf_coef c equals our 2c).
    tests/unit/test_reference_math.py checks this against SB3's PPO.train on the same numbers.
    """
    if len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    per_step, ratio = compute_clipped_surrogate(new_logp.unsqueeze(1), old_logp.unsqueeze(1), advantages,
                                                clip_range, clip_range)  # (M, 1) each
    policy_loss = per_step.mean()
    value_loss = 0.5 * ((values - returns) ** 2).mean()
    entropy = entropy.mean()
    with torch.no_grad():
        log_ratio = new_logp - old_logp
        approx_kl = float(((log_ratio.exp() - 1) - log_ratio).mean())
        clipfrac = float(((ratio - 1.0).abs() > clip_range).float().mean())
    loss = policy_loss - ent_coef * entropy + vf_coef * value_loss
    return PPOLoss(loss, policy_loss, value_loss, entropy, approx_kl, clipfrac)


@dataclass
class ReturnNormaliser:
    """Running mean and variance of the value targets; the value head learns returns in these units.

    CartPole's returns reach tens to a hundred: regressed raw, the value loss is in the hundreds and
    its gradient dwarfs the adapters' (issue 17). Normalised, targets stay near unit scale whatever
    the environment's reward scale. The update is Chan et al.'s parallel formula, as SB3's RunningMeanStd.
    """

    enabled: bool = True
    mean: float = 0.0
    var: float = 1.0
    count: float = 1e-4

    def update(self, x: torch.Tensor) -> None:
        """Fold a batch of returns into the running moments."""
        if not self.enabled or x.numel() == 0:
            return
        batch_mean, batch_var, n = float(x.mean()), float(x.var(unbiased=False)), float(x.numel())
        delta, total = batch_mean - self.mean, self.count + n
        m2 = self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    @property
    def std(self) -> float:
        """The running standard deviation (1 when disabled)."""
        return math.sqrt(self.var + 1e-8) if self.enabled else 1.0

    def normalise(self, returns: torch.Tensor) -> torch.Tensor:
        """Returns in the value head's units."""
        return (returns - self.mean) / self.std if self.enabled else returns

    def denormalise(self, values: torch.Tensor) -> torch.Tensor:
        """The value head's output in returns."""
        return values * self.std + self.mean if self.enabled else values

    def to_dict(self) -> dict[str, float]:
        """The moments, for saving next to the value head."""
        return {"enabled": self.enabled, "mean": self.mean, "var": self.var, "count": self.count}


def compute_return_difference(before: Sequence[float], after: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean(after) - mean(before) with a Welch t confidence interval (unequal variances)."""
    a, b = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    diff = float(a.mean() - b.mean())
    var = (a.var(ddof=1) / len(a) if len(a) > 1 else 0.0) + (b.var(ddof=1) / len(b) if len(b) > 1 else 0.0)
    if var <= 0:
        return {"diff": diff, "ci_low": diff, "ci_high": diff}
    num = var ** 2
    den = sum((x.var(ddof=1) / len(x)) ** 2 / (len(x) - 1) for x in (a, b) if len(x) > 1)
    dof = num / den if den > 0 else 1.0
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * math.sqrt(var)
    return {"diff": diff, "ci_low": diff - half, "ci_high": diff + half}


def compute_rollout_diagnostics(actions: torch.Tensor, entropy: torch.Tensor | None) -> dict[str, float]:
    """How much exploration a rollout had (issue 17, 1d): its mean policy entropy and its minority actions.

    actions: (T, N) sampled action indices; entropy: (T, N) in nats, or None. `diag/minority_actions`
    counts the samples that differ from the rollout's most frequent action: when it nears 0, few
    samples carry a learning signal, whatever the advantages say.
    """
    counts = torch.bincount(actions.reshape(-1))
    out = {"diag/minority_actions": float(actions.numel() - int(counts.max()))}
    if entropy is not None:
        out["diag/entropy"] = float(entropy.mean())
    return out


# ----------------------------------------------------------------------------- data


@dataclass
class RecordedEpisode:
    """One episode for the player: the Episode fields of llmrl_core/gym/episodes.py plus the action probabilities."""

    env_id: str
    policy: str
    train_step: int
    action_names: list[str]
    fps: int
    states: list[list[float]] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    action_probs: list[list[float]] = field(default_factory=list)
    terminated: bool = False

    def add(self, obs: Any, action: int, reward: float, probs: Sequence[float]) -> None:
        """Append one step."""
        self.states.append([round(float(x), 4) for x in np.asarray(obs, dtype=float).reshape(-1)])
        self.actions.append(int(action))
        self.rewards.append(round(float(reward), 4))
        self.action_probs.append([round(float(p), 4) for p in probs])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, readable by llmrl_core.gym.episodes.Episode.from_dict (extra keys are ignored there)."""
        return {"env_id": self.env_id, "policy": self.policy, "train_step": self.train_step, "states": self.states,
                "actions": self.actions, "rewards": self.rewards, "fps": self.fps, "action_names": self.action_names,
                "terminated": self.terminated, "action_probs": self.action_probs,
                "return": float(sum(self.rewards)), "length": len(self.actions)}


@dataclass
class Rollout:
    """n_steps x n_envs transitions; `b_` lists are flattened step-major (index t * N + n)."""

    b_state_ids: list[list[int]]
    actions: torch.Tensor  # (T, N)
    logp: torch.Tensor  # (T, N) log pi(action) when sampled
    values: torch.Tensor  # (T, N)
    rewards: torch.Tensor  # (T, N)
    dones: torch.Tensor  # (T, N)
    next_value: torch.Tensor  # (N,)
    seconds: float
    entropy: torch.Tensor | None = None  # (T, N) entropy of the action distribution each action was sampled from


# ----------------------------------------------------------------------------- the trainer


def make_trainable(model: Any, config: AgentConfig) -> Any:
    """The model to train: wrapped with LoRA adapters (peft), or itself for full fine-tuning."""
    if not config.use_lora:
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    targets = config.lora_target_modules
    extra: dict[str, Any] = {}
    if config.lora_last_layers:
        n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
        if not n_layers:
            raise InputError("lora_last_layers needs a model that reports num_hidden_layers; set it to 0 for every block.")
        # N at least the model's depth means every block: the default (4) must fit small models too.
        extra["layers_to_transform"] = list(range(max(0, n_layers - config.lora_last_layers), n_layers))
        if targets == ["all-linear"]:  # peft takes a layer range only with named modules: name every linear layer
            targets = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                              if isinstance(module, torch.nn.Linear) and ".layers." in f".{name}"})
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear" if targets == ["all-linear"] else list(targets), task_type="CAUSAL_LM",
                      **extra)
    try:
        return get_peft_model(model, lora)
    except ValueError as err:
        raise InputError(f"LoRA could not be applied: {err}. Check lora_target_modules against the model's layer names.") from err


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class AgentTrainer:
    """The language-model agent and its training state; see the module docstring."""

    def __init__(self, config: AgentConfig, loaded: Any, log: Callable[[str], None] = lambda message: None) -> None:
        self.config = config
        self.adapter = get_adapter(config.env_id)
        self.log = log
        seed_everything(config.seed)
        self.context_length = int(loaded.context_length)
        self.device = loaded.device
        model = make_trainable(loaded.model, config)
        model.eval()  # no dropout in rollouts; LoRA dropout is 0 by default
        self.policy = TextPolicy(model, loaded.tokenizer, config.instruction, config.action_words,
                                 config.normalisation, loaded.device)
        self.policy.check_tokenised(render_state(self.adapter, config.state_template, make_example_observation(self.adapter)),
                                    self.context_length)
        trainable = [p for p in model.parameters() if p.requires_grad]
        # Two groups, clipped apart in _step: the value head's gradient must never scale the adapters' down.
        self.optimizer = torch.optim.AdamW([
            {"params": trainable, "lr": config.learning_rate, "name": "policy"},
            {"params": list(self.policy.value_head.parameters()), "lr": config.value_learning_rate, "name": "value"},
        ], eps=config.adam_eps)
        self.returns = ReturnNormaliser(enabled=config.normalize_values)
        self.n_trainable = sum(p.numel() for p in trainable)
        self.rng = np.random.default_rng(config.seed)
        self.envs = [make_env(config.env_id, config.seed + i) for i in range(config.n_envs)]
        self.obs = [env.reset(seed=config.seed + i)[0] for i, env in enumerate(self.envs)]
        self.ep_return = np.zeros(config.n_envs)
        self.ep_length = np.zeros(config.n_envs, dtype=int)
        self.finished_returns: deque[float] = deque(maxlen=100)
        self.finished_lengths: deque[int] = deque(maxlen=100)
        self.episodes = 0
        self.steps = 0
        self.new_returns: list[float] = []
        self.recording = self._new_recording("lm")
        self.last_episode: RecordedEpisode | None = None
        self.probes = make_probe_states(config.env_id)

    # ------------------------------------------------------------------ acting

    def render_states(self, observations: Sequence[Any]) -> list[str]:
        """The state text of each observation."""
        return [render_state(self.adapter, self.config.state_template, o) for o in observations]

    @torch.no_grad()
    def act(self, observations: Sequence[Any], greedy: bool = False) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor, list[list[int]]]:
        """One batched forward: (actions (B,), logp of them (B,), values (B,), probs (B, A), state token ids)."""
        state_ids = self.policy.encode_states(self.render_states(observations))
        check_state_fits(self.policy, state_ids, self.context_length)
        out = self.policy.forward_states(state_ids)
        probs = out.logp.exp()  # (B, A)
        if greedy:
            actions = probs.argmax(-1)
        else:
            actions = torch.multinomial(probs, 1).squeeze(-1)  # (B,)
        chosen = out.logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B,)
        values = self.returns.denormalise(out.value)  # (B,) in returns
        return actions.cpu().numpy(), chosen.cpu(), values.cpu(), probs.cpu(), state_ids

    @torch.no_grad()
    def measure_probes(self) -> float | None:
        """Mean probability of the good action over the environment's probe states (CartPole: push toward the
        lean); None for an environment without probes. No sampling, so the training's random stream is untouched."""
        if self.probes is None:
            return None
        observations, good = self.probes
        _, _, _, probs, _ = self.act(observations, greedy=True)  # probs: (P, A)
        return float(probs[torch.arange(len(good)), torch.tensor(good)].mean())

    def _new_recording(self, policy: str) -> RecordedEpisode:
        return RecordedEpisode(self.config.env_id, policy, self.steps, list(self.config.action_words),
                               PLAYER_FPS.get(self.config.env_id, 30))

    def collect_rollout(self, should_stop: Callable[[], bool] | None = None) -> Rollout | None:
        """Step every environment n_steps times with the sampling policy; record env 0's episodes.

        Returns None when `should_stop` fires mid-rollout (a Stop takes effect within one step, not one rollout).
        """
        cfg, n = self.config, self.config.n_envs
        t0 = time.perf_counter()
        actions = torch.zeros(cfg.n_steps, n, dtype=torch.long)
        logps, values, entropy = torch.zeros(cfg.n_steps, n), torch.zeros(cfg.n_steps, n), torch.zeros(cfg.n_steps, n)
        rewards, dones = torch.zeros(cfg.n_steps, n), torch.zeros(cfg.n_steps, n)
        b_state_ids: list[list[int]] = []
        for t in range(cfg.n_steps):
            if should_stop is not None and should_stop():
                return None
            act, logp, value, probs, state_ids = self.act(self.obs)
            b_state_ids.extend(state_ids)
            actions[t], logps[t], values[t] = torch.as_tensor(act), logp, value
            entropy[t] = -(probs * probs.clamp(min=1e-30).log()).sum(-1)  # (N,)
            for i, env in enumerate(self.envs):
                obs, reward, terminated, truncated, _ = env.step(int(act[i]))
                rewards[t, i] = float(reward)
                self.ep_return[i] += reward
                self.ep_length[i] += 1
                if i == 0:
                    self.recording.add(self.obs[0], int(act[0]), reward, probs[0].tolist())
                if terminated or truncated:
                    dones[t, i] = 1.0
                    self._finish_episode(i, bool(terminated))
                    obs, _ = env.reset()
                self.obs[i] = obs
            self.steps += n
        _, _, next_value, _, _ = self.act(self.obs)
        return Rollout(b_state_ids, actions, logps, values, rewards, dones, next_value, time.perf_counter() - t0, entropy)

    def _finish_episode(self, i: int, terminated: bool) -> None:
        self.finished_returns.append(float(self.ep_return[i]))
        self.finished_lengths.append(int(self.ep_length[i]))
        self.new_returns.append(float(self.ep_return[i]))
        self.episodes += 1
        self.ep_return[i], self.ep_length[i] = 0.0, 0
        if i == 0:
            self.recording.terminated = terminated
            self.last_episode = self.recording
            self.recording = self._new_recording("lm")

    # ------------------------------------------------------------------ learning

    def update(self, rollout: Rollout) -> dict[str, float]:
        """One PPO or REINFORCE update from `rollout`; returns the losses and diagnostics (CleanRL names)."""
        cfg = self.config
        lam = cfg.gae_lambda if cfg.algo == "ppo" else 1.0
        advantages, returns = compute_env_gae(rollout.rewards, rollout.values, rollout.dones, rollout.next_value,
                                              cfg.gamma, lam)
        b_actions, b_logp = rollout.actions.reshape(-1), rollout.logp.reshape(-1)  # (T * N,)
        b_adv, b_returns = advantages.reshape(-1), returns.reshape(-1)
        self.returns.update(b_returns)
        b_targets = self.returns.normalise(b_returns)  # (T * N,) value targets in the value head's units
        size = len(b_actions)
        epochs = cfg.n_epochs if cfg.algo == "ppo" else 1
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac",
                                                         "grad_norm_policy", "grad_norm_value")}
        self.policy.train(False)
        for _ in range(epochs):
            order = self.rng.permutation(size)
            if cfg.algo == "reinforce":
                self.optimizer.zero_grad(set_to_none=True)
            for start in range(0, size, cfg.minibatch_size):
                mb = order[start:start + cfg.minibatch_size]
                mb_t = torch.as_tensor(mb)
                out = self.policy.forward_states([rollout.b_state_ids[i] for i in mb],
                                                 prefix_kv=self.policy.compute_prefix_kv(),
                                                 detach_value=not cfg.share_value_gradients)
                new_logp = out.logp.gather(-1, b_actions[mb_t].to(self.device).unsqueeze(-1)).squeeze(-1).cpu()  # (M,)
                entropy = -(out.logp.exp() * out.logp).sum(-1).cpu()  # (M,)
                if cfg.algo == "ppo":
                    part = compute_ppo_loss(new_logp, b_logp[mb_t], b_adv[mb_t], out.value.cpu(), b_targets[mb_t], entropy,
                                            cfg.clip_range, cfg.ent_coef, cfg.vf_coef)
                    stats["approx_kl"].append(part.approx_kl)
                    stats["clipfrac"].append(part.clipfrac)
                    policy_loss, value_loss, entropy = part.policy_loss, part.value_loss, part.entropy
                    self.optimizer.zero_grad(set_to_none=True)
                    part.loss.backward()
                    self._step(stats)
                else:  # REINFORCE: the advantage is the Monte Carlo return minus the value baseline (lambda = 1)
                    policy_loss = compute_reinforce_loss(new_logp.unsqueeze(1), b_adv[mb_t]).mean()
                    value_loss = 0.5 * ((out.value.cpu() - b_targets[mb_t]) ** 2).mean()
                    entropy = entropy.mean()
                    loss = (policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss) * (len(mb) / size)
                    loss.backward()
                stats["policy_loss"].append(float(policy_loss.detach()))
                stats["value_loss"].append(float(value_loss.detach()))
                stats["entropy"].append(float(entropy.detach()))
            if cfg.algo == "reinforce":
                self._step(stats)
        explained = 1.0 - float(torch.var(b_returns - rollout.values.reshape(-1)) / torch.var(b_returns).clamp(min=1e-8))
        metrics = {f"losses/{k}": float(np.mean(v)) for k, v in stats.items() if v}
        metrics["losses/explained_variance"] = explained
        return metrics

    def _step(self, stats: dict[str, list[float]]) -> None:
        """Clip each parameter group's gradient on its own, step, and drop the prefix cache the old weights made.

        One joint clip let the value head's gradient (about 100 on raw CartPole returns) scale the
        adapters' down about 200-fold, below AdamW's eps, and the policy never moved (issue 17).
        """
        for group in self.optimizer.param_groups:
            norm = torch.nn.utils.clip_grad_norm_(group["params"], self.config.max_grad_norm)
            stats[f"grad_norm_{group['name']}"].append(float(norm))
        self.optimizer.step()
        self.policy.refresh_prefix()

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, n_episodes: int, greedy: bool, seed: int, policy_name: str,
                 should_stop: Callable[[], bool] | None = None) -> tuple[list[float], list[int], RecordedEpisode]:
        """Play n_episodes whole episodes in lockstep (one batched forward per step); record the first."""
        envs = [make_env(self.config.env_id, seed + i) for i in range(n_episodes)]
        obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
        running = np.ones(n_episodes, dtype=bool)
        returns, lengths = np.zeros(n_episodes), np.zeros(n_episodes, dtype=int)
        record = self._new_recording(policy_name)
        try:
            while running.any():
                if should_stop is not None and should_stop():
                    break
                live = np.flatnonzero(running)
                act, _, _, probs, _ = self.act([obs[i] for i in live], greedy=greedy)
                for k, i in enumerate(live):
                    new_obs, reward, terminated, truncated, _ = envs[i].step(int(act[k]))
                    if i == 0:
                        record.add(obs[0], int(act[k]), reward, probs[k].tolist())
                        record.terminated = bool(terminated)
                    returns[i] += reward
                    lengths[i] += 1
                    obs[i] = new_obs
                    if terminated or truncated:
                        running[i] = False
        finally:
            for env in envs:
                env.close()
        return returns.tolist(), lengths.tolist(), record

    def close(self) -> None:
        """Close the training environments."""
        for env in self.envs:
            env.close()


def play_random(env_id: str, n_episodes: int, seed: int) -> tuple[list[float], list[int]]:
    """Returns and lengths of the uniformly random policy over n_episodes (the floor to beat)."""
    returns, lengths = [], []
    for i in range(n_episodes):
        env = make_env(env_id, seed + i)
        env.reset(seed=seed + i)
        total, steps, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            steps += 1
            done = terminated or truncated
        env.close()
        returns.append(total)
        lengths.append(steps)
    return returns, lengths
