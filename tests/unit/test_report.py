"""The stakeholder report: one self-contained HTML file (no external URL, everything escaped) and a PNG."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from llmrl_core.core.errors import InputError
from llmrl_core.lm_rl.evaluate import BeforeAfter
from llmrl_core.present.report import describe_goal, render_report_html, write_report, write_report_png

SCRIPT, IMG = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"
PAYLOAD = f"{SCRIPT} {IMG}"
LM_CONFIG = {"model": "tiny", "algorithm": "grpo", "steps": 30, "prompt_set": "sentence-starters",
             "rewards": [{"type": "vader", "weight": 1.0}], "prompts_per_step": 2, "num_generations": 2,
             "max_new_tokens": 16, "learning_rate": 1e-5, "beta": 0.04, "use_lora": False, "seed": 0}


def make_lm_run(store, name: str = "sentiment run", steps: int = 30, config: dict | None = None,
                payload: str = PAYLOAD, samples_every: int = 1) -> int:
    """A finished RL fine-tuning run with TRL-named metrics and samples whose text carries `payload`."""
    run_id = store.create_run("lm_rl", name, config or LM_CONFIG, total_steps=steps)
    store.mark_started(run_id)
    for step in range(1, steps + 1):
        t = step / steps
        store.log_metrics(run_id, step, {
            "reward": 0.1 + 0.5 * t, "reward_std": 0.2, "rewards/vader/mean": 0.1 + 0.5 * t, "rewards/vader/std": 0.2,
            "frac_reward_zero_std": 0.0, "entropy": 2.0 - t, "kl": 0.01 * t, "loss/policy": 0.01,
            "completions/mean_length": 12.0, "completions/clipped_ratio": 0.1, "step_time": 0.5,
        })
        if step % samples_every == 0:
            store.add_samples(run_id, step, [
                {"prompt": f"The weather {payload}", "completion": f"answer {i} at step {step}: {payload}",
                 "rewards": {"vader": 0.1 * i + t, "total": 0.1 * i + t},
                 "extras": {"prompt_index": i // 2, "sample_index": i % 2, "finish_reason": "eos", "advantage": 0.1}}
                for i in range(4)
            ])
        store.set_progress(run_id, step, steps)
    store.set_status(run_id, "completed")
    return run_id


def make_gym_run(store, tmp_path: Path, name: str = "cartpole") -> int:
    """A finished CartPole run with SB3-named metrics and one recorded episode."""
    from llmrl_core.gym.episodes import Episode, save_episode

    run_id = store.create_run("gym", name, {"env_id": "CartPole-v1", "algo": "ppo", "total_steps": 4000, "seed": 0})
    for step in range(500, 4001, 500):
        store.log_metrics(run_id, step, {"rollout/ep_rew_mean": step / 20, "eval/mean_reward": step / 10,
                                         "train/loss": 1.0 / step, "train/approx_kl": 0.01})
    episode = Episode("CartPole-v1", "trained", 4000, states=[[0.0, 0.1, 0.02, 0.0]] * 5, actions=[0, 1, 0, 1, 0],
                      rewards=[1.0] * 5, action_names=["left", "right"])
    store.add_artifact(run_id, 4000, "episode", save_episode(episode, tmp_path / "episode.json"), {"policy": "trained"})
    store.set_status(run_id, "completed")
    return run_id


def strip_plotly_bundle(page: str) -> str:
    """The page without the one inlined plotly.js script (its source holds URL strings it never fetches)."""
    bundles = re.findall(r'<script type="text/javascript">/\*\*\s*\* plotly\.js v.*?</script>', page, flags=re.S)
    assert len(bundles) == 1, "plotly.js is inlined exactly once"
    return page.replace(bundles[0], "")


def assert_offline(page: str) -> None:
    """Nothing in the page refers to another file or address."""
    assert not re.search(r"<script[^>]+src\s*=", page, flags=re.I)
    assert not re.search(r"<link\b", page, flags=re.I)
    assert "@import" not in page and not re.search(r"url\(\s*['\"]?https?:", page, flags=re.I)
    rest = strip_plotly_bundle(page)
    # The only address left may be the SVG namespace the episode player's script names (no fetch).
    found = set(re.findall(r"https?://[^\s\"'<>&]*", rest))
    assert found <= {"http://www.w3.org/2000/svg"}, found


# ---------------------------------------------------------------------- one RL run


def test_rl_run_report_has_every_part_and_opens_offline(store, tmp_path):
    run_id = make_lm_run(store, name=f"demo {PAYLOAD}")
    result = BeforeAfter("tiny", "/ckpt", pd.DataFrame({
        "prompt": [f"p {SCRIPT}"], "sample": [0], "before": [f"old {IMG}"], "after": ["new"], "before_reward": [0.1],
        "after_reward": [0.7]}), 0.1, 0.7, 0.6, 0.4, 0.8, 0.95, True, 1, ["vader"])
    path = write_report(store, [run_id], tmp_path / "out" / "report.html", before_after=result)
    page = path.read_text(encoding="utf-8")
    assert path.name == "report.html" and not list(path.parent.glob("*.partial"))
    assert_offline(page)
    text = strip_plotly_bundle(page)
    for heading in ("Configuration", "Curves", "Before / after", "Health and reward-hacking alarms", "Best and worst samples"):
        assert f"<h3>{heading}</h3>" in text
    assert "Fine-tune the language model tiny" in text and "Sentiment (VADER)" in text
    assert "+0.600" in text and "CI +0.400 to +0.800" in text  # the before/after summary
    assert "reward: 0.1167 at the start → 0.6 at the end" in text
    assert text.count("Plotly.newPlot") == 5  # reward, kl, entropy, length, zero-std
    # every run text is escaped: the payload shows as text, never as markup
    assert "alert(1)" in text and SCRIPT not in text and "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert len(re.findall(r"<script", text)) == text.count("Plotly.newPlot")  # only the figures' own scripts


def test_alarms_show_in_the_report(store, tmp_path):
    run_id = store.create_run("lm_rl", "flat", LM_CONFIG)
    for step in range(1, 11):
        store.log_metrics(run_id, step, {"reward": 0.0, "reward_std": 0.0, "frac_reward_zero_std": 1.0})
        store.add_samples(run_id, step, [{"prompt": "p", "completion": f"same {SCRIPT}", "rewards": {"total": 0.0}}])
    page = render_report_html(store, [run_id])
    assert "Nothing to learn from" in page and "frac_reward_zero_std was 1 for 10 steps" in page
    assert "same &lt;script&gt;" in page and "No before/after comparison" in page


def test_a_stored_before_after_is_picked_up(store):
    from llmrl_core.lm_rl.evaluate import save_before_after

    run_id = make_lm_run(store, steps=8)
    rows = pd.DataFrame({"prompt": ["q"], "sample": [0], "before": ["a"], "after": ["b"], "before_reward": [0.0],
                         "after_reward": [1.0]})
    save_before_after(store, run_id, BeforeAfter("base-x", "ckpt-y", rows, 0.0, 1.0, 1.0, 1.0, 1.0, 0.95, False, 1))
    assert "base-x" in render_report_html(store, [run_id])


# ---------------------------------------------------------------------- comparison, gym, PNG, errors


def test_comparison_report_overlays_runs_and_diffs_configs(store, tmp_path):
    first = make_lm_run(store, name="lr small")
    second = make_lm_run(store, name=f"lr big {SCRIPT}", config={**LM_CONFIG, "learning_rate": 3e-5})
    page = write_report(store, [first, second], tmp_path / "compare.html").read_text(encoding="utf-8")
    assert_offline(page)
    assert "<h2>Comparison</h2>" in page and "Config fields that differ" in page
    diff_table = page.split("Config fields that differ")[1].split("</table>")[0]
    assert "learning_rate" in diff_table and "3e-05" in diff_table and "num_generations" not in diff_table
    assert "Final and best values" in page
    assert page.count(f'id="run-{first}"') == 1 and page.count(f'id="run-{second}"') == 1
    assert SCRIPT not in strip_plotly_bundle(page)


def test_gym_report_has_the_return_chart_and_the_episode_player(store, tmp_path):
    run_id = make_gym_run(store, tmp_path, name=f"cart {IMG}")
    page = write_report(store, [run_id], tmp_path / "gym.html").read_text(encoding="utf-8")
    assert_offline(page)
    assert describe_goal(store.get_run(run_id)) in page.replace("&#x27;", "'")
    assert "reaches 475" in page and '<iframe class="player" sandbox="allow-scripts"' in page
    assert "srcdoc=\"&lt;!DOCTYPE html&gt;" in page and "<img" not in strip_plotly_bundle(page)


def test_png_of_the_main_chart(store, tmp_path):
    lm = write_report_png(store, make_lm_run(store, name="cost $5 $x^2$"), tmp_path / "lm.png")
    gym = write_report_png(store, make_gym_run(store, tmp_path), tmp_path / "gym.png")
    empty = write_report_png(store, store.create_run("lm_rl", "empty", LM_CONFIG), tmp_path / "empty.png")
    for path in (lm, gym, empty):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_other_kinds_get_their_first_metrics_and_mixed_kinds_compare(store, tmp_path):
    demo = store.create_run("demo", f"demo {IMG}", {"size": 3})
    for step in range(1, 6):
        store.log_metrics(demo, step, {"value": step * 2.0, "other": 1.0})
    page = render_report_html(store, [demo])
    assert "A demo run." in page and strip_plotly_bundle(page).count("Plotly.newPlot") == 1
    assert "<h3>Before / after</h3>" not in page  # only RL fine-tuning runs have one
    both = strip_plotly_bundle(render_report_html(store, [make_lm_run(store, steps=6), demo]))
    assert "different kinds" in both and "Config fields that differ" not in both  # one run of each: no diff
    assert both.count("Plotly.newPlot") == 2 + 5 + 1  # a comparison panel per kind, then each run's charts


def comparison_part(page: str) -> str:
    return strip_plotly_bundle(page).split("<h2>Comparison</h2>")[1].split("<section")[0]


def x_titles(part: str) -> list[str]:
    """The x axis titles of the comparison's figures, in order."""
    return [json.loads(f'"{t}"') for t in re.findall(r'"xaxis\d*":\{[^{}]*"title":\{"text":"([^"]*)"', part)]


