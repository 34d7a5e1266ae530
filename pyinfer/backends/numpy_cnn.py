"""The reference backend for the CNN ops: pooling, batch norm, pad, LRN, resize,
concat and flatten, each written plainly in NumPy (STYLE.md 3).

These kernels take the arguments ``pyinfer.ops.cnn`` has already validated and
normalised (docs/kernel-contract.md): NCHW, pads as ``(top, left, bottom,
right)``, output shapes decided by the ops layer (``ceil_mode`` is already in
``out.shape``).  Everything is computed in float64 and stored in ``out``'s
dtype, so the fast kernels are compared against exact-as-possible answers.

Window conventions shared with the fast kernels:
* a window covers rows ``oh*sh - top + i*dh`` (i < kh), likewise for columns;
  taps outside the input are skipped (max) or count as 0 (avg);
* a max over a window with no input element is ``-inf``;
* avg divides by the number of taps inside ``[-top, H+bottom) x [-left, W+right)``
  (``count_include_pad``) or inside the input; taps that ``ceil_mode`` adds
  past the bottom/right padding never count (PyTorch's and ONNX Runtime's rule).
"""
from __future__ import annotations

import numpy as np

from ..registry import register

# ---- pooling -------------------------------------------------------------------


def _window_taps(n_in, n_out, k, s, d, pad_lo):
    """(out index, tap) -> input index, as an (n_out, k) int array."""
    return (np.arange(n_out)[:, None] * s - pad_lo) + np.arange(k)[None, :] * d


def max_pool2d(x, *, kernel, strides, pads, dilations, out):
    oh, ow = out.shape[2:]
    x64 = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    th = _window_taps(h, oh, kernel[0], strides[0], dilations[0], pads[0])
    tw = _window_taps(w, ow, kernel[1], strides[1], dilations[1], pads[1])
    inside = ((th >= 0) & (th < h))[:, None, :, None] & ((tw >= 0) & (tw < w))[None, :, None, :]
    vals = x64[:, :, np.clip(th, 0, h - 1)[:, None, :, None], np.clip(tw, 0, w - 1)[None, :, None, :]]
    vals = np.where(inside, vals, -np.inf)           # (N, C, OH, OW, kh, kw)
    out[...] = vals.max(axis=(-2, -1))               # NaN propagates, as np.max does


def avg_pool2d(x, *, kernel, strides, pads, count_include_pad, out):
    oh, ow = out.shape[2:]
    x64 = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    th = _window_taps(h, oh, kernel[0], strides[0], 1, pads[0])
    tw = _window_taps(w, ow, kernel[1], strides[1], 1, pads[1])
    in_h, in_w = (th >= 0) & (th < h), (tw >= 0) & (tw < w)
    inside = in_h[:, None, :, None] & in_w[None, :, None, :]
    vals = x64[:, :, np.clip(th, 0, h - 1)[:, None, :, None], np.clip(tw, 0, w - 1)[None, :, None, :]]
    total = np.where(inside, vals, 0.0).sum(axis=(-2, -1))
    if count_include_pad:
        cnt_h = ((th >= -pads[0]) & (th < h + pads[2])).sum(axis=1)
        cnt_w = ((tw >= -pads[1]) & (tw < w + pads[3])).sum(axis=1)
    else:
        cnt_h, cnt_w = in_h.sum(axis=1), in_w.sum(axis=1)
    out[...] = total / (cnt_h[:, None] * cnt_w[None, :])


def global_avg_pool(x, *, out):
    axes = tuple(range(2, x.ndim))
    out[...] = np.asarray(x, np.float64).mean(axis=axes, keepdims=True)


def global_max_pool(x, *, out):
    axes = tuple(range(2, x.ndim))
    out[...] = np.asarray(x, np.float64).max(axis=axes, keepdims=True)


# ---- normalisation -------------------------------------------------------------


