"""CNN ops (pools, global pools, batch norm, pad, concat, flatten, LRN,
resize/upsample): every fast backend against the NumPy reference, the
reference against PyTorch on fixed cases (so it does not only confirm
itself), argument errors, and the graph ops through the Interpreter.

Tolerances (pyinfer.testing's policy, derived here per op):
* max pools, global max, nearest resize, pad, concat, flatten select values:
  exact.
* avg pools and global avg sum k terms then divide once: ``sum_bound(k,
  sum|x|)`` (Higham's bound, any summation order) divided by the count, plus
  the dtype's base tolerance for the division.
* batch norm runs as ``x * a + b`` with ``a, b`` formed in float64 and rounded
  once: |error| <= 4 eps (|x a| + |b|) (two roundings of a, b, one of the
  product, one of the sum), which also covers the cancellation when x ~ mean.
* linear resize blends 4 inputs with weights in the working dtype: each of the
  ~6 roundings is at most eps * max|x| (every partial result is a convex
  combination): 8 eps max|x|.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from pyinfer import ops, registry
from pyinfer.errors import DTypeError, ShapeError, UnsupportedError
from pyinfer.graph.ir import Graph, Op
from pyinfer.graph.reference import evaluate
from pyinfer.runtime.interpreter import Interpreter
from pyinfer.testing import assert_close, eps, sum_bound

from _variants import backend_variants, on_isa

DTYPES = (np.float32, np.float64)
LAYOUTS = ("c", "cropped", "w_strided", "channels_last")




def make_input(rng, shape, dtype, layout):
    """A float array of ``shape`` in one of several memory layouts."""
    n, c, h, w = shape
    if layout == "cropped":        # dense rows, gaps between rows and planes
        return rng.standard_normal((n, c + 1, h + 2, w + 3)).astype(dtype)[:, 1:, 1:-1, 2:-1]
    if layout == "w_strided":      # the W axis itself is strided
        return rng.standard_normal((n, c, h, 2 * w)).astype(dtype)[..., ::2]
    if layout == "channels_last":
        return np.transpose(rng.standard_normal((n, h, w, c)).astype(dtype), (0, 3, 1, 2))
    return rng.standard_normal(shape).astype(dtype)


def poisoned(shape, dtype, strided=False):
    """A NaN-filled out (every element a kernel forgets to write fails)."""
    if strided:
        return np.full(shape[:-1] + (2 * shape[-1],), np.nan, dtype)[..., ::2]
    return np.full(shape, np.nan, dtype)


def reference(fn, x, *args, **kw):
    """The numpy backend on float64 inputs: the golden answer."""
    return fn(np.asarray(x, np.float64), *[np.asarray(a, np.float64) for a in args],
              backend="numpy", **kw)


def avg_tolerance(x, kernel_terms, dtype):
    """A window sums at most k terms of magnitude <= max|x| and divides by a
    count >= 1, so its error is at most sum_bound(k, k * max|x|)."""
    m = float(np.abs(x).max()) if x.size else 0.0
    return sum_bound(kernel_terms, kernel_terms * m, dtype)


# ---- pooling: hypothesis differential --------------------------------------------------


@st.composite
def pool_cases(draw, with_dilation):
    n = draw(st.sampled_from((1, 2, 3)))
    c = draw(st.sampled_from((1, 2, 5)))
    h = draw(st.integers(1, 13))
    w = draw(st.integers(1, 17))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if with_dilation else (1, 1)
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    pads = (draw(st.integers(0, ekh - 1)), draw(st.integers(0, ekw - 1)),
            draw(st.integers(0, ekh - 1)), draw(st.integers(0, ekw - 1)))
    assume(ekh <= h + pads[0] + pads[2] and ekw <= w + pads[1] + pads[3])
    return dict(shape=(n, c, h, w), kernel_shape=(kh, kw), strides=(sh, sw),
                dilations=(dh, dw), pads=pads, ceil_mode=draw(st.booleans()),
                layout=draw(st.sampled_from(LAYOUTS)), dtype=draw(st.sampled_from(DTYPES)),
                strided_out=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("backend, isa", backend_variants("max_pool2d"))
@given(case=pool_cases(with_dilation=True))
def test_max_pool_matches_reference(backend, isa, case):
    rng = np.random.default_rng(case["seed"])
    x = make_input(rng, case["shape"], case["dtype"], case["layout"])
    kw = {k: case[k] for k in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode")}
    expected = reference(ops.max_pool2d, x, **kw)
    out = poisoned(expected.shape, case["dtype"], case["strided_out"])
    with on_isa(isa):
        got = ops.max_pool2d(x, out=out, backend=backend, **kw)
    assert got is out
    np.testing.assert_array_equal(got, expected.astype(case["dtype"]))


@pytest.mark.parametrize("backend, isa", backend_variants("avg_pool2d"))
@given(case=pool_cases(with_dilation=False), count_include_pad=st.booleans())
def test_avg_pool_matches_reference(backend, isa, case, count_include_pad):
    rng = np.random.default_rng(case["seed"])
    x = make_input(rng, case["shape"], case["dtype"], case["layout"])
    kw = {k: case[k] for k in ("kernel_shape", "strides", "pads", "ceil_mode")}
    expected = reference(ops.avg_pool2d, x, count_include_pad=count_include_pad, **kw)
    out = poisoned(expected.shape, case["dtype"], case["strided_out"])
    with on_isa(isa):
        got = ops.avg_pool2d(x, count_include_pad=count_include_pad, out=out, backend=backend, **kw)
    k = case["kernel_shape"][0] * case["kernel_shape"][1]
    assert_close(got, expected, case["dtype"], atol_extra=avg_tolerance(x, k, case["dtype"]),
                 what="avg_pool2d")


POOL_GRID = [(k, s, p, cm)
             for k in ((1, 1), (2, 3), (3, 3))
             for s in ((1, 1), (2, 2), (3, 2))
             for p in ((0, 0, 0, 0), (1, 1, 1, 1), (1, 0, 2, 1), (0, 2, 0, 1))
             for cm in (False, True)
             if all(pi < ki for pi, ki in zip(p, k + k))]


@pytest.mark.parametrize("backend, isa", backend_variants("avg_pool2d"))
def test_every_pool_combination(backend, isa):
    """Every kernel/stride/pad/ceil_mode/count_include_pad combination of a
    small grid, batch 1 and 2, odd sizes, both dtypes."""
    rng = np.random.default_rng(7)
    for shape in ((1, 2, 7, 9), (2, 3, 8, 5)):
        for dtype in DTYPES:
            x = rng.standard_normal(shape).astype(dtype)
            for k, s, p, cm in POOL_GRID:
                geo = dict(kernel_shape=k, strides=s, pads=p, ceil_mode=cm)
                expected = reference(ops.max_pool2d, x, **geo)
                with on_isa(isa):
                    got = ops.max_pool2d(x, backend=backend, out=poisoned(expected.shape, dtype), **geo)
                np.testing.assert_array_equal(got, expected.astype(dtype), err_msg=str(geo))
                for cip in (False, True):
                    expected = reference(ops.avg_pool2d, x, count_include_pad=cip, **geo)
                    with on_isa(isa):
                        got = ops.avg_pool2d(x, count_include_pad=cip, backend=backend,
                                             out=poisoned(expected.shape, dtype), **geo)
                    assert_close(got, expected, dtype, what=f"avg {geo} cip={cip}",
                                 atol_extra=avg_tolerance(x, k[0] * k[1], dtype))


def test_max_pool_nan_propagates_and_empty_window_is_neg_inf():
    x = np.arange(2 * 1 * 5 * 6, dtype=np.float32).reshape(2, 1, 5, 6)
    x[0, 0, 2, 3] = np.nan
    for backend in registry.kernels("max_pool2d"):
        y = ops.max_pool2d(x, 3, 1, 1, backend=backend)
        assert np.isnan(y[0, 0, 1:4, 2:5]).all() and np.isnan(y[0, 0]).sum() == 9
        assert not np.isnan(y[1]).any()
        # Dilation 3 over a 1-pixel input with pad 1: taps at -1 and 2 both miss.
        z = ops.max_pool2d(np.ones((1, 1, 1, 1)), (2, 1), pads=(1, 0, 2, 0), dilations=(3, 1),
                           backend=backend)
        assert z.shape == (1, 1, 1, 1) and z[0, 0, 0, 0] == -np.inf


# ---- global pools, batch norm, resize: differential ----------------------------------------------


@st.composite
def nchw(draw, max_hw=12):
    return dict(shape=(draw(st.sampled_from((1, 2, 3))), draw(st.sampled_from((1, 3, 8, 17))),
                       draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))),
                layout=draw(st.sampled_from(LAYOUTS)), dtype=draw(st.sampled_from(DTYPES)),
                seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("backend, isa", backend_variants("global_avg_pool"))
@given(case=nchw(max_hw=40))
def test_global_pools_match_reference(backend, isa, case):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = make_input(rng, case["shape"], dt, case["layout"])
    hw = x.shape[2] * x.shape[3]
    expected = reference(ops.global_avg_pool, x)
    with on_isa(isa):
        got = ops.global_avg_pool(x, out=poisoned(expected.shape, dt), backend=backend)
    assert_close(got, expected, dt, atol_extra=avg_tolerance(x, hw, dt), what="global_avg_pool")
    expected = reference(ops.global_max_pool, x)
    with on_isa(isa):
        got = ops.global_max_pool(x, out=poisoned(expected.shape, dt, strided=True), backend=backend)
    np.testing.assert_array_equal(got, expected.astype(dt))


def test_global_pools_any_rank():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5, 6))
    for backend in registry.kernels("global_avg_pool"):
        np.testing.assert_allclose(ops.global_avg_pool(x, backend=backend),
                                   x.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-12)
        np.testing.assert_array_equal(ops.global_max_pool(x, backend=backend),
                                      x.max(axis=(2, 3, 4), keepdims=True))


def _bn_params(rng, c, dtype):
    return [rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype),
            rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.1).astype(dtype)]


@pytest.mark.parametrize("backend, isa", backend_variants("batch_norm"))
@given(case=nchw(), rank=st.sampled_from((2, 3, 4)), in_place=st.booleans())
def test_batch_norm_matches_reference(backend, isa, case, rank, in_place):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = make_input(rng, case["shape"], dt, case["layout"])
    x = x[..., 0] if rank == 3 else (x[:, :, 0, 0] if rank == 2 else x)
    params = _bn_params(rng, x.shape[1], dt)
    expected = reference(ops.batch_norm, x, *params, eps=1e-3)
    a, b = _fold64(params, 1e-3)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    bound = 4 * eps(dt) * (np.abs(np.asarray(x, np.float64) * a.reshape(shape)) +
                           np.abs(b.reshape(shape)))
    if in_place:
        x = x.copy()
        out = x
    else:
        out = poisoned(x.shape, dt)
    with on_isa(isa):
        got = ops.batch_norm(x, *params, eps=1e-3, out=out, backend=backend)
    assert got is out
    assert_close(got, expected, dt, atol_extra=bound, what="batch_norm")


def _fold64(params, e):
    scale, bias, mean, var = (np.asarray(p, np.float64) for p in params)
    a = scale / np.sqrt(var + e)
    return a, bias - mean * a


CTMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
        "tf_half_pixel_for_nn", "half_pixel_symmetric")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@pytest.mark.parametrize("backend, isa", backend_variants("resize"))
@given(case=nchw(max_hw=9), mode=st.sampled_from(("nearest", "linear")),
       ctm=st.sampled_from(CTMS), nearest_mode=st.sampled_from(NEAREST),
       by_scales=st.booleans(), oh=st.integers(1, 20), ow=st.integers(1, 20),
       fh=st.sampled_from((0.5, 1.0, 1.5, 2.0, 3.0, 0.3)),
       fw=st.sampled_from((0.5, 1.0, 1.7, 2.0, 4.0)))
def test_resize_matches_reference(backend, isa, case, mode, ctm, nearest_mode, by_scales,
                                  oh, ow, fh, fw):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = make_input(rng, case["shape"], dt, case["layout"])
    n, c, h, w = x.shape
    if by_scales:
        assume(int(h * fh) >= 1 and int(w * fw) >= 1)
        kw = dict(scales=(1.0, 1.0, fh, fw))
    else:
        kw = dict(sizes=(n, c, oh, ow))
    kw.update(mode=mode, coordinate_transformation_mode=ctm, nearest_mode=nearest_mode)
    expected = reference(ops.resize, x, **kw)
    with on_isa(isa):
        got = ops.resize(x, out=poisoned(expected.shape, dt, strided=True), backend=backend, **kw)
    if mode == "nearest":
        np.testing.assert_array_equal(got, expected.astype(dt))
    else:
        assert_close(got, expected, dt, atol_extra=8 * eps(dt) * float(np.abs(x).max()),
                     what="resize linear")


def test_upsample_is_nearest_repeat():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    for backend in registry.kernels("resize"):
        y = ops.upsample(x, (1, 1, 2, 3), backend=backend)
        np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 3, axis=3))


# ---- the reference against PyTorch (fixed cases) -----------------------------------------------

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("k, s, p, d", [(3, 2, 1, 1), (2, 2, 0, 1), (3, 1, 1, 2), (3, 3, 1, 1),
                                        ((3, 2), (2, 1), (1, 0), (1, 2))])
def test_reference_pools_match_torch(k, s, p, d, ceil_mode):
    x = np.random.default_rng(2).standard_normal((2, 3, 11, 10))
    pt = p if isinstance(p, tuple) else (p, p)
    got = reference(ops.max_pool2d, x, kernel_shape=k, strides=s, pads=pt, dilations=d,
                    ceil_mode=ceil_mode)
    want = F.max_pool2d(_t(x), k, s, p, d, ceil_mode=ceil_mode).numpy()
    np.testing.assert_array_equal(got, want)
    if d == 1:
        for cip in (False, True):
            got = reference(ops.avg_pool2d, x, kernel_shape=k, strides=s, pads=pt,
                            ceil_mode=ceil_mode, count_include_pad=cip)
            want = F.avg_pool2d(_t(x), k, s, p, ceil_mode=ceil_mode, count_include_pad=cip).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_reference_asymmetric_pads_match_torch_padding():
    """Asymmetric pads = an explicit pad (-inf / 0) then an unpadded pool."""
    x = np.random.default_rng(4).standard_normal((1, 2, 7, 8))
    pads = (1, 0, 2, 1)   # top, left, bottom, right
    tpad = (pads[1], pads[3], pads[0], pads[2])
    got = reference(ops.max_pool2d, x, kernel_shape=3, strides=2, pads=pads)
    want = F.max_pool2d(F.pad(_t(x), tpad, value=-np.inf), 3, 2).numpy()
    np.testing.assert_array_equal(got, want)
    got = reference(ops.avg_pool2d, x, kernel_shape=3, strides=2, pads=pads, count_include_pad=True)
    want = F.avg_pool2d(F.pad(_t(x), tpad), 3, 2).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("mode, ctm, nearest_mode, torch_kw", [
    ("nearest", "asymmetric", "floor", dict(mode="nearest")),
    ("nearest", "half_pixel", "round_prefer_ceil", dict(mode="nearest-exact")),
    ("linear", "pytorch_half_pixel", "floor", dict(mode="bilinear", align_corners=False)),
    ("linear", "half_pixel", "floor", dict(mode="bilinear", align_corners=False)),
    ("linear", "align_corners", "floor", dict(mode="bilinear", align_corners=True)),
])
@pytest.mark.parametrize("size", [(14, 10), (5, 3), (7, 17)])
def test_reference_resize_matches_torch(mode, ctm, nearest_mode, torch_kw, size):
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 5))
    got = reference(ops.resize, x, sizes=(2, 3) + size, mode=mode,
                    coordinate_transformation_mode=ctm, nearest_mode=nearest_mode)
    want = F.interpolate(_t(x), size=size, **torch_kw).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_reference_lrn_matches_torch(size):
    x = np.random.default_rng(6).standard_normal((2, 7, 4, 3))
    got = reference(ops.lrn, x, size=size, alpha=2e-2, beta=0.7, bias=1.5)
    want = F.local_response_norm(_t(x), size, alpha=2e-2, beta=0.7, k=1.5).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_reference_lrn_even_size_follows_onnx_window():
    """ONNX's window for an even size is [c - (size-1)//2, c + ceil((size-1)/2)]."""
    x = np.random.default_rng(8).standard_normal((1, 5, 2, 2))
    got = reference(ops.lrn, x, size=4, alpha=0.1, beta=0.5, bias=1.0)
    sq = x * x
    want = np.empty_like(x)
    for c in range(5):
        s = sq[:, max(0, c - 1):min(5, c + 3)].sum(axis=1)
        want[:, c] = x[:, c] / (1.0 + 0.1 / 4 * s) ** 0.5
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_reference_batch_norm_and_pad_match_torch():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 5, 6))
    scale, bias, mean, var = _bn_params(rng, 4, np.float64)
    got = reference(ops.batch_norm, x, scale, bias, mean, var, eps=1e-3)
    want = F.batch_norm(_t(x), _t(mean), _t(var), _t(scale), _t(bias), False, 0.0, 1e-3).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(reference(ops.global_avg_pool, x),
                               F.adaptive_avg_pool2d(_t(x), 1).numpy(), rtol=1e-12)
    # ONNX order (all begins, then ends) vs torch's (last axis first, begin/end pairs).
    pads = (0, 0, 2, 1, 0, 0, 1, 3)
    for mode, tmode in (("constant", "constant"), ("reflect", "reflect"), ("edge", "replicate")):
        got = ops.pad(x, pads, mode=mode, value=0.0 if mode != "constant" else 0.0)
        want = F.pad(_t(x), (1, 3, 2, 1), mode=tmode).numpy()
        np.testing.assert_array_equal(got, want)


