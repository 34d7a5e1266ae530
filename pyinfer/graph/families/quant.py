"""Quantized ops: shape rules, NumPy references and lowerings.

* ``QUANTIZE_LINEAR (x, scale, zero_point|None)``, attr ``axis`` (ONNX): u8/s8
  of x's shape (zero_point's dtype, uint8 when absent).
* ``DEQUANTIZE_LINEAR (x, scale, zero_point|None)``, attr ``axis``: float32.
* ``DYNAMIC_QUANTIZE_LINEAR (x,)`` -> ``(y u8, scale f32 (), zero_point u8 ())``.
* ``QGEMM (a, w, w_scale|None, w_zero|None, bias|None, a_scale|None, a_zero|None)``:
  ``(a - a_zero) @ (w - w_zero)`` in int32 then an epilogue.  ``w`` is a
  constant s8 (K, N) (or a run-time one: reference path); ``w_scale``,
  ``w_zero`` scalar or (N,).  attrs:

    a_mode      "dynamic": a is float, quantized to u8 at run time
                (DynamicQuantizeLinear's scale and zero point, per tensor or
                per row: a_granularity);
                "static": a is float, quantized with the a_scale, a_zero inputs;
                "quantized": a is already u8 (a_zero its zero point).
    out         "float": act(acc * a_scale * w_scale + bias), float32;
                "u8": that value quantized with attrs out_scale, out_zero;
                "int32": acc itself (MatMulInteger).
    activation  None or a GEMM epilogue activation.
    a_granularity  "tensor" (default: what ONNX's DynamicQuantizeLinear +
                MatMulInteger mean, so imported models keep it) or "row"
                (a_mode "dynamic" only): each row of a (each token) quantized
                by the parameters of its own range, and the epilogue's scale
                float32(row_scale[i] * w_scale[j]), zero point row_zero[i]
                (backends/numpy_quant.py).  quantize_dynamic's default: token
                ranges differ widely in transformers.

  Output shape ``a.shape[:-1] + (N,)``.  Lowered to the C int8 GEMM with the
  weight packed once at plan time; a float a is quantized (its range found,
  for dynamic) inside the same C call, block by block as the GEMM packs it.
"""
from __future__ import annotations

import numpy as np

from ... import registry
from ...backends.numpy_quant import F32, S32, S8, U8, QWeight, dequantize_ref, qgemm_ref, quantize_ref
from ...errors import ShapeError
from ..ir import Op
from ..opdefs import define
from ..shapes import fail

QGEMM_OUT = {"float": F32, "u8": U8, "int32": S32}
A_MODES = ("dynamic", "static", "quantized")
A_GRANULARITIES = ("tensor", "row")


def _axis_view(node, x_shape, scale):
    """(scale, zero) reshaped to broadcast against x along the node's axis."""
    def shape_for(arr):
        if arr is None or np.ndim(arr) == 0 or np.size(arr) == 1:
            return None if arr is None else np.asarray(arr).reshape(())
        ax = node.attrs.get("axis", 1) % len(x_shape)
        return np.asarray(arr).reshape([-1 if i == ax else 1 for i in range(len(x_shape))])
    return shape_for


def _check_params(node, x, scale, zero):
    if scale is None or scale.dtype.kind != "f":
        raise fail(node, f"input 'scale' expected a float tensor, received "
                         f"{None if scale is None else scale.dtype}")
    if scale.ndim > 1:
        raise fail(node, f"input 'scale' expected a scalar or 1-d tensor, received {scale.shape}")
    if scale.ndim == 1 and scale.shape[0] != 1:
        axis = node.attrs.setdefault("axis", 1)
        if not -x.ndim <= axis < x.ndim or x.shape[axis % x.ndim] != scale.shape[0]:
            raise fail(node, f"per-axis 'scale' of {scale.shape[0]} values does not match "
                             f"axis {axis} of x {x.shape}")
    if zero is not None and tuple(zero.shape) != tuple(scale.shape) and \
            not zero.size == scale.size == 1:  # () with (1,): ORT's per-tensor bias DQ
        raise fail(node, f"input 'zero_point' shape {zero.shape} differs from scale {scale.shape}")


def _q_shape(node):
    x, scale, zero = (list(node.inputs) + [None, None])[:3]
    if x.dtype.kind != "f":
        raise fail(node, f"input 'x' expected float, received {x.dtype}")
    _check_params(node, x, scale, zero)
    node.attrs.setdefault("axis", 1)
    dt = zero.dtype if zero is not None else U8
    if dt not in (U8, S8):
        raise fail(node, f"input 'zero_point' expected uint8 or int8, received {dt}")
    return [(x.shape, dt)]


