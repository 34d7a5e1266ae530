"""The int8 family: quantize / dequantize against ONNX's semantics (the ONNX
reference evaluator), and the u8 x s8 GEMM bit for bit against the NumPy
integer reference (pyinfer/backends/numpy_quant.py) on every micro-kernel this
CPU runs, at tile edges, size 1, primes and hypothesis shapes, with outputs
poisoned first.

Exactness is the tolerance here, not a loosening: the kernels accumulate in
int32 exactly, and the float epilogue does the reference's float32 operations
in the same order (convert, multiply by the scale, add the bias; divide,
round half to even, add the zero point, saturate).  Only the transcendental
activations (gelu, silu, ...) are compared with a tolerance: their vectorized
approximations are within 7 ulp (csrc/pi_vmath.h), so rtol 1e-5.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyinfer
from pyinfer import ops
from pyinfer.threads import fork_threshold
from pyinfer.backends import _native, numpy_quant as nq

if _native.lib is None:  # the C extension is a hard requirement of this suite
    raise RuntimeError("pyinfer._native is not built; run python build_native.py")
from pyinfer.backends import c_quant  # noqa: E402

UK = c_quant.ukernels()
RUNNABLE = [u for u in UK if c_quant.runs(u.index)]  # the `ukernel` fixture: conftest.py
PRIMES = [2, 3, 5, 7, 11, 13, 17, 31, 37, 61, 67, 97]


def _case(rng, m, k, n, per_channel=True, w7=False):
    """Random operands; ``w7``: weights within 64 of their zero points (what
    the 7-bit kernels need), a quarter of them exactly on the boundary +-64."""
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    if w7:
        bz = rng.integers(-64, 64, n) if per_channel else np.int64(rng.integers(-64, 64))
        d = rng.integers(-64, 65, (k, n))
        d = np.where(rng.random((k, n)) < 0.25, np.where(rng.random((k, n)) < 0.5, -64, 64), d)
        b = (d + bz).astype(np.int8)
        bz = bz.astype(np.int8)
    else:
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        bz = (rng.integers(-128, 128, n).astype(np.int8) if per_channel
              else np.int8(rng.integers(-128, 128)))
    bs = (rng.random(n) * 1e-2 + 1e-4).astype(np.float32) if per_channel else np.float32(3e-3)
    bias = rng.standard_normal(n).astype(np.float32)
    az = np.uint8(rng.integers(0, 256))
    return a, b, az, bz, np.float32(0.02), bs, bias


def _run_all_outputs(a, b, az, bz, sa, sb, bias, act="relu"):
    """float and u8 results from the C kernel (outputs poisoned: NaN for float,
    two different fills for u8 so an unwritten element fails one of them) and
    the NumPy reference; asserts equality bit for bit."""
    m, n = a.shape[0], b.shape[1]
    w = ops.qweight(b, bz)
    out = np.full((m, n), np.nan, np.float32)
    ops.qgemm(a, w, az, None, sa, sb, bias=bias, activation=act, out=out, backend="c")
    ref = ops.qgemm(a, b, az, bz, sa, sb, bias=bias, activation=act, backend="numpy")
    np.testing.assert_array_equal(out, ref)
    uref = ops.qgemm(a, b, az, bz, sa, sb, bias=bias, activation=act, out_scale=0.05,
                     out_zero=7, backend="numpy")
    for fill in (0, 255):
        u = np.full((m, n), fill, np.uint8)
        ops.qgemm(a, w, az, None, sa, sb, bias=bias, activation=act, out_scale=0.05, out_zero=7,
                  out=u, backend="c")
        np.testing.assert_array_equal(u, uref)
    s32 = np.full((m, n), -12345, np.int32)
    bzv = np.broadcast_to(np.asarray(bz, np.int64), (n,))
    c_quant.qgemm(a, w, int(az), None, None, activation=None, out_scale=None, out_zero=None,
                  out=s32)
    exact = (a.astype(np.int64) - int(az)) @ (b.astype(np.int64) - bzv)
    np.testing.assert_array_equal(s32, exact)


def _edges(t):
    return sorted({1, max(t - 1, 1), t, t + 1, 2 * t + 1})


def test_list_is_consistent():
    names = [u.name for u in UK]
    assert len(set(names)) == len(names)
    for u in UK:
        assert u.mr <= 8 and u.nr <= 32 and u.ku in (2, 4) and u.es in (1, 2)
        assert f"_{u.mr}x{u.nr}" in u.name
        assert u.wb in (7, 8) and ("w7_" in u.name) == (u.wb == 7)
    assert any(u.isa == 0 for u in RUNNABLE)  # portable always runs


def test_tile_edges(ukernel):
    rng = np.random.default_rng(1)
    for m in _edges(ukernel.mr):
        for n in _edges(ukernel.nr):
            for k in (1, ukernel.ku - 1 or 1, ukernel.ku + 1, 37):
                _run_all_outputs(*_case(rng, m, k, n, w7=ukernel.wb == 7))


@contextlib.contextmanager
def _split_over(threads):
    """``threads`` threads with every call split, however small (the thread rule
    keeps a test-sized call on one thread); None: the settings as they are."""
    if not threads:
        yield
        return
    previous = pyinfer.get_num_threads()
    pyinfer.set_num_threads(threads)
    try:
        with fork_threshold(0):
            yield
    finally:
        pyinfer.set_num_threads(previous)


def test_many_blocks_and_threads(ukernel):
    """Several A blocks (M above MC) and an N split over both threads."""
    rng = np.random.default_rng(2)
    with _split_over(2):
        _run_all_outputs(*_case(rng, 16 * ukernel.mr + 5, 700, 3 * ukernel.nr + 1,
                                w7=ukernel.wb == 7))


@pytest.mark.parametrize("isa", _native.isas_available(), ids=lambda i: _native.ISA_NAMES[i])
def test_every_isa_by_dispatch(isa):
    """What pi_isa() picks at each forced ISA level (the path real calls take)."""
    rng = np.random.default_rng(3)
    with _native.force_isa(isa):
        for m, k, n in [(1, 1, 1), (5, 31, 17), (13, 61, 67)]:
            for w7 in (False, True):
                _run_all_outputs(*_case(rng, m, k, n, w7=w7))


@settings(deadline=None, max_examples=25)
@given(m=st.one_of(st.integers(1, 40), st.sampled_from(PRIMES)),
       k=st.one_of(st.integers(1, 70), st.sampled_from(PRIMES)),
       n=st.one_of(st.integers(1, 70), st.sampled_from(PRIMES)),
       per_channel=st.booleans(), layout=st.sampled_from(["c", "t", "strided"]),
       uk=st.sampled_from([u.index for u in RUNNABLE]), seed=st.integers(0, 2**31))
def test_hypothesis_shapes(m, k, n, per_channel, layout, uk, seed):
    rng = np.random.default_rng(seed)
    a, b, az, bz, sa, sb, bias = _case(rng, m, k, n, per_channel, w7=UK[uk].wb == 7)
    if layout == "t":  # A column-major
        a = np.asfortranarray(a)
    elif layout == "strided":
        big = rng.integers(0, 256, (2 * m, 3 * k), dtype=np.uint8)
        big[::2, ::3] = a
        a = big[::2, ::3]
    c_quant.force_ukernel(uk)
    try:
        _run_all_outputs(a, b, az, bz, sa, sb, bias if per_channel else None,
                         act=None if seed % 2 else "relu")
    finally:
        c_quant.force_ukernel(None)


def _run_float_a(x, b, bz, x_params, sb, bias, act="relu", threads=None, granularity="tensor"):
    """qgemm_f32 (float A quantized inside the C GEMM; x_params None: dynamic,
    per tensor or per row) against the NumPy reference, every output kind,
    outputs poisoned first; per row, a row with an infinity gives NaN in both
    (an infinite scale)."""
    m, n = x.shape[0], b.shape[1]
    w = ops.qweight(b, bz)
    xs, xz = x_params if x_params is not None else (None, None)
    sb = np.ascontiguousarray(np.broadcast_to(np.asarray(sb, np.float32), (n,)))
    with _split_over(threads):
        for dtype, fills, kw in [(np.float32, (np.nan, 7.0), {}),
                                 (np.uint8, (0, 255), {"out_scale": np.float32(0.05), "out_zero": 7}),
                                 (np.int32, (-12345,), {})]:
            kw = {"activation": None if dtype == np.int32 else act, "out_scale": None,
                  "out_zero": None, "x_granularity": granularity, **kw}
            scale = None if dtype == np.int32 else sb
            bb = None if dtype == np.int32 else bias
            ref = np.empty((m, n), dtype)
            with np.errstate(invalid="ignore"):
                nq.qgemm_f32(x, w, xs, xz, scale, bb, out=ref, **kw)
            for fill in fills:
                got = np.full((m, n), fill, dtype)
                c_quant.qgemm_f32(x, w, xs, xz, scale, bb, out=got, **kw)
                np.testing.assert_array_equal(got, ref)


def _laid_out(x, layout):
    """x as given ("c"), or a view whose rows lie apart, columns contiguous ("strided")."""
    if layout != "strided":
        return x
    m, k = x.shape
    big = np.full((m, k + 5), 1e30, np.float32)
    big[:, :k] = x
    return big[:, :k]


def _weights(rng, m, k, n, w7):
    """(b, b_zero, b_scale, bias) of a random case."""
    a, b, az, bz, sa, sb, bias = _case(rng, m, k, n, w7=w7)
    return b, bz, sb, bias


def _float_case(rng, m, k, n, w7, nan=False, layout="c"):
    x = (rng.standard_normal((m, k)) * rng.choice([0.01, 1.0, 30.0])).astype(np.float32)
    if nan:
        x[rng.random((m, k)) < 0.05] = np.nan
    return _laid_out(x, layout), *_weights(rng, m, k, n, w7)


def test_float_a_tile_edges(ukernel):
    rng = np.random.default_rng(11)
    for m in _edges(ukernel.mr):
        for n in (1, ukernel.nr, ukernel.nr + 1):
            for k in (1, ukernel.ku + 1, 37):
                x, b, bz, sb, bias = _float_case(rng, m, k, n, ukernel.wb == 7, nan=m > 2)
                _run_float_a(x, b, bz, None, sb, bias)
                _run_float_a(x, b, bz, (np.float32(0.013), 131), sb, bias)


def test_float_a_many_blocks_and_threads(ukernel):
    rng = np.random.default_rng(12)
    x, b, bz, sb, bias = _float_case(rng, 16 * ukernel.mr + 5, 700, 3 * ukernel.nr + 1,
                                     ukernel.wb == 7, nan=True, layout="strided")
    _run_float_a(x, b, bz, None, sb, bias, threads=2)


@pytest.mark.parametrize("case", ["zeros", "positive", "negative", "all_nan", "one"])
def test_float_a_dynamic_ranges(case):
    """Ranges that do not straddle 0 (widened to hold it), a zero range (scale
    1) and an all-NaN input (no range: scale 1, zero point 0, as the reference)."""
    rng = np.random.default_rng(13)
    x = {"zeros": np.zeros((5, 33)), "positive": rng.random((5, 33)) + 2,
         "negative": -rng.random((5, 33)) - 2, "all_nan": np.full((5, 33), np.nan),
         "one": np.full((1, 1), 3.0)}[case].astype(np.float32)
    b = rng.integers(-64, 65, (x.shape[1], 19), dtype=np.int8)
    _run_float_a(x, b, np.int8(0), None, np.float32(0.01), None)


@settings(deadline=None, max_examples=25)
@given(m=st.one_of(st.integers(1, 40), st.sampled_from(PRIMES)),
       k=st.one_of(st.integers(1, 70), st.sampled_from(PRIMES)),
       n=st.one_of(st.integers(1, 70), st.sampled_from(PRIMES)),
       dynamic=st.booleans(), layout=st.sampled_from(["c", "strided"]),
       uk=st.sampled_from([u.index for u in RUNNABLE]), seed=st.integers(0, 2**31))
def test_float_a_hypothesis(m, k, n, dynamic, layout, uk, seed):
    rng = np.random.default_rng(seed)
    x, b, bz, sb, bias = _float_case(rng, m, k, n, UK[uk].wb == 7, nan=seed % 3 == 0,
                                     layout=layout)
    params = None if dynamic else (np.float32(rng.random() * 0.1 + 1e-3), int(rng.integers(0, 256)))
    c_quant.force_ukernel(uk)
    try:
        _run_float_a(x, b, bz, params, sb, bias if seed % 2 else None,
                     act=None if seed % 4 < 2 else "relu")
    finally:
        c_quant.force_ukernel(None)


# ---- float A quantized per row (pi_f32u8s8_gemm_rows) ----------------------------------

def _rows_case(rng, m, k, n, w7, layout="c"):
    """Rows of very different magnitudes (what per-row scales are for), and
    rows that are all zero (zero range: scale 1), positive only, negative only,
    or hold a NaN or an infinity."""
    x = (rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-3, 2, (m, 1))).astype(np.float32)
    for i in range(m):
        kind = rng.integers(0, 8)
        if kind == 0:
            x[i] = 0
        elif kind == 1:
            x[i] = np.abs(x[i]) + 1
        elif kind == 2:
            x[i] = -np.abs(x[i]) - 1
        elif kind == 3:
            x[i, rng.integers(0, k)] = np.nan
        elif kind == 4 and i % 4 == 0:
            x[i, rng.integers(0, k)] = rng.choice([np.inf, -np.inf])
    return _laid_out(x, layout), *_weights(rng, m, k, n, w7)


def _run_rows(x, b, bz, sb, bias, act="relu", threads=None):
    """qgemm_f32 per row (dynamic), as _run_float_a."""
    _run_float_a(x, b, bz, None, sb, bias, act, threads, granularity="row")


def test_float_a_rows_tile_edges(ukernel):
    rng = np.random.default_rng(21)
    for m in _edges(ukernel.mr):
        for n in (1, ukernel.nr, ukernel.nr + 1):
            for k in (1, ukernel.ku + 1, 37):
                x, b, bz, sb, bias = _rows_case(rng, m, k, n, ukernel.wb == 7)
                _run_rows(x, b, bz, sb, bias, act=None if (m + n) % 2 else "relu")


def test_float_a_rows_many_blocks_and_threads(ukernel):
    rng = np.random.default_rng(22)
    x, b, bz, sb, bias = _rows_case(rng, 16 * ukernel.mr + 5, 300, 3 * ukernel.nr + 1,
                                    ukernel.wb == 7, layout="strided")
    _run_rows(x, b, bz, sb, bias, threads=2)


def test_float_a_rows_equal_one_row_at_a_time():
    """The definition: each row alone quantized per tensor (dynamic) and run
    through the per-tensor kernel gives that row of the per-row result."""
    rng = np.random.default_rng(23)
    x, b, bz, sb, bias = _rows_case(rng, 11, 64, 29, w7=True)
    x = np.where(np.isfinite(x), x, 0).astype(np.float32)
    w = ops.qweight(b, bz)
    kw = {"activation": "relu", "out_scale": None, "out_zero": None}
    got = np.full((11, 29), np.nan, np.float32)
    c_quant.qgemm_f32(x, w, None, None, sb, bias, out=got, x_granularity="row", **kw)
    for i in range(11):
        one = np.full((1, 29), np.nan, np.float32)
        c_quant.qgemm_f32(x[i:i + 1], w, None, None, sb, bias, out=one, **kw)
        np.testing.assert_array_equal(got[i:i + 1], one)
    s, z = nq.dynamic_params_rows(x)
    for i in range(11):
        assert (s[i], z[i]) == nq.dynamic_params(x[i].min(), x[i].max())


@settings(deadline=None, max_examples=20)
@given(m=st.one_of(st.integers(1, 40), st.sampled_from(PRIMES)),
       k=st.one_of(st.integers(1, 70), st.sampled_from(PRIMES)),
       n=st.one_of(st.integers(1, 70), st.sampled_from(PRIMES)),
       layout=st.sampled_from(["c", "strided"]),
       uk=st.sampled_from([u.index for u in RUNNABLE]), seed=st.integers(0, 2**31))
def test_float_a_rows_hypothesis(m, k, n, layout, uk, seed):
    rng = np.random.default_rng(seed)
    x, b, bz, sb, bias = _rows_case(rng, m, k, n, UK[uk].wb == 7, layout=layout)
    c_quant.force_ukernel(uk)
    try:
        _run_rows(x, b, bz, sb, bias if seed % 2 else None,
                  act=None if seed % 4 < 2 else "relu")
    finally:
        c_quant.force_ukernel(None)


@pytest.mark.parametrize("act", ["gelu", "tanh"])
def test_float_a_rows_transcendental_epilogue(act):
    rng = np.random.default_rng(24)
    x, b, bz, sb, bias = _float_case(rng, 9, 50, 40, w7=True)
    w = ops.qweight(b, bz)
    got = np.full((9, 40), np.nan, np.float32)
    ref = np.empty_like(got)
    kw = {"activation": act, "out_scale": None, "out_zero": None, "x_granularity": "row"}
    c_quant.qgemm_f32(x, w, None, None, sb, bias, out=got, **kw)
    nq.qgemm_f32(x, w, None, None, sb, bias, out=ref, **kw)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_float_a_rows_refuses_static_parameters():
    rng = np.random.default_rng(25)
    x, b, bz, sb, bias = _float_case(rng, 3, 8, 5, w7=True)
    w = ops.qweight(b, bz)
    out = np.empty((3, 5), np.float32)
    why = c_quant._qgemm_f32_supports(x, w, np.float32(0.1), 3, sb, None, activation=None,
                                      out_scale=None, out_zero=None, out=out,
                                      x_granularity="row")
    assert why is not None and "dynamic only" in why
    with pytest.raises(ValueError, match="x_granularity 'row'"):
        nq.qgemm_f32(x, w, np.float32(0.1), 3, sb, None, activation=None, out_scale=None,
                     out_zero=None, out=out, x_granularity="row")


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "silu", "sigmoid", "tanh"])
def test_float_a_transcendental_epilogue(act):
    rng = np.random.default_rng(14)
    x, b, bz, sb, bias = _float_case(rng, 9, 50, 40, w7=True)
    w = ops.qweight(b, bz)
    got = np.full((9, 40), np.nan, np.float32)
    ref = np.empty_like(got)
    kw = {"activation": act, "out_scale": None, "out_zero": None}
    c_quant.qgemm_f32(x, w, None, None, sb, bias, out=got, **kw)
    nq.qgemm_f32(x, w, None, None, sb, bias, out=ref, **kw)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "silu", "sigmoid", "tanh"])
def test_transcendental_epilogue(act):
    rng = np.random.default_rng(4)
    a, b, az, bz, sa, sb, bias = _case(rng, 9, 50, 40)
    got = ops.qgemm(a, b, az, bz, sa, sb, bias=bias, activation=act, backend="c")
    ref = ops.qgemm(a, b, az, bz, sa, sb, bias=bias, activation=act, backend="numpy")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_packed_weight_follows_isa():
    """A weight packed on one ISA is packed again when the ISA is lowered."""
    rng = np.random.default_rng(5)
    a, b, az, bz, sa, sb, bias = _case(rng, 7, 20, 19)
    w = ops.qweight(b, bz)
    first = ops.qgemm(a, w, az, None, sa, sb, bias=bias)
    with _native.force_isa(0):
        np.testing.assert_array_equal(ops.qgemm(a, w, az, None, sa, sb, bias=bias), first)
    packings = [key for key in w._packed if isinstance(key[1], int)]
    assert len(packings) == (2 if _native.lib.pi_isa() > 0 else 1)


W7 = [u for u in RUNNABLE if u.wb == 7]


def _packed_index(w) -> int:
    return _native.lib.pi_u8s8_packed_b_ukernel(
        _native.ffi.cast("void *", c_quant.packed_weight(w).ctypes.data))


def test_seven_bit_weights_pick_the_fast_kernel():
    """Weights within +-64 of their zero points (boundary included, per-column
    zero points) are packed for the 7-bit kernel where one runs, bit-exact;
    one weight 65 away (either side) sends the whole weight to the exact
    kernel, still bit-exact.  Forcing the 7-bit kernel on it is refused."""
    rng = np.random.default_rng(15)
    a, b, az, bz, sa, sb, bias = _case(rng, 11, 53, 29, w7=True)
    b[0, 0], b[1, 1] = bz[0] + 64, bz[1] - 64
    w = ops.qweight(b, bz)
    assert c_quant.weight_bits(w) == 7
    best7 = c_quant.kernel_for_weight_bits(7)
    assert _packed_index(w) == best7
    assert (UK[best7].wb == 7) == bool(W7)  # AVX2 without VNNI: the w7 kernel
    _run_all_outputs(a, b, az, bz, sa, sb, bias)
    for delta in (65, -65):
        b65 = b.copy()
        for col in range(b.shape[1]):
            if -128 <= int(bz[col]) + delta <= 127:
                break
        b65[7, col] = bz[col] + delta
        w65 = ops.qweight(b65, bz)
        assert c_quant.weight_bits(w65) == 8
        assert UK[_packed_index(w65)].wb == 8
        _run_all_outputs(a, b65, az, bz, sa, sb, bias)
        for u in W7:
            c_quant.force_ukernel(u.index)
            try:
                with pytest.raises(pyinfer.PyinferError, match="7-bit"):
                    ops.qgemm(a, w65, az, None, sa, sb, backend="c")
            finally:
                c_quant.force_ukernel(None)


# ---- matmul_integer ---------------------------------------------------------------

@pytest.mark.parametrize("adt,bdt", [(np.uint8, np.int8), (np.int8, np.int8),
                                     (np.uint8, np.uint8), (np.int8, np.uint8)])
def test_matmul_integer_signedness(adt, bdt):
    rng = np.random.default_rng(6)
    info_a, info_b = np.iinfo(adt), np.iinfo(bdt)
    a = rng.integers(info_a.min, info_a.max + 1, (2, 6, 33), dtype=adt)
    b = rng.integers(info_b.min, info_b.max + 1, (33, 21), dtype=bdt)
    az = np.array(rng.integers(info_a.min, info_a.max + 1), adt)
    bz = rng.integers(info_b.min, info_b.max + 1, 21).astype(bdt)
    got = ops.matmul_integer(a, b, az, bz)
    ref = (a.astype(np.int64) - int(az)) @ (b.astype(np.int64) - bz.astype(np.int64))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)


def test_matmul_integer_batched_b_and_onnx():
    pytest.importorskip("onnx", reason='pip install ".[test]"')
    from onnx import helper, TensorProto
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (3, 4, 9), dtype=np.uint8)
    b = rng.integers(-128, 128, (3, 9, 5), dtype=np.int8)
    az, bz = np.array(12, np.uint8), np.array(-3, np.int8)
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, None) for n, t in
                                        [("a", TensorProto.UINT8), ("b", TensorProto.INT8),
                                         ("az", TensorProto.UINT8), ("bz", TensorProto.INT8)]],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
    ref = ReferenceEvaluator(helper.make_model(g)).run(None, {"a": a, "b": b, "az": az, "bz": bz})[0]
    np.testing.assert_array_equal(ops.matmul_integer(a, b, az, bz), ref)


# ---- quantize / dequantize vs ONNX -------------------------------------------------------

def _onnx_ref(op_type, inputs, outputs, attrs=None, **feeds):
    pytest.importorskip("onnx", reason='pip install ".[test]"')
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    names = list(feeds)
    node = helper.make_node(op_type, names, outputs, **(attrs or {}))
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info(n, _tp(feeds[n].dtype), None) for n in names],
                          [helper.make_tensor_value_info(o, 0, None) for o in outputs])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    return ReferenceEvaluator(model).run(None, feeds)


def _tp(dt):
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dt))


BACKENDS = ["numpy", "c"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantize_nan_is_the_low_end(backend):
    """NaN quantizes to the type's low end whatever the zero point (the C clamp's
    and ONNX Runtime's rule; the reference follows it)."""
    x = np.array([np.nan, 1.0] * 9, np.float32)  # long enough for the vector path
    u = ops.quantize_linear(x, np.float32(0.5), np.uint8(100), backend=backend)
    np.testing.assert_array_equal(u, [0, 102] * 9)
    s = ops.quantize_linear(x, np.float32(0.5), np.int8(-3), backend=backend)
    np.testing.assert_array_equal(s, [-128, -1] * 9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantize_ties_and_saturation(backend):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300, -300, 3.49, 127.5, -128.5, 0, 254.5,
                  255.5, 1e30, -1e30, 5.5], np.float32)
    u = ops.quantize_linear(x, np.float32(1), backend=backend)
    np.testing.assert_array_equal(u, [0, 2, 2, 0, 0, 0, 255, 0, 3, 128, 0, 0, 254, 255, 255, 0, 6])
    s = ops.quantize_linear(x, np.float32(1), np.int8(0), backend=backend)
    np.testing.assert_array_equal(s, [0, 2, 2, 0, -2, -2, 127, -128, 3, 127, -128, 0, 127, 127,
                                      127, -128, 6])
    assert u.dtype == np.uint8 and s.dtype == np.int8


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("zdt", [np.uint8, np.int8])
@pytest.mark.parametrize("shape,axis", [((23,), 0), ((3, 17), 1), ((2, 5, 9), 1), ((4, 3, 2, 11), -1),
                                        ((2, 7, 3), 0)])
