"""conv2d: NCHW convolution with ONNX semantics and a fused epilogue.

``y = act(conv(x, w) + bias + residual)``.  Everything is validated here, so a
kernel (docs/kernel-contract.md, conv2d) sees normalised attributes: stride and
dilation pairs, pads ``(top, left, bottom, right)``, ``activation`` None, one
of the GEMM activations or "clip" with ``clip = (lo, hi)`` (relu6 is clip 0..6).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..backends import numpy_conv  # noqa: F401  (registers the reference kernel)
from ..errors import shape_error
from . import _dispatch
from ._args import as_float_array, broadcast_shape, result_dtype

ACTIVATIONS = (None, "relu", "relu6", "clip", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh")
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def pair(value, name: str, op: str, minimum: int = 1) -> tuple:
    """An int or a pair of ints, each >= minimum, as a pair."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(_is_int(v) and v >= minimum for v in items):
        raise shape_error(name, f"an int >= {minimum} or a pair of them", repr(value), op)
    return tuple(int(v) for v in items)


def resolve_auto_pad(auto_pad: str, hw, khw, stride, dilation) -> tuple:
    """ONNX auto_pad as explicit pads (top, left, bottom, right): SAME_* keep
    ceil(in / stride) outputs, the odd pixel at the end (UPPER) or start (LOWER)."""
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    begin, end = [], []
    for size, k, s, d in zip(hw, khw, stride, dilation):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return (begin[0], begin[1], end[0], end[1])


def normalize_pads(padding, name: str, op: str) -> tuple:
    """int, (ph, pw) or (top, left, bottom, right), all >= 0 -> 4-tuple."""
    if _is_int(padding):
        items = (padding,) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) in (2, 4):
        items = tuple(padding) * (2 if len(padding) == 2 else 1)
    else:
        raise shape_error(name, "an int, (pad_h, pad_w), (top, left, bottom, right) or an "
                          f"auto_pad name {AUTO_PADS[1:]}", repr(padding), op)
    if not all(_is_int(v) and v >= 0 for v in items):
        raise shape_error(name, "pads that are ints >= 0", repr(padding), op)
    return tuple(int(v) for v in items)


def check_geometry(x_shape, w_shape, stride, pads, dilation, groups, op: str,
                   x_name="x", w_name="w") -> tuple:
    """Channel/group agreement and a kernel that fits the padded input; returns
    (OH, OW).  Raises ShapeError naming the argument."""
    n, c, h, wd = x_shape
    k, cg, kh, kw = w_shape
    if not _is_int(groups) or groups < 1:
        raise shape_error("groups", "an int >= 1", repr(groups), op)
    if c % groups:
        raise shape_error("groups", f"a divisor of the {c} input channels of '{x_name}'",
                          groups, op)
    if k % groups:
        raise shape_error("groups", f"a divisor of the {k} output channels of '{w_name}'",
                          groups, op)
    if cg != c // groups:
        raise shape_error(w_name, f"{c // groups} input channels (C={c} / groups={groups}) "
                          "in dim 1", tuple(w_shape), op)
    if kh < 1 or kw < 1:
        raise shape_error(w_name, "a kernel of at least 1x1", tuple(w_shape), op)
    for axis, (size, p0, p1, kk, d) in enumerate(zip((h, wd), pads[:2], pads[2:], (kh, kw),
                                                     dilation)):
        reach = (kk - 1) * d + 1
        if reach > size + p0 + p1:
            raise shape_error(w_name, f"a kernel (dilated extent {reach}) no larger than the "
                              f"padded input ({size} + {p0} + {p1} along "
                              f"{'H' if axis == 0 else 'W'})", tuple(w_shape), op)
    oh = (h + pads[0] + pads[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return oh, ow


def normalize_activation(activation, clip_min, clip_max, op: str):
    """(activation for kernels, clip pair or None)."""
    if activation not in ACTIVATIONS:
        raise shape_error("activation", f"one of {ACTIVATIONS}", repr(activation), op)
    if activation == "relu6":
        return "clip", (0.0, 6.0)
    if activation == "clip":
        lo = -math.inf if clip_min is None else clip_min
        hi = math.inf if clip_max is None else clip_max
        for name, v in (("clip_min", lo), ("clip_max", hi)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v):
                raise shape_error(name, "a real number", repr(v), op)
        if lo > hi:
            raise shape_error("clip_max", f"a value >= clip_min ({lo})", hi, op)
        return "clip", (float(lo), float(hi))
    return activation, None


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None,
           residual=None, out=None, backend=None, clip_min=None, clip_max=None) -> np.ndarray:
    """2-D convolution of ``x`` (N, C, H, W) with ``w`` (K, C/groups, KH, KW):
    ``act(conv(x, w) + bias + residual)``, float32/float64.

    padding: int, (pad_h, pad_w), (top, left, bottom, right), or an ONNX auto_pad
    name ("SAME_UPPER", "SAME_LOWER", "VALID").  activation: None, relu, relu6,
    clip (with clip_min/clip_max), gelu, gelu_tanh, silu, sigmoid, tanh.
    residual: broadcastable to the output (N, K, OH, OW)."""
    op = "conv2d"
    dtype = result_dtype(op, x=x, w=w, bias=bias, residual=residual)
    x = as_float_array(x, "x", op, dtype)
    w = as_float_array(w, "w", op, dtype)
    for name, a in (("x", x), ("w", w)):
        if a.ndim != 4:
            raise shape_error(name, "a 4-d array (NCHW)" if name == "x" else
                              "a 4-d array (K, C/groups, KH, KW)", a.shape, op)
    stride = pair(stride, "stride", op)
    dilation = pair(dilation, "dilation", op)
    if isinstance(padding, str):
        if padding.upper() not in AUTO_PADS[1:]:
            raise shape_error("padding", f"one of {AUTO_PADS[1:]}", repr(padding), op)
        pads = resolve_auto_pad(padding.upper(), x.shape[2:], w.shape[2:], stride, dilation)
    else:
        pads = normalize_pads(padding, "padding", op)
    oh, ow = check_geometry(x.shape, w.shape, stride, pads, dilation, groups, op)
    groups = int(groups)
    shape = (x.shape[0], w.shape[0], oh, ow)
    if bias is not None:
        bias = as_float_array(bias, "bias", op, dtype)
        if bias.shape != (w.shape[0],):
            raise shape_error("bias", f"shape ({w.shape[0]},)", bias.shape, op)
        bias = np.ascontiguousarray(bias)
    if residual is not None:
        residual = as_float_array(residual, "residual", op, dtype)
        if residual.ndim > 4 or broadcast_shape(op, residual=residual.shape, out=shape) != shape:
            raise shape_error("residual", f"a shape broadcastable to {shape}", residual.shape, op)
        residual = np.broadcast_to(residual, shape)
    activation, clip = normalize_activation(activation, clip_min, clip_max, op)
    attrs = {"stride": stride, "pads": pads, "dilation": dilation, "groups": groups,
             "activation": activation, "clip": clip}
    return _dispatch.run(op, backend, (x, w, bias, residual), attrs, out, shape, dtype,
                         alias_ok=False)


OPS = {"conv2d": conv2d}

__all__ = ["conv2d"]
