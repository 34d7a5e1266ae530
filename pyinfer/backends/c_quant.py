"""The ``c`` backend of the int8 family: csrc/pi_qgemm*.c.

* ``qgemm``: u8 x s8 -> s32 GEMM, weights packed once per micro-kernel into
  the ``QWeight`` (pi_u8s8_pack_b) and reused by every later call; the
  epilogue (zero points, dequantize scale, bias, activation, requantize) runs
  in registers.  The micro-kernel is the best this CPU runs at the current
  ISA setting that is exact for the weight: weights within 64 of their zero
  points (7-bit, ``weight_bits``) get the faster AVX2 vpmaddubsw kernel,
  others the exact 16-bit one (``pyinfer.backends._native.force_isa`` lowers
  the ISA; a weight packed for another kernel is packed again for the new one).
* ``qgemm_f32``: the same GEMM from a float activation, quantized per tensor
  (static parameters, or dynamic ones from its range) while its blocks are
  packed: one C call where min/max, quantize and GEMM were three.  With
  ``x_granularity="row"`` each row gets its own dynamic parameters, found as
  the row is packed (pi_f32u8s8_gemm_rows): no range pass over all of x.
* ``quantize_linear``, ``dequantize_linear``, ``minmax``: one pass each,
  OpenMP over rows.

``ukernels()`` lists the micro-kernels (csrc/pi_qgemm_ukernels.h).
"""
from __future__ import annotations

import threading
from typing import NamedTuple, Optional

import numpy as np

from ..registry import register
from ._native import Scratch, check, ffi, lib
from .c_gemm import ACTIVATION_CODES
from .numpy_quant import F32, S32, S8, U8

PRIORITY = 20
MAX_K = 32768  # s32 accumulation of (a - za)(b - zb) is exact up to here
_OUT_KIND = {S32: lib.PI_QOUT_S32, F32: lib.PI_QOUT_F32, U8: lib.PI_QOUT_U8}
_DQ_KIND = {U8: 0, S8: 1, S32: 2}


class QUKernel(NamedTuple):
    index: int
    name: str
    isa: int
    mr: int
    nr: int
    ku: int
    es: int
    wb: int  # weight bits it is exact for: 8, or 7 (|b - b_zero| <= 64)


def ukernels() -> list:
    """Every entry of csrc/pi_qgemm_ukernels.h, in list order."""
    out = []
    v = ffi.new("int[5]")
    name = ffi.new("const char **")
    i = 0
    while lib.pi_u8s8_gemm_ukernel_info(i, v, v + 1, v + 2, v + 3, v + 4, name) == 0:
        out.append(QUKernel(i, ffi.string(name[0]).decode(), *list(v),
                            lib.pi_u8s8_gemm_ukernel_weight_bits(i)))
        i += 1
    return out


def runs(index: int) -> bool:
    """Does this CPU run micro-kernel ``index`` at the current ISA setting?"""
    return bool(lib.pi_u8s8_gemm_ukernel_runs(index))


# Tests pin a micro-kernel (e.g. the portable VNNI-layout one) with this.
_forced = threading.local()


def force_ukernel(index: Optional[int]) -> None:
    """Pack (and so run) with micro-kernel ``index`` on this thread; None: best."""
    _forced.index = index


_workspace = Scratch()  # this family's per-thread C scratch


def _ptr(elem: str, arr):
    """A C pointer (``elem *``) to ``arr``'s first element, NULL for None.
    ``ffi.from_buffer`` for a C-contiguous array: about 1 us, against 10 us or
    more for ``ndarray.ctypes`` (which a GEMM call of a plan paid four times)."""
    if arr is None:
        return ffi.NULL
    if arr.flags.c_contiguous:
        return ffi.from_buffer(elem + "[]", arr)
    return ffi.cast(elem + " *", arr.ctypes.data)


def _pack(index: int):
    def make(w):
        k, n = w.b.shape
        nbytes = lib.pi_u8s8_packed_b_bytes(index, k, n)
        buf = np.empty(nbytes + 64, np.uint8)
        off = (-buf.ctypes.data) % 64
        packed = buf[off:off + nbytes]
        bz = np.ascontiguousarray(w.b_zero, np.int32)
        b = w.b
        check(lib.pi_u8s8_pack_b(index, k, n, ffi.cast("const signed char *", b.ctypes.data),
                                 b.strides[0], b.strides[1],
                                 ffi.cast("const int *", bz.ctypes.data),
                                 ffi.cast("void *", packed.ctypes.data), nbytes), "qgemm pack")
        return packed
    return make


