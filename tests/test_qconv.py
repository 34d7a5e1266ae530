"""qconv2d (int8 convolution through the u8 x s8 GEMM): every backend bit-exact
against the direct integer reference (numpy_qconv.qconv2d_ref) over random
geometries, per-tensor and per-channel weights, float and requantized u8
results; errors naming the argument; Op.QCONV planned and run; ConvInteger and
QLinearConv imported from ONNX against ONNX Runtime.

The reference is independent of the kernels: a direct convolution of the
zero-point-corrected input padded explicitly, in int64, not im2col + GEMM.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyinfer
from pyinfer import ops
from pyinfer.backends import _native
from pyinfer.backends.numpy_qconv import qconv2d_acc, qconv2d_ref

from _variants import backend_variants, on_isa

BACKENDS = ["numpy"] + (["c"] if _native.lib is not None else [])
VARIANTS = [pytest.param("numpy", None, id="numpy")] + backend_variants("qconv2d")
EDGE_CHANNELS = [1, 2, 3, 7, 8, 9, 16, 17, 31, 32, 33]


@st.composite
def geometries(draw):
    """Random convolutions: channel counts at SIMD-width edges, depthwise with
    and without a channel multiplier, kernels 1/3/5 and odd shapes, strides up
    to 3, dilations, asymmetric pads, widths around the 8/16/32 vector edges."""
    kind = draw(st.sampled_from(["dense", "dense", "grouped", "depthwise", "depthwise"]))
    if kind == "dense":
        groups, cg, kg = 1, draw(st.sampled_from(EDGE_CHANNELS)), draw(st.sampled_from(EDGE_CHANNELS))
    elif kind == "grouped":
        groups, cg, kg = draw(st.integers(2, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    else:
        groups, cg, kg = draw(st.sampled_from([1, 2, 7, 9, 17])), 1, draw(st.sampled_from([1, 1, 2, 3]))
    c, k = cg * groups, kg * groups
    kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (3, 3), (2, 3), (3, 1), (1, 5), (5, 5)]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    reach_h, reach_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    h = draw(st.integers(max(1, reach_h - pads[0] - pads[2]), 12))
    w = draw(st.one_of(st.integers(max(1, reach_w - pads[1] - pads[3]), 12),
                       st.sampled_from([16, 17, 23, 31, 33, 40])))
    n = draw(st.integers(1, 2))
    return dict(n=n, c=c, k=k, h=h, w=w, kh=kh, kw=kw, groups=groups, stride=stride,
                dilation=dilation, pads=pads)


def _case(rng, g, per_channel, bits=8):
    """bits 7: every |w - w_zero| <= 64 (the 7-bit AVX2 GEMM kernel applies)."""
    x = rng.integers(0, 256, (g["n"], g["c"], g["h"], g["w"]), dtype=np.uint8)
    wshape = (g["k"], g["c"] // g["groups"], g["kh"], g["kw"])
    if per_channel:
        wz = rng.integers(-20, 21, g["k"]).astype(np.int8)
        ws = (rng.random(g["k"]) * 0.01 + 0.001).astype(np.float32)
    else:
        wz, ws = np.int8(rng.integers(-20, 21)), np.float32(0.004)
    if bits == 7:
        zb = np.broadcast_to(np.asarray(wz, np.int16).reshape(-1, 1, 1, 1), wshape)
        w = (zb + rng.integers(-64, 65, wshape)).astype(np.int8)
    else:
        w = rng.integers(-128, 128, wshape, dtype=np.int8)
    xz = np.uint8(rng.integers(0, 256))
    return x, w, xz, wz, np.float32(0.02), ws


def _expected(x, w, xz, wz, xs, ws, g, bias=None, activation=None, out_scale=None,
              out_zero=None):
    k = w.shape[0]
    scale = np.float32(xs) * np.broadcast_to(np.asarray(ws, np.float32).reshape(-1), (k,))
    wzv = np.broadcast_to(np.asarray(wz, np.int32).reshape(-1), (k,))
    return qconv2d_ref(x, w, int(xz), wzv, scale, bias, stride=g["stride"], pads=g["pads"],
                       dilation=g["dilation"], groups=g["groups"], activation=activation,
                       out_scale=out_scale, out_zero=0 if out_zero is None else out_zero,
                       out_dtype=np.float32 if out_scale is None else np.uint8)


def _input_layout(x, layout):
    """The same values as x in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(x)
    if layout == "strided":  # every other column of a wider buffer
        big = np.zeros(x.shape[:3] + (2 * x.shape[3],), np.uint8)
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "reversed":  # negative strides
        return np.ascontiguousarray(x[:, ::-1, ::-1])[:, ::-1, ::-1]
    return x


