"""The reference of the int8 family: quantize, dequantize, min/max and the
u8 x s8 GEMM with its epilogue, written plainly in NumPy (STYLE.md 3).

Semantics are ONNX's (QuantizeLinear, DequantizeLinear, MatMulInteger):

* quantize: ``saturate(rint(x / scale) + zero)``, the division in float32,
  ``rint`` rounding half to even, saturation to the output type's range; NaN
  gives the range's low end (the spec is silent; ONNX Runtime does this).
* dequantize: ``float32(x - zero) * scale``.
* GEMM: ``acc = (a - a_zero) @ (b - b_zero)`` exactly (int64 here, int32 in the
  kernels, which is exact for k <= 32768); then, for a float result,
  ``float32(acc) * scale[j] + bias[j]`` (two float32 roundings, no FMA) and the
  activation; for a u8 result that float value quantized as above.
* Per-row (per-token) dynamic quantization of a float GEMM input
  (``qgemm_f32(..., x_granularity="row")``): row i gets DynamicQuantizeLinear's
  scale ``s[i]`` and zero point ``z[i]`` from its own range, and the GEMM's
  ``a_zero`` and ``scale`` become ``z[i]`` and ``float32(s[i] * w_scale[j])``
  (that product rounded once, then times ``float32(acc)``: the order the C
  epilogue uses, and the per-tensor order with one ``s``).

The C kernels match this bit for bit (the activations other than relu to
their vectorized approximations' accuracy).  ``QWeight`` is the weight operand
the GEMM kernels share: the s8 matrix, its zero points and the packed copies
the C backend makes once per micro-kernel.
"""
from __future__ import annotations

import threading

import numpy as np

from ..registry import register
from .numpy_ref import UNARY

U8, S8, S32, F32 = (np.dtype(t) for t in (np.uint8, np.int8, np.int32, np.float32))
QRANGE = {U8: (0, 255), S8: (-128, 127)}


class PackedForms:
    """The forms backends derive from a constant weight (packed layouts), each
    made once per key by ``packed(key, make)`` and kept; safe when plans of
    several threads ask for the same one."""

    __slots__ = ("_packed", "_lock")

    def __init__(self):
        self._packed: dict = {}
        self._lock = threading.Lock()

    def packed(self, key, make):
        """``make(self)``, made the first time ``key`` is asked for."""
        p = self._packed.get(key)
        if p is None:
            with self._lock:
                p = self._packed.get(key)
                if p is None:
                    p = make(self)
                    self._packed[key] = p
        return p


class QWeight(PackedForms):
    """An s8 weight ``b`` (K, N) with per-column zero points ``b_zero`` (N,)
    int32, and the packed forms backends derive from it.  Read-only once built."""

    __slots__ = ("b", "b_zero")

    def __init__(self, b: np.ndarray, b_zero: np.ndarray):
        super().__init__()
        self.b = b
        self.b_zero = b_zero

    @property
    def shape(self) -> tuple:
        return self.b.shape


