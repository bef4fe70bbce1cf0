"""Intra-op thread count per phase: `with use_threads(1): ...` runs the block on one torch thread.

Decoding a small model is overhead-bound (many tiny matmuls per token), where a second intra-op
thread can cost more in synchronisation than it gains; the update's larger matmuls do use it.
Measured per phase in bench/bench_generate.py (decode) and its --update option.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def use_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside the block and restored after; None or 0 leaves them as they are."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
