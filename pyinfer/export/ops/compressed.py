"""Compressed and quantized ops: QUANTIZE_LINEAR, DEQUANTIZE_LINEAR,
DYNAMIC_QUANTIZE_LINEAR, QGEMM and SPARSE_GEMM.

* ``SPARSE_GEMM`` is a dense ``Gemm``/``MatMul`` on the pruned weight (its
  meaning; the block-sparse storage is the planner's business), then bias and
  activation.
* ``QGEMM`` becomes the QDQ form every ONNX runtime understands (and ONNX
  Runtime fuses back into its int8 kernels): the 8-bit weight stays 8-bit
  behind a ``DequantizeLinear`` (per output column: axis 1; stored as uint8
  with the zero point moved by 128, see ``_weight``), the activation goes
  through ``DynamicQuantizeLinear`` (a_mode "dynamic") or ``QuantizeLinear``
  with the calibrated scale and zero point ("static") and a
  ``DequantizeLinear``, then ``MatMul`` + bias + activation (+ ``QuantizeLinear``
  for a u8 result).  The int32 result of MatMulInteger is ``MatMulInteger``.
* A per-row dynamic ``QGEMM`` (a_granularity "row") has no ONNX operator:
  it is written out as its definition (``_qgemm_rows``) -- each row's range by
  ReduceMin/ReduceMax over the last axis, DynamicQuantizeLinear's scale and
  zero point arithmetic on it, the row quantized by Div/rint/Add/Clip/Cast,
  ``MatMulInteger`` with no activation zero point and the per-row zero point
  subtracted afterwards in int32 (``z[i] * colsum(w - w_zero)[j]``: ONNX
  Runtime 1.x refuses a per-row a_zero_point, see bench/RESULTS.md), then
  ``float(acc) * (s[i] * w_scale[j])`` + bias, activation.  Integer parts are
  exact, so ONNX Runtime gives pyinfer's result up to float ops it may order
  differently; pyinfer's ``qrows`` pass (graph/passes/qrows.py) folds it back
  into the per-row QGEMM when the model is loaded.  ``rint`` is
  ``(v + 1.5 * 2^23) - 1.5 * 2^23``: float32 addition rounds half to even, as
  ONNX ``Round`` does, exactly for |v| < 2^22 (here |v| <= 255 for every
  finite row) -- and pyinfer's importer has no ``Round``.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..registry import exporter
from .nn import linear

F32, U8, S8 = np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int8)


@exporter(Op.QUANTIZE_LINEAR)
def _quantize(ctx, node, ins, outs):
    x, scale, zero = (list(node.inputs) + [None, None])[:3]
    ctx.one("QuantizeLinear", [ctx.value_as(x, F32), ctx.value_as(scale, F32), ins[2]], outs[0],
            axis=_axis(node, scale))


@exporter(Op.DEQUANTIZE_LINEAR)
def _dequantize(ctx, node, ins, outs):
    x, scale, zero = (list(node.inputs) + [None, None])[:3]
    ctx.one("DequantizeLinear", [ins[0], ctx.value_as(scale, F32), ins[2]], outs[0],
            axis=_axis(node, scale))


def _axis(node, scale):
    return int(node.attrs.get("axis", 1)) if scale is not None and scale.ndim == 1 and \
        scale.shape[0] != 1 else None


@exporter(Op.DYNAMIC_QUANTIZE_LINEAR)
def _dynamic_quantize(ctx, node, ins, outs):
    ctx.node("DynamicQuantizeLinear", [ctx.value_as(node.inputs[0], F32)], outs)


def _weight(ctx, node, w, w_scale, w_zero, per_axis: bool):
    """(weight, scale, zero point) names for DequantizeLinear / MatMulInteger.

    A constant int8 weight is written as uint8 with its zero point moved up by
    128, which dequantizes to the same values: ONNX Runtime fuses QDQ MatMuls
    into its u8 x s8 kernel, whose AVX2 form (vpmaddubsw) saturates int16 pair
    sums on full-range int8 weights (its documented "saturation issue"); u8 x u8
    takes a path that does not."""
    if not w.is_constant or (w_zero is not None and not w_zero.is_constant):
        zero = "" if w_zero is None else ctx.value_as(w_zero, S8)
        return ctx.name(w), ("" if w_scale is None else ctx.value_as(w_scale, F32)), zero
    n = w.shape[1]
    z = np.zeros((), np.int32) if w_zero is None else np.asarray(w_zero.data, np.int32).reshape(-1)
    if z.min() < -128 or z.max() > 127:
        raise ctx.unsupported(node, "a weight zero point outside int8's range")
    w_u8 = (np.asarray(w.data, np.int16) + 128).astype(np.uint8)
    wname = ctx.const(w_u8, f"{w.name}.u8")
    if w_scale is None:        # MatMulInteger: one zero point, or one per column
        z = z.reshape(()) if z.size == 1 else z
        return wname, "", ctx.const((z + 128).astype(np.uint8), f"{w.name}.zero")
    if not w_scale.is_constant:
        raise ctx.unsupported(node, "a weight scale computed at run time")
    s = np.asarray(w_scale.data, F32).reshape(-1)
    if per_axis or z.size > 1:   # per-axis parameters: one shape for scale and zero point
        s, z = np.broadcast_to(s, (n,)).copy(), np.broadcast_to(z, (n,)).copy()
    else:
        s, z = s.reshape(()), z.reshape(())
    return (wname, ctx.const(s, f"{w.name}.scale"),
            ctx.const((z + 128).astype(np.uint8), f"{w.name}.zero"))


@exporter(Op.QGEMM)
def _qgemm(ctx, node, ins, outs):
    a, w, w_scale, w_zero, bias, a_scale, a_zero = (list(node.inputs) + [None] * 7)[:7]
    at = node.attrs
    mode, out = at.get("a_mode", "dynamic"), at.get("out", "float")
    if mode == "dynamic" and at.get("a_granularity", "tensor") == "row":
        _qgemm_rows(ctx, node, outs)
        return
    if mode == "dynamic":
        q, s, z = ctx.node("DynamicQuantizeLinear", [ctx.value_as(a, F32)], 3)
    elif mode == "static":
        s, z = ctx.value_as(a_scale, F32), ctx.value_as(a_zero, U8)
        q = ctx.one("QuantizeLinear", [ctx.value_as(a, F32), s, z])
    else:
        q = ins[0]
        s = ctx.value_as(a_scale, F32) if a_scale is not None else ctx.scalar(1.0, F32)
        z = ctx.value_as(a_zero, U8) if a_zero is not None else ""
    if out == "int32":
        wq, _, wz = _weight(ctx, node, w, None, w_zero, False)
        ctx.one("MatMulInteger", [q, wq, z, wz], outs[0])
        return
    per_axis = w_scale.size != 1
    wq, ws, wz = _weight(ctx, node, w, w_scale, w_zero, per_axis)
    wf = ctx.one("DequantizeLinear", [wq, ws, wz],
                 axis=1 if per_axis or (w_zero is not None and w_zero.size > 1) else None)
    af = ctx.one("DequantizeLinear", [q, s, z])
    _epilogue(ctx, "MatMul", [af, wf], bias, at, outs)


def _epilogue(ctx, op_type, inputs, bias, at, outs):
    """``op_type(inputs)`` (the float product), then the QGEMM's bias,
    activation and, for a u8 result, QuantizeLinear; the last of them writes outs[0]."""
    last = at.get("out", "float") == "float"
    act = at.get("activation")
    y = ctx.one(op_type, inputs, outs[0] if last and bias is None and act is None else None)
    if bias is not None:
        y = ctx.one("Add", [y, ctx.value_as(bias, F32)], outs[0] if last and act is None else None)
    if act is not None:
        y = ctx.activation(y, act, F32, outs[0] if last else None)
    if at.get("out") == "u8":
        ctx.one("QuantizeLinear", [y, ctx.scalar(at["out_scale"], F32),
                                   ctx.scalar(at.get("out_zero", 0), U8)], outs[0])


def _qgemm_rows(ctx, node, outs):
    """The per-row dynamic QGEMM spelled out in standard ops (module docstring)."""
    a, w, w_scale, w_zero, bias = (list(node.inputs) + [None] * 7)[:5]
    at = node.attrs
    out = at.get("out", "float")
    if not w.is_constant or (w_zero is not None and not w_zero.is_constant):
        raise ctx.unsupported(node, "a per-row QGEMM with a weight computed at run time")
    x = ctx.value_as(a, F32)
    lo = ctx.one("Min", [ctx.reduce("ReduceMin", x, [-1], True), ctx.scalar(0.0, F32)])
    hi = ctx.one("Max", [ctx.reduce("ReduceMax", x, [-1], True), ctx.scalar(0.0, F32)])
    step = ctx.one("Div", [ctx.one("Sub", [hi, lo]), ctx.scalar(255.0, F32)])
    s = ctx.one("Where", [ctx.one("Equal", [hi, lo]), ctx.scalar(1.0, F32), step])
    zero, top = ctx.scalar(0.0, F32), ctx.scalar(255.0, F32)
    zf = ctx.one("Clip", [_rint(ctx, ctx.one("Sub", [zero, ctx.one("Div", [lo, s])])),
                          zero, top])
    q = ctx.one("Clip", [ctx.one("Add", [_rint(ctx, ctx.one("Div", [x, s])), zf]), zero, top])
    q = ctx.one("Cast", [q], to=_onnx_type(U8))
    wq, _, wz = _weight(ctx, node, w, None, w_zero, False)
    n = w.shape[1]
    bz = np.zeros(n, np.int64) if w_zero is None else \
        np.broadcast_to(np.asarray(w_zero.data, np.int64).reshape(-1), (n,))
    colsum = (np.asarray(w.data, np.int64) - bz).sum(axis=0).astype(np.int32)
    zi = ctx.one("Cast", [zf], to=_onnx_type(np.int32))
    acc = ctx.one("Sub", [ctx.one("MatMulInteger", [q, wq, "", wz]),
                          ctx.one("Mul", [zi, ctx.const(colsum, f"{w.name}.colsum")])])
    if out == "int32":
        ctx.identity(acc, outs[0])
        return
    scale = ctx.one("Mul", [s, ctx.value_as(w_scale, F32)])
    _epilogue(ctx, "Mul", [ctx.one("Cast", [acc], to=_onnx_type(F32)), scale], bias, at, outs)


def _rint(ctx, v: str) -> str:
    """Round half to even of float32 ``v`` with |v| < 2^22 (module docstring)."""
    magic = ctx.scalar(12582912.0, F32)
    return ctx.one("Sub", [ctx.one("Add", [v, magic]), magic])


def _onnx_type(dtype) -> int:
    from ..build import elem_type
    return elem_type(np.dtype(dtype))


@exporter(Op.SPARSE_GEMM)
def _sparse_gemm(ctx, node, ins, outs):
    x, w = node.inputs[:2]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    linear(ctx, node, x, w, bias, None, node.attrs.get("activation"), outs[0])
