"""The ``c`` backend's CNN kernels (csrc/pi_pool.c): max/avg pooling, global
pooling, batch norm (as a per-channel affine with parameters folded in
float64), and nearest/linear resize of the last two axes.

The C entry points take planes whose rows are contiguous; this module maps
NumPy layouts onto them: any strides on N, C and H are passed as byte strides,
an input whose W axis is not contiguous is copied once, and an ``out`` whose W
axis is not contiguous is computed into a temporary.  Pooling's per-thread row
buffers come from a thread-local workspace that grows once and is reused, so a
plan that runs these kernels allocates nothing after its first call.  Resize's
source tables depend only on the sizes and attributes and are cached.
Kernel signatures: docs/kernel-contract.md.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ..registry import register
from . import numpy_cnn
from .numpy_cnn import fold_batch_norm
from ._native import Scratch, check, ffi, lib

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_FLOATS = (_F32, _F64)
PRIORITY = 20
# Below this many output elements NumPy's reference is as quick as the cffi call.
_SMALL = 64

_CAST = {_F32: "float *", _F64: "double *"}


def _p(arr: np.ndarray):
    return ffi.cast(_CAST[arr.dtype], arr.ctypes.data)


def _dtype_reason(out, *arrays) -> Optional[str]:
    if out.dtype not in _FLOATS:
        return f"dtype {out.dtype} is not float32/float64"
    for a in arrays:
        if a.dtype != out.dtype:
            return f"input dtype {a.dtype} differs from the result dtype {out.dtype}"
    return None


def _rows_contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` itself when its last axis is dense (or has one element), else a C copy."""
    if a.shape[-1] == 1 or a.strides[-1] == a.itemsize:
        return a
    return np.ascontiguousarray(a)


def _writable_target(out: np.ndarray) -> np.ndarray:
    return out if out.shape[-1] == 1 or out.strides[-1] == out.itemsize else np.empty_like(out)


def _finish(target, out):
    if target is not out:
        np.copyto(out, target)


def _priority(*args, out, **attrs):
    return PRIORITY if out.size >= _SMALL else -1


# ---- pooling ---------------------------------------------------------------------

_workspace = Scratch()  # this family's per-thread C scratch


def _pool_supports(x, *, out, **attrs):
    why = _dtype_reason(out, x)
    if why is None and x.ndim != 4:
        return f"x is {x.ndim}-d, not NCHW"
    return why


def _pool_call(fn, x, out, kernel, strides, dilations, pads, tail):
    x = _rows_contiguous(x)
    target = _writable_target(out)
    n, c, h, w = x.shape
    oh, ow = out.shape[2:]
    threads = lib.pi_get_num_threads()
    dw = 1 if dilations is None else dilations[1]
    nbytes = lib.pi_pool2d_workspace_bytes(x.itemsize, w, ow, kernel[1], strides[1], dw,
                                           pads[1], pads[3], threads)
    ws, ws_size = _workspace(nbytes)
    geometry = (kernel[0], kernel[1], strides[0], strides[1]) + \
        ((dilations[0], dilations[1]) if dilations is not None else ()) + tuple(pads)
    check(fn(n, c, h, w, _p(x), x.strides[0], x.strides[1], x.strides[2], *geometry, *tail,
             oh, ow, _p(target), target.strides[0], target.strides[1], target.strides[2],
             ws, ws_size), "pool2d")
    _finish(target, out)


@register("max_pool2d", "c", supports=_pool_supports, priority=_priority)
def c_max_pool2d(x, *, kernel, strides, pads, dilations, out):
    fn = lib.pi_f32_max_pool2d if out.dtype == _F32 else lib.pi_f64_max_pool2d
    _pool_call(fn, x, out, kernel, strides, dilations, pads, ())


@register("avg_pool2d", "c", supports=_pool_supports, priority=_priority)
def c_avg_pool2d(x, *, kernel, strides, pads, count_include_pad, out):
    fn = lib.pi_f32_avg_pool2d if out.dtype == _F32 else lib.pi_f64_avg_pool2d
    _pool_call(fn, x, out, kernel, strides, None, pads, (int(count_include_pad),))


# ---- global pooling ----------------------------------------------------------------


def _global_supports(x, *, out):
    return _dtype_reason(out, x)


def _global(fn32, fn64, x, out):
    fn = fn32 if out.dtype == _F32 else fn64
    xp = _rows_contiguous(x.reshape(x.shape[0], x.shape[1], -1))
    n, c, hw = xp.shape
    yv = out[(slice(None), slice(None)) + (0,) * (out.ndim - 2)]   # a view of (N, C)
    check(fn(n, c, hw, _p(xp), xp.strides[0], xp.strides[1], _p(yv), yv.strides[0],
             yv.strides[1]), "global_pool")


@register("global_avg_pool", "c", supports=_global_supports, priority=PRIORITY)
def c_global_avg_pool(x, *, out):
    _global(lib.pi_f32_global_avg_pool, lib.pi_f64_global_avg_pool, x, out)


