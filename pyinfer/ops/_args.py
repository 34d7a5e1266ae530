"""Argument checking shared by every eager op.

Everything a kernel may trust (docs/kernel-contract.md) is established here:
float32/float64 only, native byte order, aligned, shapes that agree, an
``out`` of exactly the right shape and dtype that does not partially overlap
an input.  Errors name the op, the argument, and what was expected/received.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import numpy as np

from ..errors import BackendUnavailableError, DTypeError, ShapeError, dtype_error, shape_error
from ..registry import BACKENDS

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_python_scalar(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (np.ndarray, np.generic, bool))


def as_float_array(x, name: str, op: str, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """``x`` as an aligned, native-order float32/float64 array (converted to
    ``dtype`` if given).  Integers, bools, complex and float16 are refused:
    an inference kernel should not guess a precision for its caller."""
    if _is_python_scalar(x):
        return np.asarray(x, dtype=dtype or np.float64)
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind != "f" or size not in (4, 8):
        raise dtype_error(name, "float32 or float64", arr.dtype, op)
    target = np.dtype(dtype) if dtype is not None else np.dtype(f"f{size}")
    if arr.dtype != target or not arr.flags.aligned:
        arr = np.asarray(arr, dtype=target)
        if not arr.flags.aligned:
            arr = arr.copy()
    return arr


def result_dtype(op: str, **inputs) -> np.dtype:
    """NumPy's promotion restricted to float32/float64; Python scalars are weak
    (they never widen an array's dtype), as in NumPy 2."""
    dtypes = []
    for name, x in inputs.items():
        if x is None or _is_python_scalar(x):
            continue
        dt = x.dtype if isinstance(x, (np.ndarray, np.generic)) else np.asarray(x).dtype
        if dt.kind != "f" or dt.itemsize not in (4, 8):
            raise dtype_error(name, "float32 or float64", dt, op)
        dtypes.append(np.dtype(f"f{dt.itemsize}"))
    if not dtypes:
        return np.dtype(np.float64)
    return np.result_type(*dtypes)


def broadcast_shape(op: str, **shapes) -> tuple:
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        desc = ", ".join(f"'{k}' {tuple(v)}" for k, v in shapes.items())
        raise ShapeError(f"{op}: arguments cannot be broadcast together: {desc}") from None


def normalize_axis(axis, ndim: int, op: str, name: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise shape_error(name, "an int", repr(axis), op)
    if not -ndim <= axis < ndim:
        raise shape_error(name, f"an int in [{-ndim}, {ndim}) for a {ndim}-d input", axis, op)
    return int(axis) % ndim


def normalize_axes(axis, ndim: int, op: str) -> tuple:
    """None -> every axis; int or sequence -> sorted distinct non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(normalize_axis(a, ndim, op) for a in items)
    if len(set(axes)) != len(axes):
        raise shape_error("axis", "distinct axes", tuple(items), op)
    return tuple(sorted(axes))


def check_eps(eps, op: str) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise shape_error("eps", "a finite float >= 0", repr(eps), op)
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise shape_error("eps", "a finite float >= 0", eps, op)
    return eps


def check_out(out, shape: tuple, dtype: np.dtype, op: str, dtype_name: str | None = None):
    """Validate a caller's ``out=`` (None passes through)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise dtype_error("out", f"a numpy.ndarray of {dtype}", type(out).__name__, op)
    if out.dtype != dtype:
        raise dtype_error("out", dtype_name or dtype, out.dtype, op)
    if out.shape != tuple(shape):
        raise shape_error("out", tuple(shape), out.shape, op)
    if not out.flags.writeable:
        raise ShapeError(f"{op}: argument 'out' is read-only")
    return out


def same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def needs_temporary(out: np.ndarray, inputs: Sequence, allow_exact_alias: bool) -> bool:
    """True when ``out`` overlaps an input in a way the kernel may not see
    (or is unaligned): then the op computes into a temporary and copies."""
    if not out.flags.aligned:
        return True
    for x in inputs:
        if not isinstance(x, np.ndarray) or x.size == 0:
            continue
        if np.may_share_memory(out, x):
            if allow_exact_alias and same_view(out, x):
                continue
            if np.shares_memory(out, x):
                return True
    return False


def check_backend(backend, op: str):
    if backend is not None and backend not in BACKENDS:
        raise BackendUnavailableError(
            f"{op}: argument 'backend' expected one of {BACKENDS} or None, received {backend!r}")
    return backend
