"""softmax, log_softmax, layer_norm and rms_norm Numba kernels.

softmax/log_softmax run over the canonical (O, K, N) space of ``reduce`` (K is
the softmax axis); rows (N == 1) go whole to a thread, else (row, column tile)
pairs.  Each row is read three times while it is in cache: max, exp-and-sum
(exp written to out), scale.  out may be x itself: each element is read
before it is written at the same place.

The norms take rows (O, K): K = the trailing dims from ``axis``, merged into
one strided run by the caller.  Statistics accumulate in float64 and the
variance is two-pass (mean first, then mean of squared deviations): no
cancellation for rows far from zero.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import fastmath as fm
from ._ptr import ptr

FM = {"contract", "arcp", "nsz", "reassoc"}
TN = 64


@intrinsic
def _maximum(typingctx, a, b):
    """llvm.maximum: the larger of a, b, NaN if either is NaN.  Unlike the select
    ``v if v > m else m`` (which LLVM vectorizes only under nnan), a reduction over
    it vectorizes (vmaxps plus NaN blends), and it carries NaN through by itself."""
    if not (isinstance(a, types.Float) and a == b):
        return None
    sig = a(a, b)

    def codegen(context, builder, signature, args):
        ty = args[0].type
        name = "llvm.maximum.f32" if ty == ir.FloatType() else "llvm.maximum.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty]), name)
        return builder.call(fn, args)
    return sig, codegen


@njit(inline="always")
def _softmax_row(logsm, X, Y, bx, by, K, sk, ok):
    m = X[bx]
    if sk == 1:
        for k in range(K):
            m = _maximum(m, X[bx + k])
    else:
        for k in range(K):
            m = _maximum(m, X[bx + k * sk])
    s = 0.0
    if logsm:
        for k in range(K):
            s += np.float64(fm.exp(X[bx + k * sk] - m))
        c = m + math.log(s)
        for k in range(K):
            Y[by + k * ok] = X[bx + k * sk] - c
    else:
        if sk == 1 and ok == 1:
            # exp alone, then the float64 sum: fused, the float64 accumulator would
            # hold the exp loop to 4 lanes.
            for k in range(K):
                Y[by + k] = fm.exp(X[bx + k] - m)
            for k in range(K):
                s += np.float64(Y[by + k])
            r = 1.0 / s
            for k in range(K):
                Y[by + k] = Y[by + k] * r
        else:
            for k in range(K):
                e = fm.exp(X[bx + k * sk] - m)
                Y[by + k * ok] = e
                s += np.float64(e)
            r = 1.0 / s
            for k in range(K):
                Y[by + k * ok] = Y[by + k * ok] * r


def _make_softmax(logsm):
    @njit(parallel=True, cache=True, error_model="numpy", fastmath=FM)
    def kernel(px, po, tag, O, K, N, sx, sk, sn, so, ok, on):
        X = ptr(px, tag)
        Y = ptr(po, tag)
        if N == 1:
            for o in prange(O):
                _softmax_row(logsm, X, Y, o * sx, o * so, K, sk, ok)
            return
        ntiles = (N + TN - 1) // TN
        for t in prange(O * ntiles):
            o = t // ntiles
            n0 = (t - o * ntiles) * TN
            w = min(TN, N - n0)
            bx = o * sx + n0 * sn
            by = o * so + n0 * on
            m = np.empty(TN, np.float64)
            s = np.zeros(TN, np.float64)
            nan = np.zeros(TN, np.bool_)
            for i in range(w):
                m[i] = X[bx + i * sn]
            for k in range(K):
                for i in range(w):
                    v = X[bx + k * sk + i * sn]
                    nan[i] |= v != v
                    m[i] = v if v > m[i] else m[i]
            for i in range(w):
                if nan[i]:
                    m[i] = np.nan
            for k in range(K):
                for i in range(w):
                    v = X[bx + k * sk + i * sn]
                    e = fm.exp(v - fm.cast_like(v, m[i]))
                    if not logsm:
                        Y[by + k * ok + i * on] = e
                    s[i] += np.float64(e)
            for i in range(w):
                s[i] = (1.0 / s[i]) if not logsm else math.log(s[i]) + m[i]
            for k in range(K):
                for i in range(w):
                    j = by + k * ok + i * on
                    if logsm:
                        Y[j] = X[bx + k * sk + i * sn] - s[i]
                    else:
                        Y[j] = Y[j] * s[i]
    return kernel


softmax_kernel = _make_softmax(False)
log_softmax_kernel = _make_softmax(True)


def _make_norm(rms):
    @njit(parallel=True, cache=True, error_model="numpy", fastmath=FM)
    def kernel(px, pw, pb, po, tag, O, K, sx, kx, so, ko, eps):
        """y = (x - mean) / sqrt(var + eps) * w + b per row (rms: x / sqrt(mean(x*x) + eps) * w).
        pw/pb = 0: no weight / bias."""
        X = ptr(px, tag)
        W = ptr(pw, tag)
        B = ptr(pb, tag)
        Y = ptr(po, tag)
        for o in prange(O):
            bx = o * sx
            by = o * so
            mean = 0.0
            if not rms:
                for k in range(K):
                    mean += np.float64(X[bx + k * kx])
                mean /= K
            var = 0.0
            for k in range(K):
                d = np.float64(X[bx + k * kx]) - mean
                var += d * d
            var /= K
            r = 1.0 / math.sqrt(var + eps)
            mu = mean
            rr = r
            if pw != 0 and (rms or pb != 0):
                for k in range(K):
                    v = (np.float64(X[bx + k * kx]) - mu) * rr
                    Y[by + k * ko] = v * np.float64(W[k]) + (0.0 if rms else np.float64(B[k]))
            elif pw != 0:
                for k in range(K):
                    Y[by + k * ko] = (np.float64(X[bx + k * kx]) - mu) * rr * np.float64(W[k])
            else:
                for k in range(K):
                    v = (np.float64(X[bx + k * kx]) - mu) * rr
                    Y[by + k * ko] = v + (0.0 if (rms or pb == 0) else np.float64(B[k]))
    return kernel


layer_norm_kernel = _make_norm(False)
rms_norm_kernel = _make_norm(True)
