"""Shape and data-movement ONNX operators: Shape, Gather, Reshape, Flatten,
Squeeze, Unsqueeze, Concat, Split, Slice, Transpose, Expand, Range,
ConstantOfShape.

Each follows its shape tensors symbolically (``_common``): ``Shape`` of a
``(batch, seq, 768)`` value is the sym ``[batch, seq, 768]``, ``Gather`` of its
element 2 is the constant 768, and a ``Reshape`` to
``Concat(Unsqueeze(Gather(Shape(x), 0)), ..., 12, 64)`` becomes a plain
``RESHAPE`` to ``(batch, seq, 12, 64)``.  Whatever cannot be followed stays a
dynamic op (DYNAMIC_RESHAPE, DYNAMIC_SLICE, EXPAND with a shape input, ...) that
``specialize`` resolves per input shape.
"""
from __future__ import annotations

import numpy as np

from ...graph.families.onnx_ops import reshape_target, slice_index, sliced_dim
from ...graph.ir import Op
from ..convert import converter
from ._common import (bindable, hint, ints, norm_axes, require_const, reshape, result,
                      shape_operand, sym_of_shape)


@converter("Shape")
def _shape(ctx, node):
    (x,) = ctx.inputs(node)
    nd = x.ndim
    start, end = ctx.attr(node, "start", 0), ctx.attr(node, "end", None)
    s0 = min(max(start + nd if start < 0 else start, 0), nd)
    e0 = nd if end is None else min(max(end + nd if end < 0 else end, 0), nd)
    sym = sym_of_shape(x.shape[s0:max(e0, s0)])
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    return [result(ctx, sym, lambda: ctx.graph.add(Op.SHAPE, [x], attrs, name=node.name),
                   name=node.output[0])]


@converter("Size")
def _size(ctx, node):
    (x,) = ctx.inputs(node)
    if x.size is None:
        raise ctx.unsupported(node, f"Size of a value with symbolic dims {x.shape}")
    return [ctx.const(np.array(x.size, np.int64), name=node.output[0])]


@converter("Gather")
def _gather(ctx, node):
    data, idx = ctx.inputs(node)
    axis = ctx.attr(node, "axis", 0)
    sd, k = ctx.sym(data), ctx.constant(idx)
    if data.is_constant and k is not None:
        return [ctx.const(np.take(data.data, k.astype(np.int64), axis=axis),
                          name=node.output[0])]
    sym = None
    if sd is not None and k is not None and data.ndim == 1:
        n = sd.shape[0]
        if k.size == 0 or (k.min() >= -n and k.max() < n):
            sym = np.take(sd, k.astype(np.int64), axis=0)
            if not isinstance(sym, np.ndarray):  # a scalar index takes one element
                sym, one = np.empty((), dtype=object), sym
                sym[()] = one
    return [result(ctx, sym, lambda: ctx.graph.add(Op.GATHER, [data, idx], {"axis": axis},
                                                   name=node.name),
                   dtype=data.dtype, name=node.output[0])]


@converter("Reshape")
def _reshape(ctx, node):
    x, shape = ctx.inputs(node)
    allowzero = ctx.attr(node, "allowzero", 0)
    s = ctx.sym(shape)
    if s is not None and s.ndim == 1 and all(e is not None for e in s.tolist()):
        entries = [e if isinstance(e, str) else int(e) for e in s.tolist()]
        if x.is_constant and all(isinstance(e, int) for e in entries):
            return [ctx.const(np.reshape(x.data, reshape_target(x.shape, entries, allowzero)),
                              name=node.output[0])]
        if not any(isinstance(e, int) and e < -1 for e in entries):
            try:
                target = reshape_target(x.shape, entries, allowzero)
            except Exception as e:
                raise ctx.unsupported(node, str(e)) from None
            out = reshape(ctx, node, x, target)
            sx = ctx.sym(x)
            if sx is not None and all(isinstance(d, int) for d in out.shape):
                ctx.symbolic[out] = sx.reshape(out.shape)
            return [out]
    shape_operand(ctx, node, shape, "shape")
    return [ctx.graph.add(Op.DYNAMIC_RESHAPE, [x, shape],
                          {"allowzero": allowzero, "shape_hint": hint(ctx, s)}, name=node.name)]


