"""Our RL math equals the reference libraries' own code on identical inputs (float64, tolerance 1e-6).

References, as installed in the test environment (requirements-test.txt):
* TRL (>= 1.0; written against 1.16): GRPOTrainer._compute_loss is called as a method on a stand-in
  object; the advantage lines of GRPOTrainer/RLOOTrainer._generate_and_score_completions are cut
  out of the installed source and run (tests/support/reference_libs.py says how and why).
* Stable-Baselines3: RolloutBuffer.compute_returns_and_advantage (GAE) and PPO.train (the clipped
  policy loss, the value loss, approx_kl, clip fraction), run on buffers we fill.
* CleanRL's ppo.py, where SB3 deliberately differs from the classic PPO we implement (the clipped
  value loss); CleanRL is a single script that cannot be imported, so its lines are cited.

Where we differ on purpose, the test says so and checks the exact relation instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrl_core.lm_rl.algorithms.common import (
    compute_clip_stats,
    compute_entropy,
    compute_kl,
    compute_token_logprobs,
    compute_token_weights,
    masked_mean,
)
from llmrl_core.lm_rl.algorithms.grpo import compute_clipped_loss, compute_grpo_advantages
from llmrl_core.lm_rl.algorithms.ppo import compute_gae, compute_value_loss
from llmrl_core.lm_rl.algorithms.ppo import compute_loss as compute_lm_ppo_loss
from llmrl_core.lm_rl.algorithms.rloo import compute_rloo_advantages
from llmrl_core.lm_rl.algorithms.spec import LossInputs
from llmrl_core.lm_rl.config import RLConfig
from tests.support import reference_libs as ref


TOL = {"atol": 1e-6, "rtol": 0.0}
F64 = torch.float64


def make_rewards() -> torch.Tensor:
    """3 prompts x 4 samples; the second group is flat (no signal), the third has a tie."""
    return torch.tensor([0.1, 0.9, 0.4, 0.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.25], dtype=F64)


def make_token_batch(seed: int = 7) -> dict[str, torch.Tensor]:
    """6 completions of up to 5 tokens, lengths 5, 3, 1, 4, 5, 2; log-probs that move off the old ones
    far enough that both clip sides fire."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 3, 1, 4, 5, 2])
    mask = (torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)).to(F64)  # (6, 5)
    old = -torch.rand(6, 5, generator=g, dtype=F64) * 3.0 - 0.1  # (6, 5)
    logp = old + torch.randn(6, 5, generator=g, dtype=F64) * 0.3  # ratios from about 0.4 to 2.5
    ref_logp = old + torch.randn(6, 5, generator=g, dtype=F64) * 0.2
    advantages = torch.tensor([1.2, -0.7, 0.3, -1.5, 0.0, 0.9], dtype=F64)
    return {"mask": mask, "old": old, "logp": logp, "ref": ref_logp, "adv": advantages}


# ----------------------------------------------------------------------------- GRPO and RLOO advantages


@pytest.mark.parametrize("scale", [True, False], ids=["scaled", "unscaled"])
def test_grpo_advantages_equal_trl(scale: bool) -> None:
    rewards = make_rewards()
    ours = compute_grpo_advantages(rewards, group_size=4, scale_rewards=scale)
    theirs = ref.compute_trl_grpo_advantages(rewards, num_generations=4, scale_rewards="group" if scale else "none")
    torch.testing.assert_close(ours, theirs, **TOL)
    assert ours[4:8].abs().max() == 0.0  # the flat group carries no signal in both


def test_rloo_advantages_equal_trl() -> None:
    rewards = make_rewards()
    torch.testing.assert_close(compute_rloo_advantages(rewards, group_size=4),
                               ref.compute_trl_rloo_advantages(rewards, num_generations=4), **TOL)


# ----------------------------------------------------------------------------- GRPO losses and the KL


def compute_our_grpo_loss(loss_type: str, batch: dict[str, torch.Tensor], logp: torch.Tensor, beta: float,
                          max_len: int) -> torch.Tensor:
    """The loss our trainer backpropagates: weights over the batch, KL from the current log-probs."""
    cfg = RLConfig(algorithm="grpo", loss_type=loss_type, beta=beta, epsilon=0.2, epsilon_high=0.28,
                   max_new_tokens=max_len)
    weights = compute_token_weights(batch["mask"], loss_type, max_len)
    kl = compute_kl(logp, batch["ref"], "k3") if beta else None
    return compute_clipped_loss(cfg, LossInputs(logp=logp, old_logp=batch["old"], advantages=batch["adv"],
                                                weights=weights, kl=kl, mask=batch["mask"])).loss


