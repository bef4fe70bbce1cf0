"""Does precision 'auto' learn as well as fp32? Make it positive, trained once in each, scored held out.

Issue 16 made 'auto' the default (bf16 where the hardware runs it natively). Faster steps are worth
nothing if learning suffers, so this runs the make-it-positive preset to the same step count twice,
with mixed_precision 'auto' and 'no' (fp32), and scores each run's final checkpoint against the base
model on the same held-out prompts, greedily (Runs > Before/after's evaluation:
lm_rl/evaluate.compare_run_before_after, a bootstrap 95% CI of the difference). The two gains agree
when their confidence intervals overlap.

Run: LLMRL_HOME=/tmp/lh python bench/bench_precision_learning.py [--steps 20] [--held-out 16]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_demos import format_demo_line, run_lm_demo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--held-out", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("LLMRL_HOME", str(Path(__import__("tempfile").mkdtemp(prefix="bench_precision_"))))
    from llmrl_core.core.hardware import read_device_info
    from llmrl_core.lm.precision import resolve_precision

    import torch

    device = read_device_info("cpu")
    print(f"cpu: {device.name}; torch capability {device.cpu_capability}; bf16 "
          f"{'native' if device.bf16_native else 'emulated'}; auto resolves to "
          f"{resolve_precision('auto', torch.device('cpu')).describe('auto')}")
    results = {}
    for precision in ("auto", "no"):
        result = run_lm_demo("make-it-positive", args.steps, args.held_out, mixed_precision=precision, device="cpu")
        results[precision] = result
        print(format_demo_line(f"make-it-positive ({'fp32' if precision == 'no' else precision})", result), flush=True)
    a, b = results["auto"], results["no"]
    gain_a, gain_b = a.after - a.before, b.after - b.before
    overlap = a.low <= b.high and b.low <= a.high
    print(f"gain auto {gain_a:+.3f} (CI {a.low:+.3f} to {a.high:+.3f}) vs fp32 {gain_b:+.3f} (CI {b.low:+.3f} to "
          f"{b.high:+.3f}); whole demo (train + score) auto {a.seconds:.0f} s vs fp32 {b.seconds:.0f} s; "
          f"gains agree within their CIs: {'yes' if overlap else 'no'}; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
