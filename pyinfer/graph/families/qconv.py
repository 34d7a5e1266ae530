"""Op.QCONV: the int8 convolution -- shape rule, NumPy reference and lowering.

``QCONV (x, w, w_scale|None, w_zero|None, bias|None, x_scale|None, x_zero|None)``:
``conv(x - x_zero, w - w_zero)`` accumulated exactly in int32 then QGEMM's
epilogue.  x is uint8 (or int8: ONNX Runtime's default QDQ activations) NCHW
with a scalar zero point of its type; w an s8 (K, C/group, KH, KW)
with ``w_scale``/``w_zero`` scalar or (K,); bias float (K,).  attrs:

    strides, pads (top, left, bottom, right), dilations, group   as CONV (no auto_pad:
                the importer resolves it)
    out         "float": act(acc * x_scale * w_scale + bias), float32;
                "u8": that value quantized with attrs out_scale, out_zero;
                "int32": acc itself (ConvInteger).
    activation  None or a GEMM epilogue activation.

Lowering: with constant weight, parameters and x_zero, the registry's
``qconv2d`` kernel (pyinfer/backends/c_qconv.py) with the weight packed once
here, at plan time (``c_qconv.prepack``).  x_scale and x_zero
may also be the run-time outputs of a DYNAMIC_QUANTIZE_LINEAR (what
``compress.quantize_dynamic`` writes): the same kernel, the epilogue scale
formed per run.  An int8 x is shifted to uint8 (``x ^ 0x80``, zero point + 128:
exact) into an arena scratch slot by the same step.  Anything else runs the
reference.  Export:
pyinfer/export/ops/qconv.py (QDQ form).
"""
from __future__ import annotations

import numpy as np

from ...backends.numpy_qconv import QConvWeight, qconv2d_ref
from ...backends.numpy_quant import F32, S32, S8, U8
from ...backends.numpy_ref import ACTIVATIONS
from ...errors import ShapeError
from ...ops import conv as eager_conv
from ...ops import qconv as eager_qconv  # noqa: F401  (registers the qconv2d kernels)
from ..ir import Node, Op
from ..opdefs import define
from ..shapes import fail

QCONV_OUT = {"float": F32, "u8": U8, "int32": S32}


def _parts(node: Node):
    return (list(node.inputs) + [None] * 7)[:7]


def _rethrow(node, fn, *args):
    try:
        return fn(*args)
    except ShapeError as e:
        raise fail(node, str(e)) from None


