"""Does watching a run slow it down? The same short "Make it positive" run, unwatched and watched.

Three conditions, interleaved round by round so drifting background load hits all alike:
  unwatched     no browser open (the server is up, idle);
  rl_dashboard  Chromium open on the LM RL page, which shows the run live;
  runs_page     Chromium open on the Runs page with the run selected.
Each run is the bundled model on the "make-it-positive" preset for --steps steps, started the way
the dashboard starts it (RunManager.start: a worker process of its own). The figure per run is the
median of its logged step_time (the first step, which includes loading, is left out).

Also printed: the time from a step's end in the store (its metrics' wall time) to its point on the
page's reward chart, and the Streamlit server's CPU seconds per minute in each condition.
Target (issue 8): both watched/unwatched ratios at most 1.10; store-to-browser latency at most 2 s.

Run: python bench/bench_watch.py [--steps 10] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONDITIONS = ("unwatched", "rl_dashboard", "runs_page")
POLL_MS = 250  # how often the bench reads the page (its own cost shows as bench+driver CPU)

# The newest step drawn on the page: the largest x of any trace of any chart (steps are the x axis).
_POINTS_JS = """() => { let best = 0;
  for (const d of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
    for (const t of (d._fullData || [])) {
      for (const x of (t.x || [])) { if (typeof x === 'number' && x > best) best = x; }
    }
  }
  return best; }"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _chromium_cpu() -> dict[int, float]:
    """CPU seconds of each Chromium process now (the watcher's side of the cost), by pid."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if "chrom" in open(f"/proc/{pid}/comm").read():
                found[int(pid)] = _cpu_seconds(int(pid))
        except OSError:
            continue
    return found


def _chromium_cpu_since(before: dict[int, float]) -> float:
    """Chromium CPU seconds spent since `before` (processes started meanwhile count from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in _chromium_cpu().items())


def _harness_cpu_seconds() -> float:
    """CPU seconds of this bench process and Playwright's driver (node): the measuring costs something too."""
    total = sum(os.times()[:2])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/comm").read().strip() == "node":
                total += _cpu_seconds(int(pid))
        except OSError:
            continue
    return total


def _open_condition(browser, url: str, condition: str):  # noqa: ANN001
    """A page open on the view of this condition (None when unwatched)."""
    if condition == "unwatched":
        return None
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    link = "LM RL" if condition == "rl_dashboard" else "Runs"
    page.get_by_role("link", name=link, exact=True).first.click(timeout=120_000)
    return page


def _run_once(manager, browser, url: str, server_pid: int, condition: str, steps: int) -> dict:  # noqa: ANN001
    """Start one run, watch it in `condition` until it ends; return its figures."""
    from llmrl_core.lm_rl.config import make_preset_config

    cfg = make_preset_config("make-it-positive", steps=steps, model="bundled", device="cpu")
    cpu0, chrome0, harness0, t0 = _cpu_seconds(server_pid), _chromium_cpu(), _harness_cpu_seconds(), time.monotonic()
    run_id = manager.start("lm_rl", cfg.to_dict(), name=f"bench_watch {condition}", total_steps=steps)
    page = _open_condition(browser, url, condition)
    seen: dict[int, float] = {}  # step -> when the page first drew it
    last = 0
    while manager.is_alive(run_id):
        if page is not None:
            try:
                n = int(page.evaluate(_POINTS_JS))
            except Exception:  # a rerun replaced the chart mid-read
                n = last
            if n > last:
                for k in range(last + 1, n + 1):
                    seen.setdefault(k, time.time())
                last = n
            page.wait_for_timeout(POLL_MS)
        else:
            time.sleep(POLL_MS / 1000)
    if page is not None:  # the last step's point may arrive just after the worker exits
        deadline = time.monotonic() + 5
        while last < steps and time.monotonic() < deadline:
            n = int(page.evaluate(_POINTS_JS))
            for k in range(last + 1, n + 1):
                seen.setdefault(k, time.time())
            last = max(last, n)
            page.wait_for_timeout(100)
    chrome = _chromium_cpu_since(chrome0)  # before closing: a closed tab's process takes its CPU time with it
    if page is not None:
        page.close()
    minutes = (time.monotonic() - t0) / 60
    cpu = _cpu_seconds(server_pid) - cpu0
    harness = _harness_cpu_seconds() - harness0
    run = manager.store.get_run(run_id)
    metrics = manager.store.read_metrics(run_id, names=["step_time"])
    step_ends = manager.store.read_metrics(run_id, names=["reward"]).set_index("step")["wall_time"]
    times = metrics.sort_values("step")["value"].tolist()[1:]
    # Only steps that ended while the page was already showing the run (not the backlog drawn on first load).
    first_draw = min(seen.values()) if seen else float("inf")
    latencies = [seen[k] - step_ends[k] for k in seen if k in step_ends.index and step_ends[k] > first_draw]
    return {"status": run["status"], "error": run["error"], "step_times": times,
            "latencies": latencies, "cpu_per_min": cpu / minutes if minutes else float("nan"),
            "chrome_per_min": chrome / minutes if minutes else float("nan"),
            "harness_per_min": harness / minutes if minutes else float("nan")}


