"""Tracing NumPy-like code into a ``Graph``: the ``Tensor`` proxy and the trace context.

While ``pyinfer.jit`` traces a function, every array argument is a ``Tensor``:
a stand-in that knows its shape and dtype but holds no data.  Each operation
on it (an operator, a method, a ``pyinfer`` namespace function, or a NumPy
ufunc/function routed through ``__array_ufunc__``/``__array_function__``)
appends one node to the trace's ``Graph`` and returns a new ``Tensor``.

Mixed-in NumPy arrays become graph constants; Python scalars become 0-d
constants in the dtype of the other operands, so they stay weak as in NumPy 2
(``float32 * 2.0`` is float32).  Anything that needs the data (``bool(t)``,
``if t:``, ``np.asarray(t)``, iteration) raises ``TraceError``: Python control
flow that depends on values cannot be traced, only control flow on shapes.

Errors raised while tracing keep their type (``ShapeError`` stays
``ShapeError``) and say which line of the user's code caused them.
"""
from __future__ import annotations

import linecache
import numbers
import os
import sys
import threading
from typing import Optional, Sequence

import numpy as np

from ..errors import DTypeError, PyinferError, ShapeError, UnsupportedError
from ..graph.ir import Graph, Op, Value

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class TraceError(UnsupportedError, TypeError):
    """Traced code asked for something only data could answer (``bool(t)``,
    ``np.asarray(t)``, iteration), or mixed tensors of different traces."""


# ---- where in the user's code ----------------------------------------------------------

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Frames in these files are the tracer's own; the user's line is the first frame outside.
_INTERNAL = tuple(os.path.join(_PKG, p) for p in
                  ("frontend" + os.sep, "graph" + os.sep, "ops" + os.sep, "backends" + os.sep,
                   "runtime" + os.sep, "plan" + os.sep, "api.py", "errors.py", "registry.py"))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__)) + os.sep


def _internal(filename: str) -> bool:
    fn = os.path.abspath(filename)
    return fn.startswith(_INTERNAL) or fn.startswith(_NUMPY_DIR) or filename.startswith("<frozen")


def user_location() -> Optional[tuple]:
    """(filename, lineno, source text) of the innermost frame outside pyinfer and NumPy."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _internal(filename):
            line = linecache.getline(filename, frame.f_lineno).strip()
            return filename, frame.f_lineno, line
        frame = frame.f_back
    return None


def format_location(loc) -> str:
    if loc is None:
        return "at an unknown line"
    filename, lineno, line = loc
    return f"at {filename}:{lineno}" + (f": `{line}`" if line else "")


def locate(exc: BaseException) -> BaseException:
    """The same kind of exception, its message extended with the user's line (once)."""
    if getattr(exc, "_pyinfer_located", False) or not isinstance(exc, PyinferError):
        return exc
    new = type(exc)(f"{exc} [traced {format_location(user_location())}]")
    new._pyinfer_located = True
    new.__cause__ = exc.__cause__
    return new


def _error(cls, msg: str) -> BaseException:
    return locate(cls(msg))


# ---- the trace context ---------------------------------------------------------------

