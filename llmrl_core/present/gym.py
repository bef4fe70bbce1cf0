"""Figures for Gymnasium runs: plain data in, plotly figures (or a self-contained HTML player) out.

- `make_return_figure`: episodic and evaluation return against environment steps, with the
  environment's solved line.
- `make_losses_figure`: SB3's train/* losses, and approx_kl / clip_fraction / exploration.
- `make_fps_figure`: throughput (time/fps).
- `render_episode_player_html`: an episode replayed in the browser from its recorded states,
  drawn as SVG by inline JavaScript (no CDN, no video): play/pause, scrub, speed, step counter,
  return so far and the action taken. The scene shrinks to leave the controls inside the frame;
  `compute_player_height` gives the frame height for a scene of a given height. The page shows it with st.iframe; because the HTML only
  changes when a new episode is recorded, polling the run does not restart the animation.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

RETURN_SERIES = (
    ("charts/episodic_return", "episode return (since last point)", "rgba(99,110,250,0.35)", "lines"),
    ("rollout/ep_rew_mean", "episode return (mean of last 100)", "#636efa", "lines"),
    ("eval/mean_reward", "evaluation return (deterministic)", "#ef553b", "lines+markers"),
)
LOSS_KEYS = ("train/loss", "train/value_loss", "train/policy_gradient_loss", "train/policy_loss", "train/entropy_loss")
SIDE_KEYS = ("train/approx_kl", "train/clip_fraction", "rollout/exploration_rate")


def _series(metrics: pd.DataFrame, key: str) -> pd.DataFrame:
    """Steps and values of one metric, NaNs dropped."""
    if metrics is None or metrics.empty or key not in metrics.columns:
        return pd.DataFrame({"step": [], key: []})
    return metrics[["step", key]].dropna()


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=50, b=40), hovermode="x unified",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    return fig


def make_return_figure(metrics: pd.DataFrame, solved_return: float | None = None, height: int = 360) -> go.Figure:
    """Return curves against environment steps; `metrics` is wide (one row per step, one column per name)."""
    fig = go.Figure()
    for key, label, color, mode in RETURN_SERIES:
        data = _series(metrics, key)
        if data.empty:
            continue
        fig.add_trace(go.Scatter(x=data["step"], y=data[key], name=label, mode=mode, line=dict(color=color)))
    if solved_return is not None:
        fig.add_hline(y=solved_return, line=dict(color="#00a86b", dash="dash"),
                      annotation_text=f"solved ({solved_return:g})", annotation_position="bottom right")
    fig.update_xaxes(title_text="environment steps")
    fig.update_yaxes(title_text="return")
    return _layout(fig, "Return", height)


def make_losses_figure(metrics: pd.DataFrame, height: int = 380) -> go.Figure:
    """SB3's losses (left) and the step-size signals approx_kl, clip_fraction, exploration_rate (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("losses", "approx KL · clip fraction · exploration"))
    for col, keys in ((1, LOSS_KEYS), (2, SIDE_KEYS)):
        for key in keys:
            data = _series(metrics, key)
            if not data.empty:
                fig.add_trace(go.Scatter(x=data["step"], y=data[key], name=key, mode="lines"), row=1, col=col)
    fig.update_xaxes(title_text="environment steps")
    _layout(fig, "", height)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.3, x=0), margin=dict(t=30, b=40))
    return fig


def make_fps_figure(metrics: pd.DataFrame, height: int = 260) -> go.Figure:
    """Environment steps per second (SB3's time/fps) against steps."""
    fig = go.Figure()
    data = _series(metrics, "time/fps")
    if not data.empty:
        fig.add_trace(go.Scatter(x=data["step"], y=data["time/fps"], name="time/fps", mode="lines"))
    fig.update_xaxes(title_text="environment steps")
    fig.update_yaxes(title_text="steps / s")
    return _layout(fig, "Throughput", height)


