"""ONNX quantization ops -> the int8 family (pyinfer/graph/families/quant.py).

QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear map one to one.
MatMulInteger becomes a QGEMM with an int32 result and QLinearMatMul one with a
requantized uint8 result; both need a constant B (the weight: it is packed once)
and uint8 A.  A uint8 B is shifted to int8 exactly (b - zb = (b - 128) - (zb - 128)).
The qdq pass then folds the forms quantizers write (QDQ pairs, ONNX Runtime's
dynamic MatMulInteger chain) into single fused QGEMM nodes.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..convert import converter


@converter("QuantizeLinear")
def quantize_linear(ctx, node):
    x, scale, zp = (ctx.inputs(node) + [None, None])[:3]
    if ctx.attr(node, "block_size", 0):
        raise ctx.unsupported(node, "blocked quantization (block_size) is not supported")
    if zp is not None and zp.dtype not in (np.uint8, np.int8):
        raise ctx.unsupported(node, f"zero point of type {zp.dtype} (uint8/int8 only)")
    if scale.dtype != np.float32:
        raise ctx.unsupported(node, f"scale of type {scale.dtype} (float32 only)")
    return [ctx.graph.add(Op.QUANTIZE_LINEAR, [x, scale, zp], {"axis": ctx.attr(node, "axis", 1)},
                          name=node.name or None)]


@converter("DequantizeLinear")
def dequantize_linear(ctx, node):
    x, scale, zp = (ctx.inputs(node) + [None, None])[:3]
    if ctx.attr(node, "block_size", 0):
        raise ctx.unsupported(node, "blocked quantization (block_size) is not supported")
    if x.dtype not in (np.uint8, np.int8, np.int32):
        raise ctx.unsupported(node, f"input of type {x.dtype} (uint8/int8/int32 only)")
    if scale.dtype != np.float32:
        raise ctx.unsupported(node, f"scale of type {scale.dtype} (float32 only)")
    return [ctx.graph.add(Op.DEQUANTIZE_LINEAR, [x, scale, zp],
                          {"axis": ctx.attr(node, "axis", 1)}, name=node.name or None)]


@converter("DynamicQuantizeLinear")
def dynamic_quantize_linear(ctx, node):
    (x,) = ctx.inputs(node)
    return list(ctx.graph.add(Op.DYNAMIC_QUANTIZE_LINEAR, [x], {}, name=node.name or None,
                              n_outputs=3))


def _weight(ctx, node, b, zb):
    """(int8 weight Value, int32 zero-point Value or None) from a constant B."""
    data = ctx.constant(b)
    if data is None or data.ndim != 2:
        raise ctx.unsupported(node, "B must be a constant 2-d matrix (a weight)")
    z = ctx.constant(zb)
    if zb is not None and z is None:
        raise ctx.unsupported(node, "B's zero point must be a constant")
    n = data.shape[1]
    z = np.zeros(n, np.int32) if z is None else \
        np.broadcast_to(np.asarray(z, np.int32).reshape(-1), (n,)).copy()
    if z.size != n:
        raise ctx.unsupported(node, f"B's zero point has {z.size} values for {n} columns")
    if data.dtype == np.uint8:
        data, z = (data ^ np.uint8(0x80)).view(np.int8), z - 128
    elif data.dtype != np.int8:
        raise ctx.unsupported(node, f"B of type {data.dtype} (uint8/int8 only)")
    return ctx.const(data, name=f"{node.name or 'w'}_s8"), \
        (ctx.const(z, name=f"{node.name or 'w'}_zero") if z.any() else None)


def _a_zero(ctx, node, a, za):
    if a.dtype != np.uint8:
        raise ctx.unsupported(node, f"A of type {a.dtype} (uint8 only)")
    if za is not None and za.shape not in ((), (1,)):
        raise ctx.unsupported(node, "per-row A zero points")
    return za if za is not None else ctx.const(np.uint8(0), name="zero_u8")


@converter("MatMulInteger", opsets=(10, 21))
def matmul_integer(ctx, node):
    a, b, za, zb = (ctx.inputs(node) + [None, None])[:4]
    w, wz = _weight(ctx, node, b, zb)
    za = _a_zero(ctx, node, a, za)
    return [ctx.graph.add(Op.QGEMM, [a, w, None, wz, None, None, za],
                          {"a_mode": "quantized", "out": "int32", "activation": None},
                          name=node.name or None)]


@converter("QLinearMatMul", opsets=(10, 21))
def qlinear_matmul(ctx, node):
    a, sa, za, b, sb, zb, sy, zy = ctx.inputs(node)
    w, wz = _weight(ctx, node, b, zb)
    za = _a_zero(ctx, node, a, za)
    sy_d, zy_d = ctx.constant(sy), ctx.constant(zy)
    if sy_d is None or zy_d is None or sy_d.size != 1 or zy_d.size != 1:
        raise ctx.unsupported(node, "the output scale and zero point must be constant scalars")
    if zy_d.dtype != np.uint8:
        raise ctx.unsupported(node, f"output of type {zy_d.dtype} (uint8 only)")
    return [ctx.graph.add(Op.QGEMM, [a, w, sb, wz, None, sa, za],
                          {"a_mode": "quantized", "out": "u8", "activation": None,
                           "out_scale": float(np.float32(sy_d.reshape(()))),
                           "out_zero": int(zy_d.reshape(()))}, name=node.name or None)]
