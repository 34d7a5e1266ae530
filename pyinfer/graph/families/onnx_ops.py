"""ONNX data movement and shape computation: GATHER, SPLIT, EXPAND, SHAPE, RANGE,
CONSTANT_OF_SHAPE, DYNAMIC_RESHAPE, DYNAMIC_SLICE and HOST_ELEMENTWISE.

ONNX computes shapes with tensors (``Shape -> Gather -> Concat -> Reshape``).
While a graph has symbolic dims (batch, sequence) these tensors are not known,
so the ops taking them keep them as inputs; a shape rule then uses a constant
operand when there is one, else the ``shape_hint`` attribute the importer
worked out symbolically (dims as ints or the graph's symbol names), else fresh
unknown dims.  ``specialize`` (pyinfer.plan.plan) gives the inputs concrete
shapes, folds the shape computations into constants and calls ``static_form``
here, which turns each op whose operands became constant into the core op
(RESHAPE, SLICE views) the passes and planner know.

Integer and boolean arithmetic (``Add`` of two int64 shape tensors, ``Equal``
on ids) has no kernel: the core elementwise ops are float-only.  It becomes a
``HOST_ELEMENTWISE`` node (attr ``fn``, NumPy semantics with ONNX's integer
division), which folds when its inputs are constants and otherwise runs its
NumPy reference on the host.

Conventions (all attrs plain Python values):

| op | inputs | attrs |
|---|---|---|
| SHAPE | (x,) | ``start``, ``end`` (ONNX Shape-15, None = to the end) |
| GATHER | (data, indices) | ``axis``; negative indices count from the end |
| SPLIT | (x,) | ``axis``, ``splits`` (tuple of sizes), one output each |
| EXPAND | (x, shape) | ``shape_hint``; bidirectional broadcast (ONNX Expand) |
| RANGE | (start, limit, delta) scalars | ``shape_hint`` |
| CONSTANT_OF_SHAPE | (shape,) | ``value`` (0-d array giving value and dtype), ``shape_hint`` |
| DYNAMIC_RESHAPE | (x, shape) | ``allowzero``, ``shape_hint`` |
| DYNAMIC_SLICE | (x, starts, ends, axes or None, steps or None) | ``shape_hint`` |
| HOST_ELEMENTWISE | 1-3 arrays | ``fn`` (a name in ``HOST_FUNCTIONS``) |
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

from ...errors import ShapeError
from ..ir import Node, Op
from ..opdefs import define
from ..shapes import broadcast, fail

INT64 = np.dtype(np.int64)
_fresh = itertools.count()


def _unknown(node: Node, i: int) -> str:
    """A symbol for a dim nothing is known about (unique: it equals only itself)."""
    return f"?{node.name}.{i}.{next(_fresh)}"


def _const(v):
    return None if v is None or not v.is_constant else v.data


def _hint(node: Node, ndim=None):
    hint = node.attrs.get("shape_hint")
    if hint is None:
        if ndim is None:
            raise fail(node, "the output rank is unknown (the shape operand is not constant and "
                             "there is no shape hint)")
        return tuple(_unknown(node, i) for i in range(ndim))
    return tuple(hint)


# ---- ONNX shape arithmetic shared with the importer ------------------------------------

def reshape_target(in_shape, shape, allowzero: bool = False) -> tuple:
    """ONNX Reshape's target with 0 ("copy this dim") resolved; -1 left for the rule."""
    out = []
    for i, d in enumerate(shape):
        d = d if isinstance(d, str) else int(d)
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ShapeError(f"reshape: 0 at position {i} has no input dim to copy "
                                 f"(input shape {tuple(in_shape)})")
            d = in_shape[i]
        out.append(d)
    return tuple(out)


