"""The NumPy-mirroring namespace: ``pi.exp``, ``pi.maximum``, ``pi.where``, ``pi.sum``...

Each function has NumPy's name, arguments and semantics (broadcasting, dtype
promotion with weak Python scalars, ``axis``/``keepdims``).  Called with a
traced ``Tensor`` among its arguments (inside ``pyinfer.jit``) it records one
graph node; called with NumPy arrays it runs eagerly through ``pyinfer.ops``
(or NumPy itself for data movement and comparisons, which have no kernel).

This module also holds the table that routes NumPy ufuncs and functions
applied to a ``Tensor`` (``np.exp(t)``, ``np.sum(t, axis=1)``) to these
functions; anything not in it raises ``UnsupportedError`` naming the NumPy
function and the user's line.
"""
from __future__ import annotations

import inspect

import numpy as np

from .frontend import trace as _t
from .frontend.trace import Tensor, is_tensor_in as _traced
from .graph.ir import Op

__all__ = [
    # elementwise, one input
    "exp", "log", "sqrt", "rsqrt", "abs", "negative", "tanh", "sigmoid", "relu", "gelu", "silu",
    "erf", "reciprocal",
    # elementwise, two inputs
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "where",
    # reductions
    "sum", "mean", "max", "min", "argmax",
    # normalisation, linear algebra, data movement
    "softmax", "log_softmax", "layer_norm", "rms_norm", "matmul",
    "reshape", "transpose", "concatenate",
]


def _ops():
    from . import ops  # imported late: the eager path needs the backends, tracing does not
    return ops


# ---- elementwise, one input --------------------------------------------------------------

def _unary(name: str, op: Op, eager_name: str, doc: str):
    def fn(x):
        if isinstance(x, Tensor):
            return _t.unary(op, x)
        return getattr(_ops(), eager_name)(x)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"{doc}, elementwise.  ``x``: float32/float64 array of any shape (or a "
                  f"traced Tensor); returns x's shape and dtype.")
    return fn


exp = _unary("exp", Op.EXP, "exp", "e**x")
log = _unary("log", Op.LOG, "log", "Natural logarithm")
sqrt = _unary("sqrt", Op.SQRT, "sqrt", "Square root")
rsqrt = _unary("rsqrt", Op.RSQRT, "rsqrt", "1 / sqrt(x)")
abs = _unary("abs", Op.ABS, "abs", "Absolute value")  # noqa: A001 (mirrors numpy.abs)
negative = _unary("negative", Op.NEG, "neg", "-x")
tanh = _unary("tanh", Op.TANH, "tanh", "Hyperbolic tangent")
sigmoid = _unary("sigmoid", Op.SIGMOID, "sigmoid", "1 / (1 + exp(-x))")
relu = _unary("relu", Op.RELU, "relu", "max(x, 0) (NaN propagates)")
silu = _unary("silu", Op.SILU, "silu", "x * sigmoid(x)")
erf = _unary("erf", Op.ERF, "erf", "The error function")


def gelu(x, approximate: str = "none"):
    """GELU, elementwise: ``0.5 x (1 + erf(x / sqrt 2))``, or with
    ``approximate="tanh"`` the tanh approximation.  float32/float64, x's shape."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: argument 'approximate' expected 'none' or 'tanh', "
                         f"received {approximate!r}")
    tanh_form = approximate == "tanh"
    if isinstance(x, Tensor):
        return _t.unary(Op.GELU_TANH if tanh_form else Op.GELU, x)
    return (_ops().gelu_tanh if tanh_form else _ops().gelu)(x)


def reciprocal(x):
    """1 / x, elementwise; float32/float64, x's shape and dtype."""
    if isinstance(x, Tensor):
        return _t.unary(Op.RECIPROCAL, x)
    return _ops().div(1.0, x)


# ---- elementwise, two and three inputs --------------------------------------------------

def _binary(name: str, op: Op, eager, doc: str):
    def fn(a, b):
        if _traced(a, b):
            return _t.binary(op, a, b)
        return eager(a, b)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"{doc}, elementwise with NumPy broadcasting and promotion (Python "
                  f"scalars are weak: they never widen an array's dtype).")
    return fn


add = _binary("add", Op.ADD, lambda a, b: _ops().add(a, b), "a + b")
subtract = _binary("subtract", Op.SUB, lambda a, b: _ops().sub(a, b), "a - b")
multiply = _binary("multiply", Op.MUL, lambda a, b: _ops().mul(a, b), "a * b")
divide = _binary("divide", Op.DIV, lambda a, b: _ops().div(a, b), "a / b")
power = _binary("power", Op.POW, lambda a, b: _ops().pow(a, b), "a ** b")
maximum = _binary("maximum", Op.MAXIMUM, lambda a, b: _ops().maximum(a, b),
                  "The larger of a and b (NaN propagates)")
minimum = _binary("minimum", Op.MINIMUM, lambda a, b: _ops().minimum(a, b),
                  "The smaller of a and b (NaN propagates)")