@pytest.mark.parametrize("beta", [0.0, 0.04], ids=["no-kl", "k3-kl"])
@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_grpo_loss_and_gradient_equal_trl(loss_type: str, beta: float) -> None:
    batch = make_token_batch()
    max_len = 7  # above the batch's width, so dr_grpo's constant normaliser is really max_completion_length
    ours_logp = batch["logp"].clone().requires_grad_(True)
    ours = compute_our_grpo_loss(loss_type, batch, ours_logp, beta, max_len)
    ours.backward()
    trl_logp = batch["logp"].clone().requires_grad_(True)
    theirs, metrics = ref.call_trl_grpo_loss(loss_type, trl_logp, batch["old"], batch["adv"], batch["mask"], beta=beta,
                                             ref_logp=batch["ref"] if beta else None, epsilon_low=0.2,
                                             epsilon_high=0.28, max_completion_length=max_len)
    theirs.backward()
    torch.testing.assert_close(ours.detach(), theirs.detach(), **TOL)
    torch.testing.assert_close(ours_logp.grad, trl_logp.grad, **TOL)
    assert ours_logp.grad.abs().sum() > 0
    # The clip fractions we log are TRL's.
    ratio = torch.exp(batch["logp"] - batch["old"])
    stats = compute_clip_stats(ratio, batch["adv"], batch["mask"], 0.2, 0.28)
    for name in ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
        assert stats[name] == pytest.approx(metrics[name][0], abs=1e-6), name
    assert stats["clip_ratio/low_mean"] > 0 and stats["clip_ratio/high_mean"] > 0  # both sides exercised
    if beta:  # TRL's logged kl is the masked mean of its per-token k3 estimate
        ours_kl = float(masked_mean(compute_kl(batch["logp"], batch["ref"], "k3"), batch["mask"]))
        assert ours_kl == pytest.approx(metrics["kl"][0], abs=1e-6)


def test_bnpo_is_our_dapo_on_one_batch() -> None:
    """TRL's bnpo divides by the tokens of each micro-batch, its dapo by the tokens of the whole generation batch.

    We compute the weights once over the whole batch (compute_token_weights), so our micro-batches
    add up to exactly one loss; we have no separate 'bnpo', and on a batch taken in one piece
    TRL's bnpo and dapo and our dapo are the same number, which this test shows.
    """
    batch = make_token_batch(seed=1)
    ours = compute_our_grpo_loss("dapo", batch, batch["logp"], 0.0, 5)
    for trl_type in ("bnpo", "dapo"):
        theirs, _ = ref.call_trl_grpo_loss(trl_type, batch["logp"], batch["old"], batch["adv"], batch["mask"],
                                           epsilon_low=0.2, epsilon_high=0.28)
        torch.testing.assert_close(ours, theirs, **TOL)


def test_token_logprobs_and_entropy_equal_trl_helpers() -> None:
    from trl.trainer.utils import entropy_from_logits, selective_log_softmax

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 11, generator=g, dtype=F64) * 4.0  # (B, T, V)
    tokens = torch.randint(0, 11, (3, 4), generator=g)
    # Ours returns float32 on purpose (log-probs of bf16 models are kept in float32); compare at float32 precision.
    torch.testing.assert_close(compute_token_logprobs(logits, tokens).double(), selective_log_softmax(logits, tokens),
                               atol=1e-5, rtol=0.0)
    torch.testing.assert_close(compute_entropy(logits).double(), entropy_from_logits(logits), atol=1e-5, rtol=0.0)


# ----------------------------------------------------------------------------- GAE against SB3


def test_agent_gae_equals_sb3_rollout_buffer() -> None:
    """Our `dones[t]` (the episode ended with step t) is SB3's `episode_starts[t + 1]`; the last row is SB3's `dones`.

    Truncations: both treat the rollout's episode ends as terminal inside GAE (SB3 folds a
    truncated episode's bootstrap into the reward during collection, which CartPole-v1's agent
    does not do: its 500-step cap is rarely reached by a language model).
    """
    from llmrl_core.agent.train import compute_env_gae

    g = torch.Generator().manual_seed(4)
    n_steps, n_envs, gamma, lam = 7, 3, 0.97, 0.9
    rewards = torch.rand(n_steps, n_envs, generator=g, dtype=F64) * 2
    values = torch.randn(n_steps, n_envs, generator=g, dtype=F64)
    dones = torch.zeros(n_steps, n_envs, dtype=F64)
    dones[2, 0] = dones[5, 1] = dones[6, 2] = dones[0, 2] = 1.0  # mid-rollout ends, and one at the last step
    next_value = torch.randn(n_envs, generator=g, dtype=F64)
    ours_adv, ours_ret = compute_env_gae(rewards, values, dones, next_value, gamma, lam)
    episode_starts = np.zeros((n_steps, n_envs))
    episode_starts[1:] = dones[:-1].numpy()
    adv, ret = ref.compute_sb3_gae(rewards.numpy(), values.numpy(), episode_starts, next_value.numpy(),
                                   dones[-1].numpy(), gamma, lam)
    torch.testing.assert_close(ours_adv, torch.from_numpy(adv), **TOL)
    torch.testing.assert_close(ours_ret, torch.from_numpy(ret), **TOL)


