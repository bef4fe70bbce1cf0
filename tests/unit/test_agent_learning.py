"""The agent's training signal reaches the policy: a tiny Llama's action probabilities move the right way.

The rollouts are built by hand on CartPole's probe states (pole leaning left or right), with
returns of CartPole's size (tens), so that a clear advantage is known: pushing toward the lean
is worth more. Issue 17 found that one joint gradient clip over the LoRA adapters and the value
head let the value head's large gradient shrink the adapters' update about 200-fold, below
AdamW's eps, so the policy never moved (approx_kl 0).
"""

from __future__ import annotations

import torch

from llmrl_core.agent.config import AgentConfig
from llmrl_core.agent.text_env import make_probe_states
from llmrl_core.agent.train import AgentTrainer, Rollout


def make_trainer(tiny_lm, **overrides) -> AgentTrainer:
    settings = dict(model="tiny", n_envs=8, n_steps=2, n_epochs=1, minibatch_size=16, device="cpu",
                    lora_target_modules=["q_proj", "v_proj"], learning_rate=3e-2, ent_coef=0.0, seed=0)
    settings.update(overrides)
    return AgentTrainer(AgentConfig(**settings), tiny_lm)


@torch.no_grad()
def make_probe_rollout(trainer: AgentTrainer, good_return: float, bad_return: float) -> Rollout:
    """Every probe state twice, once with each action (rows t = 0: toward the lean, t = 1: away); each
    transition is an episode of its own whose return is `good_return` or `bad_return`."""
    observations, toward = make_probe_states("CartPole-v1")
    state_ids = trainer.policy.encode_states(trainer.render_states(observations))
    out = trainer.policy.forward_states(state_ids)  # logp (N, A), value (N,)
    actions = torch.stack([torch.tensor(toward), 1 - torch.tensor(toward)])  # (2, N)
    logp = torch.stack([out.logp.gather(-1, a.unsqueeze(-1)).squeeze(-1) for a in actions]).float()  # (2, N)
    n = len(observations)
    rewards = torch.stack([torch.full((n,), good_return), torch.full((n,), bad_return)])  # (2, N)
    return Rollout(b_state_ids=state_ids + state_ids, actions=actions, logp=logp, values=out.value.repeat(2, 1).float(),
                   rewards=rewards, dones=torch.ones(2, n), next_value=torch.zeros(n), seconds=0.0)


def measure_update(model_dir, good_return: float, bad_return: float) -> tuple[float, dict[str, float]]:
    """How far one PPO update (1 epoch, lr 3e-3) of a freshly loaded model moves p(toward the lean) on the probes."""
    from llmrl_core.lm.models import load_causal_lm

    trainer = make_trainer(load_causal_lm(str(model_dir), device="cpu"), learning_rate=3e-3)
    try:
        before = trainer.measure_probes()
        metrics = trainer.update(make_probe_rollout(trainer, good_return, bad_return))
        return trainer.measure_probes() - before, metrics
    finally:
        trainer.close()


def test_the_policy_step_does_not_shrink_when_returns_are_large(tiny_model_dir) -> None:
    """Returns of 100 and 80 (CartPole's size: the discounted return at gamma 0.99 approaches 100) against 1 and 0.

    Each transition is its own episode and the value head starts at 0, so both rollouts have the same
    normalised advantages and the policy should take the same step. Under the joint clip the
    value head's gradient on the large returns scaled the adapters' down: measured before the fix,
    p(toward the lean) rose by 0.00026 with returns 100/80 against 0.00062 with 1/0 (and the tiny
    model's adapters have few weights, so their gradients suffer less than the real model's).
    """
    moved_small, _ = measure_update(tiny_model_dir, 1.0, 0.0)
    moved_large, metrics = measure_update(tiny_model_dir, 100.0, 80.0)
    assert moved_small > 3e-4, moved_small
    assert moved_large >= 0.9 * moved_small, (moved_large, moved_small, metrics)
    assert metrics["losses/value_loss"] < 5.0  # normalised targets: not the raw returns' thousands
    assert metrics["losses/grad_norm_value"] < 1.0 and metrics["losses/grad_norm_policy"] > 0.0


@torch.no_grad()
def sample_toward_lean(trainer: AgentTrainer, draws_per_state: int = 256) -> float:
    """Frequency of 'push toward the lean' among actions sampled from the policy on the probe states."""
    observations, toward = make_probe_states("CartPole-v1")
    _, _, _, probs, _ = trainer.act(observations, greedy=True)  # (P, A)
    draws = torch.multinomial(probs, draws_per_state, replacement=True)  # (P, draws)
    return float((draws == torch.tensor(toward).unsqueeze(1)).float().mean())


def test_sampled_actions_move_toward_the_action_with_the_higher_advantage(tiny_lm) -> None:
    """A few PPO updates on rollouts the policy samples itself: reward 1 for pushing toward the lean, else 0.

    The frequency of that action among 2,048 draws (sd about 0.011) rises from about 0.5; measured 0.60 after
    4 updates of 2 epochs at lr 0.1 on the tiny random Llama.
    """
    trainer = make_trainer(tiny_lm, learning_rate=0.1, n_epochs=2, n_steps=4, minibatch_size=32)
    observations, toward = make_probe_states("CartPole-v1")
    toward_t = torch.tensor(toward)
    n = len(observations)
    try:
        before = sample_toward_lean(trainer)
        for _ in range(4):
            steps = [trainer.act(observations) for _ in range(4)]  # 4 samples per probe state
            actions = torch.stack([torch.as_tensor(s[0]) for s in steps])  # (4, N)
            rewards = (actions == toward_t).float()  # (4, N)
            rollout = Rollout(b_state_ids=[i for s in steps for i in s[4]], actions=actions,
                              logp=torch.stack([s[1] for s in steps]), values=torch.stack([s[2] for s in steps]),
                              rewards=rewards, dones=torch.ones(4, n), next_value=torch.zeros(n), seconds=0.0)
            trainer.update(rollout)
        after = sample_toward_lean(trainer)
    finally:
        trainer.close()
    assert after - before > 0.05, (before, after)
