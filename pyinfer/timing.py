"""Per-call wall times of a callable, for the quick measurements pyinfer makes
while it works (the low-rank report, the compress table, the roofline
ceilings).  Comparisons that users read as benchmarks go through
``pyinfer.bench.measure_many`` instead, which interleaves contenders."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def samples(fn: Callable[[], object], repeat: int, warmup: int = 1) -> np.ndarray:
    """Seconds of each of ``repeat`` calls of ``fn`` after ``warmup`` untimed
    ones (the first call may compile or fault in memory)."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out


def median_seconds(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    return float(np.median(samples(fn, repeat, warmup)))


def best_seconds(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    return float(samples(fn, repeat, warmup).min())