class TraceContext:
    """One trace: the graph being built, and constants already added (by id)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.closed = False
        self._consts: dict = {}  # (id(obj), dtype) -> (obj, Value); obj kept so ids stay unique

    def add(self, op: Op, inputs: Sequence[Optional[Value]], attrs: Optional[dict] = None) -> Value:
        if self.closed:
            raise _error(TraceError, f"{op.value}: a Tensor was used after its trace ended "
                                     f"(it escaped the jit function, e.g. through a global)")
        try:
            out = self.graph.add(op, inputs, attrs)
        except PyinferError as e:
            raise locate(e) from None
        return out

    def constant(self, obj, dtype=None, name: str = "const") -> Value:
        """A graph constant for a NumPy array / scalar, converted to ``dtype``.
        Graph.constant copies: the trace snapshots the data as NumPy would have read
        it at that moment, and later edits by the caller do not leak into the plan."""
        key = (id(obj), None if dtype is None else np.dtype(dtype).str)
        hit = self._consts.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = self.graph.constant(np.asarray(obj, dtype=dtype), name)
        if isinstance(obj, np.ndarray):  # scalars are cheap and their ids are recycled
            self._consts[key] = (obj, value)
        return value


def context_of(args) -> Optional[TraceContext]:
    """The trace the Tensors among ``args`` (flat) belong to, or None."""
    ctx = None
    for a in args:
        if isinstance(a, Tensor):
            if ctx is None:
                ctx = a._ctx
            elif a._ctx is not ctx:
                raise _error(TraceError, "tensors from two different traces were mixed")
    return ctx


def is_tensor_in(*args) -> bool:
    for a in args:
        if isinstance(a, Tensor):
            return True
        if isinstance(a, (list, tuple)) and any(isinstance(b, Tensor) for b in a):
            return True
    return False


# ---- dtype promotion (NumPy 2: Python scalars are weak) -------------------------------

def _is_py_scalar(x) -> bool:
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def _promote(opname: str, args) -> np.dtype:
    parts = []
    for a in args:
        if isinstance(a, Tensor):
            parts.append(a.dtype)
        elif _is_py_scalar(a):
            parts.append(a)
        elif isinstance(a, complex):
            raise _error(DTypeError, f"{opname}: complex operand {a!r} is not supported")
        else:
            parts.append(np.asarray(a).dtype)
    target = np.result_type(*parts)
    if target not in FLOAT_DTYPES:
        got = ", ".join(str(a.dtype if isinstance(a, Tensor) else np.asarray(a).dtype)
                        for a in args)
        raise _error(DTypeError, f"{opname}: traced operands must promote to float32 or "
                                 f"float64, received {got} (-> {target})")
    return target


def _as_value(ctx: TraceContext, x, dtype, name: str = "const") -> Value:
    """``x`` (Tensor, array or scalar) as a graph value of ``dtype``."""
    if isinstance(x, Tensor):
        if x.dtype == dtype:
            return x.value
        return ctx.add(Op.CAST, [x.value], {"dtype": np.dtype(dtype)})
    if isinstance(x, Value):
        return x
    return ctx.constant(x, dtype, name)


def _wrap(ctx: TraceContext, value: Value) -> "Tensor":
    return Tensor(value, ctx)


# ---- emitting nodes (the api functions and Tensor methods call these) -----------------

def unary(op: Op, x: "Tensor") -> "Tensor":
    return _wrap(x._ctx, x._ctx.add(op, [x.value]))


def binary(op: Op, a, b) -> "Tensor":
    ctx = context_of((a, b))
    dtype = _promote(op.value, (a, b))
    return _wrap(ctx, ctx.add(op, [_as_value(ctx, a, dtype), _as_value(ctx, b, dtype)]))


def where(cond, a, b) -> "Tensor":
    ctx = context_of((cond, a, b))
    if isinstance(cond, Tensor):
        c = cond
        if c.dtype != np.bool_:  # NumPy reads a non-bool condition as != 0
            c = binary(Op.NOT_EQUAL, c, 0)
        cv = c.value
    else:
        cv = ctx.constant(np.asarray(cond) != 0 if np.asarray(cond).dtype != np.bool_ else cond,
                          np.bool_)
    dtype = _promote("where", (a, b))
    return _wrap(ctx, ctx.add(Op.WHERE, [cv, _as_value(ctx, a, dtype), _as_value(ctx, b, dtype)]))


def _norm_axis(axis, what="axis"):
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        out = []
        for a in axis:
            out.append(_norm_axis(a, what))
        return tuple(out)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise _error(ShapeError, f"argument '{what}' expected an int, a tuple of ints or None, "
                                 f"received {axis!r}")
    return int(axis)


def reduce(op: Op, x: "Tensor", axis=None, keepdims=False) -> "Tensor":
    attrs = {"axis": _norm_axis(axis), "keepdims": bool(keepdims)}
    if op is Op.ARGMAX and isinstance(attrs["axis"], tuple):
        raise _error(ShapeError, f"argmax: argument 'axis' expected an int or None, "
                                 f"received {axis!r}")
    return _wrap(x._ctx, x._ctx.add(op, [x.value], attrs))


def softmax(op: Op, x: "Tensor", axis=-1) -> "Tensor":
    return _wrap(x._ctx, x._ctx.add(op, [x.value], {"axis": _norm_axis(axis)}))


def _check_eps(eps, op):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not np.isfinite(eps) \
            or eps < 0:
        raise _error(ShapeError, f"{op}: argument 'eps' expected a finite float >= 0, "
                                 f"received {eps!r}")
    return float(eps)


def norm(op: Op, x, params: Sequence, eps, axis) -> "Tensor":
    """layer_norm (params = weight, bias) / rms_norm (params = weight).  As the eager
    ops do, weight and bias take x's dtype: they never widen the result."""
    ctx = context_of((x, *params))
    if not isinstance(x, Tensor):
        x = _wrap(ctx, ctx.constant(x))
    if x.dtype not in FLOAT_DTYPES:
        raise _error(DTypeError, f"{op.value}: argument 'x' expected dtype float32 or float64, "
                                 f"received {x.dtype}")
    names = ("weight", "bias")
    ins = [x.value] + [None if p is None else _as_value(ctx, p, x.dtype, names[i])
                       for i, p in enumerate(params)]
    attrs = {"axis": _norm_axis(axis), "eps": _check_eps(eps, op.value)}
    return _wrap(ctx, ctx.add(op, ins, attrs))