def _per_channel(p, ndim):
    """A length-C vector shaped to broadcast along axis 1 of an ndim array."""
    return np.asarray(p, np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(x, scale, bias, mean, var, *, eps, out):
    """(x - mean) / sqrt(var + eps) * scale + bias, channel axis 1 (inference)."""
    nd = x.ndim
    y = (np.asarray(x, np.float64) - _per_channel(mean, nd)) / np.sqrt(
        _per_channel(var, nd) + eps) * _per_channel(scale, nd) + _per_channel(bias, nd)
    out[...] = y


def channel_affine(x, scale, shift, *, out):
    """x * scale[c] + shift[c], channel axis 1: batch_norm with its parameters
    folded once (scale = gamma/sqrt(var+eps), shift = beta - mean*scale)."""
    nd = x.ndim
    out[...] = np.asarray(x, np.float64) * _per_channel(scale, nd) + _per_channel(shift, nd)


def fold_batch_norm(scale, bias, mean, var, eps, dtype):
    """(a, b) with ``batch_norm(x) == x * a + b`` per channel, formed in float64
    and rounded once to ``dtype`` (the graph does this at plan time)."""
    a = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    b = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * a
    return np.ascontiguousarray(a.astype(dtype)), np.ascontiguousarray(b.astype(dtype))


def lrn(x, *, size, alpha, beta, bias, out):
    """ONNX LRN: x / (bias + alpha/size * sum of x^2 over channels
    [c - floor((size-1)/2), c + ceil((size-1)/2)]) ** beta."""
    x64 = np.asarray(x, np.float64)
    c = x.shape[1]
    sq = x64 * x64
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    acc = np.zeros_like(x64)
    for ch in range(c):
        a, b = max(0, ch - lo), min(c - 1, ch + hi)
        acc[:, ch] = sq[:, a:b + 1].sum(axis=1)
    out[...] = x64 / (bias + alpha / size * acc) ** beta


# ---- data movement ---------------------------------------------------------------


def pad(x, *, pads, mode, value, out):
    """ONNX Pad: ``pads`` = all begins then all ends; negative entries crop.
    Crops apply first, then np.pad pads the cropped array (for reflect/edge the
    border values are those of the cropped array)."""
    nd = x.ndim
    begins, ends = pads[:nd], pads[nd:]
    crop = tuple(slice(max(0, -b), x.shape[i] - max(0, -e))
                 for i, (b, e) in enumerate(zip(begins, ends)))
    widths = [(max(0, b), max(0, e)) for b, e in zip(begins, ends)]
    src = x[crop]
    if mode == "constant":
        out[...] = np.pad(src, widths, mode="constant", constant_values=value)
    else:
        out[...] = np.pad(src, widths, mode=mode)


def concat(*xs, axis, out):
    np.concatenate(xs, axis=axis, out=out)


def flatten(x, *, out):
    out[...] = x.reshape(out.shape)


# ---- resize -----------------------------------------------------------------------

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                    "align_corners", "asymmetric", "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coords(n_in: int, n_out: int, scale: float, mode: str) -> np.ndarray:
    """ONNX Resize's coordinate transform: for every output index along one axis,
    the (fractional) input coordinate it samples, in float64."""
    x = np.arange(n_out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = n_out / (scale * n_in)
        offset = n_in / 2.0 * (1.0 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(x)
    if mode == "align_corners":
        return x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise ValueError(f"unknown coordinate_transformation_mode {mode!r}")


def nearest_index(coords: np.ndarray, n_in: int, mode: str) -> np.ndarray:
    """ONNX nearest_mode rounding of input coordinates, clamped to the input."""
    if mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    else:
        fl = np.floor(coords)
        frac = coords - fl
        tie_up = mode == "round_prefer_ceil"
        idx = np.where(frac > 0.5, fl + 1, np.where(frac < 0.5, fl, fl + 1 if tie_up else fl))
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


def linear_taps(coords: np.ndarray, n_in: int):
    """(i0, i1, weight of i1) for linear interpolation, indices clamped to the
    input (ONNX's edge handling: outside coordinates take the border value)."""
    fl = np.floor(coords)
    lam = coords - fl
    i0 = np.clip(fl, 0, n_in - 1).astype(np.int64)
    i1 = np.clip(fl + 1, 0, n_in - 1).astype(np.int64)
    return i0, i1, lam


def axis_scale(n_in: int, n_out: int, scales, axis: int) -> float:
    """The scale the coordinate transform uses: the given one, else out/in."""
    if scales is not None:
        return float(scales[axis])
    return n_out / n_in


def resize(x, *, mode, coordinate_transformation_mode, nearest_mode, scales, out):
    """ONNX Resize (nearest, linear) over every axis whose length or scale
    changes; linear is multilinear, done one axis at a time (separable).  An
    axis with the same length and scale 1 is left as it is (so the shifting
    transforms, tf_half_pixel_for_nn with ceil, never move N or C)."""
    y = np.asarray(x, np.float64)
    for ax in range(x.ndim):
        n_in, n_out = x.shape[ax], out.shape[ax]
        scale = axis_scale(n_in, n_out, scales, ax)
        if n_in == n_out and scale == 1.0:
            continue
        coords = source_coords(n_in, n_out, scale, coordinate_transformation_mode)
        if mode == "nearest":
            y = np.take(y, nearest_index(coords, n_in, nearest_mode), axis=ax)
        else:
            i0, i1, lam = linear_taps(coords, n_in)
            shape = [1] * x.ndim
            shape[ax] = n_out
            lam = lam.reshape(shape)
            y = np.take(y, i0, axis=ax) * (1.0 - lam) + np.take(y, i1, axis=ax) * lam
    out[...] = y


# ---- registration -------------------------------------------------------------------

for _name, _fn in {"max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
                   "global_avg_pool": global_avg_pool, "global_max_pool": global_max_pool,
                   "batch_norm": batch_norm, "channel_affine": channel_affine, "lrn": lrn,
                   "pad": pad, "concat": concat, "flatten": flatten,
                   "resize": resize}.items():
    register(_name, "numpy", priority=0)(_fn)

