"""Neural-network ONNX operators: MatMul, Gemm, Softmax, LogSoftmax,
LayerNormalization, ReduceMean/Sum/Max/Min, and the CNN ops (Conv, MaxPool,
AveragePool, GlobalAveragePool, GlobalMaxPool, BatchNormalization, LRN, Pad,
Resize) in the attribute conventions of INTERFACES.md.

Gemm is written as ``MATMUL(transpose?) * alpha + beta * C`` so the epilogue
pass fuses it (with a following activation) exactly as it fuses a PyTorch
Linear; Conv is ``CONV(x, w, bias)`` with no activation (the CNN passes add it).
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..convert import converter
from ._common import const_like, ints, is_float, norm_axes, require_const, reshape


def _float_only(ctx, node, *values):
    for v in values:
        if v is not None and v.dtype not in (np.float32, np.float64):
            raise ctx.unsupported(node, f"input '{v.name}' of element type {v.dtype} "
                                        f"(float32 and float64 only)")


def _as(ctx, v, like):
    """A constant operand in ``like``'s dtype (ONNX allows none other, but be exact)."""
    if v is not None and v.is_constant and v.dtype != like.dtype:
        return const_like(ctx, v.data, like, name=v.name)
    return v


@converter("MatMul")
def _matmul(ctx, node):
    a, b = ctx.inputs(node)
    _float_only(ctx, node, a, b)
    return [ctx.graph.add(Op.MATMUL, [a, b], name=node.name)]


@converter("Gemm")
def _gemm(ctx, node):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    c = ctx.input(node, 2)
    _float_only(ctx, node, a, b, c)
    alpha, beta = ctx.attr(node, "alpha", 1.0), ctx.attr(node, "beta", 1.0)
    if ctx.attr(node, "transA", 0):
        a = ctx.graph.add(Op.TRANSPOSE, [a], {"perm": (1, 0)}, name=f"{node.name}_tA")
    if ctx.attr(node, "transB", 0):
        b = ctx.const(b.data.T, name=f"{b.name}_T") if b.is_constant else \
            ctx.graph.add(Op.TRANSPOSE, [b], {"perm": (1, 0)}, name=f"{node.name}_tB")
    y = ctx.graph.add(Op.MATMUL, [a, b], name=node.name)
    if alpha != 1.0:
        y = ctx.graph.add(Op.MUL, [y, ctx.const(np.asarray(alpha, y.dtype), name="alpha")],
                          name=f"{node.name}_alpha")
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = ctx.const((c.data * beta).astype(y.dtype), name=f"{c.name}_beta") \
                if c.is_constant else ctx.graph.add(
                    Op.MUL, [c, ctx.const(np.asarray(beta, y.dtype), name="beta")],
                    name=f"{node.name}_beta")
        y = ctx.graph.add(Op.ADD, [y, _as(ctx, c, y)], name=f"{node.name}_bias")
    return [y]


def _softmax(op):
    def convert(ctx, node):
        (x,) = ctx.inputs(node)
        _float_only(ctx, node, x)
        axis = ctx.attr(node, "axis", -1 if ctx.opset >= 13 else 1)
        nd = x.ndim
        if not -nd <= axis < max(nd, 1):
            raise ctx.unsupported(node, f"axis {axis} for rank {nd}")
        axis %= max(nd, 1)
        if ctx.opset >= 13 or axis == nd - 1:
            return [ctx.graph.add(op, [x], {"axis": axis}, name=node.name)]
        # Before opset 13: softmax over the flattened trailing dims [axis:].
        trail = x.shape[axis:]
        if not all(isinstance(d, int) for d in trail):
            raise ctx.unsupported(node, f"softmax over symbolic trailing dims {trail}")
        n = int(np.prod(trail, dtype=np.int64))
        flat = reshape(ctx, node, x, tuple(x.shape[:axis]) + (n,))
        y = ctx.graph.add(op, [flat], {"axis": axis}, name=node.name)
        return [reshape(ctx, node, y, x.shape)]
    return convert


