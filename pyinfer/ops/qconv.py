"""qconv2d: int8 NCHW convolution through the u8 x s8 -> s32 GEMM.

    qconv2d(x_u8, w_s8, x_zero, w_zero, x_scale, w_scale, bias=None, stride=1,
            padding=0, dilation=1, groups=1, activation=None, out_scale=None,
            out_zero=None)   -> float32 (N, K, OH, OW), or uint8 requantized

``act(conv(x - x_zero, w - w_zero) * x_scale * w_scale + bias)``: x per tensor,
w per tensor or per output channel (w_zero, w_scale of shape (K,)).  Results
are exact in int32 before the epilogue, which is qgemm's (float32 arithmetic,
QuantizeLinear's rounding for a u8 result).

The ``c`` kernel is im2col + the C int8 GEMM.  The input is copied once to
NHWC, padded with x_zero (so a padded tap adds ``x_zero - x_zero = 0`` after
the GEMM's zero-point correction); for each image and group the windows are
copied into a row-major (OH*OW, KH*KW*C_g) u8 matrix, one tap at a time (each
copy moves C_g contiguous bytes per pixel), multiplied by the group's packed
weight (rows ordered (ky, kx, c) to match) into an (OH*OW, K_g) block, and
that block is transposed into the NCHW output.  Measured on 64 channels
56x56 3x3 (same run): this layout 3.7 ms, a (C*9, OH*OW) matrix read through
its transpose and written through strides 5.5 ms, a row-major NCHW im2col
(3-byte inner copies) 8 ms more for the copy alone.  A 1x1, stride-1,
unpadded convolution multiplies the NHWC input itself.  The kernel is
registered here, next to the op, because it is only a loop over qgemm's.
"""
from __future__ import annotations

import numpy as np

from .. import registry
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


# ---- the c kernel: im2col + the C int8 GEMM ---------------------------------------------------

def im2col(xh: np.ndarray, kh: int, kw: int, stride, dilation, oh: int, ow: int) -> np.ndarray:
    """xh (Hp, Wp, C_g) u8, padded NHWC -> (OH*OW, KH*KW*C_g), rows ordered
    (oy, ox), columns (ky, kx, c)."""
    cg = xh.shape[2]
    t = np.empty((oh, ow, kh, kw, cg), U8)
    for i in range(kh):
        y0 = i * dilation[0]
        for j in range(kw):
            x0 = j * dilation[1]
            t[:, :, i, j] = xh[y0:y0 + (oh - 1) * stride[0] + 1:stride[0],
                               x0:x0 + (ow - 1) * stride[1] + 1:stride[1]]
    return t.reshape(oh * ow, kh * kw * cg)


def _one_gemm(w) -> bool:
    """Depthwise-like (one input channel per group): one GEMM with the
    block-diagonal weight instead of ``groups`` GEMMs of a K_g-column weight
    over KH*KW rows each (64 channels 56x56 3x3 depthwise, same run: 10.4 ms ->
    3.1 ms; ONNX Runtime's direct depthwise kernel: 0.2 ms).  Only while the
    joint k stays within the exact-accumulation limit."""
    k, cg, kh, kw = w.shape
    return w.groups > 1 and cg == 1 and w.groups * kh * kw <= MAX_K


def _c_qconv2d_supports(x, w, x_zero, scale, bias, *, stride, pads, dilation, activation,
                        out_scale, out_zero, out):
    from ..backends import c_quant
    k, cg, kh, kw = w.shape
    depthwise = _one_gemm(w)
    sample = np.empty((1, (w.groups if depthwise else 1) * cg * kh * kw), U8)
    for qw in ((w.block_diagonal(),) if depthwise else w.gemm_weights()):
        why = c_quant._qgemm_supports(sample, qw, x_zero, scale, bias, activation=activation,
                                      out_scale=out_scale, out_zero=out_zero,
                                      out=np.empty((1, 1), out.dtype))
        if why is not None:
            return why
    return None


def _c_qconv2d(x, w, x_zero, scale, bias, *, stride, pads, dilation, activation, out_scale,
               out_zero, out):
    from ..backends import c_quant
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    groups = w.groups
    kg = k // groups
    oh, ow = out.shape[2:]
    target = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    top, left, bottom, right = pads
    direct = (kh, kw) == (1, 1) and stride == (1, 1) and pads == (0, 0, 0, 0)
    xh = np.full((n, h + top + bottom, wd + left + right, c), x_zero, U8)
    xh[:, top:top + h, left:left + wd] = x.transpose(0, 2, 3, 1)
    kw_args = {"activation": activation, "out_scale": out_scale, "out_zero": out_zero}
    if _one_gemm(w):
        block = np.empty((oh * ow, k), out.dtype)
        qw = w.block_diagonal()
        for i in range(n):
            a = xh[i].reshape(h * wd, c) if direct else \
                im2col(xh[i], kh, kw, stride, dilation, oh, ow)
            c_quant.qgemm(a, qw, x_zero, scale, bias, out=block, **kw_args)
            target[i].reshape(k, oh * ow)[...] = block.T
        if target is not out:
            np.copyto(out, target)
        return
    block = np.empty((oh * ow, kg), out.dtype)
    for g, qw in enumerate(w.gemm_weights()):
        chans, outs = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        s = None if scale is None else scale[outs]
        b = None if bias is None else bias[outs]
        for i in range(n):
            if direct:
                a = xh[i].reshape(h * wd, c)[:, chans]  # a strided view, no copy
            else:
                a = im2col(xh[i, :, :, chans], kh, kw, stride, dilation, oh, ow)
            c_quant.qgemm(a, qw, x_zero, s, b, out=block, **kw_args)
            target[i, outs].reshape(kg, oh * ow)[...] = block.T
    if target is not out:
        np.copyto(out, target)


def _register_c() -> None:
    from ..backends import _native
    if _native.lib is not None:
        registry.register("qconv2d", "c", supports=_c_qconv2d_supports,
                          priority=20)(_c_qconv2d)


_register_c()

OPS = {"qconv2d": qconv2d, "qconv_weight": qconv_weight}

__all__ = ["qconv2d", "qconv_weight"]