def _shape(node: Node):
    op = "qconv2d"
    x, w, w_scale, w_zero, bias, x_scale, x_zero = _parts(node)
    at = node.attrs
    out = at.setdefault("out", "float")
    act = at.setdefault("activation", None)
    if out not in QCONV_OUT:
        raise fail(node, f"attribute 'out' expected one of {tuple(QCONV_OUT)}, received {out!r}")
    if act is not None and act not in ACTIVATIONS:
        raise fail(node, f"attribute 'activation' expected None or one of {ACTIVATIONS}, "
                         f"received {act!r}")
    if x is None or x.dtype not in (U8, S8) or x.ndim != 4:
        raise fail(node, "input 'x' expected a 4-d uint8 or int8 tensor (NCHW), received "
                         f"{None if x is None else (x.shape, x.dtype)}")
    if w is None or w.dtype != S8 or w.ndim != 4 or \
            not all(isinstance(d, int) for d in w.shape):
        raise fail(node, "input 'w' expected a 4-d int8 weight of known shape, received "
                         f"{None if w is None else (w.shape, w.dtype)}")
    if out != "int32" and (w_scale is None or x_scale is None):
        raise fail(node, f"out {out!r} needs the w_scale and x_scale inputs")
    if out == "u8" and "out_scale" not in at:
        raise fail(node, "out 'u8' needs the out_scale attribute")
    k = w.shape[0]
    for name, v, dtypes in (("w_scale", w_scale, (F32,)), ("w_zero", w_zero, None),
                            ("bias", bias, (F32,))):
        if v is None:
            continue
        if dtypes is not None and v.dtype not in dtypes:
            raise fail(node, f"input '{name}' expected float32, received {v.dtype}")
        if v.ndim > 1 or (name == "bias" and tuple(v.shape) != (k,)) or \
                (v.ndim == 1 and v.shape[0] not in (1, k)):
            raise fail(node, f"input '{name}' expected a scalar or ({k},), received {v.shape}")
    for name, v in (("x_scale", x_scale), ("x_zero", x_zero)):
        if v is not None and (v.ndim > 1 or (v.ndim == 1 and v.shape[0] != 1)):
            raise fail(node, f"input '{name}' expected a scalar, received {v.shape}")
    stride = _rethrow(node, eager_conv.pair, tuple(at.get("strides", (1, 1))), "strides", op)
    dilation = _rethrow(node, eager_conv.pair, tuple(at.get("dilations", (1, 1))),
                        "dilations", op)
    pads = _rethrow(node, eager_conv.normalize_pads, tuple(at.get("pads", (0, 0, 0, 0))),
                    "pads", op)
    group = at.get("group", 1)
    at.update(strides=stride, dilations=dilation, pads=pads,
              group=int(group) if isinstance(group, (int, np.integer)) else group)
    if not isinstance(x.shape[1], int):
        raise fail(node, f"the channels of x {x.shape} must be known")
    hw = tuple(x.shape[2:])
    if all(isinstance(d, int) for d in hw):
        oh, ow = _rethrow(node, eager_conv.check_geometry, tuple(x.shape[:2]) + hw,
                          tuple(w.shape), stride, pads, dilation, group, op)
    else:
        _rethrow(node, eager_conv.check_geometry, (1, x.shape[1], 1 << 30, 1 << 30),
                 tuple(w.shape), stride, pads, dilation, group, op)
        oh, ow = f"{node.name}.oh", f"{node.name}.ow"
    return [((x.shape[0], k, oh, ow), QCONV_OUT[out])]


def _kernel_attrs(node: Node) -> dict:
    at = node.attrs
    u8 = at["out"] == "u8"
    return {"stride": tuple(at["strides"]), "pads": tuple(at["pads"]),
            "dilation": tuple(at["dilations"]), "activation": at.get("activation"),
            "out_scale": np.float32(at["out_scale"]) if u8 else None,
            "out_zero": int(at.get("out_zero", 0)) if u8 else None}


def _vec(x, n, dtype):
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype).reshape(-1), (n,)))


def _scale(node, x_scale, w_scale, k):
    """x_scale * w_scale per output channel in float32 (qgemm's product), None for int32."""
    if node.attrs["out"] == "int32":
        return None
    return np.float32(np.asarray(x_scale, F32).reshape(())) * _vec(w_scale, k, F32)


def _zero(x_zero, shift: int = 0) -> int:
    return shift + (0 if x_zero is None else int(np.asarray(x_zero).reshape(())))


def _to_u8(x: np.ndarray, out=None) -> np.ndarray:
    """int8 -> uint8 by x + 128 (flipping the sign bit), exact with the zero point + 128."""
    return np.bitwise_xor(x.view(U8), np.uint8(0x80), out=out)


def _reference(node: Node, args):
    x, w, w_scale, w_zero, bias, x_scale, x_zero = (list(args) + [None] * 7)[:7]
    w = np.asarray(w)
    k = w.shape[0]
    at = _kernel_attrs(node)
    wz = np.zeros(k, np.int32) if w_zero is None else _vec(w_zero, k, np.int32)
    x = np.asarray(x)
    shift = 128 if x.dtype == S8 else 0
    x = _to_u8(x) if shift else x
    return [qconv2d_ref(x, w, _zero(x_zero, shift), wz, _scale(node, x_scale, w_scale, k),
                        None if bias is None else np.asarray(bias, F32),
                        groups=node.attrs["group"], out_dtype=QCONV_OUT[node.attrs["out"]],
                        **at)]