@pytest.mark.parametrize("backend,isa", VARIANTS)
@settings(deadline=None, max_examples=60)
@given(g=geometries(), seed=st.integers(0, 2**31), per_channel=st.booleans(),
       requant=st.booleans(), bits=st.sampled_from([7, 8]),
       layout=st.sampled_from(["c", "c", "fortran", "strided", "reversed"]))
def test_qconv2d_bit_exact_vs_reference(backend, isa, g, seed, per_channel, requant, bits,
                                        layout):
    rng = np.random.default_rng(seed)
    x, w, xz, wz, xs, ws = _case(rng, g, per_channel, bits)
    bias = rng.standard_normal(g["k"]).astype(np.float32) if seed % 2 else None
    act = "relu" if seed % 3 == 0 else None
    kw = dict(out_scale=np.float32(0.05), out_zero=np.uint8(seed % 256)) if requant else {}
    want = _expected(x, w, xz, wz, xs, ws, g, bias, act, **kw)
    oh, ow = want.shape[2:]
    out = np.full(want.shape, 0xAB if requant else np.nan, want.dtype)  # poisoned
    with on_isa(isa):
        got = ops.qconv2d(_input_layout(x, layout), w, xz, wz, xs, ws, bias=bias,
                          stride=g["stride"], padding=g["pads"], dilation=g["dilation"],
                          groups=g["groups"], activation=act, out=out, backend=backend, **kw)
    assert got is out and got.shape == (g["n"], g["k"], oh, ow)
    np.testing.assert_array_equal(got, want)


def _ukernel_params():
    if _native.lib is None:
        return []
    from pyinfer.backends import c_quant
    return [pytest.param(u.index, id=u.name) for u in c_quant.ukernels() if c_quant.runs(u.index)]


@pytest.mark.parametrize("ukernel", _ukernel_params())
@settings(deadline=None, max_examples=25)
@given(g=geometries(), seed=st.integers(0, 2**31))
def test_qconv2d_every_gemm_ukernel_int32(ukernel, g, seed):
    """The implicit GEMM packs A panels in each micro-kernel's own layout (MR,
    KU, element size): each one that runs here, int32 accumulators compared
    with the exact reference (and float out for the epilogue path)."""
    from pyinfer.backends import c_qconv, c_quant
    rng = np.random.default_rng(seed)
    bits = c_quant.ukernels()[ukernel].wb
    x, w, xz, wz, xs, ws = _case(rng, g, True, bits)
    wzv = np.broadcast_to(np.asarray(wz, np.int32).reshape(-1), (g["k"],))
    want = qconv2d_acc(x, w, int(xz), wzv, stride=g["stride"], pads=g["pads"],
                       dilation=g["dilation"], groups=g["groups"])
    c_quant.force_ukernel(ukernel)
    try:
        qw = ops.qconv_weight(w, wz, groups=g["groups"])  # packed for the forced kernel
        out = np.full(want.shape, -7, np.int32)
        c_qconv.qconv2d(x, qw, int(xz), None, None, stride=g["stride"], pads=g["pads"],
                        dilation=g["dilation"], activation=None, out_scale=None, out_zero=None,
                        out=out)
    finally:
        c_quant.force_ukernel(None)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("isa", [v.values[1] for v in backend_variants("qconv2d")])
