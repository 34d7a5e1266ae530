"""Shape and dtype inference, one rule per op.

Each rule takes a node and returns ``[(shape, dtype), ...]`` for its outputs,
or raises ``ShapeError``/``DTypeError`` naming the node, the input, what was
expected and what was received.  Dims may be symbolic (strings): broadcasting
treats a symbol as unknown-but-equal-to-itself.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from . import opdefs
from .ir import (BINARY_OPS, COMPARE_OPS, REDUCE_OPS, UNARY_OPS, Node, Op)

BOOL = np.dtype(np.bool_)
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _where(node: Node) -> str:
    return f"node '{node.name}' ({node.op.value})"


def _fail(node, msg) -> ShapeError:
    return ShapeError(f"{_where(node)}: {msg}")


def broadcast(node: Node, *shapes) -> tuple:
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise _fail(node, "inputs cannot be broadcast together: " +
                        ", ".join(f"'{v.name}' {v.shape}" for v in node.inputs
                                  if v is not None))
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _float_dtype(node: Node, values) -> np.dtype:
    dtypes = []
    for v in values:
        if v.dtype not in FLOATS:
            raise DTypeError(f"{_where(node)}: input '{v.name}' expected float32 or float64, "
                             f"received {v.dtype}")
        if v.is_constant and v.ndim == 0:
            continue  # a scalar constant is weak, as a Python scalar in NumPy
        dtypes.append(v.dtype)
    if not dtypes:
        dtypes = [v.dtype for v in values]
    return np.result_type(*dtypes)


def _axes(node: Node, ndim: int) -> tuple:
    axis = node.attrs.get("axis")
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if not -ndim <= a < ndim:
            raise _fail(node, f"attribute 'axis' expected values in [{-ndim}, {ndim}), received {axis}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise _fail(node, f"attribute 'axis' has repeated axes {axis}")
    return tuple(sorted(out))


def fail(node: Node, msg: str) -> ShapeError:
    """A ShapeError naming the node (for op families' shape rules)."""
    return _fail(node, msg)


def infer(node: Node) -> list:
    op, ins = node.op, node.inputs
    d = opdefs.get(op)
    if d is not None:
        return d.shape(node)
    if op in UNARY_OPS:
        (x,) = ins
        if op is Op.CAST:
            return [(x.shape, np.dtype(node.attrs["dtype"]))]
        if op is Op.NOT:
            return [(x.shape, BOOL)]
        return [(x.shape, _float_dtype(node, ins))]
    if op in BINARY_OPS:
        return [(broadcast(node, *(v.shape for v in ins)), _float_dtype(node, ins))]
    if op in COMPARE_OPS:
        _float_dtype(node, ins)
        return [(broadcast(node, *(v.shape for v in ins)), BOOL)]
    if op is Op.WHERE:
        cond, a, b = ins
        if cond.dtype != BOOL:
            raise DTypeError(f"{_where(node)}: input '{cond.name}' expected bool, "
                             f"received {cond.dtype}")
        return [(broadcast(node, cond.shape, a.shape, b.shape), _float_dtype(node, (a, b)))]
    if op in REDUCE_OPS or op is Op.ARGMAX:
        (x,) = ins
        if op is Op.ARGMAX and isinstance(node.attrs.get("axis"), (tuple, list)):
            raise _fail(node, "attribute 'axis' expected an int or None")
        axes = _axes(node, x.ndim)
        node.attrs["axis"] = axes if op is not Op.ARGMAX or node.attrs.get("axis") is not None \
            else None
        keep = bool(node.attrs.get("keepdims", False))
        node.attrs["keepdims"] = keep
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else \
            tuple(d for i, d in enumerate(x.shape) if i not in axes)
        if op is Op.ARGMAX:
            if node.attrs["axis"] is not None:
                node.attrs["axis"] = axes[0]
            return [(shape, np.dtype(np.int64))]
        return [(shape, _float_dtype(node, ins))]
    if op in (Op.SOFTMAX, Op.LOG_SOFTMAX):
        (x,) = ins
        if x.ndim == 0:
            raise _fail(node, f"input '{x.name}' expected at least 1 dimension")
        node.attrs["axis"] = _axes(node, x.ndim)[0] if "axis" in node.attrs else x.ndim - 1
        return [(x.shape, _float_dtype(node, ins))]
    if op in (Op.LAYER_NORM, Op.RMS_NORM):
        x = ins[0]
        if x.ndim == 0:
            raise _fail(node, f"input '{x.name}' expected at least 1 dimension")
        axis = node.attrs.setdefault("axis", -1)
        node.attrs["axis"] = _axes(node, x.ndim)[0]
        node.attrs.setdefault("eps", 1e-5)
        norm_shape = x.shape[node.attrs["axis"]:]
        for p in ins[1:]:
            if p is None:
                continue
            try:
                ok = broadcast(node, p.shape, norm_shape) == tuple(norm_shape)
            except ShapeError:
                ok = False
            if not ok:
                raise _fail(node, f"input '{p.name}' expected a shape broadcastable to "
                                  f"{tuple(norm_shape)}, received {p.shape}")
        return [(x.shape, _float_dtype(node, [v for v in ins if v is not None]))]
    if op is Op.MATMUL:
        return [_matmul(node)]
    if op is Op.GEMM:
        return [_gemm(node)]
    if op is Op.RESHAPE:
        return [(_reshape(node), ins[0].dtype)]
    if op is Op.TRANSPOSE:
        (x,) = ins
        perm = node.attrs.get("perm")
        perm = tuple(reversed(range(x.ndim))) if perm is None else tuple(p % max(x.ndim, 1) for p in perm)
        if sorted(perm) != list(range(x.ndim)):
            raise _fail(node, f"attribute 'perm' expected a permutation of {x.ndim} axes, "
                              f"received {node.attrs.get('perm')}")
        node.attrs["perm"] = perm
        return [(tuple(x.shape[p] for p in perm), x.dtype)]
    if op is Op.CONCAT:
        return [_concat(node)]
    if op is Op.SLICE:
        return [_slice(node)]
    if op is Op.ATTENTION:
        q, k, v = ins[:3]
        shape = q.shape[:-1] + (v.shape[-1],)
        perm = node.attrs.get("out_perm")
        if perm is not None:
            if sorted(perm) != list(range(len(shape))):
                raise _fail(node, f"attribute 'out_perm' expected a permutation of "
                                  f"{len(shape)} axes, received {perm}")
            shape = tuple(shape[p] for p in perm)
        return [(shape, _float_dtype(node, (q, k, v)))]
    if op in (Op.FUSED_ELEMENTWISE, Op.FUSED_REDUCTION):
        return [(node.attrs["shape"], node.attrs["dtype"])]
    raise _fail(node, "no shape rule for this op")


def _matmul(node):
    a, b = node.inputs
    if a.ndim == 0 or b.ndim == 0:
        raise _fail(node, "inputs must have at least 1 dimension")
    sa = (1,) + a.shape if a.ndim == 1 else a.shape
    sb = b.shape + (1,) if b.ndim == 1 else b.shape
    if sa[-1] != sb[-2] and isinstance(sa[-1], int) and isinstance(sb[-2], int):
        raise _fail(node, f"input '{b.name}' expected {sa[-1]} rows to match '{a.name}' "
                          f"{a.shape}, received {b.shape}")
    batch = broadcast(node, sa[:-2], sb[:-2])
    shape = batch + ((sa[-2],) if a.ndim > 1 else ()) + ((sb[-1],) if b.ndim > 1 else ())
    return shape, _float_dtype(node, (a, b))


def _gemm(node):
    a, b = node.inputs[:2]
    at, bt = node.attrs.get("trans_a", False), node.attrs.get("trans_b", False)
    if a.ndim != 2 or b.ndim != 2:
        raise _fail(node, "inputs a and b must be 2-d")
    m, k = a.shape[::-1] if at else a.shape
    k2, n = b.shape[::-1] if bt else b.shape
    if k != k2 and isinstance(k, int) and isinstance(k2, int):
        raise _fail(node, f"input '{b.name}' expected {k} rows, received {b.shape}")
    for extra in node.inputs[2:]:
        if extra is not None:
            broadcast(node, extra.shape, (m, n))
    return (m, n), _float_dtype(node, [v for v in node.inputs if v is not None])


def _reshape(node):
    (x,) = node.inputs
    shape = list(node.attrs["shape"])
    size = x.size
    if shape.count(-1) > 1:
        raise _fail(node, f"attribute 'shape' has more than one -1: {tuple(shape)}")
    if -1 in shape and size is not None:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise _fail(node, f"cannot reshape {x.shape} into {tuple(shape)}")
        shape[shape.index(-1)] = size // known
    if size is not None and all(isinstance(d, int) for d in shape) and \
            int(np.prod(shape, dtype=np.int64)) != size:
        raise _fail(node, f"cannot reshape {x.shape} into {tuple(node.attrs['shape'])}")
    node.attrs["shape"] = tuple(shape)
    return tuple(shape)


def _concat(node):
    ins = node.inputs
    nd = ins[0].ndim
    axis = node.attrs.get("axis", 0)
    if not -nd <= axis < nd:
        raise _fail(node, f"attribute 'axis' expected in [{-nd}, {nd}), received {axis}")
    axis %= nd
    node.attrs["axis"] = axis
    total = 0
    for v in ins:
        if v.ndim != nd or any(v.shape[i] != ins[0].shape[i] for i in range(nd) if i != axis):
            raise _fail(node, f"input '{v.name}' expected shape {ins[0].shape} except on "
                              f"axis {axis}, received {v.shape}")
        total = total + v.shape[axis] if isinstance(total, int) and isinstance(v.shape[axis], int) \
            else f"{total}+{v.shape[axis]}"
    shape = list(ins[0].shape)
    shape[axis] = total
    return tuple(shape), np.result_type(*(v.dtype for v in ins))


def _slice(node):
    (x,) = node.inputs
    index = node.attrs["index"]  # a tuple of slices / ints / None / Ellipsis, NumPy basic indexing
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=tuple(
        d if isinstance(d, int) else 1 for d in x.shape), strides=(0,) * x.ndim)
    try:
        shape = probe[index].shape
    except (IndexError, TypeError) as e:
        raise _fail(node, f"index {index!r} is not valid for shape {x.shape}: {e}") from None
    return shape, x.dtype