@register("global_max_pool", "c", supports=_global_supports, priority=PRIORITY)
def c_global_max_pool(x, *, out):
    _global(lib.pi_f32_global_max_pool, lib.pi_f64_global_max_pool, x, out)


# ---- batch norm / channel affine --------------------------------------------------------


def _affine(x, scale, shift, out):
    fn = lib.pi_f32_channel_affine if out.dtype == _F32 else lib.pi_f64_channel_affine
    n, c = x.shape[:2]
    xp = x.reshape(n, c, -1)
    if xp.shape[2] > 1 and xp.strides[2] != xp.itemsize:
        xp = np.ascontiguousarray(xp)
    target, yv = out, out.view()
    try:
        yv.shape = (n, c, -1)   # raises where the view would need a copy
    except AttributeError:
        yv = None
    if yv is None or (yv.shape[2] > 1 and yv.strides[2] != yv.itemsize):
        target = np.empty_like(out)
        yv = target.reshape(n, c, -1)
    check(fn(n, c, xp.shape[2], _p(xp), xp.strides[0], xp.strides[1], _p(scale), _p(shift),
             _p(yv), yv.strides[0], yv.strides[1]), "batch_norm")
    _finish(target, out)


def _affine_supports(x, scale, shift, *, out):
    why = _dtype_reason(out, x, scale, shift)
    if why is None and not (scale.flags.c_contiguous and shift.flags.c_contiguous):
        return "scale/shift are not contiguous"
    return why


@register("channel_affine", "c", supports=_affine_supports, priority=_priority)
def c_channel_affine(x, scale, shift, *, out):
    _affine(x, scale, shift, out)


def _bn_supports(x, scale, bias, mean, var, *, eps, out):
    return _dtype_reason(out, x, scale, bias, mean, var)


@register("batch_norm", "c", supports=_bn_supports, priority=_priority)
def c_batch_norm(x, scale, bias, mean, var, *, eps, out):
    a, b = fold_batch_norm(scale, bias, mean, var, eps, out.dtype)
    _affine(x, a, b, out)


# ---- resize --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def resize_tables(n_in: int, n_out: int, scale: float, mode: str, ctm: str, nearest_mode: str,
                  dtype: str):
    """Source tables for one axis: (index,) for nearest, (i0, i1, weight) for
    linear; read-only, shared by every call with these sizes and attributes."""
    if n_in == n_out and scale == 1.0:   # untouched axis (numpy_cnn.resize's rule)
        idx = np.arange(n_in, dtype=np.int64)
        tables = (idx,) if mode == "nearest" else (idx, idx, np.zeros(n_in, dtype))
    else:
        coords = numpy_cnn.source_coords(n_in, n_out, scale, ctm)
        if mode == "nearest":
            tables = (numpy_cnn.nearest_index(coords, n_in, nearest_mode),)
        else:
            i0, i1, lam = numpy_cnn.linear_taps(coords, n_in)
            tables = (i0, i1, lam.astype(dtype))
    for t in tables:
        t.flags.writeable = False
    return tables


def _resize_supports(x, *, mode, coordinate_transformation_mode, nearest_mode, scales, out):
    why = _dtype_reason(out, x)
    if why is not None:
        return why
    if x.ndim != 4:
        return f"x is {x.ndim}-d; the C resize takes NCHW"
    for ax in (0, 1):
        s = 1.0 if scales is None else scales[ax]
        if x.shape[ax] != out.shape[ax] or s != 1.0:
            return "the C resize scales H and W only (N and C must keep their size and scale 1)"
    return None


@register("resize", "c", supports=_resize_supports, priority=_priority)
def c_resize(x, *, mode, coordinate_transformation_mode, nearest_mode, scales, out):
    x = _rows_contiguous(x)
    target = _writable_target(out)
    n, c, h, w = x.shape
    oh, ow = out.shape[2:]
    sh = numpy_cnn.axis_scale(h, oh, scales, 2)
    sw = numpy_cnn.axis_scale(w, ow, scales, 3)
    th = resize_tables(h, oh, sh, mode, coordinate_transformation_mode, nearest_mode, out.dtype.str)
    tw = resize_tables(w, ow, sw, mode, coordinate_transformation_mode, nearest_mode, out.dtype.str)
    ip = lambda a: ffi.cast("const pi_index *", a.ctypes.data)  # noqa: E731
    if mode == "nearest":
        fn = lib.pi_f32_resize_nearest if out.dtype == _F32 else lib.pi_f64_resize_nearest
        st = fn(n, c, _p(x), x.strides[0], x.strides[1], x.strides[2], oh, ow, ip(th[0]), ip(tw[0]),
                _p(target), target.strides[0], target.strides[1], target.strides[2])
    else:
        fn = lib.pi_f32_resize_linear if out.dtype == _F32 else lib.pi_f64_resize_linear
        st = fn(n, c, _p(x), x.strides[0], x.strides[1], x.strides[2], oh, ow,
                ip(th[0]), ip(th[1]), _p(th[2]), ip(tw[0]), ip(tw[1]), _p(tw[2]),
                _p(target), target.strides[0], target.strides[1], target.strides[2])
    check(st, "resize")
    _finish(target, out)