# ---- pad, concat, flatten (any dtype) --------------------------------------------------------------


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data(),
       mode=st.sampled_from(("constant", "reflect", "edge", "wrap")),
       dtype=st.sampled_from((np.float32, np.float64, np.int32, np.uint8, np.bool_)))
def test_pad_matches_numpy_pad_of_crop(shape, data, mode, dtype):
    nd = len(shape)
    x = (np.arange(int(np.prod(shape))).reshape(shape) % 7).astype(dtype)
    begins = [data.draw(st.integers(-(d - 1), 3)) for d in shape]
    ends = [data.draw(st.integers(-(d - 1 - max(0, -b)), 3)) for d, b in zip(shape, begins)]
    value = 1 if dtype in (np.bool_,) else 5
    got = ops.pad(x, begins + ends, mode=mode, value=value,
                  out=None)
    crop = tuple(slice(max(0, -b), d - max(0, -e)) for d, b, e in zip(shape, begins, ends))
    widths = [(max(0, b), max(0, e)) for b, e in zip(begins, ends)]
    kw = {"constant_values": value} if mode == "constant" else {}
    want = np.pad(x[crop], widths, mode=mode, **kw)
    assert got.dtype == x.dtype and got.shape == want.shape and nd == got.ndim
    np.testing.assert_array_equal(got, want)


