"""QCONV -> ONNX in QDQ form (what ONNX Runtime's quantizer writes and fuses):

    x_u8 -> DequantizeLinear(x_scale, x_zero) --+
    w    -> DequantizeLinear(w_scale, w_zero, axis 0) --> Conv(+ bias) -> act
                                                          [-> QuantizeLinear for out "u8"]

and ``out="int32"`` as ConvInteger.  Reimported, ``qdq_conv`` fuses the same
nodes back into the same QCONV (bit for bit: the weight, scales, zero points
and a float bias are stored as they are).

* With a uint8 x the weight is written as uint8 with its zero point moved up
  by 128, which dequantizes to the same values and is exactly undone by the
  importer: ONNX Runtime's u8 x s8 kernels on AVX2 (vpmaddubsw) saturate int16
  pair sums for weights beyond 7 bits, its u8 x u8 path does not (as QGEMM's
  exporter, export/ops/compressed.py).  With an int8 x it stays int8 (ONNX
  Runtime's QLinearConv has no s8 x u8 form).
* The bias: when it is exactly ``float32(B) * x_scale * w_scale`` for an int32
  B (``quantize_static`` and imported QLinearConv / QDQ models round it so) it
  is written as ``DequantizeLinear(B, x_scale * w_scale, axis 0)``, the form
  ONNX Runtime needs to fuse the group into QLinearConv; any other bias stays
  float (ONNX Runtime then runs a float Conv on the dequantized tensors: the
  same values, not its int8 kernel).
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..registry import exporter
from .cnn import _pad_attrs

F32, U8, S32 = np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int32)


def _weight(ctx, node, per_axis: bool):
    """(weight, scale, zero point) names: the s8 weight as uint8 shifted by 128
    for a uint8 x, as is for an int8 x (ONNX Runtime has s8 x s8 and u8 x u8
    convolutions, no s8 x u8)."""
    x, w, w_scale, w_zero = (list(node.inputs) + [None] * 4)[:4]
    k = w.shape[0]
    z = np.zeros(k, np.int32) if w_zero is None else \
        np.broadcast_to(np.asarray(w_zero.data, np.int32).reshape(-1), (k,))
    shift, wdt = (0, np.int8) if x.dtype == np.int8 else (128, np.uint8)
    wname = ctx.const((np.asarray(w.data, np.int16) + shift).astype(wdt), f"{w.name}.q")
    z_u8 = (z + shift).astype(wdt)
    if w_scale is None:   # ConvInteger: one zero point, or one per output channel
        return wname, "", ctx.const(z_u8[:1].reshape(()) if np.all(z_u8 == z_u8[0]) else z_u8,
                                    f"{w.name}.zero")
    s = np.asarray(w_scale.data, F32).reshape(-1)
    if per_axis:
        s = np.broadcast_to(s, (k,)).copy()
    else:
        s, z_u8 = s.reshape(()), z_u8[:1].reshape(())
    return wname, ctx.const(s, f"{w.name}.scale"), ctx.const(z_u8, f"{w.name}.zero")


def int32_bias(bias, x_scale, w_scale, k):
    """(B int32 (K,), scale float32 (K,)) when ``bias`` is exactly
    ``float32(B) * (float32(x_scale) * w_scale)``, else None."""
    if bias is None or x_scale is None or w_scale is None or not x_scale.is_constant:
        return None
    scale = np.float32(np.asarray(x_scale.data, F32).reshape(())) * \
        np.broadcast_to(np.asarray(w_scale.data, F32).reshape(-1), (k,)).astype(F32)
    b = np.asarray(bias.data, F32).reshape(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint(b.astype(np.float64) / scale)
    if not np.all(np.isfinite(q)) or np.abs(q).max(initial=0) >= 2 ** 31:
        return None
    q = q.astype(np.int32)
    if not np.array_equal(q.astype(F32) * scale, b):
        return None
    return q, scale


@exporter(Op.QCONV)
def _qconv(ctx, node, ins, outs):
    x, w, w_scale, w_zero, bias, x_scale, x_zero = (list(node.inputs) + [None] * 7)[:7]
    at = node.attrs
    out = at.get("out", "float")
    k = w.shape[0]
    if not w.is_constant or any(v is not None and not v.is_constant
                                for v in (w_scale, w_zero, bias)):
        raise ctx.unsupported(node, "a weight, weight scale, zero point or bias computed at "
                                    "run time")
    conv_attrs = dict(strides=[int(s) for s in at.get("strides", (1, 1))],
                      dilations=[int(d) for d in at.get("dilations", (1, 1))],
                      group=int(at.get("group", 1)), kernel_shape=[int(d) for d in w.shape[2:]],
                      **_pad_attrs(at))
    xz = ctx.value_as(x_zero, x.dtype) if x_zero is not None else ""
    if out == "int32":
        wq, _, wz = _weight(ctx, node, False)
        ctx.one("ConvInteger", [ins[0], wq, xz, wz], outs[0], **conv_attrs)
        return
    per_axis = w_scale.size != 1 or (w_zero is not None and w_zero.size != 1 and
                                     not np.all(w_zero.data == w_zero.data.reshape(-1)[0]))
    wq, ws, wz = _weight(ctx, node, per_axis)
    wf = ctx.one("DequantizeLinear", [wq, ws, wz], axis=0 if per_axis else None)
    xf = ctx.one("DequantizeLinear", [ins[0], ctx.value_as(x_scale, F32), xz])
    b = ""
    if bias is not None:
        ib = int32_bias(bias, x_scale, w_scale, k)
        if ib is None:
            b = ctx.value_as(bias, F32)
        else:
            b = ctx.one("DequantizeLinear", [ctx.const(ib[0], f"{bias.name}.int32"),
                                             ctx.const(ib[1], f"{bias.name}.scale"),
                                             ctx.const(np.zeros(k, np.int32), "zero_i32")],
                        axis=0)
    act = at.get("activation")
    last = out == "float"
    y = ctx.one("Conv", [xf, wf, b], outs[0] if last and act is None else None, **conv_attrs)
    if act is not None:
        y = ctx.activation(y, act, F32, outs[0] if last else None)
    if out == "u8":
        ctx.one("QuantizeLinear", [y, ctx.scalar(at["out_scale"], F32),
                                   ctx.scalar(at.get("out_zero", 0), U8)], outs[0])
