"""Tiled, parallel GEMM in Numba: the portable fallback (the C GEMM is the fast path).

C[b] = act(alpha * A[b] @ B[b] + bias + residual[b]) for A (Bt, M, K) strided,
B packed by the caller into a C-contiguous (Bb, K, N) array (Bb = 1 when the
batch is broadcast).  Each ``prange`` task owns one MR x NB tile of C: for each
k it broadcasts MR values of A and runs one unit-stride loop over NB columns
of the packed B row, updating MR accumulator rows that stay in L1 (4 x 1 KiB);
that inner loop is what LLVM turns into ymm FMAs.  Tiles that share a column
block reuse the same B panel (K x NB floats) from L2.  The epilogue (alpha,
bias, residual, activation) is applied to the tile before it is stored, so C
is written once.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elementwise import unary_op
from ._ptr import ptr

FM = {"contract", "arcp", "nsz", "reassoc"}
MR = 4
NB = 256
# activation name -> elementwise unary opcode (0 = none)
ACT = {None: -1, "tanh": 6, "sigmoid": 7, "relu": 8, "gelu": 9, "gelu_tanh": 10, "silu": 11}


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FM)
def gemm_kernel(pa, bp, pc, tag, Bt, M, N, K, sab, sam, sak, sbb, scb, scm, scn,
                alpha, pbias, pres, srb, srm, srn, act):
    A = ptr(pa, tag)
    C = ptr(pc, tag)
    Bias = ptr(pbias, tag)
    R = ptr(pres, tag)
    mt = (M + MR - 1) // MR
    nt = (N + NB - 1) // NB
    for t in prange(Bt * nt * mt):
        bi = t // (nt * mt)
        rem = t - bi * nt * mt
        jt = rem // mt                       # column block outer: neighbours share B panel
        it = rem - jt * mt
        i0 = it * MR
        n0 = jt * NB
        h = min(MR, M - i0)
        w = min(NB, N - n0)
        acc = np.zeros((MR, NB), bp.dtype)
        ab = bi * sab + i0 * sam
        bb = bi * sbb + n0
        if h == MR:
            for k in range(K):
                a0 = A[ab + k * sak]
                a1 = A[ab + sam + k * sak]
                a2 = A[ab + 2 * sam + k * sak]
                a3 = A[ab + 3 * sam + k * sak]
                brow = bb + k * N
                for j in range(w):
                    bv = bp[brow + j]
                    acc[0, j] += a0 * bv
                    acc[1, j] += a1 * bv
                    acc[2, j] += a2 * bv
                    acc[3, j] += a3 * bv
        else:
            for i in range(h):
                for k in range(K):
                    a0 = A[ab + i * sam + k * sak]
                    brow = bb + k * N
                    for j in range(w):
                        acc[i, j] += a0 * bp[brow + j]
        for i in range(h):
            cb = bi * scb + (i0 + i) * scm + n0 * scn
            rb = bi * srb + (i0 + i) * srm + n0 * srn
            for j in range(w):
                v = alpha * acc[i, j]
                if pbias != 0:
                    v += Bias[n0 + j]
                if pres != 0:
                    v += R[rb + j * srn]
                if act >= 0:
                    v = unary_op(act, v)
                C[cb + j * scn] = v
