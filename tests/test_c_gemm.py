"""The C GEMM (csrc/pi_gemm.c) against NumPy in float64, on every ISA this CPU
runs and both dtypes.  Sizes come from the micro-kernel list
(csrc/pi_gemm_ukernels.h via pi_gemm_ukernel_info): equal to, below and above
MR, NR, KC, MC and NC (STYLE.md 13); outputs are poisoned with NaN first.

Tolerance, per element (never loosened to pass): Higham's bound for a dot
product of length k, |fl(x.y) - x.y| <= gamma_k |x|.|y| with gamma_k ~ k*eps,
gives  (k + 4) * eps * S,  S = |alpha| (|A| @ |B|) + |bias| + |R|  (the +4
covers alpha, the sums across k blocks, bias and R); the activations' slope is
below 1.13, hence the factor 1.2; plus 16 eps (1 + |ref|) for the vector
activation's own approximation error.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pyinfer.backends import _native, c_gemm

ISAS = _native.isas_available()
DTYPES = [np.float32, np.float64]
ACTS = [None, "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"]
UKERNELS = c_gemm.ukernels()


def ukernel(isa: int, dtype, m: int = 2) -> c_gemm.UKernel:
    """The kernel GEMM uses on `isa` for `dtype` and M (what pi_gemm.c's
    dispatch picks): of the best ISA not above `isa`, the first entry with
    MR > 1, or for M == 1 the first with MR == 1 if that ISA has one."""
    cands = [u for u in UKERNELS if u.dtype == np.dtype(dtype) and u.isa <= isa]
    best = max(u.isa for u in cands if u.mr > 1)
    main = next(u for u in cands if u.isa == best and u.mr > 1)
    rows = [u for u in cands if u.isa == best and u.mr == 1]
    return rows[0] if m == 1 and rows else main


_erf = np.frompyfunc(math.erf, 1, 1)


def ref_act(x: np.ndarray, act):
    if act is None:
        return x
    if act == "relu":
        return np.maximum(x, 0)
    if act == "gelu":
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)).astype(np.float64))
    if act == "gelu_tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if act == "silu":
        return x / (1 + np.exp(-x))
    if act == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if act == "tanh":
        return np.tanh(x)
    raise AssertionError(act)


def check(a, b, got, *, bias=None, residual=None, alpha=1.0, act=None):
    """Assert got == act(alpha a@b + bias + residual) within the bound above
    (batched: a (..., M, K), b (..., K, N))."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    v = alpha * (a64 @ b64)
    s = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    for extra in (bias, residual):
        if extra is not None:
            v = v + extra.astype(np.float64)
            s = s + np.abs(extra.astype(np.float64))
    ref = ref_act(v, act)
    k = a.shape[-1]
    eps = np.finfo(got.dtype).eps
    tol = 1.2 * (k + 4) * eps * s + 16 * eps * (1 + np.abs(ref))
    err = np.abs(got.astype(np.float64) - ref)
    bad = ~(err <= tol)  # NaN (an unwritten poisoned element) fails
    if bad.any():
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} elements off; first at {idx}: got {got[idx]!r}, "
            f"ref {ref[idx]!r}, tol {tol[idx]!r}")


def run_gemm(a, b, bias=None, residual=None, alpha=1.0, act=None, out=None):
    m, n = a.shape[0], b.shape[1]
    if out is None:
        out = np.full((m, n), np.nan, a.dtype)
    c_gemm.gemm(a, b, bias, residual, alpha=alpha, activation=act, out=out)
    return out


def rand(rng, shape, dtype):
    return rng.uniform(-1, 1, shape).astype(dtype)


@pytest.fixture(params=ISAS, ids=lambda i: _native.ISA_NAMES[i])
def isa(request):
    with _native.force_isa(request.param):
        yield request.param


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param


def edges(t: int) -> list[int]:
    return sorted({1, max(t - 1, 1), t, t + 1, 2 * t + 1})


