"""Timing shared by the benchmarks (run as scripts from this folder's parent: ``uv run python
benchmarks/bench_*.py``, which puts this folder on the import path)."""

from __future__ import annotations

import time


def best(fn, repeat: int = 5) -> float:
    """The fastest of ``repeat`` calls of ``fn()``, in seconds (the least disturbed by a
    shared, noisy machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
