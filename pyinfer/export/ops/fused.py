"""Nodes made by fusion: FUSED_ELEMENTWISE and FUSED_REDUCTION are written back
as the ONNX nodes of their program (docs/fusion-ir.md), one per instruction,
so an optimized graph exports too (ATTENTION and GEMM epilogues are in nn.py).
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..registry import exporter
from .elementwise import emit

_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin"}


def _broadcast(*shapes):
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = {s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0}
        dims.discard(1)
        out.append(dims.pop() if len(dims) == 1 else (1 if not dims else None))
    return tuple(out)


def _program(ctx, node, ins):
    """ONNX names of the program's registers, with their dtypes and shapes."""
    at = node.attrs
    dtype = np.dtype(at["dtype"])
    regs, dts, shapes = [], [], []
    for ins_ in at["program"]:
        tag = ins_[0]
        if tag == "in":
            v = node.inputs[ins_[1]]
            dt = dtype if v.dtype.kind == "f" else v.dtype
            regs.append(ctx.value_as(v, dt))
            dts.append(dt)
            shapes.append(tuple(v.shape))
        elif tag == "const":
            val = ins_[1]
            dt = np.dtype(np.bool_) if isinstance(val, (bool, np.bool_)) else dtype
            regs.append(ctx.scalar(val, dt))
            dts.append(dt)
            shapes.append(())
        elif tag == "cast":
            dt = np.dtype(ins_[2])
            regs.append(ctx.cast(regs[ins_[1]], dts[ins_[1]], dt))
            dts.append(dt)
            shapes.append(shapes[ins_[1]])
        else:
            args = list(ins_[1:])
            if tag == "where":
                names = [regs[args[0]]] + [ctx.cast(regs[i], dts[i], dtype) for i in args[1:]]
            elif tag == "logical_not":
                names = [regs[args[0]]]
            else:
                names = [ctx.cast(regs[i], dts[i], dtype) for i in args]
            try:
                regs.append(emit(ctx, tag, names, dtype))
            except KeyError:
                raise ctx.unsupported(node, f"program instruction {tag!r} has no ONNX form") \
                    from None
            bool_out = tag in ("equal", "not_equal", "less", "less_equal", "greater",
                               "greater_equal", "logical_not")
            dts.append(np.dtype(np.bool_) if bool_out else dtype)
            shapes.append(_broadcast(*(shapes[i] for i in args)))
    return regs, dts, shapes


def _to_shape(ctx, name, shape, target, out=None):
    if tuple(shape) == tuple(target):
        return ctx.identity(name, out)
    return ctx.one("Expand", [name, ctx.shape_tensor(target)], out)


@exporter(Op.FUSED_ELEMENTWISE)
def _fused_elementwise(ctx, node, ins, outs):
    at = node.attrs
    regs, dts, shapes = _program(ctx, node, ins)
    dtypes = at.get("dtypes") or (at["dtype"],) * len(at["results"])
    for r, dt, out in zip(at["results"], dtypes, outs):
        y = ctx.cast(regs[r], dts[r], dt)
        _to_shape(ctx, y, shapes[r], at["shape"], out)


@exporter(Op.FUSED_REDUCTION)
def _fused_reduction(ctx, node, ins, outs):
    at = node.attrs
    regs, dts, shapes = _program(ctx, node, ins)
    (r,) = at["results"]
    val = regs[r]
    if "input_shape" in at:
        val = _to_shape(ctx, val, shapes[r], at["input_shape"])
    red = ctx.reduce(_REDUCE[at["reduce"]], val, at["axis"], bool(at["keepdims"]))
    ctx.cast(red, dts[r], at["dtype"], outs[0])