def _lower(node: Node, ctx):
    x, w, w_scale, w_zero, bias, x_scale, x_zero = _parts(node)
    params = [v for v in (w, w_scale, w_zero, bias) if v is not None]
    if not all(v.is_constant for v in params) or \
            not all(isinstance(d, int) for d in node.outputs[0].shape):
        return None
    k = w.shape[0]
    wz = np.zeros(k, np.int32) if w_zero is None else _vec(w_zero.data, k, np.int32)
    qw = QConvWeight(w.data, wz, node.attrs["group"])
    b = None if bias is None else _vec(bias.data, k, F32)
    flops = 2 * int(np.prod(node.outputs[0].shape)) * int(np.prod(w.shape[1:]))
    attrs = _kernel_attrs(node)
    run_time = [v for v in (x_scale, x_zero) if v is not None and not v.is_constant]
    if (run_time or x.dtype == S8) and all(
            v.producer is not None and v.producer.op is Op.DYNAMIC_QUANTIZE_LINEAR
            for v in run_time):
        step = _general_step(node, ctx, qw, b, attrs, flops)
    elif run_time:
        return None  # parameters from elsewhere (a graph input): the reference
    else:
        scale = _scale(node, None if x_scale is None else x_scale.data,
                       None if w_scale is None else w_scale.data, k)
        step = ctx.registry_step("qconv2d", [x, qw, _zero(None if x_zero is None else
                                                          x_zero.data), scale, b],
                                 attrs, flops=flops)
    if step.backend == "c":
        from ...backends import c_qconv
        c_qconv.prepack(qw)  # pack now, at plan time
    return step


def _general_step(node: Node, ctx, qw, b, attrs, flops):
    """x's scale or zero point computed at run time (a DynamicQuantizeLinear's
    outputs, as ``quantize_dynamic`` writes it), or an int8 x: the kernel is
    chosen at plan time; per run the epilogue scale ``x_scale * w_scale`` is
    formed (K multiplications) and an int8 x shifted to uint8 into a scratch
    slot (one pass over x, small beside the convolution)."""
    from ...plan.select import Step
    from ..ir import Value
    x, w, w_scale, _, _, x_scale, x_zero = _parts(node)
    k = w.shape[0]
    out_kind = node.attrs["out"]
    ws = None if out_kind == "int32" else _vec(w_scale.data, k, F32)
    shift = 128 if x.dtype == S8 else 0
    u8_view = Value(f"{node.name}.x_u8", tuple(x.shape), U8)
    sample = ctx.registry_step("qconv2d", [u8_view if shift else x, qw, 0,
                                           None if ws is None else ws.copy(), b],
                               attrs, flops=flops)
    kernel = sample.fn
    args = [x] + [v for v in (x_scale, x_zero) if v is not None]
    has_scale, has_zero = x_scale is not None, x_zero is not None

    def run(xa, *params, out, scratch=None):
        sx = params[0] if has_scale else None
        zx = params[-1] if has_zero else None
        scale = None if ws is None else np.multiply(np.float32(np.asarray(sx).reshape(())), ws,
                                                    dtype=F32)
        if shift:
            xa = _to_u8(xa, out=scratch[0])
        kernel(xa, qw, _zero(zx, shift), scale, b, out=out, **attrs)

    kind = ("[int8 x]" if shift else "") + \
        ("[run-time x_scale]" if any(v is not None and not v.is_constant
                                     for v in (x_scale, x_zero)) else "")
    return Step(node, run, args, {}, sample.backend, f"{sample.kernel}{kind}", flops=flops,
                scratch=(u8_view,) if shift else ())


define(Op.QCONV, shape=_shape, reference=_reference, lower=_lower)