def test_list_is_consistent():
    names = [u.name for u in UKERNELS]
    assert len(set(names)) == len(names)
    for u in UKERNELS:
        tag = {0: "portable", 1: "avx2", 2: "avx512"}[u.isa]
        assert u.name == f"pi_{'f32' if u.dtype == np.float32 else 'f64'}_gemm_{u.mr}x{u.nr}__{tag}"
        assert u.nc % u.nr == 0 and u.mc % u.mr == 0
        assert 1 <= u.mr <= 16 and u.nr % {0: 1, 1: 32 // u.dtype.itemsize,
                                            2: 64 // u.dtype.itemsize}[u.isa] == 0
    for i in ISAS:
        for d in DTYPES:
            ukernel(i, d)


def test_tile_edges(isa, dtype):
    u = ukernel(isa, dtype)
    rng = np.random.default_rng(1)
    for m in edges(u.mr):
        for n in edges(u.nr):
            for k in (1, 7, u.kc, u.kc + 1):
                a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
                check(a, b, run_gemm(a, b))


def test_single_row_kernel(isa, dtype):
    """M == 1 (online inference) runs the 1xNR kernel where the ISA has one."""
    u = ukernel(isa, dtype, m=1)
    rng = np.random.default_rng(7)
    for n in edges(u.nr) + [3 * u.nr + 5]:
        for k in (1, 7, u.kc, u.kc + 1, 2 * u.kc + 3):
            a, b = rand(rng, (1, k), dtype), rand(rng, (k, n), dtype)
            check(a, b, run_gemm(a, b))
            bt = np.ascontiguousarray(b.T).T  # packed-B path
            bias = rand(rng, (n,), dtype)
            check(a, bt, run_gemm(a, bt, bias, None, 0.5, "gelu"), bias=bias, alpha=0.5, act="gelu")


def test_small_m_streamed(isa, dtype):
    """2 <= M <= 16 with contiguous B: B is streamed unpacked, on whichever
    MR > 1 kernel of the ISA reads it least (pi_gemm_select_stream); n covers
    the edges of every such kernel's NR."""
    rng = np.random.default_rng(8)
    nrs = sorted({u.nr for u in UKERNELS if u.isa == ukernel(isa, dtype).isa and u.mr > 1
                  and u.dtype == np.dtype(dtype)})
    ns = sorted({x for nr in nrs for x in (nr - 1, nr, nr + 1, 2 * nr + 1)} | {1})
    kc = ukernel(isa, dtype).kc
    for m in range(2, 17):
        for n in ns:
            k = kc + 1 if n % 2 else 9
            a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
            bias = rand(rng, (n,), dtype)
            check(a, b, run_gemm(a, b, bias, None, 1.0, "silu"), bias=bias, act="silu")


def test_cache_block_edges(isa, dtype):
    u = ukernel(isa, dtype)
    rng = np.random.default_rng(2)
    for m, n, k in [(u.mc - 1, u.nr + 3, 19), (u.mc, 2 * u.nr, u.kc), (u.mc + 1, 2 * u.nr + 5, u.kc + 3),
                    (2 * u.mc + 7, 3 * u.nr + 1, 2 * u.kc + 1), (2, u.nc + 5, 5),
                    (3 * u.mr + 40, u.nc + 1, 3)]:
        a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
        check(a, b, run_gemm(a, b))


def layouts(rng, shape, dtype):
    """The same logical matrix in several memory layouts."""
    x = rand(rng, shape, dtype)
    yield "contiguous", x
    yield "transposed", np.ascontiguousarray(x.T).T
    big = np.full((shape[0] * 2 + 1, shape[1] * 3 + 2), np.nan, dtype)
    view = big[1::2, 2::3]
    view[...] = x
    yield "strided", view
    yield "negative", np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    raw = np.zeros(x.nbytes + x.itemsize, np.uint8)[1:1 + x.nbytes]  # misaligned
    un = raw.view(dtype).reshape(shape)
    un[...] = x
    yield "unaligned", un


@pytest.mark.parametrize("small_m", [False, True])
def test_layouts(isa, dtype, small_m):
    u = ukernel(isa, dtype)
    rng = np.random.default_rng(3)
    m, n, k = (3 if small_m else 2 * u.mr + 3), 2 * u.nr + 5, 37
    for an, a in layouts(rng, (m, k), dtype):
        for bn, b in layouts(rng, (k, n), dtype):
            check(a, b, run_gemm(a, b)), (an, bn)
    a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
    # Zero strides: one row of B repeated, one column of A repeated.
    b0 = np.broadcast_to(b[:1], (k, n))
    a0 = np.broadcast_to(a[:, :1], (m, k))
    check(a, b0, run_gemm(a, b0))
    check(a0, b, run_gemm(a0, b))
    check(a, np.broadcast_to(b[:, :1], (k, n)), run_gemm(a, np.broadcast_to(b[:, :1], (k, n))))
    # Non-contiguous and unaligned out.
    big = np.full((m, 2 * n), np.nan, dtype)
    out = big[:, ::2]
    run_gemm(a, b, out=out)
    check(a, b, out)
    assert np.isnan(big[:, 1::2]).all()
    outt = np.full((n, m), np.nan, dtype).T
    check(a, b, run_gemm(a, b, out=outt))
    raw = np.zeros(m * n * a.itemsize + 1, np.uint8)[1:]
    outu = raw.view(dtype).reshape(m, n)
    outu[...] = np.nan
    check(a, b, run_gemm(a, b, out=outu))


@pytest.mark.parametrize("act", ACTS)
def test_epilogues(isa, dtype, act):
    u = ukernel(isa, dtype)
    rng = np.random.default_rng(4)
    for m, n, k in [(2 * u.mr + 1, 2 * u.nr + 3, 23), (u.mr - 1 or 1, u.nr + 1, u.kc + 9), (1, 5, 3)]:
        a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
        bias = rand(rng, (n,), dtype)
        r = rand(rng, (m, n), dtype)
        for alpha in (1.0, -0.75):
            check(a, b, run_gemm(a, b, alpha=alpha, act=act), alpha=alpha, act=act)
            check(a, b, run_gemm(a, b, bias, alpha=alpha, act=act), bias=bias, alpha=alpha, act=act)
            check(a, b, run_gemm(a, b, bias, r, alpha, act), bias=bias, residual=r, alpha=alpha, act=act)
        for rr in (np.broadcast_to(r[:1], (m, n)), np.broadcast_to(r[:, :1], (m, n)), r.T.copy().T,
                   np.broadcast_to(r[:1, :1], (m, n))):
            check(a, b, run_gemm(a, b, None, rr, 2.0, act), residual=rr, alpha=2.0, act=act)


def test_k_zero(isa, dtype):
    rng = np.random.default_rng(5)
    a, b = np.empty((4, 0), dtype), np.empty((0, 9), dtype)
    bias, r = rand(rng, (9,), dtype), rand(rng, (4, 9), dtype)
    np.testing.assert_array_equal(run_gemm(a, b), np.zeros((4, 9), dtype))
    for act in ACTS:
        check(a, b, run_gemm(a, b, bias, r, 3.0, act), bias=bias, residual=r, alpha=3.0, act=act)


def run_matmul(a, b):
    out = np.full((a.shape[0], a.shape[1], b.shape[2]), np.nan, a.dtype)
    c_gemm.matmul(a, b, out=out)
    return out


def test_matmul_batch(isa, dtype):
    rng = np.random.default_rng(6)
    # Attention-shaped: 12 heads of 128x64 @ 64x128 (batch-parallel path).
    q, kt = rand(rng, (12, 128, 64), dtype), rand(rng, (12, 64, 128), dtype)
    check(q, kt, run_matmul(q, kt))
    # Broadcast B (zero batch stride), transposed batch members, odd batch.
    b = np.broadcast_to(rand(rng, (1, 33, 21), dtype), (3, 33, 21))
    a = np.ascontiguousarray(rand(rng, (3, 40, 33), dtype).transpose(0, 2, 1)).transpose(0, 2, 1)
    check(a, b, run_matmul(a, b))
    a1 = rand(rng, (5, 1, 70), dtype)
    b1 = rand(rng, (5, 70, 3 * 16 + 1), dtype)
    check(a1, b1, run_matmul(a1, b1))
    a0, b0 = np.empty((2, 3, 0), dtype), np.empty((2, 0, 4), dtype)
    np.testing.assert_array_equal(run_matmul(a0, b0), np.zeros((2, 3, 4), dtype))


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 60), n=st.integers(1, 70), k=st.integers(0, 300),
       dtype=st.sampled_from(DTYPES), isa=st.sampled_from(ISAS), act=st.sampled_from(ACTS),
       ta=st.booleans(), tb=st.booleans(), use_bias=st.booleans(), use_r=st.booleans(),
       alpha=st.sampled_from([1.0, 0.5, -2.0]), seed=st.integers(0, 2 ** 32 - 1))