def matmul(a, b) -> "Tensor":
    return binary(Op.MATMUL, a, b)


def _shape_arg(shape) -> tuple:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        return (int(shape),)
    try:
        out = tuple(shape)
    except TypeError:
        out = None
    if out is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                              for d in out):
        raise _error(ShapeError, f"reshape: argument 'shape' expected ints, received {shape!r}")
    return tuple(int(d) for d in out)


def reshape(x: "Tensor", shape) -> "Tensor":
    shape = _shape_arg(shape)
    if tuple(shape) == x.shape:
        return x
    return _wrap(x._ctx, x._ctx.add(Op.RESHAPE, [x.value], {"shape": shape}))


def transpose(x: "Tensor", axes=None) -> "Tensor":
    perm = None if axes is None else _shape_arg(axes)
    if perm is not None and len(perm) != x.ndim:
        raise _error(ShapeError, f"transpose: argument 'axes' expected a permutation of "
                                 f"{x.ndim} axes, received {axes!r}")
    return _wrap(x._ctx, x._ctx.add(Op.TRANSPOSE, [x.value], {"perm": perm}))


def concatenate(arrays, axis=0) -> "Tensor":
    arrays = list(arrays)
    if not arrays:
        raise _error(ShapeError, "concatenate: need at least one array")
    ctx = context_of(arrays)
    if axis is None:  # NumPy: flatten each first
        arrays = [reshape(a, -1) if isinstance(a, Tensor) else np.ravel(a) for a in arrays]
        axis = 0
    dtype = _promote("concatenate", arrays)
    values = [_as_value(ctx, a, dtype) for a in arrays]
    return _wrap(ctx, ctx.add(Op.CONCAT, values, {"axis": _norm_axis(axis)}))


def cast(x: "Tensor", dtype) -> "Tensor":
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise _error(DTypeError, f"astype: argument 'dtype' expected float32 or float64, "
                                 f"received {dtype!r}")
    if dt == x.dtype:
        return x
    return _wrap(x._ctx, x._ctx.add(Op.CAST, [x.value], {"dtype": dt}))


def _index_item(item):
    if item is None or item is Ellipsis:
        return item
    if isinstance(item, slice):
        parts = []
        for p in (item.start, item.stop, item.step):
            if p is None or (isinstance(p, (int, np.integer)) and not isinstance(p, bool)):
                parts.append(None if p is None else int(p))
            else:
                raise _error(UnsupportedError, f"slicing: slice bounds must be ints or None, "
                                               f"received {p!r} (only basic slicing is traced)")
        if parts[2] == 0:
            raise _error(ShapeError, "slicing: slice step cannot be zero")
        return slice(*parts)
    if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
        return int(item)
    if isinstance(item, Tensor):
        raise _error(UnsupportedError, "indexing with a traced Tensor (data-dependent "
                                       "indexing) is not supported; use pi.where")
    raise _error(UnsupportedError, f"indexing with {type(item).__name__} {item!r} is advanced "
                                   f"indexing, which is not supported; use ints, slices, None "
                                   f"and ...")


def getitem(x: "Tensor", index) -> "Tensor":
    items = index if isinstance(index, tuple) else (index,)
    norm_index = tuple(_index_item(i) for i in items)
    if norm_index.count(Ellipsis) > 1:
        raise _error(ShapeError, "slicing: an index can only have a single ellipsis ('...')")
    return _wrap(x._ctx, x._ctx.add(Op.SLICE, [x.value], {"index": norm_index}))


# ---- the proxy -------------------------------------------------------------------------

_CONTROL_FLOW = ("a traced Tensor has no value while pyinfer.jit traces the function, so "
                 "Python control flow that depends on data (if/while/and/or on a Tensor, "
                 "bool(), float(), iteration, np.asarray) cannot be traced; use pi.where "
                 "for data-dependent choices (shapes are known: x.shape, x.ndim)")