def test_quantize_dequantize_vs_onnx(backend, zdt, shape, axis):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(shape) * 40).astype(np.float32)
    x.reshape(-1)[::5] = np.round(x.reshape(-1)[::5]) + 0.5  # exact ties
    info = np.iinfo(zdt)
    for per_axis in (False, True):
        if per_axis:
            c = shape[axis]
            scale = (rng.random(c) * 0.5 + 0.05).astype(np.float32)
            zp = rng.integers(info.min, info.max + 1, c).astype(zdt)
        else:
            scale, zp = np.array(0.5, np.float32), np.array(info.min + 100, zdt)
        got = ops.quantize_linear(x, scale, zp, axis=axis, backend=backend)
        (ref,) = _onnx_ref("QuantizeLinear", None, ["y"], {"axis": axis}, x=x, s=scale, z=zp)
        np.testing.assert_array_equal(got, ref)
        dq = ops.dequantize_linear(got, scale, zp, axis=axis, backend=backend)
        (dref,) = _onnx_ref("DequantizeLinear", None, ["y"], {"axis": axis}, q=got, s=scale, z=zp)
        np.testing.assert_array_equal(dq, dref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dequantize_int32(backend):
    x = np.array([-(2**31), -5, 0, 7, 2**31 - 1], np.int32)
    got = ops.dequantize_linear(x, np.float32(0.25), backend=backend)
    np.testing.assert_array_equal(got, x.astype(np.float64).astype(np.float32) * np.float32(0.25))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["normal", "positive", "negative", "zeros", "one", "long"])
