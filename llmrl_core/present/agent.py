"""Figures for language-model agent runs: the return against the baselines, the losses, the episode player.

- `make_agent_return_figure`: training episode returns, and the zero-shot and trained evaluations,
  against environment steps, with the random policy's return, a Stable-Baselines3 agent's (from a
  Gym run, when one exists) and the solved line as horizontal references.
- `make_agent_losses_figure`: policy and value losses, entropy, approx KL and clip fraction.
- `make_agent_diagnostics_figure`: what shows learning before the greedy return can: the mean
  probability of pushing toward the pole's lean on fixed probe states, the policy's entropy and the
  minority actions per rollout (exploration).
- `render_agent_player_html`: the Gym page's episode player (present/gym.py) with the model's action
  probabilities at each step drawn as bars beneath the scene, and FrozenLake drawn as its grid. The
  bars follow the player's frame through its `data-frame` attribute, so the player itself is unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llmrl_core.agent.text_env import FROZEN_LAKE_MAP
from llmrl_core.present.gym import compute_player_height, make_return_figure, render_episode_player_html

PROB_ROW_PX = 22
"""Height of one action's probability bar in the player."""
LOSS_KEYS = ("losses/policy_loss", "losses/value_loss")
SIDE_KEYS = ("losses/entropy", "losses/approx_kl", "losses/clipfrac")
DIAGNOSTIC_PANELS = (
    ("diag/p_toward_lean", "p(push toward the lean), probe states"),
    ("diag/entropy", "policy entropy per rollout (nats)"),
    ("diag/minority_actions", "minority actions per rollout"),
)
"""(metric, panel title) of the diagnostics figure, left to right."""


def make_agent_return_figure(metrics: pd.DataFrame, random_return: float | None = None,
                             sb3_return: float | None = None, solved_return: float | None = None,
                             height: int = 380) -> go.Figure:
    """The return curves of an agent run with the baselines as dashed lines (any may be None: then not drawn)."""
    fig = make_return_figure(metrics, solved_return, height=height)
    for trace in fig.data:
        if trace.name == "evaluation return (deterministic)":
            trace.name = "evaluation: zero-shot, then trained (20 episodes)"
    if random_return is not None:
        fig.add_hline(y=random_return, line=dict(color="#888", dash="dot"),
                      annotation_text=f"random policy ({random_return:.1f})", annotation_position="top left")
    if sb3_return is not None:
        fig.add_hline(y=sb3_return, line=dict(color="#ab63fa", dash="dash"),
                      annotation_text=f"SB3 PPO ({sb3_return:.1f})", annotation_position="top right")
    return fig


