"""The reference block-sparse GEMM: ``sparse_gemm`` on the ``numpy`` backend.

Kernel signature (the ops layer has validated and cast everything):
``fn(x, w, bias, *, activation, out)`` with x (M, K) any strides, w a
``pyinfer.compress.bsr.BSRMatrix`` (K, N) of the result dtype, bias None or
C-contiguous (N,), out (M, N).  ``out = act(x @ W + bias)`` where the sum runs
over the *stored* blocks only -- the kernels' semantics, which differ from a
dense product only when a non-finite x meets a dropped block (0 * inf).

Written plainly, one panel at a time: the rows of x each stored block of the
panel multiplies are gathered and the panel is one small matmul.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from .numpy_ref import _store, apply_activation


def sparse_gemm_ref(x, w, bias, activation) -> np.ndarray:
    m = x.shape[0]
    k, n = w.shape
    br, bc = w.block
    dtype = np.result_type(x.dtype, w.dtype)
    xp = np.zeros((m, w.block_rows * br), dtype)
    xp[:, :k] = x  # rows past k meet only zero padding
    y = np.zeros((m, w.panels * bc), dtype)
    with np.errstate(all="ignore"):
        for p in range(w.panels):
            e0, e1 = int(w.indptr[p]), int(w.indptr[p + 1])
            if e1 > e0:
                rows = (w.indices[e0:e1, None].astype(np.int64) * br + np.arange(br)).reshape(-1)
                y[:, p * bc:(p + 1) * bc] = xp[:, rows] @ w.data[e0:e1].reshape(-1, bc)
        y = y[:, :n]
        if bias is not None:
            y = y + bias
        return apply_activation(y, activation)


@register("sparse_gemm", "numpy")
def sparse_gemm(x, w, bias, *, activation, out):
    _store(out, sparse_gemm_ref(x, w, bias, activation))