def test_dynamic_quantize_vs_onnx(backend, case):
    rng = np.random.default_rng(9)
    x = {"normal": rng.standard_normal((7, 13)), "positive": rng.random(31) + 1,
         "negative": -rng.random((3, 3)) - 0.1, "zeros": np.zeros(9), "one": np.array([2.5]),
         "long": rng.standard_normal(70001) * 3}[case].astype(np.float32)
    y, s, z = ops.dynamic_quantize_linear(x, backend=backend)
    if case == "zeros":  # ONNX would divide by zero: scale 1, as ONNX Runtime
        assert s == 1 and z == 0 and not y.any()
        return
    ry, rs, rz = _onnx_ref("DynamicQuantizeLinear", None, ["y", "s", "z"], x=x)
    assert s.dtype == np.float32 and z.dtype == np.uint8 and y.dtype == np.uint8
    assert s == rs and z == rz
    np.testing.assert_array_equal(y, ry)


# ---- errors -------------------------------------------------------------------------

def test_errors_name_the_argument():
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    with pytest.raises(pyinfer.DTypeError, match="a_u8"):
        ops.qgemm(a.astype(np.int8), b, 0, 0, 1.0, 1.0)
    with pytest.raises(pyinfer.ShapeError, match="b_s8"):
        ops.qgemm(a, np.zeros((4, 4), np.int8), 0, 0, 1.0, 1.0)
    with pytest.raises(pyinfer.ShapeError, match="b_scale"):
        ops.qgemm(a, b, 0, 0, 1.0, np.ones(3, np.float32))
    with pytest.raises(pyinfer.ShapeError, match="a_zero"):
        ops.qgemm(a, b, 300, 0, 1.0, 1.0)
    with pytest.raises(pyinfer.ShapeError, match="out_scale"):
        ops.qgemm(a, b, 0, 0, 1.0, 1.0, out_scale=0.0)
    with pytest.raises(pyinfer.ShapeError, match="scale"):
        ops.quantize_linear(np.zeros((2, 3), np.float32), np.ones(4, np.float32), axis=1)
    with pytest.raises(pyinfer.DTypeError, match="x"):
        ops.quantize_linear(np.zeros(3, np.int32), 1.0)
    with pytest.raises(pyinfer.ShapeError, match="scale"):
        ops.quantize_linear(np.zeros(3, np.float32), np.float32(0))
    with pytest.raises(pyinfer.UnsupportedError, match="k = 40000"):
        ops.matmul_integer(np.zeros((1, 40000), np.uint8), np.zeros((40000, 1), np.int8))