def _safe_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no '</script>' or HTML-significant characters)."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_PLAYER_TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>
html, body { height: 100%; margin: 0; overflow: hidden; }
body { font-family: system-ui, sans-serif; font-size: 14px; color: #222; }
/* A column as tall as the frame: title, controls and step counter take what they need and the
   scene gets the rest, so the controls stay inside the frame at any frame height or width. */
#wrap { box-sizing: border-box; height: 100%; max-height: __MAX_H__px; display: flex; flex-direction: column; padding: 4px 8px; }
#title { flex: none; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
svg { flex: 1 1 0; min-height: 40px; width: 100%; background: #fbfbfd; border: 1px solid #e3e3ea; border-radius: 6px; box-sizing: border-box; }
#bar { flex: none; display: flex; flex-wrap: wrap; gap: 6px 8px; align-items: center; margin-top: 6px; }
#scrub { flex: 1 1 120px; }
#info { flex: none; margin-top: 4px; font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
button, select { font-size: 13px; padding: 2px 8px; }
</style></head><body><div id="wrap" data-drawn="0">
<div id="title" title="__TITLE__">__TITLE__</div>
<svg id="scene" viewBox="0 0 600 __SVG_H__" preserveAspectRatio="xMidYMid meet"></svg>
<div id="bar">
  <button id="play" type="button">Pause</button>
  <input id="scrub" type="range" min="0" max="0" value="0" step="1" aria-label="frame">
  <select id="speed" aria-label="speed"><option value="0.5">0.5×</option><option value="1" selected>1×</option><option value="2">2×</option><option value="4">4×</option></select>
  <label><input id="loop" type="checkbox" checked> loop</label>
</div>
<div id="info"><span id="step"></span> · <span id="ret"></span> · <span id="act"></span></div>
</div>
<script>
(function () {
  const ep = __DATA__;
  const W = 600, H = __SVG_H__, NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("scene"), wrap = document.getElementById("wrap");
  const scrub = document.getElementById("scrub"), playBtn = document.getElementById("play");
  const stepEl = document.getElementById("step"), retEl = document.getElementById("ret"), actEl = document.getElementById("act");
  const n = ep.states.length;
  scrub.max = Math.max(n - 1, 0);
  const cum = []; let s = 0; for (const r of ep.rewards) { s += r; cum.push(s); }
  function el(tag, attrs) { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); svg.appendChild(e); return e; }
  // World box per environment: [xmin, xmax, ymin, ymax]; y points up.
  const boxes = {"CartPole-v1": [-2.4, 2.4, -0.6, 1.6], "Acrobot-v1": [-2.2, 2.2, -2.2, 2.2],
                 "MountainCar-v0": [-1.2, 0.6, -0.05, 1.15], "Pendulum-v1": [-1.3, 1.3, -1.3, 1.3]};
  const box = boxes[ep.env_id] || [-1, 1, -1, 1];
  const sx = Math.min(W / (box[1] - box[0]), H / (box[3] - box[2]));
  const ox = (W - sx * (box[1] - box[0])) / 2, oy = (H - sx * (box[3] - box[2])) / 2;
  const X = (x) => ox + (x - box[0]) * sx, Y = (y) => H - oy - (y - box[2]) * sx;
  let draw;
  if (ep.env_id === "CartPole-v1") {
    el("line", {x1: 0, x2: W, y1: Y(0), y2: Y(0), stroke: "#999", "stroke-width": 2});
    const cart = el("rect", {width: 0.5 * sx, height: 0.3 * sx, rx: 4, fill: "#3b4a6b"});
    const pole = el("line", {stroke: "#c8874a", "stroke-width": 0.1 * sx, "stroke-linecap": "round"});
    const axle = el("circle", {r: 0.05 * sx, fill: "#8a8fd1"});
    draw = (st) => {
      const x = st[0], th = st[2];
      cart.setAttribute("x", X(x) - 0.25 * sx); cart.setAttribute("y", Y(0.15));
      pole.setAttribute("x1", X(x)); pole.setAttribute("y1", Y(0.15));
      pole.setAttribute("x2", X(x + Math.sin(th))); pole.setAttribute("y2", Y(0.15 + Math.cos(th)));
      axle.setAttribute("cx", X(x)); axle.setAttribute("cy", Y(0.15));
    };
  } else if (ep.env_id === "Acrobot-v1") {
    el("line", {x1: 0, x2: W, y1: Y(1), y2: Y(1), stroke: "#00a86b", "stroke-dasharray": "6 4"});
    const l1 = el("line", {stroke: "#3b4a6b", "stroke-width": 0.12 * sx, "stroke-linecap": "round"});
    const l2 = el("line", {stroke: "#3b4a6b", "stroke-width": 0.12 * sx, "stroke-linecap": "round"});
    const j = el("circle", {r: 0.07 * sx, fill: "#c8874a"});
    draw = (st) => {
      const t1 = Math.atan2(st[1], st[0]), t2 = Math.atan2(st[3], st[2]);
      const p1 = [Math.sin(t1), -Math.cos(t1)], p2 = [p1[0] + Math.sin(t1 + t2), p1[1] - Math.cos(t1 + t2)];
      l1.setAttribute("x1", X(0)); l1.setAttribute("y1", Y(0)); l1.setAttribute("x2", X(p1[0])); l1.setAttribute("y2", Y(p1[1]));
      l2.setAttribute("x1", X(p1[0])); l2.setAttribute("y1", Y(p1[1])); l2.setAttribute("x2", X(p2[0])); l2.setAttribute("y2", Y(p2[1]));
      j.setAttribute("cx", X(p1[0])); j.setAttribute("cy", Y(p1[1]));
    };
  } else if (ep.env_id === "MountainCar-v0") {
    const h = (x) => Math.sin(3 * x) * 0.45 + 0.55;
    let d = ""; for (let i = 0; i <= 100; i++) { const x = -1.2 + 1.8 * i / 100; d += (i ? "L" : "M") + X(x) + " " + Y(h(x)); }
    el("path", {d: d, stroke: "#777", fill: "none", "stroke-width": 2});
    el("line", {x1: X(0.5), x2: X(0.5), y1: Y(h(0.5)), y2: Y(h(0.5) + 0.15), stroke: "#00a86b", "stroke-width": 3});
    const car = el("rect", {width: 0.16 * sx, height: 0.07 * sx, rx: 3, fill: "#3b4a6b"});
    draw = (st) => {
      const x = st[0], ang = -Math.atan(Math.cos(3 * x) * 1.35) * 180 / Math.PI;
      car.setAttribute("x", X(x) - 0.08 * sx); car.setAttribute("y", Y(h(x)) - 0.07 * sx);
      car.setAttribute("transform", "rotate(" + ang + " " + X(x) + " " + Y(h(x)) + ")");
    };
  } else {
    const rod = el("line", {stroke: "#c8874a", "stroke-width": 0.16 * sx, "stroke-linecap": "round"});
    el("circle", {cx: X(0), cy: Y(0), r: 0.06 * sx, fill: "#3b4a6b"});
    draw = (st) => {
      const th = Math.atan2(st[1], st[0]);
      rod.setAttribute("x1", X(0)); rod.setAttribute("y1", Y(0));
      rod.setAttribute("x2", X(-Math.sin(th))); rod.setAttribute("y2", Y(Math.cos(th)));
    };
  }
  function fmt(a) { return typeof a === "number" ? (Number.isInteger(a) ? String(a) : a.toFixed(2)) : JSON.stringify(a); }
  let frame = 0, playing = n > 0, last = null, acc = 0, hold = 0, drawn = 0;
  function show(i) {
    if (!n) { stepEl.textContent = "no steps recorded"; return; }
    frame = Math.max(0, Math.min(n - 1, i));
    draw(ep.states[frame]);
    scrub.value = frame;
    const a = ep.actions[frame];
    const name = (typeof a === "number" && ep.action_names[a] !== undefined) ? ep.action_names[a] : fmt(a);
    stepEl.textContent = "step " + (frame + 1) + " / " + n;
    retEl.textContent = "return " + cum[frame].toFixed(1);
    actEl.textContent = "action: " + name;
    drawn += 1; wrap.dataset.drawn = drawn; wrap.dataset.frame = frame;
  }
  function tick(now) {
    if (last === null) last = now;
    const dt = (now - last) / 1000; last = now;
    if (playing && n) {
      if (hold > 0) { hold -= dt; if (hold <= 0) show(0); }
      else {
        acc += dt * ep.fps * parseFloat(document.getElementById("speed").value);
        const steps = Math.floor(acc);
        if (steps > 0) {
          acc -= steps;
          if (frame + steps >= n - 1) {
            show(n - 1);
            if (document.getElementById("loop").checked) { hold = 1.0; } else { playing = false; playBtn.textContent = "Play"; }
          } else { show(frame + steps); }
        }
      }
    }
    requestAnimationFrame(tick);
  }
  playBtn.addEventListener("click", () => {
    playing = !playing; playBtn.textContent = playing ? "Pause" : "Play";
    if (playing && frame >= n - 1) show(0);
  });
  scrub.addEventListener("input", () => { playing = false; playBtn.textContent = "Play"; show(parseInt(scrub.value, 10)); });
  show(0);
  if (!__AUTOPLAY__) { playing = false; playBtn.textContent = "Play"; }
  requestAnimationFrame(tick);
})();
</script></body></html>
"""


def render_episode_player_html(episode: Mapping[str, Any], title: str = "", autoplay: bool = True,
                               svg_height: int = 260) -> str:
    """A self-contained HTML page that replays `episode` (an Episode.to_dict()) at its fps, with controls.

    All text reaches the page escaped: the title through html.escape, the data as script-safe JSON
    whose strings the script only ever writes with textContent.
    """
    data = {
        "env_id": str(episode.get("env_id", "")),
        "states": episode.get("states", []),
        "actions": episode.get("actions", []),
        "rewards": episode.get("rewards", []),
        "action_names": [str(a) for a in episode.get("action_names", [])],
        "fps": max(1, int(episode.get("fps", 30))),
    }
    values = {
        "DATA": _safe_json(data),
        "TITLE": html.escape(title),
        "SVG_H": str(int(svg_height)),
        "MAX_H": str(compute_player_height(svg_height)),
        "AUTOPLAY": "true" if autoplay else "false",
    }
    # One pass, so a value that happens to contain a placeholder is never substituted again.
    return re.sub(r"__(DATA|TITLE|SVG_H|MAX_H|AUTOPLAY)__", lambda m: values[m.group(1)], _PLAYER_TEMPLATE)


def compute_player_height(svg_height: int = 260) -> int:
    """Frame height (px) that shows a `svg_height` scene with the title, the controls and the step counter below it."""
    return int(svg_height) + 96  # title 20 + controls 6 + 30 + counter 4 + 20 + padding 8 + slack 8
