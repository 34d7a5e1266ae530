"""Reductions, argmax, MatMul, GEMM (bias/residual/activation epilogue),
softmax, log-softmax, layer norm, RMS norm and attention.

GEMM nodes (the epilogue pass's) become ONNX ``Gemm`` when 2-d (ORT's fused
path) plus the residual Add and the activation; ``LAYER_NORM`` is
``LayerNormalization`` from opset 17 and the reference's formula before;
``RMS_NORM`` and ``ATTENTION`` are always written as their formulas
(``x / sqrt(mean(x^2) + eps) * w``; ``softmax(q kᵀ * scale + mask) v``).
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..registry import exporter

_REDUCE = {Op.SUM: "ReduceSum", Op.MEAN: "ReduceMean", Op.MAX: "ReduceMax", Op.MIN: "ReduceMin"}


@exporter(*_REDUCE)
def _reduce(ctx, node, ins, outs):
    x = node.inputs[0]
    if x.ndim == 0:
        ctx.identity(ins[0], outs[0])
        return
    axes = node.attrs.get("axis")
    ctx.reduce(_REDUCE[node.op], ctx.value_as(x, node.outputs[0].dtype), axes,
               bool(node.attrs.get("keepdims", False)), outs[0])


@exporter(Op.ARGMAX)
def _argmax(ctx, node, ins, outs):
    x = node.inputs[0]
    axis, keep = node.attrs.get("axis"), bool(node.attrs.get("keepdims", False))
    if axis is not None:
        ctx.one("ArgMax", [ins[0]], outs[0], axis=int(axis), keepdims=int(keep))
        return
    # NumPy's argmax over the flattened array (first occurrence, as ONNX's default).
    flat = ctx.one("Reshape", [ins[0], ctx.ints([-1], "shape")])
    if keep:
        idx = ctx.one("ArgMax", [flat], axis=0, keepdims=1)
        ctx.one("Reshape", [idx, ctx.ints([1] * x.ndim, "shape")], outs[0])
    else:
        ctx.one("ArgMax", [flat], outs[0], axis=0, keepdims=0)


@exporter(Op.MATMUL)
def _matmul(ctx, node, ins, outs):
    dt = node.outputs[0].dtype
    ctx.one("MatMul", [ctx.value_as(v, dt) for v in node.inputs], outs[0])


def linear(ctx, node, x, w, bias, residual, activation, out, trans_a=False, trans_b=False,
           alpha=1.0, clip=None):
    """``act(alpha * op(x) @ op(w) + bias + residual)`` (pyinfer Values, ``out`` a name)."""
    dt = node.outputs[0].dtype
    xs, ws = ctx.value_as(x, dt), ctx.value_as(w, dt)
    last = activation is None and residual is None
    if x.ndim == 2 and w.ndim == 2 and (bias is None or bias.ndim <= 2):
        y = ctx.one("Gemm", [xs, ws, ctx.value_as(bias, dt)], out if last else None,
                    alpha=float(alpha) if alpha != 1.0 else None,
                    transA=1 if trans_a else None, transB=1 if trans_b else None)
    else:
        if trans_a:
            xs = ctx.one("Transpose", [xs], perm=list(range(x.ndim - 2)) + [x.ndim - 1, x.ndim - 2])
        if trans_b:
            ws = ctx.one("Transpose", [ws], perm=list(range(w.ndim - 2)) + [w.ndim - 1, w.ndim - 2])
        tail = alpha == 1.0 and bias is None and last
        y = ctx.one("MatMul", [xs, ws], out if tail else None)
        if alpha != 1.0:
            y = ctx.one("Mul", [y, ctx.scalar(alpha, dt)],
                        out if bias is None and last else None)
        if bias is not None:
            y = ctx.one("Add", [y, ctx.value_as(bias, dt)], out if last else None)
    if residual is not None:
        y = ctx.one("Add", [y, ctx.value_as(residual, dt)], out if activation is None else None)
    if activation is not None:
        y = ctx.activation(y, activation, dt, out, clip=clip)
    return y


@exporter(Op.GEMM)
def _gemm(ctx, node, ins, outs):
    a, b, bias, res = (list(node.inputs) + [None, None])[:4]
    at = node.attrs
    linear(ctx, node, a, b, bias, res, at.get("activation"), outs[0],
           trans_a=bool(at.get("trans_a")), trans_b=bool(at.get("trans_b")),
           alpha=float(at.get("alpha", 1.0)))


@exporter(Op.SOFTMAX, Op.LOG_SOFTMAX)
def _softmax(ctx, node, ins, outs):
    op = "Softmax" if node.op is Op.SOFTMAX else "LogSoftmax"
    ctx.one(op, [ctx.value_as(node.inputs[0], node.outputs[0].dtype)], outs[0],
            axis=int(node.attrs["axis"]))


def _param(ctx, node, p, norm_shape, dt, fill):
    """A norm's weight/bias as ONNX wants it: the normalized shape (constants are
    broadcast now; an absent weight is ones)."""
    if p is None:
        if not all(isinstance(d, int) for d in norm_shape):
            raise ctx.unsupported(node, f"no weight and a symbolic normalized shape {norm_shape}")
        return ctx.const(np.full(norm_shape, fill, dt), f"{node.name}.ones")
    if tuple(p.shape) == tuple(norm_shape) or not p.is_constant or \
            not all(isinstance(d, int) for d in norm_shape):
        return ctx.value_as(p, dt)
    return ctx.const(np.broadcast_to(p.data.astype(dt), norm_shape).copy(), f"{p.name}.full")


@exporter(Op.LAYER_NORM)
def _layer_norm(ctx, node, ins, outs):
    x, w, b = (list(node.inputs) + [None, None])[:3]
    dt = node.outputs[0].dtype
    axis, eps = int(node.attrs["axis"]), float(node.attrs["eps"])
    xs = ctx.value_as(x, dt)
    norm_shape = tuple(x.shape[axis:])
    if ctx.opset >= 17:
        ctx.one("LayerNormalization",
                [xs, _param(ctx, node, w, norm_shape, dt, 1.0),
                 "" if b is None else _param(ctx, node, b, norm_shape, dt, 0.0)],
                outs[0], axis=axis, epsilon=eps)
        return
    axes = list(range(axis, x.ndim))
    mean = ctx.reduce("ReduceMean", xs, axes, True)
    d = ctx.one("Sub", [xs, mean])
    var = ctx.reduce("ReduceMean", ctx.one("Mul", [d, d]), axes, True)
    last = w is None and b is None
    y = ctx.one("Div", [d, ctx.one("Sqrt", [ctx.one("Add", [var, ctx.scalar(eps, dt)])])],
                outs[0] if last else None)
    if w is not None:
        y = ctx.one("Mul", [y, ctx.value_as(w, dt)], outs[0] if b is None else None)
    if b is not None:
        ctx.one("Add", [y, ctx.value_as(b, dt)], outs[0])


@exporter(Op.RMS_NORM)
def _rms_norm(ctx, node, ins, outs):
    x, w = (list(node.inputs) + [None])[:2]
    dt = node.outputs[0].dtype
    axis, eps = int(node.attrs["axis"]), float(node.attrs["eps"])
    xs = ctx.value_as(x, dt)
    ms = ctx.reduce("ReduceMean", ctx.one("Mul", [xs, xs]), list(range(axis, x.ndim)), True)
    y = ctx.one("Div", [xs, ctx.one("Sqrt", [ctx.one("Add", [ms, ctx.scalar(eps, dt)])])],
                outs[0] if w is None else None)
    if w is not None:
        ctx.one("Mul", [y, ctx.value_as(w, dt)], outs[0])


@exporter(Op.ATTENTION)
def _attention(ctx, node, ins, outs):
    q, k, v, mask = (list(node.inputs) + [None])[:4]
    dt = node.outputs[0].dtype
    qs, ks, vs = (ctx.value_as(t, dt) for t in (q, k, v))
    nd = k.ndim
    kt = ctx.one("Transpose", [ks], perm=list(range(nd - 2)) + [nd - 1, nd - 2])
    d = q.shape[-1]
    scale = node.attrs.get("scale")
    if scale is None:
        if not isinstance(d, int):
            raise ctx.unsupported(node, f"no scale and a symbolic head dim {d!r}")
        scale = 1.0 / np.sqrt(d)
    s = ctx.one("Mul", [ctx.one("MatMul", [qs, kt]), ctx.scalar(float(scale), dt)])
    if mask is not None:
        s = ctx.one("Add", [s, ctx.value_as(mask, dt)])
    perm = node.attrs.get("out_perm")
    if perm is None:
        ctx.one("MatMul", [ctx.one("Softmax", [s], axis=-1), vs], outs[0])
    else:
        y = ctx.one("MatMul", [ctx.one("Softmax", [s], axis=-1), vs])
        ctx.one("Transpose", [y], outs[0], perm=list(perm))