# ---- graphs: quantize_dynamic / quantize_static / qdq pass ---------------------------------

def _mlp_graph(rng, batch=6, d_in=40, d_h=72, d_out=9):
    g = pyinfer.Graph("mlp")
    x = g.input("x", (batch, d_in), np.float32)
    w1 = (rng.standard_normal((d_in, d_h)) * 0.2).astype(np.float32)
    b1 = rng.standard_normal(d_h).astype(np.float32)
    w2 = (rng.standard_normal((d_h, d_out)) * 0.2).astype(np.float32)
    h = g.add(pyinfer.Op.MATMUL, [x, g.constant(w1)])
    h = g.add(pyinfer.Op.ADD, [h, g.constant(b1)])
    h = g.add(pyinfer.Op.RELU, [h])
    g.output(g.add(pyinfer.Op.MATMUL, [h, g.constant(w2)]))
    return g, (w1, b1, w2)


def _np_layer(x, w, bias, act, a_scale=None, a_zero=None, per_channel=True, qmax=127,
              rows=False):
    """One int8 layer in plain NumPy: symmetric int8 weights in [-qmax, qmax]
    (64: reduce_range), u8 activations (``rows``: each row by its own range's
    parameters, the scale product s[i] * ws[j] rounded to float32 first)."""
    amax = np.abs(w).max(axis=0) if per_channel else np.abs(w).max()
    ws = np.where(amax > 0, amax / np.float32(qmax), np.float32(1)).astype(np.float32)
    wq = np.clip(np.rint(w / ws), -qmax, qmax).astype(np.int64)
    if rows:
        lo = np.minimum(x.min(axis=1, keepdims=True), np.float32(0))
        hi = np.maximum(x.max(axis=1, keepdims=True), np.float32(0))
        a_scale = ((hi - lo) / np.float32(255)).astype(np.float32)
        a_zero = np.clip(np.rint(np.float32(0) - lo / a_scale), 0, 255).astype(np.int64)
        xq = np.clip(np.rint(x / a_scale) + a_zero, 0, 255).astype(np.int64)
        acc = ((xq - a_zero) @ wq).astype(np.int32)
        y = acc.astype(np.float32) * (a_scale * np.broadcast_to(ws, (w.shape[1],)))
        if bias is not None:
            y = y + bias
        return np.maximum(y, 0) if act == "relu" else y
    if a_scale is None:
        lo, hi = min(x.min(), np.float32(0)), max(x.max(), np.float32(0))
        a_scale = np.float32(hi - lo) / np.float32(255)
        a_zero = int(np.clip(np.rint(np.float32(0) - lo / a_scale), 0, 255))
    xq = np.clip(np.rint(x / np.float32(a_scale)) + a_zero, 0, 255).astype(np.int64)
    acc = ((xq - a_zero) @ wq).astype(np.int32)
    y = acc.astype(np.float32) * (np.float32(a_scale) * np.broadcast_to(ws, (w.shape[1],)))
    if bias is not None:
        y = y + bias
    return np.maximum(y, 0) if act == "relu" else y