def make_agent_losses_figure(metrics: pd.DataFrame, height: int = 340) -> go.Figure:
    """Policy and value losses (left); entropy, approx KL and clip fraction (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("policy · value loss", "entropy · approx KL · clip fraction"))
    for col, keys in ((1, LOSS_KEYS), (2, SIDE_KEYS)):
        for key in keys:
            if metrics is None or metrics.empty or key not in metrics.columns:
                continue
            data = metrics[["step", key]].dropna()
            if not data.empty:
                fig.add_trace(go.Scatter(x=data["step"], y=data[key], name=key, mode="lines"), row=1, col=col)
    fig.update_xaxes(title_text="environment steps")
    fig.update_layout(height=height, margin=dict(l=50, r=20, t=40, b=40), hovermode="x unified",
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


def make_agent_diagnostics_figure(metrics: pd.DataFrame, height: int = 300) -> go.Figure:
    """Three panels against environment steps: p(toward the lean) with 0.5 (no preference) dotted, entropy,
    minority actions. A panel whose metric the run does not log (FrozenLake has no probes) stays empty."""
    fig = make_subplots(rows=1, cols=len(DIAGNOSTIC_PANELS), subplot_titles=[t for _, t in DIAGNOSTIC_PANELS])
    for col, (key, title) in enumerate(DIAGNOSTIC_PANELS, start=1):
        if metrics is None or metrics.empty or key not in metrics.columns:
            continue
        data = metrics[["step", key]].dropna()
        if not data.empty:
            fig.add_trace(go.Scatter(x=data["step"], y=data[key], name=title, mode="lines+markers",
                                     marker=dict(size=4)), row=1, col=col)
    fig.add_hline(y=0.5, line=dict(color="#888", dash="dot"), row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(title_text="environment steps")
    fig.update_layout(height=height, margin=dict(l=50, r=20, t=40, b=40), hovermode="x unified", showlegend=False)
    return fig


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no '</script>', no HTML-significant characters)."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_PROBS_STYLE = """<style>
#probs { flex: none; margin-top: 4px; font-size: 13px; font-variant-numeric: tabular-nums; }
#probs .row { display: flex; align-items: center; gap: 6px; height: __ROW__px; }
#probs .name { flex: 0 0 90px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#probs .track { flex: 1 1 auto; height: 12px; background: #eef0f6; border-radius: 3px; overflow: hidden; }
#probs .fill { height: 100%; background: #8a8fd1; width: 0; }
#probs .row.chosen .fill { background: #3b4a6b; }
#probs .row.chosen .name { font-weight: 600; }
#probs .value { flex: 0 0 48px; text-align: right; }
</style>"""

_PROBS_SCRIPT = """<script>
(function () {
  const agent = __AGENT__;
  const wrap = document.getElementById("wrap"), box = document.getElementById("probs");
  const svg = document.getElementById("scene"), NS = "http://www.w3.org/2000/svg";
  const rows = agent.names.map((name) => {
    const row = document.createElement("div"); row.className = "row";
    const label = document.createElement("span"); label.className = "name"; label.textContent = name; label.title = name;
    const track = document.createElement("span"); track.className = "track";
    const fill = document.createElement("span"); fill.className = "fill"; fill.style.display = "block";
    track.appendChild(fill);
    const value = document.createElement("span"); value.className = "value";
    row.append(label, track, value); box.appendChild(row);
    return {row: row, fill: fill, value: value};
  });
  function drawGrid(cell) {
    const desc = agent.grid, nr = desc.length, nc = desc[0].length;
    const vb = svg.viewBox.baseVal, size = Math.min(vb.width / nc, vb.height / nr);
    const x0 = (vb.width - size * nc) / 2, y0 = (vb.height - size * nr) / 2;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const colours = {S: "#dbe8f6", F: "#dbe8f6", H: "#2c3e57", G: "#7ccf9a"};
    for (let r = 0; r < nr; r++) for (let c = 0; c < nc; c++) {
      const rect = document.createElementNS(NS, "rect");
      const attrs = {x: x0 + c * size + 1, y: y0 + r * size + 1, width: size - 2, height: size - 2, rx: 4, fill: colours[desc[r][c]] || "#ccc"};
      for (const k in attrs) rect.setAttribute(k, attrs[k]);
      svg.appendChild(rect);
    }
    const r = Math.floor(cell / nc), c = cell % nc, dot = document.createElementNS(NS, "circle");
    const attrs = {cx: x0 + (c + 0.5) * size, cy: y0 + (r + 0.5) * size, r: size * 0.3, fill: "#c8874a"};
    for (const k in attrs) dot.setAttribute(k, attrs[k]);
    svg.appendChild(dot);
  }
  function update() {
    const f = +(wrap.dataset.frame || 0), p = agent.probs[f] || [], chosen = agent.actions[f];
    rows.forEach((r, i) => {
      const v = p[i] === undefined ? 0 : p[i];
      r.fill.style.width = (100 * v).toFixed(1) + "%";
      r.value.textContent = v.toFixed(2);
      r.row.classList.toggle("chosen", i === chosen);
    });
    box.dataset.frame = f;
    if (agent.grid && agent.states[f]) drawGrid(agent.states[f][0]);
  }
  new MutationObserver(update).observe(wrap, {attributes: true, attributeFilter: ["data-frame"]});
  update();
})();
</script>"""


def compute_agent_player_height(svg_height: int, n_actions: int) -> int:
    """Frame height (px) of the agent player: the Gym player's plus one bar per action."""
    return compute_player_height(svg_height) + n_actions * PROB_ROW_PX + 8


def render_agent_player_html(episode: Mapping[str, Any], title: str = "", autoplay: bool = True,
                             svg_height: int = 240) -> str:
    """The episode player with the model's action probabilities (episode['action_probs'][t]) beneath the scene.

    Action names and probabilities reach the page as script-safe JSON written with textContent only.
    """
    names = [str(a) for a in episode.get("action_names", [])]
    extra = len(names) * PROB_ROW_PX + 8
    page = render_episode_player_html(episode, title=title, autoplay=autoplay, svg_height=svg_height + extra)
    agent = {
        "names": names,
        "probs": [[float(p) for p in row] for row in episode.get("action_probs", [])],
        "actions": [a if isinstance(a, int) else None for a in episode.get("actions", [])],
        "states": episode.get("states", []),
        "grid": list(FROZEN_LAKE_MAP) if episode.get("env_id") == "FrozenLake-v1" else None,
    }
    page = page.replace("</head>", _PROBS_STYLE.replace("__ROW__", str(PROB_ROW_PX)) + "</head>", 1)
    page = page.replace('<div id="info">', '<div id="probs" aria-label="action probabilities"></div>\n<div id="info">', 1)
    script = _PROBS_SCRIPT.replace("__AGENT__", _script_json(agent))
    return page.replace("</body>", script + "</body>", 1)
