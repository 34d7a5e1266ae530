"""Quantization ops (ONNX semantics) and the int8 GEMM.

    quantize_linear(x, scale, zero_point=None, axis=1)        float -> u8/s8
    dequantize_linear(x, scale, zero_point=None, axis=1)      u8/s8/int32 -> float32
    dynamic_quantize_linear(x)                                -> (u8, scale, zero_point)
    qgemm(a_u8, b_s8, a_zero, b_zero, a_scale, b_scale, bias=None,
          out_scale=None, out_zero=None, activation=None)     -> float32, or u8 requantized
    matmul_integer(a, b, a_zero_point=None, b_zero_point=None) -> int32
    qweight(b_s8, b_zero=0)                                   a weight packed once, for qgemm

Rounding is half to even, results saturate to the output type, and quantization
arithmetic is float32 (x / scale), as ONNX QuantizeLinear specifies; float64
inputs are rounded to float32 first.  The GEMM accumulates exactly in int32
(k <= 32768).  Kernel signatures are in pyinfer/backends/numpy_quant.py.
"""
from __future__ import annotations

import numpy as np

from ..backends import numpy_quant  # noqa: F401  (registers the reference kernels)
from ..backends.numpy_quant import F32, QRANGE, S32, S8, U8, QWeight, dynamic_params
from ..backends.numpy_ref import ACTIVATIONS
from ..errors import ShapeError, UnsupportedError, dtype_error, shape_error
from ._args import check_backend, check_out, normalize_axis
from ._dispatch import run

MAX_K = 32768


# ---- argument helpers -------------------------------------------------------------

def _array(x, name: str, op: str) -> np.ndarray:
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if not arr.flags.aligned or arr.dtype.byteorder not in "=|":
        arr = np.array(arr, dtype=arr.dtype.newbyteorder("="))
    return arr


def _float32(x, name: str, op: str) -> np.ndarray:
    arr = _array(x, name, op)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise dtype_error(name, "float32 or float64", arr.dtype, op)
    return np.asarray(arr, F32, order="C")  # keeps 0-d (ascontiguousarray would not)


def _int_array(x, name: str, op: str, dtypes) -> np.ndarray:
    arr = _array(x, name, op)
    if arr.dtype not in dtypes:
        raise dtype_error(name, " or ".join(str(d) for d in dtypes), arr.dtype, op)
    return arr


def _params(scale, zero, x_shape, axis, op, zero_dtypes, scale_name, zero_name):
    """(scale (C,) float32, zero (C,) int32 or None, outer, C, inner) for the
    per-tensor (scalar scale) or per-axis (1-d scale) form of ONNX."""
    s = _float32(scale, scale_name, op)
    if s.ndim > 1 or (s.ndim == 1 and s.size != 1 and len(x_shape) == 0):
        raise shape_error(scale_name, "a scalar or a 1-d array", s.shape, op)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ShapeError(f"{op}: argument '{scale_name}' expected finite values > 0, "
                         f"received {s.reshape(-1)[:4]}")
    z = None
    if zero is not None:
        z = _int_array(zero, zero_name, op, zero_dtypes)
        if z.shape != s.shape:
            raise shape_error(zero_name, f"the shape of '{scale_name}' {s.shape}", z.shape, op)
    if s.size == 1:  # per-tensor (a 1-element per-axis scale is the same thing)
        n = int(np.prod(x_shape, dtype=np.int64))
        return s.reshape(1), None if z is None else z.astype(np.int32).reshape(1), 1, 1, n
    ax = normalize_axis(axis, len(x_shape), op)
    if s.size != x_shape[ax]:
        raise shape_error(scale_name, f"{x_shape[ax]} values (x.shape[{ax}] for axis={axis})",
                          s.shape, op)
    outer = int(np.prod(x_shape[:ax], dtype=np.int64))
    inner = int(np.prod(x_shape[ax + 1:], dtype=np.int64))
    return (np.ascontiguousarray(s), None if z is None else np.ascontiguousarray(z, np.int32),
            outer, s.size, inner)


# ---- quantize / dequantize -------------------------------------------------------------

