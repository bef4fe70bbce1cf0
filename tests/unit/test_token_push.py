"""What the update does to each token (issue 21): every algorithm's push equals minus autograd's d(loss)/d(log pi_t).

For each algorithm, each loss aggregation and each KL estimator, a tiny batch whose ratios sit on both sides
of the clip range: the loss is the algorithm's own `compute_loss` (the one the trainer backpropagates), the
KL is computed from the same log-probs as in the trainer, and the gradient is taken with autograd in float64.
"""

from __future__ import annotations

import pytest
import torch

from llmrl_core.lm_rl.algorithms import REGISTRY, LossInputs, compute_kl, compute_token_weights
from llmrl_core.lm_rl.algorithms.common import compute_clipped_push, compute_kl_push
from llmrl_core.lm_rl.config import RLConfig

CASES = [(name, loss_type, beta, est) for name in REGISTRY for loss_type in ("grpo", "dapo", "dr_grpo")
         for beta, est in ((0.0, "k3"), (0.2, "k1"), (0.2, "k3"))]


def _batch(per_token_advantages: bool, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    b, t = 4, 5
    mask = torch.ones(b, t, dtype=torch.float64)
    mask[1, 3:] = 0  # completions of lengths 5, 3, 5, 2
    mask[3, 2:] = 0
    logp = (torch.rand(b, t, generator=g, dtype=torch.float64) * -3).requires_grad_(True)
    old = logp.detach() + torch.empty(b, t, dtype=torch.float64).uniform_(-0.5, 0.5, generator=g)  # ratios 0.6..1.65
    ref = logp.detach() + torch.empty(b, t, dtype=torch.float64).uniform_(-1, 1, generator=g)
    adv = torch.randn((b, t) if per_token_advantages else (b,), generator=g, dtype=torch.float64)
    return dict(mask=mask, logp=logp, old=old, ref=ref, adv=adv)


@pytest.mark.parametrize(("name", "loss_type", "beta", "estimator"), CASES)
def test_push_is_minus_the_gradient_of_the_loss_per_token(name, loss_type, beta, estimator):
    algo = REGISTRY[name]
    cfg = RLConfig(algorithm=name, loss_type=loss_type, beta=beta, kl_estimator=estimator, epsilon=0.2,
                   epsilon_high=0.28, num_generations=2, prompts_per_step=2, max_new_tokens=5)
    d = _batch(per_token_advantages=algo.needs_value_head)
    weights = compute_token_weights(d["mask"], loss_type, cfg.max_new_tokens)  # (4, 5)
    kl = compute_kl(d["logp"], d["ref"], estimator) if beta > 0 and algo.kl_in_loss else None
    values = torch.zeros_like(d["mask"], requires_grad=True) if algo.needs_value_head else None
    mb = LossInputs(logp=d["logp"], old_logp=d["old"], advantages=d["adv"], weights=weights, kl=kl, mask=d["mask"],
                    values=values, old_values=None if values is None else torch.zeros_like(d["mask"]),
                    returns=None if values is None else torch.ones_like(d["mask"]),
                    value_weights=d["mask"] / d["mask"].sum())
    loss = algo.compute_loss(cfg, mb)
    (grad,) = torch.autograd.grad(loss.loss, d["logp"])  # (4, 5)

    push, clipped = algo.compute_push(cfg, mb, loss.ratio)  # (4, 5) each
    expected = push
    if kl is not None:
        expected = expected + compute_kl_push(d["logp"].detach(), d["ref"], estimator, beta, weights)
    torch.testing.assert_close(-grad, expected.detach(), atol=1e-9, rtol=1e-6)
    assert (push[clipped] == 0).all()
    if name in ("grpo", "rloo", "ppo"):
        assert clipped.any() and (~clipped & d["mask"].bool()).any(), "the batch must test both sides of the clip"
    else:
        assert not clipped.any()  # REINFORCE has no ratio to clip


def test_clipped_push_by_hand():
    """Two tokens, A = +1 and -1, weight 0.5: inside the range the push is w r A; outside, 0."""
    ratio = torch.tensor([[1.1, 1.5], [0.9, 0.7]])  # (2, 2)
    adv = torch.tensor([1.0, -1.0])  # (2,)
    push, clipped = compute_clipped_push(ratio, adv, torch.full((2, 2), 0.5), eps_low=0.2, eps_high=0.2)
    # row 0 (A=+1): 1.1 inside -> 0.5*1.1; 1.5 > 1.2 -> clipped. row 1 (A=-1): 0.9 inside -> -0.45; 0.7 < 0.8 -> clipped
    torch.testing.assert_close(push, torch.tensor([[0.55, 0.0], [-0.45, 0.0]]))
    assert clipped.tolist() == [[False, True], [False, True]]
    # a ratio out of range the other way is not clipped: A=+1 with r=0.7 still pushes (w r A = 0.35)
    push, clipped = compute_clipped_push(torch.tensor([[0.7]]), torch.tensor([1.0]), torch.tensor([[0.5]]), 0.2, 0.2)
    assert push.item() == pytest.approx(0.35) and not clipped.item()


def test_kl_push_by_hand():
    logp, ref = torch.tensor([[-1.0]]), torch.tensor([[-1.0 + 0.6931471805599453]])  # pi_ref = 2 pi
    w = torch.tensor([[0.25]])
    assert compute_kl_push(logp, ref, "k1", 0.1, w).item() == pytest.approx(-0.025)
    assert compute_kl_push(logp, ref, "k3", 0.1, w).item() == pytest.approx(0.025, rel=1e-6)  # -0.1*0.25*(1-2)
