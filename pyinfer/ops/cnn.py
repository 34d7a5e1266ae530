"""CNN ops besides convolution: max/avg/global pooling, batch norm (inference),
pad, concat, flatten, LRN and resize/upsample, with ONNX semantics.

Layout is NCHW (pooling and resize's fast paths are 4-D; global pooling,
batch norm, LRN and resize's reference take any rank with channels on axis 1).
The numeric ops take float32/float64; pad, concat and flatten any dtype.
Every argument is checked here and errors name it: a kernel larger than the
padded input, a zero stride, a pad as large as the window, a crop past the
edge.  The geometry helpers (``pool_geometry``, ``resize_sizes``) are public:
the graph ops of ``pyinfer.graph.families.cnn`` use the same rules.

Kernel signatures: docs/kernel-contract.md; references:
``pyinfer.backends.numpy_cnn``; fast kernels: ``pyinfer.backends.c_pool``.
"""
from __future__ import annotations

import math
import numbers
import numpy as np

from ..backends import numpy_cnn  # noqa: F401  (registers the reference kernels)
from ..backends.numpy_cnn import COORDINATE_MODES, NEAREST_MODES, fold_batch_norm  # noqa: F401
from ..errors import ShapeError, UnsupportedError, shape_error
from ._args import as_float_array, check_eps, normalize_axis
from ._dispatch import run

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
PAD_MODES = ("constant", "reflect", "edge", "wrap")
RESIZE_MODES = ("nearest", "linear")


# ---- argument helpers ---------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def int_pair(v, name: str, op: str, minimum: int) -> tuple:
    """An int or a pair of ints, each >= minimum, as a 2-tuple."""
    items = (v, v) if _is_int(v) else v
    try:
        items = tuple(items)
    except TypeError:
        raise shape_error(name, f"an int or 2 ints >= {minimum}", repr(v), op) from None
    if len(items) != 2 or not all(_is_int(i) and i >= minimum for i in items):
        raise shape_error(name, f"an int or 2 ints >= {minimum}", repr(v), op)
    return tuple(int(i) for i in items)


def pads4(v, op: str) -> tuple:
    """pads as (top, left, bottom, right): an int, (ph, pw) or 4 ints, all >= 0."""
    if _is_int(v):
        items = (v,) * 4
    else:
        try:
            items = tuple(v)
        except TypeError:
            raise shape_error("pads", "an int, 2 or 4 ints >= 0", repr(v), op) from None
        if len(items) == 2:
            items = items * 2
    if len(items) != 4 or not all(_is_int(i) and i >= 0 for i in items):
        raise shape_error("pads", "an int, 2 or 4 ints >= 0 (top, left, bottom, right)", repr(v), op)
    return tuple(int(i) for i in items)


def _flag(v, name, op) -> bool:
    if not isinstance(v, (bool, np.bool_)) and not (_is_int(v) and v in (0, 1)):
        raise shape_error(name, "a bool", repr(v), op)
    return bool(v)


def _real(v, name, op, *, positive=False) -> float:
    if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating, np.integer)) \
            or not math.isfinite(float(v)) or (positive and float(v) <= 0):
        raise shape_error(name, "a finite positive float" if positive else "a finite float",
                          repr(v), op)
    return float(v)


def _choice(v, name, choices, op):
    if v not in choices:
        raise shape_error(name, f"one of {choices}", repr(v), op)
    return v


def _float_nd(x, op, ndim=None, min_ndim=None, desc=""):
    x = as_float_array(x, "x", op)
    if (ndim is not None and x.ndim != ndim) or (min_ndim is not None and x.ndim < min_ndim):
        want = f"a {ndim}-d" if ndim is not None else f"an at least {min_ndim}-d"
        raise shape_error("x", f"{want} array{desc}", f"shape {x.shape}", op)
    return x


# ---- pooling geometry ------------------------------------------------------------------


