"""Training the language-model agent: GAE and the confidence interval by hand, tiny-budget runs end to end."""

from __future__ import annotations

import json

import pytest
import torch

from llmrl_core.agent.config import AgentConfig
from llmrl_core.agent.train import compute_env_gae, compute_return_difference, compute_rollout_diagnostics
from llmrl_core.runs import RunManager


def test_env_gae_restarts_at_episode_ends_by_hand() -> None:
    # One environment, 3 steps; the episode ends with step 1, so step 2 starts a new one.
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.5], [0.4], [0.3]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    next_value = torch.tensor([0.2])
    gamma, lam = 0.9, 0.5
    adv, ret = compute_env_gae(rewards, values, dones, next_value, gamma, lam)
    a2 = 1.0 + 0.9 * 0.2 - 0.3  # 0.88, bootstrapped from the state after the rollout
    a1 = 1.0 - 0.4  # 0.6: the episode ended, no value after it and nothing flows back
    a0 = (1.0 + 0.9 * 0.4 - 0.5) + 0.9 * 0.5 * a1  # 0.86 + 0.27
    torch.testing.assert_close(adv, torch.tensor([[a0], [a1], [a2]]))
    torch.testing.assert_close(ret, adv + values)


def test_rollout_diagnostics_by_hand() -> None:
    actions = torch.tensor([[0, 1], [1, 1], [1, 0]])  # four of action 1, two of action 0
    probs = torch.tensor([0.9, 0.1])
    entropy = torch.full((3, 2), float(-(probs * probs.log()).sum()))
    out = compute_rollout_diagnostics(actions, entropy)
    assert out["diag/minority_actions"] == 2.0
    assert out["diag/entropy"] == pytest.approx(0.325083, abs=1e-6)  # -(0.9 ln 0.9 + 0.1 ln 0.1)
    assert compute_rollout_diagnostics(torch.tensor([[2, 2]]), None) == {"diag/minority_actions": 0.0}


def test_return_difference_is_welch_by_hand() -> None:
    before, after = [10.0, 12.0, 14.0], [20.0, 30.0, 40.0]
    out = compute_return_difference(before, after)
    # var/n: 4/3 and 100/3 -> se = sqrt(104/3); Welch dof = (104/3)^2 / ((4/3)^2/2 + (100/3)^2/2)
    se = (104 / 3) ** 0.5
    dof = (104 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (100 / 3) ** 2 / 2)
    from scipy import stats

    half = stats.t.ppf(0.975, dof) * se
    assert out["diff"] == pytest.approx(18.0)
    assert out["ci_low"] == pytest.approx(18.0 - half) and out["ci_high"] == pytest.approx(18.0 + half)


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_tiny_run_logs_metrics_episodes_and_the_comparison(store, tiny_model_dir, algo: str) -> None:
    config = AgentConfig(model=str(tiny_model_dir), algo=algo, n_envs=2, n_steps=8, total_steps=32, minibatch_size=8,
                         eval_episodes=3, device="cpu", lora_target_modules=["q_proj", "v_proj"])
    manager = RunManager(store)
    run_id, status = manager.run_foreground("agent", config.to_dict(), total_steps=config.total_steps)
    run = store.get_run(run_id)
    assert status == "completed", run["error"]
    names = set(store.metric_names(run_id))
    assert {"baseline/random_return", "eval/mean_reward", "eval/zero_shot_return", "eval/trained_return",
            "losses/policy_loss", "losses/value_loss", "losses/entropy", "time/fps", "time/rollout_sps",
            "diag/p_toward_lean", "diag/entropy", "diag/minority_actions"} <= names, names
    probes = store.read_metrics(run_id, names=["diag/p_toward_lean"])
    assert list(probes["step"]) == [0, 16, 32] and probes["value"].between(0, 1).all()  # before training, then per update
    minority = store.read_metrics(run_id, names=["diag/minority_actions"])["value"]
    assert minority.between(0, 8).all()  # at most half of a rollout's 16 actions
    if algo == "ppo":
        assert "losses/approx_kl" in names
    summary = run["summary"]
    assert summary["steps"] == 32 and summary["updates"] == 2
    low, high = summary["difference_ci95"]
    assert low <= summary["difference"] <= high
    assert summary["difference"] == pytest.approx(summary["trained_return"] - summary["zero_shot_return"])
    episodes = store.list_artifacts(run_id, kind="episode")
    assert len(episodes) >= 2  # zero-shot and trained, plus training episodes that ended
    data = json.loads(open(episodes["path"].iloc[-1]).read())
    assert data["policy"] == "trained" and data["length"] == len(data["states"]) == len(data["action_probs"]) > 0
    assert all(abs(sum(p) - 1.0) < 1e-3 for p in data["action_probs"])
    assert data["action_names"] == ["left", "right"]
    assert not store.list_artifacts(run_id, kind="checkpoint").empty


