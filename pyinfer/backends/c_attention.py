"""The ``c`` backend's fused attention (csrc/pi_attention.c).

``softmax(q @ kᵀ * scale + mask) @ v`` in one C call, reading q, k, v and the
mask through their strides (transposed views of the (B, S, H*D) projections,
masks broadcast by zero strides) and writing ``out`` through its strides.
The C kernel addresses two batch axes (b, h); any number of NumPy batch dims
works when they merge into two that every operand addresses with one stride
each, which views of contiguous tensors always do.

``Attention`` holds everything about a call that depends only on shapes,
dtypes and strides; the plan builds one when it is prepared, so that a run is
a stride comparison and the C call.  Kernel signature:
``fn(q, k, v, mask, *, scale, out)`` with q, k, v, mask (or None) and out
sharing their batch dims (pyinfer.ops.attention broadcasts them).
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ..registry import register
from ._native import Scratch, check, ffi, lib

PRIORITY = 20
_FNS = {np.dtype(np.float32): ("pi_f32_attention", "float *"),
        np.dtype(np.float64): ("pi_f64_attention", "double *")}
_scratch = Scratch()


def _merge_batch(shape: tuple, strides: list) -> Optional[list]:
    """The batch dims ``shape`` (each operand's byte strides for them in
    ``strides``) as exactly two (size, [stride per operand]) axes, or None when
    they do not merge into two.  Adjacent dims merge when, for every operand,
    the outer stride is the inner one times the inner size."""
    axes: list = []
    for i, n in enumerate(shape):
        if n == 1:
            continue
        st = [s[i] for s in strides]
        if axes and all(ps == s * n for ps, s in zip(axes[-1][1], st)):
            axes[-1] = (axes[-1][0] * n, st)
        else:
            axes.append((n, st))
    if len(axes) > 2:
        return None
    while len(axes) < 2:
        axes.insert(0, (1, [0] * len(strides)))
    return axes


class Attention:
    """The C call for one layout of (q, k, v, mask, out): sizes, byte strides
    and the function, prepared once.  Build with ``Attention.plan(...)``,
    which returns the reason instead when the C kernel cannot run the call."""

    __slots__ = ("dtype", "fn", "cast", "sizes", "scale", "strides", "c_strides", "elem")

    @classmethod
    def plan(cls, q, k, v, mask, out, scale) -> Union["Attention", str]:
        dt = out.dtype
        if dt not in _FNS:
            return f"dtype {dt} is not float32/float64"
        arrays = [a for a in (q, k, v, mask, out) if a is not None]
        for a in arrays:
            if a.dtype != dt:
                return f"input dtype {a.dtype} differs from the result dtype {dt}"
            if any(s % dt.itemsize for s in a.strides):
                return "a stride that is not a whole number of elements"
        if any(s == 0 and n > 1 for s, n in zip(out.strides, out.shape)):
            return "'out' has a zero (broadcast) stride"
        if k.shape[-2] == 0:
            return "no keys (k.shape[-2] == 0)"
        batch = out.shape[:-2]
        axes = _merge_batch(batch, [a.strides[:-2] for a in arrays])
        if axes is None:
            return f"the batch dims {batch} do not merge into two strided axes"
        self = cls()
        self.dtype = dt
        name, self.cast = _FNS[dt]
        self.fn = getattr(lib, name)
        self.elem = dt.itemsize
        sq, d = q.shape[-2:]
        sk, dv = v.shape[-2:]
        self.sizes = (axes[0][0], axes[1][0], sq, sk, d, dv)
        self.scale = float(scale)
        self.strides = tuple(a.strides for a in (q, k, v, mask, out) if a is not None)
        cs = []
        for i, a in enumerate(arrays):
            cs.append(ffi.new("pi_index[4]", [axes[0][1][i], axes[1][1][i]] + list(a.strides[-2:])))
        if mask is None:
            cs.insert(3, ffi.NULL)
        self.c_strides = cs
        return self

    def __call__(self, q, k, v, mask=None, *, out):
        arrays = (q, k, v, out) if mask is None else (q, k, v, mask, out)
        if tuple(a.strides for a in arrays) != self.strides:
            # Another layout than the one planned (a caller's strided output):
            # plan this call afresh.
            again = Attention.plan(q, k, v, mask, out, self.scale)
            if isinstance(again, str):
                raise ValueError(f"attention: the C kernel cannot run this layout: {again}")
            return again(q, k, v, mask, out=out)
        c = self.cast
        nb, nh, sq, sk, d, dv = self.sizes
        wsb = lib.pi_attention_workspace_bytes(self.elem, sq, sk, d, dv, lib.pi_get_num_threads())
        ws, wsb = _scratch(wsb)
        qs, ks, vs, ms, os_ = self.c_strides
        check(self.fn(nb, nh, sq, sk, d, dv, self.scale,
                      ffi.cast(c, q.ctypes.data), qs, ffi.cast(c, k.ctypes.data), ks,
                      ffi.cast(c, v.ctypes.data), vs,
                      ffi.NULL if mask is None else ffi.cast(c, mask.ctypes.data), ms,
                      ffi.cast(c, out.ctypes.data), os_, ws, wsb), "attention")


def _supports(q, k, v, mask, *, scale, out) -> Optional[str]:
    got = Attention.plan(q, k, v, mask, out, scale)
    return got if isinstance(got, str) else None


@register("attention", "c", supports=_supports, priority=PRIORITY)
def attention(q, k, v, mask, *, scale, out):
    Attention.plan(q, k, v, mask, out, scale)(q, k, v, mask, out=out)