def quantize_linear(x, scale, zero_point=None, axis=1, dtype=None, out=None,
                    backend=None) -> np.ndarray:
    """ONNX QuantizeLinear: ``saturate(rint(x / scale) + zero_point)``.  scale
    (and zero_point) scalar for per-tensor or 1-d along ``axis``; the result is
    zero_point's dtype (uint8 or int8), else ``dtype``, else uint8."""
    op = "quantize_linear"
    xf = _float32(x, "x", op)
    if zero_point is not None:
        zdt = _int_array(zero_point, "zero_point", op, (U8, S8)).dtype
        if dtype is not None and np.dtype(dtype) != zdt:
            raise dtype_error("dtype", f"{zdt} (the dtype of zero_point)", np.dtype(dtype), op)
        dtype = zdt
    dtype = np.dtype(dtype or U8)
    if dtype not in QRANGE:
        raise dtype_error("dtype", "uint8 or int8", dtype, op)
    s, z, outer, ch, inner = _params(scale, zero_point, xf.shape, axis, op, (U8, S8),
                                     "scale", "zero_point")
    result = run(op, backend, (xf.reshape(outer, ch, inner), s, z), {}, None,
                 (outer, ch, inner), dtype, alias_ok=False).reshape(xf.shape)
    if out is None:
        return result
    check_out(out, xf.shape, dtype, op)
    np.copyto(out, result)
    return out


def dequantize_linear(x, scale, zero_point=None, axis=1, out=None, backend=None) -> np.ndarray:
    """ONNX DequantizeLinear: ``float32(x - zero_point) * scale``; x uint8, int8
    or int32 (zero_point of x's dtype; none for int32)."""
    op = "dequantize_linear"
    xi = np.ascontiguousarray(_int_array(x, "x", op, (U8, S8, S32)))
    if zero_point is not None:
        zp = _int_array(zero_point, "zero_point", op, (xi.dtype,))
        if xi.dtype == S32 and np.any(zp != 0):
            raise ShapeError(f"{op}: argument 'zero_point' must be 0 for int32 x (ONNX)")
    s, z, outer, ch, inner = _params(scale, zero_point, xi.shape, axis, op, (xi.dtype,),
                                     "scale", "zero_point")
    result = run(op, backend, (xi.reshape(outer, ch, inner), s, z), {}, None,
                 (outer, ch, inner), F32, alias_ok=False).reshape(xi.shape)
    if out is None:
        return result
    check_out(out, xi.shape, F32, op)
    np.copyto(out, result)
    return out


def dynamic_quantize_linear(x, out=None, backend=None):
    """ONNX DynamicQuantizeLinear: ``(y uint8, y_scale float32, y_zero_point
    uint8)`` with the scale and zero point computed from x's range; ``out``
    receives y."""
    op = "dynamic_quantize_linear"
    xf = _float32(x, "x", op)
    check_backend(backend, op)
    if xf.size == 0:
        raise ShapeError(f"{op}: argument 'x' expected at least one element, received shape "
                         f"{xf.shape}")
    mm = run("minmax", backend, (xf.reshape(-1),), {}, None, (2,), F32, alias_ok=False)
    if not (np.isfinite(mm[0]) and np.isfinite(mm[1])):
        raise ShapeError(f"{op}: argument 'x' expected finite values, received range "
                         f"[{mm[0]}, {mm[1]}]")
    scale, zp = dynamic_params(mm[0], mm[1])
    y = quantize_linear(xf, scale, zp, out=out, backend=backend)
    return y, np.array(scale, F32), np.array(zp, U8)


# ---- int8 GEMM ------------------------------------------------------------------------------

def qweight(b, b_zero=0) -> QWeight:
    """An s8 weight (K, N) with its zero point (scalar or (N,) int8/int) as a
    ``QWeight``: pass it to ``qgemm`` as ``b`` and it is packed once, not per call."""
    op = "qweight"
    b = _int_array(b, "b", op, (S8,))
    if b.ndim != 2:
        raise shape_error("b", "a 2-d array (K, N)", f"{b.ndim}-d {b.shape}", op)
    bz = _zero_vector(b_zero, b.shape[1], "b_zero", op, -128, 127)
    b = np.array(b, copy=True)
    b.setflags(write=False)
    return QWeight(b, bz)


def _zero_vector(z, n, name, op, lo, hi) -> np.ndarray:
    if isinstance(z, bool):
        raise dtype_error(name, "an integer", type(z).__name__, op)
    arr = np.asarray(z)
    if arr.dtype.kind not in "iu":
        raise dtype_error(name, "an integer type", arr.dtype, op)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.size not in (1, n)):
        raise shape_error(name, f"a scalar or ({n},)", arr.shape, op)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ShapeError(f"{op}: argument '{name}' expected values in [{lo}, {hi}], received "
                         f"[{arr.min()}, {arr.max()}]")
    return np.ascontiguousarray(np.broadcast_to(arr.astype(np.int32).reshape(-1), (n,)))


def _rows(a: np.ndarray) -> np.ndarray:
    """(..., K) as a 2-d (M, K) view when the strides allow, else a copy."""
    if a.ndim == 2:
        return a
    k = a.shape[-1]
    try:
        return a.view().reshape(-1, k)  # raises instead of copying
    except AttributeError:
        return a.reshape(-1, k)