def test_frozen_lake_runs_with_four_action_words(store, tiny_model_dir) -> None:
    config = AgentConfig(env_id="FrozenLake-v1", model=str(tiny_model_dir), n_envs=2, n_steps=4, total_steps=8,
                         minibatch_size=8, eval_episodes=2, device="cpu", use_lora=False)
    run_id, status = RunManager(store).run_foreground("agent", config.to_dict(), total_steps=config.total_steps)
    assert status == "completed", store.get_run(run_id)["error"]
    data = json.loads(open(store.list_artifacts(run_id, kind="episode")["path"].iloc[0]).read())
    assert data["env_id"] == "FrozenLake-v1" and len(data["action_probs"][0]) == 4


def test_tokenizer_checks_fail_the_run_before_any_step(store, tiny_model_dir) -> None:
    config = AgentConfig(model=str(tiny_model_dir), device="cpu",
                         instruction="Push the cart left or right. " + "Keep the pole up. " * 60 + "\n")
    run_id, status = RunManager(store).run_foreground("agent", config.to_dict(), total_steps=config.total_steps)
    run = store.get_run(run_id)
    assert status == "failed" and "more than the model's context of 256" in run["error"]
    assert store.metric_names(run_id) == [] or not store.metric_names(run_id)


def test_stop_takes_effect_within_a_rollout(tiny_lm) -> None:
    from llmrl_core.agent.train import AgentTrainer

    trainer = AgentTrainer(AgentConfig(model="tiny", n_envs=2, n_steps=64, device="cpu", use_lora=False), tiny_lm)
    calls = []
    try:
        assert trainer.collect_rollout(should_stop=lambda: calls.append(1) or len(calls) > 3) is None
        assert len(calls) == 4 and trainer.steps == 6  # three batched steps of two environments, then the stop
    finally:
        trainer.close()


def test_lora_last_layers_puts_adapters_in_the_top_blocks_only(tiny_lm) -> None:
    from llmrl_core.agent.train import make_trainable

    model = make_trainable(tiny_lm.model, AgentConfig(lora_last_layers=1, lora_target_modules=["q_proj", "v_proj"]))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.1." in n and "lora_" in n for n in trainable), trainable


def test_lora_last_layers_beyond_the_model_adapts_every_block(tiny_lm) -> None:
    """The default (4 blocks) on a 2-block model: adapters in both blocks, as with 0."""
    from llmrl_core.agent.train import make_trainable

    model = make_trainable(tiny_lm.model, AgentConfig(lora_last_layers=3, lora_target_modules=["q_proj", "v_proj"]))
    blocks = {n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert blocks == {"0", "1"}, blocks


def test_lora_last_layers_with_all_linear_adapts_every_linear_of_the_top_block(tiny_lm) -> None:
    from llmrl_core.agent.train import make_trainable

    model = make_trainable(tiny_lm.model, AgentConfig(lora_last_layers=1))
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert all(".layers.1." in n for n, p in model.named_parameters() if p.requires_grad)
