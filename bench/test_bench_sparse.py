"""Block-sparse GEMM and low-rank layers against the dense GEMM and NumPy.

A 768x3072 float32 weight (BERT-base's FFN up-projection) pruned to 80% and
90% block sparsity by ``pyinfer.compress.prune_weights`` (1x16 blocks, the
default of ``prune``, and 4x16), at batch m = 1, 2, 4, 8, with bias:

* ``sparse``: ``pyinfer.ops.sparse_gemm`` on the BSR weight (C kernel)
* ``dense``: ``pyinfer.ops.gemm`` on the pruned dense weight, backend auto
* ``numpy``: ``x @ w + b`` (OpenBLAS)

Low rank: the same layer as ``(x @ U) @ V`` at rank 128 (U 768x128, V 128x3072,
two ``pyinfer.ops.gemm`` calls) against the dense ``pyinfer.ops.gemm``.

Run with the rest of the suite, same threads for every contender:
    pytest bench/test_bench_sparse.py --benchmark-only --bench-threads 2

pytest-benchmark times one contender after another, seconds apart: on a shared
machine the load changes in between.  The table of bench/RESULTS.md comes from
the interleaved runner instead, which times the three contenders round by
round and reports medians and the median of the per-round ratios:
    python bench/test_bench_sparse.py --threads 2 [--rounds 31]
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import pyinfer
from pyinfer.backends import _native
from pyinfer.compress import prune_weights

K, N = 768, 3072
BLOCKS = ((1, 16), (4, 16))
SPARSITIES = (0.8, 0.9)
BATCHES = (1, 2, 4, 8)

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=20, min_rounds=50,
                                   max_time=1.0, disable_gc=True)


@functools.lru_cache(maxsize=None)
def _layer(sparsity, block=BLOCKS[0]):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    if sparsity is None:
        return w, b, None
    wp = prune_weights(w, sparsity, "block", block)
    return wp, b, pyinfer.ops.to_bsr(wp, block)


def _x(m):
    return np.random.default_rng(m).standard_normal((m, K)).astype(np.float32)


def _contenders(w, b, w_bsr, x, out):
    return {"sparse": lambda: pyinfer.ops.sparse_gemm(x, w_bsr, b, out=out),
            "dense": lambda: pyinfer.ops.gemm(x, w, b, out=out),
            "numpy": lambda: np.add(x @ w, b, out=out)}


@pytest.mark.parametrize("contender", ["sparse", "dense", "numpy"])
@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b[0]}x{b[1]}")
def test_block_sparse_gemm(benchmark, threads, block, sparsity, m, contender):
    w, b, w_bsr = _layer(sparsity, block)
    x = _x(m)
    out = np.empty((m, N), np.float32)
    benchmark.group = f"sparse_gemm {m}x{K}x{N} at {sparsity:.0%} of {block[0]}x{block[1]} blocks"
    benchmark.extra_info.update(threads=threads, density=w_bsr.density)
    fn = _contenders(w, b, w_bsr, x, out)[contender]
    fn()
    ref = x.astype(np.float64) @ w + b
    assert np.allclose(out, ref, rtol=1e-4, atol=1e-4)
    benchmark(fn)


@pytest.mark.parametrize("contender", ["low_rank_128", "dense"])
@pytest.mark.parametrize("m", BATCHES)
def test_low_rank_layer(benchmark, threads, m, contender):
    w, b, _ = _layer(None)
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    uf = np.ascontiguousarray((u[:, :128] * s[:128]).astype(np.float32))
    vf = np.ascontiguousarray(vt[:128].astype(np.float32))
    x = _x(m)
    out = np.empty((m, N), np.float32)
    t = np.empty((m, 128), np.float32)
    benchmark.group = f"low_rank {m}x{K}x{N} rank 128"
    benchmark.extra_info.update(threads=threads)
    fn = {"low_rank_128": lambda: pyinfer.ops.gemm(pyinfer.ops.gemm(x, uf, out=t), vf, b, out=out),
          "dense": lambda: pyinfer.ops.gemm(x, w, b, out=out)}[contender]
    benchmark(fn)


# ---- the interleaved runner (python bench/test_bench_sparse.py) ----------------------

def interleaved(threads: int, rounds: int = 31, calls: int = 10, blocks=BLOCKS,
                batches=BATCHES, sparsities=SPARSITIES):
    """Rows of (sparsity, block, m, {contender: median us}, {ratio: median}).

    Each round times ``calls`` back-to-back calls of sparse, then dense, then
    NumPy, after two untimed calls each.  OpenBLAS's threads spin for a while
    after a call and would take the second core from the next OpenMP region,
    so each round ends with a pause that lets them sleep; the ratios are of
    times from the same round."""
    import time
    from threadpoolctl import threadpool_limits

    pyinfer.set_num_threads(threads)
    rows = []
    with threadpool_limits(threads):
        for block in blocks:
            for sparsity in sparsities:
                w, b, w_bsr = _layer(sparsity, block)
                for m in batches:
                    x, out = _x(m), np.empty((m, N), np.float32)
                    fns = _contenders(w, b, w_bsr, x, out)
                    times = {name: [] for name in fns}
                    for _ in range(rounds):
                        for name, fn in fns.items():
                            fn()
                            fn()
                            t = time.perf_counter()
                            for _ in range(calls):
                                fn()
                            times[name].append((time.perf_counter() - t) / calls * 1e6)
                        time.sleep(0.15)
                    t = {k: np.array(v) for k, v in times.items()}
                    rows.append((sparsity, block, m, {k: float(np.median(v)) for k, v in t.items()},
                                 {"dense": float(np.median(t["dense"] / t["sparse"])),
                                  "numpy": float(np.median(t["numpy"] / t["sparse"]))}))
                    yield rows[-1]


def main(argv=None):
    import argparse
    import datetime
    import os
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--calls", type=int, default=10)
    args = ap.parse_args(argv)
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{args.threads} thread(s), load {os.getloadavg()[0]:.1f}, {args.rounds} rounds "
          f"x {args.calls} calls, isa {_native.isa()}")
    print("| block sparsity | block | m | sparse us | dense us | numpy us | vs dense | vs numpy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for sparsity, block, m, t, r in interleaved(args.threads, args.rounds, args.calls):
        print(f"| {sparsity:.0%} | {block[0]}x{block[1]} | {m} | {t['sparse']:.1f} | "
              f"{t['dense']:.1f} | {t['numpy']:.1f} | {r['dense']:.2f}x | {r['numpy']:.2f}x |",
              flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