@pytest.mark.parametrize("granularity", ["row", "tensor"])
@pytest.mark.parametrize("per_channel,reduce_range", [(True, False), (False, False),
                                                      (True, True), (False, True)])
def test_quantize_dynamic_graph_matches_numpy(per_channel, reduce_range, granularity):
    """quantize_dynamic's default is per-row activations; "tensor" is ONNX
    Runtime's per-tensor rule.  Both equal plain NumPy bit for bit, through
    the planned C kernels and through the graph reference."""
    from pyinfer.compress import quantize_dynamic
    rng = np.random.default_rng(10)
    g, (w1, b1, w2) = _mlp_graph(rng)
    kw = {} if granularity == "row" else {"activation_granularity": "tensor"}
    qg = quantize_dynamic(g, per_channel=per_channel, reduce_range=reduce_range, **kw)
    assert [n.attrs["a_granularity"] for n in qg.nodes if n.op is pyinfer.Op.QGEMM] == \
        [granularity] * 2
    it = pyinfer.Interpreter(qg)
    x = rng.standard_normal((6, 40)).astype(np.float32)
    x *= np.float32(10.0) ** rng.uniform(-2, 1, (6, 1)).astype(np.float32)  # rows apart
    got = it.run({"x": x})[0]
    qmax = 64 if reduce_range else 127
    rows = granularity == "row"
    h = _np_layer(x, w1, b1, "relu", per_channel=per_channel, qmax=qmax, rows=rows)
    want = _np_layer(h, w2, None, None, per_channel=per_channel, qmax=qmax, rows=rows)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(pyinfer.graph.reference.evaluate(qg, {"x": x})[0], want)
    label = "dynamic-row" if rows else "dynamic"
    assert [s.kernel for s in it.plan.steps] == [f"c.qgemm[{label}->float]"] * 2
    assert it.plan.kernel_count == 2 if hasattr(it.plan, "kernel_count") else True
    # and it is still the model: int8 error well under the output's scale
    ref = pyinfer.graph.reference.evaluate(g, {"x": x})[0]
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


