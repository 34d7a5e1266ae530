"""fp32 GEMM at transformer shapes: pyinfer's C GEMM against NumPy (OpenBLAS).

Shapes: M in {1, 8, 32, 128, 1024} (batch x sequence rows) with (K, N) the
MiniLM projections (384x384, 384x1536, 1536x384), plus 256^3 and 512^3.
Contenders, all writing into a preallocated ``out``:

* ``pyinfer[packed]``: ``c_gemm.gemm_packed`` on a B packed once (what a
  plan runs for constant weights);
* ``pyinfer[c]``: ``c_gemm.gemm`` (B packed or streamed inside every call:
  what eager ``ops.gemm`` and non-constant B run);
* ``numpy``: ``np.matmul``.

Threads: ``--bench-threads N`` (pyinfer and OpenBLAS alike).  OpenBLAS's
workers spin after a call and take the second core from OpenMP's, so compare
the groups of a block-wise run (pytest-benchmark runs each contender's rounds
in one block), never single interleaved calls.

    pytest bench/test_bench_gemm_shapes.py --benchmark-only --bench-threads 2 \
        --benchmark-columns=median,iqr --benchmark-group-by=group
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from pyinfer.backends import c_gemm

SHAPES = [(m, k, n) for m in (1, 8, 32, 128, 1024)
          for k, n in ((384, 384), (384, 1536), (1536, 384))] + [(256, 256, 256), (512, 512, 512)]
CONTENDERS = ("pyinfer[packed]", "pyinfer[c]", "numpy")

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=20, min_rounds=15,
                                   max_time=1.0, disable_gc=True)


@functools.lru_cache(maxsize=None)
def _inputs(shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), np.float32)
    b = rng.standard_normal((k, n), np.float32)
    return a, b, np.empty((m, n), np.float32)


def _contender(name, a, b, out):
    if name == "numpy":
        return lambda: np.matmul(a, b, out=out)
    if name == "pyinfer[c]":
        return lambda: c_gemm.gemm(a, b, None, None, alpha=1.0, activation=None, out=out)
    packed = c_gemm.pack_b(b, a.shape[0])
    return lambda: c_gemm.gemm_packed(a, packed, None, None, alpha=1.0, activation=None,
                                      out=out)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("contender", CONTENDERS)
def test_gemm_shape(benchmark, threads, shape, contender):
    m, k, n = shape
    benchmark.group = f"gemm {m}x{k}x{n} f32"
    benchmark.extra_info.update(contender=contender, threads=threads, flops=2 * m * n * k)
    a, b, out = _inputs(shape)
    fn = _contender(contender, a, b, out)
    fn()
    benchmark(fn)
