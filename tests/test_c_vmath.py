"""The c backend's unary kernels (csrc/pi_vmath.h through pi_elementwise.c),
on every ISA this CPU runs, against NumPy formulas evaluated in float64.

Tolerances are the project's: float32 rtol=1e-5, atol=1e-6; float64 rtol=1e-12,
atol=1e-14 (values of unit scale).  Outputs are poisoned with NaN first.
"""
from __future__ import annotations

import math

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
EDGE = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 1031]

_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _gelu(x):
    # 0.5 x (1 + erf(x/sqrt2)), written with erfc for x < 0 so the float64
    # reference itself keeps its relative accuracy; the limit at -inf is 0.
    t = x / math.sqrt(2.0)
    phi2 = np.where(x >= 0, 1.0 + np.asarray(_erf(t), np.float64), np.asarray(_erfc(-t), np.float64))
    return np.where(x == -np.inf, 0.0, 0.5 * x * phi2)


def _gelu_tanh(x):
    # 0.5 x (1 + tanh(u)) == x * sigmoid(2u) (exact identity; no cancellation)
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
    return np.where(x == -np.inf, 0.0, x * _sigmoid(2.0 * u))


def _silu(x):
    return np.where(x == -np.inf, 0.0, x * _sigmoid(x))


# op -> (float64 NumPy formula, input scale, positive inputs only)
REF = {
    "exp": (np.exp, 30.0, False),
    "log": (np.log, 50.0, True),
    "sqrt": (np.sqrt, 50.0, True),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x), 50.0, True),
    "abs": (np.abs, 5.0, False),
    "neg": (np.negative, 5.0, False),
    "tanh": (np.tanh, 6.0, False),
    "sigmoid": (_sigmoid, 30.0, False),
    "relu": (lambda x: np.maximum(x, 0.0), 5.0, False),
    "gelu": (_gelu, 6.0, False),
    "gelu_tanh": (_gelu_tanh, 6.0, False),
    "silu": (_silu, 30.0, False),
    "erf": (lambda x: np.asarray(_erf(x), np.float64), 4.0, False),
}
OPS = sorted(REF)


def _kernel(op):
    return registry.kernels(op)["c"].fn


def _inputs(rng, shape, dtype, op):
    _, scale, pos = REF[op]
    x = np.asarray(rng.standard_normal(shape) * scale)
    if pos:
        x = np.abs(x) + 1e-3
    return np.asarray(x, dtype=dtype)


def _ref(op, x):
    """The float64 formula; for float32 inputs rounded once to float32, so
    results past float32's range compare as its inf / 0."""
    with np.errstate(all="ignore"):
        r = np.asarray(REF[op][0](x.astype(np.float64)), dtype=np.float64)
        return r.astype(x.dtype).astype(np.float64) if x.dtype == np.float32 else r


def _run(op, x, out=None):
    if out is None:
        out = np.full(x.shape, np.nan, dtype=x.dtype)
    with np.errstate(all="ignore"):
        _kernel(op)(x, out=out)
    return out


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_unary_edges(op, dtype, isa):
    """Every vector-width edge, contiguous, NaN-poisoned output."""
    rng = np.random.default_rng(hash((op, isa)) % 2**32)
    with _native.force_isa(isa):
        for n in EDGE:
            x = _inputs(rng, (n,), dtype, op)
            np.testing.assert_allclose(_run(op, x), _ref(op, x), **TOL[np.dtype(dtype)],
                                       err_msg=f"{op} n={n} isa={isa}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_unary_specials(op, dtype, isa):
    """NaN propagates; +-inf, +-0, subnormals and saturating magnitudes give the
    limits (exp(-inf)=0, tanh(+-inf)=+-1, sigmoid(-inf)=0, gelu/silu(-inf)=0...)."""
    tiny = np.finfo(dtype).smallest_subnormal
    big = np.finfo(dtype).max
    vals = [np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -tiny, 1e-30, -1e-30, big, -big,
            88.0, 89.0, -87.0, -104.0, -200.0, 200.0, 10.0, -10.0, 0.5, -0.5, 1.0, -1.0]
    x = np.array(vals, dtype=dtype)
    if REF[op][2]:  # domain: log/sqrt of negatives give NaN as in NumPy
        x = np.array(vals + [-1.0, -tiny], dtype=dtype)
    with _native.force_isa(isa), np.errstate(all="ignore"):
        got = _run(op, x)
        want = _ref(op, x)
        np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)], equal_nan=True,
                                   err_msg=f"{op} isa={isa}")
        assert np.isnan(got[0]), f"{op}(nan) must be nan"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("op", ["exp", "tanh", "sigmoid", "erf", "gelu", "silu"])
def test_dense_sweep_f32(op, isa):
    """A dense float32 sweep across the approximation branches."""
    x = np.linspace(-12.0, 12.0, 200_003).astype(np.float32)
    if op == "exp":
        x = np.linspace(-100.0, 88.0, 200_003).astype(np.float32)
    with _native.force_isa(isa):
        np.testing.assert_allclose(_run(op, x), _ref(op, x), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{op} isa={isa}")


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(OPS), dtype=st.sampled_from(DTYPES),
       isa=st.sampled_from(ISAS or [0]),
       shape=st.lists(st.sampled_from(EDGE[:12]), min_size=0, max_size=3).map(tuple),
       layout=st.sampled_from(["c", "f", "strided", "inplace", "out_strided"]),
       seed=st.integers(0, 2**31 - 1))
def test_unary_property(op, dtype, isa, shape, layout, seed):
    rng = np.random.default_rng(seed)
    x = _inputs(rng, shape, dtype, op)
    if not shape and layout in ("strided", "out_strided"):
        layout = "c"  # a 0-d array has no strided view
    if x.size and rng.random() < 0.5:
        x.flat[rng.integers(x.size)] = np.nan
    want = _ref(op, x)
    with _native.force_isa(isa):
        if layout == "f":
            xf = np.asfortranarray(x)
            out = np.asfortranarray(np.full(shape, np.nan, dtype))
            got = _run(op, xf, out)
        elif layout == "strided":
            big = np.full(tuple(2 * s for s in shape), np.nan, dtype)
            xs = big[tuple(slice(None, None, 2) for _ in shape)]
            xs[...] = x
            got = _run(op, xs)
        elif layout == "inplace":
            buf = x.copy()
            _run(op, buf, buf)
            got = buf
        elif layout == "out_strided":
            big = np.full(tuple(2 * s for s in shape), np.nan, dtype)
            out = big[tuple(slice(None, None, 2) for _ in shape)]
            _run(op, x, out)
            got = out
            if len(shape):  # the gaps stay untouched
                assert np.isnan(big[tuple(slice(1, None, 2) for _ in shape)]).all()
        else:
            got = _run(op, x)
    np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)], equal_nan=True)


def test_threaded_large():
    """Sizes that fork OpenMP threads agree with the serial path."""
    x = np.random.default_rng(3).standard_normal(300_001).astype(np.float32) * 4
    for op in ("exp", "gelu", "abs", "relu"):
        np.testing.assert_allclose(_run(op, x), _ref(op, x), rtol=1e-5, atol=1e-6)


def test_priority_and_supports():
    k = registry.kernels("exp")["c"]
    small, large = np.ones(4, np.float32), np.ones(4096, np.float32)
    assert k.rank(small, out=small) < 0 < k.rank(large, out=large)
    assert k.why_not(large, out=large) is None
    ints = np.ones(8, np.int32)
    assert "dtype" in k.why_not(ints, out=ints)
