"""Gym figures and the episode player: the right traces, the solved line, and escaped text."""

from __future__ import annotations

import json
import re

import pandas as pd

from llmrl_core.gym.episodes import play_random_episode
from llmrl_core.present.gym import make_fps_figure, make_losses_figure, make_return_figure, render_episode_player_html

METRICS = pd.DataFrame({
    "step": [256, 512, 1000],
    "rollout/ep_rew_mean": [20.0, 30.0, None],
    "charts/episodic_return": [21.0, 35.0, None],
    "eval/mean_reward": [None, None, 120.0],
    "train/loss": [1.0, 0.5, None],
    "train/approx_kl": [0.01, 0.02, None],
    "time/fps": [2000.0, 2100.0, None],
})


def test_return_figure_has_curves_and_solved_line() -> None:
    fig = make_return_figure(METRICS, solved_return=475)
    names = [t.name for t in fig.data]
    assert names == ["episode return (since last point)", "episode return (mean of last 100)", "evaluation return (deterministic)"]
    evaluation = fig.data[2]
    assert list(evaluation.x) == [1000] and list(evaluation.y) == [120.0]  # NaN rows dropped
    assert any(s.y0 == 475 for s in fig.layout.shapes)
    assert any("solved (475)" in a.text for a in fig.layout.annotations)


def test_return_figure_without_data_or_line() -> None:
    fig = make_return_figure(pd.DataFrame(columns=["step"]), solved_return=None)
    assert len(fig.data) == 0 and not fig.layout.shapes


def test_losses_and_fps_figures() -> None:
    losses = make_losses_figure(METRICS)
    assert {t.name for t in losses.data} == {"train/loss", "train/approx_kl"}
    fps = make_fps_figure(METRICS)
    assert list(fps.data[0].y) == [2000.0, 2100.0]


def test_player_embeds_the_episode_and_escapes_text() -> None:
    episode = play_random_episode("CartPole-v1", seed=3).to_dict()
    episode["action_names"] = ["</script><b>left", "right"]
    page = render_episode_player_html(episode, title='<img src=x onerror="alert(1)"> __DATA__')
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; __DATA__" in page
    assert page.count("</script>") == 1  # only the player's own closing tag
    data = json.loads(re.search(r"const ep = (\{.*?\});\n", page).group(1))
    assert data["states"] == episode["states"] and data["fps"] == 50
    assert data["action_names"][0] == "</script><b>left"  # decoded by the browser, written with textContent
    assert "innerHTML" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # no CDN