def test_concat_and_flatten():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.integers(0, 5, (2, 5, 4)).astype(np.int64)
    got = ops.concat([a, b[:, ::-1]], axis=-2)
    np.testing.assert_array_equal(got, np.concatenate([a, b[:, ::-1]], axis=1))
    assert got.dtype == np.float64
    out = poisoned((2, 8, 4), np.float64)
    assert ops.concat((a, b), axis=1, out=out) is out
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)[:, ::-1]
    for axis, shape in ((0, (1, 120)), (1, (2, 60)), (2, (6, 20)), (4, (120, 1)), (-1, (24, 5))):
        got = ops.flatten(x, axis)
        assert got.shape == shape
        np.testing.assert_array_equal(got, x.reshape(shape))


# ---- errors name the argument ------------------------------------------------------------------------

X = np.zeros((1, 2, 5, 5), np.float32)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: ops.max_pool2d(X, 7), ShapeError, "kernel_shape"),
    (lambda: ops.max_pool2d(X, 3, dilations=3), ShapeError, "kernel_shape"),
    (lambda: ops.max_pool2d(X, 3, strides=0), ShapeError, "strides"),
    (lambda: ops.avg_pool2d(X, 3, strides=(1, -1)), ShapeError, "strides"),
    (lambda: ops.max_pool2d(X, 3, pads=3), ShapeError, "pads"),
    (lambda: ops.max_pool2d(X, 3, pads=(1, 1, -1, 0)), ShapeError, "pads"),
    (lambda: ops.max_pool2d(X, 0), ShapeError, "kernel_shape"),
    (lambda: ops.max_pool2d(X, 3, pads=1, auto_pad="SAME_UPPER"), ShapeError, "pads"),
    (lambda: ops.max_pool2d(X, 3, auto_pad="SAME"), ShapeError, "auto_pad"),
    (lambda: ops.max_pool2d(X[0], 3), ShapeError, "'x'"),
    (lambda: ops.max_pool2d(X.astype(np.int32), 3), DTypeError, "'x'"),
    (lambda: ops.avg_pool2d(X, 3, out=np.zeros((1, 2, 2, 2), np.float32)), ShapeError, "out"),
    (lambda: ops.global_avg_pool(X[0, 0]), ShapeError, "'x'"),
    (lambda: ops.batch_norm(X, *[np.ones(3, np.float32)] * 4), ShapeError, "scale"),
    (lambda: ops.batch_norm(X, *[np.ones(2)] * 3, np.ones(3)), ShapeError, "var"),
    (lambda: ops.batch_norm(X, *[np.ones(2)] * 4, eps=-1.0), ShapeError, "eps"),
    (lambda: ops.lrn(X, 0), ShapeError, "size"),
    (lambda: ops.pad(X, (1, 1)), ShapeError, "pads"),
    (lambda: ops.pad(X, (0, 0, -3, 0, 0, 0, -3, 0)), ShapeError, "pads"),
    (lambda: ops.pad(X, (0,) * 8, mode="mirror"), ShapeError, "mode"),
    (lambda: ops.concat([X, X[:, :, :3, :4]], axis=1), ShapeError, "arrays[1]"),
    (lambda: ops.concat([]), ShapeError, "arrays"),
    (lambda: ops.flatten(X, 5), ShapeError, "axis"),
    (lambda: ops.resize(X, sizes=(1, 2, 3, 3), scales=(1, 1, 2, 2)), ShapeError, "sizes"),
    (lambda: ops.resize(X), ShapeError, "scales"),
    (lambda: ops.resize(X, sizes=(1, 2, 3)), ShapeError, "sizes"),
    (lambda: ops.resize(X, scales=(1, 1, 0, 2)), ShapeError, "scales"),
    (lambda: ops.resize(X, scales=(1, 1, 2, 2), mode="bicubic"), ShapeError, "mode"),
    (lambda: ops.resize(X, scales=(1, 1, 2, 2), mode="cubic"), UnsupportedError, "cubic"),
    (lambda: ops.resize(X, scales=(1, 1, 2, 2), nearest_mode="up"), ShapeError, "nearest_mode"),
    (lambda: ops.resize(X, scales=(1, 1, 2, 2), coordinate_transformation_mode="tf_crop_and_resize"),
     UnsupportedError, "tf_crop_and_resize"),
])
def test_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc, match=words.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        call()


