"""CNN ops: CONV (with its residual and activation epilogue), max/average and
global pooling, batch norm, pad, LRN and resize, in the attribute conventions
of INTERFACES.md (which are ONNX's, NCHW).

``LAYOUT`` (the planner's NCHWc reorder) has no exporter: export a graph
before the Interpreter's passes rewrite it.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..registry import exporter


def _pad_attrs(at):
    auto = at.get("auto_pad", "NOTSET") or "NOTSET"
    if auto != "NOTSET":
        return {"auto_pad": auto}
    return {"pads": [int(p) for p in at.get("pads", (0, 0, 0, 0))]}


@exporter(Op.CONV)
def _conv(ctx, node, ins, outs):
    x, w, bias, res = (list(node.inputs) + [None] * 4)[:4]
    at = node.attrs
    dt = node.outputs[0].dtype
    act = at.get("activation")
    last = res is None and act is None
    y = ctx.one("Conv", [ctx.value_as(x, dt), ctx.value_as(w, dt), ctx.value_as(bias, dt)],
                outs[0] if last else None,
                strides=[int(s) for s in at.get("strides", (1, 1))],
                dilations=[int(d) for d in at.get("dilations", (1, 1))],
                group=int(at.get("group", 1)),
                kernel_shape=[int(k) for k in w.shape[2:]], **_pad_attrs(at))
    if res is not None:
        y = ctx.one("Add", [y, ctx.value_as(res, dt)], outs[0] if act is None else None)
    if act is not None:
        ctx.activation(y, act, dt, outs[0], clip=(at.get("clip_min"), at.get("clip_max")))


@exporter(Op.MAX_POOL, Op.AVG_POOL)
def _pool(ctx, node, ins, outs):
    at = node.attrs
    attrs = dict(kernel_shape=[int(k) for k in at["kernel_shape"]],
                 strides=[int(s) for s in at.get("strides", (1, 1))],
                 ceil_mode=int(bool(at.get("ceil_mode", False))), **_pad_attrs(at))
    if node.op is Op.MAX_POOL:
        dil = [int(d) for d in at.get("dilations", (1, 1))]
        ctx.one("MaxPool", ins, outs[0], dilations=dil if dil != [1, 1] else None, **attrs)
    else:
        ctx.one("AveragePool", ins, outs[0],
                count_include_pad=int(bool(at.get("count_include_pad", False))), **attrs)


@exporter(Op.GLOBAL_AVG_POOL, Op.GLOBAL_MAX_POOL)
def _global_pool(ctx, node, ins, outs):
    ctx.one("GlobalAveragePool" if node.op is Op.GLOBAL_AVG_POOL else "GlobalMaxPool", ins,
            outs[0])


@exporter(Op.BATCH_NORM)
def _batch_norm(ctx, node, ins, outs):
    dt = node.outputs[0].dtype
    ctx.one("BatchNormalization", [ctx.value_as(v, dt) for v in node.inputs], outs[0],
            epsilon=float(node.attrs.get("eps", 1e-5)))


@exporter(Op.PAD)
def _pad(ctx, node, ins, outs):
    at = node.attrs
    dt = node.inputs[0].dtype
    mode = at.get("mode", "constant")
    value = ctx.scalar(at.get("value", 0.0), dt) if mode == "constant" else ""
    ctx.one("Pad", [ins[0], ctx.ints(at["pads"], "pads"), value], outs[0], mode=mode)


@exporter(Op.LRN)
def _lrn(ctx, node, ins, outs):
    at = node.attrs
    ctx.one("LRN", ins, outs[0], size=int(at["size"]), alpha=float(at.get("alpha", 1e-4)),
            beta=float(at.get("beta", 0.75)), bias=float(at.get("bias", 1.0)))


@exporter(Op.RESIZE)
def _resize(ctx, node, ins, outs):
    at = node.attrs
    scales = at.get("scales")
    if scales is not None:
        # The coordinate transform uses the scales: give them, as the model did.
        inputs = [ins[0], "", ctx.const(np.asarray(scales, np.float32), "scales")]
    else:
        inputs = [ins[0], "", "", ctx.shape_tensor(at["sizes"])]
    ctm = at.get("coordinate_transformation_mode", "half_pixel")
    ctx.one("Resize", inputs, outs[0], mode=at.get("mode", "nearest"),
            coordinate_transformation_mode=ctm,
            nearest_mode=at.get("nearest_mode", "round_prefer_floor"),
            exclude_outside=int(at.get("exclude_outside", 0)) or None,
            extrapolation_value=float(at.get("extrapolation_value", 0.0)) or None)
