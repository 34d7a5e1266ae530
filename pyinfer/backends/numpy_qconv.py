"""The reference of the int8 convolution: a direct NCHW convolution of
``(x - x_zero)`` with ``(w - w_zero)`` accumulated exactly in integers, then the
int8 GEMM's epilogue (pyinfer/backends/numpy_quant.py) applied per output channel.

* accumulate: the input is padded with ``x_zero`` (so a padded tap contributes
  ``x_zero - x_zero = 0``), and each kernel tap's strided window is multiplied
  by that tap's ``(K_g, C_g)`` weight matrix in int64; the sum fits int32 for
  ``C_g * KH * KW <= 32768`` (the GEMM's k limit).
* epilogue (exactly ``qgemm_ref``'s): ``float32(acc) * scale[k] + bias[k]`` (two
  float32 roundings, no FMA), the activation, and for a u8 result
  QuantizeLinear's ``saturate(rint(v / out_scale) + out_zero)``.

The weight operand is a ``QConvWeight``: the s8 (K, C/groups, KH, KW) weight,
its per-channel zero points, and -- made once and kept -- the per-group GEMM
weights (``QWeight`` of (C_g*KH*KW, K_g)) the implicit-GEMM kernel multiplies
with, and whatever packed forms a backend derives (``packed(key, make)``).
Kernel signature (every backend)::

    qconv2d(x, w, x_zero, scale, bias, *, stride, pads, dilation, activation,
            out_scale, out_zero, out)

x (N, C, H, W) uint8; w a QConvWeight; x_zero int; scale (K,) float32 (None
for an int32 result); bias (K,) float32 or None; pads (top, left, bottom,
right); out (N, K, OH, OW) whose dtype picks the result: int32 (the corrected
accumulator), float32, or uint8 (requantized).
"""
from __future__ import annotations


import numpy as np

from ..registry import register
from .numpy_quant import F32, S32, S8, U8, PackedForms, QWeight, quantize_ref
from .numpy_ref import UNARY


class QConvWeight(PackedForms):
    """An s8 conv weight ``w`` (K, C/groups, KH, KW) with zero points ``w_zero``
    (K,) int32, split in ``groups``, and the packed forms backends derive from
    it.  Read-only once built."""

    __slots__ = ("w", "w_zero", "groups")

    def __init__(self, w: np.ndarray, w_zero: np.ndarray, groups: int):
        super().__init__()
        w = np.array(w, S8, copy=True)
        w.setflags(write=False)
        self.w = w
        self.w_zero = np.ascontiguousarray(w_zero, np.int32)
        self.groups = int(groups)

    @property
    def shape(self) -> tuple:
        return self.w.shape

    def gemm_weights(self) -> tuple:
        """One ``QWeight`` per group: b = w_g as (K_g, KH, KW, C_g) reshaped to
        (K_g, KH*KW*C_g) and transposed, so its rows are ordered (ky, kx, c)
        like a row of the NHWC windows csrc/pi_qconv.c packs into A panels.  Made
        once; the C backend packs each once more inside it."""
        return self.packed("gemm_weights", _split_groups)


def _split_groups(qw: QConvWeight) -> tuple:
    k = qw.w.shape[0]
    kg = k // qw.groups
    parts = []
    for g in range(qw.groups):
        wg = qw.w[g * kg:(g + 1) * kg].transpose(0, 2, 3, 1)
        b = np.ascontiguousarray(wg.reshape(kg, -1).T)
        b.setflags(write=False)
        parts.append(QWeight(b, np.ascontiguousarray(qw.w_zero[g * kg:(g + 1) * kg])))
    return tuple(parts)


def output_hw(x_shape, w_shape, stride, pads, dilation) -> tuple:
    h, wd = x_shape[2:]
    kh, kw = w_shape[2:]
    oh = (h + pads[0] + pads[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return oh, ow


def qconv2d_acc(x, w, x_zero, w_zero, *, stride, pads, dilation, groups) -> np.ndarray:
    """The exact accumulator ``conv(x - x_zero, w - w_zero)`` as int32 (N, K, OH, OW)."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    top, left, bottom, right = pads
    oh, ow = output_hw(x.shape, w.shape, stride, pads, dilation)
    xp = np.full((n, c, h + top + bottom, wd + left + right), int(x_zero), np.int64)
    xp[:, :, top:top + h, left:left + wd] = x
    xp -= int(x_zero)
    wz = np.asarray(w, np.int64) - np.asarray(w_zero, np.int64).reshape(-1, 1, 1, 1)
    kg = k // groups
    acc = np.zeros((n, k, oh, ow), np.int64)
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = wz[g * kg:(g + 1) * kg]
        for i in range(kh):
            for j in range(kw):
                window = xg[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                            j * dw:j * dw + (ow - 1) * sw + 1:sw]
                acc[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", window, wg[:, :, i, j])
    return acc.astype(np.int32)  # exact for C_g*KH*KW <= 32768


def qconv2d_ref(x, w, x_zero, w_zero, scale, bias, *, stride, pads, dilation, groups,
                activation, out_scale, out_zero, out_dtype) -> np.ndarray:
    """The whole int8 convolution; returns ``out_dtype`` (int32, float32, uint8)."""
    acc = qconv2d_acc(x, w, x_zero, w_zero, stride=stride, pads=pads, dilation=dilation,
                      groups=groups)
    if np.dtype(out_dtype) == S32:
        return acc
    f = acc.astype(F32) * np.asarray(scale, F32).reshape(1, -1, 1, 1)
    if bias is not None:
        f = f + np.asarray(bias, F32).reshape(1, -1, 1, 1)
    if activation is not None:
        f = np.asarray(UNARY[activation](f), F32)
    if np.dtype(out_dtype) == F32:
        return f
    return quantize_ref(f, np.float32(out_scale), int(out_zero), U8)


@register("qconv2d", "numpy")
def qconv2d(x, w, x_zero, scale, bias, *, stride, pads, dilation, activation, out_scale,
            out_zero, out):
    out[...] = qconv2d_ref(x, w.w, x_zero, w.w_zero, scale, bias, stride=stride, pads=pads,
                           dilation=dilation, groups=w.groups, activation=activation,
                           out_scale=out_scale, out_zero=out_zero, out_dtype=out.dtype)
