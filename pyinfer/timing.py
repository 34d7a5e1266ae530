"""Per-call wall times of callables.

``samples``/``median_seconds``/``best_seconds`` time one callable, for the
quick measurements pyinfer makes while it works (the low-rank report, the
compress table, the roofline ceilings).  ``interleaved`` times several
contenders round by round, the order rotating, for the bench/ scripts that
quote ratios: on a shared, noisy machine load from elsewhere then hits every
contender alike.  The op tables of ``python -m pyinfer bench`` use
``pyinfer.bench.measure_many``, which also sizes rounds adaptively."""
from __future__ import annotations

import time
from typing import Callable, Dict

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


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, number: int = 1,
                warmup: int = 2, clock: Callable[[], float] = time.perf_counter) -> Dict[str, float]:
    """Median seconds per call of each contender.  Each round times ``number``
    calls of every contender in turn, starting one further along the list each
    round; ``warmup`` untimed calls of each first.  ``clock`` may be
    ``time.thread_time`` to count CPU time of the calling thread."""
    names = list(fns)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, list] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            t = clock()
            for _ in range(number):
                fn()
            times[name].append((clock() - t) / number)
    return {name: float(np.median(t)) for name, t in times.items()}