def slice_index(shape, starts, ends, axes=None, steps=None) -> tuple:
    """ONNX Slice as a NumPy basic index.  Where the dim is known, start and end are
    clamped exactly as ONNX says; on a symbolic dim Python's slice semantics, which
    agree except for a start before the beginning with a negative step."""
    nd = len(shape)
    starts, ends = list(starts), list(ends)
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError(f"slice: starts, ends, axes and steps expected the same length, "
                         f"received {len(starts)}, {len(ends)}, {len(axes)}, {len(steps)}")
    index = [slice(None)] * nd
    seen = set()
    for s, e, a, st in zip(starts, ends, axes, steps):
        if not -nd <= a < nd:
            raise ShapeError(f"slice: axis {a} out of range for rank {nd}")
        a %= nd
        if a in seen:
            raise ShapeError(f"slice: axis {a} repeated")
        seen.add(a)
        if st == 0:
            raise ShapeError("slice: step 0")
        s, e = int(s), int(e)
        dim = shape[a]
        if isinstance(dim, int):
            if s < 0:
                s += dim
            if e < 0:
                e += dim
            if st > 0:
                s, e = min(max(s, 0), dim), min(max(e, 0), dim)
                index[a] = slice(s, e, st)
            else:
                s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
                index[a] = slice(s, None if e < 0 else e, st)
        else:
            big = 1 << 62
            index[a] = slice(None if (st > 0 and s <= -big) or (st < 0 and s >= big) else s,
                             None if (st > 0 and e >= big) or (st < 0 and e <= -big) else e, st)
    return tuple(index)


def sliced_dim(dim, sl: slice):
    """The length of ``dim[sl]``; symbolic when it depends on an unknown dim."""
    if isinstance(dim, int):
        return len(range(dim)[sl])
    if sl == slice(None) or sl == slice(0, None, 1) or sl == slice(None, None, 1):
        return dim
    return None


# ---- SHAPE ------------------------------------------------------------------------------

def _shape_slice(node, nd):
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    start = min(max(start + nd if start < 0 else start, 0), nd)
    end = nd if end is None else min(max(end + nd if end < 0 else end, 0), nd)
    return start, max(end, start)


def _shape_shape(node):
    (x,) = node.inputs
    start, end = _shape_slice(node, x.ndim)
    return [((end - start,), INT64)]


def _shape_ref(node, args):
    start, end = _shape_slice(node, np.ndim(args[0]))
    return [np.array(np.shape(args[0])[start:end], dtype=np.int64)]


define(Op.SHAPE, shape=_shape_shape, reference=_shape_ref)


# ---- GATHER -----------------------------------------------------------------------------

def _gather_shape(node):
    data, idx = node.inputs
    if data.ndim == 0:
        raise fail(node, f"input '{data.name}' expected at least 1 dimension")
    axis = node.attrs.get("axis", 0)
    if not -data.ndim <= axis < data.ndim:
        raise fail(node, f"attribute 'axis' expected in [{-data.ndim}, {data.ndim}), "
                         f"received {axis}")
    axis %= data.ndim
    node.attrs["axis"] = axis
    if idx.dtype.kind not in "iu":
        raise fail(node, f"input '{idx.name}' expected integer indices, received {idx.dtype}")
    k = _const(idx)
    dim = data.shape[axis]
    if k is not None and isinstance(dim, int) and k.size and (k.min() < -dim or k.max() >= dim):
        raise fail(node, f"indices of '{idx.name}' expected in [{-dim}, {dim}), received "
                         f"[{k.min()}, {k.max()}]")
    return [(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)]


def _gather_ref(node, args):
    data, idx = args
    return [np.take(data, np.asarray(idx, np.int64), axis=node.attrs["axis"])]


def _host_take(data, idx, *, axis, out):
    # np.take with out= copies whole rows (the embedding lookup) without a temporary;
    # mode="raise" checks the range and accepts ONNX's negative indices.
    np.take(data, idx, axis=axis, out=out)


def _gather_lower(node, ctx):
    from ...plan.select import Step
    data, idx = node.inputs
    return Step(node, _host_take, [data, idx], {"axis": node.attrs["axis"]}, "numpy",
                "numpy.take")


