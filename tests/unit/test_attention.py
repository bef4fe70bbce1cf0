"""Attention engine: shapes, row sums, the causal mask, the formula check, capping, aggregates and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llmrl_core.attention import maps as att
from llmrl_core.present import attention as viz
from llmrl_core.core.errors import InputError
from tests.support.reference import pool_map

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def tiny_eager(tiny_model_dir: Path):
    """The tiny random Llama (2 layers, 4 query heads on 2 key/value heads) with eager attention."""
    return att.load_attention_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def bundled_eager(bundled_dir: Path):
    """SmolLM2-135M-Instruct with eager attention (30 layers, 9 query heads on 3 key/value heads)."""
    return att.load_attention_model("bundled", device="cpu")


@pytest.fixture(scope="module")
def tiny_maps(tiny_eager) -> att.AttentionMaps:
    return att.extract_attention(tiny_eager, f"The cat sat on the mat. {SCRIPT} The cat sat")


# --------------------------------------------------------------------------- extraction


def test_shapes_dtype_and_grouped_query_heads(tiny_maps: att.AttentionMaps):
    n = len(tiny_maps.token_ids)
    assert tiny_maps.weights.shape == (2, 4, n, n)  # per query head (4), not per key/value head (2)
    assert tiny_maps.weights.dtype == np.float16
    assert tiny_maps.n_kv_heads == 2
    assert len(tiny_maps.tokens) == n and tiny_maps.n_prompt == n
    assert not tiny_maps.truncated and tiny_maps.message == ""


def test_rows_sum_to_one(tiny_maps: att.AttentionMaps):
    sums = tiny_maps.weights.astype(np.float32).sum(axis=-1)  # (L, H, T)
    np.testing.assert_allclose(sums, 1.0, atol=2e-3)  # float16 storage: ~1e-3 relative per cell


def test_causal_mask_holds(tiny_maps: att.AttentionMaps):
    n = tiny_maps.n_tokens
    above = np.triu(np.ones((n, n), dtype=bool), k=1)
    assert np.all(tiny_maps.weights[..., above] == 0)
    assert np.all(tiny_maps.weights[..., 0, 0] == 1)  # the first token can only see itself


def test_bundled_model_maps_per_query_head(bundled_eager):
    maps = att.extract_attention(bundled_eager, "Attention is all you need.")
    assert maps.weights.shape[:2] == (30, 9) and maps.n_kv_heads == 3
    np.testing.assert_allclose(maps.weights.astype(np.float32).sum(-1), 1.0, atol=2e-3)


@pytest.mark.parametrize("which, layer", [("tiny", 1), ("bundled", 7)])
def test_formula_recomputes_model_weights(which: str, layer: int, tiny_eager, request):
    """softmax(QK^T / sqrt(d_k) + causal mask), RoPE as the model applies it, matches to 1e-5."""
    loaded = tiny_eager if which == "tiny" else request.getfixturevalue("bundled_eager")
    ids = att.encode_text(loaded.tokenizer, "Queries meet keys; the softmax turns scores into weights that sum to one.")
    mine, model = att.recompute_layer_attention(loaded, ids, layer)
    assert mine.shape == model.shape == (loaded.model.config.num_attention_heads, len(ids), len(ids))
    assert torch.allclose(mine, model, atol=1e-5, rtol=0)
    # The check has teeth: leaving out the rotary positions gives clearly different weights.
    cap = att.capture_query_key(loaded, ids, layer)
    no_rope = att.compute_attention_from_qk(cap["q"], cap["k"], torch.ones_like(cap["cos"]), torch.zeros_like(cap["sin"]))
    assert (no_rope[0] - model).abs().max() > 1e-3


def test_sdpa_model_is_refused_with_a_message(tiny_lm):
    with pytest.raises(InputError, match="eager"):
        att.extract_attention(tiny_lm, "hello")


def test_empty_text_is_refused(tiny_eager):
    with pytest.raises(InputError, match="empty"):
        att.extract_attention(tiny_eager, "   ")


def test_over_long_text_gives_message_and_truncated_map(tiny_eager):
    text = "one two three four five six seven eight nine ten " * 8
    maps = att.extract_attention(tiny_eager, text, max_tokens=32)
    assert maps.truncated and maps.original_length > 32
    assert maps.weights.shape == (2, 4, 32, 32) and len(maps.tokens) == 32
    assert "first 32" in maps.message and str(maps.original_length) in maps.message


def test_cap_tokens_keeps_short_texts_whole():
    assert att.cap_tokens([1, 2, 3], 3) == ([1, 2, 3], "")
    ids, message = att.cap_tokens(list(range(600)))
    assert len(ids) == att.MAX_TOKENS == 512 and "600 tokens" in message
    from llmrl_core.attention.cli import DEFAULT_MAX_TOKENS

    assert DEFAULT_MAX_TOKENS == att.MAX_TOKENS  # the CLI's copy, kept so that parsing never imports torch


def test_prompt_plus_generated_completion(tiny_eager):
    from llmrl_core.lm.generation import SamplingConfig

    maps = att.generate_and_extract(tiny_eager, "Once upon a time", SamplingConfig(max_new_tokens=5, greedy=True), chat=False)
    assert 0 < maps.n_prompt < maps.n_tokens <= maps.n_prompt + 5
    assert maps.weights.shape[2] == maps.n_tokens == len(maps.tokens)
    assert "completion_text" in maps.extra


# --------------------------------------------------------------------------- aggregates (hand-computed)


def test_rollout_against_hand_computation():
    a = np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32)  # one head
    b = np.array([[1.0, 0.0], [0.9, 0.1]], dtype=np.float32)
    weights = np.stack([a[None], b[None]])  # (L=2, H=1, 2, 2)
    rolled = att.compute_rollout(weights, residual=0.5)
    # layer 0: 0.5 I + 0.5 A = [[1, 0], [0.25, 0.75]] (rows already sum to 1)
    np.testing.assert_allclose(rolled[0], [[1.0, 0.0], [0.25, 0.75]], atol=1e-6)
    # layer 1: [[1, 0], [0.45, 0.55]] @ [[1, 0], [0.25, 0.75]] = [[1, 0], [0.5875, 0.4125]]
    np.testing.assert_allclose(rolled[1], [[1.0, 0.0], [0.5875, 0.4125]], atol=1e-6)


def test_head_mean_and_entropy_by_hand():
    w = np.zeros((1, 2, 3, 3), dtype=np.float32)
    w[0, 0] = [[1, 0, 0], [1, 0, 0], [1, 0, 0]]  # everything on the first token: entropy 0
    w[0, 1] = [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]]  # uniform: normalised entropy 1
    np.testing.assert_allclose(att.compute_head_mean(w)[0, 1], [0.75, 0.25, 0.0])
    ent = att.compute_row_entropy(w)
    np.testing.assert_allclose(ent[0, 1], [0.0, np.log(2), np.log(3)], atol=1e-6)
    contrast = att.compute_entropy_contrast(w)
    np.testing.assert_allclose(contrast, [[0.0, 0.0]], atol=1e-6)  # both heads are even across queries
    w[0, 1, 2] = [1, 0, 0]  # now sharp at query 2, diffuse at query 1: std of [1, 0] = 0.5
    np.testing.assert_allclose(att.compute_entropy_contrast(w)[0, 1], 0.5, atol=1e-6)


def test_default_head_is_in_the_last_layer(tiny_maps: att.AttentionMaps):
    layer, head = att.pick_default_head(tiny_maps)
    assert layer == tiny_maps.n_layers - 1 and 0 <= head < tiny_maps.n_heads


def test_difference_of_a_model_with_itself_is_zero(tiny_eager, tiny_maps):
    again = att.extract_attention_like(tiny_eager, tiny_maps)
    diff = att.compute_attention_difference(tiny_maps, again)
    assert diff.shape == tiny_maps.weights.shape and float(np.abs(diff).max()) == 0.0
    assert att.summarize_difference(diff).shape == (2, 4)


def test_difference_shows_where_a_changed_checkpoint_attends_differently(tiny_model_dir, tiny_maps, tmp_path):
    """Perturb layer 1's queries in a copy ('a checkpoint'): layer 0 stays identical, layer 1 differs."""
    changed = att.load_attention_model(str(tiny_model_dir), device="cpu")
    with torch.no_grad():
        changed.model.model.layers[1].self_attn.q_proj.weight.mul_(3.0)
    diff = att.compute_attention_difference(tiny_maps, att.extract_attention_like(changed, tiny_maps))
    summary = att.summarize_difference(diff)  # (L, H)
    assert np.all(summary[0] == 0) and np.all(summary[1] > 1e-4)
    fig = viz.make_difference_heatmap(diff[1, 0], tiny_maps.tokens)
    assert fig.data[0].zmid == 0 and fig.data[0].zmax == -fig.data[0].zmin > 0
    grid = viz.make_layer_head_grid(summary)
    assert grid.data[0].zmin == 0