def test_comparison_of_an_lm_run_and_a_gym_run_draws_a_panel_per_kind(store, tmp_path):
    lm = make_lm_run(store, name="positive", steps=20)
    lm2 = make_lm_run(store, name="positive lr", steps=20, config={**LM_CONFIG, "learning_rate": 3e-5})
    gym = make_gym_run(store, tmp_path, name="cartpole")
    part = comparison_part(write_report(store, [lm, gym, lm2], tmp_path / "mixed.html").read_text(encoding="utf-8"))
    assert "different kinds" in part and part.count("Plotly.newPlot") == 2
    assert x_titles(part) == ["step", "environment steps"]  # 20 updates are not squashed against 4,000 env steps
    lm_part, gym_part = part.split("Gymnasium agent (SB3): ")
    assert "RL fine-tuning of a language model: " in lm_part
    diff = lm_part.split("Config fields that differ")[1].split("</table>")[0]
    assert "learning_rate" in diff and "env_id" not in diff and "num_generations" not in diff  # LM runs only
    assert "Only one run of this kind" in gym_part and "env_id" not in gym_part
    assert '"#%d cartpole"' % gym in gym_part and '"#%d positive"' % lm not in gym_part  # its panel, its runs


def test_report_cli_on_mixed_kinds(tmp_path, monkeypatch, capsys):
    from llmrl_core.cli import main
    from llmrl_core.runs.store import RunStore

    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    store = RunStore()
    lm, gym = make_lm_run(store, steps=20), make_gym_run(store, tmp_path)
    out = tmp_path / "mixed.html"
    assert main(["report", str(lm), str(gym), "--out", str(out)]) == 0
    assert f"runs {lm}, {gym}" in capsys.readouterr().out
    part = comparison_part(out.read_text(encoding="utf-8"))
    assert x_titles(part) == ["step", "environment steps"] and "different kinds" in part


