"""ONNX integer convolutions -> Op.QCONV (pyinfer/graph/families/qconv.py).

* ConvInteger (x u8, w, x_zero_point?, w_zero_point?) -> int32: QCONV out "int32".
* QLinearConv (x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero, B?) ->
  u8: QCONV out "u8".  Its int32 bias B (scale x_scale * w_scale, zero 0)
  becomes the float bias ``float32(B) * x_scale * w_scale`` of the float
  epilogue; ``(acc + B) * s`` and ``acc * s + B * s`` differ only in float32
  rounding, so the u8 result can differ from ONNX Runtime's by one unit.

The weight must be a constant (it is packed once); a uint8 weight is shifted to
int8 exactly (w - zw = (w - 128) - (zw - 128)).  x must be uint8 with a scalar
zero point, the output of QLinearConv uint8, 2-d spatial only.  auto_pad is
resolved here, which needs x's spatial dims.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ...ops.conv import resolve_auto_pad
from ..convert import converter


def _weight(ctx, node, w, zw):
    """(int8 weight Value, int32 (K,) zero-point Value or None) from a constant w."""
    data = ctx.constant(w)
    if data is None or data.ndim != 4:
        raise ctx.unsupported(node, "the weight must be a constant 4-d tensor")
    k = data.shape[0]
    z = ctx.constant(zw)
    if zw is not None and z is None:
        raise ctx.unsupported(node, "the weight's zero point must be a constant")
    if z is not None and z.size not in (1, k):
        raise ctx.unsupported(node, f"the weight's zero point has {z.size} values for {k} "
                                    "output channels")
    z = np.zeros(k, np.int32) if z is None else \
        np.broadcast_to(np.asarray(z, np.int32).reshape(-1), (k,)).copy()
    if data.dtype == np.uint8:
        data, z = (data ^ np.uint8(0x80)).view(np.int8), z - 128
    elif data.dtype != np.int8:
        raise ctx.unsupported(node, f"weight of type {data.dtype} (uint8/int8 only)")
    name = node.name or "qconv"
    return ctx.const(data, name=f"{name}_w_s8"), \
        (ctx.const(z, name=f"{name}_w_zero") if z.any() else None)


def _x(ctx, node, x, zx):
    if x.dtype != np.uint8:
        raise ctx.unsupported(node, f"input of type {x.dtype} (uint8 only)")
    if x.ndim != 4:
        raise ctx.unsupported(node, f"input of rank {x.ndim} (2-d spatial, NCHW, only)")
    if zx is not None and zx.shape not in ((), (1,)):
        raise ctx.unsupported(node, "per-channel input zero points")
    if zx is not None and zx.dtype != np.uint8:
        raise ctx.unsupported(node, f"input zero point of type {zx.dtype} (uint8 only)")


def _attrs(ctx, node, x, w_shape):
    strides = tuple(ctx.attr(node, "strides", (1, 1)))
    dilations = tuple(ctx.attr(node, "dilations", (1, 1)))
    pads = tuple(int(p) for p in ctx.attr(node, "pads", (0, 0, 0, 0)))
    if len(pads) != 4 or len(strides) != 2 or len(dilations) != 2:
        raise ctx.unsupported(node, "2-d spatial convolution only")
    ks = ctx.attr(node, "kernel_shape", None)
    if ks is not None and tuple(ks) != tuple(w_shape[2:]):
        raise ctx.unsupported(node, f"kernel_shape {ks} differs from the weight's {w_shape[2:]}")
    auto_pad = ctx.attr(node, "auto_pad", "NOTSET") or "NOTSET"
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise ctx.unsupported(node, f"auto_pad {auto_pad!r}")
    if auto_pad != "NOTSET":
        if not all(isinstance(d, int) for d in x.shape[2:]):
            raise ctx.unsupported(node, f"auto_pad {auto_pad} with symbolic spatial dims")
        pads = resolve_auto_pad(auto_pad, x.shape[2:], w_shape[2:], strides, dilations)
    return {"strides": strides, "dilations": dilations, "pads": pads,
            "group": int(ctx.attr(node, "group", 1)), "activation": None}


@converter("ConvInteger", opsets=(10, 21))
def conv_integer(ctx, node):
    x, w, zx, zw = (ctx.inputs(node) + [None, None])[:4]
    _x(ctx, node, x, zx)
    wv, wz = _weight(ctx, node, w, zw)
    attrs = dict(_attrs(ctx, node, x, wv.shape), out="int32")
    return [ctx.graph.add(Op.QCONV, [x, wv, None, wz, None, None, zx], attrs,
                          name=node.name or None)]


@converter("QLinearConv", opsets=(10, 21))
def qlinear_conv(ctx, node):
    x, sx, zx, w, sw, zw, sy, zy, b = (ctx.inputs(node) + [None])[:9]
    _x(ctx, node, x, zx)
    wv, wz = _weight(ctx, node, w, zw)
    k = wv.shape[0]
    sy_d, zy_d = ctx.constant(sy), ctx.constant(zy)
    if sy_d is None or sy_d.size != 1 or (zy is not None and (zy_d is None or zy_d.size != 1)):
        raise ctx.unsupported(node, "the output scale and zero point must be constant scalars")
    if zy_d is not None and zy_d.dtype != np.uint8:
        raise ctx.unsupported(node, f"output of type {zy_d.dtype} (uint8 only)")
    sw_d = ctx.constant(sw)
    if sw_d is not None and sw_d.size not in (1, k):
        raise ctx.unsupported(node, f"the weight scale has {sw_d.size} values for {k} channels")
    bias = None
    if b is not None:
        sx_d, b_d = ctx.constant(sx), ctx.constant(b)
        if sx_d is None or sw_d is None or b_d is None:
            raise ctx.unsupported(node, "a bias needs constant B, x_scale and w_scale")
        scale = np.float32(np.asarray(sx_d, np.float32).reshape(-1)[0]) * \
            np.broadcast_to(np.asarray(sw_d, np.float32).reshape(-1), (k,))
        bias = ctx.const((np.asarray(b_d, np.float32) * scale).astype(np.float32),
                         name=f"{node.name or 'qconv'}_bias")
    attrs = dict(_attrs(ctx, node, x, wv.shape), out="u8",
                 out_scale=float(np.float32(sy_d.reshape(()))),
                 out_zero=0 if zy_d is None else int(zy_d.reshape(())))
    return [ctx.graph.add(Op.QCONV, [x, wv, sw, wz, bias, sx, zx], attrs,
                          name=node.name or None)]