converter("Softmax")(_softmax(Op.SOFTMAX))
converter("LogSoftmax")(_softmax(Op.LOG_SOFTMAX))


@converter("LayerNormalization", opsets=(17, 21))
def _layer_norm(ctx, node):
    x, w, b = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    _float_only(ctx, node, x, w, b)
    axis = ctx.attr(node, "axis", -1)
    eps = ctx.attr(node, "epsilon", 1e-5)
    if not -x.ndim <= axis < x.ndim:
        raise ctx.unsupported(node, f"axis {axis} for rank {x.ndim}")
    axis %= x.ndim
    ins = [x, _as(ctx, w, x)] + ([_as(ctx, b, x)] if b is not None else [])
    outs = [ctx.graph.add(Op.LAYER_NORM, ins, {"axis": axis, "eps": float(eps)},
                          name=node.name)]
    if len([o for o in node.output[1:] if o]):
        # Mean and InvStdDev (training's saved statistics), in the stash type.
        if ctx.attr(node, "stash_type", 1) != 1:
            raise ctx.unsupported(node, "stash_type other than 1 (float)")
        axes = tuple(range(axis, x.ndim))
        g = ctx.graph
        mean = g.add(Op.MEAN, [x], {"axis": axes, "keepdims": True}, name=f"{node.name}_mean")
        d = g.add(Op.SUB, [x, mean], name=f"{node.name}_centered")
        var = g.add(Op.MEAN, [g.add(Op.MUL, [d, d], name=f"{node.name}_sq")],
                    {"axis": axes, "keepdims": True}, name=f"{node.name}_var")
        inv = g.add(Op.RSQRT, [g.add(Op.ADD, [var, ctx.const(np.asarray(eps, x.dtype))],
                                     name=f"{node.name}_var_eps")], name=f"{node.name}_invstd")
        stats = [mean, inv]
        if x.dtype != np.float32:
            stats = [g.add(Op.CAST, [v], {"dtype": np.dtype(np.float32)}) for v in stats]
        outs += stats
    return outs


_REDUCE = {"ReduceMean": (Op.MEAN, 18), "ReduceSum": (Op.SUM, 13), "ReduceMax": (Op.MAX, 18),
           "ReduceMin": (Op.MIN, 18)}


def _reduce(op, axes_input_from):
    def convert(ctx, node):
        x = ctx.input(node, 0)
        _float_only(ctx, node, x)
        keep = bool(ctx.attr(node, "keepdims", 1))
        if ctx.opset < axes_input_from:
            axes = ctx.attr(node, "axes", None)
        else:
            av = ctx.input(node, 1)
            axes = None if av is None else ints(require_const(ctx, node, av, "axes"))
        if axes is not None and len(axes) == 0:
            axes = None
        if axes is None and ctx.attr(node, "noop_with_empty_axes", 0):
            return [x]
        axis = None if axes is None else norm_axes(ctx, node, axes, x.ndim)
        if x.ndim == 0:
            return [x]
        return [ctx.graph.add(op, [x], {"axis": axis, "keepdims": keep}, name=node.name)]
    return convert


for _name, (_op, _from) in _REDUCE.items():
    converter(_name)(_reduce(_op, _from))


# ---- CNN ----------------------------------------------------------------------------------

def _spatial(ctx, node, x, what="input"):
    if x.ndim != 4:
        raise ctx.unsupported(node, f"{what} of rank {x.ndim} (2-d spatial, NCHW, only)")


def _pads(ctx, node):
    pads = ctx.attr(node, "pads", (0, 0, 0, 0))
    if len(pads) != 4:
        raise ctx.unsupported(node, f"pads {pads} (2-d spatial only)")
    return tuple(int(p) for p in pads)  # ONNX (top, left, bottom, right) = INTERFACES order


def _auto_pad(ctx, node):
    ap = ctx.attr(node, "auto_pad", "NOTSET")
    if ap not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise ctx.unsupported(node, f"auto_pad {ap!r}")
    return ap