def test_random_shapes(m, n, k, dtype, isa, act, ta, tb, use_bias, use_r, alpha, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, (k, m), dtype).T if ta else rand(rng, (m, k), dtype)
    b = rand(rng, (n, k), dtype).T if tb else rand(rng, (k, n), dtype)
    bias = rand(rng, (n,), dtype) if use_bias else None
    r = rand(rng, (m, n), dtype) if use_r else None
    with _native.force_isa(isa):
        got = run_gemm(a, b, bias, r, alpha, act)
    check(a, b, got, bias=bias, residual=r, alpha=alpha, act=act)


def test_supports_and_registration():
    from pyinfer import registry
    a = np.ones((4, 4), np.float32)
    assert c_gemm._gemm_supports(a, a, None, None, alpha=1.0, activation=None, out=a) is None
    ai = np.ones((4, 4), np.int32)
    assert c_gemm._gemm_supports(ai, ai, None, None, alpha=1.0, activation=None, out=ai)
    assert c_gemm._matmul_supports(a[None], a.astype(np.float64)[None], out=a[None])
    assert registry.kernels("gemm")["c"].fn is c_gemm.gemm
    assert registry.kernels("matmul")["c"].fn is c_gemm.matmul


# ---- pre-packed B (pack_b + gemm_packed: the plan's path for constant weights) ----