# Comparisons have no eager kernel: NumPy computes them; the result is bool.
equal = _binary("equal", Op.EQUAL, np.equal, "a == b (bool result)")
not_equal = _binary("not_equal", Op.NOT_EQUAL, np.not_equal, "a != b (bool result)")
less = _binary("less", Op.LESS, np.less, "a < b (bool result)")
less_equal = _binary("less_equal", Op.LESS_EQUAL, np.less_equal, "a <= b (bool result)")
greater = _binary("greater", Op.GREATER, np.greater, "a > b (bool result)")
greater_equal = _binary("greater_equal", Op.GREATER_EQUAL, np.greater_equal,
                        "a >= b (bool result)")


def where(cond, a, b):
    """``a`` where ``cond`` else ``b``, broadcasting all three; ``cond`` is bool (a
    numeric condition is read as ``!= 0``); the result dtype promotes a and b."""
    if _traced(cond, a, b):
        return _t.where(cond, a, b)
    return _ops().where(cond, a, b)


# ---- reductions --------------------------------------------------------------------------

def _reduction(name: str, op: Op, doc: str):
    def fn(x, axis=None, keepdims=False):
        if isinstance(x, Tensor):
            return _t.reduce(op, x, axis, keepdims)
        return getattr(_ops(), name)(x, axis=axis, keepdims=keepdims)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"{doc} of float32/float64 ``x`` over ``axis`` (None: all, an int or a "
                  f"tuple), NumPy semantics including ``keepdims``.")
    return fn


sum = _reduction("sum", Op.SUM, "Sum")  # noqa: A001
mean = _reduction("mean", Op.MEAN, "Mean")
max = _reduction("max", Op.MAX, "Maximum")  # noqa: A001
min = _reduction("min", Op.MIN, "Minimum")  # noqa: A001


def argmax(x, axis=None, keepdims=False):
    """Index (int64) of the first maximum along ``axis`` (None: of the flattened array)."""
    if isinstance(x, Tensor):
        return _t.reduce(Op.ARGMAX, x, axis, keepdims)
    return _ops().argmax(x, axis=axis, keepdims=keepdims)


# ---- normalisation and linear algebra ---------------------------------------------------

def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along ``axis``; float32/float64, x's shape."""
    if isinstance(x, Tensor):
        return _t.softmax(Op.SOFTMAX, x, axis)
    return _ops().softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    """(x - max) - log(sum(exp(x - max))) along ``axis``; float32/float64, x's shape."""
    if isinstance(x, Tensor):
        return _t.softmax(Op.LOG_SOFTMAX, x, axis)
    return _ops().log_softmax(x, axis=axis)


def layer_norm(x, weight=None, bias=None, eps=1e-5, axis=-1):
    """(x - mean) / sqrt(var + eps) * weight + bias, statistics over x.shape[axis:];
    weight/bias broadcast to x.shape[axis:] (or None) and take x's dtype."""
    if _traced(x, weight, bias):
        return _t.norm(Op.LAYER_NORM, x, (weight, bias), eps, axis)
    return _ops().layer_norm(x, weight, bias, eps=eps, axis=axis)


def rms_norm(x, weight=None, eps=1e-5, axis=-1):
    """x / sqrt(mean(x*x) + eps) * weight, statistics over x.shape[axis:]."""
    if _traced(x, weight):
        return _t.norm(Op.RMS_NORM, x, (weight,), eps, axis)
    return _ops().rms_norm(x, weight, eps=eps, axis=axis)


def matmul(a, b):
    """``a @ b`` with NumPy's rules (1-D operands promoted, batch dims broadcast)."""
    if _traced(a, b):
        return _t.matmul(a, b)
    return _ops().matmul(a, b)


# ---- data movement -----------------------------------------------------------------------

def reshape(x, shape):
    """``x`` with a new shape (one dim may be -1); a view where NumPy's would be."""
    if isinstance(x, Tensor):
        return _t.reshape(x, shape)
    return np.reshape(x, shape)


def transpose(x, axes=None):
    """``x`` with its axes permuted (reversed when ``axes`` is None)."""
    if isinstance(x, Tensor):
        return _t.transpose(x, axes)
    return np.transpose(x, axes)


def concatenate(arrays, axis=0):
    """Join a sequence of arrays along ``axis`` (None: flatten them first)."""
    arrays = list(arrays)
    if _traced(arrays):
        return _t.concatenate(arrays, axis)
    return np.concatenate(arrays, axis=axis)


# ---- NumPy functions applied to a Tensor ------------------------------------------------

def _swapaxes(a, axis1, axis2):
    perm = list(range(a.ndim))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(a, perm)


def _expand_dims(a, axis):
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    nd = a.ndim + len(axes)
    axes = sorted(int(ax) % nd for ax in axes)
    shape = list(a.shape)
    for ax in axes:
        shape.insert(ax, 1)
    return reshape(a, tuple(shape))