@converter("Conv")
def _conv(ctx, node):
    x, w, b = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    _float_only(ctx, node, x, w, b)
    _spatial(ctx, node, x)
    attrs = {"strides": tuple(ctx.attr(node, "strides", (1, 1))),
             "pads": _pads(ctx, node),
             "dilations": tuple(ctx.attr(node, "dilations", (1, 1))),
             "group": int(ctx.attr(node, "group", 1)),
             "auto_pad": _auto_pad(ctx, node),
             "activation": None}
    ks = ctx.attr(node, "kernel_shape", None)
    if ks is not None and w.ndim == 4 and isinstance(w.shape[2], int) and \
            tuple(ks) != tuple(w.shape[2:]):
        raise ctx.unsupported(node, f"kernel_shape {ks} differs from the weight's {w.shape[2:]}")
    return [ctx.graph.add(Op.CONV, [x, _as(ctx, w, x), _as(ctx, b, x)], attrs, name=node.name)]


def _pool(op):
    def convert(ctx, node):
        (x,) = ctx.inputs(node)
        _float_only(ctx, node, x)
        _spatial(ctx, node, x)
        if len([o for o in node.output[1:] if o]):
            raise ctx.unsupported(node, "the Indices output")
        if ctx.attr(node, "storage_order", 0):
            raise ctx.unsupported(node, "storage_order 1")
        ks = ctx.attr(node, "kernel_shape")
        if ks is None or len(ks) != 2:
            raise ctx.unsupported(node, f"kernel_shape {ks} (2-d only)")
        attrs = {"kernel_shape": tuple(ks), "strides": tuple(ctx.attr(node, "strides", (1, 1))),
                 "pads": _pads(ctx, node), "ceil_mode": bool(ctx.attr(node, "ceil_mode", 0)),
                 "auto_pad": _auto_pad(ctx, node)}
        dil = tuple(ctx.attr(node, "dilations", (1, 1)))
        if op is Op.MAX_POOL:
            attrs["dilations"] = dil
        else:
            if dil != (1, 1):
                raise ctx.unsupported(node, f"dilations {dil} in average pooling")
            attrs["count_include_pad"] = bool(ctx.attr(node, "count_include_pad", 0))
        return [ctx.graph.add(op, [x], attrs, name=node.name)]
    return convert


converter("MaxPool")(_pool(Op.MAX_POOL))
converter("AveragePool")(_pool(Op.AVG_POOL))


def _global(op):
    def convert(ctx, node):
        (x,) = ctx.inputs(node)
        _float_only(ctx, node, x)
        if x.ndim < 3:
            raise ctx.unsupported(node, f"input of rank {x.ndim}")
        return [ctx.graph.add(op, [x], {}, name=node.name)]
    return convert


converter("GlobalAveragePool")(_global(Op.GLOBAL_AVG_POOL))
converter("GlobalMaxPool")(_global(Op.GLOBAL_MAX_POOL))


@converter("BatchNormalization")
def _batch_norm(ctx, node):
    x, scale, bias, mean, var = (ctx.input(node, i) for i in range(5))
    _float_only(ctx, node, x, scale, bias, mean, var)
    if ctx.attr(node, "training_mode", 0) or len([o for o in node.output[1:] if o]):
        raise ctx.unsupported(node, "training mode (inference only)")
    if x.ndim < 2:
        raise ctx.unsupported(node, f"input of rank {x.ndim}")
    ins = [x] + [_as(ctx, v, x) for v in (scale, bias, mean, var)]
    return [ctx.graph.add(Op.BATCH_NORM, ins, {"eps": float(ctx.attr(node, "epsilon", 1e-5))},
                          name=node.name)]


@converter("LRN")
def _lrn(ctx, node):
    (x,) = ctx.inputs(node)
    _float_only(ctx, node, x)
    attrs = {"size": int(ctx.attr(node, "size")), "alpha": float(ctx.attr(node, "alpha", 1e-4)),
             "beta": float(ctx.attr(node, "beta", 0.75)), "bias": float(ctx.attr(node, "bias", 1.0))}
    return [ctx.graph.add(Op.LRN, [x], attrs, name=node.name)]