define(Op.GATHER, shape=_gather_shape, reference=_gather_ref, lower=_gather_lower)


# ---- SPLIT ------------------------------------------------------------------------------

def _split_shape(node):
    (x,) = node.inputs
    axis = node.attrs.get("axis", 0)
    if not -x.ndim <= axis < x.ndim:
        raise fail(node, f"attribute 'axis' expected in [{-x.ndim}, {x.ndim}), received {axis}")
    axis %= x.ndim
    node.attrs["axis"] = axis
    splits = tuple(int(s) for s in node.attrs["splits"])
    node.attrs["splits"] = splits
    dim = x.shape[axis]
    if isinstance(dim, int) and sum(splits) != dim:
        raise fail(node, f"attribute 'splits' {splits} expected to sum to dim {axis} of "
                         f"'{x.name}' ({dim})")
    if any(s < 0 for s in splits):
        raise fail(node, f"attribute 'splits' expected sizes >= 0, received {splits}")
    return [(x.shape[:axis] + (s,) + x.shape[axis + 1:], x.dtype) for s in splits]


def _split_ref(node, args):
    axis, splits = node.attrs["axis"], node.attrs["splits"]
    return [a.copy() for a in np.split(args[0], np.cumsum(splits)[:-1], axis=axis)]


def _host_split(args, outs, *, axis, bounds):
    (x,) = args
    for o, (lo, hi) in zip(outs, bounds):
        np.copyto(o, x[(slice(None),) * axis + (slice(lo, hi),)])


def _split_lower(node, ctx):
    from ...plan.select import Step
    offs = np.concatenate([[0], np.cumsum(node.attrs["splits"])]).tolist()
    bounds = tuple(zip(offs[:-1], offs[1:]))
    # "list" steps are called fn(args, outs): the attributes are bound here.
    return Step(node, functools.partial(_host_split, axis=node.attrs["axis"], bounds=bounds),
                [node.inputs[0]], {}, "numpy", "numpy.split", out_mode="list")


define(Op.SPLIT, shape=_split_shape, reference=_split_ref, lower=_split_lower)


# ---- EXPAND -----------------------------------------------------------------------------

def _expand_shape(node):
    x, shape = node.inputs
    s = _const(shape)
    if s is not None:
        return [(broadcast(node, x.shape, tuple(int(d) for d in s.reshape(-1))), x.dtype)]
    if node.attrs.get("shape_hint") is not None:
        return [(broadcast(node, x.shape, tuple(node.attrs["shape_hint"])), x.dtype)]
    n = shape.shape[0] if shape.ndim == 1 and isinstance(shape.shape[0], int) else None
    if n is None:
        raise fail(node, f"input '{shape.name}' expected a 1-d shape tensor, received "
                         f"{shape.shape}")
    # Unknown target: a dim of x other than 1 stays (the only legal broadcast); the rest
    # is unknown until the shape tensor is.
    lead = max(n - x.ndim, 0)
    return [(tuple(_unknown(node, i) for i in range(lead)) +
             tuple(d if d != 1 else _unknown(node, lead + i) for i, d in enumerate(x.shape)),
             x.dtype)]


def _expand_ref(node, args):
    x, shape = args
    out = np.broadcast_shapes(np.shape(x), tuple(int(d) for d in np.reshape(shape, -1)))
    return [np.array(np.broadcast_to(x, out))]


def _host_broadcast(x, *, out):
    np.copyto(out, x)


def _expand_lower(node, ctx):
    from ...plan.select import Step
    return Step(node, _host_broadcast, [node.inputs[0]], {}, "numpy", "numpy.broadcast")


define(Op.EXPAND, shape=_expand_shape, reference=_expand_ref, lower=_expand_lower)


# ---- RANGE / CONSTANT_OF_SHAPE ---------------------------------------------------------------

def _range_len(start, limit, delta) -> int:
    if delta == 0:
        raise ShapeError("range: delta 0")
    return max(int(np.ceil((limit - start) / delta)), 0)


