"""Elementwise ops: unary, binary with NumPy broadcasting, where."""
from __future__ import annotations

import numpy as np

from ._args import as_float_array, broadcast_shape, result_dtype
from ._dispatch import run

UNARY_OPS = ("exp", "log", "sqrt", "rsqrt", "abs", "neg", "tanh", "sigmoid", "relu",
             "gelu", "gelu_tanh", "silu", "erf")
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")


def unary(op: str, x, out=None, backend=None) -> np.ndarray:
    x = as_float_array(x, "x", op)
    return run(op, backend, (x,), {}, out, x.shape, x.dtype, alias_ok=True)


def binary(op: str, a, b, out=None, backend=None) -> np.ndarray:
    dtype = result_dtype(op, a=a, b=b)
    a = as_float_array(a, "a", op, dtype)
    b = as_float_array(b, "b", op, dtype)
    shape = broadcast_shape(op, a=a.shape, b=b.shape)
    return run(op, backend, (a, b), {}, out, shape, dtype, alias_ok=True)


def where(cond, a, b, out=None, backend=None) -> np.ndarray:
    """``cond ? a : b`` elementwise with broadcasting; ``cond`` is read as bool."""
    cond = np.asarray(cond)
    if cond.dtype != np.bool_:
        if cond.dtype.kind not in "biuf":
            from ..errors import dtype_error
            raise dtype_error("cond", "bool (or numbers read as bool)", cond.dtype, "where")
        cond = cond != 0
    dtype = result_dtype("where", a=a, b=b)
    a = as_float_array(a, "a", "where", dtype)
    b = as_float_array(b, "b", "where", dtype)
    shape = broadcast_shape("where", cond=cond.shape, a=a.shape, b=b.shape)
    return run("where", backend, (cond, a, b), {}, out, shape, dtype, alias_ok=True)


def _make_unary(name):
    def op(x, out=None, backend=None):
        return unary(name, x, out=out, backend=backend)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"Elementwise {name}(x) for float32/float64 ``x`` of any shape; "
                  f"returns an array of x's shape and dtype (or writes ``out``).")
    return op


def _make_binary(name):
    def op(a, b, out=None, backend=None):
        return binary(name, a, b, out=out, backend=backend)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"Elementwise {name}(a, b) with NumPy broadcasting; float32/float64, "
                  f"the result dtype is NumPy's promotion (Python scalars do not widen).")
    return op


OPS = {name: _make_unary(name) for name in UNARY_OPS}
OPS.update({name: _make_binary(name) for name in BINARY_OPS})
OPS["where"] = where
