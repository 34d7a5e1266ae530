"""matmul (NumPy semantics, batched) and gemm (2-D with a fused epilogue)."""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import ShapeError, shape_error
from ..backends.numpy_ref import ACTIVATIONS
from ._args import as_float_array, broadcast_shape, check_backend, check_out, result_dtype
from ._args import needs_temporary
from .. import registry


def _as_3d(arr: np.ndarray, nbatch: int):
    """View the leading ``nbatch`` dims of ``arr`` as one batch dim, or None
    when the strides do not allow it without a copy."""
    if nbatch == 0:
        return arr[None]
    dims = [(n, s) for n, s in zip(arr.shape[:nbatch], arr.strides[:nbatch]) if n != 1]
    for (_, s0), (n1, s1) in zip(dims, dims[1:]):
        if s0 != s1 * n1:
            return None
    size = int(np.prod(arr.shape[:nbatch]))
    stride = dims[-1][1] if dims else 0
    return np.lib.stride_tricks.as_strided(
        arr, (size,) + arr.shape[nbatch:], (stride,) + arr.strides[nbatch:],
        writeable=arr.flags.writeable)


def _run_batched(kernel, a, b, out, nbatch):
    """Call the 3-D kernel once if every operand's batch dims collapse into
    one, else once per index of the leading batch dim (recursively)."""
    views = [_as_3d(x, nbatch) for x in (a, b, out)]
    if all(v is not None for v in views):
        kernel.fn(views[0], views[1], out=views[2])
        return
    for i in range(a.shape[0]):
        _run_batched(kernel, a[i], b[i], out[i], nbatch - 1)


def matmul(a, b, out=None, backend=None) -> np.ndarray:
    """``a @ b`` with NumPy's rules: 1-D operands are promoted and the added dim
    removed, leading dims broadcast.  float32/float64."""
    op = "matmul"
    dtype = result_dtype(op, a=a, b=b)
    a = as_float_array(a, "a", op, dtype)
    b = as_float_array(b, "b", op, dtype)
    if a.ndim == 0 or b.ndim == 0:
        bad = "a" if a.ndim == 0 else "b"
        raise ShapeError(f"{op}: argument '{bad}' expected at least 1 dimension, received a 0-d array")
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    m, k = a2.shape[-2:]
    if b2.shape[-2] != k:
        raise shape_error("b", f"{k} rows to match the {k} columns of a {a.shape}", b.shape, op)
    n = b2.shape[-1]
    batch = broadcast_shape(op, a=a2.shape[:-2], b=b2.shape[:-2])
    shape = batch + ((m,) if a.ndim > 1 else ()) + ((n,) if b.ndim > 1 else ())
    check_backend(backend, op)
    out = check_out(out, shape, dtype, op)
    result = np.empty(shape, dtype) if out is None else out
    if result.size == 0:
        return result
    if k == 0:
        result[...] = 0
        return result
    target = result
    if out is not None and needs_temporary(out, (a, b), allow_exact_alias=False):
        target = np.empty(shape, dtype)
    # Put back the dims NumPy drops for 1-D operands: expand_dims is always a view.
    o = target
    if a.ndim == 1:
        o = np.expand_dims(o, -2 if b.ndim > 1 else -1)
    if b.ndim == 1:
        o = np.expand_dims(o, -1)
    a_b = np.broadcast_to(a2, batch + (m, k))
    b_b = np.broadcast_to(b2, batch + (k, n))
    # Select on what the kernel will be called with: the whole batch as one 3-D
    # call where the strides allow it (a backend that loses on batches, like
    # BLAS called per matrix, must see the batch), else one matrix.
    whole = [_as_3d(x, len(batch)) for x in (a_b, b_b, o)]
    if any(v is None for v in whole):
        first = (0,) * len(batch)
        whole = [x[first][None] for x in (a_b, b_b, o)]
    kernel = registry.select(op, backend, whole[0], whole[1], out=whole[2])
    _run_batched(kernel, a_b, b_b, o, len(batch))
    if target is not result:
        np.copyto(result, target)
    return result


def gemm(a, b, bias=None, activation=None, residual=None, trans_a=False, trans_b=False,
         alpha=1.0, out=None, backend=None) -> np.ndarray:
    """``act(alpha * op(a) @ op(b) + bias + residual)`` with op = transpose when
    asked, fused into one pass.  a, b 2-D; bias and residual broadcast to
    (M, N) (bias of shape (N,) is the fast path); activation None or one of
    relu, gelu (erf), gelu_tanh, silu, sigmoid, tanh.  float32/float64."""
    op = "gemm"
    dtype = result_dtype(op, a=a, b=b, bias=bias, residual=residual)
    a = as_float_array(a, "a", op, dtype)
    b = as_float_array(b, "b", op, dtype)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 2:
            raise shape_error(name, "a 2-d array", f"{x.ndim}-d {x.shape}", op)
    if trans_a:
        a = a.T
    if trans_b:
        b = b.T
    m, k = a.shape
    if b.shape[0] != k:
        raise shape_error("b", f"{k} rows (after trans_b={bool(trans_b)}) to match a",
                          b.shape, op)
    n = b.shape[1]
    if activation is not None and activation not in ACTIVATIONS:
        raise shape_error("activation", f"None or one of {ACTIVATIONS}", repr(activation), op)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise shape_error("alpha", "a real number", repr(alpha), op)
    alpha = float(alpha)
    if bias is not None:
        bias = as_float_array(bias, "bias", op, dtype)
        if bias.ndim > 2 or broadcast_shape(op, bias=bias.shape, out=(m, n)) != (m, n):
            raise shape_error("bias", f"a shape broadcastable to ({m}, {n})", bias.shape, op)
    if residual is not None:
        residual = as_float_array(residual, "residual", op, dtype)
        if residual.ndim > 2 or broadcast_shape(op, residual=residual.shape, out=(m, n)) != (m, n):
            raise shape_error("residual", f"a shape broadcastable to ({m}, {n})", residual.shape, op)
        residual = np.broadcast_to(residual, (m, n))
    # A bias that varies along rows is a residual as far as the kernel goes.
    if bias is not None and bias.ndim == 2 and bias.shape[0] != 1:
        full = np.broadcast_to(bias, (m, n))
        residual = full if residual is None else full + residual
        bias = None
    elif bias is not None:
        bias = np.ascontiguousarray(np.broadcast_to(bias.reshape(-1), (n,)))
    check_backend(backend, op)
    out = check_out(out, (m, n), dtype, op)
    result = np.empty((m, n), dtype) if out is None else out
    if result.size == 0:
        return result
    target = result
    if out is not None and needs_temporary(out, (a, b, bias, residual), allow_exact_alias=False):
        target = np.empty((m, n), dtype)
    args = (a, b, bias, residual)
    attrs = {"alpha": alpha, "activation": activation}
    kernel = registry.select(op, backend, *args, out=target, **attrs)
    kernel.fn(*args, out=target, **attrs)
    if target is not result:
        np.copyto(result, target)
    return result


OPS = {"matmul": matmul, "gemm": gemm}
