"""The ``c`` backend's softmax, norm and elementwise kernels (csrc/pi_softmax.c,
pi_norm.c, pi_elementwise.c).

The C entry points take contiguous rows; this module maps NumPy layouts onto
them.  ``supports`` says why a call cannot be expressed (a broadcast that does
not reduce to the C ``(outer, inner)`` form, a dtype other than float32/64);
non-contiguous inputs are copied (one cheap pass), and a non-contiguous ``out``
is computed into a temporary and copied back.  Kernel signatures:
docs/kernel-contract.md.

Per-call overhead is a few microseconds, so every kernel steps below NumPy's
priority for inputs so small that the call costs more than the work.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..registry import register
from ._native import check, ffi, lib

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_FLOATS = (_F32, _F64)

PRIORITY = 20
# Below these many elements NumPy (priority 0) wins: a cffi call plus the
# layout checks cost ~2-4 us, more than NumPy spends on a tiny array.
_SMALL_ELEMWISE = 64
_SMALL_REDUCE = 16

_CAST = {_F32: "float *", _F64: "double *"}
_CARRAY = {_F32: "float[]", _F64: "double[]"}


def _p(arr: np.ndarray):
    """A typed pointer to arr's first element.  ffi.from_buffer is the fast path
    (~0.3 us, and the cdata keeps arr alive); it needs a C-contiguous buffer, so
    other layouts go through arr.ctypes.data (~2 us)."""
    if arr.flags.c_contiguous:
        return ffi.from_buffer(_CARRAY[arr.dtype], arr)
    return ffi.cast(_CAST[arr.dtype], arr.ctypes.data)


_cp = _p  # read-only inputs: same pointer, named apart for readability


def _dtype_reason(out: np.ndarray, *arrays) -> Optional[str]:
    dt = out.dtype
    if dt not in _FLOATS:
        return f"dtype {dt} is not float32/float64"
    for a in arrays:
        if a is not None and a.dtype != dt:
            return f"input dtype {a.dtype} differs from the result dtype {dt}"
    return None


# ---- unary --------------------------------------------------------------------

UNARY_CODES = {
    "exp": lib.PI_UNARY_EXP, "log": lib.PI_UNARY_LOG, "sqrt": lib.PI_UNARY_SQRT,
    "rsqrt": lib.PI_UNARY_RSQRT, "abs": lib.PI_UNARY_ABS, "neg": lib.PI_UNARY_NEG,
    "erf": lib.PI_UNARY_ERF, "relu": lib.PI_ACT_RELU, "gelu": lib.PI_ACT_GELU,
    "gelu_tanh": lib.PI_ACT_GELU_TANH, "silu": lib.PI_ACT_SILU,
    "sigmoid": lib.PI_ACT_SIGMOID, "tanh": lib.PI_ACT_TANH,
}


def _unary_supports(x, *, out):
    return _dtype_reason(out, x)


def _unary_priority(x, *, out):
    return PRIORITY if out.size >= _SMALL_ELEMWISE else -1


def _register_unary(name: str, code: int) -> None:
    f32, f64 = lib.pi_f32_unary, lib.pi_f64_unary

    def kernel(x, *, out):
        fn = f32 if out.dtype == _F32 else f64
        # Elementwise: any dense order works as long as x and out agree on it.
        if out.flags.c_contiguous and x.flags.c_contiguous or \
                out.flags.f_contiguous and x.flags.f_contiguous:
            check(fn(code, out.size, _cp(x), _p(out)), name)
            return
        src = np.ascontiguousarray(x)
        dst = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
        check(fn(code, out.size, _cp(src), _p(dst)), name)
        if dst is not out:
            np.copyto(out, dst)

    kernel.__name__ = kernel.__qualname__ = f"c_{name}"
    register(name, "c", supports=_unary_supports, priority=_unary_priority)(kernel)


for _name, _code in UNARY_CODES.items():
    _register_unary(_name, _code)


# ---- binary -------------------------------------------------------------------

BINARY_CODES = {
    "add": lib.PI_BINARY_ADD, "sub": lib.PI_BINARY_SUB, "mul": lib.PI_BINARY_MUL,
    "div": lib.PI_BINARY_DIV, "pow": lib.PI_BINARY_POW, "maximum": lib.PI_BINARY_MAX,
    "minimum": lib.PI_BINARY_MIN,
}


def _bcast_strides(a: np.ndarray, shape: tuple) -> list:
    """Byte strides of ``a`` broadcast to ``shape`` (0 along broadcast dims)."""
    nd, ad = len(shape), a.ndim
    st = [0] * (nd - ad)
    for s, (dim, n) in zip(a.strides, zip(a.shape, shape[nd - ad:])):
        st.append(0 if dim == 1 and n != 1 else s)
    return st


def _coalesce(shape: tuple, sa: list, sb: list):
    """Drop unit dims and merge neighbours that both operands step through
    uniformly.  Returns (dims, a_strides, b_strides), innermost last."""
    dims, xa, xb = [], [], []
    for n, p, q in zip(shape, sa, sb):
        if n == 1:
            continue
        if dims and xa[-1] == p * n and xb[-1] == q * n:
            dims[-1] *= n
            xa[-1], xb[-1] = p, q
        else:
            dims.append(n)
            xa.append(p)
            xb.append(q)
    return dims, xa, xb


def _binary_layout(a, b, out):
    """(outer, inner, a_os, a_is, b_os, b_is, a, b) for the C kernel, or a
    reason string.  Operands whose inner stride is neither 0 nor the element
    size are copied to C order first (once)."""
    shape, es = out.shape, out.dtype.itemsize
    for _ in range(2):
        dims, sa, sb = _coalesce(shape, _bcast_strides(a, shape), _bcast_strides(b, shape))
        if not dims:
            return 1, 1, 0, 0, 0, 0, a, b
        if len(dims) > 2:
            return ("broadcast does not reduce to (outer, inner) after coalescing "
                    f"dimensions (reduces to {len(dims)}-D)")
        if sa[-1] in (0, es) and sb[-1] in (0, es):
            if len(dims) == 1:
                return 1, dims[0], 0, sa[0], 0, sb[0], a, b
            return dims[0], dims[1], sa[0], sa[1], sb[0], sb[1], a, b
        if sa[-1] not in (0, es):
            a = np.ascontiguousarray(a)
        if sb[-1] not in (0, es):
            b = np.ascontiguousarray(b)
    return "operand strides cannot be expressed"  # unreachable in practice


_LAYOUT_CACHE: dict = {}


def _binary_layout_cached(a, b, out):
    """_binary_layout memoised on the shapes and strides (the arrays themselves
    are only needed when an operand must be copied, which is not cached)."""
    key = (a.shape, a.strides, b.shape, b.strides, out.shape, out.dtype.itemsize)
    hit = _LAYOUT_CACHE.get(key)
    if hit is not None:
        return hit + (a, b)
    lay = _binary_layout(a, b, out)
    if isinstance(lay, str):
        return lay
    if lay[6] is a and lay[7] is b:  # no copies: reusable for the next call
        if len(_LAYOUT_CACHE) > 512:
            _LAYOUT_CACHE.clear()
        _LAYOUT_CACHE[key] = lay[:6]
    return lay


def _binary_supports(a, b, *, out):
    why = _dtype_reason(out, a, b)
    if why is not None:
        return why
    if out.size == 0:
        return None
    lay = _binary_layout_cached(a, b, out)
    return lay if isinstance(lay, str) else None


def _binary_priority(a, b, *, out):
    return PRIORITY if out.size >= _SMALL_ELEMWISE else -1


def _register_binary(name: str, code: int) -> None:
    f32, f64 = lib.pi_f32_binary, lib.pi_f64_binary

    def kernel(a, b, *, out):
        fn = f32 if out.dtype == _F32 else f64
        oc = out.flags.c_contiguous
        if oc and a.shape == b.shape == out.shape and a.flags.c_contiguous \
                and b.flags.c_contiguous:  # the common case, without layout work
            es = out.itemsize
            check(fn(code, 1, out.size, _p(a), 0, es, _p(b), 0, es, _p(out)), name)
            return
        dst = out if oc else np.empty(out.shape, out.dtype)
        lay = _binary_layout_cached(a, b, dst)
        if isinstance(lay, str):
            raise ValueError(f"{name}: {lay}")
        outer, inner, a_os, a_is, b_os, b_is, a2, b2 = lay
        check(fn(code, outer, inner, _cp(a2), a_os, a_is, _cp(b2), b_os, b_is, _p(dst)), name)
        if dst is not out:
            np.copyto(out, dst)

    kernel.__name__ = kernel.__qualname__ = f"c_{name}"
    register(name, "c", supports=_binary_supports, priority=_binary_priority)(kernel)


for _name, _code in BINARY_CODES.items():
    _register_binary(_name, _code)


# ---- softmax ------------------------------------------------------------------

def _softmax_supports(x, *, axis, out):
    return _dtype_reason(out, x)


def _reduce_priority(x, *args, out, **attrs):
    return PRIORITY if out.size >= _SMALL_REDUCE else -1


def _register_softmax(name: str, log: int) -> None:
    def kernel(x, *, axis, out):
        shape = x.shape
        outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
        fn = lib.pi_f32_softmax if out.dtype == _F32 else lib.pi_f64_softmax
        src = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        dst = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
        check(fn(outer, n, inner, _cp(src), _p(dst), log), name)
        if dst is not out:
            np.copyto(out, dst)

    kernel.__name__ = kernel.__qualname__ = f"c_{name}"
    register(name, "c", supports=_softmax_supports, priority=_reduce_priority)(kernel)


_register_softmax("softmax", 0)
_register_softmax("log_softmax", 1)


# ---- layer_norm / rms_norm ----------------------------------------------------

def _rows_view(arr: np.ndarray, rows: int, cols: int) -> Optional[np.ndarray]:
    """A (rows, cols) view of arr with contiguous rows, or None (needs a copy)."""
    try:
        v = np.reshape(arr, (rows, cols), copy=False)
    except ValueError:
        return None
    if cols > 1 and v.strides[1] != arr.itemsize:
        return None
    return v


def _norm_rows(x, axis, out):
    cols = math.prod(x.shape[axis:])
    rows = x.size // cols if cols else 0
    if x.flags.c_contiguous and out.flags.c_contiguous:  # the common case
        return rows, cols, x, out, None
    xv = _rows_view(x, rows, cols)
    if xv is None:
        xv = np.ascontiguousarray(x).reshape(rows, cols)
    ov = _rows_view(out, rows, cols)
    tmp = None
    if ov is None:
        tmp = np.empty((rows, cols), out.dtype)
        ov = tmp
    return rows, cols, xv, ov, tmp


def _c(arr):
    """arr, made C-contiguous if it is not (weights are by contract; cheap check)."""
    return arr if arr is None or arr.flags.c_contiguous else np.ascontiguousarray(arr)


def _row_stride(v: np.ndarray, rows: int, cols: int) -> int:
    """Byte stride between rows of the (rows, cols) view of v."""
    if rows <= 1:
        return 0
    if v.ndim == 2 and v.shape[0] == rows:
        return v.strides[0]
    return cols * v.itemsize  # C-contiguous array of any rank


def _layer_norm_supports(x, weight, bias, *, axis, eps, out):
    return _dtype_reason(out, x, weight, bias)


@register("layer_norm", "c", supports=_layer_norm_supports, priority=_reduce_priority)
def c_layer_norm(x, weight, bias, *, axis, eps, out):
    rows, cols, xv, ov, tmp = _norm_rows(x, axis, out)
    fn = lib.pi_f32_layer_norm if out.dtype == _F32 else lib.pi_f64_layer_norm
    # the cdata from _p keeps any contiguous copy alive across the call
    w = ffi.NULL if weight is None else _p(_c(weight))
    b = ffi.NULL if bias is None else _p(_c(bias))
    check(fn(rows, cols, _p(xv), _row_stride(xv, rows, cols), w, b, eps,
             _p(ov), _row_stride(ov, rows, cols)), "layer_norm")
    if tmp is not None:
        np.copyto(out, tmp.reshape(out.shape))


def _rms_norm_supports(x, weight, *, axis, eps, out):
    return _dtype_reason(out, x, weight)


@register("rms_norm", "c", supports=_rms_norm_supports, priority=_reduce_priority)
def c_rms_norm(x, weight, *, axis, eps, out):
    rows, cols, xv, ov, tmp = _norm_rows(x, axis, out)
    fn = lib.pi_f32_rms_norm if out.dtype == _F32 else lib.pi_f64_rms_norm
    w = ffi.NULL if weight is None else _p(_c(weight))
    check(fn(rows, cols, _p(xv), _row_stride(xv, rows, cols), w, eps,
             _p(ov), _row_stride(ov, rows, cols)), "rms_norm")
    if tmp is not None:
        np.copyto(out, tmp.reshape(out.shape))