def main() -> None:
    import signal

    import torch

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's SIGTERM still stops the server (finally)
    from playwright.sync_api import sync_playwright

    from llmrl_core.runs import RunManager, RunStore
    from tests.support.browser import CHROMIUM_ARGS, find_chromium, start_app, stop_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", choices=CONDITIONS, nargs="+", default=list(CONDITIONS), help="conditions to run")
    args = parser.parse_args()

    home = Path(os.environ.get("LLMRL_HOME") or tempfile.mkdtemp(prefix="bench_watch_"))
    os.environ["LLMRL_HOME"] = str(home)
    print(f"cpu: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"run: make-it-positive, bundled model, {args.steps} steps, {args.rounds} round(s), conditions interleaved")
    from llmrl_core.lm.models import load_causal_lm

    load_causal_lm("bundled", device="cpu")  # convert the bundled model once, outside the timings
    manager = RunManager(RunStore(home / "runs.sqlite"))
    results: dict[str, list[dict]] = {c: [] for c in CONDITIONS}
    server, url = start_app(home)
    server_pid = server.pid
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_ARGS)
            for rnd in range(args.rounds):
                for condition in args.only:
                    r = _run_once(manager, browser, url, server_pid, condition, args.steps)
                    results[condition].append(r)
                    print(f"  round {rnd + 1} {condition:<13} {r['status']:<9} median step "
                          f"{statistics.median(r['step_times']) if r['step_times'] else float('nan'):.2f} s, "
                          f"server {r['cpu_per_min']:.1f} CPU s/min, Chromium {r['chrome_per_min']:.1f}, "
                          f"bench+driver {r['harness_per_min']:.1f}, "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
                    if r["status"] != "completed":
                        print(f"    error: {(r['error'] or '')[:400]}")
            browser.close()
    finally:
        stop_app(server)

    done = [c for c in CONDITIONS if results[c]]
    medians = {c: statistics.median([t for r in results[c] for t in r["step_times"]] or [float("nan")]) for c in done}
    base = medians.get("unwatched", float("nan"))
    for c in done:
        cpu = statistics.mean(r["cpu_per_min"] for r in results[c])
        chrome = statistics.mean(r["chrome_per_min"] for r in results[c])
        print(f"{c:<13} median step {medians[c]:.2f} s   ratio vs unwatched {medians[c] / base:.2f}x   "
              f"server CPU {cpu:.1f} s per minute, Chromium {chrome:.1f} s per minute")
    for c in [c for c in done if c == "rl_dashboard"]:  # the Runs page also draws other runs' steps on one axis
        lat = [x for r in results[c] for x in r["latencies"]]
        if lat:
            lat.sort()
            print(f"{c:<13} store-to-browser latency: median {statistics.median(lat):.2f} s, "
                  f"max {lat[-1]:.2f} s over {len(lat)} steps (target <= 2 s)")
    watched = [medians[c] / base for c in done if c != "unwatched"]
    if watched:
        worst = max(watched)
        print(f"target: watched/unwatched <= 1.10: {'PASS' if worst <= 1.10 else 'MISS'} (worst {worst:.2f}x)")


if __name__ == "__main__":
    main()