def test_report_errors_say_what_to_change(store, tmp_path):
    with pytest.raises(InputError, match="No run with id 42"):
        write_report(store, [42], tmp_path / "r.html")
    with pytest.raises(InputError, match="is a folder"):
        write_report(store, [make_lm_run(store, steps=3)], tmp_path)
    with pytest.raises(InputError, match="at least one run"):
        render_report_html(store, [])


def test_a_long_run_is_downsampled(store, tmp_path):
    import base64

    import numpy as np

    run_id = make_lm_run(store, steps=1500, samples_every=100)
    page = strip_plotly_bundle(render_report_html(store, [run_id]))
    reward_figure = page.split("Plotly.newPlot")[1]
    found = re.search(r'"name":"reward","x":\{"dtype":"(\w+)","bdata":"([^"]*)"', reward_figure)
    assert found, "the reward trace's steps, as plotly's typed array"
    data = json.loads(f'"{found.group(2)}"')  # plotly writes '/' as \u002f
    steps = np.frombuffer(base64.b64decode(data), dtype=np.dtype(found.group(1)))
    assert 100 < len(steps) <= 1000 and steps[0] == 1 and steps[-1] == 1500
    assert (np.diff(steps) > 0).all()


# ---------------------------------------------------------------------- end to end on a real tiny run


