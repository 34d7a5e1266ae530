"""The ``c`` backend of qconv2d: csrc/pi_qconv.c, one C call per convolution.

* depthwise-like (one input channel per group, any channel multiplier):
  ``pi_u8s8_dwconv2d``, a direct kernel over row-pair buffers (vpmaddwd of
  two kernel rows at a time, exact for any s8 weight); its weight is packed
  once per ``QConvWeight`` (``pi_u8s8_dwconv2d_pack``).
* any other grouping: ``pi_u8s8_conv2d``, an implicit GEMM that packs the
  int8 GEMM's A panels straight from an NHWC copy of the input and runs the
  GEMM's own micro-kernels on each group's ``QWeight`` (packed once by
  ``c_quant.packed_weight``, so the 7-bit AVX2 kernel applies where the
  weights allow it, exactly as for qgemm).

Kernel signature: pyinfer/backends/numpy_qconv.py.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from . import c_quant
from ._native import Scratch, check, ffi, lib
from .c_gemm import ACTIVATION_CODES
from .numpy_qconv import QConvWeight
from .numpy_quant import F32, S32, U8

PRIORITY = 20
_OUT_KIND = {S32: lib.PI_QOUT_S32, F32: lib.PI_QOUT_F32, U8: lib.PI_QOUT_U8}
_workspace = Scratch()  # this family's per-thread C scratch


def is_depthwise(w: QConvWeight) -> bool:
    """One input channel per group: the direct kernel."""
    return w.shape[1] == 1


def _dw_pack(w: QConvWeight) -> np.ndarray:
    k, _, kh, kw = w.shape
    nbytes = lib.pi_u8s8_dwconv2d_packed_bytes(k, kh, kw)
    packed = np.empty(nbytes, np.uint8)
    wc = np.ascontiguousarray(w.w)
    check(lib.pi_u8s8_dwconv2d_pack(k, kh, kw, ffi.cast("const signed char *", wc.ctypes.data),
                                    ffi.cast("const int *", w.w_zero.ctypes.data),
                                    ffi.cast("void *", packed.ctypes.data), nbytes),
          "qconv2d pack")
    return packed


def _group_pointers(w: QConvWeight):
    """The groups' packed GEMM weights (for the micro-kernel in force) as the
    C array of pointers pi_u8s8_conv2d takes; cached per packing."""
    packs = [c_quant.packed_weight(gw) for gw in w.gemm_weights()]
    key = ("c", "group_pointers") + tuple(p.ctypes.data for p in packs)

    def make(_):
        return ffi.new("void *[]", [ffi.cast("void *", p.ctypes.data) for p in packs])
    return w.packed(key, make)


def prepack(w: QConvWeight) -> None:
    """Pack what the C kernel will use for ``w`` now (at plan time), not on its first run."""
    if is_depthwise(w):
        w.packed(("c", "dw"), _dw_pack)
    else:
        _group_pointers(w)


def _supports(x, w, x_zero, scale, bias, *, stride, pads, dilation, activation, out_scale,
              out_zero, out):
    if activation not in ACTIVATION_CODES:
        return f"activation {activation!r} has no C epilogue"
    if out.dtype not in _OUT_KIND:
        return f"output dtype {out.dtype} is not int32, float32 or uint8"
    if is_depthwise(w):
        return None
    sample = np.empty((1, int(np.prod(w.shape[1:]))), U8)
    for gw in w.gemm_weights():  # a forced 7-bit micro-kernel refuses 8-bit weights
        why = c_quant._qgemm_supports(sample, gw, x_zero, scale, bias, activation=activation,
                                      out_scale=out_scale, out_zero=out_zero,
                                      out=np.empty((1, 1), out.dtype))
        if why is not None:
            return why
    return None


def _shape(x, w, stride, pads, dilation, out):
    s = ffi.new("pi_conv2d_shape *")
    s.n, s.c, s.h, s.w = x.shape
    s.k, _, s.kh, s.kw = w.shape
    s.oh, s.ow = out.shape[2:]
    s.sh, s.sw = stride
    s.dh, s.dw = dilation
    s.pad_t, s.pad_l = pads[0], pads[1]
    s.groups = w.groups
    return s


def _f32(a):
    if a is None:
        return ffi.NULL
    if not (a.dtype == F32 and a.flags.c_contiguous):
        raise AssertionError("qconv2d: scale and bias arrive as contiguous float32")
    return ffi.cast("const float *", a.ctypes.data)


@register("qconv2d", "c", supports=_supports, priority=PRIORITY)
def qconv2d(x, w, x_zero, scale, bias, *, stride, pads, dilation, activation, out_scale,
            out_zero, out):
    target = out if out.flags.aligned else np.empty(out.shape, out.dtype)
    s = _shape(x, w, stride, pads, dilation, target)
    xp = ffi.cast("const unsigned char *", x.ctypes.data)
    common = (int(x_zero),)
    tail = (_OUT_KIND[target.dtype], _f32(scale), _f32(bias), ACTIVATION_CODES[activation],
            float(out_scale) if out_scale is not None else 1.0,
            int(out_zero) if out_zero is not None else 0,
            ffi.cast("void *", target.ctypes.data), *target.strides)
    if is_depthwise(w):
        packed = w.packed(("c", "dw"), _dw_pack)
        ws, ws_size = _workspace(lib.pi_u8s8_dwconv2d_workspace_bytes(s))
        status = lib.pi_u8s8_dwconv2d(s, xp, *x.strides, *common,
                                      ffi.cast("const void *", packed.ctypes.data), *tail,
                                      ws, ws_size)
    else:
        ptrs = _group_pointers(w)
        ws, ws_size = _workspace(lib.pi_u8s8_conv2d_workspace_bytes(s, ptrs))
        status = lib.pi_u8s8_conv2d(s, xp, *x.strides, *common, ptrs, *tail, ws, ws_size)
    check(status, "qconv2d")
    if target is not out:
        np.copyto(out, target)