def weight_bits(w) -> int:
    """7 if every ``|w.b - w.b_zero| <= 64`` (the 7-bit kernels apply), else 8;
    computed once per QWeight."""
    def make(w):
        b = w.b
        bz = np.ascontiguousarray(w.b_zero, np.int32)
        return int(lib.pi_u8s8_weight_bits(b.shape[0], b.shape[1],
                                           ffi.cast("const signed char *", b.ctypes.data),
                                           b.strides[0], b.strides[1],
                                           ffi.cast("const int *", bz.ctypes.data)))
    return w.packed(("c", "weight_bits"), make)


def _current_index(w) -> int:
    """The forced micro-kernel, else the best that runs and is exact for ``w``
    (highest ISA, first in list order: the C side's rule, pi_u8s8_gemm_ukernel_for)."""
    forced = getattr(_forced, "index", None)
    if forced is not None:
        return forced
    return kernel_for_weight_bits(weight_bits(w))


_best: dict = {}


def kernel_for_weight_bits(bits: int) -> int:
    """The micro-kernel weights of ``bits`` bits (7 or 8) get on this CPU at the
    current ISA setting (no forcing): what quantize's reduce_range=None asks.
    Cached per ISA setting (it is asked on every GEMM call)."""
    key = (lib.pi_isa(), bits)
    best = _best.get(key)
    if best is None:
        best = -1
        for u in _UKERNELS:
            if runs(u.index) and u.wb >= bits and (best < 0 or u.isa > _UKERNELS[best].isa):
                best = u.index
        _best[key] = best
    return best


def packed_weight(w) -> np.ndarray:
    """The packed copy of QWeight ``w`` for the micro-kernel in force (cached)."""
    index = _current_index(w)
    return w.packed(("c", index), _pack(index))


def _qgemm_supports(a, w, a_zero, scale, bias, *, activation, out_scale, out_zero, out):
    if a.shape[1] > MAX_K:
        return f"k = {a.shape[1]} > {MAX_K} (s32 accumulation would not be exact)"
    if activation not in ACTIVATION_CODES:
        return f"activation {activation!r} has no C epilogue"
    if out.dtype not in _OUT_KIND:
        return f"output dtype {out.dtype} is not int32, float32 or uint8"
    forced = getattr(_forced, "index", None)
    if forced is not None and _UKERNELS[forced].wb < weight_bits(w):
        return (f"the forced micro-kernel {_UKERNELS[forced].name} needs 7-bit weights "
                "(|b - b_zero| <= 64)")
    return None


@register("qgemm", "c", supports=_qgemm_supports, priority=PRIORITY)
def qgemm(a, w, a_zero, scale, bias, *, activation, out_scale, out_zero, out):
    """out (M, N) = epilogue((a - a_zero) @ (w.b - w.b_zero)); a (M, K) u8, any
    strides; scale (N,) float32 C-contiguous (None for int32 out); bias (N,) or None."""
    m, k = a.shape
    n = w.b.shape[1]
    packed = packed_weight(w)
    pb = _ptr("char", packed)
    ws, ws_size = _workspace(lib.pi_u8s8_gemm_workspace_bytes(pb, m))
    target = out if out.flags.aligned else np.empty(out.shape, out.dtype)
    status = lib.pi_u8s8_gemm(
        m, n, k, _ptr("unsigned char", a), a.strides[0], a.strides[1],
        int(a_zero), pb, _OUT_KIND[out.dtype], _ptr("float", scale), _ptr("float", bias),
        ACTIVATION_CODES[activation],
        float(out_scale) if out_scale is not None else 1.0,
        int(out_zero) if out_zero is not None else 0,
        _ptr("char", target), target.strides[0], target.strides[1], ws, ws_size)
    check(status, "qgemm")
    if target is not out:
        np.copyto(out, target)


def _qgemm_f32_supports(x, w, x_scale, x_zero, w_scale, bias, *, activation, out_scale,
                        out_zero, out, x_granularity="tensor"):
    if x.dtype != F32 or x.strides[1] != 4 or not x.flags.aligned:
        return "x is not float32 with contiguous rows"
    if x_granularity not in ("tensor", "row"):
        return f"x_granularity {x_granularity!r} is neither 'tensor' nor 'row'"
    if x_granularity == "row" and (x_scale is not None or x_zero is not None):
        return "x_granularity 'row' is dynamic only (x_scale, x_zero must be None)"
    return _qgemm_supports(x, w, 0, w_scale, bias, activation=activation, out_scale=out_scale,
                           out_zero=out_zero, out=out)