def test_report_of_a_real_tiny_run_with_its_before_after(tiny_model_dir, store, tmp_path, monkeypatch):
    """Train the tiny model 2 steps, compare its checkpoint with the base on held-out prompts, write the report."""
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.lm_rl.evaluate import compare_before_after, held_out_prompts, save_before_after
    from llmrl_core.runs import RunManager

    monkeypatch.setenv("LLMRL_HOME", str(tmp_path / "home"))
    rewards = [{"type": "length", "target": 20, "unit": "chars", "falloff": 40}]
    cfg = RLConfig(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                   max_new_tokens=6, chat="raw", learning_rate=1e-2, rewards=rewards, prompt_set="sentence-starters",
                   name=f"tiny {SCRIPT}")
    run_id, status = RunManager(store).run_foreground("lm_rl", cfg.to_dict(), name=cfg.name, total_steps=cfg.steps)
    assert status == "completed"
    checkpoint = store.list_artifacts(run_id, kind="checkpoint")["path"].iloc[-1]
    prompts = held_out_prompts(store.get_run(run_id)["config"], n=3)
    result = compare_before_after(str(tiny_model_dir), checkpoint, prompts, rewards, greedy=True, max_new_tokens=6,
                                  device="cpu", chat=False)
    save_before_after(store, run_id, result)
    page = write_report(store, [run_id], tmp_path / "tiny.html").read_text(encoding="utf-8")
    assert_offline(page)
    text = strip_plotly_bundle(page)
    assert "Length target × 1" in text and "2 of 2 steps" in text
    assert result.summary().replace("'", "&#x27;") in text
    assert all(html_escape(p) in text for p in prompts["prompt"])
    assert "<h4>Best 3</h4>" in text and SCRIPT not in text


def test_a_reward_returning_too_few_values_shows_as_an_alarm(tiny_model_dir, store, monkeypatch):
    """The real trainer's failure message is what the wrong-count alarm reads."""
    from llmrl_core.lm_rl.alarms import read_run_alarms
    from llmrl_core.lm_rl.config import RLConfig
    from llmrl_core.lm_rl.rewards import RewardSet
    from llmrl_core.runs import RunManager

    def first_only(prompts, completions, **_):
        return [1.0]

    monkeypatch.setattr("llmrl_core.lm_rl.trainer._build_reward_set", lambda cfg: RewardSet.from_callables([first_only]))
    cfg = RLConfig(model=str(tiny_model_dir), device="cpu", steps=2, prompts_per_step=2, num_generations=2,
                   max_new_tokens=4, chat="raw", save_final=False)
    run_id, status = RunManager(store).run_foreground("lm_rl", cfg.to_dict())
    assert status == "failed"
    (alarm,) = read_run_alarms(store, run_id)
    assert alarm.kind == "reward_wrong_count" and "'first_only' returned 1 values for 4 completions" in alarm.what_it_saw
    page = render_report_html(store, [run_id])
    assert html_escape(alarm.title) in page and html_escape(alarm.suggestion) in page


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