@converter("Pad")
def _pad(ctx, node):
    x = ctx.input(node, 0)
    _float_only(ctx, node, x)
    mode = ctx.attr(node, "mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.unsupported(node, f"mode {mode!r}")
    pads = list(ints(require_const(ctx, node, ctx.input(node, 1), "pads")))
    cv = ctx.input(node, 2)
    value = 0.0 if cv is None else float(np.asarray(
        require_const(ctx, node, cv, "constant_value")).reshape(-1)[0]) \
        if np.asarray(require_const(ctx, node, cv, "constant_value")).size else 0.0
    av = ctx.input(node, 3)
    nd = x.ndim
    if av is not None:
        axes = norm_axes(ctx, node, ints(require_const(ctx, node, av, "axes")), nd)
        if len(pads) != 2 * len(axes):
            raise ctx.unsupported(node, f"pads {pads} for axes {axes}")
        full = [0] * (2 * nd)
        for i, a in enumerate(axes):
            full[a], full[nd + a] = pads[i], pads[len(axes) + i]
        pads = full
    if len(pads) != 2 * nd:
        raise ctx.unsupported(node, f"pads {pads} for rank {nd}")
    return [ctx.graph.add(Op.PAD, [x], {"pads": tuple(pads), "mode": mode, "value": value},
                          name=node.name)]


@converter("Resize")
def _resize(ctx, node):
    x = ctx.input(node, 0)
    _float_only(ctx, node, x)
    scales_v, sizes_v = ctx.input(node, 2), ctx.input(node, 3)
    mode = ctx.attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise ctx.unsupported(node, f"mode {mode!r} (nearest and linear only)")
    if ctx.attr(node, "antialias", 0):
        raise ctx.unsupported(node, "antialias")
    if ctx.attr(node, "axes", None) is not None:
        raise ctx.unsupported(node, "the axes attribute")
    if ctx.attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise ctx.unsupported(node, "keep_aspect_ratio_policy other than 'stretch'")
    ctm = ctx.attr(node, "coordinate_transformation_mode", "half_pixel")
    if ctm == "tf_crop_and_resize":
        raise ctx.unsupported(node, "coordinate_transformation_mode 'tf_crop_and_resize'")
    sizes = scales = None
    if sizes_v is not None and ctx.constant(sizes_v) is not None and \
            ctx.constant(sizes_v).size:
        sizes = ints(ctx.constant(sizes_v))
    elif scales_v is not None:
        sc = require_const(ctx, node, scales_v, "scales")
        scales = tuple(float(s) for s in sc.reshape(-1))
        if len(scales) != x.ndim:
            raise ctx.unsupported(node, f"scales {scales} for rank {x.ndim}")
        sizes = []
        for d, s in zip(x.shape, scales):
            if isinstance(d, int):
                sizes.append(int(np.floor(d * s)))
            elif s == 1.0:
                sizes.append(d)
            else:
                raise ctx.unsupported(node, f"scale {s} of symbolic dim '{d}'")
        sizes = tuple(sizes)
    else:
        require_const(ctx, node, sizes_v, "sizes")
        raise ctx.unsupported(node, "neither scales nor sizes")
    if len(sizes) != x.ndim:
        raise ctx.unsupported(node, f"sizes {sizes} for rank {x.ndim}")
    attrs = {"sizes": tuple(sizes), "mode": mode, "coordinate_transformation_mode": ctm,
             "nearest_mode": ctx.attr(node, "nearest_mode", "round_prefer_floor"),
             "scales": scales, "exclude_outside": int(ctx.attr(node, "exclude_outside", 0)),
             "extrapolation_value": float(ctx.attr(node, "extrapolation_value", 0.0))}
    return [ctx.graph.add(Op.RESIZE, [x], attrs, name=node.name)]
