"""The ``c`` backend's ``sparse_gemm``: csrc/pi_sparse.c's block-sparse
float32 GEMM with the bias + activation epilogue in registers.

Kernel signature as in ``numpy_sparse``.  float32 only (float64 runs on the
reference); C needs y's columns contiguous and aligned data, so an ``out``
that is not gets a temporary.  ``x`` may have any (aligned) strides.
"""
from __future__ import annotations

import weakref
from typing import Optional

import numpy as np

from ..registry import register
from ._native import check, ffi, lib
from .c_gemm import ACTIVATION_CODES

_F32 = np.dtype(np.float32)
PRIORITY = 20


def _supports(x, w, bias, *, activation, out) -> Optional[str]:
    if out.dtype != _F32:
        return f"dtype {out.dtype}: the C block-sparse kernel is float32 only"
    if x.dtype != _F32 or w.dtype != _F32 or (bias is not None and bias.dtype != _F32):
        return "every operand must be float32"
    if activation not in ACTIVATION_CODES:
        return f"activation {activation!r} has no C epilogue"
    return None


def _fp(x: np.ndarray):
    if x.flags.c_contiguous:
        return ffi.from_buffer("float[]", x)
    return ffi.cast("float *", x.ctypes.data)


# The C views of a weight's three arrays, made once per BSRMatrix (immutable):
# a GEMV of a 90%-sparse layer takes ~15 us, and three from_buffer calls a run
# were a visible share of it.
_WEIGHT_PTRS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _weight_ptrs(w):
    ptrs = _WEIGHT_PTRS.get(w)
    if ptrs is None:
        data = w.data
        ptrs = (ffi.from_buffer("int[]", w.indptr), ffi.from_buffer("int[]", w.indices),
                ffi.from_buffer("float[]", data) if data.size else ffi.NULL)
        _WEIGHT_PTRS[w] = ptrs
    return ptrs


@register("sparse_gemm", "c", supports=_supports, priority=PRIORITY)
def sparse_gemm(x, w, bias, *, activation, out):
    """out (M, N) = act(x (M, K) @ w (BSR K x N) + bias (N,)), float32."""
    if not x.flags.aligned:
        x = np.ascontiguousarray(x)
    m, k = x.shape
    n = w.shape[1]
    target = out
    if not (out.flags.aligned and out.strides[1] == 4 and out.strides[0] % 4 == 0):
        target = np.empty((m, n), _F32)
    indptr, indices, values = _weight_ptrs(w)
    status = lib.pi_f32_bsr_gemm(
        m, n, k, _fp(x), x.strides[0], x.strides[1], w.block[0], w.block[1],
        indptr, indices, values,
        ffi.NULL if bias is None else ffi.from_buffer("float[]", bias),
        ACTIVATION_CODES[activation], _fp(target), target.strides[0])
    if status:
        check(status, "sparse_gemm")
    if target is not out:
        np.copyto(out, target)
