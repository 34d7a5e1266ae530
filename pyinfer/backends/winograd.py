"""Winograd 3x3 convolution: csrc/pi_winograd.c behind a validating wrapper.

F(m x m, 3x3) turns a 3x3, stride-1 convolution into (m+2)^2 small GEMMs over
the channels, with 2.25x (m = 2) or 4x (m = 4) fewer multiplies than a direct
convolution; the input and output transforms and the epilogue (bias, residual,
activation, clip) run in C around them.  This module is not a registry backend
(it is not named ``c_*.py``): conv2d's dispatcher imports it and decides when
to use it.  Usage:

    why = winograd.supports(x.shape, w.shape, stride, dilation, groups, x.dtype)
    wt = winograd.transform_weights(w, tile=4)          # once, at plan time
    y = winograd.conv3x3(x, wt, 4, pads, bias=b, activation="relu")

Accuracy: the transforms are exact in float64 here (U = G g G^T, rounded once
to float32) but the input/output transforms run in float32; F(4)'s matrices
(entries up to 8 and 1/24) amplify rounding about 10x over F(2).  Measured by
tests/test_winograd.py: normwise error max|y - y_ref| / max|y_ref| below 1e-4
for unit-scale data (typically ~1e-6 for F(2), ~1e-5 for F(4)).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..errors import BackendUnavailableError, ShapeError, dtype_error, shape_error
from . import _native
from ._native import Scratch

OP = "winograd.conv3x3"
TILES = (2, 4)
_F32 = np.dtype(np.float32)

# Activation names accepted besides the PI_ACT_* codes: those of the GEMM
# epilogue plus Op.CONV's relu6 and clip (both done by the C clamp).
_ACT_NAMES = ("relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh")

# G of F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2016; points 0, +-1 and 0, +-1, +-2).
_G = {
    2: np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64),
    4: np.array([[1 / 4, 0, 0],
                 [-1 / 6, -1 / 6, -1 / 6],
                 [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6],
                 [1 / 24, -1 / 12, 1 / 6],
                 [0, 0, 1]], dtype=np.float64),
}


def supports(x_shape, w_shape, stride, dilation, groups, dtype,
             pads=(1, 1, 1, 1)) -> Optional[str]:
    """None if the Winograd kernel can run this convolution, else why not.
    x_shape (N, C, H, W), w_shape (K, C/groups, kh, kw); stride and dilation
    ints or pairs; pads (top, left, bottom, right)."""
    if _native.lib is None:
        return _native.IMPORT_ERROR
    if np.dtype(dtype) != _F32:
        return f"dtype {np.dtype(dtype)} is not float32"
    if len(x_shape) != 4 or len(w_shape) != 4:
        return "not a 2-d convolution"
    if tuple(w_shape[2:]) != (3, 3):
        return f"kernel {tuple(w_shape[2:])} is not 3x3"
    if groups != 1:
        return f"groups={groups} (Winograd needs groups=1)"
    if _pair(stride) != (1, 1):
        return f"stride {stride} is not 1"
    if _pair(dilation) != (1, 1):
        return f"dilation {dilation} is not 1"
    if w_shape[1] != x_shape[1]:
        return f"weight channels {w_shape[1]} != input channels {x_shape[1]}"
    if pads[2] > 2 or pads[3] > 2:
        # the kernel wants every output row/column to touch the input (Ho <= H + top)
        return f"trailing pads {tuple(pads[2:])} above 2"
    return None


def _pair(v):
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def transform_weights(w: np.ndarray, tile: int) -> np.ndarray:
    """The weights (K, C, 3, 3) transformed (U = G g G^T, in float64, rounded
    once) and packed for the kernel: a C-contiguous float32 array of shape
    ((tile+2)^2, K, C) whose layout inside each slice is the micro-kernel's
    (panels of PI_WINOGRAD_MR output channels), opaque to callers."""
    _check_tile(tile)
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[2:] != (3, 3) or w.shape[0] < 1 or w.shape[1] < 1:
        raise shape_error("w", "(K, C, 3, 3) with K, C >= 1", w.shape, OP)
    if w.dtype.kind != "f":
        raise dtype_error("w", "float32 or float64", w.dtype, OP)
    k, c = w.shape[:2]
    g = _G[tile]
    a = tile + 2
    u = np.einsum("ir,kcrs,js->ijkc", g, w.astype(np.float64), g).reshape(a * a, k, c)
    mr = _native.lib.PI_WINOGRAD_MR
    packed = np.empty((a * a, k * c), dtype=np.float32)
    for k0 in range(0, k, mr):
        kr = min(mr, k - k0)
        # panel: for each input channel, its kr output channels contiguous
        packed[:, k0 * c:(k0 + kr) * c] = u[:, k0:k0 + kr, :].transpose(0, 2, 1).reshape(a * a, -1)
    return packed.reshape(a * a, k, c)


def _check_tile(tile):
    if isinstance(tile, bool) or tile not in TILES:
        raise ShapeError(f"{OP}: argument 'tile' expected 2 or 4, received {tile!r}")


def _activation(activation, clip_min, clip_max):
    """(PI_ACT code, clip flag, lo, hi) for an activation given as None, a
    PI_ACT_* code or a name (relu6 and clip become a clamp)."""
    lib = _native.lib
    lo, hi = -math.inf, math.inf
    if activation is None:
        return lib.PI_ACT_NONE, 0, lo, hi
    if isinstance(activation, (int, np.integer)) and not isinstance(activation, bool):
        if not lib.PI_ACT_NONE <= activation <= lib.PI_ACT_TANH:
            raise ShapeError(f"{OP}: argument 'activation' expected a PI_ACT_* code, "
                             f"received {activation}")
        return int(activation), 0, lo, hi
    if activation in _ACT_NAMES:
        return getattr(lib, "PI_ACT_" + activation.upper()), 0, lo, hi
    if activation == "relu6":
        return lib.PI_ACT_NONE, 1, 0.0, 6.0
    if activation == "clip":
        lo = -math.inf if clip_min is None else float(clip_min)
        hi = math.inf if clip_max is None else float(clip_max)
        if math.isnan(lo) or math.isnan(hi) or lo > hi:
            raise ShapeError(f"{OP}: arguments 'clip_min', 'clip_max' expected lo <= hi, "
                             f"received {clip_min}, {clip_max}")
        return lib.PI_ACT_NONE, 1, lo, hi
    raise ShapeError(f"{OP}: argument 'activation' expected None, a PI_ACT_* code or one of "
                     f"{_ACT_NAMES + ('relu6', 'clip')}, received {activation!r}")


def _f32_array(arr, name, shape):
    if not isinstance(arr, np.ndarray):
        raise dtype_error(name, "a float32 numpy.ndarray", type(arr).__name__, OP)
    if arr.dtype != _F32:
        raise dtype_error(name, "float32", arr.dtype, OP)
    if arr.shape != tuple(shape):
        raise shape_error(name, tuple(shape), arr.shape, OP)
    if not (arr.flags.c_contiguous and arr.flags.aligned):
        raise ShapeError(f"{OP}: argument '{name}' expected a C-contiguous, aligned array")
    return arr


_workspace = Scratch()  # this family's per-thread C scratch


def conv3x3(x, wt, tile, pads, bias=None, activation=None, residual=None, out=None, *,
            clip_min=None, clip_max=None):
    """y = act(conv3x3(x, w) + bias + residual), stride 1, zero padding.

    x: (N, C, H, W) float32 C-contiguous.  wt: transform_weights(w, tile).
    pads: (top, left, bottom, right) non-negative ints.  bias: (K,) or None.
    activation: None, a PI_ACT_* code, or a name ("relu", "gelu", "gelu_tanh",
    "silu", "sigmoid", "tanh", "relu6", "clip" with clip_min/clip_max).
    residual: (N, K, Ho, Wo) or None (it may be ``out`` itself).  out:
    (N, K, Ho, Wo) float32 C-contiguous, written fully, or None to allocate.
    Ho = H + top + bottom - 2, Wo = W + left + right - 2.  Returns out."""
    lib = _native.lib
    if lib is None:
        raise BackendUnavailableError(_native.IMPORT_ERROR)
    _check_tile(tile)
    a = tile + 2
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise shape_error("x", "a 4-d (N, C, H, W) array", getattr(x, "shape", type(x)), OP)
    n, c, h, w = x.shape
    _f32_array(x, "x", x.shape)
    if not isinstance(wt, np.ndarray) or wt.ndim != 3 or wt.shape[0] != a * a:
        raise shape_error("wt", f"({a * a}, K, C) from transform_weights(w, {tile})",
                          getattr(wt, "shape", type(wt)), OP)
    k = wt.shape[1]
    _f32_array(wt, "wt", (a * a, k, c))
    if n < 1 or c < 1 or h < 1 or w < 1 or k < 1:
        raise shape_error("x", "non-empty (N, C, H, W)", x.shape, OP)
    try:
        pt, pl, pb, pr = (int(p) for p in pads)
    except (TypeError, ValueError):
        raise shape_error("pads", "(top, left, bottom, right)", pads, OP) from None
    if min(pt, pl, pb, pr) < 0 or len(tuple(pads)) != 4:
        raise shape_error("pads", "four non-negative ints", tuple(pads), OP)
    ho, wo = h + pt + pb - 2, w + pl + pr - 2
    if ho < 1 or wo < 1:
        raise shape_error("pads", f"an output of at least 1x1 for input {h}x{w}",
                          f"{pads} (output {ho}x{wo})", OP)
    yshape = (n, k, ho, wo)
    if bias is not None:
        _f32_array(bias, "bias", (k,))
    if residual is not None:
        _f32_array(residual, "residual", yshape)
    act, clip, lo, hi = _activation(activation, clip_min, clip_max)
    if out is None:
        out = np.empty(yshape, dtype=_F32)
    else:
        _f32_array(out, "out", yshape)
        if np.shares_memory(out, x) or np.shares_memory(out, wt) or (
                bias is not None and np.shares_memory(out, bias)):
            raise ShapeError(f"{OP}: argument 'out' overlaps an input")
        if residual is not None and residual is not out and np.shares_memory(out, residual):
            raise ShapeError(f"{OP}: argument 'out' partially overlaps 'residual'")
    ffi = _native.ffi
    ws, ws_size = _workspace(lib.pi_winograd_workspace_bytes(tile, n, c, k, ho, wo))
    fp = "float[]"
    status = lib.pi_f32_winograd_conv3x3(
        tile, n, c, h, w, k, pt, pl, ho, wo,
        ffi.from_buffer(fp, x), ffi.from_buffer(fp, wt),
        ffi.NULL if bias is None else ffi.from_buffer(fp, bias),
        ffi.NULL if residual is None else ffi.from_buffer(fp, residual),
        act, clip, lo, hi, ffi.from_buffer(fp, out), ws, ws_size)
    _native.check(status, OP)
    return out
