"""Layout canonicalisation for the pointer kernels (plain Python, no Numba).

``canon(out, *ins)`` aligns each input to ``out.shape`` by NumPy broadcasting
(stride 0 where a dim is missing or 1), drops size-1 dims, merges adjacent
dims that every operand walks contiguously, and pads to rank 4.  Returns
``(shape4, [strides4 per operand, out first])`` in elements, or None when more
than 4 dims remain (the caller then loops over the leading dims)."""
from __future__ import annotations


def addr(a) -> int:
    return a.__array_interface__["data"][0]


def bstrides(a, shape):
    """Element strides of ``a`` broadcast to ``shape``."""
    nd = len(shape)
    item = a.itemsize
    st = [0] * nd
    off = nd - a.ndim
    for d in range(a.ndim):
        if a.shape[d] != 1:
            st[off + d] = a.strides[d] // item
    return st


def coalesce(shape, strides_list):
    """Drop size-1 dims and merge mergeable neighbours; returns (shape, strides_list)."""
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    sh = [shape[d] for d in dims]
    sts = [[s[d] for d in dims] for s in strides_list]
    i = len(sh) - 2
    while i >= 0:
        if all(s[i] == s[i + 1] * sh[i + 1] for s in sts):
            sh[i + 1] *= sh[i]
            for s in sts:
                s[i + 1] = s[i + 1]
                del s[i]
            del sh[i]
        i -= 1
    return sh, sts


def canon(out, *ins):
    shape = out.shape
    strides = [bstrides(out, shape)] + [bstrides(a, shape) for a in ins]
    sh, sts = coalesce(shape, strides)
    if len(sh) > 4:
        return None
    pad = 4 - len(sh)
    sh = (1,) * pad + tuple(sh)
    sts = [(0,) * pad + tuple(s) for s in sts]
    return sh, sts