def run_packed(a, b, bias=None, residual=None, alpha=1.0, act=None, out=None, m_hint=None):
    m, n = a.shape[0], b.shape[1]
    if out is None:
        out = np.full((m, n), np.nan, a.dtype)
    pb = c_gemm.pack_b(b, m if m_hint is None else m_hint)
    c_gemm.gemm_packed(a, pb, bias, residual, alpha=alpha, activation=act, out=out)
    return out


def packed_kernels(isa: int, dtype) -> list[c_gemm.UKernel]:
    """Every kernel pack_b may lay B out for on `isa` (the best ISA not above it)."""
    best = ukernel(isa, dtype).isa
    return [u for u in UKERNELS if u.dtype == np.dtype(dtype) and u.isa == best]


@pytest.fixture(params=[1, 2], ids=lambda t: f"threads{t}")
def threads(request):
    import pyinfer
    before = pyinfer.get_num_threads()
    pyinfer.set_num_threads(request.param)
    yield request.param
    pyinfer.set_num_threads(before)


def test_packed_tile_edges(isa, dtype, threads):
    """Sizes at the tile edges of every kernel a packing may pick (m picks it:
    1 the row kernel, 2..16 the fewest sliver passes, else the default), and
    calls with another m than the packing was made for."""
    rng = np.random.default_rng(11)
    for u in packed_kernels(isa, dtype):
        for m in edges(u.mr):
            for n in edges(u.nr):
                for k in (1, 7, u.kc + 1):
                    a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
                    bias = rand(rng, (n,), dtype)
                    check(a, b, run_packed(a, b))
                    check(a, b, run_packed(a, b, bias, None, 0.5, "gelu", m_hint=1),
                          bias=bias, alpha=0.5, act="gelu")
                    check(a, b, run_packed(a, b, m_hint=u.mr * 20 + 3))