def _scalar_zero(z, name, op, lo, hi) -> int:
    arr = np.asarray(z)
    if isinstance(z, bool) or arr.dtype.kind not in "iu":
        raise dtype_error(name, "an integer", arr.dtype if not isinstance(z, bool) else "bool", op)
    if arr.size != 1:
        raise shape_error(name, "a scalar (per-tensor zero point)", arr.shape, op)
    v = int(arr.reshape(-1)[0])
    if not lo <= v <= hi:
        raise ShapeError(f"{op}: argument '{name}' expected a value in [{lo}, {hi}], received {v}")
    return v


def _gemm(op, a, w, a_zero, scale, bias, activation, out_scale, out_zero, out_dtype, out,
          backend):
    lead = a.shape[:-1]
    a2 = _rows(a)
    m, k = a2.shape
    n = w.b.shape[1]
    if k > MAX_K:
        raise UnsupportedError(f"{op}: k = {k} > {MAX_K}: int32 accumulation would not be exact")
    if m == 0 or n == 0:
        shape = lead + (n,)
        res = np.zeros(shape, out_dtype)
        if out is not None:
            np.copyto(out, res)
            return out
        return res
    out2 = None
    if out is not None:
        check_out(out, lead + (n,), out_dtype, op)
        try:
            out2 = out.view().reshape(m, n)
        except AttributeError:
            out2 = None
    res = run("qgemm", backend, (a2, w, a_zero, scale, bias),
              {"activation": activation, "out_scale": out_scale, "out_zero": out_zero},
              out2, (m, n), out_dtype, alias_ok=False)
    if out is not None:
        if out2 is None:
            out[...] = res.reshape(out.shape)
        return out
    return res.reshape(lead + (n,))


def qgemm(a_u8, b_s8, a_zero, b_zero, a_scale, b_scale, bias=None, out_scale=None,
          out_zero=None, activation=None, out=None, backend=None) -> np.ndarray:
    """``act((a - a_zero) @ (b - b_zero) * a_scale * b_scale + bias)``, from a
    (..., K) uint8 and b (K, N) int8 (or a ``qweight``), accumulated exactly in
    int32.  Zero points: a_zero scalar in [0, 255]; b_zero and b_scale scalar or
    per output column (N,).  Result float32, or with ``out_scale`` (and
    ``out_zero``, default 0) requantized to uint8 the QuantizeLinear way."""
    op = "qgemm"
    a = _int_array(a_u8, "a_u8", op, (U8,))
    if a.ndim < 1:
        raise shape_error("a_u8", "at least 1 dimension", "a 0-d array", op)
    if isinstance(b_s8, QWeight):
        w = b_s8
        if b_zero is not None and not np.array_equal(
                np.broadcast_to(np.asarray(b_zero, np.int64).reshape(-1), w.b_zero.shape),
                w.b_zero):
            raise ShapeError(f"{op}: argument 'b_zero' differs from the zero point the "
                             "qweight was built with")
    else:
        w = qweight(b_s8, 0 if b_zero is None else b_zero)
    k, n = w.b.shape
    if a.shape[-1] != k:
        raise shape_error("b_s8", f"{a.shape[-1]} rows to match the last dim of a_u8 {a.shape}",
                          w.b.shape, op)
    az = _scalar_zero(a_zero, "a_zero", op, 0, 255)
    scale, bias, os_, oz, out_dtype = epilogue_args(
        op, ("a_scale", a_scale), ("b_scale", b_scale), n, bias, activation, out_scale, out_zero)
    return _gemm(op, a, w, az, scale, bias, activation, os_, oz, out_dtype, out, backend)


