"""int8 convolution at the graph level: ``compress.quantize_dynamic/static`` on
CNNs, the ``qdq_conv`` pass on ONNX Runtime's QDQ models, QCONV export.

* The quantized graph run by the Interpreter (C kernels) equals the NumPy
  reference evaluation of that graph exactly, and one quantized conv equals
  an independent NumPy computation (weights quantized by hand, an int64 direct
  convolution) exactly; against fp32 a single conv is within the worst-case
  bound of int8 rounding (derived in ``_rounding_bound``), a small CNN within
  a cosine of 0.999.
* ORT's ``quantize_static(QuantFormat.QDQ)`` CNN: every Conv becomes a QCONV
  (kernel names in ``explain()``) and matches ONNX Runtime within one step of
  each output's quantization (weights 7-bit, ``reduce_range``: ORT's AVX2
  u8 x s8 kernel saturates on full-range weights, a known ORT limitation).
* Export: pyinfer -> ONNX -> pyinfer is bit-exact; -> ONNX Runtime agrees.
* The compress CLI on a CNN.

Models are tiny (8-16 channels, 10x10 images): the whole file runs in seconds.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyinfer
from pyinfer import compress
from pyinfer.graph.ir import Op
from pyinfer.graph.passes import optimize
from pyinfer.graph.reference import evaluate

onnx = pytest.importorskip("onnx", reason='pip install ".[test]"')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

H = W = 10


def _cnn(seed=0, batch=1, clip=False, bn=True):
    """conv+bn+relu (3->8), depthwise+relu, 1x1 with bias (8->16), grouped 3x3
    without bias (8->16, group 2) added as a residual + relu, strided 3x3
    (16->8, stride 2, optionally ReLU6) -- every path of the int8 conv."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def c(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def conv(x, y, cin, cout, k, stride=1, group=1, bias=True):
        w = rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2 / (cin // group * k * k))
        ins = [x, c(y + "_w", w)] + ([c(y + "_b", rng.normal(0, 0.1, cout))] if bias else [])
        nodes.append(helper.make_node("Conv", ins, [y], name=y, kernel_shape=[k, k],
                                      strides=[stride] * 2, pads=[k // 2] * 4, group=group))
        return y

    conv("x", "c1", 3, 8, 3)
    if bn:
        nodes.append(helper.make_node(
            "BatchNormalization",
            ["c1", c("g", rng.uniform(0.5, 1, 8)), c("b", rng.normal(0, .1, 8)),
             c("m", rng.normal(0, .1, 8)), c("v", rng.uniform(.5, 1.5, 8))],
            ["c1n"], name="bn1"))
    nodes.append(helper.make_node("Relu", ["c1n" if bn else "c1"], ["r1"], name="relu1"))
    conv("r1", "c2", 8, 8, 3, group=8)
    nodes.append(helper.make_node("Relu", ["c2"], ["r2"], name="relu2"))
    conv("r2", "c3", 8, 16, 1)
    conv("r1", "c4", 8, 16, 3, group=2, bias=False)
    nodes.append(helper.make_node("Add", ["c3", "c4"], ["a"], name="add"))
    nodes.append(helper.make_node("Relu", ["a"], ["r3"], name="relu3"))
    if clip:
        conv("r3", "c5", 16, 8, 3, stride=2)
        nodes.append(helper.make_node("Clip", ["c5", c("lo", 0.0), c("hi", 6.0)], ["y"],
                                      name="relu6"))
    else:
        conv("r3", "y", 16, 8, 3, stride=2)
    g = helper.make_graph(nodes, "tiny_cnn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, H, W])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                         [batch, 8, H // 2, W // 2])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _load(model):
    return pyinfer.load(model.SerializeToString())


def _conv_names(g):
    return [n.name for n in g.nodes if n.op is Op.CONV]


def _feeds(seed, batch=1, n=1):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((batch, 3, H, W)).astype(np.float32)} for _ in range(n)]


def _quantize(g, mode, **kw):
    names = _conv_names(g)
    if mode == "dynamic":
        return compress.quantize_dynamic(g, nodes=names, **kw)
    return compress.quantize_static(g, _feeds(1, n=3), nodes=names, **kw)


def _cosine(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ---- quantize_dynamic / quantize_static ----------------------------------------------------

@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("per_channel,reduce_range", [(True, True), (True, False), (False, None)])
def test_quantized_cnn_equals_its_numpy_evaluation(mode, per_channel, reduce_range):
    g = _load(_cnn(seed=3, clip=True))
    q = _quantize(g, mode, per_channel=per_channel, reduce_range=reduce_range)
    assert not any(n.op is Op.CONV for n in q.nodes)
    assert sum(n.op is Op.QCONV for n in q.nodes) == 5
    it = pyinfer.Interpreter(q)
    for feed in _feeds(7, n=2):
        out = [np.full((1, 8, H // 2, W // 2), np.nan, np.float32)]  # poisoned
        (got,) = it.run(feed, outputs=out)
        (want,) = evaluate(q, feed)
        np.testing.assert_array_equal(got, want)   # the int path is exact
        (fp32,) = evaluate(g, feed)
        # five layers of 8-bit rounding (7-bit weights with reduce_range); a
        # static range calibrated on other batches also clips their outliers
        # (over seeds 0-7: cosine >= 0.998, max error <= 12% of max |y|)
        assert _cosine(got, fp32) > (0.999 if mode == "dynamic" else 0.995)
        assert np.abs(got - fp32).max() < (0.05 if mode == "dynamic" else 0.2) * \
            np.abs(fp32).max()


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_plan_runs_int8_kernels_with_fused_epilogues(mode):
    g = _load(_cnn(seed=4))
    q = _quantize(g, mode)
    it = pyinfer.Interpreter(q)
    text = it.explain()
    kernels = [s.kernel for s in it.plan.steps]
    assert sum("qconv2d" in k for k in kernels) == 5, text
    assert not any(k.endswith("conv2d") and "qconv" not in k for k in kernels), text
    qconvs = [n for n in q.nodes if n.op is Op.QCONV]
    # bias + relu stay in the int8 epilogue; the residual add + relu is one float kernel
    assert sum(n.attrs["activation"] == "relu" for n in qconvs) == 2
    assert not any(n.op is Op.BATCH_NORM for n in q.nodes)
    # explain() names what each int8 conv took in: not the float residual add + relu
    assert any({"c1", "bn1", "relu1"} <= set(n.fused_from) for n in qconvs)
    assert not any({"add", "relu3"} & set(n.fused_from) for n in qconvs)
    if mode == "dynamic":
        assert "run-time x_scale" in text
        # r1 feeds the depthwise and the grouped conv: quantized once
        assert sum(n.op is Op.DYNAMIC_QUANTIZE_LINEAR for n in q.nodes) == 4
    else:
        # c1 -> c2 (read only by the depthwise conv) and c2 -> c3 requantize to u8
        assert sum(n.attrs["out"] == "u8" for n in qconvs) == 2
        assert sum(n.op is Op.QUANTIZE_LINEAR for n in q.nodes) == 2  # x and r3


def _rounding_bound(x, w, sx, sw, stride, pad, group):
    """Worst case of |conv(q(x), q(w)) - conv(x, w)| for rounding errors
    |ex| <= sx/2, |ew| <= sw/2 per element: sum over taps of
    |ex||w| + |x||ew| + |ex||ew| (a padded tap is an exact 0)."""
    from pyinfer.backends.numpy_conv import conv2d_ref
    k = w.shape[0]
    half_sw = np.broadcast_to(np.asarray(sw, np.float64).reshape(-1, 1, 1, 1) / 2, w.shape)
    ones = np.ones_like(x, np.float64)
    kw = dict(stride=(stride, stride), pads=(pad,) * 4, dilation=(1, 1), groups=group)
    b = conv2d_ref(ones * (sx / 2), np.abs(w).astype(np.float64), **kw) + \
        conv2d_ref(np.abs(x).astype(np.float64), half_sw, **kw) + \
        conv2d_ref(ones * (sx / 2), half_sw, **kw)
    return b.reshape(x.shape[0], k, *b.shape[2:])


@pytest.mark.parametrize("case", [dict(cin=8, cout=16, k=3, stride=1, group=1),
                                  dict(cin=8, cout=8, k=3, stride=2, group=8),
                                  dict(cin=6, cout=9, k=1, stride=1, group=3),
                                  dict(cin=5, cout=7, k=5, stride=2, group=1)])
@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_one_conv_equals_independent_numpy_and_is_within_the_rounding_bound(case, mode):
    rng = np.random.default_rng(case["cin"] * 10 + case["k"])
    cin, cout, k, s, grp = case["cin"], case["cout"], case["k"], case["stride"], case["group"]
    x = rng.standard_normal((2, cin, 9, 11)).astype(np.float32)
    w = rng.standard_normal((cout, cin // grp, k, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    pad = k // 2
    g = pyinfer.Graph("one")
    xv = g.input("x", x.shape, np.float32)
    y = g.add(Op.CONV, [xv, g.constant(w), g.constant(b)],
              {"strides": (s, s), "pads": (pad,) * 4, "group": grp, "activation": "relu"})
    g.output(y, "y")
    feed = {"x": x}
    names = _conv_names(g)
    q = compress.quantize_dynamic(g, nodes=names, reduce_range=False) if mode == "dynamic" \
        else compress.quantize_static(g, feed, nodes=names, reduce_range=False)
    (got,) = pyinfer.Interpreter(q).run(feed)
    # independently: symmetric per-channel weights, u8 activations from x's range
    amax = np.abs(w).reshape(cout, -1).max(axis=1)
    sw = (amax / np.float32(127)).astype(np.float32)
    wq = np.clip(np.rint(w / sw.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int64)
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    sx = np.float32(np.float32(hi) - np.float32(lo)) / np.float32(255)
    zx = int(np.clip(np.rint(np.float32(0) - np.float32(lo) / sx), 0, 255))
    xq = np.clip(np.rint(x / sx) + zx, 0, 255).astype(np.int64) - zx
    xp = np.pad(xq, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (9 + 2 * pad - k) // s + 1, (11 + 2 * pad - k) // s + 1
    acc = np.zeros((2, cout, oh, ow), np.int64)
    cg, kg = cin // grp, cout // grp
    for o in range(cout):
        gi = o // kg
        for i in range(k):
            for j in range(k):
                win = xp[:, gi * cg:(gi + 1) * cg, i:i + s * (oh - 1) + 1:s,
                         j:j + s * (ow - 1) + 1:s]
                acc[:, o] += np.einsum("nchw,c->nhw", win, wq[o, :, i, j])
    scale = (np.float32(sx) * sw).astype(np.float32).reshape(1, -1, 1, 1)
    bias = b.reshape(1, -1, 1, 1)
    if mode == "static":   # the bias on QLinearConv's int32 grid of step x_scale * w_scale
        bias = np.rint(bias.astype(np.float64) / scale).astype(np.float32) * scale
    want = np.maximum(acc.astype(np.float32) * scale + bias, 0)
    np.testing.assert_array_equal(got, want)
    (fp32,) = evaluate(g, feed)
    bound = _rounding_bound(x, w, float(sx), sw, s, pad, grp) + \
        (scale / 2 if mode == "static" else 0)
    slack = 1e-5 * (np.abs(fp32) + 1)   # float32 rounding of the two paths (relu is 1-Lipschitz)
    assert np.all(np.abs(got - fp32) <= bound + slack)


@st.composite
def _geometries(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3, "depthwise"]))
    cg, kg = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if groups == "depthwise":
        groups, cg, kg = draw(st.sampled_from([2, 3, 7])), 1, 1
    kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 1)]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), 1)
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, (kh - 1) * dilation[0] + 1 - pads[0] - pads[2]), 11))
    w = draw(st.integers(max(1, kw - pads[1] - pads[3]), 11))
    return dict(n=draw(st.sampled_from([1, 2, 3])), c=cg * groups, k=kg * groups, h=h, w=w,
                kh=kh, kw=kw, group=groups, stride=stride, dilation=dilation, pads=pads,
                act=draw(st.sampled_from([None, "relu", "clip", "sigmoid"])),
                residual=draw(st.booleans()), bias=draw(st.booleans()))


@settings(deadline=None, max_examples=25)
@given(geo=_geometries(), mode=st.sampled_from(["dynamic", "static"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31))
def test_random_conv_quantized_plan_equals_its_reference(geo, mode, dtype, seed):
    """Random geometries (size 1, primes, strides, dilation, asymmetric pads,
    groups, depthwise), epilogues (bias, residual, relu / clip / sigmoid),
    float32 and float64 models: the plan (C kernels) equals the NumPy
    evaluation of the quantized graph; poisoned output; a non-contiguous input."""
    rng = np.random.default_rng(seed)
    g = pyinfer.Graph("rand")
    xshape = (geo["n"], geo["c"], geo["h"], geo["w"])
    xv = g.input("x", xshape, dtype)
    w = rng.standard_normal((geo["k"], geo["c"] // geo["group"], geo["kh"], geo["kw"]))
    at = {"strides": geo["stride"], "pads": geo["pads"], "dilations": geo["dilation"],
          "group": geo["group"]}
    ins = [xv, g.constant(w.astype(dtype)),
           g.constant(rng.standard_normal(geo["k"]).astype(dtype)) if geo["bias"] else None]
    y = g.add(Op.CONV, ins, at, name="conv")
    if geo["residual"]:
        r = g.input("r", tuple(y.shape), dtype)
        y = g.add(Op.ADD, [y, r])
    if geo["act"] == "clip":
        y = g.add(Op.MINIMUM, [g.add(Op.MAXIMUM, [y, g.constant(np.asarray(-0.5, dtype))]),
                               g.constant(np.asarray(1.5, dtype))])
    elif geo["act"] is not None:
        y = g.add(Op.RELU if geo["act"] == "relu" else Op.SIGMOID, [y])
    g.output(y, "y")
    feed = {"x": rng.standard_normal(xshape[:3] + (2 * xshape[3],)).astype(dtype)[..., ::2]}
    if geo["residual"]:
        feed["r"] = rng.standard_normal(tuple(y.shape)).astype(dtype)
    q = compress.quantize_dynamic(g, nodes=["conv"]) if mode == "dynamic" else \
        compress.quantize_static(g, [feed], nodes=["conv"])
    assert sum(n.op is Op.QCONV for n in q.nodes) == 1
    out = np.full(tuple(y.shape), np.nan, dtype)
    (got,) = pyinfer.Interpreter(q).run(feed, outputs=[out])
    (want,) = evaluate(q, {k: np.ascontiguousarray(v) for k, v in feed.items()})
    assert got.dtype == dtype
    if geo["act"] == "sigmoid":
        # The C epilogue's float32 sigmoid is within 2.61 ulp of the exact value
        # (csrc/pi_vmath.h's table), NumPy's within 1: 3.61 ulp between them.
        np.testing.assert_allclose(got, want, rtol=3.61 * np.finfo(np.float32).eps, atol=0)
    else:                         # the int path, then exact float32 arithmetic
        np.testing.assert_array_equal(got, want)
    # exported as QDQ and imported again, qdq_conv makes the same QCONV: bit-exact
    from pyinfer.export import to_onnx
    back = pyinfer.load(to_onnx(q).SerializeToString())
    it_back = pyinfer.Interpreter(back)
    assert sum("qconv2d" in step.kernel for step in it_back.plan.steps) == 1, it_back.explain()
    (again,) = it_back.run(feed)
    np.testing.assert_array_equal(again, got)


def test_auto_mode_keeps_tiny_convs_float_and_says_why():
    g = _load(_cnn(seed=5))
    q = compress.quantize_dynamic(g)
    assert sum(n.op is Op.CONV for n in q.nodes) == 5
    reasons = [r for names, r in q.notes if "kept in float" in r]
    assert len(reasons) == 5 and all("tiny conv" in r for r in reasons)
    # a conv above the threshold is quantized without naming it
    big = pyinfer.Graph("big")
    xv = big.input("x", (1, 32, 24, 24), np.float32)
    w = np.random.default_rng(0).standard_normal((64, 32, 3, 3)).astype(np.float32)
    big.output(big.add(Op.CONV, [xv, big.constant(w)], {"pads": (1, 1, 1, 1)}), "y")
    assert any(n.op is Op.QCONV for n in compress.quantize_dynamic(big).nodes)


def test_unsupported_conv_named_in_nodes_is_an_error_naming_it():
    g = pyinfer.Graph("rt")
    xv = g.input("x", (1, 4, 6, 6), np.float32)
    wv = g.input("w", (4, 4, 3, 3), np.float32)   # a run-time weight
    g.output(g.add(Op.CONV, [xv, wv], {"pads": (1, 1, 1, 1)}, name="dyn_w"), "y")
    with pytest.raises(pyinfer.UnsupportedError, match="dyn_w.*constant 4-d float"):
        compress.quantize_dynamic(g, nodes=["dyn_w"])
    q = compress.quantize_dynamic(g)     # unnamed: kept in float with the reason
    assert any("dyn_w" in names and "constant" in r for names, r in q.notes)


def test_bad_calibration_shape_names_the_input():
    g = _load(_cnn())
    bad = {"x": np.zeros((1, 3, H + 1, W), np.float32)}
    with pytest.raises(pyinfer.ShapeError, match=r"calibration batch 0, input 'x' expected shape"):
        compress.quantize_static(g, [bad])
    with pytest.raises(pyinfer.ShapeError, match="lacks input 'x'"):
        compress.quantize_static(g, [{"y": bad["x"]}])


# ---- ONNX Runtime's QDQ models ---------------------------------------------------------------

def _ort_qdq(model, tmp_path, per_channel=True, activations="u8"):
    quant = pytest.importorskip("onnxruntime.quantization", reason='pip install ".[test]"')
    src, dst = tmp_path / "f32.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, src)

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.it = iter(_feeds(11, n=4))

        def get_next(self):
            return next(self.it, None)

    quant.quantize_static(str(src), str(dst), Reader(), quant_format=quant.QuantFormat.QDQ,
                          per_channel=per_channel, reduce_range=True,
                          activation_type=quant.QuantType.QUInt8 if activations == "u8"
                          else quant.QuantType.QInt8,
                          weight_type=quant.QuantType.QInt8)
    return onnx.load(dst)


def _ort_run(model, feed):
    ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


@pytest.mark.parametrize("per_channel,activations", [(True, "u8"), (False, "u8"), (True, "s8")])
def test_ort_qdq_cnn_becomes_qconv_and_matches_ort(tmp_path, per_channel, activations):
    qdq = _ort_qdq(_cnn(seed=6, bn=False), tmp_path, per_channel, activations)
    it = pyinfer.Interpreter(_load(qdq))
    kernels = [s.kernel for s in it.plan.steps]
    assert sum("qconv2d" in k for k in kernels) == 5, it.explain()
    assert not any("conv2d" in k and "qconv" not in k for k in kernels), it.explain()
    if activations == "s8":   # shifted to u8 in the step, not requantized in the epilogue
        assert sum("[int8 x]" in k for k in kernels) == 5
    # the output's quantization step: y = DequantizeLinear(QuantizeLinear(conv, y_scale))
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    step = float(inits["y_scale"])
    for feed in _feeds(12, n=3):
        (got,) = it.run(feed)
        (want,) = _ort_run(qdq, feed)
        assert np.abs(got - want).max() <= step * 1.0001


def test_ort_dynamic_cnn_fuses_into_run_time_scaled_qconvs(tmp_path):
    quant = pytest.importorskip("onnxruntime.quantization", reason='pip install ".[test]"')
    src, dst = tmp_path / "f32.onnx", tmp_path / "dyn.onnx"
    onnx.save(_cnn(seed=12, bn=False), src)
    quant.quantize_dynamic(str(src), str(dst), weight_type=quant.QuantType.QUInt8)
    model = onnx.load(dst)
    assert "ConvInteger" in [n.op_type for n in model.graph.node]
    it = pyinfer.Interpreter(pyinfer.load(str(dst)))
    kernels = [s.kernel for s in it.plan.steps]
    # ConvInteger + Cast + Mul + bias Add (+ Relu) -> one QCONV per conv
    assert sum("qconv2d[run-time x_scale]" in k for k in kernels) == 5, it.explain()
    assert not any("cast" in k for k in kernels), it.explain()
    qconvs = [s.node for s in it.plan.steps if "qconv2d" in s.kernel]
    assert sum(n.attrs["activation"] == "relu" for n in qconvs) == 2
    for feed in _feeds(16, n=2):
        (got,) = it.run(feed)
        (want,) = _ort_run(model, feed)
        # the same int32 accumulator, scaled and biased in float32 by both
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


# ---- export ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_export_round_trip_pyinfer_and_ort(tmp_path, mode):
    g = _load(_cnn(seed=8, clip=True))
    q = _quantize(g, mode)
    path = tmp_path / "q.onnx"
    pyinfer.save(q, str(path))
    model = onnx.load(path)
    types = [n.op_type for n in model.graph.node]
    assert "DequantizeLinear" in types and "Conv" in types
    back = pyinfer.load(str(path))
    it, it_back = pyinfer.Interpreter(q), pyinfer.Interpreter(back)
    assert sum("qconv2d" in s.kernel for s in it_back.plan.steps) == 5, it_back.explain()
    for feed in _feeds(13, n=2):
        (y,) = it.run(feed)
        (y_back,) = it_back.run(feed)
        np.testing.assert_array_equal(y_back, y)      # bit-exact round trip
        (y_ort,) = _ort_run(model, feed)
        if mode == "dynamic":
            # ORT cannot fuse a run-time-scaled QDQ conv: it dequantizes and
            # runs a float Conv on the same values; float32 rounding only
            np.testing.assert_allclose(y_ort, y, rtol=1e-5, atol=1e-5 * np.abs(y).max())
        else:
            # QLinearConv adds the int32 bias before scaling and rounds its
            # requantization its own way: a value can go to the neighbouring
            # u8 step, and that step travels through the later layers (over
            # seeds 0-7: at most 0.5% of max |y|).
            assert _cosine(y_ort, y) > 0.99999
            assert np.abs(y_ort - y).max() < 0.01 * np.abs(y).max()


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_export_of_imported_qdq_model_is_ort_fusable_and_exact(tmp_path, activations):
    qdq = _ort_qdq(_cnn(seed=9, bn=False), tmp_path, activations=activations)
    g = optimize(_load(qdq))
    path = tmp_path / "again.onnx"
    pyinfer.save(g, str(path))
    again = onnx.load(path)
    # the int32 bias comes back as DequantizeLinear(int32): ORT fuses as many
    # QLinearConvs as from its own file (all 5 with u8 activations; with s8
    # ones this ORT build fuses only some, from either file)
    ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')

    def qlinear_convs(model_path):
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp_path / "ort_opt.onnx")
        ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node
                ].count("QLinearConv")

    onnx.save(qdq, tmp_path / "orig.onnx")
    assert qlinear_convs(path) == qlinear_convs(tmp_path / "orig.onnx") == \
        (5 if activations == "u8" else qlinear_convs(path))
    it, it_again = pyinfer.Interpreter(g), pyinfer.Interpreter(_load(again))
    for feed in _feeds(14, n=2):
        np.testing.assert_array_equal(it_again.run(feed)[0], it.run(feed)[0])


def test_conv_integer_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    g = pyinfer.Graph("ci")
    xv = g.input("x", (1, 4, 7, 7), np.uint8)
    y = g.add(Op.QCONV, [xv, g.constant(w), None, g.constant(np.full(6, 3, np.int32)), None,
                         None, g.constant(np.uint8(17))],
              {"pads": (1, 0, 1, 2), "strides": (2, 1), "out": "int32"})
    g.output(y, "y")
    path = tmp_path / "ci.onnx"
    pyinfer.save(g, str(path))
    feed = {"x": rng.integers(0, 256, (1, 4, 7, 7), dtype=np.uint8)}
    (want,) = evaluate(g, feed)
    (back,) = pyinfer.Interpreter(pyinfer.load(str(path))).run(feed)
    np.testing.assert_array_equal(back, want)
    (ort_y,) = _ort_run(onnx.load(path), feed)
    np.testing.assert_array_equal(ort_y, want)


# ---- CLI ------------------------------------------------------------------------------------

def test_compress_cli_static_int8_on_a_cnn(tmp_path, capsys):
    from pyinfer.cli import main
    model = _cnn(seed=10)
    src, out, cal = tmp_path / "tiny_cnn.onnx", tmp_path / "out.onnx", tmp_path / "cal.npz"
    onnx.save(model, src)
    np.savez(cal, x=_feeds(15)[0]["x"])
    rc = main(["compress", str(src), "--int8", "static", "--calibration", str(cal), "-o", str(out),
               "--rounds", "2", "--int8-min-macs", "0"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "int8 static" in text and "5/5" in text, text
    back = pyinfer.load(str(out))
    assert sum(n.op is Op.QCONV for n in optimize(back).nodes) == 5
