"""Every op on every backend against the NumPy reference (STYLE.md 12, 13).

Inputs come from hypothesis: size 1, primes and the SIMD/tile edges, 0-d,
transposed, strided and negative-stride views, broadcast operands; outputs are
poisoned with NaN so an element a kernel forgets to write fails.  The
reference is the ``numpy`` backend run in float64; tolerances come from
``pyinfer.testing`` (set by error analysis, per dtype).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from pyinfer import ops, registry
from pyinfer.errors import UnsupportedError
from pyinfer.testing import (ACTIVATIONS, BINARY, REDUCE, UNARY, assert_close, eps,
                             random_input, sum_bound)

from _variants import backend_variants, on_isa

DTYPES = (np.float32, np.float64)
# Sizes around the 8-lane AVX2 and 16-lane AVX-512 vectors and the GEMM
# register tiles, plus 1 and primes.
DIMS = (1, 2, 3, 5, 6, 7, 8, 9, 13, 15, 16, 17, 24, 31, 32, 33, 47, 64, 67)
SMALL_DIMS = (1, 2, 3, 5, 7, 8, 9, 16, 17)



def call(fn, *args, backend, **kw):
    """Run an op on an explicit backend; a documented refusal is not a result."""
    try:
        return fn(*args, backend=backend, **kw)
    except UnsupportedError as e:
        assert "cannot run this call" in str(e), e
        assume(False)


@st.composite
def shapes(draw, min_dims=1, max_dims=3, dims=DIMS):
    return tuple(draw(st.lists(st.sampled_from(dims), min_size=min_dims, max_size=max_dims)))


@st.composite
def layouts(draw, x):
    """x as contiguous, transposed, strided or reversed view (values unchanged
    in meaning: the reference sees the same view)."""
    kind = draw(st.sampled_from(["c", "c", "transpose", "strided", "reversed"]))
    if kind == "transpose" and x.ndim >= 2:
        return np.ascontiguousarray(x.swapaxes(-1, -2)).swapaxes(-1, -2)
    if kind == "strided" and x.ndim >= 1:
        big = np.empty(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if kind == "reversed" and x.ndim >= 1:
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    return x


def poisoned(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def ref(fn, *arrays, **kw):
    """The numpy backend in float64."""
    cast = [None if a is None else np.asarray(a, np.float64) for a in arrays]
    return fn(*cast, backend="numpy", **kw)


# ---- the kernels exist -------------------------------------------------------

def test_fast_backends_are_built():
    assert registry.unavailable_reason("c") is None, registry.unavailable_reason("c")
    assert registry.unavailable_reason("numba") is None, registry.unavailable_reason("numba")


@pytest.mark.parametrize("op", UNARY + BINARY + REDUCE + (
    "argmax", "where", "softmax", "log_softmax", "layer_norm", "rms_norm", "gemm", "matmul"))
def test_every_op_has_numpy_and_numba_kernels(op):
    assert {"numpy", "numba"} <= set(registry.kernels(op)), registry.kernels(op)


# ---- elementwise ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UNARY)
def test_unary(op, dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants(op)]:
        _check_unary(op, dtype, backend, isa)


def _check_unary(op, dtype, backend, isa):
    @given(shape=shapes(min_dims=0), data=st.data())
    def check(shape, data):
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        x = data.draw(layouts(random_input(rng, shape, dtype, op) * 3))
        if op in ("log", "sqrt", "rsqrt"):
            x = np.abs(x) + 0.05
        out = poisoned(x.shape, dtype)
        with on_isa(isa):
            got = call(getattr(ops, op), x, out=out, backend=backend)
        assert got is out
        assert_close(got, ref(getattr(ops, op), x), dtype, what=f"{op}/{backend}")
    check()


@st.composite
def broadcast_pair(draw):
    shape = draw(shapes(min_dims=0, max_dims=4, dims=SMALL_DIMS + (32, 33)))
    def operand():
        s = [d if draw(st.booleans()) else 1 for d in shape]
        drop = draw(st.integers(0, len(s)))
        return tuple(s[drop:])
    return shape, operand(), operand()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY)
def test_binary(op, dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants(op)]:
        _check_binary(op, dtype, backend, isa)


def _check_binary(op, dtype, backend, isa):
    @given(shapes=broadcast_pair(), data=st.data())
    def check(shapes, data):
        full, sa, sb = shapes
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        a = data.draw(layouts(random_input(rng, sa, dtype)))
        b = data.draw(layouts(random_input(rng, sb, dtype)))
        if op == "pow":
            a = np.abs(a) + 0.5
        out_shape = np.broadcast_shapes(a.shape, b.shape)
        out = poisoned(out_shape, dtype)
        with on_isa(isa):
            got = call(getattr(ops, op), a, b, out=out, backend=backend)
        assert_close(got, ref(getattr(ops, op), a, b), dtype, what=f"{op}/{backend}")
    check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_where(dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants("where")]:
        @given(shapes=broadcast_pair(), data=st.data())
        def check(shapes, data):
            full, sa, sb = shapes
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            cond = rng.random(full) > 0.5
            a, b = random_input(rng, sa, dtype), random_input(rng, sb, dtype)
            out = poisoned(np.broadcast_shapes(full, sa, sb), dtype)
            got = call(ops.where, cond, a, b, out=out, backend=backend)
            np.testing.assert_array_equal(got, np.where(cond, a, b))
        check()


@pytest.mark.parametrize("backend", ["c", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_in_place_and_specials(backend, dtype):
    """out may be an input; NaN and Inf propagate as in NumPy."""
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 30.0, -30.0, 1e-30],
                        dtype=dtype)
    for op in UNARY:
        if backend not in registry.kernels(op):
            continue
        x = np.tile(specials, 3)  # 30 values: crosses a vector boundary
        with np.errstate(all="ignore"):
            expected = ref(getattr(ops, op), x)
        y = x.copy()
        try:
            got = getattr(ops, op)(y, out=y, backend=backend)
        except UnsupportedError:
            continue
        assert got is y
        assert_close(got, expected, dtype, what=f"{op}/{backend} in place on specials")


# ---- reductions -------------------------------------------------------------------

@st.composite
def reduce_args(draw):
    shape = draw(shapes(min_dims=1, max_dims=4, dims=DIMS[:14]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    nd = len(shape)
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-nd, nd - 1))
    else:
        axis = tuple(draw(st.sets(st.integers(0, nd - 1), min_size=1, max_size=nd)))
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", REDUCE)
def test_reduce(op, dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants(op)]:
        @given(args=reduce_args(), data=st.data())
        def check(args, data):
            shape, axis, keepdims = args
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            x = data.draw(layouts(random_input(rng, shape, dtype)))
            expected = ref(getattr(ops, op), x, axis=axis, keepdims=keepdims)
            out = poisoned(expected.shape, dtype)
            got = call(getattr(ops, op), x, axis=axis, keepdims=keepdims, out=out,
                       backend=backend)
            n = x.size // max(expected.size, 1)
            bound = sum_bound(n, ref(ops.sum, np.abs(x), axis=axis, keepdims=keepdims), dtype)
            if op == "mean":
                bound = bound / n
            assert_close(got, expected, dtype, atol_extra=bound, what=f"{op}/{backend}")
        check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax(dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants("argmax")]:
        @given(shape=shapes(min_dims=1, max_dims=3), data=st.data())
        def check(shape, data):
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            x = data.draw(layouts(random_input(rng, shape, dtype)))
            axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
            keepdims = data.draw(st.booleans())
            if data.draw(st.booleans()):  # ties and NaN: the first one wins
                x = np.round(x)
                x.flat[rng.integers(0, x.size)] = np.nan
            expected = np.argmax(x, axis=axis, keepdims=keepdims)
            out = np.full(expected.shape, -7, dtype=np.int64)
            got = call(ops.argmax, x, axis=axis, keepdims=keepdims, out=out, backend=backend)
            np.testing.assert_array_equal(got, expected)
        check()


# ---- softmax and the norms ----------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants(op)]:
        @given(shape=shapes(min_dims=1, max_dims=3), data=st.data())
        def check(shape, data):
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            x = data.draw(layouts(random_input(rng, shape, dtype) * 4))
            axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
            out = poisoned(x.shape, dtype)
            with on_isa(isa):
                got = call(getattr(ops, op), x, axis=axis, out=out, backend=backend)
            n = x.shape[axis]
            bound = 4 * np.sqrt(n) * eps(dtype)  # relative error of the sum of exps
            kw = {"rtol_extra": bound} if op == "softmax" else {"atol_extra": bound}
            assert_close(got, ref(getattr(ops, op), x, axis=axis), dtype, **kw,
                         what=f"{op}/{backend}")
        check()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_norms(op, dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants(op)]:
        @given(shape=shapes(min_dims=1, max_dims=3), data=st.data())
        def check(shape, data):
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            x = data.draw(layouts(random_input(rng, shape, dtype) * 2 + 0.5))
            axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
            norm_shape = x.shape[axis:]
            w = random_input(rng, norm_shape, dtype) if data.draw(st.booleans()) else None
            b = random_input(rng, norm_shape, dtype) if data.draw(st.booleans()) else None
            eps_ = data.draw(st.sampled_from([1e-5, 1e-12, 0.1]))
            out = poisoned(x.shape, dtype)
            args = (x, w, b) if op == "layer_norm" else (x, w)
            with on_isa(isa):
                got = call(getattr(ops, op), *args, eps=eps_, axis=axis, out=out,
                           backend=backend)
            expected = ref(getattr(ops, op), *args, eps=eps_, axis=axis)
            n = int(np.prod(norm_shape))
            # mean and variance are sums of n terms; their error scales y.
            wmax = 1.0 if w is None else float(np.max(np.abs(w)))
            bound = 8 * np.sqrt(n) * eps(dtype) * (np.abs(expected) + wmax)
            assert_close(got, expected, dtype, atol_extra=bound, what=f"{op}/{backend}")
        check()


# ---- GEMM and matmul -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm(dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants("gemm")]:
        @given(m=st.sampled_from(DIMS), n=st.sampled_from(DIMS), k=st.sampled_from(DIMS + (0,)),
               data=st.data())
        def check(m, n, k, data):
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            trans_a, trans_b = data.draw(st.booleans()), data.draw(st.booleans())
            a = random_input(rng, (k, m) if trans_a else (m, k), dtype)
            b = random_input(rng, (n, k) if trans_b else (k, n), dtype)
            a, b = data.draw(layouts(a)), data.draw(layouts(b))
            bias_shape = data.draw(st.sampled_from([None, (n,), (1, n), (), (m, 1), (m, n)]))
            bias = None if bias_shape is None else random_input(rng, bias_shape, dtype)
            res_shape = data.draw(st.sampled_from([None, (m, n), (n,), (m, 1)]))
            residual = None if res_shape is None else random_input(rng, res_shape, dtype)
            act = data.draw(st.sampled_from(ACTIVATIONS))
            alpha = data.draw(st.sampled_from([1.0, 0.5, -2.0]))
            kw = dict(bias=bias, residual=residual, activation=act, alpha=alpha,
                      trans_a=trans_a, trans_b=trans_b)
            out = poisoned((m, n), dtype)
            with on_isa(isa):
                got = call(ops.gemm, a, b, out=out, backend=backend, **kw)
            expected = ops.gemm(*(np.asarray(v, np.float64) for v in (a, b)), backend="numpy",
                                **{**kw, "bias": None if bias is None else bias.astype(np.float64),
                                   "residual": None if residual is None else
                                   residual.astype(np.float64)})
            aa = np.abs(np.asarray(a, np.float64).T if trans_a else np.asarray(a, np.float64))
            bb = np.abs(np.asarray(b, np.float64).T if trans_b else np.asarray(b, np.float64))
            # The dot products' rounding, through an activation of slope <= 1.13.
            bound = 1.2 * abs(alpha) * sum_bound(k, aa @ bb, dtype)
            assert_close(got, expected, dtype, atol_extra=bound, what=f"gemm/{backend}")
        check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul(dtype):
    for backend, isa in [(p.values[0], p.values[1]) for p in backend_variants("matmul")]:
        @given(data=st.data())
        def check(data):
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            m, k, n = (data.draw(st.sampled_from(SMALL_DIMS + (33,))) for _ in range(3))
            batch = data.draw(shapes(min_dims=0, max_dims=3, dims=(1, 2, 3)))
            sa = tuple(d if data.draw(st.booleans()) else 1 for d in batch)
            sb = tuple(d if data.draw(st.booleans()) else 1 for d in batch)
            sa = sa[data.draw(st.integers(0, len(sa))):]
            a_shape = (k,) if data.draw(st.integers(0, 5)) == 0 else sa + (m, k)
            b_shape = (k,) if data.draw(st.integers(0, 5)) == 0 else sb + (k, n)
            a = data.draw(layouts(random_input(rng, a_shape, dtype)))
            b = data.draw(layouts(random_input(rng, b_shape, dtype)))
            expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
            out = poisoned(expected.shape, dtype)
            with on_isa(isa):
                got = call(ops.matmul, a, b, out=out, backend=backend)
            bound = sum_bound(k, np.matmul(np.abs(a.astype(np.float64)),
                                           np.abs(b.astype(np.float64))), dtype)
            assert_close(got, expected, dtype, atol_extra=bound, what=f"matmul/{backend}")
        check()


# ---- backend=None ----------------------------------------------------------------------

def test_auto_selection_matches_reference(rng):
    x = random_input(rng, (64, 384), np.float32)
    w = random_input(rng, (384, 96), np.float32)
    assert_close(ops.gemm(x, w, activation="gelu"),
                 ref(ops.gemm, x, w, activation="gelu"), np.float32,
                 atol_extra=1.2 * sum_bound(384, np.abs(x) @ np.abs(w), np.float32))
    assert_close(ops.softmax(x), ref(ops.softmax, x), np.float32,
                 rtol_extra=4 * np.sqrt(384) * eps(np.float32))
    assert_close(ops.exp(x), ref(ops.exp, x), np.float32)