def epilogue_args(op, x_scale, w_scale, n, bias, activation, out_scale, out_zero):
    """Check the dequantize/requantize epilogue's arguments of an int8 product
    with ``n`` output channels (qgemm, qconv2d).  ``x_scale``/``w_scale``:
    (argument name, value).  Returns (per-channel scale x_scale * w_scale,
    bias, out_scale, out_zero, output dtype)."""
    (xs_name, xs), (ws_name, ws) = x_scale, w_scale
    sx = _float32(xs, xs_name, op)
    s0 = sx.reshape(-1)[0] if sx.size == 1 else None
    if s0 is None or not 0 < s0 < np.inf:  # NaN fails both comparisons
        raise ShapeError(f"{op}: argument '{xs_name}' expected one finite value > 0, "
                         f"received {sx}")
    sw = _float32(ws, ws_name, op)
    # finite and > 0 from two reductions (a NaN makes min NaN, and NaN > 0 is
    # false); eager calls pay this validation every time
    if sw.ndim > 1 or sw.size not in (1, n) or not (sw.min() > 0 and sw.max() < np.inf):
        raise ShapeError(f"{op}: argument '{ws_name}' expected a scalar or ({n},) of finite "
                         f"values > 0, received shape {sw.shape}")
    scale = np.multiply(s0, sw.reshape(-1), dtype=F32)
    if scale.size != n:
        scale = np.full(n, scale[0], F32)
    if bias is not None:
        bias = _float32(bias, "bias", op)
        if bias.shape != (n,):
            raise shape_error("bias", f"({n},)", bias.shape, op)
        bias = np.ascontiguousarray(bias)
    if activation is not None and activation not in ACTIVATIONS:
        raise shape_error("activation", f"None or one of {ACTIVATIONS}", repr(activation), op)
    if out_scale is None:
        if out_zero is not None:
            raise ShapeError(f"{op}: argument 'out_zero' given without 'out_scale'")
        return scale, bias, None, None, F32
    os_ = np.float32(out_scale)
    if not (np.isfinite(os_) and os_ > 0):
        raise ShapeError(f"{op}: argument 'out_scale' expected a finite value > 0, "
                         f"received {out_scale}")
    oz = 0 if out_zero is None else _scalar_zero(out_zero, "out_zero", op, 0, 255)
    return scale, bias, os_, oz, U8


def matmul_integer(a, b, a_zero_point=None, b_zero_point=None, out=None,
                   backend=None) -> np.ndarray:
    """ONNX MatMulInteger: ``(a - a_zero_point) @ (b - b_zero_point)`` in int32.
    a (..., M, K) uint8 or int8 with a scalar zero point; b (K, N) or batched
    (..., K, N) int8 or uint8, zero point scalar or per column (N,).  Signed A
    and unsigned B run on the u8 x s8 kernel shifted by 128 (exact:
    a - za = (a + 128) - (za + 128))."""
    op = "matmul_integer"
    a = _int_array(a, "a", op, (U8, S8))
    b = _int_array(b, "b", op, (U8, S8))
    if a.ndim < 1 or b.ndim < 2:
        raise ShapeError(f"{op}: 'a' expected >= 1 dims and 'b' >= 2 dims, received "
                         f"{a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise shape_error("b", f"{a.shape[-1]} rows to match a {a.shape}", b.shape, op)
    n = b.shape[-1]
    alo, ahi = QRANGE[a.dtype]
    blo, bhi = QRANGE[b.dtype]
    az = 0
    if a_zero_point is not None:
        if np.asarray(a_zero_point).dtype != a.dtype:
            raise dtype_error("a_zero_point", a.dtype, np.asarray(a_zero_point).dtype, op)
        if np.asarray(a_zero_point).size != 1:
            raise UnsupportedError(f"{op}: per-row 'a_zero_point' (shape "
                                   f"{np.asarray(a_zero_point).shape}) is not supported")
        az = _scalar_zero(a_zero_point, "a_zero_point", op, alo, ahi)
    bz = np.zeros(n, np.int32)
    if b_zero_point is not None:
        if np.asarray(b_zero_point).dtype != b.dtype:
            raise dtype_error("b_zero_point", b.dtype, np.asarray(b_zero_point).dtype, op)
        bz = _zero_vector(b_zero_point, n, "b_zero_point", op, blo, bhi)
    if a.dtype == S8:
        a, az = (a.view(U8) ^ np.uint8(0x80)), az + 128
    if b.dtype == U8:
        b, bz = (b ^ np.uint8(0x80)).view(S8), bz - 128
    if b.ndim == 2:
        w = QWeight(b, bz)
        return _gemm(op, a, w, az, None, None, None, None, None, S32, out, backend)
    batch = np.broadcast_shapes(a.shape[:-2] if a.ndim > 2 else (), b.shape[:-2])
    m = a.shape[-2] if a.ndim >= 2 else 1
    a3 = np.broadcast_to(a if a.ndim >= 2 else a[None], batch + (m, a.shape[-1]))
    b3 = np.broadcast_to(b, batch + b.shape[-2:])
    res = np.empty(batch + (m, n), S32)
    for idx in np.ndindex(*batch):
        res[idx] = _gemm(op, a3[idx], QWeight(b3[idx], bz), az, None, None, None, None, None,
                         S32, None, backend)
    if a.ndim == 1:
        res = res[..., 0, :]
    if out is not None:
        check_out(out, res.shape, S32, op)
        np.copyto(out, res)
        return out
    return res


OPS = {
    "quantize_linear": quantize_linear,
    "dequantize_linear": dequantize_linear,
    "dynamic_quantize_linear": dynamic_quantize_linear,
    "qgemm": qgemm,
    "matmul_integer": matmul_integer,
    "qweight": qweight,
}
