"""The report sections of a Gymnasium run (the "gym" kind's RunKindSpec.report): its goal in words, the return
and loss curves with the solved line, and the latest recorded episode in the player.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go

from llmrl_core.present.report import MAX_POINTS, ReportParts, escape_text

MAIN_METRICS = ("eval/mean_reward", "rollout/ep_rew_mean", "charts/episodic_return")


def read_solved_return(config: Mapping[str, Any]) -> float | None:
    """The environment's 'solved' return (llmrl_core.gym.config.ENVS), or None."""
    try:
        from llmrl_core.gym.config import ENVS

        return ENVS[config.get("env_id")].solved_return
    except (KeyError, ImportError):
        return None


def describe_gym_goal(config: Mapping[str, Any]) -> str:
    """'Train a PPO agent to play CartPole-v1 until its evaluation return reaches 475, ..., within N steps.'"""
    env_id, solved = config.get("env_id", "?"), read_solved_return(config)
    goal = f"Train a {str(config.get('algo', '?')).upper()} agent to play {env_id}"
    if solved is not None:
        goal += f" until its evaluation return reaches {solved:g}, Gymnasium's 'solved' line"
    return goal + f", within {config.get('total_steps', '?')} environment steps."


def make_gym_curves(run: Mapping[str, Any], metrics: pd.DataFrame) -> list[go.Figure]:
    """The returns (with the solved line) and the losses."""
    from llmrl_core.present import gym as gym_figures
    from llmrl_core.runs.reader import downsample

    frame = downsample(metrics, MAX_POINTS)
    return [gym_figures.make_return_figure(frame, read_solved_return(run.get("config") or {})),
            gym_figures.make_losses_figure(frame)]


def render_player_html(store: Any, run_id: int) -> str:
    """The newest recorded episode (of the trained policy when there is one) in the episode player."""
    from llmrl_core.gym.episodes import load_episode
    from llmrl_core.present.gym import compute_player_height, render_episode_player_html

    episodes = store.list_artifacts(run_id, kind="episode")
    if episodes.empty:
        return '<p class="note">No episode was recorded.</p>'
    trained = episodes[episodes["meta"].map(lambda m: (m or {}).get("policy") != "random")]
    row = (trained if len(trained) else episodes).iloc[-1]
    try:
        episode = load_episode(row["path"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f'<p class="note">The recorded episode could not be read ({escape_text(err)}).</p>'
    player = render_episode_player_html(episode.to_dict(), title=f"Episode at step {int(row['step'])}", autoplay=False)
    return (f'<iframe class="player" sandbox="allow-scripts" title="episode player" '
            f'style="height:{compute_player_height()}px" srcdoc="{html.escape(player, quote=True)}"></iframe>')


def _episode_section(store: Any, run: Mapping[str, Any], metrics: pd.DataFrame, before_after: Any) -> str:
    return render_player_html(store, int(run["id"]))


REPORT_PARTS = ReportParts(
    describe_goal=describe_gym_goal,
    main_metrics=MAIN_METRICS,
    png_draws_every_main_metric=True,
    make_curves=make_gym_curves,
    sections=(("Episode", _episode_section),),
    reference_line=read_solved_return,
    y_label="return",
)