def test_quantize_dynamic_default_range_follows_the_cpu():
    """reduce_range=None: 7-bit weights exactly where the CPU has a faster exact
    kernel for them (AVX2 without VNNI), said in graph.notes; the weights then
    reach that kernel when planned."""
    from pyinfer.compress import quantize_dynamic
    from pyinfer.compress.quantize import prefers_reduced_range
    g, _ = _mlp_graph(np.random.default_rng(16))
    qg = quantize_dynamic(g)
    reduced = prefers_reduced_range()
    assert reduced == (c_quant.kernel_for_weight_bits(7) != c_quant.kernel_for_weight_bits(8))
    assert reduced == bool(W7)  # this suite's CPU: AVX2 without VNNI has the w7 kernel
    weights = [n.inputs[1].data for n in qg.nodes if n.op is pyinfer.Op.QGEMM]
    assert len(weights) == 2
    top = max(int(np.abs(w.astype(np.int64)).max()) for w in weights)
    assert top == (64 if reduced else 127)
    assert any(("7-bit" if reduced else "full-range") in reason for _, reason in qg.notes)
    for w in weights:  # and such weights are packed for that kernel
        assert _packed_index(ops.qweight(w)) == c_quant.kernel_for_weight_bits(7 if reduced else 8)
    with _native.force_isa(0):  # portable only: one kernel for both, full range
        assert not prefers_reduced_range()
        assert max(int(np.abs(n.inputs[1].data.astype(np.int64)).max())
                   for n in quantize_dynamic(g).nodes if n.op is pyinfer.Op.QGEMM) == 127


def test_quantize_static_minmax_graph_and_errors():
    from pyinfer.compress import quantize_static
    from pyinfer.ops.quant import dynamic_params
    rng = np.random.default_rng(11)
    g, (w1, b1, w2) = _mlp_graph(rng)
    calib = [{"x": rng.standard_normal((6, 40)).astype(np.float32)} for _ in range(3)]
    qg = quantize_static(g, calib, method="minmax", reduce_range=False)
    x = rng.standard_normal((6, 40)).astype(np.float32)
    got = pyinfer.Interpreter(qg).run({"x": x})[0]
    xs = np.concatenate([c["x"] for c in calib])
    s1, z1 = dynamic_params(xs.min(), xs.max())
    hs = [_np_layer(c["x"], w1, b1, "relu", s1, int(z1)) for c in calib]
    h_all = np.concatenate([np.maximum(c["x"] @ w1 + b1, 0) for c in calib])
    s2, z2 = dynamic_params(h_all.min(), h_all.max())
    del hs
    h = _np_layer(x, w1, b1, "relu", s1, int(z1))
    want = _np_layer(h, w2, None, None, s2, int(z2))
    # calibration runs the float reference: h_all's range is the float model's
    np.testing.assert_allclose(got, want, rtol=0, atol=2 * float(s2) * np.abs(w2).sum(0).max())
    for method in ("percentile", "entropy"):
        out = pyinfer.Interpreter(quantize_static(g, calib, method=method)).run({"x": x})[0]
        ref = pyinfer.graph.reference.evaluate(g, {"x": x})[0]
        assert np.abs(out - ref).max() < 0.2 * np.abs(ref).max()
    with pytest.raises(pyinfer.ShapeError, match="input 'x' expected shape"):
        quantize_static(g, [{"x": np.zeros((6, 41), np.float32)}])
    with pytest.raises(pyinfer.ShapeError, match="method"):
        quantize_static(g, calib, method="mse")
    relu = next(n.name for n in g.nodes if n.op is pyinfer.Op.RELU)
    with pytest.raises(pyinfer.UnsupportedError, match=f"node '{relu}'"):
        quantize_static(g, calib, nodes=[relu])


def _rows_mlp_graph(rng):
    g = pyinfer.Graph("mlp_seq")
    x = g.input("x", ("b", "s", 40), np.float32)
    h = g.add(pyinfer.Op.MATMUL, [x, g.constant((rng.standard_normal((40, 72)) * 0.2).astype(np.float32))])
    h = g.add(pyinfer.Op.ADD, [h, g.constant(rng.standard_normal(72).astype(np.float32))])
    h = g.add(pyinfer.Op.RELU, [h])
    g.output(g.add(pyinfer.Op.MATMUL, [h, g.constant((rng.standard_normal((72, 9)) * 0.2).astype(np.float32))]))
    return g


