"""Reduction Numba kernels: sum/mean/max/min and argmax over one canonical (O, K, N) space.

The caller moves the reduced axes into one K run (merging them, or reducing
one run at a time) so that x is (O, K, N) with element strides (so, sk, sn)
and out is (O, N) with strides (oo, on).  Two loop shapes:

* N == 1 (reduce the innermost run): each row's K elements are reduced by a
  unit-stride loop LLVM vectorizes (reassoc lets it keep 4x8 partial sums).
* N > 1: a tile of up to TN columns is reduced down K; the column loop is the
  vectorized one.

Sums accumulate in float64 for float32 input (no accumulated rounding: the
result is the exactly-rounded sum of the values up to ~K*2**-53), and in
float64 blocks of BK for float64 input (error grows like K/BK, not K).
max/min keep NaN with a flag (a NaN-propagating select would not vectorize).
``prange`` goes over rows (N == 1) or over (row, column tile) pairs.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._ptr import ptr, ptr_i64

FM = {"contract", "arcp", "nsz", "reassoc"}   # reassoc: vector partial sums; no nnan/ninf
TN = 256
BK = 512
SUM, MAX, MIN = 0, 1, 2


@njit(inline="always")
def _row_reduce(op, X, base, K, sk):
    if op == SUM:
        total = 0.0
        if sk == 1:
            k0 = 0
            while k0 < K:
                k1 = min(k0 + BK, K)
                acc = 0.0
                for k in range(base + k0, base + k1):
                    acc += np.float64(X[k])
                total += acc
                k0 = k1
        else:
            for k in range(K):
                total += np.float64(X[base + k * sk])
        return total
    m = X[base]
    nan = False
    if sk == 1:
        for k in range(base, base + K):
            v = X[k]
            nan |= v != v
            if op == MAX:
                m = v if v > m else m
            else:
                m = v if v < m else m
    else:
        for k in range(K):
            v = X[base + k * sk]
            nan |= v != v
            if op == MAX:
                m = v if v > m else m
            else:
                m = v if v < m else m
    return np.float64(m) if not nan else np.nan


def _make_reduce(op):
    @njit(parallel=True, cache=True, error_model="numpy", fastmath=FM)
    def kernel(px, po, tag, O, K, N, so, sk, sn, oo, on, scale):
        X = ptr(px, tag)
        Y = ptr(po, tag)
        if N == 1:
            for o in prange(O):
                Y[o * oo] = _row_reduce(op, X, o * so, K, sk) * scale
            return
        ntiles = (N + TN - 1) // TN
        for t in prange(O * ntiles):
            o = t // ntiles
            n0 = (t - o * ntiles) * TN
            w = min(TN, N - n0)
            base = o * so + n0 * sn
            acc = np.zeros(TN, np.float64)
            m = np.empty(TN, np.float64)
            nan = np.zeros(TN, np.bool_)
            if op != SUM:
                for i in range(w):
                    m[i] = X[base + i * sn]
            for k in range(K):
                b = base + k * sk
                if op == SUM:
                    if sn == 1:
                        for i in range(w):
                            acc[i] += np.float64(X[b + i])
                    else:
                        for i in range(w):
                            acc[i] += np.float64(X[b + i * sn])
                else:
                    for i in range(w):
                        v = X[b + i * sn]
                        nan[i] |= v != v
                        if op == MAX:
                            m[i] = v if v > m[i] else m[i]
                        else:
                            m[i] = v if v < m[i] else m[i]
            ob = o * oo + n0 * on
            for i in range(w):
                if op == SUM:
                    Y[ob + i * on] = acc[i] * scale
                else:
                    Y[ob + i * on] = m[i] if not nan[i] else np.nan
    return kernel


reduce_kernels = {"sum": _make_reduce(SUM), "max": _make_reduce(MAX), "min": _make_reduce(MIN)}


@njit(parallel=True, cache=True, error_model="numpy", fastmath={"contract", "arcp", "nsz"})
def argmax_kernel(px, po, tag, O, K, N, so, sk, sn, oo, on):
    """First index of the max along K; the first NaN wins (NumPy)."""
    X = ptr(px, tag)
    Y = ptr_i64(po)
    for t in prange(O * N):
        o = t // N
        n = t - o * N
        base = o * so + n * sn
        m = X[base]
        nan = False
        for k in range(K):                        # vectorizable pass: max and NaN flag
            v = X[base + k * sk]
            nan |= v != v
            m = v if v > m else m
        best = 0
        for k in range(K):                        # then the first index that has it
            v = X[base + k * sk]
            if (nan and v != v) or (not nan and v == m):
                best = k
                break
        Y[o * oo + n * on] = best