def quantize_ref(x: np.ndarray, scale, zero, dtype) -> np.ndarray:
    """x float32 (already broadcast-ready with scale/zero) -> dtype (u8 or s8)."""
    lo, hi = QRANGE[np.dtype(dtype)]
    x = np.asarray(x, F32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.rint(x / np.asarray(scale, F32))
    # NaN saturates to lo whatever the zero point, as the C kernels' clamp
    # (x86 max/min return the non-NaN operand) and ONNX Runtime do
    q = np.clip(np.nan_to_num(q, nan=-2.0**30), -2.0**30, 2.0**30).astype(np.int64)
    return np.clip(q + np.asarray(zero, np.int64), lo, hi).astype(dtype)


def dequantize_ref(x: np.ndarray, scale, zero) -> np.ndarray:
    d = np.asarray(x, np.int64) - np.asarray(zero, np.int64)
    return d.astype(F32) * np.asarray(scale, F32)


def _per_channel(x, scale, zero):
    """(outer, C, inner) x with (C,) parameters as broadcastable views."""
    return scale.reshape(1, -1, 1), (0 if zero is None else zero.reshape(1, -1, 1))


@register("quantize_linear", "numpy")
def quantize_linear(x, scale, zero, *, out):
    """x (outer, C, inner) float32 C-contiguous; scale (C,) float32; zero (C,)
    int32 or None; out u8/s8 of x's shape."""
    s, z = _per_channel(x, scale, zero)
    out[...] = quantize_ref(x, s, z, out.dtype)


@register("dequantize_linear", "numpy")
def dequantize_linear(x, scale, zero, *, out):
    """x (outer, C, inner) u8/s8/int32; out float32."""
    s, z = _per_channel(x, scale, zero)
    out[...] = dequantize_ref(x, s, z)


@register("minmax", "numpy")
def minmax(x, *, out):
    """out (2,) float32 = (min, max) of x ignoring NaN (inf, -inf if all NaN)."""
    finite = x[~np.isnan(x)]
    out[0] = finite.min() if finite.size else np.inf
    out[1] = finite.max() if finite.size else -np.inf


def qgemm_ref(a, b, a_zero, b_zero, scale, bias, activation, out_scale, out_zero, out_dtype):
    """The whole int8 GEMM in NumPy; returns an array of ``out_dtype``
    (int32: the corrected accumulator; float32: dequantized; uint8: requantized).
    ``a_zero`` a scalar or (M, 1) (per row), ``scale`` (N,) or (M, N)."""
    acc = (a.astype(np.int64) - np.asarray(a_zero, np.int64)) @ \
        (b.astype(np.int64) - b_zero.astype(np.int64))
    acc = acc.astype(np.int32)  # exact for k <= 32768 (|acc| < 2^31)
    if np.dtype(out_dtype) == S32:
        return acc
    f = acc.astype(F32) * scale.astype(F32)
    if bias is not None:
        f = f + bias.astype(F32)
    if activation is not None:
        f = np.asarray(UNARY[activation](f), F32)
    if np.dtype(out_dtype) == F32:
        return f
    return quantize_ref(f, np.float32(out_scale), int(out_zero), U8)


def dynamic_params(lo: float, hi: float):
    """ONNX DynamicQuantizeLinear's (scale, zero_point) for a range [lo, hi]
    (float32 arithmetic): the range is widened to hold 0, scale = range / 255,
    zero_point = saturate(rint(0 - lo / scale)).  A zero range gives scale 1
    (ONNX Runtime's choice; the spec would divide by zero)."""
    lo = np.float32(min(np.float32(lo), np.float32(0)))
    hi = np.float32(max(np.float32(hi), np.float32(0)))
    scale = np.float32(1) if hi == lo else np.float32(hi - lo) / np.float32(255)
    with np.errstate(invalid="ignore"):
        zp = np.clip(np.rint(np.float32(0) - lo / scale), 0, 255)
    return np.float32(scale), np.uint8(0 if np.isnan(zp) else zp)


def dynamic_params_rows(x: np.ndarray):
    """``dynamic_params`` of each row of x (M, K) float32 from that row's range
    (NaN ignored; an all-NaN row has no range: scale 1, zero point 0), as
    (scale (M,) float32, zero (M,) int32), the same float32 operations
    vectorized."""
    x = np.asarray(x, F32)
    nan = np.isnan(x)
    lo = np.where(nan, np.float32(np.inf), x).min(axis=1, initial=np.float32(np.inf))
    hi = np.where(nan, np.float32(-np.inf), x).max(axis=1, initial=np.float32(-np.inf))
    lo = np.minimum(lo, np.float32(0)).astype(F32)
    hi = np.maximum(hi, np.float32(0)).astype(F32)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.where(hi == lo, np.float32(1), (hi - lo) / np.float32(255)).astype(F32)
        zp = np.clip(np.rint(np.float32(0) - lo / scale), 0, 255)
    return scale, np.where(np.isnan(zp), 0, zp).astype(np.int32)


@register("qgemm", "numpy")
def qgemm(a, w, a_zero, scale, bias, *, activation, out_scale, out_zero, out):
    """out (M, N) from a (M, K) u8 and w a QWeight; out's dtype picks the
    result: int32, float32, or uint8 (requantized with out_scale, out_zero)."""
    out[...] = qgemm_ref(a, w.b, a_zero, w.b_zero, scale, bias, activation, out_scale, out_zero,
                         out.dtype)


@register("qgemm_f32", "numpy")
def qgemm_f32(x, w, x_scale, x_zero, w_scale, bias, *, activation, out_scale, out_zero, out,
              x_granularity="tensor"):
    """The int8 GEMM of a float activation: x (M, K) float32 quantized to u8
    per tensor -- by (x_scale, x_zero), or with both None by the parameters
    DynamicQuantizeLinear computes from x's range (NaN ignored) -- then
    ``qgemm`` with scale ``float32(x_scale * w_scale[j])``; w_scale (N,)
    float32, None for an int32 result.  ``x_granularity="row"`` (x_scale and
    x_zero None): each row by the parameters of its own range, then the
    per-row epilogue (module docstring)."""
    if x_granularity == "row":
        if x_scale is not None or x_zero is not None:
            raise ValueError("qgemm_f32: x_granularity 'row' takes no x_scale / x_zero")
        xs, xz = dynamic_params_rows(x)
        a = quantize_ref(x, xs[:, None], xz[:, None], U8)
        scale = None if w_scale is None else \
            np.multiply(xs[:, None], np.asarray(w_scale, F32)[None, :], dtype=F32)
        out[...] = qgemm_ref(a, w.b, xz[:, None], w.b_zero, scale, bias, activation, out_scale,
                             out_zero, out.dtype)
        return
    if x_scale is None:
        finite = x[~np.isnan(x)]
        x_scale, x_zero = dynamic_params(finite.min() if finite.size else np.inf,
                                         finite.max() if finite.size else -np.inf)
    a = quantize_ref(x, np.float32(x_scale), int(x_zero), U8)
    scale = None if w_scale is None else np.multiply(np.float32(x_scale), w_scale, dtype=F32)
    out[...] = qgemm_ref(a, w.b, int(x_zero), w.b_zero, scale, bias, activation, out_scale,
                         out_zero, out.dtype)
