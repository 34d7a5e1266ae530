"""The c backend's binary, softmax and norm kernels (csrc/pi_elementwise.c,
pi_softmax.c, pi_norm.c through pyinfer/backends/c_ops.py), on every ISA this
CPU runs, against NumPy formulas evaluated in float64.

Tolerances: float32 rtol=1e-5, atol=1e-6; float64 rtol=1e-12, atol=1e-14.
Outputs are poisoned with NaN first.
"""
from __future__ import annotations

import numpy as np
import pytest

from pyinfer import registry
from pyinfer.backends import _native

from hypothesis import given, settings
from hypothesis import strategies as st

ISAS = _native.isas_available() if _native.lib is not None else []
DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
       np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14)}
EDGE = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 65, 129]

BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
}


def _k(op):
    return registry.kernels(op)["c"]


def _poisoned(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


# ---- binary -------------------------------------------------------------------

def _operands(rng, op, shape_a, shape_b, dtype):
    a = rng.standard_normal(shape_a)
    b = rng.standard_normal(shape_b)
    if op == "pow":
        a = np.abs(a) + 0.5
        b = b * 2.0
    return np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)


def _check_binary(op, a, b, out):
    k = _k(op)
    why = k.why_not(a, b, out=out)
    if why is not None:
        assert "reduce" in why, why  # only >2-D broadcast patterns may be refused
        return False
    with np.errstate(all="ignore"):
        k.fn(a, b, out=out)
        want = BINARY[op](a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(out, want, **TOL[out.dtype], equal_nan=True, err_msg=op)
    return True


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_edges(op, dtype, isa):
    """Same shape, row broadcast (bias), column broadcast (scale), scalar, at
    every vector-width edge, with NaNs in both operands."""
    rng = np.random.default_rng(abs(hash((op, isa))) % 2**32)
    with _native.force_isa(isa):
        for n in EDGE:
            for sa, sb in [((3, n), (3, n)), ((3, n), (n,)), ((n,), (3, n)), ((3, n), (3, 1)),
                           ((3, 1), (3, n)), ((3, n), ()), ((), (3, n)), ((n,), (1,))]:
                a, b = _operands(rng, op, sa, sb, dtype)
                if a.size > 2:
                    a.flat[1] = np.nan
                if b.size > 3:
                    b.flat[2] = np.nan
                out = _poisoned(np.broadcast_shapes(sa, sb), dtype)
                assert _check_binary(op, a, b, out), (sa, sb)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maximum_minimum_nan(dtype):
    a = np.array([np.nan, 1.0, np.nan, -np.inf, 2.0] * 4, dtype)
    b = np.array([1.0, np.nan, np.nan, np.inf, -0.0] * 4, dtype)
    for op in ("maximum", "minimum"):
        out = _poisoned(a.shape, dtype)
        _k(op).fn(a, b, out=out)
        np.testing.assert_array_equal(out, BINARY[op](a, b))


@pytest.mark.parametrize("op", ["add", "mul", "div"])
def test_binary_inplace_and_large(op):
    rng = np.random.default_rng(0)
    sizes = (70_001, 2_100_011) if op == "add" else (70_001,)  # 2.1M streams its stores
    for n in sizes:
        a, b = _operands(rng, op, (n,), (n,), np.float32)
        want = BINARY[op](a.astype(np.float64), b.astype(np.float64))
        out = _poisoned(a.shape, np.float32)
        _k(op).fn(a, b, out=out)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
        _k(op).fn(a, b, out=a)  # in place into a
        np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-6)


def test_binary_refuses_3d_broadcast():
    a = np.ones((4, 1, 5), np.float32)
    b = np.ones((1, 3, 1), np.float32)
    out = np.empty((4, 3, 5), np.float32)
    assert "reduce" in _k("add").why_not(a, b, out=out)
    i = np.ones(8, np.int64)
    assert "dtype" in _k("add").why_not(i, i, out=i)


@st.composite
def _bcast_case(draw):
    nd = draw(st.integers(0, 4))
    shape = tuple(draw(st.sampled_from(EDGE[:9])) for _ in range(nd))

    def operand_shape():
        keep = draw(st.integers(0, nd))
        s = list(shape[nd - keep:])
        for i in range(len(s)):
            if draw(st.booleans()):
                s[i] = 1
        return tuple(s)

    return shape, operand_shape(), operand_shape()


@settings(max_examples=40, deadline=None)
@given(case=_bcast_case(), op=st.sampled_from(sorted(BINARY)), dtype=st.sampled_from(DTYPES),
       isa=st.sampled_from(ISAS or [0]), noncontig=st.sampled_from(["none", "a", "b", "out"]),
       seed=st.integers(0, 2**31 - 1))
