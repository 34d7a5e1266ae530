"""The float32 approximations of kernels/fastmath.py against float64 truth.

Dense sweeps (~1e6 points over the useful range, plus specials: NaN, +-Inf, +-0,
denormals, huge).  Error is in ulps of the float32 result; results in the
denormal range (|ref| < FLT_MIN) are checked in absolute terms (a few denormal
steps), since there the float32 grid itself has no relative precision.
"""
import math

import numpy as np
import pytest

from numba import njit

from pyinfer.kernels import fastmath as fm  # noqa: E402

FLT_MIN = np.float32(1.17549435e-38)
MAX_ULP = {"exp": 2, "log": 2, "tanh": 3, "sigmoid": 4, "silu": 6, "erf": 4, "gelu": 8,
           "gelu_tanh": 6}


def _erf64(v):
    return np.vectorize(math.erf, otypes=[np.float64])(v)


def _erfc64(v):
    return np.vectorize(math.erfc, otypes=[np.float64])(v)


def _sig64(v):
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e))


REF = {
    "exp": np.exp, "log": np.log, "tanh": np.tanh, "sigmoid": _sig64,
    "silu": lambda v: np.where(np.isneginf(v), -0.0, v * _sig64(v)),
    "erf": _erf64,
    "gelu": lambda v: np.where(np.isneginf(v), -0.0, 0.5 * v * _erfc64(-v / math.sqrt(2))),
    "gelu_tanh": lambda v: np.where(np.isneginf(v), -0.0, v * _sig64(
        2 * math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
}


def _sweep():
    rng = np.random.default_rng(1234)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, 1e-30, 3e38,
                -3e38, 88.72, 88.73, -87.3, -103.9, -104.5, 1e-3, -1e-3]
    return np.concatenate([
        np.linspace(-20, 20, 600_001), rng.standard_normal(200_000) * 4,
        np.linspace(-120, 120, 200_001), specials]).astype(np.float32)


_KERNELS = {}


def _kernel(name):
    if name not in _KERNELS:
        f = getattr(fm, name)

        @njit(fastmath={"contract", "arcp"})
        def k(x, out):
            for i in range(x.size):
                out[i] = f(x[i])
        _KERNELS[name] = k
    return _KERNELS[name]


@pytest.mark.parametrize("name", sorted(REF))
def test_float32_ulp(name):
    x = _sweep()
    if name == "log":
        x = np.concatenate([np.abs(x), np.float32([-1.0, -np.inf, 1e-45, 1.0])])
    out = np.empty_like(x)
    _kernel(name)(x, out)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        ref = REF[name](x64)
        r32 = ref.astype(np.float32)
    nan_ok = np.isnan(out) == np.isnan(ref)
    assert nan_ok.all(), f"{name}: NaN mismatch at x={x[~nan_ok][:5]}"
    fin = ~np.isnan(ref)
    same = out == r32
    inf_bad = fin & np.isinf(r32) & ~same
    assert not inf_bad.any(), f"{name}: overflow mismatch at x={x[inf_bad][:5]}"
    normal = fin & np.isfinite(r32) & (np.abs(r32) >= FLT_MIN)
    ulp = np.spacing(np.abs(r32[normal])).astype(np.float64)
    err = np.abs(out[normal].astype(np.float64) - ref[normal]) / ulp
    i = int(np.argmax(err))
    worst = err[i]
    den = fin & (np.abs(r32) < FLT_MIN)
    den_err = np.abs(out[den].astype(np.float64) - ref[den]).max() if den.any() else 0.0
    msg = (f"{name}: max error {worst:.2f} ulp at x={x[normal][i]!r} "
           f"(got {out[normal][i]!r}, want {ref[normal][i]!r}); denormal-range abs err {den_err:.2g}")
    print(msg)
    assert worst <= MAX_ULP[name], msg
    assert den_err <= 64 * 1.4e-45, msg


def test_signed_zero_and_specials():
    z = np.float32([0.0, -0.0])
    for name in ("tanh", "erf", "silu", "gelu", "gelu_tanh"):
        out = np.empty_like(z)
        _kernel(name)(z, out)
        assert (out == 0).all(), name
    out = np.empty(3, np.float32)
    _kernel("exp")(np.float32([-np.inf, np.inf, np.nan]), out)
    assert out[0] == 0 and out[1] == np.inf and np.isnan(out[2])
    _kernel("log")(np.float32([0.0, -1.0, np.inf]), out)
    assert out[0] == -np.inf and np.isnan(out[1]) and out[2] == np.inf
    _kernel("tanh")(np.float32([-np.inf, np.inf, 1e30]), out)
    assert list(out) == [-1.0, 1.0, 1.0]
