"""Softmax, log_softmax, layer_norm, rms_norm."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ._args import as_float_array, broadcast_shape, check_eps, normalize_axis, result_dtype
from ._dispatch import run


def _need_axis(x, op):
    if x.ndim == 0:
        raise ShapeError(f"{op}: argument 'x' expected at least 1 dimension, received a 0-d array")


def _softmax(op, x, axis, out, backend):
    x = as_float_array(x, "x", op)
    _need_axis(x, op)
    axis = normalize_axis(axis, x.ndim, op)
    return run(op, backend, (x,), {"axis": axis}, out, x.shape, x.dtype, alias_ok=True)


def softmax(x, axis=-1, out=None, backend=None) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along ``axis``; float32/float64, shape of x."""
    return _softmax("softmax", x, axis, out, backend)


def log_softmax(x, axis=-1, out=None, backend=None) -> np.ndarray:
    """(x - max) - log(sum(exp(x - max))) along ``axis``; float32/float64, shape of x."""
    return _softmax("log_softmax", x, axis, out, backend)


def _param(p, name, norm_shape, dtype, op):
    """weight/bias broadcast to the normalised shape, contiguous (they are small)."""
    if p is None:
        return None
    p = as_float_array(p, name, op, dtype)
    try:
        shape = broadcast_shape(op, **{name: p.shape, "x[axis:]": norm_shape})
    except ShapeError:
        shape = None
    if shape != tuple(norm_shape):
        raise ShapeError(f"{op}: argument '{name}' expected a shape broadcastable to "
                         f"x.shape[axis:] = {tuple(norm_shape)}, received {p.shape}")
    return np.ascontiguousarray(np.broadcast_to(p, norm_shape))


def layer_norm(x, weight=None, bias=None, eps=1e-5, axis=-1, out=None, backend=None):
    """(x - mean) / sqrt(var + eps) * weight + bias, statistics over x.shape[axis:]
    (ONNX LayerNormalization).  weight/bias broadcast to x.shape[axis:] or None."""
    dtype = result_dtype("layer_norm", x=x)
    x = as_float_array(x, "x", "layer_norm", dtype)
    _need_axis(x, "layer_norm")
    axis = normalize_axis(axis, x.ndim, "layer_norm")
    eps = check_eps(eps, "layer_norm")
    norm_shape = x.shape[axis:]
    w = _param(weight, "weight", norm_shape, dtype, "layer_norm")
    b = _param(bias, "bias", norm_shape, dtype, "layer_norm")
    return run("layer_norm", backend, (x, w, b), {"axis": axis, "eps": eps}, out, x.shape,
               dtype, alias_ok=True)


def rms_norm(x, weight=None, eps=1e-5, axis=-1, out=None, backend=None):
    """x / sqrt(mean(x*x) + eps) * weight, statistics over x.shape[axis:]
    (ONNX RMSNormalization)."""
    x = as_float_array(x, "x", "rms_norm")
    _need_axis(x, "rms_norm")
    axis = normalize_axis(axis, x.ndim, "rms_norm")
    eps = check_eps(eps, "rms_norm")
    w = _param(weight, "weight", x.shape[axis:], x.dtype, "rms_norm")
    return run("rms_norm", backend, (x, w), {"axis": axis, "eps": eps}, out, x.shape,
               x.dtype, alias_ok=True)


OPS = {"softmax": softmax, "log_softmax": log_softmax, "layer_norm": layer_norm,
       "rms_norm": rms_norm}