def test_quantize_dynamic_rows_export_runs_in_ort():
    """The per-row QGEMM exported as standard ops (export/ops/compressed.py;
    ORT refuses a per-row a_zero_point, so MatMulInteger + an int32
    correction): ONNX Runtime's result equals pyinfer's int8 model to within
    float32 rounding of the epilogue (the integer parts are exact; measured bit
    for bit with ORT 1.20, the float ops being the same in the same order; 4 ulp
    of the output's magnitude leave room for a runtime that fuses Mul+Add)."""
    ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
    from pyinfer.compress import quantize_dynamic
    from pyinfer.export import to_onnx
    rng = np.random.default_rng(26)
    qg = quantize_dynamic(_rows_mlp_graph(rng))
    model = to_onnx(qg)
    types = {n.op_type for n in model.graph.node}
    assert {"ReduceMin", "ReduceMax", "MatMulInteger"} <= types, types
    assert "DynamicQuantizeLinear" not in types
    x = rng.standard_normal((2, 5, 40)).astype(np.float32)
    x *= np.float32(10.0) ** rng.uniform(-2, 1, (2, 5, 1)).astype(np.float32)
    want = pyinfer.Interpreter(qg).run({"x": x})[0]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x})[0]
    tol = 4 * np.finfo(np.float32).eps * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    # per tensor it is still ORT's own DynamicQuantizeLinear form
    qt = quantize_dynamic(_rows_mlp_graph(np.random.default_rng(26)),
                          activation_granularity="tensor")
    assert "DynamicQuantizeLinear" in {n.op_type for n in to_onnx(qt).graph.node}


def _one_layer_rows(rng):
    from pyinfer.compress import quantize_dynamic
    g = pyinfer.Graph("one")
    xv = g.input("x", ("b", 40), np.float32)
    y = g.add(pyinfer.Op.MATMUL, [xv, g.constant((rng.standard_normal((40, 24)) * 0.2).astype(np.float32))])
    y = g.add(pyinfer.Op.ADD, [y, g.constant(rng.standard_normal(24).astype(np.float32))])
    g.output(g.add(pyinfer.Op.RELU, [y]))
    return quantize_dynamic(g)


def test_quantize_dynamic_rows_export_reimports_as_one_qgemm():
    """The qrows pass folds the exported per-row form back into one per-row
    QGEMM (bias and relu in its epilogue): the same kernel, the same bits."""
    from pyinfer.export import to_onnx
    rng = np.random.default_rng(28)
    qg = _one_layer_rows(rng)
    x = (rng.standard_normal((9, 40)) * 10.0 ** rng.uniform(-2, 1, (9, 1))).astype(np.float32)
    it = pyinfer.Interpreter(pyinfer.load(to_onnx(qg)))
    got = it.run({"x": x})[0]
    assert [s.kernel for s in it.plan.steps] == ["c.qgemm[dynamic-row->float]"]
    np.testing.assert_array_equal(got, pyinfer.Interpreter(qg).run({"x": x})[0])


def test_rows_export_with_a_foreign_constant_is_not_folded():
    """A model of that form whose correction constant is not the weight's
    column sums is not this QGEMM: it stays plain ops and pyinfer runs it like
    ONNX Runtime.  Bound: simplify turns the exported ``/ 255`` into
    ``* (1/255)``, so a row's scale may differ by a float32 rounding and an
    element whose x/s lies within that of a .5 may round to the neighbouring
    step: one step of every element, s[i] * sum_k |wq[k, j]| * w_scale[j],
    plus float32 rounding of the output."""
    ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
    from onnx import numpy_helper
    from pyinfer.export import to_onnx
    rng = np.random.default_rng(29)
    qg = _one_layer_rows(rng)
    (node,) = [n for n in qg.nodes if n.op is pyinfer.Op.QGEMM]
    wq, ws = node.inputs[1].data.astype(np.float64), node.inputs[2].data.astype(np.float64)
    model = to_onnx(qg)
    (init,) = [t for t in model.graph.initializer if t.name.endswith(".colsum")]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.int32(1), init.name))
    x = (rng.standard_normal((9, 40)) * 10.0 ** rng.uniform(-2, 1, (9, 1))).astype(np.float32)
    it = pyinfer.Interpreter(pyinfer.load(model))
    got = it.run({"x": x})[0]
    assert "c.qgemm[dynamic-row->float]" not in [s.kernel for s in it.plan.steps]
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    s, _ = nq.dynamic_params_rows(x)
    bound = s[:, None].astype(np.float64) * (np.abs(wq).sum(0) * ws)[None, :] \
        + 4 * np.finfo(np.float32).eps * np.abs(want)
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound)


def test_rows_qgemm_int32_and_u8_outputs_export():
    """Hand-made per-row QGEMM nodes with int32 and u8 results: the reference,
    the planned kernel and ONNX Runtime on the export agree (int32 exactly)."""
    ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
    from pyinfer.export import to_onnx
    rng = np.random.default_rng(27)
    wq = rng.integers(-64, 65, (24, 11)).astype(np.int8)
    x = (rng.standard_normal((7, 24)) * 10.0 ** rng.uniform(-2, 1, (7, 1))).astype(np.float32)
    for out, extra in (("int32", {}), ("u8", {"out_scale": 0.02, "out_zero": 100})):
        g = pyinfer.Graph("q")
        xv = g.input("x", (7, 24), np.float32)
        ins = [xv, g.constant(wq), g.constant((rng.random(11) * 1e-2).astype(np.float32))]
        if out == "u8":
            ins += [None, g.constant(rng.standard_normal(11).astype(np.float32))]
        g.output(g.add(pyinfer.Op.QGEMM, ins, {"a_mode": "dynamic", "a_granularity": "row",
                                                "out": out, "activation": None, **extra}))
        ref = pyinfer.graph.reference.evaluate(g, {"x": x})[0]
        got = pyinfer.Interpreter(g).run({"x": x})[0]
        np.testing.assert_array_equal(got, ref)
        sess = ort.InferenceSession(to_onnx(g).SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        exported = sess.run(None, {"x": x})[0]
        if out == "int32":
            np.testing.assert_array_equal(exported, ref)
        else:  # a float32 rounding apart at most one u8 step
            assert np.abs(exported.astype(int) - ref.astype(int)).max() <= 1
    g = pyinfer.Graph("bad")
    xv = g.input("x", (7, 24), np.float32)
    with pytest.raises(pyinfer.ShapeError, match="a_granularity"):
        g.add(pyinfer.Op.QGEMM, [xv, g.constant(wq), g.constant(np.float32(0.1)), None, None,
                                 g.constant(np.float32(0.1)), g.constant(np.uint8(3))],
              {"a_mode": "static", "a_granularity": "row"})


def test_epilogue_absorbed_kernel_count():
    from pyinfer.compress import quantize_dynamic
    g, _ = _mlp_graph(np.random.default_rng(12))
    opt = pyinfer.graph.passes.optimize(quantize_dynamic(g))
    assert [n.op for n in opt.nodes] == [pyinfer.Op.QGEMM, pyinfer.Op.QGEMM]
    assert opt.nodes[0].attrs["activation"] == "relu" and len(opt.nodes[0].inputs) >= 5


# ---- ONNX import: ONNX Runtime's quantized models ------------------------------------------

def _mlp_onnx(path, rng, d_in=48, d_h=96, d_out=16):
    from onnx import TensorProto, helper, numpy_helper
    import onnx
    arrs = {"w1": rng.standard_normal((d_in, d_h)) * 0.1, "b1": rng.standard_normal(d_h) * 0.1,
            "w2": rng.standard_normal((d_h, d_out)) * 0.1, "b2": rng.standard_normal(d_out) * 0.1}
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrs.items()]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]),
             helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
             helper.make_node("Add", ["y0", "b2"], ["y"])]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       ["b", d_in])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", d_out])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.parametrize("reduce_range", [True, False])