def _q_ref(node, args):
    x, scale, zero = (list(args) + [None, None])[:3]
    view = _axis_view(node, np.shape(x), scale)
    dt = node.outputs[0].dtype
    return [quantize_ref(np.asarray(x, F32), view(scale), 0 if zero is None else view(zero), dt)]


def _dq_shape(node):
    x, scale, zero = (list(node.inputs) + [None, None])[:3]
    if x.dtype not in (U8, S8, S32):
        raise fail(node, f"input 'x' expected uint8, int8 or int32, received {x.dtype}")
    _check_params(node, x, scale, zero)
    node.attrs.setdefault("axis", 1)
    return [(x.shape, F32)]


def _dq_ref(node, args):
    x, scale, zero = (list(args) + [None, None])[:3]
    view = _axis_view(node, np.shape(x), scale)
    return [dequantize_ref(x, view(scale), 0 if zero is None else view(zero))]


def _qdq_lower(kernel_op, out_dtype_fn):
    """QUANTIZE/DEQUANTIZE with constant parameters: the registry kernel on the
    (outer, C, inner) view; run-time parameters go to the reference."""
    def lower(node, ctx):
        x, scale, zero = (list(node.inputs) + [None, None])[:3]
        if not scale.is_constant or (zero is not None and not zero.is_constant):
            return None
        if any(not isinstance(d, int) for d in x.shape):
            return None
        s = np.ascontiguousarray(scale.data, F32).reshape(-1)
        z = None if zero is None else np.ascontiguousarray(zero.data, np.int32).reshape(-1)
        if s.size == 1:
            outer, ch, inner = 1, 1, int(np.prod(x.shape, dtype=np.int64))
        else:
            ax = node.attrs["axis"] % x.ndim
            outer = int(np.prod(x.shape[:ax], dtype=np.int64))
            ch, inner = s.size, int(np.prod(x.shape[ax + 1:], dtype=np.int64))
        shape3 = (outer, ch, inner)
        out_v = node.outputs[0]
        sx = np.zeros(shape3, x.dtype)
        kernel = registry.select(kernel_op, None if ctx.backend in (None, "auto") else ctx.backend,
                                 sx, s, z, out=np.zeros(shape3, out_v.dtype))

        def run(xa, *, out):
            xa = xa if xa.dtype == sx.dtype else xa.astype(sx.dtype)
            kernel.fn(np.ascontiguousarray(xa).reshape(shape3), s, z, out=out.reshape(shape3))

        from ...plan.select import Step
        return Step(node, run, [x], {}, kernel.backend, f"{kernel.backend}.{kernel_op}")
    return lower


def _dyn_shape(node):
    (x,) = node.inputs
    if x.dtype.kind != "f":
        raise fail(node, f"input 'x' expected float, received {x.dtype}")
    return [(x.shape, U8), ((), F32), ((), U8)]


def _dyn_ref(node, args):
    from ...ops.quant import dynamic_params
    x = np.asarray(args[0], F32)
    finite = x[~np.isnan(x)]
    scale, zp = dynamic_params(finite.min(), finite.max())
    return [quantize_ref(x, scale, zp, U8), np.array(scale, F32), np.array(zp, U8)]


def _dyn_lower(node, ctx):
    """The range and quantize kernels chosen now; a run calls both on the
    planned (1, 1, n) view and writes y straight into its slot.  Symbolic
    shapes go to the reference."""
    from ...ops.quant import dynamic_params
    from ...plan.select import Step
    (x,) = node.inputs
    if any(not isinstance(d, int) for d in x.shape):
        return None
    n = int(np.prod(x.shape, dtype=np.int64))
    if n == 0:
        return None  # the reference raises the op's error
    backend = None if ctx.backend in (None, "auto") else ctx.backend
    flat, shape3 = np.zeros(n, F32), (1, 1, n)
    minmax = registry.select("minmax", backend, flat, out=np.zeros(2, F32)).fn
    quantize = registry.select("quantize_linear", backend, flat.reshape(shape3),
                               np.zeros(1, F32), np.zeros(1, np.int32), out=np.zeros(shape3, U8))

    def run(args, outs):
        # The three small arrays are per run: a plan may run in several threads.
        lo_hi, scale, zero = np.empty(2, F32), np.empty(1, F32), np.empty(1, np.int32)
        xf = np.ascontiguousarray(args[0], F32).reshape(-1)
        minmax(xf, out=lo_hi)
        if not (np.isfinite(lo_hi[0]) and np.isfinite(lo_hi[1])):
            raise ShapeError(f"{node.name}: DynamicQuantizeLinear expected finite values, "
                             f"received range [{lo_hi[0]}, {lo_hi[1]}]")
        scale[0], zero[0] = dynamic_params(lo_hi[0], lo_hi[1])
        quantize.fn(xf.reshape(shape3), scale, zero, out=outs[0].reshape(shape3))
        outs[1][...] = scale[0]
        outs[2][...] = zero[0]
    return Step(node, run, list(node.inputs), {}, quantize.backend,
                f"{quantize.backend}.dynamic_quantize_linear", out_mode="list")


