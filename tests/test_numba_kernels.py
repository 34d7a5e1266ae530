"""Numba kernels, called directly through the registry, against NumPy in float64.

Numba-specific edges: size 1, primes, non-contiguous and negative-stride views,
broadcasting (stride 0), keepdims, out poisoned with NaN, in place.  Shapes are
few and reused so that the number of compiled specializations stays small
(every kernel compiles once per dtype, whatever the layout).
Tolerances: float32 rtol 1e-5 / atol 1e-6, float64 rtol 1e-12 / atol 1e-14 at unit
scale.  Sums of K terms: the float64 truth and a float32 result differ by at most
the accumulated rounding, bounded by K*eps*max|term| for any summation order; we
allow 4x that (atol = 4*eps*K*max|term|).
"""
import math

import numpy as np
import pytest

from pyinfer import registry  # noqa: E402

DT = [np.float32, np.float64]
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-14)}
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def K(op):
    return registry.kernels(op)["numba"].fn


def close(got, want, dt, k=1, scale=1.0):
    rtol, atol = TOL[dt]
    atol = max(atol, 4 * EPS[dt] * k * scale) if k > 1 else atol
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol, equal_nan=True)


def views(rng, shape, dt):
    """Same logical array as: contiguous, non-contiguous, negative strides."""
    base = rng.standard_normal(shape).astype(dt)
    big = np.zeros(tuple(2 * s for s in shape), dt)
    sl = tuple(slice(None, None, 2) for _ in shape)
    big[sl] = base
    neg = np.ascontiguousarray(base[..., ::-1])[..., ::-1]
    return [base, big[sl], neg]


SHAPES = [(1,), (7, 13), (3, 5, 2, 11)]


def sig(v):
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e))


UREF = {
    "exp": np.exp, "log": lambda v: np.log(np.abs(v)), "sqrt": lambda v: np.sqrt(np.abs(v)),
    "rsqrt": lambda v: 1 / np.sqrt(np.abs(v)), "abs": np.abs, "neg": np.negative,
    "tanh": np.tanh, "sigmoid": sig, "relu": lambda v: np.where(v < 0, 0, v),
    "gelu": lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
    "gelu_tanh": lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))),
    "silu": lambda v: v * sig(v), "erf": np.vectorize(math.erf, otypes=[np.float64]),
}


@pytest.mark.parametrize("dt", DT)
@pytest.mark.parametrize("op", sorted(UREF))
def test_unary(op, dt):
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        for x in views(rng, shape, dt):
            if op in ("log", "sqrt", "rsqrt"):
                x = np.abs(x)
            want = UREF[op](x.astype(np.float64))
            out = np.full(shape, np.nan, dt)
            K(op)(x, out=out)
            close(out, want, dt)
            # non-contiguous out, and in place
            out2 = np.full(shape + (2,), np.nan, dt)[..., 0]
            K(op)(x, out=out2)
            close(out2, want, dt)
            y = x.copy()
            K(op)(y, out=y)
            close(y, want, dt)


@pytest.mark.parametrize("dt", DT)
def test_unary_specials(dt):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 100.0, -100.0], dt)
    with np.errstate(all="ignore"):
        for op in ("exp", "tanh", "sigmoid", "relu", "erf"):
            out = np.empty_like(x)
            K(op)(x, out=out)
            want = UREF[op](x.astype(np.float64)).astype(dt)   # overflow as in dt
            np.testing.assert_array_equal(np.isnan(out), np.isnan(want), err_msg=op)
            close(out, want.astype(np.float64), dt)


BREF = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
        "pow": np.power, "maximum": np.maximum, "minimum": np.minimum}
BSHAPES = [((7, 13), (13,)), ((7, 1), (1, 13)), ((1,), (3, 5, 2, 11)), ((3, 1, 2, 11), (5, 1, 1)),
           ((2, 3, 1, 5, 2, 3), (2, 1, 4, 5, 1, 3))]


