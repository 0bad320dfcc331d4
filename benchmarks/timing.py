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


#: Source a benchmark's child process starts with (``python -c PEAK_PROBE + code``):
#: ``status()`` reads the child's memory counters in bytes, ``reset_peak()`` restarts its peak
#: (``VmHWM``, Linux >= 4.0). Not ``ru_maxrss``: Linux carries it over fork and exec, so a
#: child's ru_maxrss is at least its parent's RSS at the fork (a parent holding the images it
#: wrote made every child of bench_joint.py read 385.6 MiB).
PEAK_PROBE = r"""
def status(keys=("VmRSS", "VmHWM", "RssAnon", "RssFile")):
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {key: int(fields[key].split()[0]) * 1024 for key in keys}

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
"""
