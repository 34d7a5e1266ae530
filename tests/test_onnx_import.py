"""pyinfer.load: errors (unsupported operators, corrupt files, external data
outside the model's folder), symbolic dims (one plan per input shape), a small
CNN and a BERT-like layer against ONNX Runtime, and the fusions the layer must get."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="pyinfer.load needs the onnx package (test extra)")
ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is the peer (test extra)")

from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

import pyinfer  # noqa: E402
from pyinfer.testing import assert_close  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=17, domains=()):
    g = h.make_graph(nodes, "m", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)] +
                        [h.make_opsetid(d, 1) for d in domains])


def _vi(name, shape, t=T.FLOAT):
    return h.make_tensor_value_info(name, t, shape)


def _ort(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


# ---- errors ------------------------------------------------------------------------------

def test_unsupported_operator_names_type_domain_opset_and_node():
    m = _model([h.make_node("Relu", ["x"], ["r"], name="ok"),
                h.make_node("Hardmax", ["r"], ["y"], name="the_hardmax")],
               [_vi("x", [2, 3])], [_vi("y", [2, 3])], opset=13)
    with pytest.raises(pyinfer.UnsupportedOperatorError) as e:
        pyinfer.load(m)
    msg = str(e.value)
    for part in ("'Hardmax'", "ai.onnx", "opset 13", "'the_hardmax'"):
        assert part in msg, msg
    assert isinstance(e.value, pyinfer.UnsupportedError)


def test_unsupported_custom_domain_is_named():
    m = _model([h.make_node("FusedThing", ["x"], ["y"], name="n1", domain="com.example")],
               [_vi("x", [2])], [_vi("y", [2])], domains=["com.example"])
    with pytest.raises(pyinfer.UnsupportedOperatorError, match=r"'FusedThing'.*'com\.example'.*"
                                                               r"opset 1"):
        pyinfer.load(m)


def test_unsupported_attribute_form_is_named_not_crashed():
    m = _model([h.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="cubic")],
               [_vi("x", [1, 1, 2, 2])], [_vi("y", [1, 1, 4, 4])],
               [nh.from_array(np.array([1, 1, 2, 2], np.float32), "s")], opset=19)
    with pytest.raises(pyinfer.UnsupportedOperatorError, match="'rs'.*cubic"):
        pyinfer.load(m)


def _small_model():
    w = nh.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    return _model([h.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                  [_vi("x", ["batch", 4])], [_vi("y", ["batch", 3])], [w])


def test_corrupt_and_truncated_bytes_raise_model_error():
    data = _small_model().SerializeToString()
    with pytest.raises(pyinfer.ModelError):
        pyinfer.load(b"\xff\xfe not a protobuf \x00\x01" * 3)
    with pytest.raises(pyinfer.ModelError):
        pyinfer.load(b"")
    for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
        with pytest.raises(pyinfer.ModelError):
            pyinfer.load(data[:cut])


def test_missing_file_and_inconsistent_model_raise_model_error(tmp_path):
    with pytest.raises(pyinfer.ModelError, match="cannot read"):
        pyinfer.load(str(tmp_path / "nope.onnx"))
    bad = _model([h.make_node("Relu", ["undefined"], ["y"])], [_vi("x", [2])], [_vi("y", [2])])
    with pytest.raises(pyinfer.ModelError):
        pyinfer.load(bad)


def _external_model(tmp_path, location):
    w = np.arange(64 * 3, dtype=np.float32).reshape(64, 3) / 100
    t = nh.from_array(w, "w")
    t.ClearField("float_data")
    t.ClearField("raw_data")
    t.data_location = T.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(w.nbytes))):
        entry = t.external_data.add()
        entry.key, entry.value = k, v
    m = _model([h.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
               [_vi("x", ["batch", 64])], [_vi("y", ["batch", 3])], [t])
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path, w


def test_external_data_inside_the_folder_loads(tmp_path):
    path, w = _external_model(tmp_path, "weights/w.bin")
    (path.parent / "weights").mkdir()
    (path.parent / "weights" / "w.bin").write_bytes(w.tobytes())
    it = pyinfer.Interpreter(pyinfer.load(str(path)))
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    assert_close(it.run([x])[0], x.astype(np.float64) @ w, np.float32,
                 atol_extra=1e-5, what="external")


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink"])
def test_external_data_outside_the_folder_is_refused(tmp_path, where):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.zeros(64 * 3, np.float32).tobytes())
    if where == "dotdot":
        path, _ = _external_model(tmp_path, "../secret.bin")
    elif where == "absolute":
        path, _ = _external_model(tmp_path, str(secret))
    else:
        path, _ = _external_model(tmp_path, "link.bin")
        os.symlink(secret, path.parent / "link.bin")
    with pytest.raises(pyinfer.ModelError, match="outside|leaves|absolute"):
        pyinfer.load(str(path))


def test_external_data_from_bytes_needs_a_folder(tmp_path):
    path, _ = _external_model(tmp_path, "w.bin")
    with pytest.raises(pyinfer.ModelError, match="not loaded from a file"):
        pyinfer.load(path.read_bytes())


def test_data_dependent_shape_is_refused():
    m = _model([h.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
               [_vi("x", [2, 3]), _vi("s", [2], T.INT64)], [_vi("y", [3, 2])])
    with pytest.raises(pyinfer.UnsupportedOperatorError, match="'rs'.*data"):
        pyinfer.load(m)


# ---- symbolic dims and integer tensors ---------------------------------------------------------

def test_integer_arithmetic_on_run_time_values_runs_on_the_host():
    # ids + 1 (int64, not a shape computation): a host NumPy step, not a crash.
    m = _model([h.make_node("Add", ["ids", "one"], ["y"], name="add")],
               [_vi("ids", ["n"], T.INT64)], [_vi("y", ["n"], T.INT64)],
               [nh.from_array(np.array(1, np.int64), "one")])
    it = pyinfer.Interpreter(pyinfer.load(m))
    ids = np.array([3, -1, 7], np.int64)
    np.testing.assert_array_equal(it.run([ids])[0], ids + 1)


def _bert_layer(hidden=32, heads=4, ffn=64, seed=0):
    """A BERT encoder layer as PyTorch's ONNX export writes it (opset 14): view via
    Shape->Gather->Unsqueeze->Concat->Reshape, scores / sqrt(d) + (1 - mask) * -10000,
    GELU as x * 0.5 * (1 + erf(x / sqrt 2)), LayerNorm as ReduceMean/Sub/Pow/.../Add."""
    rng = np.random.default_rng(seed)
    d = hidden // heads
    inits, nodes = [], []

    def w(name, *shape):
        inits.append(nh.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name))
        return name

    def c(name, value, dtype=np.float32):
        inits.append(nh.from_array(np.array(value, dtype), name))
        return name

    def n(op, ins, outs, **attrs):
        nodes.append(h.make_node(op, ins, outs, name=outs[0], **attrs))
        return outs[0]

    def linear(x, name, k, m):
        return n("Add", [n("MatMul", [x, w(f"{name}.w", k, m)], [f"{name}.mm"]),
                         w(f"{name}.b", m)], [f"{name}.out"])

    def heads_view(t, name):
        dims = []
        for i in (0, 1):
            s = n("Shape", [t], [f"{name}.shape{i}"])
            g = n("Gather", [s, c(f"{name}.i{i}", i, np.int64)], [f"{name}.dim{i}"], axis=0)
            dims.append(n("Unsqueeze", [g, c(f"{name}.ax{i}", [0], np.int64)],
                          [f"{name}.u{i}"]))
        shape = n("Concat", dims + [c(f"{name}.h", [heads], np.int64),
                                    c(f"{name}.d", [d], np.int64)], [f"{name}.target"], axis=0)
        r = n("Reshape", [t, shape], [f"{name}.view"])
        return r

    def layer_norm(x, name):
        mean = n("ReduceMean", [x], [f"{name}.mean"], axes=[-1])
        dlt = n("Sub", [x, mean], [f"{name}.sub"])
        var = n("ReduceMean", [n("Pow", [dlt, c(f"{name}.two", 2.0)], [f"{name}.pow"])],
                [f"{name}.var"], axes=[-1])
        std = n("Sqrt", [n("Add", [var, c(f"{name}.eps", 1e-12)], [f"{name}.veps"])],
                [f"{name}.std"])
        y = n("Mul", [n("Div", [dlt, std], [f"{name}.norm"]), w(f"{name}.g", hidden)],
              [f"{name}.scaled"])
        return n("Add", [y, w(f"{name}.beta", hidden)], [f"{name}.out"])

    m = n("Unsqueeze", [n("Unsqueeze", ["mask", c("ax1", [1], np.int64)], ["m1"]),
                        c("ax2", [2], np.int64)], ["m2"])
    ext = n("Mul", [n("Sub", [c("one", 1.0), n("Cast", [m], ["mf"], to=T.FLOAT)], ["inv"]),
                    c("neg", -10000.0)], ["ext"])
    q = n("Transpose", [heads_view(linear("x", "q", hidden, hidden), "q")], ["qt"],
          perm=[0, 2, 1, 3])
    k = n("Transpose", [heads_view(linear("x", "k", hidden, hidden), "k")], ["kt"],
          perm=[0, 2, 3, 1])
    v = n("Transpose", [heads_view(linear("x", "v", hidden, hidden), "v")], ["vt"],
          perm=[0, 2, 1, 3])
    s = n("Div", [n("MatMul", [q, k], ["qk"]), c("sqrt_d", np.sqrt(d))], ["scaled"])
    p = n("Softmax", [n("Add", [s, ext], ["masked"])], ["probs"], axis=-1)
    ctx = n("Transpose", [n("MatMul", [p, v], ["pv"])], ["ctx_t"], perm=[0, 2, 1, 3])
    dims = []
    for i in (0, 1):
        sh = n("Shape", [ctx], [f"c.shape{i}"])
        g = n("Gather", [sh, c(f"c.i{i}", i, np.int64)], [f"c.dim{i}"], axis=0)
        dims.append(n("Unsqueeze", [g, c(f"c.ax{i}", [0], np.int64)], [f"c.u{i}"]))
    target = n("Concat", dims + [c("c.minus1", [-1], np.int64)], ["c.target"], axis=0)
    merged = n("Reshape", [ctx, target], ["merged"])
    h1 = layer_norm(n("Add", [linear(merged, "o", hidden, hidden), "x"], ["res1"]), "ln1")
    f = linear(h1, "f1", hidden, ffn)
    gelu = n("Mul", [n("Mul", [f, n("Add", [n("Erf", [n("Div", [f, c("sqrt2", np.sqrt(2.0))],
                                                           ["f.div"])], ["f.erf"]),
                                           c("g.one", 1.0)], ["f.add"])], ["f.mul"]),
                     c("half", 0.5)], ["gelu"])
    out = layer_norm(n("Add", [linear(gelu, "f2", ffn, hidden), h1], ["res2"]), "ln2")
    nodes.append(h.make_node("Identity", [out], ["y"], name="y"))
    return _model(nodes, [_vi("x", ["batch", "seq", hidden]), _vi("mask", ["batch", "seq"],
                                                                  T.INT64)],
                  [_vi("y", ["batch", "seq", hidden])], inits, opset=14)


def test_bert_layer_symbolic_dims_match_onnxruntime_one_plan_per_shape_and_fuse():
    model = _bert_layer()
    g = pyinfer.load(model)
    assert [v.shape for v in g.inputs] == [("batch", "seq", 32), ("batch", "seq")]
    it = pyinfer.Interpreter(g)
    rng = np.random.default_rng(1)
    shapes = [(2, 7), (1, 5), (3, 11), (2, 7)]
    for b, s in shapes:
        x = rng.standard_normal((b, s, 32)).astype(np.float32)
        mask = np.ones((b, s), np.int64)
        mask[0, s - 2:] = 0
        (want,) = _ort(model, {"x": x, "mask": mask})
        (got,) = it.run({"x": x, "mask": mask})
        # float32 through two LayerNorms, softmax and K <= 64 products: error analysis
        # (testing.sum_bound) gives well under 1e-4 relative to the unit-scale outputs.
        assert_close(got, want.astype(np.float64), np.float32, atol_extra=1e-4,
                     what=f"bert layer {b}x{s}")
    assert len(it._plans) == 3  # one plan per distinct input shape, reused for (2, 7)
    it.prepare([(2, 7, 32), (2, 7)])
    text = it.explain()
    plan = it.plan
    ops = [s.node.op for s in plan.steps if not s.is_view]
    assert ops.count(pyinfer.Op.ATTENTION) == 1, text
    assert ops.count(pyinfer.Op.LAYER_NORM) == 2, text
    assert ops.count(pyinfer.Op.GEMM) == 6, text   # q, k, v, o, ffn1 (+gelu), ffn2 (+residual)
    gelu = [s for s in plan.steps if s.node.op is pyinfer.Op.GEMM and
            s.node.attrs.get("activation") == "gelu"]
    assert len(gelu) == 1, text
    # No shape computation survives specialisation: every shape op folded into constants.
    assert not {pyinfer.Op.SHAPE, pyinfer.Op.GATHER, pyinfer.Op.DYNAMIC_RESHAPE} & \
        {s.node.op for s in plan.steps}, text
    # mask Unsqueeze views, its Cast, the (1 - m) * -10000 chain, the layer's kernels
    assert plan.kernel_count <= 12, text


def test_layer_normalization_op_fuses():
    x_shape = ["batch", 8]
    inits = [nh.from_array(np.linspace(0.5, 1.5, 8, dtype=np.float32), "g"),
             nh.from_array(np.linspace(-1, 1, 8, dtype=np.float32), "b")]
    m = _model([h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], name="ln",
                            epsilon=1e-5)], [_vi("x", x_shape)], [_vi("y", x_shape)], inits)
    it = pyinfer.Interpreter(pyinfer.load(m))
    x = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)
    (want,) = _ort(m, {"x": x})
    assert_close(it.run([x])[0], want.astype(np.float64), np.float32, atol_extra=1e-5,
                 what="layernorm")
    assert [s.node.op for s in it.plan.steps] == [pyinfer.Op.LAYER_NORM]


# ---- a small CNN ----------------------------------------------------------------------------------

def _cnn(seed=0):
    rng = np.random.default_rng(seed)

    def t(name, *shape, scale=0.3):
        return nh.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
    inits = [t("w1", 8, 3, 3, 3), t("b1", 8), t("w2", 16, 8, 3, 3),
             nh.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "bn_s"),
             t("bn_b", 16), t("bn_m", 16, scale=0.1),
             nh.from_array(rng.uniform(0.5, 2.0, 16).astype(np.float32), "bn_v"),
             t("fc_w", 10, 16), t("fc_b", 10)]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
             h.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
             h.make_node("BatchNormalization", ["c2", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"],
                         name="bn", epsilon=1e-5),
             h.make_node("Relu", ["bn"], ["r2"], name="relu2"),
             h.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
             h.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
             h.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    return _model(nodes, [_vi("x", ["batch", 3, 16, 16])], [_vi("y", ["batch", 10])], inits,
                  opset=13)


def test_small_cnn_matches_onnxruntime():
    from pyinfer.graph import opdefs
    missing = [op for op in (pyinfer.Op.CONV, pyinfer.Op.MAX_POOL, pyinfer.Op.BATCH_NORM,
                             pyinfer.Op.GLOBAL_AVG_POOL) if opdefs.get(op) is None]
    assert not missing, f"CNN graph families missing: {missing}"
    model = _cnn()
    it = pyinfer.Interpreter(pyinfer.load(model))
    rng = np.random.default_rng(3)
    for b in (1, 2):
        x = rng.standard_normal((b, 3, 16, 16)).astype(np.float32)
        (want,) = _ort(model, {"x": x})
        got = it.run([x])[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