@pytest.mark.parametrize("dt", DT)
@pytest.mark.parametrize("op", sorted(BREF))
def test_binary_broadcast(op, dt):
    rng = np.random.default_rng(1)
    for sa, sb in BSHAPES:
        a = rng.standard_normal(sa).astype(dt)
        b = rng.standard_normal(sb).astype(dt)
        if op == "pow":
            a = np.abs(a) + 0.5
        if op in ("maximum", "minimum"):
            a.flat[0] = np.nan
        shape = np.broadcast_shapes(sa, sb)
        if registry.kernels(op)["numba"].why_not(a, b, out=np.empty(shape, dt)):
            continue                                  # rank > 4 after coalescing
        for av in (a, a[..., ::-1]):
            want = BREF[op](av.astype(np.float64), b.astype(np.float64))
            out = np.full(shape, np.nan, dt)
            K(op)(av, b, out=out)
            close(out, want, dt)
    # in place, contiguous, with a negative-stride b
    a = rng.standard_normal((7, 13)).astype(dt) + (3 if op == "pow" else 0)
    a = np.abs(a) if op == "pow" else a
    b = rng.standard_normal((7, 13)).astype(dt)[::-1]
    want = BREF[op](a.astype(np.float64), b.astype(np.float64))
    K(op)(a, b, out=a)
    close(a, want, dt)


@pytest.mark.parametrize("dt", DT)
def test_where(dt):
    rng = np.random.default_rng(2)
    c = rng.random((7, 13)) > 0.5
    a = rng.standard_normal((7, 13)).astype(dt)
    for b in (rng.standard_normal((13,)).astype(dt), np.array(-np.inf, dt)):
        out = np.full((7, 13), np.nan, dt)
        K("where")(c, a, b, out=out)
        np.testing.assert_array_equal(out, np.where(c, a, b))
        out = np.full((13, 7), np.nan, dt).T
        K("where")(c[:, ::-1], a, b, out=out)
        np.testing.assert_array_equal(out, np.where(c[:, ::-1], a, b))


RSHAPE = (3, 5, 2, 11)
AXES = [(0,), (3,), (1, 2), (0, 2), (0, 1, 2, 3), (1, 3)]


@pytest.mark.parametrize("dt", DT)
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_reduce(op, dt):
    rng = np.random.default_rng(3)
    for x in views(rng, RSHAPE, dt):
        for axes in AXES:
            for keep in (False, True):
                want = getattr(np, op)(x.astype(np.float64), axis=axes, keepdims=keep)
                out = np.full(np.shape(want), np.nan, dt)
                K(op)(x, axis=axes, keepdims=keep, out=out)
                k = int(np.prod([x.shape[d] for d in axes]))
                close(out, want, dt, k=k, scale=np.abs(x).max())
    x = rng.standard_normal((5, 7)).astype(dt)
    x[2, 3] = np.nan
    out = np.empty(5, dt)
    if op in ("max", "min"):
        K(op)(x, axis=(1,), keepdims=False, out=out)
        assert np.isnan(out[2]) and not np.isnan(out[[0, 1, 3, 4]]).any()


@pytest.mark.parametrize("dt", DT)
def test_reduce_whole_array(dt):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(200_003) + 1).astype(dt)   # mean 1: pairwise-hard for naive sums
    for op in ("sum", "mean", "max", "min"):
        out = np.full((), np.nan, dt)
        K(op)(x, axis=(0,), keepdims=False, out=out)
        close(out, getattr(np, op)(x.astype(np.float64)), dt, k=x.size,
              scale=np.abs(x).max() / (x.size if op == "mean" else 1))


@pytest.mark.parametrize("dt", DT)
def test_argmax(dt):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, RSHAPE).astype(dt)          # ties: the first index must win
    for axis in (0, 1, 3, None):
        for keep in (False, True):
            want = np.argmax(x, axis=axis, keepdims=keep)
            out = np.full(np.shape(want), -7, np.int64)
            K("argmax")(x, axis=axis, keepdims=keep, out=out)
            np.testing.assert_array_equal(out, want)
    x = rng.standard_normal((4, 9)).astype(dt)
    x[1, 5] = x[1, 7] = np.nan
    out = np.empty(4, np.int64)
    K("argmax")(x, axis=1, keepdims=False, out=out)
    np.testing.assert_array_equal(out, np.argmax(x, axis=1))


def _softmax64(x, axis, log):
    s = x - x.max(axis, keepdims=True)
    lse = np.log(np.exp(s).sum(axis, keepdims=True))
    return s - lse if log else np.exp(s - lse)