@settings(deadline=None, max_examples=30)
@given(g=geometries(), seed=st.integers(0, 2**31), act=st.sampled_from(["gelu", "sigmoid",
                                                                        "tanh", "silu"]))
def test_qconv2d_c_int32_and_smooth_activations(isa, g, seed, act):
    """int32 out (ConvInteger) bit-exact; the smooth activations go through
    the C vector math (within its documented few-ulp error of NumPy's)."""
    from pyinfer.backends import c_qconv
    rng = np.random.default_rng(seed)
    x, w, xz, wz, xs, ws = _case(rng, g, True)
    wzv = np.broadcast_to(np.asarray(wz, np.int32).reshape(-1), (g["k"],))
    qw = ops.qconv_weight(w, wz, groups=g["groups"])
    attrs = dict(stride=g["stride"], pads=g["pads"], dilation=g["dilation"])
    want = qconv2d_acc(x, w, int(xz), wzv, groups=g["groups"], **attrs)
    out = np.full(want.shape, -7, np.int32)
    with on_isa(isa):
        c_qconv.qconv2d(x, qw, int(xz), None, None, activation=None, out_scale=None,
                        out_zero=None, out=out, **attrs)
    np.testing.assert_array_equal(out, want)
    want_f = _expected(x, w, xz, wz, xs, ws, g, activation=act)
    with on_isa(isa):
        got = ops.qconv2d(x, qw, xz, wz, xs, ws, stride=g["stride"], padding=g["pads"],
                          dilation=g["dilation"], groups=g["groups"], activation=act,
                          backend="c")
    np.testing.assert_allclose(got, want_f, rtol=1e-5, atol=1e-6)


def test_reference_padding_is_zero_after_correction():
    # A 1x1 input padded by 1 with a 3x3 kernel: only the centre tap sees data,
    # so each output corner is (x - xz) * (w[centre] - wz) exactly.
    x = np.array([[[[200]]]], np.uint8)
    w = np.arange(-4, 5, dtype=np.int8).reshape(1, 1, 3, 3)
    acc = qconv2d_acc(x, w, 100, np.array([2], np.int32), stride=(1, 1), pads=(1, 1, 1, 1),
                      dilation=(1, 1), groups=1)
    assert acc.shape == (1, 1, 1, 1) and acc[0, 0, 0, 0] == (200 - 100) * (0 - 2)
    acc = qconv2d_acc(x, w, 100, np.array([2], np.int32), stride=(1, 1), pads=(2, 2, 2, 2),
                      dilation=(1, 1), groups=1)
    # output (3, 3): output (i, j) sees x through tap (2 - i, 2 - j)
    want = (200 - 100) * (w[0, 0, ::-1, ::-1].astype(np.int64) - 2)
    np.testing.assert_array_equal(acc[0, 0], want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_qconv2d_noncontiguous_inputs_and_output(backend):
    rng = np.random.default_rng(3)
    g = dict(n=2, c=4, k=6, h=7, w=8, kh=3, kw=3, groups=2, stride=(2, 1), dilation=(1, 1),
             pads=(1, 0, 1, 2))
    x, w, xz, wz, xs, ws = _case(rng, g, True)
    want = _expected(x, w, xz, wz, xs, ws, g)
    xs_view = np.asfortranarray(x)
    big = np.full(want.shape[:3] + (want.shape[3] * 2,), np.nan, np.float32)
    out = big[..., ::2]
    got = ops.qconv2d(xs_view, w, xz, wz, xs, ws, stride=(2, 1), padding=(1, 0, 1, 2),
                      groups=2, out=out, backend=backend)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(big[..., 1::2]).all()  # nothing written between the strided elements


@pytest.mark.parametrize("backend", BACKENDS)
def test_qconv_weight_reused_and_auto_pad(backend):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (1, 3, 6, 5), dtype=np.uint8)
    w = rng.integers(-128, 128, (3, 1, 3, 3), dtype=np.int8)
    qw = ops.qconv_weight(w, np.int8(5), groups=3)
    # SAME_UPPER, stride 2: H 6 -> 3 outputs need 1 pad (at the bottom), W 5 -> 3 need 2.
    g = dict(stride=(2, 2), pads=(0, 1, 1, 1), dilation=(1, 1), groups=3)
    want = _expected(x, w, 9, 5, 0.1, 0.2, g)
    for _ in range(2):
        got = ops.qconv2d(x, qw, 9, 5, 0.1, 0.2, stride=2, padding="SAME_UPPER", groups=3,
                          backend=backend)
        np.testing.assert_array_equal(got, want)