def test_binary_property(case, op, dtype, isa, noncontig, seed):
    _, sa, sb = case
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, op, sa, sb, dtype)
    if noncontig == "a" and a.ndim >= 2:
        a = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)  # F-ish view
    if noncontig == "b" and b.ndim >= 1:
        big = np.zeros(b.shape[:-1] + (2 * b.shape[-1],), dtype)
        big[..., ::2] = b
        b = big[..., ::2]
    oshape = np.broadcast_shapes(a.shape, b.shape)
    if noncontig == "out" and len(oshape) >= 1:
        big = _poisoned(oshape[:-1] + (2 * oshape[-1],), dtype)
        out = big[..., ::2]
    else:
        out = _poisoned(oshape, dtype)
    with _native.force_isa(isa):
        _check_binary(op, a, b, out)


# ---- softmax / log_softmax --------------------------------------------------------

def _softmax_ref(x, axis, log):
    x = x.astype(np.float64)
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return (x - m) - np.log(s) if log else e / s


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_edges(op, dtype, isa):
    rng = np.random.default_rng(7)
    log = op == "log_softmax"
    with _native.force_isa(isa):
        for n in EDGE:
            for shape, axis in [((3, n), 1), ((n, 5), 0), ((2, n, 3), 1), ((2, 3, n), 2),
                                ((n,), 0), ((2, 9, n), 1)]:
                x = (rng.standard_normal(shape) * 5).astype(dtype)
                out = _poisoned(shape, dtype)
                _k(op).fn(x, axis=axis, out=out)
                np.testing.assert_allclose(out, _softmax_ref(x, axis, log), **TOL[np.dtype(dtype)],
                                           err_msg=f"{op} {shape} axis={axis}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_nan_inf(op, dtype):
    """NaN or +inf poisons its own slice only (as NumPy's formula does)."""
    x = np.random.default_rng(1).standard_normal((4, 19)).astype(dtype)
    x[1, 3] = np.nan
    x[2, 7] = np.inf
    x[3, :] = -np.inf
    out = _poisoned(x.shape, dtype)
    with np.errstate(all="ignore"):
        _k(op).fn(x, axis=1, out=out)
        want = _softmax_ref(x, 1, op == "log_softmax")
    np.testing.assert_allclose(out, want, **TOL[np.dtype(dtype)], equal_nan=True)
    assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.sampled_from(EDGE), min_size=1, max_size=3).map(tuple),
       data=st.data(), dtype=st.sampled_from(DTYPES), isa=st.sampled_from(ISAS or [0]),
       op=st.sampled_from(["softmax", "log_softmax"]),
       layout=st.sampled_from(["c", "transposed", "inplace", "out_strided"]),
       seed=st.integers(0, 2**31 - 1))