def test_lm_ppo_gae_equals_sb3_with_one_episode_per_completion() -> None:
    """Each completion is an episode of its own tokens, ending after its last real token (value 0 after it).

    In SB3's terms: completions are environments, padding positions carry reward 0 and value 0,
    and the first padding position starts a new episode. Ours is zero on padding; SB3's is too.
    """
    batch = make_token_batch(seed=5)
    mask = batch["mask"]
    g = torch.Generator().manual_seed(6)
    rewards = torch.randn(6, 5, generator=g, dtype=F64) * mask
    values = torch.randn(6, 5, generator=g, dtype=F64) * mask
    gamma, lam = 1.0, 0.95
    ours_adv, ours_ret = compute_gae(rewards, values, mask, gamma, lam)
    starts = np.zeros((5, 6))
    starts[1:] = (1.0 - mask[:, 1:]).T.numpy() * mask[:, :-1].T.numpy()  # the first padding position
    adv, ret = ref.compute_sb3_gae(rewards.T.numpy(), values.T.numpy(), starts, np.zeros(6), np.ones(6), gamma, lam)
    torch.testing.assert_close(ours_adv, torch.from_numpy(adv).T * mask, **TOL)
    torch.testing.assert_close(ours_adv, torch.from_numpy(adv).T, **TOL)  # SB3 is zero on padding too
    torch.testing.assert_close(ours_ret, torch.from_numpy(ret).T * mask, **TOL)


# ----------------------------------------------------------------------------- PPO losses