# ---- graph ops through the Interpreter ---------------------------------------------------------------


def cnn_graph(dtype, batch, bn_constant=True):
    rng = np.random.default_rng(11)
    g = Graph("cnn")
    x = g.input("x", (batch, 4, 13, 11), dtype)
    h = g.add(Op.MAX_POOL, [x], {"kernel_shape": (3, 3), "strides": (2, 2), "auto_pad": "SAME_UPPER"})
    if bn_constant:
        params = [g.constant(p, f"bn{i}") for i, p in enumerate(_bn_params(rng, 4, dtype))]
    else:
        params = [g.input(f"bn{i}", (4,), dtype) for i in range(4)]
    h = g.add(Op.BATCH_NORM, [h] + params, {"eps": 1e-3})
    h = g.add(Op.AVG_POOL, [h], {"kernel_shape": (2, 3), "pads": (0, 1, 1, 1), "ceil_mode": True,
                                 "count_include_pad": True})
    h = g.add(Op.MAX_POOL, [h], {"kernel_shape": (2, 2), "dilations": (2, 1), "auto_pad": "SAME_LOWER"})
    a = g.add(Op.RESIZE, [h], {"scales": (1, 1, 2, 2), "mode": "linear",
                               "coordinate_transformation_mode": "align_corners"})
    b = g.add(Op.RESIZE, [h], {"sizes": (batch, 4, 14, 12), "mode": "nearest",
                               "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"})
    h = g.add(Op.ADD, [a, b])
    h = g.add(Op.PAD, [h], {"pads": (0, 0, 1, -1, 0, 0, 2, 1), "mode": "reflect"})
    h = g.add(Op.LRN, [h], {"size": 3, "alpha": 1e-2})
    g.output(g.add(Op.GLOBAL_AVG_POOL, [h]), "y")
    g.output(g.add(Op.GLOBAL_MAX_POOL, [h]), "z")
    return g, params