def test_softmax_property(shape, data, dtype, isa, op, layout, seed):
    axis = data.draw(st.integers(0, len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    want = _softmax_ref(x, axis, op == "log_softmax")
    with _native.force_isa(isa):
        if layout == "transposed":
            xt = np.ascontiguousarray(x.T).T  # same values, non-C layout
            out = _poisoned(shape, dtype)
            _k(op).fn(xt, axis=axis, out=out)
        elif layout == "inplace":
            out = x.copy()
            _k(op).fn(out, axis=axis, out=out)
        elif layout == "out_strided":
            big = _poisoned(shape[:-1] + (2 * shape[-1],), dtype)
            out = big[..., ::2]
            _k(op).fn(x, axis=axis, out=out)
            assert np.isnan(big[..., 1::2]).all()
        else:
            out = _poisoned(shape, dtype)
            _k(op).fn(x, axis=axis, out=out)
    tol = dict(TOL[np.dtype(dtype)])
    if op == "log_softmax":
        # log(s) for s = sum of n exponentials: the sum's rounding error (at most
        # 4*sqrt(n)*eps*s, pyinfer.testing.sum_bound) is an absolute error of
        # 4*sqrt(n)*eps in log(s), which matters where the result is near 0.
        n = shape[axis]
        tol["atol"] = max(tol["atol"], 4 * np.sqrt(n) * np.finfo(dtype).eps)
    np.testing.assert_allclose(out, want, **tol)


def test_softmax_large_threaded():
    x = np.random.default_rng(2).standard_normal((12, 1536, 128)).astype(np.float32)
    for axis in (2, 1):
        out = _poisoned(x.shape, np.float32)
        _k("softmax").fn(x, axis=axis, out=out)
        np.testing.assert_allclose(out, _softmax_ref(x, axis, False), rtol=1e-5, atol=1e-6)


# ---- layer_norm / rms_norm --------------------------------------------------------

def _layer_norm_ref(x, w, b, axis, eps):
    x = x.astype(np.float64)
    ax = tuple(range(axis, x.ndim))
    m = x.mean(axis=ax, keepdims=True)
    v = ((x - m) ** 2).mean(axis=ax, keepdims=True)
    y = (x - m) / np.sqrt(v + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def _rms_norm_ref(x, w, axis, eps):
    x = x.astype(np.float64)
    ax = tuple(range(axis, x.ndim))
    y = x / np.sqrt((x * x).mean(axis=ax, keepdims=True) + eps)
    return y if w is None else y * w


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_edges(dtype, isa):
    rng = np.random.default_rng(11)
    with _native.force_isa(isa):
        for n in EDGE + [384, 1031]:
            for shape, axis in [((4, n), 1), ((2, 3, n), 2), ((2, n, 3), 1), ((n,), 0)]:
                x = (rng.standard_normal(shape) + 0.5).astype(dtype)
                ws = shape[axis:]
                w = rng.standard_normal(ws).astype(dtype)
                b = rng.standard_normal(ws).astype(dtype)
                for wi, bi in [(w, b), (None, None), (w, None), (None, b)]:
                    out = _poisoned(shape, dtype)
                    _k("layer_norm").fn(x, wi, bi, axis=axis, eps=1e-5, out=out)
                    np.testing.assert_allclose(out, _layer_norm_ref(x, wi, bi, axis, 1e-5),
                                               **TOL[np.dtype(dtype)], err_msg=f"ln {shape}")
                    out = _poisoned(shape, dtype)
                    _k("rms_norm").fn(x, wi, axis=axis, eps=1e-6, out=out)
                    np.testing.assert_allclose(out, _rms_norm_ref(x, wi, axis, 1e-6),
                                               **TOL[np.dtype(dtype)], err_msg=f"rms {shape}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_large_offset(dtype):
    """|mean| >> std: the two-pass centring keeps the float32 result at the
    accuracy the input itself carries (its own rounding is ~|mean|*eps/std)."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((64, 384)) * 0.1 + 1000.0).astype(dtype)
    out = _poisoned(x.shape, dtype)
    _k("layer_norm").fn(x, None, None, axis=1, eps=0.0, out=out)
    want = _layer_norm_ref(x, None, None, 1, 0.0)
    cond = 1000.0 / 0.1  # |mean| / std: what the input's own rounding is scaled by
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(out, want, rtol=0, atol=4 * cond * eps)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.sampled_from(EDGE), min_size=1, max_size=3).map(tuple),
       data=st.data(), dtype=st.sampled_from(DTYPES), isa=st.sampled_from(ISAS or [0]),
       layout=st.sampled_from(["c", "rows_strided", "transposed", "inplace", "out_strided"]),
       with_w=st.booleans(), with_b=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_norm_property(shape, data, dtype, isa, layout, with_w, with_b, seed):
    axis = data.draw(st.integers(0, len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    ws = shape[axis:]
    w = rng.standard_normal(ws).astype(dtype) if with_w else None
    b = rng.standard_normal(ws).astype(dtype) if with_b else None
    want_ln = _layer_norm_ref(x, w, b, axis, 1e-5)
    want_rms = _rms_norm_ref(x, w, axis, 1e-5)
    with _native.force_isa(isa):
        for op, want in (("layer_norm", want_ln), ("rms_norm", want_rms)):
            args = (w, b) if op == "layer_norm" else (w,)
            xin = x
            if layout == "rows_strided" and len(shape) >= 2:
                big = np.zeros(shape[:-1] + (shape[-1] + 3,), dtype)
                big[..., :shape[-1]] = x
                xin = big[..., :shape[-1]]
            elif layout == "transposed":
                xin = np.ascontiguousarray(x.T).T
            if layout == "inplace":
                out = x.copy()
                xin = out
            elif layout == "out_strided":
                big = _poisoned(shape[:-1] + (2 * shape[-1],), dtype)
                out = big[..., ::2]
            else:
                out = _poisoned(shape, dtype)
            _k(op).fn(xin, *args, axis=axis, eps=1e-5, out=out)
            np.testing.assert_allclose(out, want, **TOL[np.dtype(dtype)], err_msg=op)


def test_through_ops_api():
    """The eager API picks the c kernels for large float inputs."""
    from pyinfer import ops
    x = np.random.default_rng(0).standard_normal((64, 384)).astype(np.float32)
    assert registry.select("softmax", None, x, axis=1, out=x).backend == "c"
    np.testing.assert_allclose(ops.softmax(x, axis=1), _softmax_ref(x, 1, False),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.layer_norm(x, backend="c"),
                               _layer_norm_ref(x, None, None, 1, 1e-5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.add(x, x[0], backend="c"), x + x[0], rtol=1e-6)
