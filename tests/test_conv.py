"""conv2d against the NumPy reference (pyinfer/backends/numpy_conv.py) in float64.

Every C path (c_conv.PATHS) is forced on shapes it supports, on hypothesis
shapes: batch 1 and > 1, channel counts off the register tile (MR = 6 output
channels, NR = 16 pixels), odd and prime spatial sizes, every stride / pad /
dilation / groups combination incl. depthwise and 1x1, asymmetric pads,
non-contiguous inputs and outputs poisoned with NaN.  Edge cases the random
shapes rarely reach are listed explicitly: K > KC (several k blocks, the
partial sums kept in the output), more than one pixel chunk, the row-block
split of a small plane over threads.  The portable micro-kernels run once too.

Tolerance, per element (never loosened to pass): a conv output is a dot product
of K = C/groups*KH*KW terms plus bias and residual, so Higham's bound
|fl(x.y) - x.y| <= gamma_K |x|.|y| gives the probabilistic sum bound of
pyinfer.testing (4 sqrt(K + 2) eps S, S = conv(|x|, |w|) + |bias| + |residual|),
times 1.2 for the activations' slope (< 1.13).  The Winograd path's transforms
(F(4x4, 3x3): entries up to 8 and 1/24) amplify rounding beyond a direct dot
product; its own contract (pyinfer/backends/winograd.py, tests/test_winograd.py)
is a normwise error below 1e-4 * max|y| in float32, which is what its cases add.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import pyinfer
from pyinfer import ShapeError
from pyinfer.backends import _native
from pyinfer.backends.numpy_conv import conv2d_ref
from pyinfer.testing import assert_close, sum_bound

c_conv = pytest.importorskip("pyinfer.backends.c_conv") if _native.lib is not None else None
needs_c = pytest.mark.skipif(_native.lib is None, reason="C extension not built")

ACTS = [None, "relu", "relu6", "silu", "sigmoid", "clip"]


def _act_kw(act):
    if act == "clip":
        return {"activation": "clip", "clip_min": -0.5, "clip_max": 0.75}
    return {"activation": act}


def _ref_act(act):
    if act == "relu6":
        return "clip", (0.0, 6.0)
    if act == "clip":
        return "clip", (-0.5, 0.75)
    return act, None


def check(x, w, bias, residual, dtype, *, stride, pads, dilation, groups, act, backend="c",
          path=None, out_layout="c", winograd=False):
    """Run pyinfer.ops.conv2d (poisoned out) and compare with the float64 reference."""
    attrs = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
    kernel_act, clip = _ref_act(act)
    ref_attrs = dict(stride=stride, pads=pads, dilation=dilation, groups=groups)
    f64 = [None if a is None else np.asarray(a, np.float64) for a in (x, w, bias, residual)]
    ref = conv2d_ref(*f64, **ref_attrs, activation=kernel_act, clip=clip)
    mag = conv2d_ref(*[None if a is None else np.abs(a) for a in f64], **ref_attrs)
    k = w.shape[1] * w.shape[2] * w.shape[3]
    atol = 1.2 * sum_bound(k + 2, mag, dtype)
    if winograd:
        atol = atol + 1e-4 * np.abs(conv2d_ref(*f64, **ref_attrs)).max()
    shape = ref.shape
    if out_layout == "c":
        out = np.full(shape, np.nan, dtype)
    else:  # a non-contiguous out: every other element of a larger buffer
        out = np.full(shape[:-1] + (2 * shape[-1],), np.nan, dtype)[..., ::2]
    ctx = c_conv.force_path(path) if path is not None else _nullctx()
    with ctx:
        got = pyinfer.ops.conv2d(x, w, bias, residual=residual, out=out, backend=backend,
                                 **attrs, **_act_kw(act))
    assert got is out
    assert_close(out, ref, dtype, atol_extra=atol, what=f"conv2d path={path}")


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@st.composite
def conv_case(draw, kind="any"):
    """(x, w, bias, residual, dtype, attrs) for one conv; kind narrows it to what
    one path supports: "depthwise", "1x1", "3x3s1" (float32: Winograd), "nchwc"
    (float32, groups 1) or "any"."""
    dtype = np.float32 if kind in ("nchwc", "3x3s1") else \
        draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.sampled_from([1, 1, 2, 3]))
    if kind == "depthwise":
        groups = c = k = draw(st.integers(1, 19))
    else:
        groups = 1 if kind in ("1x1", "3x3s1", "nchwc") else draw(st.sampled_from([1, 1, 2, 3]))
        c = groups * draw(st.integers(1, 7))
        k = groups * draw(st.integers(1, 9))
    if kind == "1x1":
        kh = kw = 1
    elif kind == "3x3s1":
        kh = kw = 3
    else:
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if kind in ("1x1", "3x3s1"):
        stride = dilation = (1, 1)
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    top_pad = 2 if kind == "3x3s1" else 3  # Winograd: every output touches the input
    pads = (0, 0, 0, 0) if kind == "1x1" else tuple(draw(st.integers(0, top_pad))
                                                    for _ in range(4))
    reach_h, reach_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    h = draw(st.integers(max(1, reach_h - pads[0] - pads[2]), reach_h + 12))
    wd = draw(st.integers(max(1, reach_w - pads[1] - pads[3]), reach_w + 12))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    layout = draw(st.sampled_from(["c", "c", "strided", "nhwc"]))
    if layout == "strided":  # every other column of a wider array
        x = rng.standard_normal((n, c, h, 2 * wd)).astype(dtype)[..., ::2]
    elif layout == "nhwc":  # channels last in memory
        x = np.moveaxis(rng.standard_normal((n, h, wd, c)).astype(dtype), 3, 1)
    else:
        x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = rng.standard_normal((k, c // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype) if draw(st.booleans()) else None
    oh = (h + pads[0] + pads[2] - reach_h) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - reach_w) // stride[1] + 1
    residual = rng.standard_normal((n, k, oh, ow)).astype(dtype) if draw(st.booleans()) else None
    act = draw(st.sampled_from(ACTS))
    return x, w, bias, residual, dtype, dict(stride=stride, pads=pads, dilation=dilation,
                                             groups=groups, act=act)


@needs_c
@settings(deadline=None, max_examples=60)
@given(conv_case())
def test_auto_path_matches_reference(case):
    x, w, bias, residual, dtype, attrs = case
    check(x, w, bias, residual, dtype, **attrs)


@needs_c
@settings(deadline=None, max_examples=40)
@given(conv_case(), st.sampled_from(["c", "strided"]))
def test_implicit_gemm_path(case, out_layout):
    x, w, bias, residual, dtype, attrs = case
    check(x, w, bias, residual, dtype, path="implicit", out_layout=out_layout, **attrs)


@needs_c
@settings(deadline=None, max_examples=30)
@given(conv_case("depthwise"))
def test_depthwise_path(case):
    x, w, bias, residual, dtype, attrs = case
    check(x, w, bias, residual, dtype, path="depthwise", **attrs)


@needs_c
@settings(deadline=None, max_examples=30)
@given(conv_case("1x1"))
def test_gemm1x1_path(case):
    x, w, bias, residual, dtype, attrs = case
    # The GEMM path takes bias or residual (not both) and no clip: narrow the case.
    if bias is not None:
        residual = None
    if attrs["act"] in ("clip", "relu6"):
        attrs = dict(attrs, act="relu")
    check(x, w, bias, residual, dtype, path="gemm1x1", **attrs)


@needs_c
@settings(deadline=None, max_examples=20)
@given(conv_case("3x3s1"))
def test_winograd_path(case):
    x, w, bias, residual, dtype, attrs = case
    why = c_conv.path_reason("winograd", x.shape, w.shape, attrs["stride"], attrs["pads"],
                             attrs["dilation"], 1, dtype, bias, residual, attrs["act"])
    assert why is None, why  # the 3x3s1 cases are built to fit it
    check(x, w, bias, residual, dtype, path="winograd", winograd=True, **attrs)


# Shapes the random cases rarely reach: K > KC = 256 (several k blocks, the partial
# sums kept in y between them), P > 256 pixels (several chunks), a small plane whose
# output channels are split over threads, tile edges of MR = 6 and NR = 16.
EDGE_CASES = [
    # n, c, h, w, k, kh, kw, stride, pads, dilation, groups
    (1, 40, 20, 20, 13, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),     # K = 360, P = 400
    (2, 64, 9, 9, 17, 3, 3, (2, 2), (1, 0, 0, 1), (1, 1), 1),       # K = 576, P = 25
    (1, 30, 17, 19, 48, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 2),     # groups, P = 255
    (1, 16, 16, 16, 24, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),     # P = 256 = 16 NR
    (3, 5, 33, 7, 7, 5, 3, (3, 1), (2, 1, 0, 2), (1, 2), 1),
    (1, 300, 3, 3, 6, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),       # K = 300, one pixel row
    (1, 32, 31, 31, 32, 3, 3, (1, 1), (1, 1, 1, 1), (2, 2), 32),    # depthwise, dilated
    (2, 24, 15, 15, 24, 5, 5, (2, 2), (2, 2, 2, 2), (1, 1), 24),    # depthwise stride 2
]


@needs_c
@pytest.mark.parametrize("case", EDGE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_shapes_every_path(case, dtype, rng):
    n, c, h, wd, k, kh, kw, stride, pads, dilation, groups = case
    x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = rng.standard_normal((k, c // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    ran = 0
    for path in c_conv.PATHS:
        for with_res in (False, True):
            oh = (h + pads[0] + pads[2] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
            ow = (wd + pads[1] + pads[3] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
            res = rng.standard_normal((n, k, oh, ow)).astype(dtype) if with_res else None
            why = c_conv.path_reason(path, x.shape, w.shape, stride, pads, dilation, groups,
                                     dtype, bias, res, "relu")
            if why is not None:
                continue
            check(x, w, bias, res, dtype, stride=stride, pads=pads, dilation=dilation,
                  groups=groups, act="relu", path=path, winograd=path == "winograd")
            ran += 1
    assert ran >= 1


@needs_c
@pytest.mark.parametrize("path,shape", [
    ("implicit", ((2, 7, 11, 9), (13, 7, 3, 3), 1)),
    ("depthwise", ((2, 9, 11, 9), (9, 1, 3, 3), 9)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_isa(path, shape, dtype, rng):
    """The portable micro-kernels (and the AVX2 ones) on the same call."""
    xs, ws, groups = shape
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    bias = rng.standard_normal(ws[0]).astype(dtype)
    for isa in _native.isas_available():
        with _native.force_isa(isa):
            check(x, w, bias, None, dtype, stride=(1, 1), pads=(1, 0, 2, 1), dilation=(1, 1),
                  groups=groups, act="silu", path=path)


@needs_c
def test_packed_kernel_repacks_when_isa_changes(rng):
    """A ConvKernel packed for one register tile stays right after the ISA changes."""
    x = rng.standard_normal((1, 5, 8, 8)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    kern = c_conv.ConvKernel(x.shape, w, None, stride=(1, 1), pads=(1, 1, 1, 1),
                             dilation=(1, 1), groups=1, activation=None, clip=None,
                             dtype=np.float32, path="implicit")
    ref = conv2d_ref(x.astype(np.float64), w.astype(np.float64), pads=(1, 1, 1, 1))
    for isa in _native.isas_available():
        with _native.force_isa(isa):
            out = np.full(ref.shape, np.nan, np.float32)
            kern(x, None, out)
            assert_close(out, ref, np.float32, atol_extra=sum_bound(45, np.abs(ref) * 4, np.float32))


def test_numpy_backend_and_defaults(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 2, 2))
    y = pyinfer.ops.conv2d(x, w, backend="numpy")
    assert y.shape == (2, 4, 5, 4) and y.dtype == np.float64
    # One output element written out by hand.
    assert np.isclose(y[1, 2, 3, 1], np.sum(x[1, :, 3:5, 1:3] * w[2]))


@pytest.mark.parametrize("auto_pad,h,k,s,expect", [
    ("SAME_UPPER", 7, 3, 2, (1, 1)), ("SAME_UPPER", 8, 3, 2, (0, 1)),
    ("SAME_LOWER", 8, 3, 2, (1, 0)), ("SAME_UPPER", 5, 4, 1, (1, 2)),
    ("SAME_LOWER", 5, 4, 1, (2, 1)), ("VALID", 9, 3, 2, (0, 0)),
])
def test_auto_pad(auto_pad, h, k, s, expect, rng):
    from pyinfer.ops.conv import resolve_auto_pad
    pads = resolve_auto_pad(auto_pad, (h, h), (k, k), (s, s), (1, 1))
    assert (pads[0], pads[2]) == expect
    x = rng.standard_normal((1, 2, h, h))
    w = rng.standard_normal((3, 2, k, k))
    y = pyinfer.ops.conv2d(x, w, stride=s, padding=auto_pad)
    if auto_pad != "VALID":
        assert y.shape[2:] == (-(-h // s),) * 2
    np.testing.assert_allclose(y, conv2d_ref(x, w, stride=(s, s), pads=pads), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("kwargs,arg", [
    (dict(x=(1, 4, 5, 5), w=(3, 3, 3, 3)), "'w'"),                # channel mismatch
    (dict(x=(1, 4, 5, 5), w=(3, 2, 3, 3), groups=2), "'groups'"),  # K not divisible
    (dict(x=(1, 5, 5, 5), w=(4, 2, 3, 3), groups=2), "'groups'"),  # C not divisible
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), groups=0), "'groups'"),
    (dict(x=(1, 4, 2, 5), w=(4, 4, 3, 3)), "'w'"),                # kernel > padded input
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), dilation=3), "'w'"),    # dilated kernel too
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), stride=0), "'stride'"),
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), stride=(1, -1)), "'stride'"),
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), dilation=0), "'dilation'"),
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), padding=-1), "'padding'"),
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), bias=(5,)), "'bias'"),
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), residual=(1, 4, 4, 3)), "'residual'"),
    (dict(x=(4, 5, 5), w=(4, 4, 3, 3)), "'x'"),
    (dict(x=(1, 4, 5, 5), w=(4, 4, 3, 3), activation="gelu6"), "'activation'"),
])
def test_bad_input_names_the_argument(kwargs, arg):
    kwargs = dict(kwargs)
    arrays = {name: np.zeros(kwargs.pop(name), np.float32) for name in ("x", "w", "bias",
                                                                           "residual")
              if name in kwargs}
    with pytest.raises(ShapeError, match=arg):
        pyinfer.ops.conv2d(**arrays, **kwargs)


def test_dtype_errors():
    with pytest.raises(pyinfer.DTypeError, match="'x'"):
        pyinfer.ops.conv2d(np.zeros((1, 1, 3, 3), np.int32), np.zeros((1, 1, 1, 1)))


@needs_c
def test_forced_path_that_cannot_run_raises():
    x = np.zeros((1, 4, 5, 5), np.float32)
    w = np.zeros((4, 4, 3, 3), np.float32)
    with c_conv.force_path("depthwise"):
        with pytest.raises(pyinfer.UnsupportedError, match="depthwise"):
            pyinfer.ops.conv2d(x, w, backend="c")


@needs_c
def test_out_overlapping_input_goes_through_a_temporary(rng):
    buf = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
    ref = conv2d_ref(buf.astype(np.float64), w.astype(np.float64))
    pyinfer.ops.conv2d(buf, w, out=buf)  # in place over x
    assert_close(buf, ref, np.float32, atol_extra=sum_bound(6, np.abs(ref) * 8, np.float32))


@needs_c
@settings(deadline=None, max_examples=30)
@given(conv_case("nchwc"))
def test_direct_nchwc_kernel(case):
    """The direct NCHWc kernel (csrc/pi_conv_nchwc.c) on blocked copies of the case."""
    from pyinfer.graph.families.conv import from_nchwc, to_nchwc
    x, w, bias, residual, dtype, attrs = case
    # A drawn case the kernel does not take is discarded, not a skip of the whole test.
    assume(c_conv.nchwc_reason(x.shape, w.shape, 1, dtype) is None)
    act, clip = _ref_act(attrs["act"])
    geo = dict(stride=attrs["stride"], pads=attrs["pads"], dilation=attrs["dilation"])
    f64 = [None if a is None else np.asarray(a, np.float64) for a in (x, w, bias, residual)]
    ref = conv2d_ref(*f64, **geo, activation=act, clip=clip)
    mag = conv2d_ref(*[None if a is None else np.abs(a) for a in f64], **geo)
    kern = c_conv.NchwcConvKernel(x.shape, w, bias, **geo, activation=act, clip=clip)
    x5 = to_nchwc(np.asarray(x), 8)
    r5 = None if residual is None else to_nchwc(residual, 8)
    out = np.full((ref.shape[0], -(-ref.shape[1] // 8)) + ref.shape[2:] + (8,), np.nan,
                  np.float32)
    kern(x5, r5, out)
    assert_close(from_nchwc(out, ref.shape[1]), ref, dtype,
                 atol_extra=1.2 * sum_bound(w[0].size + 2, mag, dtype), what="nchwc")
