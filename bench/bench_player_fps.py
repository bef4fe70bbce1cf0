"""Benchmark: frames per second of the episode player in a real browser (target: at least 20).

Plays a random-policy CartPole episode (a long one: the same seed is retried until it lasts
60+ steps) in the player that the Classic RL page embeds, opened in headless Chromium from a
file, and samples the frame counter on every animation frame for 3 s. Prints the drawn frames
per second next to the environment's own rate (the baseline the player aims at).

Run: python bench/bench_player_fps.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmrl_core.gym.episodes import get_player_fps, play_random_episode  # noqa: E402
from llmrl_core.present.gym import render_episode_player_html  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS, find_chromium  # noqa: E402
from tests.browser.test_browser_gym import _MEASURE_JS  # noqa: E402


def main() -> None:
    from playwright.sync_api import sync_playwright

    episode = max((play_random_episode("CartPole-v1", seed=s) for s in range(40)), key=lambda e: e.length)
    page_html = render_episode_player_html(episode.to_dict(), title="bench")
    target = get_player_fps("CartPole-v1")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        path = Path(tmp) / "player.html"
        path.write_text(page_html)
        browser = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(path.as_uri())
        page.locator("#wrap").wait_for()
        rates = [page.locator("#wrap").evaluate(_MEASURE_JS) for _ in range(3)]
        browser.close()
    for i, (rate, span) in enumerate(rates, 1):
        print(f"player run {i}: {rate:5.1f} frames/s over {span:.2f} s of playback")
    best = sorted(r for r, _ in rates)[len(rates) // 2]
    print(f"player median {best:5.1f} frames/s | environment rate (baseline) {target} frames/s | "
          f"ratio {best / target:4.2f}x | target >= 20 frames/s: {'met' if best >= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
