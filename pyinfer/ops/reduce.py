"""Reductions: sum, mean, max, min over an axis or axes, and argmax."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ._args import as_float_array, check_backend, check_out, normalize_axes, normalize_axis
from ._dispatch import run


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def reduce(op: str, x, axis=None, keepdims=False, out=None, backend=None) -> np.ndarray:
    x = as_float_array(x, "x", op)
    axes = normalize_axes(axis, x.ndim, op)
    keepdims = bool(keepdims)
    shape = _reduced_shape(x.shape, axes, keepdims)
    if not axes:  # axis=() reduces nothing: NumPy returns the values themselves
        check_backend(backend, op)
        out = check_out(out, shape, x.dtype, op)
        result = np.array(x, copy=True) if out is None else out
        if out is not None:
            np.copyto(out, x)
        return result
    reduced = 1
    for a in axes:
        reduced *= x.shape[a]
    if reduced == 0:
        return _empty_reduction(op, x, shape, out, backend)
    return run(op, backend, (x,), {"axis": axes, "keepdims": keepdims}, out, shape, x.dtype,
               alias_ok=False)


def _empty_reduction(op, x, shape, out, backend):
    """A reduction over zero elements: NumPy's identity (0 for sum, NaN for mean),
    and an error for max/min, which have none."""
    if op in ("max", "min"):
        raise ShapeError(f"{op}: argument 'x' has a zero-size reduced axis {x.shape}; "
                         f"{op} has no identity")
    check_backend(backend, op)
    out = check_out(out, shape, x.dtype, op)
    result = np.empty(shape, x.dtype) if out is None else out
    result[...] = 0.0 if op == "sum" else np.nan
    return result


def argmax(x, axis=None, keepdims=False, out=None, backend=None) -> np.ndarray:
    """Index of the first maximum along ``axis`` (None: of the flattened array);
    int64, NaN counts as the maximum (NumPy)."""
    x = as_float_array(x, "x", "argmax")
    keepdims = bool(keepdims)
    if axis is None:
        shape = (1,) * x.ndim if keepdims else ()
        empty = x.size == 0
    else:
        axis = normalize_axis(axis, x.ndim, "argmax")
        shape = _reduced_shape(x.shape, (axis,), keepdims)
        empty = x.shape[axis] == 0
    if empty:
        raise ShapeError(f"argmax: argument 'x' has a zero-size reduced axis {x.shape}")
    return run("argmax", backend, (x,), {"axis": axis, "keepdims": keepdims}, out, shape,
               np.dtype(np.int64), alias_ok=False)


def _make(name):
    def op(x, axis=None, keepdims=False, out=None, backend=None):
        return reduce(name, x, axis=axis, keepdims=keepdims, out=out, backend=backend)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"{name} of float32/float64 ``x`` over ``axis`` (None, int or tuple), "
                  f"NumPy semantics including ``keepdims``.")
    return op


OPS = {name: _make(name) for name in ("sum", "mean", "max", "min")}
OPS["argmax"] = argmax
