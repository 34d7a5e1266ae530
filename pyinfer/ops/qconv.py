"""qconv2d: int8 NCHW convolution through the u8 x s8 -> s32 GEMM.

    qconv2d(x_u8, w_s8, x_zero, w_zero, x_scale, w_scale, bias=None, stride=1,
            padding=0, dilation=1, groups=1, activation=None, out_scale=None,
            out_zero=None)   -> float32 (N, K, OH, OW), or uint8 requantized

``act(conv(x - x_zero, w - w_zero) * x_scale * w_scale + bias)``: x per tensor,
w per tensor or per output channel (w_zero, w_scale of shape (K,)).  Results
are exact in int32 before the epilogue, which is qgemm's (float32 arithmetic,
QuantizeLinear's rounding for a u8 result).

The ``c`` kernels (pyinfer/backends/c_qconv.py, csrc/pi_qconv.c) are one C
call per convolution: a direct kernel for depthwise-like convolutions (one
input channel per group) and an implicit GEMM over the int8 GEMM's packed
weights and micro-kernels for the rest (A panels packed straight from an NHWC
copy of the input, tiles stored into the NCHW output).
"""
from __future__ import annotations

import numpy as np

from ..backends import numpy_qconv  # noqa: F401  (registers the reference kernel)
from ..backends.numpy_qconv import QConvWeight
from ..backends.numpy_quant import S8, U8
from ..errors import ShapeError, UnsupportedError, shape_error
from ._dispatch import run
from .conv import AUTO_PADS, check_geometry, normalize_pads, pair, resolve_auto_pad
from .quant import MAX_K, _int_array, _scalar_zero, _zero_vector, epilogue_args


def qconv_weight(w_s8, w_zero=0, groups=1) -> QConvWeight:
    """An s8 weight (K, C/groups, KH, KW) with its zero point (scalar or (K,))
    as a ``QConvWeight``: pass it to ``qconv2d`` as ``w_s8`` and its GEMM
    weights are made (and packed) once, not per call."""
    op = "qconv_weight"
    w = _int_array(w_s8, "w_s8", op, (S8,))
    if w.ndim != 4:
        raise shape_error("w_s8", "a 4-d array (K, C/groups, KH, KW)", w.shape, op)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1 \
            or w.shape[0] % groups:
        raise shape_error("groups", f"an int >= 1 dividing the {w.shape[0]} output channels",
                          repr(groups), op)
    wz = _zero_vector(0 if w_zero is None else w_zero, w.shape[0], "w_zero", op, -128, 127)
    return QConvWeight(w, wz, int(groups))


def qconv2d(x_u8, w_s8, x_zero, w_zero, x_scale, w_scale, bias=None, stride=1, padding=0,
            dilation=1, groups=1, activation=None, out_scale=None, out_zero=None, out=None,
            backend=None) -> np.ndarray:
    """Int8 2-D convolution of ``x_u8`` (N, C, H, W) uint8 with ``w_s8``
    (K, C/groups, KH, KW) int8 (or a ``qconv_weight``), accumulated exactly in
    int32.  x_zero: scalar in [0, 255]; w_zero, w_scale: scalar or (K,);
    x_scale: scalar.  padding: int, (pad_h, pad_w), (top, left, bottom, right)
    or an ONNX auto_pad name.  Result float32, or with ``out_scale`` (and
    ``out_zero``, default 0) requantized to uint8."""
    op = "qconv2d"
    x = _int_array(x_u8, "x_u8", op, (U8,))
    if x.ndim != 4:
        raise shape_error("x_u8", "a 4-d array (NCHW)", x.shape, op)
    if isinstance(w_s8, QConvWeight):
        qw = w_s8
        if qw.groups != groups:
            raise ShapeError(f"{op}: argument 'groups' ({groups}) differs from the groups the "
                             f"qconv_weight was built with ({qw.groups})")
        if w_zero is not None and not np.array_equal(
                np.broadcast_to(np.asarray(w_zero, np.int64).reshape(-1), qw.w_zero.shape),
                qw.w_zero):
            raise ShapeError(f"{op}: argument 'w_zero' differs from the zero point the "
                             "qconv_weight was built with")
    else:
        w = _int_array(w_s8, "w_s8", op, (S8,))
        if w.ndim != 4:
            raise shape_error("w_s8", "a 4-d array (K, C/groups, KH, KW)", w.shape, op)
        qw = None
        wshape = w.shape
    wshape = qw.shape if qw is not None else wshape
    stride = pair(stride, "stride", op)
    dilation = pair(dilation, "dilation", op)
    if isinstance(padding, str):
        if padding.upper() not in AUTO_PADS[1:]:
            raise shape_error("padding", f"one of {AUTO_PADS[1:]}", repr(padding), op)
        pads = resolve_auto_pad(padding.upper(), x.shape[2:], wshape[2:], stride, dilation)
    else:
        pads = normalize_pads(padding, "padding", op)
    oh, ow = check_geometry(x.shape, wshape, stride, pads, dilation, groups, op,
                            x_name="x_u8", w_name="w_s8")
    groups = int(groups)
    k = wshape[0]
    kk = wshape[1] * wshape[2] * wshape[3]
    if kk > MAX_K:
        raise UnsupportedError(f"{op}: C/groups*KH*KW = {kk} > {MAX_K}: int32 accumulation "
                               "would not be exact")
    if qw is None:
        qw = QConvWeight(w, _zero_vector(0 if w_zero is None else w_zero, k, "w_zero", op,
                                         -128, 127), groups)
    xz = _scalar_zero(x_zero, "x_zero", op, 0, 255)
    scale, bias, os_, oz, out_dtype = epilogue_args(
        op, ("x_scale", x_scale), ("w_scale", w_scale), k, bias, activation, out_scale, out_zero)
    attrs = {"stride": stride, "pads": pads, "dilation": dilation, "activation": activation,
             "out_scale": os_, "out_zero": oz}
    return run(op, backend, (x, qw, xz, scale, bias), attrs, out, (x.shape[0], k, oh, ow),
               out_dtype, alias_ok=False)


OPS = {"qconv2d": qconv2d, "qconv_weight": qconv_weight}

__all__ = ["qconv2d", "qconv_weight"]