def test_ort_quantize_dynamic_model(tmp_path, reduce_range):
    """ONNX Runtime's quantize_dynamic output loads, fuses into 2 QGEMM kernels
    and matches.  With 7-bit weights (reduce_range, ORT's own advice for CPUs
    without VNNI) ORT's AVX2 kernel is exact and we equal ORT bit for bit.  With
    full-range weights ORT's AVX2 u8s8 kernel (vpmaddubsw) saturates int16 pair
    sums, so there we equal the ONNX reference evaluator bit for bit instead."""
    ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(13)
    _mlp_onnx(str(tmp_path / "f.onnx"), rng)
    qpath = str(tmp_path / "q.onnx")
    quantize_dynamic(str(tmp_path / "f.onnx"), qpath, weight_type=QuantType.QInt8,
                     per_channel=True, reduce_range=reduce_range)
    it = pyinfer.Interpreter(pyinfer.load(qpath))
    x = rng.standard_normal((5, 48)).astype(np.float32)
    got = it.run({"x": x})[0]
    assert it.plan.kernel_count == 2 if hasattr(it.plan, "kernel_count") else True
    want_ort = ort.InferenceSession(qpath, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want_ref = ReferenceEvaluator(qpath).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, want_ref)
    if reduce_range:
        np.testing.assert_array_equal(got, want_ort)
    # full range: ORT's saturated result is off by up to ~15% of the output on this
    # Zen 3 (measured 2026-11-25); on a VNNI CPU it would be exact.  Not asserted.


def test_qdq_and_qlinear_matmul_import(tmp_path):
    pytest.importorskip("onnx", reason='pip install ".[test]"')
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(14)
    wq = rng.integers(-128, 128, (24, 10)).astype(np.int8)
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("sx", np.array(0.05, np.float32)), ("zx", np.array(120, np.uint8)),
        ("wq", wq), ("sw", (rng.random(10) * 0.01 + 0.001).astype(np.float32)),
        ("zw", np.zeros(10, np.int8)), ("sy", np.array(0.07, np.float32)),
        ("zy", np.array(100, np.uint8))]]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"]),
             helper.make_node("QLinearMatMul", ["xq", "sx", "zx", "wq", "sw", "zw", "sy", "zy"],
                              ["yq"])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [7, 24])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7, 10]),
                           helper.make_tensor_value_info("yq", TensorProto.UINT8, [7, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    path = str(tmp_path / "qdq.onnx")
    onnx.save(m, path)
    it = pyinfer.Interpreter(pyinfer.load(path))
    x = (rng.standard_normal((7, 24)) * 3).astype(np.float32)
    y, yq = it.run({"x": x})
    ry, ryq = ReferenceEvaluator(path).run(None, {"x": x})
    assert sum(s.kernel.startswith("c.qgemm") for s in it.plan.steps) == 2
    # the reference sums dequantized products in float32; we sum integers exactly and
    # scale once: the difference is the reference's own rounding (24 terms)
    from pyinfer.testing import sum_bound
    sw = numpy_helper.to_array(inits[3])
    xd = (ops.quantize_linear(x, np.float32(0.05), np.uint8(120)).astype(np.float32) - 120) * 0.05
    bound = sum_bound(24, np.abs(xd) @ (np.abs(wq.astype(np.float32)) * sw), np.float32) + \
        2 * np.spacing(np.abs(ry))  # + our two roundings (scale product, final multiply)
    assert np.all(np.abs(y - ry) <= bound)
    assert np.abs(yq.astype(int) - ryq.astype(int)).max() <= 1


def test_quantized_matmul_followed_by_a_one_input_activation():
    """MatMul -> Relu (no bias between): the activation is absorbed, nothing else is
    read as a bias (this used to raise IndexError)."""
    from pyinfer.compress import quantize_dynamic
    rng = np.random.default_rng(7)
    g = pyinfer.Graph()
    x = g.input("x", (5, 16), np.float32)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    g.output(g.add(pyinfer.Op.RELU, [g.add(pyinfer.Op.MATMUL, [x, g.constant(w)])]))
    q = quantize_dynamic(g, reduce_range=False)
    it = pyinfer.Interpreter(q)
    assert it.plan.kernel_count == 1
    xs = rng.standard_normal((5, 16)).astype(np.float32)
    (got,) = it.run([xs])
    (want,) = pyinfer.Interpreter(q, backend="numpy").run([xs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert (got >= 0).all()


def test_quantize_static_with_symbolic_dims_equals_fixed_shapes():
    """Calibration runs the reference on a copy specialised to each batch, so a
    graph with a symbolic batch dim calibrates exactly as the fixed-shape one."""
    from pyinfer.compress import quantize_static
    rng = np.random.default_rng(8)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    calib = rng.standard_normal((3, 16)).astype(np.float32)
    results = []
    for batch in ("batch", 3):
        g = pyinfer.Graph()
        x = g.input("x", (batch, 16), np.float32)
        g.output(g.add(pyinfer.Op.RELU, [g.add(pyinfer.Op.MATMUL, [x, g.constant(w)])]))
        q = quantize_static(g, [{"x": calib}])
        (y,) = pyinfer.Interpreter(q).run([calib])
        results.append(y)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], np.maximum(calib @ w, 0), atol=0.05 * 8)