def test_qconv2d_errors_name_the_argument():
    x = np.zeros((1, 4, 5, 5), np.uint8)
    w = np.zeros((2, 4, 3, 3), np.int8)
    args = (0, 0, 0.1, 0.1)
    with pytest.raises(pyinfer.DTypeError, match="x_u8"):
        ops.qconv2d(x.astype(np.int8), w, *args)
    with pytest.raises(pyinfer.DTypeError, match="w_s8"):
        ops.qconv2d(x, w.astype(np.uint8), *args)
    with pytest.raises(pyinfer.ShapeError, match="x_u8"):
        ops.qconv2d(x[0], w, *args)
    with pytest.raises(pyinfer.ShapeError, match="w_s8"):
        ops.qconv2d(x, w[:, :3], *args)
    with pytest.raises(pyinfer.ShapeError, match="groups"):
        ops.qconv2d(x, w, *args, groups=3)
    with pytest.raises(pyinfer.ShapeError, match="x_zero"):
        ops.qconv2d(x, w, 300, 0, 0.1, 0.1)
    with pytest.raises(pyinfer.ShapeError, match="w_zero"):
        ops.qconv2d(x, w, 0, np.zeros(3, np.int8), 0.1, 0.1)
    with pytest.raises(pyinfer.ShapeError, match="x_scale"):
        ops.qconv2d(x, w, 0, 0, -1.0, 0.1)
    with pytest.raises(pyinfer.ShapeError, match="w_scale"):
        ops.qconv2d(x, w, 0, 0, 0.1, np.ones(5, np.float32))
    with pytest.raises(pyinfer.ShapeError, match="bias"):
        ops.qconv2d(x, w, *args, bias=np.zeros(3, np.float32))
    with pytest.raises(pyinfer.ShapeError, match="stride"):
        ops.qconv2d(x, w, *args, stride=0)
    with pytest.raises(pyinfer.ShapeError, match="padding"):
        ops.qconv2d(x, w, *args, padding=(1, 2, 3))
    with pytest.raises(pyinfer.ShapeError, match="w_s8"):
        ops.qconv2d(x, np.zeros((2, 4, 7, 7), np.int8), *args)
    with pytest.raises(pyinfer.ShapeError, match="activation"):
        ops.qconv2d(x, w, *args, activation="swish")
    with pytest.raises(pyinfer.ShapeError, match="out_zero"):
        ops.qconv2d(x, w, *args, out_zero=3)
    with pytest.raises(pyinfer.DTypeError, match="'out'"):
        ops.qconv2d(x, w, *args, out=np.zeros((1, 2, 3, 3), np.uint8))
    with pytest.raises(pyinfer.ShapeError, match="'out'"):
        ops.qconv2d(x, w, *args, out=np.zeros((1, 2, 3, 4), np.float32))


# ---- ONNX: ConvInteger and QLinearConv against ONNX Runtime ------------------------------------

def _ort_and_pyinfer(model, feeds, backend="auto"):
    ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)[0]
    import pyinfer.onnx_backend as ob
    rep = ob.prepare(model, backend=backend)
    got = rep.run([feeds[k] for k in feeds])[0]
    return got, want, rep.interpreter.explain()


