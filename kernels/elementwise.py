"""Elementwise Numba kernels: unary ops, binary ops with broadcasting, where.

Every kernel runs over one canonical iteration space: a rank-4 shape with
per-operand element strides (0 for a broadcast dimension, negative allowed),
given as raw addresses (see ``_ptr``).  The caller (pyinfer.backends.numba_backend)
coalesces dimensions first, so a contiguous or scalar-broadcast operand reaches
the innermost loop with stride 1 or 0, where a dedicated loop vectorizes.

One kernel per (op, dtype): each op's kernel is made by ``_make_*`` with the
opcode as a closure constant, so LLVM sees only that op's code (an opcode
switch in the loop would block vectorization); the closure holds an int only,
so Numba's disk cache keys it stably.  Kernels compile lazily on first use.

Work is split into ``block``-element pieces of the flattened space; ``prange``
hands each thread whole pieces, so a thread writes only its own part of out.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import fastmath as fm
from ._ptr import ptr, ptr_u8

FM = {"contract", "arcp", "nsz"}   # no nnan/ninf: NaN and Inf must survive
BLOCK = 16384                      # elements a thread takes at a time (64 KiB of f32)

UNARY = ("exp", "log", "sqrt", "rsqrt", "abs", "neg", "tanh", "sigmoid", "relu",
         "gelu", "gelu_tanh", "silu", "erf")
BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")


@njit(inline="always")
def unary_op(op, x):
    if op == 0:
        return fm.exp(x)
    elif op == 1:
        return fm.log(x)
    elif op == 2:
        return math.sqrt(x)
    elif op == 3:
        return fm.rsqrt(x)
    elif op == 4:
        return abs(x)
    elif op == 5:
        return -x
    elif op == 6:
        return fm.tanh(x)
    elif op == 7:
        return fm.sigmoid(x)
    elif op == 8:
        return fm.relu(x)
    elif op == 9:
        return fm.gelu(x)
    elif op == 10:
        return fm.gelu_tanh(x)
    elif op == 11:
        return fm.silu(x)
    else:
        return fm.erf(x)


@njit(inline="always")
def binary_op(op, a, b):
    if op == 0:
        return a + b
    elif op == 1:
        return a - b
    elif op == 2:
        return a * b
    elif op == 3:
        return a / b
    elif op == 4:
        return a ** b
    elif op == 5:
        r = a if a >= b else b        # NaN in b: the comparison fails, b wins
        return a if a != a else r     # NaN in a
    else:
        r = a if a <= b else b
        return a if a != a else r


@njit(inline="always")
def _row(r, shape):
    """(i0, i1, i2) of flattened row r of the first three dims."""
    i2 = r % shape[2]
    t = r // shape[2]
    return t // shape[1], t % shape[1], i2


@njit(inline="always")
def _off(i0, i1, i2, j, s):
    return i0 * s[0] + i1 * s[1] + i2 * s[2] + j * s[3]


def _make_unary(op):
    @njit(parallel=True, cache=True, error_model="numpy", fastmath=FM)
    def kernel(px, po, tag, shape, sx, so, block):
        X = ptr(px, tag)
        O = ptr(po, tag)
        n3 = shape[3]
        total = shape[0] * shape[1] * shape[2] * n3
        nblocks = (total + block - 1) // block
        inplace = px == po and sx[3] == so[3]
        for blk in prange(nblocks):
            pos = blk * block
            end = min(pos + block, total)
            r = pos // n3
            j = pos - r * n3
            while pos < end:
                cnt = min(n3 - j, end - pos)
                i0, i1, i2 = _row(r, shape)
                ox = _off(i0, i1, i2, j, sx)
                oo = _off(i0, i1, i2, j, so)
                if inplace and ox == oo and so[3] == 1:
                    for i in range(oo, oo + cnt):       # one pointer: no alias check
                        O[i] = unary_op(op, O[i])
                elif sx[3] == 1 and so[3] == 1:
                    for i in range(cnt):
                        O[oo + i] = unary_op(op, X[ox + i])
                else:
                    for i in range(cnt):
                        O[oo + i * so[3]] = unary_op(op, X[ox + i * sx[3]])
                pos += cnt
                r += 1
                j = 0
    return kernel


def _make_binary(op):
    @njit(parallel=True, cache=True, error_model="numpy", fastmath=FM)
    def kernel(pa, pb, po, tag, shape, sa, sb, so, block):
        A = ptr(pa, tag)
        B = ptr(pb, tag)
        O = ptr(po, tag)
        n3 = shape[3]
        total = shape[0] * shape[1] * shape[2] * n3
        nblocks = (total + block - 1) // block
        a3, b3, o3 = sa[3], sb[3], so[3]
        for blk in prange(nblocks):
            pos = blk * block
            end = min(pos + block, total)
            r = pos // n3
            j = pos - r * n3
            while pos < end:
                cnt = min(n3 - j, end - pos)
                i0, i1, i2 = _row(r, shape)
                oa = _off(i0, i1, i2, j, sa)
                ob = _off(i0, i1, i2, j, sb)
                oo = _off(i0, i1, i2, j, so)
                if o3 == 1 and a3 == 1 and b3 == 1:
                    if pa == po and oa == oo:             # in place into a
                        for i in range(oo, oo + cnt):
                            O[i] = binary_op(op, O[i], B[ob - oo + i])
                    else:
                        for i in range(cnt):
                            O[oo + i] = binary_op(op, A[oa + i], B[ob + i])
                elif o3 == 1 and a3 == 1 and b3 == 0:
                    bv = B[ob]
                    if pa == po and oa == oo:
                        for i in range(oo, oo + cnt):
                            O[i] = binary_op(op, O[i], bv)
                    else:
                        for i in range(cnt):
                            O[oo + i] = binary_op(op, A[oa + i], bv)
                elif o3 == 1 and a3 == 0 and b3 == 1:
                    av = A[oa]
                    for i in range(cnt):
                        O[oo + i] = binary_op(op, av, B[ob + i])
                else:
                    for i in range(cnt):
                        O[oo + i * o3] = binary_op(op, A[oa + i * a3], B[ob + i * b3])
                pos += cnt
                r += 1
                j = 0
    return kernel


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FM)
def where_kernel(pc, pa, pb, po, tag, shape, sc, sa, sb, so, block):
    C = ptr_u8(pc)
    A = ptr(pa, tag)
    B = ptr(pb, tag)
    O = ptr(po, tag)
    n3 = shape[3]
    total = shape[0] * shape[1] * shape[2] * n3
    nblocks = (total + block - 1) // block
    c3, a3, b3, o3 = sc[3], sa[3], sb[3], so[3]
    for blk in prange(nblocks):
        pos = blk * block
        end = min(pos + block, total)
        r = pos // n3
        j = pos - r * n3
        while pos < end:
            cnt = min(n3 - j, end - pos)
            i0, i1, i2 = _row(r, shape)
            oc = _off(i0, i1, i2, j, sc)
            oa = _off(i0, i1, i2, j, sa)
            ob = _off(i0, i1, i2, j, sb)
            oo = _off(i0, i1, i2, j, so)
            if o3 == 1 and c3 == 1 and a3 == 1 and b3 == 1:
                for i in range(cnt):
                    O[oo + i] = A[oa + i] if C[oc + i] != 0 else B[ob + i]
            elif o3 == 1 and c3 == 1 and a3 == 1 and b3 == 0:
                bv = B[ob]
                for i in range(cnt):
                    O[oo + i] = A[oa + i] if C[oc + i] != 0 else bv
            else:
                for i in range(cnt):
                    O[oo + i * o3] = A[oa + i * a3] if C[oc + i * c3] != 0 else B[ob + i * b3]
            pos += cnt
            r += 1
            j = 0


unary_kernels = {name: _make_unary(i) for i, name in enumerate(UNARY)}
binary_kernels = {name: _make_binary(i) for i, name in enumerate(BINARY)}
