"""Every int8 GEMM micro-kernel (csrc/pi_qgemm_ukernels.h) at the extremes of
its exactness argument, deterministically.

The 7-bit AVX2 kernel rests on one inequality: a vpmaddubsw pair sum
a0*d0 + a1*d1 with a in [0, 255] and d = b - b_zero in [-64, 64] stays within
+-32640 < 32767, so it never saturates.  The random differential tests of
tests/test_quant.py put a quarter of the weights on +-64 but rarely give a
pair two 255s against two equal-signed 64s; here every pair is exactly at the
bound (both signs, and mixed signs inside one k quad), with k tails around the
16-wide packing fast path and a k long enough that the s32 sums are large.
The 8-bit kernels get their own extremes (d = +-255: b = 127 or -128 against
a zero point at the other end; 127 / -128 where a column holds both signs).  Results are compared exactly with the int64
product; outputs are poisoned first.
"""
from __future__ import annotations

import numpy as np
import pytest

from pyinfer import ops
from pyinfer.backends import _native

if _native.lib is None:  # the C extension is a hard requirement, as in test_quant.py
    raise RuntimeError("pyinfer._native is not built; run python build_native.py")
from pyinfer.backends import c_quant  # noqa: E402

KS = (1, 3, 15, 16, 17, 67, 1543)


def _pattern(kind: str, k: int, n: int, top: int) -> np.ndarray:
    """(k, n) int64 weight offsets d = b - b_zero, |d| = top everywhere."""
    p = np.arange(k)[:, None]
    j = np.arange(n)[None, :]
    if kind == "plus":
        s = np.ones((k, n), np.int64)
    elif kind == "minus":
        s = -np.ones((k, n), np.int64)
    elif kind == "pairs":  # equal signs within a k pair, alternating pairs and columns
        s = np.where((p // 2 + j) % 2 == 0, 1, -1)
    else:  # "mixed": opposite signs inside each pair
        s = np.where((p + j) % 2 == 0, 1, -1)
    return s * top


def _weights(d: np.ndarray, wb: int):
    """int8 b and per-column int8 zero points with b - b_zero == d (returned).
    7-bit: d as given (+-64).  8-bit: a column of one sign gets d = +-255 (the
    zero point at the other end of int8); a column of both signs can span at
    most 255, so it gets b = 127 / -128 against a zero point of 0."""
    n = d.shape[1]
    if wb == 7:  # zero points anywhere that keeps b in int8
        bz = (np.arange(n) % 64 - 32).astype(np.int64)
    else:
        pos, neg = (d > 0).all(0), (d < 0).all(0)
        bz = np.where(pos, -128, np.where(neg, 127, 0)).astype(np.int64)
        d = np.where(d > 0, 127 - bz, -128 - bz)
    b = d + bz
    assert b.min() >= -128 and b.max() <= 127
    return b.astype(np.int8), bz.astype(np.int8), d


def _check(a, b, bz, d, az):
    m, n = a.shape[0], b.shape[1]
    w = ops.qweight(b, bz)
    exact = (a.astype(np.int64) - az) @ d
    s32 = np.full((m, n), -12345, np.int32)
    c_quant.qgemm(a, w, az, None, None, activation=None, out_scale=None, out_zero=None,
                  out=s32)
    np.testing.assert_array_equal(s32, exact)
    out = np.full((m, n), np.nan, np.float32)
    ops.qgemm(a, w, az, None, np.float32(0.5), np.float32(1.0), out=out, backend="c")
    ref = ops.qgemm(a, b, az, bz, np.float32(0.5), np.float32(1.0), backend="numpy")
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("kind", ["plus", "minus", "pairs", "mixed"])
def test_extreme_products_are_exact(ukernel, kind):
    """a = 255 everywhere (a_zero 0, so the raw sums are the extremes too)."""
    m, n = 2 * ukernel.mr + 1, ukernel.nr + 3
    top = 64 if ukernel.wb == 7 else 255
    for k in KS:
        b, bz, d = _weights(_pattern(kind, k, n, top), ukernel.wb)
        a = np.full((m, k), 255, np.uint8)
        _check(a, b, bz, d, 0)


def test_extreme_activations_mixed_rows(ukernel):
    """Rows of 255 beside rows of 0 and alternating 255/0 columns, nonzero
    a_zero: the zero-point correction at its largest against the same
    extreme weights."""
    n = ukernel.nr + 3
    top = 64 if ukernel.wb == 7 else 255
    for k in (17, 1543):
        b, bz, d = _weights(_pattern("pairs", k, n, top), ukernel.wb)
        rows = [np.full(k, 255), np.zeros(k), np.where(np.arange(k) % 2 == 0, 255, 0),
                np.where(np.arange(k) % 4 < 2, 0, 255)]
        a = np.array([rows[i % 4] for i in range(2 * ukernel.mr + 1)], np.uint8)
        _check(a, b, bz, d, 255)
        _check(a, b, bz, d, 0)


@pytest.mark.parametrize("offset,bits", [(64, 7), (-64, 7), (65, 8), (-65, 8)])
def test_the_seven_bit_boundary(offset, bits):
    """One weight at +-64 / +-65 from its column's zero point (the others at
    it): 7 bits up to 64 inclusive, and the automatic kernel choice is exact
    either way with a = 255 against it."""
    k, n = 19, 5
    bz = np.array([0, -50, 50, 20, -20], np.int64)
    d = np.zeros((k, n), np.int64)
    d[k - 1, 2] = offset if abs(bz[2] + offset) <= 127 else -offset
    d[1, 4] = offset
    b = (d + bz).astype(np.int8)
    w = ops.qweight(b, bz.astype(np.int8))
    assert c_quant.weight_bits(w) == bits
    a = np.full((7, k), 255, np.uint8)
    out = np.full((7, n), -12345, np.int32)
    c_quant.qgemm(a, w, 3, None, None, activation=None, out_scale=None, out_zero=None, out=out)
    np.testing.assert_array_equal(out, (a.astype(np.int64) - 3) @ d)