def test_packed_picks_kernel_by_m(isa, dtype):
    rng = np.random.default_rng(12)
    b = rand(rng, (9, 40), dtype)
    assert c_gemm.pack_b(b, 1).ukernel == ukernel(isa, dtype, m=1).name
    assert c_gemm.pack_b(b, 500).ukernel == ukernel(isa, dtype).name


def test_packed_threads_split_n_and_m(dtype, threads):
    """Shapes above the threading threshold: wide (split N), tall (split M),
    uneven splits, and C blocks of several MC x KC."""
    rng = np.random.default_rng(13)
    u = ukernel(_native.isas_available()[-1], dtype)
    for m, n, k in [(3, 301, 700), (16, 1000, 64), (2 * u.mc + 7, 17, 300), (401, 2, 777),
                    (u.mc + 1, 3 * u.nr + 5, 2 * u.kc + 3), (129, 385, 383)]:
        a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
        bias, r = rand(rng, (n,), dtype), rand(rng, (m, n), dtype)
        check(a, b, run_packed(a, b, bias, r, -1.0, "silu"), bias=bias, residual=r, alpha=-1.0,
              act="silu")


def test_packed_layouts(isa, dtype):
    """B packed from any layout; A, R and out of any layout (strided,
    transposed, negative, broadcast, unaligned)."""
    rng = np.random.default_rng(14)
    u = ukernel(isa, dtype)
    m, n, k = 2 * u.mr + 3, 2 * u.nr + 5, 37
    for an, a in layouts(rng, (m, k), dtype):
        for bn, b in layouts(rng, (k, n), dtype):
            check(a, b, run_packed(a, b)), (an, bn)
    a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
    check(a, np.broadcast_to(b[:1], (k, n)), run_packed(a, np.broadcast_to(b[:1], (k, n))))
    check(np.broadcast_to(a[:, :1], (m, k)), b, run_packed(np.broadcast_to(a[:, :1], (m, k)), b))
    r = rand(rng, (m, n), dtype)
    for rr in (np.broadcast_to(r[:1], (m, n)), np.broadcast_to(r[:, :1], (m, n)), r.T.copy().T):
        check(a, b, run_packed(a, b, None, rr, 2.0, "tanh"), residual=rr, alpha=2.0, act="tanh")
    big = np.full((m, 2 * n), np.nan, dtype)
    run_packed(a, b, out=big[:, ::2])
    check(a, b, big[:, ::2])
    assert np.isnan(big[:, 1::2]).all()
    check(a, b, run_packed(a, b, out=np.full((n, m), np.nan, dtype).T))
    outu = np.zeros(m * n * a.itemsize + 1, np.uint8)[1:].view(dtype).reshape(m, n)
    outu[...] = np.nan
    check(a, b, run_packed(a, b, out=outu))


def test_packed_k_zero_and_empty(dtype):
    rng = np.random.default_rng(15)
    bias, r = rand(rng, (9,), dtype), rand(rng, (4, 9), dtype)
    a, b = np.empty((4, 0), dtype), np.empty((0, 9), dtype)
    for act in ACTS:
        check(a, b, run_packed(a, b, bias, r, 3.0, act), bias=bias, residual=r, alpha=3.0, act=act)
    assert run_packed(np.empty((0, 5), dtype), rand(rng, (5, 3), dtype)).shape == (0, 3)


def test_packed_repacks_after_isa_change(dtype):
    """A B packed on the best ISA still gives the right answer once a lower
    ISA is forced (the call sees the stale packing and packs B again)."""
    rng = np.random.default_rng(16)
    a, b = rand(rng, (7, 50), dtype), rand(rng, (50, 70), dtype)
    pb = c_gemm.pack_b(b, 7)
    for level in ISAS:
        with _native.force_isa(level):
            out = np.full((7, 70), np.nan, dtype)
            c_gemm.gemm_packed(a, pb, None, None, alpha=1.0, activation=None, out=out)
            check(a, b, out)
            assert c_gemm.ukernels()[[u.name for u in UKERNELS].index(pb.ukernel)].isa <= level