def test_difference_refuses_other_shapes(tiny_maps, bundled_eager):
    other = att.extract_attention_like(bundled_eager, tiny_maps)  # same tokenizer, 30 x 9 heads
    with pytest.raises(InputError, match="different shapes"):
        att.compute_attention_difference(tiny_maps, other)


# --------------------------------------------------------------------------- figures


def test_script_token_is_escaped_everywhere(tiny_maps: att.AttentionMaps):
    assert any("script" in t for t in tiny_maps.tokens)
    heat = viz.make_head_heatmap(tiny_maps.head(1, 0), tiny_maps.tokens, "t", n_prompt=tiny_maps.n_prompt)
    bar = viz.make_token_bar(tiny_maps.weights[1, 0, -1], tiny_maps.tokens, tiny_maps.n_tokens - 1)
    diff = viz.make_difference_heatmap(np.zeros((tiny_maps.n_tokens,) * 2), tiny_maps.tokens)
    svg = viz.render_head_view_svg(tiny_maps.weights[1].astype(np.float32), tiny_maps.tokens, [0, 1])
    for markup in (heat.to_json(), bar.to_json(), diff.to_json(), svg):
        assert "<script" not in markup and "</script" not in markup
        assert "&lt;" in markup and "&gt;" in markup


def test_heatmap_labels_are_unique_and_future_is_blank(tiny_maps: att.AttentionMaps):
    fig = viz.make_head_heatmap(tiny_maps.head(0, 1), tiny_maps.tokens)
    trace = fig.data[0]
    assert len(set(trace.x)) == tiny_maps.n_tokens  # repeated tokens ('The cat' twice) stay apart
    z = np.asarray(trace.z, dtype=float)
    assert np.isnan(z[0, 1]) and not np.isnan(z[1, 0])