@pytest.mark.parametrize("backend", ["auto", "numpy", "c"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bn_constant", [True, False])
def test_graph_ops_match_reference(backend, dtype, batch, bn_constant):
    g, params = cnn_graph(dtype, batch, bn_constant)
    rng = np.random.default_rng(12)
    xs = {"x": rng.standard_normal((batch, 4, 13, 11)).astype(dtype)}
    if not bn_constant:
        xs.update({f"bn{i}": p for i, p in enumerate(_bn_params(rng, 4, dtype))})
    it = Interpreter(g, backend=backend)
    got = it.run(xs)
    got = [got[k] for k in ("y", "z")] if isinstance(got, dict) else list(got)
    expected = evaluate(g, [v.astype(np.float64) for v in xs.values()])
    # Several pools, a BN and a blend in a row: 64 eps of the largest value.
    for gv, ev in zip(got, expected):
        assert_close(gv, ev, dtype, atol_extra=64 * eps(dtype) * float(np.abs(ev).max()))


def test_graph_shape_rules():
    g = Graph("shapes")
    x = g.input("x", ("batch", 3, 10, 9), np.float32)
    y = g.add(Op.MAX_POOL, [x], {"kernel_shape": (3, 3), "strides": (2, 2), "auto_pad": "SAME_LOWER"})
    # SAME_LOWER: the odd pad goes first (height: 1 + 0; width: 1 + 1)
    assert y.shape == ("batch", 3, 5, 5) and y.producer.attrs["pads"] == (1, 1, 0, 1)
    y = g.add(Op.AVG_POOL, [x], {"kernel_shape": (3, 2), "strides": (2, 2), "ceil_mode": True})
    assert y.shape == ("batch", 3, 5, 5)
    y = g.add(Op.RESIZE, [x], {"scales": (1, 1, 1.5, 2)})
    assert y.shape == ("batch", 3, 15, 18)
    y = g.add(Op.PAD, [x], {"pads": (0, 0, -1, 2, 0, 1, 0, 0)})
    assert y.shape == ("batch", 4, 9, 11)
    assert g.add(Op.GLOBAL_AVG_POOL, [x]).shape == ("batch", 3, 1, 1)
    with pytest.raises(ShapeError, match="kernel_shape"):
        g.add(Op.MAX_POOL, [x], {"kernel_shape": (11, 3)})
    with pytest.raises(ShapeError, match="strides"):
        g.add(Op.AVG_POOL, [x], {"kernel_shape": (3, 3), "strides": (0, 1)})
    with pytest.raises(UnsupportedError, match="cubic"):
        g.add(Op.RESIZE, [x], {"scales": (1, 1, 2, 2), "mode": "cubic"})