def test_pack_b_rejects_bad_input():
    with pytest.raises(ValueError, match="pack_b"):
        c_gemm.pack_b(np.ones((3, 4, 5), np.float32), 2)
    with pytest.raises(ValueError, match="pack_b"):
        c_gemm.pack_b(np.ones((3, 4), np.int32), 2)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 60), n=st.integers(1, 90), k=st.integers(0, 300),
       m_hint=st.sampled_from([1, 4, 8, 16, 128]), threads=st.sampled_from([1, 2]),
       dtype=st.sampled_from(DTYPES), isa=st.sampled_from(ISAS), act=st.sampled_from(ACTS),
       ta=st.booleans(), tb=st.booleans(), use_bias=st.booleans(), use_r=st.booleans(),
       alpha=st.sampled_from([1.0, 0.5, -2.0]), seed=st.integers(0, 2 ** 32 - 1))
def test_packed_random_shapes(m, n, k, m_hint, threads, dtype, isa, act, ta, tb, use_bias,
                              use_r, alpha, seed):
    import pyinfer
    rng = np.random.default_rng(seed)
    a = rand(rng, (k, m), dtype).T if ta else rand(rng, (m, k), dtype)
    b = rand(rng, (n, k), dtype).T if tb else rand(rng, (k, n), dtype)
    bias = rand(rng, (n,), dtype) if use_bias else None
    r = rand(rng, (m, n), dtype) if use_r else None
    before = pyinfer.get_num_threads()
    pyinfer.set_num_threads(threads)
    try:
        with _native.force_isa(isa):
            got = run_packed(a, b, bias, r, alpha, act, m_hint=m_hint)
    finally:
        pyinfer.set_num_threads(before)
    check(a, b, got, bias=bias, residual=r, alpha=alpha, act=act)


def test_plan_packs_constant_weights():
    """A plan runs MATMUL / GEMM with a constant B on the packed-B kernel (B
    packed once, at plan time) and matches NumPy; a B computed at run time
    stays on the plain kernel."""
    import pyinfer as pi
    rng = np.random.default_rng(17)
    w = rand(rng, (64, 96), np.float32)
    wt = rand(rng, (48, 96), np.float32)
    bias = rand(rng, (48,), np.float32)
    g = pi.Graph("mlp")
    x = g.input("x", (40, 64), np.float32)
    h = g.add(pi.Op.MATMUL, [x, g.constant(w)])
    y = g.add(pi.Op.GEMM, [h, g.constant(wt), g.constant(bias)], {"trans_b": True})
    z = g.add(pi.Op.MATMUL, [h, g.add(pi.Op.TRANSPOSE, [h], {"perm": (1, 0)})])
    g.output(y, "y")
    g.output(z, "z")
    it = pi.Interpreter(g, backend="c", threads=2)
    xs = rand(rng, (40, 64), np.float32)
    got_y, got_z = it.run({"x": xs})
    hv = xs.astype(np.float64) @ w
    np.testing.assert_allclose(got_y, hv @ wt.T.astype(np.float64) + bias, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_z, hv @ hv.T, rtol=1e-4, atol=1e-3)
    kernels = [s.kernel for s in it.plan.steps if s.kernel.startswith("c.gemm")]
    assert kernels.count("c.gemm[packed B]") == 2, kernels
    assert "c.gemm" in kernels, kernels


CSRC = os.path.join(os.path.dirname(__file__), os.pardir, "csrc")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not available")
def test_c_program_sanitized():
    """csrc/tests/test_*.c (tile edges of every micro-kernel, no Python) under
    ASan + UBSan."""
    script = os.path.join(CSRC, "tests", "run_sanitized.sh")
    proc = subprocess.run(["bash", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
