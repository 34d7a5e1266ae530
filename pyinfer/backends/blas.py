"""The ``blas`` backend: the product by the BLAS NumPy links (OpenBLAS), the
epilogue (alpha, bias, residual, activation) by pyinfer's vectorized
elementwise kernels, in place on the output.

It exists because the selector should run what is fastest, and on the
shapes in ``_wins`` OpenBLAS's product plus one extra pass over the (small,
cache-resident) output measured faster than the C GEMM with its epilogue
fused in registers (bench/RESULTS.md): a one-row product is a GEMV, which
OpenBLAS walks row-contiguously, and from M = 64 a plain product by its packed
kernels beats ours on this machine.  When the C GEMM closes that gap, ``_wins``
shrinks.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import registry
from ..registry import register

PRIORITY = 25  # above c (20) where it wins, see _wins
_TINY_MACS = 1 << 15


def _elementwise(op: str, *args, out):
    """pyinfer's kernel for an elementwise op on these arrays (C where it can)."""
    registry.select(op, None, *args, out=out).fn(*args, out=out)


def _epilogue(out, bias, residual, alpha, activation):
    if alpha != 1.0:
        _elementwise("mul", out, np.asarray(alpha, out.dtype), out=out)
    if bias is not None:
        _elementwise("add", out, bias, out=out)
    if residual is not None:
        _elementwise("add", out, residual, out=out)
    if activation is not None:
        _elementwise(activation, out, out=out)


def _wins(m: int, macs: int, epilogue: bool) -> bool:
    # With an epilogue from M = 64 on, the fused C GEMM wins after all: the
    # epilogue pass is parallel, and OpenMP threads starting while OpenBLAS's
    # threads still spin on the same 2 cores cost more than the pass saves.
    if macs < _TINY_MACS:
        return False
    return m == 1 or (m >= 64 and not epilogue)


def _supports(*arrays, out) -> Optional[str]:
    if out.dtype not in (np.float32, np.float64):
        return f"dtype {out.dtype} is not float32/float64"
    if not out.flags.c_contiguous:
        return "the output must be C-contiguous (the epilogue runs in place on it)"
    return None


def _gemm_supports(a, b, bias, residual, *, alpha, activation, out):
    return _supports(a, b, out=out)


def _gemm_priority(a, b, bias, residual, *, alpha, activation, out):
    m, k = a.shape
    epilogue = bias is not None or residual is not None or activation is not None or alpha != 1.0
    return PRIORITY if _wins(m, m * k * b.shape[1], epilogue) else -1


@register("gemm", "blas", supports=_gemm_supports, priority=_gemm_priority)
def gemm(a, b, bias, residual, *, alpha, activation, out):
    np.matmul(a, b, out=out)
    _epilogue(out, bias, residual, alpha, activation)


def _matmul_priority(a, b, *, out):
    # A batch of small products is the C GEMM's: it gives each thread whole
    # matrices, where NumPy loops over the batch calling BLAS per matrix.
    if a.shape[0] > 1:
        return -1
    return PRIORITY if _wins(a.shape[1], out.size * a.shape[-1], False) else -1


@register("matmul", "blas", supports=lambda a, b, *, out: _supports(a, b, out=out),
          priority=_matmul_priority)
def matmul(a, b, *, out):
    np.matmul(a, b, out=out)