def _qlinearconv_model(rng, per_channel, with_bias, group, pads, strides):
    from onnx import TensorProto, helper, numpy_helper
    c, k = 4, 6
    # 7-bit weights: ONNX Runtime's AVX2 u8 x s8 kernel sums pairs of products in
    # saturating int16 (vpmaddubsw), exact only while 2 * 255 * |w| <= 32767.
    w = rng.integers(-64, 64, (k, c // group, 3, 3), dtype=np.int8)
    inits = [numpy_helper.from_array(np.array(0.03, np.float32), "xs"),
             numpy_helper.from_array(np.array(117, np.uint8), "xz"),
             numpy_helper.from_array(w, "w"),
             numpy_helper.from_array((rng.random(k) * 0.01 + 0.002).astype(np.float32)
                                     if per_channel else np.array(0.006, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(k, np.int8) if per_channel else
                                     np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.07, np.float32), "ys"),
             numpy_helper.from_array(np.array(128, np.uint8), "yz")]
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if with_bias:
        inits.append(numpy_helper.from_array(rng.integers(-3000, 3000, k).astype(np.int32), "b"))
        names.append("b")
    node = helper.make_node("QLinearConv", names, ["y"], group=group, pads=list(pads),
                            strides=list(strides), kernel_shape=[3, 3])
    g = helper.make_graph([node], "qlc",
                          [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, c, 9, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [None] * 4)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("per_channel,with_bias,group,pads,strides", [
    (False, False, 1, (0, 0, 0, 0), (1, 1)),
    (True, True, 2, (1, 0, 2, 1), (2, 1)),
    (True, True, 1, (1, 1, 1, 1), (2, 2)),
])
def test_qlinearconv_matches_onnxruntime(backend, per_channel, with_bias, group, pads, strides):
    pytest.importorskip("onnx", reason='pip install ".[test]"')
    rng = np.random.default_rng(11)
    model = _qlinearconv_model(rng, per_channel, with_bias, group, pads, strides)
    x = rng.integers(0, 256, (2, 4, 9, 7), dtype=np.uint8)
    got, want, plan = _ort_and_pyinfer(model, {"x": x}, backend)
    assert f"{backend}.qconv2d" in plan  # lowered to the registry kernel, weights packed once
    assert got.dtype == np.uint8 and got.shape == want.shape
    # The float32 epilogue (acc * s + B * s vs ORT's (acc + B) * s) may round a
    # value to the neighbouring u8: within one unit of the last place.
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1, f"max |pyinfer - ORT| = {diff.max()}"
    assert np.mean(diff) < 0.05  # a handful of ties, not a systematic offset


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wdtype,xz_is_input", [(np.int8, False), (np.uint8, False),
                                                (np.int8, True)])
def test_convinteger_matches_onnxruntime_exactly(backend, wdtype, xz_is_input):
    pytest.importorskip("onnx", reason='pip install ".[test]"')
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(12)
    info = np.iinfo(wdtype)
    w = rng.integers(info.min, info.max + 1, (5, 3, 2, 3)).astype(wdtype)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array(info.min + 100, wdtype), "wz")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 6, 8])]
    xz = np.array(30, np.uint8)
    feeds = {"x": rng.integers(0, 256, (1, 3, 6, 8), dtype=np.uint8)}
    if xz_is_input:  # a run-time zero point: the plan runs the reference
        inputs.append(helper.make_tensor_value_info("xz", TensorProto.UINT8, []))
        feeds["xz"] = xz
    else:
        inits.append(numpy_helper.from_array(xz, "xz"))
    node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], pads=[1, 2, 0, 1],
                            strides=[1, 2])
    g = helper.make_graph([node], "ci", inputs,
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [None] * 4)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    got, want, plan = _ort_and_pyinfer(model, feeds, backend)
    assert ("reference" in plan or "numpy" in plan) if xz_is_input else \
        f"{backend}.qconv2d" in plan, plan
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_qconv_import_refuses_runtime_weights():
    pytest.importorskip("onnx", reason='pip install ".[test]"')
    from onnx import TensorProto, helper
    node = helper.make_node("ConvInteger", ["x", "w"], ["y"])
    g = helper.make_graph([node], "ci",
                          [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 6, 8]),
                           helper.make_tensor_value_info("w", TensorProto.INT8, [2, 3, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [None] * 4)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(pyinfer.UnsupportedOperatorError, match="weight must be a constant"):
        pyinfer.load(model)