class Tensor:
    """A traced array: shape and dtype known, data not.  Mirrors ``numpy.ndarray``'s
    operators and the methods listed in pyinfer.frontend's docs."""

    __slots__ = ("value", "_ctx")
    __array_priority__ = 1000  # ndarray op Tensor defers to Tensor's reflected op

    def __init__(self, value: Value, ctx: TraceContext):
        self.value = value
        self._ctx = ctx

    # -- static facts
    @property
    def shape(self) -> tuple:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def size(self) -> int:
        return self.value.size

    def __len__(self) -> int:
        # The shape is part of the jit signature, so len() is a constant of the trace.
        if self.ndim == 0:
            raise _error(TraceError, "len() of a 0-d Tensor")
        return self.shape[0]

    def __repr__(self):
        return f"Tensor({self.value!r})"

    __hash__ = object.__hash__

    # -- what needs data
    def _no_data(self, what):
        raise _error(TraceError, f"{what}: {_CONTROL_FLOW}")

    def __bool__(self):
        self._no_data("bool() of a Tensor (an `if`, `while`, `and`, `or` on it)")

    def __float__(self):
        self._no_data("float()")

    def __int__(self):
        self._no_data("int()")

    def __index__(self):
        self._no_data("use as an index (__index__)")

    def __complex__(self):
        self._no_data("complex()")

    def __iter__(self):
        self._no_data("iteration (for ... in)")

    def __array__(self, dtype=None, copy=None):
        self._no_data("conversion to a NumPy array (np.asarray / np.array)")

    def item(self, *args):
        self._no_data(".item()")

    def tolist(self):
        self._no_data(".tolist()")

    def __setitem__(self, key, value):
        raise _error(TraceError, "in-place assignment to a traced Tensor is not supported; "
                                 "build the result with pi.where or pi.concatenate")

    # -- arithmetic
    def __add__(self, o): return binary(Op.ADD, self, o)
    def __radd__(self, o): return binary(Op.ADD, o, self)
    def __sub__(self, o): return binary(Op.SUB, self, o)
    def __rsub__(self, o): return binary(Op.SUB, o, self)
    def __mul__(self, o): return binary(Op.MUL, self, o)
    def __rmul__(self, o): return binary(Op.MUL, o, self)
    def __truediv__(self, o): return binary(Op.DIV, self, o)
    def __rtruediv__(self, o): return binary(Op.DIV, o, self)
    def __pow__(self, o): return binary(Op.POW, self, o)
    def __rpow__(self, o): return binary(Op.POW, o, self)
    def __matmul__(self, o): return binary(Op.MATMUL, self, o)
    def __rmatmul__(self, o): return binary(Op.MATMUL, o, self)
    def __neg__(self): return unary(Op.NEG, self)
    def __pos__(self): return self
    def __abs__(self): return unary(Op.ABS, self)

    # -- comparisons (bool results)
    def __lt__(self, o): return binary(Op.LESS, self, o)
    def __le__(self, o): return binary(Op.LESS_EQUAL, self, o)
    def __gt__(self, o): return binary(Op.GREATER, self, o)
    def __ge__(self, o): return binary(Op.GREATER_EQUAL, self, o)
    def __eq__(self, o): return binary(Op.EQUAL, self, o)  # type: ignore[override]
    def __ne__(self, o): return binary(Op.NOT_EQUAL, self, o)  # type: ignore[override]

    # -- views and methods
    def __getitem__(self, index): return getitem(self, index)

    @property
    def T(self): return transpose(self)

    def reshape(self, *shape, order="C"):
        if order != "C":
            raise _error(UnsupportedError, f"reshape: order={order!r} is not supported")
        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return transpose(self, axes if axes != () else None)

    def sum(self, axis=None, keepdims=False): return reduce(Op.SUM, self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return reduce(Op.MEAN, self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return reduce(Op.MAX, self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return reduce(Op.MIN, self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return reduce(Op.ARGMAX, self, axis, keepdims)
    def astype(self, dtype): return cast(self, dtype)

    def __getattr__(self, name):
        # Only reached for names Tensor lacks: say so for ndarray methods (x.cumsum()).
        if not name.startswith("_") and hasattr(np.ndarray, name):
            raise unsupported_numpy(f"numpy.ndarray.{name}")
        raise AttributeError(f"'Tensor' object has no attribute {name!r}")

    # -- NumPy functions applied to a Tensor
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from .. import api  # the routing table lives beside the functions it routes to
        return api.route_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from .. import api
        return api.route_function(func, args, kwargs)


def unsupported_numpy(name: str, why: str = "") -> BaseException:
    loc = user_location()
    msg = (f"{name} is not supported inside pyinfer.jit (called {format_location(loc)})"
           f"{': ' + why if why else ''}; use the pyinfer namespace (pi.exp, pi.sum, ...) "
           f"or compute it outside the jit function")
    exc = UnsupportedError(msg)
    exc._pyinfer_located = True
    return exc


_local = threading.local()


def current() -> Optional[TraceContext]:
    """The innermost trace being built on this thread (None outside jit)."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


class tracing:
    """``with tracing(graph) as ctx:`` — the trace context for one jit trace."""

    def __init__(self, graph: Graph):
        self.ctx = TraceContext(graph)

    def __enter__(self) -> TraceContext:
        if not hasattr(_local, "stack"):
            _local.stack = []
        _local.stack.append(self.ctx)
        return self.ctx

    def __exit__(self, *exc):
        _local.stack.pop()
        self.ctx.closed = True
        return False


def input_tensor(ctx: TraceContext, value: Value) -> Tensor:
    return Tensor(value, ctx)


__all__ = ["Tensor", "TraceContext", "TraceError", "tracing", "current", "user_location",
           "is_tensor_in"]