def _range_shape(node):
    start, limit, delta = node.inputs
    for v in node.inputs:
        if v.ndim != 0 and v.shape != (1,):
            raise fail(node, f"input '{v.name}' expected a scalar, received shape {v.shape}")
    vals = [_const(v) for v in node.inputs]
    if all(a is not None for a in vals):
        try:
            n = _range_len(*(a.reshape(()).item() for a in vals))
        except ShapeError as e:
            raise fail(node, str(e)) from None
        return [((n,), start.dtype)]
    return [(_hint(node, 1), start.dtype)]


def _range_ref(node, args):
    start, limit, delta = (np.asarray(a).reshape(()) for a in args)
    n = _range_len(start.item(), limit.item(), delta.item())
    # ONNX defines element i as start + i * delta (not NumPy's accumulated arange).
    return [(start + np.arange(n, dtype=start.dtype) * delta).astype(start.dtype)]


define(Op.RANGE, shape=_range_shape, reference=_range_ref)


def _cos_shape(node):
    (shape,) = node.inputs
    value = np.asarray(node.attrs.get("value", np.zeros((), np.float32)))
    node.attrs["value"] = value.reshape(())
    s = _const(shape)
    if s is not None:
        if s.size and s.min() < 0:
            raise fail(node, f"input '{shape.name}' expected dims >= 0, received {s.tolist()}")
        return [(tuple(int(d) for d in s.reshape(-1)), value.dtype)]
    n = shape.shape[0] if shape.ndim == 1 and isinstance(shape.shape[0], int) else None
    return [(_hint(node, n), value.dtype)]


def _cos_ref(node, args):
    value = node.attrs["value"]
    return [np.full(tuple(int(d) for d in np.reshape(args[0], -1)), value, dtype=value.dtype)]


define(Op.CONSTANT_OF_SHAPE, shape=_cos_shape, reference=_cos_ref)


# ---- DYNAMIC_RESHAPE / DYNAMIC_SLICE -----------------------------------------------------------

def _dyn_reshape_target(node, x, s):
    target = list(reshape_target(x.shape, s.reshape(-1).tolist(), node.attrs.get("allowzero", 0)))
    if target.count(-1) > 1:
        raise fail(node, f"shape {tuple(target)} has more than one -1")
    if -1 in target and x.size is not None:
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        if known == 0 or x.size % known:
            raise fail(node, f"cannot reshape {x.shape} into {tuple(target)}")
        target[target.index(-1)] = x.size // known
    if x.size is not None and all(isinstance(d, int) for d in target) and \
            int(np.prod(target, dtype=np.int64)) != x.size:
        raise fail(node, f"cannot reshape {x.shape} into {tuple(target)}")
    return tuple(target)


def _dyn_reshape_shape(node):
    x, shape = node.inputs
    s = _const(shape)
    if s is not None:
        try:
            return [(_dyn_reshape_target(node, x, s), x.dtype)]
        except ShapeError as e:
            raise fail(node, str(e)) from None
    n = shape.shape[0] if shape.ndim == 1 and isinstance(shape.shape[0], int) else None
    return [(_hint(node, n), x.dtype)]


def _dyn_reshape_ref(node, args):
    x, shape = args
    target = reshape_target(np.shape(x), np.reshape(shape, -1).tolist(),
                            node.attrs.get("allowzero", 0))
    return [np.reshape(x, target)]


define(Op.DYNAMIC_RESHAPE, shape=_dyn_reshape_shape, reference=_dyn_reshape_ref)


def _slice_args(args):
    starts, ends, axes, steps = (None if a is None else np.reshape(a, -1).tolist()
                                 for a in (list(args) + [None] * 4)[:4])
    return starts, ends, axes, steps