def _squeeze(a, axis=None):
    if axis is None:
        axes = [i for i, d in enumerate(a.shape) if d == 1]
    else:
        axes = [int(ax) % a.ndim for ax in (axis if isinstance(axis, (tuple, list)) else (axis,))]
        for ax in axes:
            if a.shape[ax] != 1:
                raise _t._error(_t.ShapeError, f"squeeze: cannot select an axis to squeeze "
                                               f"out which has size not equal to one ({ax})")
    return reshape(a, tuple(d for i, d in enumerate(a.shape) if i not in axes))


def _clip(a, a_min=None, a_max=None):
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return a


def _dot(a, b):
    nd = [x.ndim if isinstance(x, Tensor) else np.ndim(x) for x in (a, b)]
    if not all(1 <= n <= 2 for n in nd):
        raise _t.unsupported_numpy("numpy.dot", "only 1-d and 2-d operands (where it is "
                                                "matmul); use `@` or pi.matmul")
    return matmul(a, b)


_UFUNCS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.divide: divide,
    np.power: power, np.maximum: maximum, np.minimum: minimum, np.matmul: matmul,
    np.equal: equal, np.not_equal: not_equal, np.less: less, np.less_equal: less_equal,
    np.greater: greater, np.greater_equal: greater_equal,
    np.exp: exp, np.log: log, np.sqrt: sqrt, np.absolute: abs, np.negative: negative,
    np.tanh: tanh, np.reciprocal: reciprocal,
    np.positive: lambda x: x, np.square: lambda x: multiply(x, x),
}

# NumPy function -> (pyinfer function, {numpy parameter: our parameter}).  Any other
# parameter must be left at its default.
_FUNCTIONS = {
    np.sum: (sum, {"a": "x", "axis": "axis", "keepdims": "keepdims"}),
    np.mean: (mean, {"a": "x", "axis": "axis", "keepdims": "keepdims"}),
    np.max: (max, {"a": "x", "axis": "axis", "keepdims": "keepdims"}),
    np.amax: (max, {"a": "x", "axis": "axis", "keepdims": "keepdims"}),
    np.min: (min, {"a": "x", "axis": "axis", "keepdims": "keepdims"}),
    np.amin: (min, {"a": "x", "axis": "axis", "keepdims": "keepdims"}),
    np.argmax: (argmax, {"a": "x", "axis": "axis", "keepdims": "keepdims"}),
    np.reshape: (reshape, {"a": "x", "shape": "shape"}),
    np.transpose: (transpose, {"a": "x", "axes": "axes"}),
    np.concatenate: (concatenate, {"arrays": "arrays", "axis": "axis"}),
    np.where: (where, {"condition": "cond", "x": "a", "y": "b"}),
    np.swapaxes: (_swapaxes, {"a": "a", "axis1": "axis1", "axis2": "axis2"}),
    np.expand_dims: (_expand_dims, {"a": "a", "axis": "axis"}),
    np.squeeze: (_squeeze, {"a": "a", "axis": "axis"}),
    np.clip: (_clip, {"a": "a", "a_min": "a_min", "a_max": "a_max", "min": "a_min",
                      "max": "a_max"}),
    np.dot: (_dot, {"a": "a", "b": "b"}),
    np.shape: (lambda a: a.shape, {"a": "a"}),
    np.ndim: (lambda a: a.ndim, {"a": "a"}),
    np.size: (lambda a: a.size, {"a": "a"}),
}
_SIGNATURES: dict = {}


def _np_name(func) -> str:
    mod = getattr(func, "__module__", None) or "numpy"
    return f"{mod}.{getattr(func, '__name__', repr(func))}"


def route_ufunc(ufunc, method, inputs, kwargs):
    """``Tensor.__array_ufunc__``: a supported ufunc called plainly becomes its pyinfer op."""
    name = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    fn = _UFUNCS.get(ufunc)
    if fn is None or method != "__call__":
        raise _t.unsupported_numpy(name)
    if kwargs:
        raise _t.unsupported_numpy(name, f"keyword arguments {sorted(kwargs)} (e.g. out=, "
                                         f"where=, dtype=) are not supported")
    return fn(*inputs)


def route_function(func, args, kwargs):
    """``Tensor.__array_function__``: a supported NumPy function becomes its pyinfer op."""
    entry = _FUNCTIONS.get(func)
    name = _np_name(func)
    if entry is None:
        raise _t.unsupported_numpy(name)
    target, params = entry
    sig = _SIGNATURES.get(func)
    if sig is None:
        sig = _SIGNATURES[func] = inspect.signature(func)
    bound = sig.bind(*args, **kwargs)
    call = {}
    for pname, value in bound.arguments.items():
        if pname in params:
            if value is not np._NoValue:
                call[params[pname]] = value
            continue
        param = sig.parameters[pname]
        if param.kind is inspect.Parameter.VAR_KEYWORD and not value:
            continue
        default = param.default
        same = value is default or (isinstance(value, (str, type(None), bool, int, float))
                                    and isinstance(default, (str, type(None), bool, int, float))
                                    and value == default)
        if not same:
            raise _t.unsupported_numpy(name, f"argument {pname!r} is not supported")
    if func is np.where and len(call) != 3:
        raise _t.unsupported_numpy(name, "the one-argument form (nonzero) has a "
                                         "data-dependent shape")
    return target(**call)