def make_transitions(n: int = 12, seed: int = 7) -> dict[str, torch.Tensor]:
    """n transitions with old and new log-probs far enough apart to clip, values, returns, entropies."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(n, generator=g, dtype=F64) - 0.05
    new = old + torch.randn(n, generator=g, dtype=F64) * 0.35
    return {"old": old, "new": new, "adv": torch.randn(n, generator=g, dtype=F64) * 2 + 0.3,
            "returns": torch.randn(n, generator=g, dtype=F64) * 3, "old_values": torch.randn(n, generator=g, dtype=F64),
            "values": torch.randn(n, generator=g, dtype=F64), "entropy": torch.rand(n, generator=g, dtype=F64)}


def test_lm_ppo_policy_loss_equals_sb3_on_the_flattened_tokens() -> None:
    """With the token-mean weights (loss_type dapo, our default) the LM PPO policy loss is SB3's over real tokens.

    Advantages are whitened once per batch in compute_advantages (as classic RLHF PPO does), so the
    SB3 side runs with normalize_advantage off on the same advantages.
    """
    batch = make_token_batch(seed=8)
    mask = batch["mask"]
    real = mask.bool()
    token_adv = torch.randn(6, 5, generator=torch.Generator().manual_seed(9), dtype=F64) * mask
    cfg = RLConfig(algorithm="ppo", loss_type="dapo", epsilon=0.2, vf_coef=0.1, cliprange_value=0.2)
    logp = batch["logp"].clone().requires_grad_(True)
    values = torch.zeros(6, 5, dtype=F64, requires_grad=True)
    out = compute_lm_ppo_loss(cfg, LossInputs(
        logp=logp, old_logp=batch["old"], advantages=token_adv, weights=compute_token_weights(mask, "dapo", 5),
        mask=mask, values=values, old_values=torch.zeros(6, 5, dtype=F64), returns=batch["ref"] * mask,
        value_weights=mask / mask.sum()))
    out.loss.backward()
    logged, grads = ref.run_sb3_ppo_train(batch["old"][real], batch["logp"][real], token_adv[real],
                                          returns=batch["ref"][real], old_values=torch.zeros(int(mask.sum()), dtype=F64),
                                          values=torch.zeros(int(mask.sum()), dtype=F64),
                                          entropy=torch.zeros(int(mask.sum()), dtype=F64), clip_range=0.2,
                                          ent_coef=0.0, vf_coef=0.05, normalize_advantage=False)
    assert float(out.policy_loss.detach()) == pytest.approx(logged["train/policy_gradient_loss"], abs=1e-6)
    # Old values = new values, so no value clip bites. Unclipped, ours is CleanRL's 0.5 * squared error, SB3's is the plain squared error (see below).
    assert float(out.value_loss.detach()) == pytest.approx(0.5 * logged["train/value_loss"], abs=1e-6)
    assert float(out.loss.detach()) == pytest.approx(logged["train/loss"], abs=1e-6)  # our vf_coef 0.1 x 0.5 = SB3's 0.05
    torch.testing.assert_close(logp.grad[real], grads["logp"], **TOL)
    torch.testing.assert_close(values.grad[real], grads["values"], **TOL)


def compute_cleanrl_value_loss(new_value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor,
                               clip: float) -> torch.Tensor:
    """CleanRL's clipped value loss (vwxyzjn/cleanrl, cleanrl/ppo.py, the `if args.clip_vloss:` branch):
    the squared error of the new value and of the old value moved by at most `clip` toward it, the larger
    of the two per sample, halved and averaged. Written out here because the script cannot be imported."""
    unclipped = (new_value - returns) ** 2
    moved = old_value + torch.clamp(new_value - old_value, -clip, clip)
    return 0.5 * torch.max(unclipped, (moved - returns) ** 2).mean()


def test_lm_ppo_clipped_value_loss_is_cleanrls_not_sb3s() -> None:
    """On purpose: our clipped value loss takes the max of the clipped and unclipped errors (CleanRL, OpenAI
    baselines' ppo2, the RLHF PPO of TRL's former PPOTrainer); SB3 uses only the clipped value, which stops
    the gradient of a value that moved past the clip even when that move reduced the error. The test checks
    equality with CleanRL's formula and shows where SB3's number differs."""
    t = make_transitions(seed=10)
    mask = torch.ones(1, len(t["old"]), dtype=F64)
    ours, frac = compute_value_loss(t["values"].unsqueeze(0), t["old_values"].unsqueeze(0), t["returns"].unsqueeze(0),
                                    mask, 0.2)
    cleanrl = compute_cleanrl_value_loss(t["values"], t["old_values"], t["returns"], 0.2)
    torch.testing.assert_close(ours.mean(), cleanrl, **TOL)
    logged, _ = ref.run_sb3_ppo_train(t["old"], t["new"], t["adv"], t["returns"], t["old_values"], t["values"],
                                      t["entropy"], clip_range=0.2, ent_coef=0.0, vf_coef=0.5,
                                      normalize_advantage=False, clip_range_vf=0.2)
    moved = t["old_values"] + torch.clamp(t["values"] - t["old_values"], -0.2, 0.2)
    assert logged["train/value_loss"] == pytest.approx(float(((moved - t["returns"]) ** 2).mean()), abs=1e-6)
    assert 0 < frac < 1 and abs(2 * float(ours.mean()) - logged["train/value_loss"]) > 1e-3  # really different


def test_agent_ppo_loss_equals_sb3_ppo_train() -> None:
    """The agent's minibatch loss (llmrl_core/agent/train.py compute_ppo_loss) on SB3's PPO.train.

    Same per-minibatch advantage normalisation, clipped surrogate, approx_kl and clip fraction. On
    purpose: our value loss is CleanRL's 0.5 * squared error, SB3's has no 0.5, so SB3's vf_coef 0.25
    is our 0.5; and SB3 adds ent_coef * (-entropy) where we subtract ent_coef * entropy (the same).
    """
    from llmrl_core.agent.train import compute_ppo_loss

    t = make_transitions(seed=11)
    new_logp = t["new"].clone().requires_grad_(True)
    values = t["values"].clone().requires_grad_(True)
    entropy = t["entropy"].clone().requires_grad_(True)
    ours = compute_ppo_loss(new_logp, t["old"], t["adv"], values, t["returns"], entropy, clip_range=0.2,
                            ent_coef=0.01, vf_coef=0.5)
    ours.loss.backward()
    logged, grads = ref.run_sb3_ppo_train(t["old"], t["new"], t["adv"], t["returns"], t["old_values"], t["values"],
                                          t["entropy"], clip_range=0.2, ent_coef=0.01, vf_coef=0.25,
                                          normalize_advantage=True)
    assert float(ours.policy_loss.detach()) == pytest.approx(logged["train/policy_gradient_loss"], abs=1e-6)
    assert float(ours.value_loss.detach()) == pytest.approx(0.5 * logged["train/value_loss"], abs=1e-6)
    assert -float(ours.entropy.detach()) == pytest.approx(logged["train/entropy_loss"], abs=1e-6)
    assert float(ours.loss.detach()) == pytest.approx(logged["train/loss"], abs=1e-6)
    assert ours.approx_kl == pytest.approx(logged["train/approx_kl"], abs=1e-6)
    assert ours.clipfrac == pytest.approx(logged["train/clip_fraction"], abs=1e-6) and 0 < ours.clipfrac < 1
    torch.testing.assert_close(new_logp.grad, grads["logp"], **TOL)
    torch.testing.assert_close(values.grad, grads["values"], **TOL)
    torch.testing.assert_close(entropy.grad, grads["entropy"], **TOL)