def _sym_reshaped(ctx, x, out):
    sx = ctx.sym(x)
    if sx is not None and not x.is_constant and all(isinstance(d, int) for d in out.shape):
        ctx.symbolic[out] = sx.reshape(out.shape)
    return out


@converter("Flatten")
def _flatten(ctx, node):
    (x,) = ctx.inputs(node)
    axis = ctx.attr(node, "axis", 1)
    nd = x.ndim
    if not -nd <= axis <= nd:
        raise ctx.unsupported(node, f"axis {axis} for rank {nd}")
    axis = axis + nd if axis < 0 else axis
    lead, trail = x.shape[:axis], x.shape[axis:]

    def prod(dims):
        if len(dims) == 1:
            return dims[0]
        if all(isinstance(d, int) for d in dims):
            return int(np.prod(dims, dtype=np.int64))
        return None
    a, b = prod(lead) if lead else 1, prod(trail) if trail else 1
    if x.is_constant:
        return [ctx.const(x.data.reshape(a, b), name=node.output[0])]
    if a is None and b is None:
        raise ctx.unsupported(node, f"flattening {x.shape} at axis {axis}: both parts have "
                                    f"symbolic dims")
    return [reshape(ctx, node, x, (-1 if a is None else a, -1 if b is None else b))]


def _axes_input(ctx, node, attr_until=12):
    if ctx.opset <= attr_until:
        axes = ctx.attr(node, "axes", None)
        return None if axes is None else tuple(axes)
    v = ctx.input(node, 1)
    return None if v is None else ints(require_const(ctx, node, v, "axes"))


@converter("Squeeze")
def _squeeze(ctx, node):
    x = ctx.input(node, 0)
    axes = _axes_input(ctx, node)
    if axes is None:
        if any(isinstance(d, str) for d in x.shape):
            raise ctx.unsupported(node, "Squeeze without axes on symbolic dims")
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    axes = norm_axes(ctx, node, axes, x.ndim)
    for a in axes:
        if isinstance(x.shape[a], int) and x.shape[a] != 1:
            raise ctx.unsupported(node, f"squeezing axis {a} of size {x.shape[a]}")
    target = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    if x.is_constant:
        return [ctx.const(x.data.reshape(target), name=node.output[0])]
    return [_sym_reshaped(ctx, x, reshape(ctx, node, x, target))]


@converter("Unsqueeze")
def _unsqueeze(ctx, node):
    x = ctx.input(node, 0)
    axes = _axes_input(ctx, node)
    if axes is None:
        raise ctx.unsupported(node, "Unsqueeze without axes")
    nd = x.ndim + len(axes)
    axes = sorted(norm_axes(ctx, node, axes, nd))
    rest = iter(x.shape)
    target = tuple(1 if i in axes else next(rest) for i in range(nd))
    if x.is_constant:
        return [ctx.const(x.data.reshape(target), name=node.output[0])]
    return [_sym_reshaped(ctx, x, reshape(ctx, node, x, target))]


@converter("Concat")
def _concat(ctx, node):
    xs = [v for v in ctx.inputs(node) if v is not None]
    axis = ctx.attr(node, "axis")
    if all(v.is_constant for v in xs):
        return [ctx.const(np.concatenate([v.data for v in xs], axis=axis), name=node.output[0])]
    syms = [ctx.sym(v) for v in xs]
    sym = np.concatenate(syms) if all(s is not None and s.ndim == 1 for s in syms) else None
    xs = [v for v in xs if v.ndim == 0 or v.shape[axis] != 0] or xs[:1]  # ONNX allows empties
    if len(xs) == 1 and sym is None:
        return [xs[0]]
    return [result(ctx, sym, lambda: ctx.graph.add(Op.CONCAT, xs, {"axis": axis},
                                                   name=node.name),
                   dtype=xs[0].dtype, name=node.output[0])]