def _dyn_slice_shape(node):
    x = node.inputs[0]
    rest = node.inputs[1:]
    if all(v is None or v.is_constant for v in rest):
        try:
            index = slice_index(x.shape, *_slice_args([_const(v) for v in rest]))
        except ShapeError as e:
            raise fail(node, str(e)) from None
        shape = []
        for i, (d, sl) in enumerate(zip(x.shape, index)):
            n = sliced_dim(d, sl)
            shape.append(_unknown(node, i) if n is None else n)
        return [(tuple(shape), x.dtype)]
    return [(_hint(node, x.ndim), x.dtype)]


def _dyn_slice_ref(node, args):
    x = args[0]
    return [np.array(x[slice_index(np.shape(x), *_slice_args(args[1:]))])]


define(Op.DYNAMIC_SLICE, shape=_dyn_slice_shape, reference=_dyn_slice_ref)


# ---- HOST_ELEMENTWISE --------------------------------------------------------------------------

def _int_div(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        # ONNX (like C) truncates toward zero; NumPy's // floors.
        q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
        return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))
    return np.divide(a, b)


def _int_mod(a, b, fmod=0):
    return np.fmod(a, b) if fmod else np.mod(a, b)


HOST_FUNCTIONS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": _int_div,
    "pow": lambda a, b: np.power(a, b).astype(np.result_type(a)),
    "maximum": np.maximum, "minimum": np.minimum, "mod": _int_mod,
    "neg": np.negative, "abs": np.abs, "sign": np.sign,
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
    "logical_not": np.logical_not, "where": np.where,
}
_BOOL_RESULT = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
                "logical_and", "logical_or", "logical_xor", "logical_not"}


def _host_shape(node):
    fn = node.attrs["fn"]
    if fn not in HOST_FUNCTIONS:
        raise fail(node, f"attribute 'fn' expected one of {sorted(HOST_FUNCTIONS)}, received {fn!r}")
    ins = node.inputs
    shape = broadcast(node, *(v.shape for v in ins))
    if fn in _BOOL_RESULT:
        return [(shape, np.dtype(np.bool_))]
    data = ins[1:] if fn == "where" else ins[:1] if fn == "pow" else ins
    return [(shape, np.result_type(*(v.dtype for v in data)))]


def _host_ref(node, args):
    fn = node.attrs["fn"]
    kwargs = {"fmod": node.attrs.get("fmod", 0)} if fn == "mod" else {}
    with np.errstate(all="ignore"):
        r = np.asarray(HOST_FUNCTIONS[fn](*args, **kwargs))
    return [r.astype(node.outputs[0].dtype) if node.outputs else r]


define(Op.HOST_ELEMENTWISE, shape=_host_shape, reference=_host_ref)


# ---- specialisation: dynamic ops whose operands became constant ----------------------------------

def static_form(node: Node):
    """``(op, inputs, attrs)`` of the core op this node becomes now that its
    operands are constants and its input shapes concrete, or None (stay as it is)."""
    x = node.inputs[0] if node.inputs else None
    if x is None or any(not isinstance(d, int) for d in x.shape):
        return None
    if node.op is Op.DYNAMIC_RESHAPE and node.inputs[1].is_constant:
        return Op.RESHAPE, [x], {"shape": _dyn_reshape_target(node, x, node.inputs[1].data)}
    if node.op is Op.DYNAMIC_SLICE and all(v is None or v.is_constant for v in node.inputs[1:]):
        index = slice_index(x.shape, *_slice_args([_const(v) for v in node.inputs[1:]]))
        return Op.SLICE, [x], {"index": index}
    if node.op is Op.GATHER and node.inputs[1].is_constant and node.inputs[1].ndim == 0:
        axis = node.attrs["axis"]
        i = int(node.inputs[1].data)
        return Op.SLICE, [x], {"index": (slice(None),) * axis + (i % x.shape[axis],)}
    if node.op is Op.EXPAND and node.inputs[1].is_constant and \
            tuple(node.outputs[0].shape) == tuple(x.shape):
        return Op.RESHAPE, [x], {"shape": tuple(x.shape)}   # an expand that expands nothing
    return None