def pool_geometry(op: str, in_hw, kernel, strides, pads, dilations, ceil_mode: bool,
                  auto_pad: str = "NOTSET"):
    """Resolve ``auto_pad`` and ``ceil_mode`` for a 2-d window: returns
    ``(pads, (oh, ow))`` with pads as (top, left, bottom, right).

    Rules (ONNX, PyTorch): explicit pads give ``floor`` (or ``ceil``) of
    ``(in + pads - effective_kernel) / stride + 1``, where a ceil_mode window
    must start inside the input or its leading pad; SAME_* gives
    ``ceil(in / stride)`` with the odd pad at the end (UPPER) or start (LOWER);
    VALID gives no padding."""
    auto_pad = _choice(auto_pad, "auto_pad", AUTO_PADS, op)
    ek = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad != "NOTSET":
        if any(pads):
            raise shape_error("pads", f"all zero with auto_pad={auto_pad!r}", pads, op)
        lo, hi = [0, 0], [0, 0]
        if auto_pad != "VALID":
            for i in range(2):
                o = -(-in_hw[i] // strides[i])
                total = max(0, (o - 1) * strides[i] + ek[i] - in_hw[i])
                small = total // 2
                lo[i], hi[i] = (small, total - small) if auto_pad == "SAME_UPPER" \
                    else (total - small, small)
        pads = (lo[0], lo[1], hi[0], hi[1])
        ceil_mode = False
    out = []
    for i, axis in enumerate(("height", "width")):
        p0, p1 = pads[i], pads[i + 2]
        if ek[i] > in_hw[i] + p0 + p1:
            raise ShapeError(
                f"{op}: argument 'kernel_shape' {tuple(kernel)} (dilated extent {ek[i]} along "
                f"the {axis}) is larger than the padded input ({in_hw[i]} + {p0} + {p1})")
        if p0 >= ek[i] or p1 >= ek[i]:
            raise shape_error("pads", f"each < the window's dilated extent {ek[i]} along the {axis}",
                              tuple(pads), op)
        span = in_hw[i] + p0 + p1 - ek[i]
        n = (-(-span // strides[i]) if ceil_mode else span // strides[i]) + 1
        if ceil_mode and (n - 1) * strides[i] >= in_hw[i] + p0:
            n -= 1  # the last window would start in the trailing pad
        out.append(n)
    return tuple(pads), tuple(out)


def _pool_args(op, x, kernel_shape, strides, pads, dilations, ceil_mode, auto_pad):
    x = _float_nd(x, op, ndim=4, desc=" (N, C, H, W)")
    kernel = int_pair(kernel_shape, "kernel_shape", op, 1)
    strides = int_pair(1 if strides is None else strides, "strides", op, 1)
    dilations = int_pair(dilations, "dilations", op, 1)
    pads = pads4(pads, op)
    ceil_mode = _flag(ceil_mode, "ceil_mode", op)
    pads, (oh, ow) = pool_geometry(op, x.shape[2:], kernel, strides, pads, dilations, ceil_mode,
                                   auto_pad)
    return x, kernel, strides, pads, dilations, x.shape[:2] + (oh, ow)


def max_pool2d(x, kernel_shape, strides=None, pads=0, dilations=1, ceil_mode=False,
               auto_pad="NOTSET", out=None, backend=None) -> np.ndarray:
    """2-d max pooling of an (N, C, H, W) float array (ONNX MaxPool, one output).

    kernel_shape, strides (default 1), dilations: int or (h, w); pads: int,
    (ph, pw) or (top, left, bottom, right); taps in the padding are ignored.
    NaN propagates.  Returns (N, C, OH, OW) in x's dtype."""
    x, kernel, strides, pads, dilations, shape = _pool_args(
        "max_pool2d", x, kernel_shape, strides, pads, dilations, ceil_mode, auto_pad)
    return run("max_pool2d", backend, (x,), {"kernel": kernel, "strides": strides, "pads": pads,
                                              "dilations": dilations},
               out, shape, x.dtype, alias_ok=False)


def avg_pool2d(x, kernel_shape, strides=None, pads=0, ceil_mode=False, count_include_pad=False,
               auto_pad="NOTSET", out=None, backend=None) -> np.ndarray:
    """2-d average pooling of an (N, C, H, W) float array (ONNX AveragePool).

    The divisor counts the window's taps inside the input, or with
    ``count_include_pad`` inside the padded input (taps that ceil_mode adds
    past the padding never count).  Returns (N, C, OH, OW) in x's dtype."""
    count_include_pad = _flag(count_include_pad, "count_include_pad", "avg_pool2d")
    x, kernel, strides, pads, _, shape = _pool_args(
        "avg_pool2d", x, kernel_shape, strides, pads, 1, ceil_mode, auto_pad)
    return run("avg_pool2d", backend, (x,), {"kernel": kernel, "strides": strides, "pads": pads,
                                              "count_include_pad": count_include_pad},
               out, shape, x.dtype, alias_ok=False)


def _global(op, x, out, backend):
    x = _float_nd(x, op, min_ndim=3, desc=" (N, C, spatial...)")
    if any(d == 0 for d in x.shape[2:]):
        raise shape_error("x", "non-empty spatial dimensions", f"shape {x.shape}", op)
    shape = x.shape[:2] + (1,) * (x.ndim - 2)
    return run(op, backend, (x,), {}, out, shape, x.dtype, alias_ok=False)


def global_avg_pool(x, out=None, backend=None) -> np.ndarray:
    """Mean over every axis after the first two (ONNX GlobalAveragePool):
    (N, C, D1, ...) -> (N, C, 1, ...)."""
    return _global("global_avg_pool", x, out, backend)


def global_max_pool(x, out=None, backend=None) -> np.ndarray:
    """Max over every axis after the first two (ONNX GlobalMaxPool); NaN propagates."""
    return _global("global_max_pool", x, out, backend)


# ---- normalisation -------------------------------------------------------------------------


def _channel_vector(p, name, c, dtype, op):
    p = as_float_array(p, name, op, dtype)
    if p.shape != (c,):
        raise shape_error(name, f"shape ({c},) (one value per channel)", p.shape, op)
    return np.ascontiguousarray(p)


def batch_norm(x, scale, bias, mean, var, eps=1e-5, out=None, backend=None) -> np.ndarray:
    """Inference batch normalisation, channels on axis 1 (ONNX
    BatchNormalization, training_mode=0): ``(x - mean) / sqrt(var + eps) *
    scale + bias``; scale, bias, mean, var of shape (C,)."""
    op = "batch_norm"
    x = _float_nd(x, op, min_ndim=2, desc=" (N, C, ...)")
    c = x.shape[1]
    params = [_channel_vector(p, n, c, x.dtype, op)
              for p, n in ((scale, "scale"), (bias, "bias"), (mean, "mean"), (var, "var"))]
    eps = check_eps(eps, op)
    return run(op, backend, (x, *params), {"eps": eps}, out, x.shape, x.dtype, alias_ok=True)


def lrn(x, size, alpha=1e-4, beta=0.75, bias=1.0, out=None, backend=None) -> np.ndarray:
    """Local response normalisation across channels (ONNX LRN):
    ``x / (bias + alpha / size * sum(x[c']^2)) ** beta`` over
    ``c' in [c - floor((size-1)/2), c + ceil((size-1)/2)]``."""
    op = "lrn"
    x = _float_nd(x, op, min_ndim=3, desc=" (N, C, spatial...)")
    if not _is_int(size) or size < 1:
        raise shape_error("size", "an int >= 1", repr(size), op)
    attrs = {"size": int(size), "alpha": _real(alpha, "alpha", op),
             "beta": _real(beta, "beta", op), "bias": _real(bias, "bias", op)}
    return run(op, backend, (x,), attrs, out, x.shape, x.dtype, alias_ok=False)


# ---- data movement (any dtype) ---------------------------------------------------------------


def _any_array(x, name):
    arr = np.asarray(x)
    if arr.dtype.kind not in "biufc":
        from ..errors import dtype_error
        raise dtype_error(name, "a numeric or bool dtype", arr.dtype, "pad")
    return arr


def pad(x, pads, mode="constant", value=0.0, out=None, backend=None) -> np.ndarray:
    """ONNX Pad: ``pads`` holds every axis's begin then every axis's end
    (length 2 * x.ndim); a negative entry crops that many elements.  Crops
    apply first, then the padding (reflect/edge read the cropped array).
    mode: constant (with ``value``), reflect, edge or wrap.  Any dtype."""
    op = "pad"
    x = _any_array(x, "x")
    nd = x.ndim
    try:
        items = tuple(pads)
    except TypeError:
        raise shape_error("pads", f"{2 * nd} ints", repr(pads), op) from None
    if len(items) != 2 * nd or not all(_is_int(p) for p in items):
        raise shape_error("pads", f"{2 * nd} ints (all begins, then all ends)", repr(pads), op)
    items = tuple(int(p) for p in items)
    mode = _choice(mode, "mode", PAD_MODES, op)
    shape = []
    for i in range(nd):
        b, e = items[i], items[nd + i]
        kept = x.shape[i] - max(0, -b) - max(0, -e)
        if kept < 0:
            raise shape_error("pads", f"crops of at most {x.shape[i]} elements on axis {i}",
                              (b, e), op)
        if mode != "constant" and kept == 0 and (b > 0 or e > 0):
            raise shape_error("pads", f"no {mode} padding of an empty axis ({i})", (b, e), op)
        shape.append(kept + max(0, b) + max(0, e))
    if mode == "constant":
        if not isinstance(value, (numbers.Number, np.generic)):
            raise shape_error("value", f"a scalar of dtype {x.dtype}", repr(value), op)
        value = np.asarray(value).astype(x.dtype)[()]
    return run(op, backend, (x,), {"pads": items, "mode": mode, "value": value}, out,
               tuple(shape), x.dtype, alias_ok=False)


def concat(arrays, axis=0, out=None, backend=None) -> np.ndarray:
    """Join arrays along ``axis`` (NumPy's concatenate; any dtype, NumPy's
    type promotion; every other dimension must agree)."""
    op = "concat"
    if isinstance(arrays, np.ndarray) or not hasattr(arrays, "__len__") or len(arrays) == 0:
        raise shape_error("arrays", "a non-empty sequence of arrays", type(arrays).__name__, op)
    xs = [np.asarray(a) for a in arrays]
    nd = xs[0].ndim
    if nd == 0:
        raise shape_error("arrays", "arrays of at least 1 dimension", "a 0-d array", op)
    axis = normalize_axis(axis, nd, op)
    for i, a in enumerate(xs):
        if a.ndim != nd or any(a.shape[d] != xs[0].shape[d] for d in range(nd) if d != axis):
            raise shape_error(f"arrays[{i}]", f"shape {xs[0].shape} except along axis {axis}",
                              a.shape, op)
    dtype = np.result_type(*xs)
    xs = [a.astype(dtype, copy=False) for a in xs]
    shape = list(xs[0].shape)
    shape[axis] = sum(a.shape[axis] for a in xs)
    return run(op, backend, tuple(xs), {"axis": axis}, out, tuple(shape), dtype, alias_ok=False)


def flatten(x, axis=1, out=None, backend=None) -> np.ndarray:
    """ONNX Flatten: a 2-d array ``(prod(shape[:axis]), prod(shape[axis:]))``,
    ``axis`` in [-ndim, ndim].  Any dtype."""
    op = "flatten"
    x = np.asarray(x)
    nd = x.ndim
    if not _is_int(axis) or not -nd <= axis <= nd:
        raise shape_error("axis", f"an int in [{-nd}, {nd}]", repr(axis), op)
    axis = int(axis) + nd if axis < 0 else int(axis)
    shape = (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
    return run(op, backend, (x,), {}, out, shape, x.dtype, alias_ok=False)


# ---- resize -------------------------------------------------------------------------------------


def resize_sizes(op: str, in_shape, sizes, scales) -> tuple:
    """(sizes, scales) with sizes the full output shape: from ``sizes``, or
    ``floor(in * scale)`` per axis (ONNX).  ``scales`` stays None when sizes
    were given (the transform then uses out/in)."""
    nd = len(in_shape)
    if (sizes is None) == (scales is None):
        raise ShapeError(f"{op}: give exactly one of the arguments 'sizes' and 'scales'")
    if scales is not None:
        try:
            scales = tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            raise shape_error("scales", f"{nd} positive floats", repr(scales), op) from None
        if len(scales) != nd or not all(math.isfinite(s) and s > 0 for s in scales):
            raise shape_error("scales", f"{nd} finite positive floats", repr(scales), op)
        sizes = tuple(int(math.floor(n * s)) for n, s in zip(in_shape, scales))
    else:
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise shape_error("sizes", f"{nd} ints >= 1", repr(sizes), op) from None
        if len(sizes) != nd or not all(_is_int(s) and s >= 1 for s in sizes):
            raise shape_error("sizes", f"{nd} ints >= 1 (the full output shape)", repr(sizes), op)
        sizes = tuple(int(s) for s in sizes)
    if any(s < 1 for s in sizes):
        raise shape_error("scales", "scales giving every output dimension >= 1",
                          f"{scales} -> sizes {sizes}", op)
    return sizes, scales


def check_resize_modes(op, mode, coordinate_transformation_mode, nearest_mode):
    if mode == "cubic":
        raise UnsupportedError(f"{op}: mode 'cubic' is not implemented (nearest and linear are)")
    _choice(mode, "mode", RESIZE_MODES, op)
    if coordinate_transformation_mode == "tf_crop_and_resize":
        raise UnsupportedError(f"{op}: coordinate_transformation_mode 'tf_crop_and_resize' "
                               f"(it needs a roi) is not implemented")
    _choice(coordinate_transformation_mode, "coordinate_transformation_mode", COORDINATE_MODES, op)
    _choice(nearest_mode, "nearest_mode", NEAREST_MODES, op)


def resize(x, sizes=None, scales=None, mode="nearest",
           coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_floor",
           exclude_outside=0, extrapolation_value=0.0, out=None, backend=None) -> np.ndarray:
    """ONNX Resize, modes nearest and linear (multilinear over every axis whose
    size or scale changes).  Give ``sizes`` (the full output shape) or
    ``scales`` (one per axis).  exclude_outside does not change nearest or
    linear results (edge taps are clamped); extrapolation_value only applies to
    tf_crop_and_resize, which is not implemented."""
    op = "resize"
    x = _float_nd(x, op, min_ndim=1)
    check_resize_modes(op, mode, coordinate_transformation_mode, nearest_mode)
    _flag(exclude_outside, "exclude_outside", op)
    _real(extrapolation_value, "extrapolation_value", op)
    sizes, scales = resize_sizes(op, x.shape, sizes, scales)
    attrs = {"mode": mode, "coordinate_transformation_mode": coordinate_transformation_mode,
             "nearest_mode": nearest_mode, "scales": scales}
    return run(op, backend, (x,), attrs, out, sizes, x.dtype, alias_ok=False)


def upsample(x, scales, mode="nearest", out=None, backend=None) -> np.ndarray:
    """ONNX Upsample (opsets 7-9): ``resize`` by ``scales`` with the asymmetric
    transform and floor rounding (integer scales repeat every element)."""
    return resize(x, scales=scales, mode=mode, coordinate_transformation_mode="asymmetric",
                  nearest_mode="floor", out=out, backend=backend)


OPS = {"max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d, "global_avg_pool": global_avg_pool,
       "global_max_pool": global_max_pool, "batch_norm": batch_norm, "lrn": lrn, "pad": pad,
       "concat": concat, "flatten": flatten, "resize": resize, "upsample": upsample}