def test_colour_scale_can_ignore_the_first_token():
    w = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.8, 0.05, 0.15]], dtype=np.float32)
    assert viz.make_head_heatmap(w, ["a", "b", "c"]).data[0].zmax == 1.0
    assert abs(viz.make_head_heatmap(w, ["a", "b", "c"], scale_without_first=True).data[0].zmax - 0.15) < 1e-6


def test_model_view_has_one_clickable_point_per_head(tiny_maps: att.AttentionMaps):
    fig = viz.make_model_view(tiny_maps.weights, selected=(1, 2))
    points = fig.data[1]
    assert len(points.customdata) == 2 * 4
    assert [list(c) for c in points.customdata][:2] == [[0, 0], [0, 1]]
    assert len(fig.layout.shapes) == 1  # the selected head is outlined


def test_thumbnail_canvas_matches_pooled_maps(tiny_maps: att.AttentionMaps):
    canvas = viz.make_thumbnail_canvas(tiny_maps.weights, tile=4, scale_without_first=False)  # (2 * 5 - 1, 4 * 5 - 1)
    assert canvas.shape == (9, 19) and canvas.dtype == np.uint8
    pooled = pool_map(tiny_maps.head(1, 2), 4)
    expected = np.rint(255 * np.tril(pooled) / pooled.max())
    np.testing.assert_array_equal(canvas[5:9, 10:14], expected)
    assert not canvas[4].any() and not canvas[:, 4].any()  # blank gaps between tiles


def test_pool_map_averages_blocks():
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(pool_map(w, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert pool_map(w, 8).shape == (4, 4)


def test_head_view_draws_lines_above_threshold_only():
    w = np.array([[[1.0, 0.0], [0.3, 0.7]]], dtype=np.float32)  # (H=1, T=2, T=2)
    svg = viz.render_head_view_svg(w, ["a", "b"], [0], threshold=0.5)
    assert svg.count("<line") == 2  # 1.0 (a->a) and 0.7 (b->b); 0.3 is hidden
    focused = viz.render_head_view_svg(w, ["a", "b"], [0], threshold=0.0, focus=1)
    assert focused.count("<line") == 2 and 'class="q0"' not in focused.split("<text")[0]


def test_format_token_label_shows_whitespace():
    assert viz.format_token_label("\n") == "↵"
    assert viz.format_token_label("  ") == "␣␣"
    assert viz.format_token_label(" the") == "␣the"
    assert viz.format_token_label("") == "∅"
    assert json.dumps(viz.format_token_label("a" * 40)).count("a") == 13
