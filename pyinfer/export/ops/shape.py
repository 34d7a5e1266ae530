"""Data movement and shape computation: RESHAPE, TRANSPOSE, CONCAT, SLICE and the
ONNX shape ops (GATHER, SPLIT, EXPAND, SHAPE, RANGE, CONSTANT_OF_SHAPE,
DYNAMIC_RESHAPE, DYNAMIC_SLICE).

A RESHAPE target holding symbolic dims gets its shape tensor from the inputs'
``Shape`` at run time (``ExportContext.shape_tensor``).  SLICE holds a NumPy
basic index; it becomes ``Slice`` (slices), then ``Squeeze`` (integer
indices), then ``Unsqueeze`` (``None``), with open ends as INT64_MAX/MIN as
ONNX says.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..build import INT64_MAX, INT64_MIN
from ..registry import exporter


@exporter(Op.RESHAPE)
def _reshape(ctx, node, ins, outs):
    target = tuple(node.attrs["shape"])
    x = node.inputs[0]
    if tuple(x.shape) == target:
        ctx.identity(ins[0], outs[0])
        return
    # A literal 0 is "copy the input dim" unless allowzero (opset 14): say which we mean.
    zero = any(d == 0 for d in target if isinstance(d, int))
    if zero and ctx.opset < 14:
        raise ctx.unsupported(node, "a reshape to a 0-size dim needs opset >= 14 (allowzero)")
    ctx.one("Reshape", [ins[0], ctx.shape_tensor(target)], outs[0],
            allowzero=1 if zero else None)


@exporter(Op.TRANSPOSE)
def _transpose(ctx, node, ins, outs):
    ctx.one("Transpose", ins, outs[0], perm=[int(p) for p in node.attrs["perm"]])


@exporter(Op.CONCAT)
def _concat(ctx, node, ins, outs):
    dt = node.outputs[0].dtype
    ctx.one("Concat", [ctx.value_as(v, dt) for v in node.inputs], outs[0],
            axis=int(node.attrs["axis"]))


def _expand_ellipsis(index, ndim):
    index = tuple(index) if isinstance(index, tuple) else (index,)
    used = sum(1 for e in index if e is not None and e is not Ellipsis)
    out = []
    for e in index:
        if e is Ellipsis:
            out.extend([slice(None)] * (ndim - used))
        else:
            out.append(e)
    n_axes = sum(1 for e in out if e is not None)
    return out + [slice(None)] * (ndim - n_axes)


@exporter(Op.SLICE)
def _slice(ctx, node, ins, outs):
    x = node.inputs[0]
    index = _expand_ellipsis(node.attrs["index"], x.ndim)
    starts, ends, axes, steps = [], [], [], []
    squeeze, unsqueeze = [], []
    axis = pos = 0
    for e in index:
        if e is None:
            unsqueeze.append(pos)
            pos += 1
            continue
        if isinstance(e, slice):
            if e != slice(None) and e != slice(None, None, 1):
                st = 1 if e.step is None else int(e.step)
                if st > 0:
                    s = 0 if e.start is None else int(e.start)
                    t = INT64_MAX if e.stop is None else int(e.stop)
                else:
                    s = INT64_MAX if e.start is None else int(e.start)
                    t = INT64_MIN if e.stop is None else int(e.stop)
                starts.append(s)
                ends.append(t)
                axes.append(axis)
                steps.append(st)
            pos += 1
        else:  # an integer index: a slice of one, then squeezed
            k = int(e)
            starts.append(k)
            ends.append(INT64_MAX if k == -1 else k + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    y = ins[0]
    last = not squeeze and not unsqueeze
    if starts:
        y = ctx.one("Slice", [y, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"),
                              ctx.ints(axes, "axes"), ctx.ints(steps, "steps")],
                    outs[0] if last else None)
    if squeeze:
        y = ctx.one("Squeeze", [y, ctx.ints(squeeze, "axes")], None if unsqueeze else outs[0])
    if unsqueeze:
        y = ctx.one("Unsqueeze", [y, ctx.ints(unsqueeze, "axes")], outs[0])
    ctx.identity(y, outs[0])


# ---- ONNX shape ops -----------------------------------------------------------------------

@exporter(Op.GATHER)
def _gather(ctx, node, ins, outs):
    ctx.one("Gather", ins, outs[0], axis=int(node.attrs["axis"]))


@exporter(Op.SPLIT)
def _split(ctx, node, ins, outs):
    ctx.node("Split", [ins[0], ctx.ints(node.attrs["splits"], "split")], outs,
             axis=int(node.attrs["axis"]))


def _as_int64(ctx, value):
    return ctx.value_as(value, np.int64)


@exporter(Op.EXPAND)
def _expand(ctx, node, ins, outs):
    ctx.one("Expand", [ins[0], _as_int64(ctx, node.inputs[1])], outs[0])


@exporter(Op.SHAPE)
def _shape(ctx, node, ins, outs):
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    if ctx.opset >= 15:
        ctx.one("Shape", ins, outs[0], start=int(start) if start else None,
                end=None if end is None else int(end))
        return
    if not start and end is None:
        ctx.one("Shape", ins, outs[0])
        return
    ctx.one("Slice", [ctx.one("Shape", ins), ctx.ints([start], "starts"),
                      ctx.ints([INT64_MAX if end is None else end], "ends")], outs[0])


@exporter(Op.RANGE)
def _range(ctx, node, ins, outs):
    dt = node.outputs[0].dtype
    args = []
    for v in node.inputs:
        a = ctx.value_as(v, dt)
        if v.ndim:   # Range takes scalars; pyinfer also accepts shape (1,)
            a = ctx.one("Reshape", [a, ctx.ints([], "scalar")])
        args.append(a)
    ctx.one("Range", args, outs[0])


@exporter(Op.CONSTANT_OF_SHAPE)
def _constant_of_shape(ctx, node, ins, outs):
    from onnx import numpy_helper
    value = np.asarray(node.attrs["value"]).reshape(1)
    ctx.one("ConstantOfShape", [_as_int64(ctx, node.inputs[0])], outs[0],
            value=numpy_helper.from_array(value, "value"))


@exporter(Op.DYNAMIC_RESHAPE)
def _dynamic_reshape(ctx, node, ins, outs):
    allowzero = int(node.attrs.get("allowzero", 0))
    if allowzero and ctx.opset < 14:
        raise ctx.unsupported(node, "allowzero needs opset >= 14")
    ctx.one("Reshape", [ins[0], _as_int64(ctx, node.inputs[1])], outs[0],
            allowzero=allowzero or None)


@exporter(Op.DYNAMIC_SLICE)
def _dynamic_slice(ctx, node, ins, outs):
    rest = (list(node.inputs[1:]) + [None] * 4)[:4]
    ctx.one("Slice", [ins[0]] + [_as_int64(ctx, v) for v in rest], outs[0])
