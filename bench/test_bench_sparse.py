"""Block-sparse GEMM and low-rank layers against the dense GEMM and NumPy.

A 768x3072 float32 weight (BERT-base's FFN up-projection) pruned to 80% and
90% block sparsity by ``pyinfer.compress.prune_weights`` (1x16 blocks, the
default of ``prune``), at batch m = 1, 4, 8, with bias:

* ``sparse``: ``pyinfer.ops.sparse_gemm`` on the BSR weight (C kernel)
* ``dense``: ``pyinfer.ops.gemm`` on the pruned dense weight, backend auto
* ``numpy``: ``x @ w + b`` (OpenBLAS)

Low rank: the same layer as ``(x @ U) @ V`` at rank 128 (U 768x128, V 128x3072,
two ``pyinfer.ops.gemm`` calls) against the dense ``pyinfer.ops.gemm``.

Run with the rest of the suite, same threads for every contender:
    pytest bench/test_bench_sparse.py --benchmark-only --bench-threads 2
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import pyinfer
from pyinfer.compress import prune_weights

K, N = 768, 3072
BLOCK = (1, 16)
SPARSITIES = (0.8, 0.9)
BATCHES = (1, 4, 8)

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=20, min_rounds=50,
                                   max_time=1.0, disable_gc=True)


@functools.lru_cache(maxsize=None)
def _layer(sparsity):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    if sparsity is None:
        return w, b, None
    wp = prune_weights(w, sparsity, "block", BLOCK)
    return wp, b, pyinfer.ops.to_bsr(wp, BLOCK)


def _x(m):
    return np.random.default_rng(m).standard_normal((m, K)).astype(np.float32)


@pytest.mark.parametrize("contender", ["sparse", "dense", "numpy"])
@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_block_sparse_gemm(benchmark, threads, sparsity, m, contender):
    w, b, w_bsr = _layer(sparsity)
    x = _x(m)
    out = np.empty((m, N), np.float32)
    benchmark.group = f"sparse_gemm {m}x{K}x{N} at {sparsity:.0%} of {BLOCK[0]}x{BLOCK[1]} blocks"
    benchmark.extra_info.update(threads=threads, density=w_bsr.density)
    fn = {"sparse": lambda: pyinfer.ops.sparse_gemm(x, w_bsr, b, out=out),
          "dense": lambda: pyinfer.ops.gemm(x, w, b, out=out),
          "numpy": lambda: np.add(x @ w, b, out=out)}[contender]
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