# ---- QGEMM ----------------------------------------------------------------------------

def _qgemm_parts(node):
    ins = list(node.inputs) + [None] * (7 - len(node.inputs))
    return ins[:7]


def _qgemm_shape(node):
    a, w, w_scale, w_zero, bias, a_scale, a_zero = _qgemm_parts(node)
    at = node.attrs
    mode = at.setdefault("a_mode", "dynamic")
    out = at.setdefault("out", "float")
    at.setdefault("activation", None)
    gran = at.setdefault("a_granularity", "tensor")
    if mode not in A_MODES:
        raise fail(node, f"attribute 'a_mode' expected one of {A_MODES}, received {mode!r}")
    if gran not in A_GRANULARITIES:
        raise fail(node, f"attribute 'a_granularity' expected one of {A_GRANULARITIES}, "
                         f"received {gran!r}")
    if gran == "row" and mode != "dynamic":
        raise fail(node, f"attribute 'a_granularity' 'row' needs a_mode 'dynamic', received "
                         f"a_mode {mode!r}")
    if out not in QGEMM_OUT:
        raise fail(node, f"attribute 'out' expected one of {tuple(QGEMM_OUT)}, received {out!r}")
    if w.dtype != S8 or w.ndim != 2:
        raise fail(node, f"input 'w' expected a 2-d int8 weight, received {w.ndim}-d {w.dtype}")
    if mode == "quantized" and a.dtype != U8:
        raise fail(node, f"input 'a' expected uint8 for a_mode 'quantized', received {a.dtype}")
    if mode != "quantized" and a.dtype.kind != "f":
        raise fail(node, f"input 'a' expected float for a_mode {mode!r}, received {a.dtype}")
    if mode == "static" and (a_scale is None or a_zero is None):
        raise fail(node, "a_mode 'static' needs the a_scale and a_zero inputs")
    if out != "int32" and w_scale is None:
        raise fail(node, f"out {out!r} needs the w_scale input")
    if out == "u8" and "out_scale" not in at:
        raise fail(node, "out 'u8' needs the out_scale attribute")
    k, n = w.shape
    if a.ndim < 1 or a.shape[-1] != k:
        raise fail(node, f"input 'a' {a.shape} does not end in k = {k} (w is {w.shape})")
    if bias is not None and tuple(bias.shape) != (n,):
        raise fail(node, f"input 'bias' expected shape ({n},), received {bias.shape}")
    return [(tuple(a.shape[:-1]) + (n,), QGEMM_OUT[out])]


def _vec(x, n, dtype):
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype).reshape(-1), (n,)))


def qgemm_eval(at, a, w: QWeight, w_scale, bias, a_scale, a_zero, quantize=None):
    """The QGEMM node's computation on arrays (reference semantics).  ``quantize``:
    an optional fast (x2d, scale, zero) -> u8 function for the static/dynamic modes."""
    from ...ops.quant import dynamic_params
    k, n = w.b.shape
    lead = np.shape(a)[:-1]
    a2 = np.asarray(a).reshape(-1, k)
    mode = at["a_mode"]
    if mode == "dynamic" and at.get("a_granularity", "tensor") == "row":
        from ...backends.numpy_quant import qgemm_f32
        out = np.empty((a2.shape[0], n), QGEMM_OUT[at["out"]])
        qgemm_f32(np.asarray(a2, F32), w, None, None,
                  None if at["out"] == "int32" else _vec(w_scale, n, F32),
                  None if bias is None else np.asarray(bias, F32),
                  activation=at.get("activation"), out_scale=at.get("out_scale"),
                  out_zero=at.get("out_zero", 0), out=out, x_granularity="row")
        return out.reshape(lead + (n,))
    if mode == "dynamic":
        a2f = np.asarray(a2, F32)
        fin = a2f[~np.isnan(a2f)]
        a_scale, a_zero = dynamic_params(fin.min() if fin.size else 0, fin.max() if fin.size else 0)
    if mode != "quantized":
        a2 = quantize_ref(np.asarray(a2, F32), np.float32(a_scale), int(a_zero), U8)
    out = at["out"]
    scale = None if out == "int32" else \
        np.float32(np.asarray(a_scale, F32).reshape(())) * _vec(w_scale, n, F32)
    res = qgemm_ref(a2, w.b, int(np.asarray(a_zero).reshape(())) if a_zero is not None else 0,
                    w.b_zero, scale, None if bias is None else np.asarray(bias, F32),
                    at.get("activation"), at.get("out_scale"), at.get("out_zero", 0),
                    QGEMM_OUT[out])
    return res.reshape(lead + (n,))


