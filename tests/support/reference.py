"""Plain reference versions of engine results that tests compare against (used only by tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmrl_core.lm_rl.checkpoints import load_trainer_state


def has_optimizer_state(folder: str | Path) -> bool:
    """True when a checkpoint still holds its optimizer state (only the newest of a run does)."""
    return load_trainer_state(folder).get("optimizer") is not None


def pool_map(weights: np.ndarray, size: int) -> np.ndarray:
    """Average-pool a (T, T) map into at most (size, size) blocks: one thumbnail of make_thumbnail_canvas, map by map."""
    w = np.asarray(weights, dtype=np.float32)
    n = w.shape[0]
    if n <= size:
        return w
    edges = np.linspace(0, n, size + 1).astype(int)[:-1]  # block starts
    counts = np.diff(np.append(edges, n)).astype(np.float32)  # (size,)
    pooled = np.add.reduceat(np.add.reduceat(w, edges, axis=0), edges, axis=1)  # (size, size) sums
    return pooled / counts[:, None] / counts[None, :]
