"""Timing side by side: calls of several functions interleaved (A B A B ...) and their medians
compared, so that a burst of load on a shared machine hits every peer alike. Benchmarks print
ratios measured this way; tests never assert a wall-clock time."""

from __future__ import annotations

import statistics
import time


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns: dict, reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(_time(fn))
    return {k: statistics.median(v) for k, v in times.items()}