def _qweight_of(w_data, w_zero_data):
    n = w_data.shape[1]
    bz = np.zeros(n, np.int32) if w_zero_data is None else _vec(w_zero_data, n, np.int32)
    b = np.array(w_data, S8, copy=True)
    b.setflags(write=False)
    return QWeight(b, bz)


def _qgemm_ref(node, args):
    a, w, w_scale, w_zero, bias, a_scale, a_zero = (list(args) + [None] * 7)[:7]
    return [qgemm_eval(node.attrs, a, _qweight_of(np.asarray(w), w_zero), w_scale, bias,
                       a_scale, a_zero)]


def _qgemm_lower(node, ctx):
    """The C int8 GEMM: weight packed at plan time (QWeight keeps it); a float
    activation is quantized by the same kernel call (qgemm_f32) while it packs A."""
    from ...plan.select import Step
    a, w, w_scale, w_zero, bias, a_scale, a_zero = _qgemm_parts(node)
    at = node.attrs
    consts = [v for v in (w, w_scale, w_zero, bias) if v is not None]
    if not all(v.is_constant for v in consts) or any(not isinstance(d, int) for d in a.shape):
        return None
    k, n = w.shape
    m = int(np.prod(a.shape[:-1], dtype=np.int64))
    qw = _qweight_of(w.data, None if w_zero is None else w_zero.data)
    ws = None if w_scale is None else _vec(w_scale.data, n, F32)
    b = None if bias is None else _vec(bias.data, n, F32)
    mode, out = at["a_mode"], at["out"]
    static_scale = static_zero = None
    if mode == "static":
        if not (a_scale.is_constant and a_zero.is_constant):
            return None
        static_scale = np.float32(a_scale.data.reshape(()))
        static_zero = int(a_zero.data.reshape(()))
    backend = None if ctx.backend in (None, "auto") else ctx.backend
    kw = {"activation": at.get("activation"),
          "out_scale": None if out != "u8" else np.float32(at["out_scale"]),
          "out_zero": None if out != "u8" else int(at.get("out_zero", 0))}
    sample_out = np.zeros((m, n), QGEMM_OUT[out])
    if mode == "quantized":
        kernel = registry.select("qgemm", backend, np.zeros((m, k), U8), qw, 0, ws, b,
                                 out=sample_out, **kw)
    else:
        if at.get("a_granularity", "tensor") == "row":
            kw["x_granularity"] = "row"
        kernel = registry.select("qgemm_f32", backend, np.zeros((m, k), F32), qw,
                                 static_scale, static_zero, ws, b, out=sample_out, **kw)
    if kernel.backend == "c":
        from ...backends import c_quant
        c_quant.packed_weight(qw)  # pack now, at plan time

    if mode == "quantized":
        def run(xa, *rest, out):
            rest = list(rest)
            az = int(rest.pop(0).reshape(())) if a_zero is not None else 0
            sa = np.float32(rest.pop(0).reshape(())) if a_scale is not None else np.float32(1)
            scale = None if ws is None else np.multiply(sa, ws, dtype=F32)
            kernel.fn(xa.reshape(m, k), qw, az, scale, b, out=out.reshape(m, n), **kw)
    else:
        def run(xa, *, out):
            # quantized per tensor (dynamic: from its range) inside the kernel
            x2 = np.ascontiguousarray(xa.reshape(m, k), F32)
            kernel.fn(x2, qw, static_scale, static_zero, ws, b, out=out.reshape(m, n), **kw)

    args = [a]
    if mode == "quantized":
        if a_zero is not None:
            args.append(a_zero)
        if a_scale is not None:
            args.append(a_scale)
    label = "dynamic-row" if kw.get("x_granularity") == "row" else mode
    return Step(node, run, args, {}, kernel.backend, f"{kernel.backend}.qgemm[{label}->{out}]",
                flops=2 * m * n * k)


define(Op.QUANTIZE_LINEAR, shape=_q_shape, reference=_q_ref,
       lower=_qdq_lower("quantize_linear", None))
define(Op.DEQUANTIZE_LINEAR, shape=_dq_shape, reference=_dq_ref,
       lower=_qdq_lower("dequantize_linear", None))
define(Op.DYNAMIC_QUANTIZE_LINEAR, shape=_dyn_shape, reference=_dyn_ref, lower=_dyn_lower)
define(Op.QGEMM, shape=_qgemm_shape, reference=_qgemm_ref, lower=_qgemm_lower)