@converter("Split")
def _split(ctx, node):
    x = ctx.input(node, 0)
    axis = ctx.attr(node, "axis", 0)
    nd = x.ndim
    if not -nd <= axis < nd:
        raise ctx.unsupported(node, f"axis {axis} for rank {nd}")
    axis %= nd
    n_out = len(node.output)
    if ctx.opset < 13:
        splits = ctx.attr(node, "split", None)
    else:
        sv = ctx.input(node, 1)
        splits = None if sv is None else ints(require_const(ctx, node, sv, "split"))
    dim = x.shape[axis]
    if splits is None:
        if not isinstance(dim, int):
            raise ctx.unsupported(node, f"equal split of symbolic dim '{dim}'")
        parts = ctx.attr(node, "num_outputs", n_out)
        size = -(-dim // parts)  # ONNX 18: the last chunk may be smaller
        splits = tuple(min(size, dim - i * size) for i in range(parts))
    splits = tuple(int(s) for s in splits)
    if x.is_constant:
        pieces = np.split(x.data, np.cumsum(splits)[:-1], axis=axis)
        return [ctx.const(p, name=o) for p, o in zip(pieces, node.output)]
    outs = ctx.graph.add(Op.SPLIT, [x], {"axis": axis, "splits": splits}, name=node.name,
                         n_outputs=len(splits))
    return list(outs) if isinstance(outs, tuple) else [outs]


@converter("Slice")
def _slice(ctx, node):
    x = ctx.input(node, 0)
    rest = [ctx.input(node, i) for i in range(1, 5)]
    consts = [ctx.constant(v) for v in rest]
    syms = [ctx.sym(v) for v in rest]
    sx = ctx.sym(x)
    if all(v is None or c is not None for v, c in zip(rest, consts)):
        args = [None if c is None else c.reshape(-1).tolist() for c in consts]
        try:
            index = slice_index(x.shape, *args)
        except Exception as e:
            raise ctx.unsupported(node, str(e)) from None
        if x.is_constant:
            return [ctx.const(np.array(x.data[index]), name=node.output[0])]
        sym = np.array(sx[index]) if sx is not None and sx.ndim == 1 else None
        shape_hint = tuple(sliced_dim(d, s) for d, s in zip(x.shape, index))
        if None not in shape_hint:
            return [result(ctx, sym, lambda: ctx.graph.add(
                Op.DYNAMIC_SLICE, [x] + rest, {"shape_hint": shape_hint}, name=node.name),
                dtype=x.dtype, name=node.output[0])]
    for v, what in zip(rest, ("starts", "ends", "axes", "steps")):
        shape_operand(ctx, node, v, what)
    # Starts/ends known only symbolically (x[:, :seq]): the common case has step 1 and
    # ends that are symbols (or past the end) on axes whose dim is that symbol.
    shape_hint = _slice_hint(ctx, x, syms)
    return [ctx.graph.add(Op.DYNAMIC_SLICE, [x] + rest, {"shape_hint": shape_hint},
                          name=node.name)]


def _slice_hint(ctx, x, syms):
    starts, ends, axes, steps = syms
    out = list(x.shape)
    if starts is None or ends is None:
        return None
    axes = list(range(len(starts))) if axes is None else axes.tolist()
    steps = [1] * len(starts) if steps is None else steps.tolist()
    for s, e, a, st in zip(starts.tolist(), ends.tolist(), axes, steps):
        if not isinstance(a, (int, np.integer)):
            return None
        a = int(a) % x.ndim
        if st == 1 and s == 0 and isinstance(e, str):
            d = x.shape[a]
            out[a] = e if bindable(ctx, e) or d == e else None
        else:
            out[a] = None
    if None in out:
        return None
    return tuple(out)


@converter("Transpose")
def _transpose(ctx, node):
    (x,) = ctx.inputs(node)
    perm = ctx.attr(node, "perm", None)
    if x.is_constant:
        return [ctx.const(np.transpose(x.data, perm), name=node.output[0])]
    return [ctx.graph.add(Op.TRANSPOSE, [x], {"perm": None if perm is None else tuple(perm)},
                          name=node.name)]


@converter("Expand")
def _expand(ctx, node):
    x, shape = ctx.inputs(node)
    s = ctx.sym(shape)
    attrs = {"shape_hint": None}
    if s is not None and s.ndim == 1:
        # a 1 in the shape keeps x's dim (bidirectional broadcast)
        nd = max(len(s), x.ndim)
        xs = (1,) * (nd - x.ndim) + tuple(x.shape)
        ss = [1] * (nd - len(s)) + s.tolist()
        h = []
        for d, e in zip(xs, ss):
            if e is None:
                h.append(d if d != 1 else None)
            elif isinstance(e, (int, np.integer)) and e == 1:
                h.append(d)
            else:
                h.append(e if d == 1 or d == e else None)
        attrs["shape_hint"] = None if None in h else tuple(h)
        if x.is_constant and all(isinstance(e, (int, np.integer)) for e in h):
            return [ctx.const(np.broadcast_to(x.data, tuple(int(e) for e in h)).copy(),
                              name=node.output[0])]
    if shape.is_constant:
        attrs.pop("shape_hint")
    shape_operand(ctx, node, shape, "shape")
    return [ctx.graph.add(Op.EXPAND, [x, shape], attrs, name=node.name)]


@converter("Range", opsets=(11, 28))  # 27 added stash_type, for float16/bfloat16 only
def _range(ctx, node):
    start, limit, delta = ctx.inputs(node)
    if all(v.is_constant for v in (start, limit, delta)):
        from ...graph.families.onnx_ops import _range_len
        a, b, c = (v.data.reshape(()) for v in (start, limit, delta))
        n = _range_len(a.item(), b.item(), c.item())
        return [ctx.const((a + np.arange(n, dtype=a.dtype) * c).astype(a.dtype),
                          name=node.output[0])]
    for v, what in ((start, "start"), (limit, "limit"), (delta, "delta")):
        shape_operand(ctx, node, v, what)
    sa, sb, sc = (ctx.sym(v) for v in (start, limit, delta))
    h = None
    if sa is not None and sb is not None and sc is not None and \
            sa.reshape(-1)[0] == 0 and sc.reshape(-1)[0] == 1 and \
            isinstance(sb.reshape(-1)[0], str):
        h = (sb.reshape(-1)[0],)
    return [ctx.graph.add(Op.RANGE, [start, limit, delta], {"shape_hint": h}, name=node.name)]


@converter("ConstantOfShape")
def _constant_of_shape(ctx, node):
    (shape,) = ctx.inputs(node)
    value = ctx.attr(node, "value", None)
    value = np.zeros((), np.float32) if value is None else np.asarray(value).reshape(())
    if value.dtype.kind not in "fiub":
        raise ctx.unsupported(node, f"value of element type {value.dtype}")
    s = ctx.sym(shape)
    if s is not None and all(isinstance(e, (int, np.integer)) for e in s.tolist()):
        dims = tuple(int(e) for e in s.tolist())
        if int(np.prod(dims, dtype=np.int64)) * value.dtype.itemsize <= (1 << 20):
            return [ctx.const(np.full(dims, value, dtype=value.dtype), name=node.output[0])]
    shape_operand(ctx, node, shape, "input")
    return [ctx.graph.add(Op.CONSTANT_OF_SHAPE, [shape],
                          {"value": value, "shape_hint": hint(ctx, s)}, name=node.name)]
