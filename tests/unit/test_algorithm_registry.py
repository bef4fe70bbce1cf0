"""The algorithm registry: every entry has the whole interface, its config checks, and the trainer's step
on the tiny random Llama gives the loss the pure functions give for the same batch."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.algorithms import (
    ALGORITHMS,
    REGISTRY,
    AdvantageInputs,
    Advantages,
    Algorithm,
    Loss,
    LossInputs,
    compute_clipped_surrogate,
    compute_gae,
    compute_grpo_advantages,
    compute_kl,
    compute_ppo_rewards,
    compute_reinforce_advantages,
    compute_reinforce_loss,
    compute_rloo_advantages,
    compute_token_weights,
    compute_value_loss,
    get_algorithm,
    masked_whiten,
    update_baseline,
)
from llmrl_core.lm_rl.config import RLConfig
from llmrl_core.lm_rl.policy import load_policy
from llmrl_core.lm_rl.trainer import RLTrainer, expected_metric_keys

PROMPTS = pd.DataFrame({"prompt": ["Hello there", "The movie was", "Today I feel", "Once upon a time"]})
LENGTH_REWARD = [{"type": "length", "target": 20, "unit": "chars", "falloff": 40}]
COMMON_KEYS = expected_metric_keys(RLConfig(algorithm="grpo"), [])  # what every algorithm logs (grpo adds nothing)


def tiny_config(tiny_model_dir, **changes) -> RLConfig:
    base = dict(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                max_new_tokens=6, chat="raw", learning_rate=1e-3, rewards=LENGTH_REWARD, seed=0,
                mixed_precision="no")  # fp32: the step is compared with the pure functions, not bf16's rounding
    return RLConfig(**{**base, **changes})


# ---------------------------------------------------------------------- the interface of every entry


@pytest.mark.parametrize("name", ALGORITHMS)
def test_every_entry_has_the_whole_interface(name):
    algo = get_algorithm(name)
    assert isinstance(algo, Algorithm) and algo.name == name and REGISTRY[name] is algo
    assert algo.label.strip() and len(algo.description) > 20 and algo.paper.strip()
    assert isinstance(algo.needs_groups, bool) and isinstance(algo.needs_value_head, bool)
    assert isinstance(algo.metric_keys, frozenset) and all(isinstance(k, str) for k in algo.metric_keys)
    assert not algo.metric_keys & COMMON_KEYS  # its own metrics, not renamed common ones
    cfg = RLConfig(algorithm=name)
    assert algo.validate(cfg) is None  # the default config runs every algorithm
    state = algo.init_state()
    assert isinstance(state, dict) and state is not algo.init_state()  # a fresh state per run

    # a hand batch: 2 prompts x 2 samples, 3 positions, the last sample one token shorter
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]])
    logp = torch.full((4, 3), -1.0, requires_grad=True)
    values = torch.zeros(4, 3) if algo.needs_value_head else None
    adv = algo.compute_advantages(cfg, AdvantageInputs(rewards, mask, logp.detach(), None, values), state)
    assert isinstance(adv, Advantages) and adv.advantages.shape in {(4,), (4, 3)}
    assert set(adv.metrics) <= algo.metric_keys
    assert (adv.returns is not None) == algo.needs_value_head
    value_head_values = torch.zeros(4, 3, requires_grad=True) if algo.needs_value_head else None
    loss = algo.compute_loss(cfg, LossInputs(
        logp=logp, old_logp=logp.detach(), advantages=adv.advantages, weights=compute_token_weights(mask, "dapo", 3),
        mask=mask, values=value_head_values, old_values=values, returns=adv.returns, value_weights=mask / mask.sum(),
    ))
    assert isinstance(loss, Loss) and loss.loss.dim() == 0 and loss.policy_loss.dim() == 0
    assert loss.ratio.shape == (4, 3) and not loss.ratio.requires_grad
    assert torch.allclose(loss.ratio, torch.ones(4, 3))  # pi_old = pi
    assert (loss.value_loss is not None) == algo.needs_value_head
    loss.loss.backward()
    assert logp.grad is not None and logp.grad.abs().sum() > 0  # the loss moves the policy


def test_names_match_the_config_and_unknown_names_are_refused():
    assert ALGORITHMS == ("grpo", "rloo", "reinforce", "ppo")
    for name in ALGORITHMS:
        assert RLConfig(algorithm=name).algorithm == name
    with pytest.raises(InputError, match="algorithm must be one of grpo, rloo, reinforce, ppo"):
        get_algorithm("dpo")


def test_expected_metric_keys_add_each_algorithms_own():
    for name in ALGORITHMS:
        cfg = RLConfig(algorithm=name, num_generations=2)
        assert expected_metric_keys(cfg, []) == COMMON_KEYS | get_algorithm(name).metric_keys
    assert get_algorithm("ppo").metric_keys == {"loss/value", "value/mean", "value/clipfrac"}
    assert get_algorithm("reinforce").metric_keys == {"baseline"}


# ---------------------------------------------------------------------- validate(cfg)


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_group_algorithms_refuse_one_sample_per_prompt(name):
    cfg = RLConfig(algorithm=name)
    cfg.num_generations = 1  # past the config's own checks: validate alone must refuse it
    with pytest.raises(InputError, match=f"{name.upper()} compares samples of the same prompt: set num_generations to 2"):
        get_algorithm(name).validate(cfg)
    assert get_algorithm(name).needs_groups


def test_reinforce_refuses_several_epochs_and_the_others_allow_them():
    cfg = RLConfig(algorithm="reinforce")
    cfg.num_epochs = 2
    with pytest.raises(InputError, match="REINFORCE is on-policy .* set num_epochs to 1"):
        get_algorithm("reinforce").validate(cfg)
    for name in ("grpo", "rloo", "ppo"):
        assert get_algorithm(name).validate(RLConfig(algorithm=name, num_epochs=3)) is None
    assert get_algorithm("ppo").validate(RLConfig(algorithm="ppo", beta=0.0, num_generations=1)) is None


# ---------------------------------------------------------------------- load_policy


def test_load_policy_adds_what_the_algorithm_and_beta_need(tiny_model_dir):
    ppo = load_policy(tiny_config(tiny_model_dir, algorithm="ppo"))
    assert ppo.ref_model is None and ppo.value_head is not None
    assert ppo.value_head.linear.in_features == ppo.model.config.hidden_size
    assert float(ppo.value_head.linear.weight.detach().abs().sum()) == 0.0  # starts at zero: early advantages are the rewards
    grpo = load_policy(tiny_config(tiny_model_dir, algorithm="grpo", beta=0.1))
    assert grpo.value_head is None and grpo.ref_model is not grpo.model
    assert not any(p.requires_grad for p in grpo.ref_model.parameters())
    assert all(p.requires_grad for p in grpo.model.parameters())
    lora = load_policy(tiny_config(tiny_model_dir, algorithm="grpo", beta=0.1, use_lora=True))
    assert lora.ref_model is None  # the reference is the base with its adapters off
    assert all("lora" in n for n, p in lora.model.named_parameters() if p.requires_grad)


def test_load_policy_refuses_bad_lora_targets(tiny_model_dir):
    with pytest.raises(InputError, match="LoRA could not be applied.*lora_target_modules"):
        load_policy(tiny_config(tiny_model_dir, use_lora=True, lora_target_modules=["no_such_layer"]))


# ---------------------------------------------------------------------- the step's loss against the pure functions


def expected_update(trainer: RLTrainer, ro, rewards: torch.Tensor) -> tuple[dict[str, float], list[torch.Tensor]]:
    """loss/policy (and loss/value, kl) of a single-epoch update and its gradient on trainer.params, computed
    from the pure functions on one whole-batch forward of the policy (and value head) before the update."""
    cfg = trainer.cfg
    mask = ro.completion_mask  # (B, T)
    rows = torch.arange(mask.shape[0])
    ppo = cfg.algorithm == "ppo"
    trainer.policy.train()
    logp, _, values = trainer.updater.compute_logprobs(trainer.policy, ro, rows, want_values=ppo)  # (B, T) each, with gradient
    kl = None
    if cfg.beta > 0:
        kl = compute_kl(logp, trainer.updater.compute_reference_logprobs(ro, [rows]), cfg.kl_estimator)  # (B, T)
    weights = compute_token_weights(mask, cfg.loss_type, cfg.max_new_tokens)  # (B, T)
    out = {}
    if cfg.algorithm == "ppo":
        old_values = values.detach()
        kl_old = kl.detach() if kl is not None else torch.zeros_like(mask)
        advantages, returns = compute_gae(compute_ppo_rewards(rewards, kl_old, mask, cfg.beta), old_values, mask,
                                          cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        per_token, _ = compute_clipped_surrogate(logp, logp.detach(), advantages, cfg.epsilon, cfg.clip_high)
        value_token, _ = compute_value_loss(values, old_values, returns, mask, cfg.cliprange_value)
        value_loss = (value_token * mask / mask.sum()).sum()
        out["loss/value"] = float(value_loss.detach())
    else:
        if cfg.algorithm == "grpo":
            advantages = compute_grpo_advantages(rewards, cfg.num_generations, cfg.scale_rewards)
        elif cfg.algorithm == "rloo":
            advantages = compute_rloo_advantages(rewards, cfg.num_generations)
        else:
            advantages = compute_reinforce_advantages(rewards, trainer.algorithm_state["baseline"])
        if cfg.algorithm == "reinforce":
            per_token = compute_reinforce_loss(logp, advantages)
        else:
            per_token, _ = compute_clipped_surrogate(logp, logp.detach(), advantages, cfg.epsilon, cfg.clip_high)
        if kl is not None:
            per_token = per_token + cfg.beta * kl
        value_loss = torch.zeros(())
    policy_loss = (per_token * weights).sum()
    (policy_loss + cfg.vf_coef * value_loss).backward()
    grads = [p.grad.detach().clone() for p in trainer.params]
    trainer.optimizer.zero_grad(set_to_none=True)
    out["loss/policy"] = float(policy_loss.detach())
    if kl is not None:
        out["kl"] = float((kl.detach() * mask).sum() / mask.sum())
    return out, grads


@pytest.mark.parametrize("changes", [
    {"algorithm": "grpo"},
    {"algorithm": "grpo", "beta": 0.05, "scale_rewards": False, "loss_type": "grpo", "grad_accum_steps": 2},
    {"algorithm": "grpo", "beta": 0.1, "use_lora": True, "learning_rate": 1e-2},
    {"algorithm": "rloo", "beta": 0.1, "kl_estimator": "k1", "loss_type": "dr_grpo"},
    {"algorithm": "reinforce", "beta": 0.1, "num_generations": 1, "prompts_per_step": 3},
    {"algorithm": "ppo", "beta": 0.1, "kl_estimator": "k1", "loss_type": "grpo"},
    {"algorithm": "ppo", "whiten_advantages": False, "grad_accum_steps": 2, "gamma": 0.9},
], ids=["grpo", "grpo-beta-accum", "grpo-lora", "rloo-beta", "reinforce-beta", "ppo-beta", "ppo-accum"])
def test_each_algorithms_step_gives_the_loss_and_gradient_of_the_pure_functions(tiny_model_dir, changes):
    cfg = tiny_config(tiny_model_dir, max_grad_norm=0.0, **changes)  # no clipping: the raw gradient reaches AdamW
    trainer = RLTrainer(cfg, prompts=PROMPTS)
    trainer.train_step()  # so the policy has left the reference (KL > 0), and baseline and value head have moved
    ro = trainer.generate_rollout()
    n = ro.completion_ids.shape[0]
    rewards = torch.linspace(-1.0, 2.0, n)[torch.randperm(n, generator=torch.Generator().manual_seed(1))]  # (B,)
    baseline = trainer.algorithm_state.get("baseline")
    expected, expected_grads = expected_update(trainer, ro, rewards)
    seen: list[list[torch.Tensor]] = []
    real_step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (seen.append([p.grad.detach().clone() for p in trainer.params]), real_step())

    stats, token = trainer.update_policy(ro, rewards)
    assert len(seen) == 1  # one epoch, one optimizer step
    assert sum(float(g.abs().sum()) for g in expected_grads) > 1e-4  # a gradient that tells a wrong term apart
    for got, want in zip(seen[0], expected_grads):
        assert torch.allclose(got, want, rtol=1e-3, atol=1e-6)
    if cfg.beta > 0:  # the policy has left the reference, so a wrong KL term shows (k1's sample mean may be < 0)
        assert abs(expected["kl"]) > 1e-6
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert set(stats) >= get_algorithm(cfg.algorithm).metric_keys
    assert token.logp.shape == token.ratio.shape == ro.completion_mask.shape
    if cfg.algorithm == "reinforce":  # the baseline moved toward the batch mean, and is logged and kept
        assert trainer.algorithm_state["baseline"] == pytest.approx(update_baseline(baseline, rewards, cfg.baseline_decay))
        assert stats["baseline"] == trainer.algorithm_state["baseline"]
        assert trainer.state_dict()["baseline"] == trainer.algorithm_state["baseline"]


def test_reinforce_baseline_survives_a_checkpoint(tiny_model_dir, tmp_path):
    cfg = tiny_config(tiny_model_dir, algorithm="reinforce", num_generations=1, steps=3)
    trainer = RLTrainer(cfg, prompts=PROMPTS)
    trainer.train_step()
    baseline = trainer.algorithm_state["baseline"]
    assert baseline is not None
    folder = trainer.save_checkpoint(tmp_path)
    resumed = RLTrainer(cfg.replace(resume_from=str(folder)), prompts=PROMPTS)
    assert resumed.algorithm_state == {"baseline": baseline}
