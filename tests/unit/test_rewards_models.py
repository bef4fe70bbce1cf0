"""Model-backed rewards: MiniLM similarity (bundled, offline), a tiny classifier and reward model, offline hub ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmrl_core.core.errors import InputError, ModelLoadError
from llmrl_core.lm_rl.rewards import build_reward
from llmrl_core.lm_rl.rewards.hf_models import bundled_minilm_dir


def test_minilm_similarity_is_higher_for_a_paraphrase_than_for_an_unrelated_sentence():
    fn = build_reward({"type": "similarity", "target": "The cat sat on the mat."})
    paraphrase, unrelated, same = fn(prompts=["p"] * 3, completions=[
        "A cat was sitting on the rug.", "Stock markets fell sharply today.", "The cat sat on the mat."])
    assert paraphrase > unrelated + 0.3
    assert same == pytest.approx(1.0, abs=1e-4)
    assert -1.0 <= unrelated <= 1.0


def _tiny_bert(folder: Path, num_labels: int, id2label: dict | None = None) -> Path:
    """A 2-layer random BERT classifier with MiniLM's (BERT) tokenizer, saved to `folder`."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_dir())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128, num_labels=num_labels,
                        **({"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}))
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _direct_logits(folder: Path, first: list[str], second: list[str] | None = None) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**tok(first, second, padding=True, return_tensors="pt")).logits


def test_classifier_reward_is_the_label_probability_or_logit(tmp_path: Path):
    folder = _tiny_bert(tmp_path / "clf", 2, {0: "NEGATIVE", 1: "POSITIVE"})
    texts = ["good film", "a bad, long and boring film"]
    want = _direct_logits(folder, texts)
    prob = build_reward({"type": "classifier", "model": str(folder), "label": "positive", "batch_size": 1})
    logit = build_reward({"type": "classifier", "model": str(folder), "label": "POSITIVE", "output": "logit"})
    assert prob(prompts=["p", "p"], completions=texts) == pytest.approx(want.softmax(-1)[:, 1].tolist(), abs=1e-5)
    assert logit(prompts=["p", "p"], completions=texts) == pytest.approx(want[:, 1].tolist(), abs=1e-5)
    with pytest.raises(Exception, match="no label 'JOY'; its labels are: NEGATIVE, POSITIVE"):
        build_reward({"type": "classifier", "model": str(folder), "label": "JOY"})


def test_reward_model_scores_prompt_and_completion_pairs(tmp_path: Path):
    folder = _tiny_bert(tmp_path / "rm", 1)
    prompts, completions = ["Say hi.", "Say bye."], ["Hi there!", "Goodbye."]
    want = _direct_logits(folder, prompts, completions)[:, 0]
    fn = build_reward({"type": "reward_model", "model": str(folder)})
    assert fn(prompts=prompts, completions=completions) == pytest.approx(want.tolist(), abs=1e-5)
    alone = build_reward({"type": "reward_model", "model": str(folder), "with_prompt": False})
    assert alone(prompts=prompts, completions=completions) == pytest.approx(
        _direct_logits(folder, completions)[:, 0].tolist(), abs=1e-5)


def test_reward_model_with_several_outputs_is_refused(tmp_path: Path):
    folder = _tiny_bert(tmp_path / "two", 2)
    with pytest.raises(Exception, match="has 2 outputs; a reward model has one"):
        build_reward({"type": "reward_model", "model": str(folder)})


def test_hub_ids_fail_fast_offline_and_missing_folders_are_named(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="Reward 'reward_model' .*hub is unreachable .* Give a local folder"):
        build_reward({"type": "reward_model", "model": "nobody/no-such-reward-model"})
    with pytest.raises(Exception, match="folder './missing-model' does not exist"):
        build_reward({"type": "classifier", "model": "./missing-model"})
    with pytest.raises(InputError, match=r"Reward 'classifier' .*Name the text-classification model"):
        build_reward({"type": "classifier"})