@pytest.mark.parametrize("dt", DT)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, dt):
    rng = np.random.default_rng(6)
    for x in views(rng, RSHAPE, dt):
        x = x * 10
        for axis in range(4):
            want = _softmax64(x.astype(np.float64), axis, op == "log_softmax")
            out = np.full(RSHAPE, np.nan, dt)
            K(op)(x, axis=axis, out=out)
            close(out, want, dt, k=RSHAPE[axis], scale=np.abs(want).max())
            y = x.copy()
            K(op)(y, axis=axis, out=y)
            close(y, want, dt, k=RSHAPE[axis], scale=np.abs(want).max())
    x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]], dt)
    out = np.empty_like(x)
    K(op)(x, axis=1, out=out)
    assert np.isnan(out[0]).all() and not np.isnan(out[1]).any()


@pytest.mark.parametrize("dt", DT)
def test_norms(dt):
    rng = np.random.default_rng(7)
    for x in views(rng, RSHAPE, dt):
        x = x + 1000                                 # far from 0: one-pass variance would fail
        x64 = x.astype(np.float64)
        for axis in (1, 3):
            red = tuple(range(axis, 4))
            w = rng.standard_normal(RSHAPE[axis:]).astype(dt)
            b = rng.standard_normal(RSHAPE[axis:]).astype(dt)
            k = int(np.prod(RSHAPE[axis:]))
            m = x64.mean(red, keepdims=True)
            v = ((x64 - m) ** 2).mean(red, keepdims=True)
            for ww, bb in ((w, b), (None, None), (w, None)):
                want = (x64 - m) / np.sqrt(v + 1e-5)
                want = want * (1 if ww is None else ww) + (0 if bb is None else bb)
                out = np.full(RSHAPE, np.nan, dt)
                K("layer_norm")(x, ww, bb, axis=axis, eps=1e-5, out=out)
                # x ~ 1000: x - mean carries eps*|x| of rounding, which the division by
                # std (~1) turns into an absolute error of eps*|x|/std in the output
                close(out, want, dt, k=k, scale=np.abs(x).max() / np.sqrt(v.min()))
            want = x64 / np.sqrt((x64 ** 2).mean(red, keepdims=True) + 1e-6) * w
            y = x.copy()
            K("rms_norm")(y, w, axis=axis, eps=1e-6, out=y)
            close(y, want, dt, k=k, scale=np.abs(want).max())


ACTS = {None: lambda v: v, "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
        "sigmoid": sig, "silu": lambda v: v * sig(v), "gelu": UREF["gelu"],
        "gelu_tanh": UREF["gelu_tanh"]}


@pytest.mark.parametrize("dt", DT)
def test_gemm(dt):
    rng = np.random.default_rng(8)
    # M around MR=4, N around NB=256, K = 0, 1, prime
    for (M, N, Kd) in [(1, 1, 1), (5, 257, 13), (4, 256, 0), (3, 300, 31), (9, 17, 64)]:
        a = rng.standard_normal((Kd, M)).astype(dt).T            # transposed view
        b = rng.standard_normal((Kd, N)).astype(dt)
        bias = rng.standard_normal(N).astype(dt)
        res = rng.standard_normal(N).astype(dt)[None, :].repeat(1, 0)
        res = np.broadcast_to(res, (M, N))                        # zero row stride
        for act in ACTS:
            want = 0.5 * (a.astype(np.float64) @ b) + bias + res
            want = ACTS[act](want)
            out = np.full((M, N), np.nan, dt)
            K("gemm")(a, b, bias, res, alpha=0.5, activation=act, out=out)
            close(out, want, dt, k=max(Kd, 1) + 2, scale=3 * max(1, np.abs(want).max()))
        out = np.full((N, M), np.nan, dt).T                       # non-contiguous out
        K("gemm")(a, b[:, ::-1], None, None, alpha=1.0, activation=None, out=out)
        close(out, a.astype(np.float64) @ b[:, ::-1], dt, k=max(Kd, 1), scale=8)


@pytest.mark.parametrize("dt", DT)
def test_matmul(dt):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((3, 6, 11)).astype(dt)
    b = rng.standard_normal((11, 19)).astype(dt)
    for bb in (np.broadcast_to(b, (3, 11, 19)), np.stack([b, 2 * b, -b])):
        out = np.full((3, 6, 19), np.nan, dt)
        K("matmul")(a, bb, out=out)
        close(out, a.astype(np.float64) @ bb, dt, k=11, scale=16)
