"""Block-sparse products: ``sparse_gemm(x, w_bsr, ...)`` and ``to_bsr(w, block)``.

``w_bsr`` is a ``pyinfer.compress.bsr.BSRMatrix`` (k, n) built once from a
(pruned) weight by ``to_bsr``; ``sparse_gemm`` multiplies by its stored blocks
only.  Kernels: the ``numpy`` reference (backends/numpy_sparse.py) and the C
kernel (backends/c_sparse.py, float32).
"""
from __future__ import annotations

import numpy as np

from ..backends import numpy_sparse  # noqa: F401  (registers the reference kernel)
from ..backends.numpy_ref import ACTIVATIONS
from ..errors import dtype_error, shape_error
from ._args import as_float_array, broadcast_shape, check_out, result_dtype
from ._dispatch import run

_BSR = None


def _bsr_module():
    # pyinfer.compress imports the graph layer; load it on first use, not while
    # pyinfer.ops itself is still being imported.
    global _BSR
    if _BSR is None:
        from ..compress import bsr
        _BSR = bsr
    return _BSR


def to_bsr(w, block=(1, 16)):
    """``w`` (k, n) float32/float64 as a ``BSRMatrix`` of ``block`` = (rows
    along k, columns along n), keeping every block that holds a nonzero."""
    return _bsr_module().to_bsr(w, block)


def sparse_gemm(x, w_bsr, bias=None, activation=None, out=None, backend=None) -> np.ndarray:
    """``act(x @ W + bias)`` with W (k, n) stored block-sparse.

    x (..., k) float32/float64; bias None or broadcastable to (n,); activation
    None or one of relu, gelu, gelu_tanh, silu, sigmoid, tanh.  Returns
    (..., n) of the promoted dtype of x, W and bias.  The sum runs over stored
    blocks: an inf/NaN in x that meets only dropped blocks does not reach y.
    """
    op = "sparse_gemm"
    bsr = _bsr_module()
    if not isinstance(w_bsr, bsr.BSRMatrix):
        raise shape_error("w_bsr", "a BSRMatrix (pyinfer.ops.to_bsr(w, block))",
                          type(w_bsr).__name__, op)
    if type(x) is np.ndarray and x.dtype == w_bsr.dtype and (
            bias is None or (type(bias) is np.ndarray and bias.dtype == x.dtype)):
        dtype = x.dtype  # the usual call; what result_dtype would say, without its scan
    else:
        dtype = result_dtype(op, x=x, w_bsr=w_bsr.data, bias=bias)
    x = as_float_array(x, "x", op, dtype)
    k, n = w_bsr.shape
    if x.ndim < 1 or x.shape[-1] != k:
        raise shape_error("x", f"an array of shape (..., {k}) to match w_bsr {w_bsr.shape}",
                          x.shape, op)
    if activation is not None and activation not in ACTIVATIONS:
        raise shape_error("activation", f"None or one of {ACTIVATIONS}", repr(activation), op)
    if bias is not None:
        bias = as_float_array(bias, "bias", op, dtype)
        if bias.shape != (n,) or not bias.flags.c_contiguous:
            if bias.ndim > 1 or broadcast_shape(op, bias=bias.shape, out=(n,)) != (n,):
                raise shape_error("bias", f"a shape broadcastable to ({n},)", bias.shape, op)
            bias = np.ascontiguousarray(np.broadcast_to(bias, (n,)))
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise dtype_error("x", "float32 or float64", dtype, op)
    w = w_bsr.astype(dtype)
    shape = x.shape[:-1] + (n,)
    out = check_out(out, shape, dtype, op)  # here: o2 below reshapes it (run checks backend)
    x2 = x.reshape(-1, k)
    attrs = {"activation": activation}
    o2 = None if out is None else out.reshape(-1, n)
    if o2 is not None and (o2.size == 0 or np.may_share_memory(o2, out)):
        run(op, backend, (x2, w, bias), attrs, o2, o2.shape, dtype, alias_ok=False)
        return out
    # no out, or one whose dims do not merge into (M, n) without a copy
    y = run(op, backend, (x2, w, bias), attrs, None, (x2.shape[0], n), dtype,
            alias_ok=False).reshape(shape)
    if out is None:
        return y
    np.copyto(out, y)
    return out


OPS = {"sparse_gemm": sparse_gemm, "to_bsr": to_bsr}
