"""Scaled dot-product attention: ``softmax(q @ kᵀ * scale + mask) @ v``.

The reference (``attention_ref``, registered as the ``numpy`` kernel) is the
formula itself in the working dtype, exactly what the graph's ATTENTION node
means (pyinfer.graph.reference); the ``c`` kernel (pyinfer.backends.c_attention)
fuses it into one pass.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..backends.numpy_ref import softmax_ref
from ..errors import shape_error
from ..registry import register
from ._args import as_float_array, broadcast_shape, result_dtype
from ._dispatch import run


def attention_ref(q, k, v, mask, scale):
    """softmax(q @ swapaxes(k, -1, -2) * scale + mask, axis=-1) @ v in q's dtype."""
    with np.errstate(all="ignore"):
        s = np.matmul(q, np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
        if mask is not None:
            s = s + mask
        return np.matmul(softmax_ref(s, -1), v)


@register("attention", "numpy")
def _attention_numpy(q, k, v, mask, *, scale, out):
    np.copyto(out, attention_ref(q, k, v, mask, scale), casting="unsafe")


def _scale(scale, d, op):
    if scale is None:
        if d == 0:
            raise shape_error("scale", "a value when the head dim is 0 (the default "
                              "1/sqrt(D) is undefined)", None, op)
        return 1.0 / math.sqrt(d)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or \
            not math.isfinite(float(scale)):
        raise shape_error("scale", "a finite real number or None", repr(scale), op)
    return float(scale)


def attention(q, k, v, mask=None, scale=None, out=None, backend=None) -> np.ndarray:
    """``softmax(q @ swapaxes(k, -1, -2) * scale + mask, axis=-1) @ v``.

    q ``(..., Sq, D)``, k ``(..., Sk, D)``, v ``(..., Sk, Dv)``, batch dims
    broadcast as in ``matmul``; returns ``(..., Sq, Dv)``.  ``mask``: None or
    an additive float mask broadcastable to ``(..., Sq, Sk)`` (``-inf`` hides a
    key; a row that hides every key is NaN, as the formula gives).  ``scale``
    defaults to ``1/sqrt(D)``.  float32/float64: the dtype of q, k, v promoted;
    the mask is converted to it.  Any strides: transposed views are read in
    place by the C kernel.
    """
    op = "attention"
    dtype = result_dtype(op, q=q, k=k, v=v)
    q, k, v = (as_float_array(x, name, op, dtype) for x, name in ((q, "q"), (k, "k"), (v, "v")))
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.ndim < 2:
            raise shape_error(name, "at least 2 dimensions (..., rows, features)", x.shape, op)
    if k.shape[-1] != q.shape[-1]:
        raise shape_error("k", f"{q.shape[-1]} features in its last axis to match 'q' "
                          f"{q.shape}", k.shape, op)
    if v.shape[-2] != k.shape[-2]:
        raise shape_error("v", f"{k.shape[-2]} rows to match 'k' {k.shape}", v.shape, op)
    if k.shape[-2] == 0:
        raise shape_error("k", "at least one key (the softmax of an empty row is undefined)",
                          k.shape, op)
    batch = broadcast_shape(op, q=q.shape[:-2], k=k.shape[:-2], v=v.shape[:-2])
    (sq, d), sk, dv = q.shape[-2:], k.shape[-2], v.shape[-1]
    scale = _scale(scale, d, op)
    if mask is not None:
        mask = as_float_array(mask, "mask", op, dtype)
        scores = batch + (sq, sk)
        try:
            ok = np.broadcast_shapes(mask.shape, scores) == scores
        except ValueError:
            ok = False
        if not ok:
            raise shape_error("mask", f"a shape broadcastable to the scores' {scores}",
                              mask.shape, op)
        mask = np.broadcast_to(mask, scores)
    q = np.broadcast_to(q, batch + (sq, d))
    k = np.broadcast_to(k, batch + (sk, d))
    v = np.broadcast_to(v, batch + (sk, dv))
    return run(op, backend, (q, k, v, mask), {"scale": scale}, out, batch + (sq, dv), dtype,
               alias_ok=False)


OPS = {"attention": attention}