@register("qgemm_f32", "c", supports=_qgemm_f32_supports, priority=PRIORITY)
def qgemm_f32(x, w, x_scale, x_zero, w_scale, bias, *, activation, out_scale, out_zero, out,
              x_granularity="tensor"):
    """out (M, N) = qgemm of x (M, K) float32 quantized to u8 per tensor inside
    the GEMM's packing (pi_f32u8s8_gemm: one C call, one thread fork): by
    (x_scale, x_zero), or with both None by DynamicQuantizeLinear's parameters
    from x's range; ``x_granularity="row"``: by each row's own
    (pi_f32u8s8_gemm_rows).  w_scale (N,) float32 C-contiguous, None for int32 out."""
    m, k = x.shape
    n = w.b.shape[1]
    packed = packed_weight(w)
    pb = _ptr("char", packed)
    ws, ws_size = _workspace(lib.pi_f32u8s8_gemm_workspace_bytes(pb, m))
    target = out if out.flags.aligned else np.empty(out.shape, out.dtype)
    if x_granularity == "row":
        status = lib.pi_f32u8s8_gemm_rows(
            m, n, k, _ptr("float", x), x.strides[0], pb,
            _OUT_KIND[out.dtype], _ptr("float", w_scale), _ptr("float", bias),
            ACTIVATION_CODES[activation],
            float(out_scale) if out_scale is not None else 1.0,
            int(out_zero) if out_zero is not None else 0,
            _ptr("char", target), target.strides[0], target.strides[1], ffi.NULL, ffi.NULL,
            ws, ws_size)
        check(status, "qgemm_f32")
        if target is not out:
            np.copyto(out, target)
        return
    status = lib.pi_f32u8s8_gemm(
        m, n, k, _ptr("float", x), x.strides[0],
        0.0 if x_scale is None else float(x_scale), 0 if x_zero is None else int(x_zero), pb,
        _OUT_KIND[out.dtype], _ptr("float", w_scale), _ptr("float", bias),
        ACTIVATION_CODES[activation],
        float(out_scale) if out_scale is not None else 1.0,
        int(out_zero) if out_zero is not None else 0,
        _ptr("char", target), target.strides[0], target.strides[1], ffi.NULL, ws, ws_size)
    check(status, "qgemm_f32")
    if target is not out:
        np.copyto(out, target)


def _contiguous_reason(*arrays) -> Optional[str]:
    for x in arrays:
        if x is not None and not (x.flags.c_contiguous and x.flags.aligned):
            return "operands are not C-contiguous"
    return None


def _quantize_supports(x, scale, zero, *, out) -> Optional[str]:
    # The C kernel reads x and scale as float32 and zero as int32: any other
    # dtype would be reinterpreted, not converted.
    for name, a, want in (("x", x, np.float32), ("scale", scale, np.float32),
                          ("zero", zero, np.int32)):
        if a is not None and a.dtype != want:
            return f"{name} is {a.dtype}, the C kernel takes {np.dtype(want)}"
    return _contiguous_reason(x, scale, zero, out)


@register("quantize_linear", "c", priority=PRIORITY, supports=_quantize_supports)
def quantize_linear(x, scale, zero, *, out):
    outer, ch, inner = x.shape
    check(lib.pi_f32_quantize(outer, ch, inner, _ptr("float", x), _ptr("float", scale),
                              _ptr("int", zero), 1 if out.dtype == S8 else 0, _ptr("char", out)),
          "quantize_linear")


@register("dequantize_linear", "c", priority=PRIORITY,
          supports=lambda x, scale, zero, *, out: _contiguous_reason(x, scale, zero, out))
def dequantize_linear(x, scale, zero, *, out):
    outer, ch, inner = x.shape
    check(lib.pi_dequantize_f32(_DQ_KIND[x.dtype], outer, ch, inner,
                                _ptr("char", x), _ptr("float", scale), _ptr("int", zero),
                                _ptr("float", out)), "dequantize_linear")


@register("minmax", "c", priority=PRIORITY,
          supports=lambda x, *, out: _contiguous_reason(x))
def minmax(x, *, out):
    lo = ffi.new("float *")
    hi = ffi.new("float *")
    check(lib.pi_f32_minmax(x.size, _ptr("float", x), lo, hi), "minmax")
    out[0] = lo[0]
    out[1] = hi[0]


_UKERNELS = ukernels()
