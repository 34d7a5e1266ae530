"""ONNX export (pyinfer.save / pyinfer.export.to_onnx).

Round trips: an ONNX model built with onnx.helper -> pyinfer.load -> to_onnx
-> onnx.checker, then ONNX Runtime on the exported model against ONNX Runtime
on the original (float32 elementwise tolerance: 1e-5 relative, 1e-6 absolute).
Ops the importer never makes (GEMM epilogues, fused programs, ATTENTION,
QGEMM, SPARSE_GEMM, basic-index SLICE) are built as pyinfer graphs and
checked against pyinfer's NumPy reference of the same graph.
"""
from __future__ import annotations

import numpy as np
import pytest

import pyinfer
from pyinfer.errors import UnsupportedError
from pyinfer.graph.ir import Graph, Op
from pyinfer.graph.reference import evaluate
from pyinfer.testing import assert_close, sum_bound

onnx = pytest.importorskip("onnx", reason="export needs the onnx package (test extra)")
ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime runs the exported models")
from onnx import TensorProto as TP, helper, numpy_helper  # noqa: E402

from pyinfer.export import to_onnx  # noqa: E402
from pyinfer.export.registry import supported  # noqa: E402

F32 = np.float32


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(nodes, inputs, outputs, inits=(), opset=17, name="m"):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          ir_version=10 if opset > 20 else 8)
    return onnx.shape_inference.infer_shapes(m)  # outputs given without a shape get one


def _ort(model, feeds, disable_fusion=False):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if disable_fusion:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, feeds)


def _roundtrip(model, feeds_list, opset=None):
    """load -> to_onnx -> checker; ORT(exported) == ORT(original) on each feed."""
    g = pyinfer.load(model)
    exported = to_onnx(g) if opset is None else to_onnx(g, opset=opset)
    onnx.checker.check_model(exported, full_check=True)
    for feeds in feeds_list:
        want, got = _ort(model, feeds), _ort(exported, feeds)
        assert len(want) == len(got)
        for w, a in zip(want, got):
            assert a.dtype == w.dtype and a.shape == w.shape
            if w.dtype.kind == "f":
                assert_close(a, w, F32, what=model.graph.name)
            else:
                np.testing.assert_array_equal(a, w)
    return g, exported


# ---- whole models ------------------------------------------------------------------------

def mlp_model(rng, batch="batch"):
    f = lambda *s: (rng.standard_normal(s) * 0.3).astype(F32)  # noqa: E731
    N = helper.make_node
    nodes = [N("Gemm", ["x", "w1", "b1"], ["h1"]), N("Relu", ["h1"], ["r1"]),
             N("MatMul", ["r1", "w2"], ["h2"]), N("Add", ["h2", "b2"], ["h3"]),
             N("Relu", ["h3"], ["r2"]),
             N("Gemm", ["r2", "w3"], ["h4"], transB=1, alpha=0.5),
             N("Softmax", ["h4"], ["y"], axis=-1)]
    return _model(nodes, [helper.make_tensor_value_info("x", TP.FLOAT, [batch, 16])],
                  [helper.make_tensor_value_info("y", TP.FLOAT, [batch, 10])],
                  [_init("w1", f(16, 32)), _init("b1", f(32)), _init("w2", f(32, 8)),
                   _init("b2", f(8)), _init("w3", f(10, 8))], name="mlp")


def cnn_model(rng):
    f = lambda *s: (rng.standard_normal(s) * 0.3).astype(F32)  # noqa: E731
    N = helper.make_node
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             N("BatchNormalization", ["c1", "sc", "bb", "mu", "var"], ["bn"], epsilon=1e-3),
             N("Relu", ["bn"], ["r1"]),
             N("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             N("Conv", ["p1", "w2"], ["c2"], strides=[2, 2], pads=[1, 0, 1, 0]),
             N("Relu", ["c2"], ["r2"]), N("GlobalAveragePool", ["r2"], ["gp"]),
             N("Flatten", ["gp"], ["fl"]), N("Gemm", ["fl", "wf", "bf"], ["y"])]
    inits = [_init("w1", f(8, 3, 3, 3)), _init("b1", f(8)), _init("sc", 1 + 0.1 * f(8)),
             _init("bb", f(8)), _init("mu", f(8)), _init("var", 0.5 + np.abs(f(8))),
             _init("w2", f(16, 8, 3, 3)), _init("wf", f(16, 5)), _init("bf", f(5))]
    return _model(nodes, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 3, 12, 12])],
                  [helper.make_tensor_value_info("y", TP.FLOAT, ["N", 5])], inits, name="cnn")


def bert_model(rng, d=32, heads=4, vocab=50, ff=64):
    """A BERT encoder layer in PyTorch-export form: embedding Gather, LayerNormalization,
    attention with Shape/Gather/Concat reshapes and a padding mask, Erf GELU; dynamic
    batch and sequence."""
    f = lambda *s: (rng.standard_normal(s) * 0.2).astype(F32)  # noqa: E731
    dh = d // heads
    inits = {"emb": f(vocab, d), "ln0_w": 1 + f(d), "ln0_b": f(d),
             "wq": f(d, d), "bq": f(d), "wk": f(d, d), "bk": f(d), "wv": f(d, d), "bv": f(d),
             "wo": f(d, d), "bo": f(d), "ln1_w": 1 + f(d), "ln1_b": f(d),
             "w1": f(d, ff), "b1": f(ff), "w2": f(ff, d), "b2": f(d), "ln2_w": 1 + f(d),
             "ln2_b": f(d), "i0": np.array(0, np.int64), "i1": np.array(1, np.int64),
             "heads": np.array([heads], np.int64), "dh": np.array([dh], np.int64),
             "dmodel": np.array([d], np.int64), "ax0": np.array([0], np.int64),
             "ax12": np.array([1, 2], np.int64), "sqrt_dh": np.array(np.sqrt(dh), F32),
             "one": np.array(1.0, F32), "neg": np.array(-10000.0, F32),
             "half": np.array(0.5, F32), "sqrt2": np.array(np.sqrt(2.0), F32)}
    N = helper.make_node
    nodes = [N("Gather", ["emb", "ids"], ["e"]),
             N("LayerNormalization", ["e", "ln0_w", "ln0_b"], ["h0"], axis=-1, epsilon=1e-5),
             N("Shape", ["h0"], ["shp"]),
             N("Gather", ["shp", "i0"], ["bsz"], axis=0),
             N("Gather", ["shp", "i1"], ["sq"], axis=0),
             N("Unsqueeze", ["bsz", "ax0"], ["bsz1"]), N("Unsqueeze", ["sq", "ax0"], ["sq1"]),
             N("Concat", ["bsz1", "sq1", "heads", "dh"], ["split_shape"], axis=0),
             N("Concat", ["bsz1", "sq1", "dmodel"], ["merge_shape"], axis=0)]
    for t in "qkv":
        nodes += [N("MatMul", ["h0", f"w{t}"], [f"{t}0"]),
                  N("Add", [f"{t}0", f"b{t}"], [f"{t}1"]),
                  N("Reshape", [f"{t}1", "split_shape"], [f"{t}2"]),
                  N("Transpose", [f"{t}2"], [f"{t}3"],
                    perm=[0, 2, 3, 1] if t == "k" else [0, 2, 1, 3])]
    nodes += [N("MatMul", ["q3", "k3"], ["s0"]), N("Div", ["s0", "sqrt_dh"], ["s1"]),
              N("Unsqueeze", ["mask", "ax12"], ["m0"]), N("Sub", ["one", "m0"], ["m1"]),
              N("Mul", ["m1", "neg"], ["m2"]), N("Add", ["s1", "m2"], ["s2"]),
              N("Softmax", ["s2"], ["p"], axis=-1), N("MatMul", ["p", "v3"], ["c0"]),
              N("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]),
              N("Reshape", ["c1", "merge_shape"], ["c2"]),
              N("MatMul", ["c2", "wo"], ["o0"]), N("Add", ["o0", "bo"], ["o1"]),
              N("Add", ["o1", "h0"], ["o2"]),
              N("LayerNormalization", ["o2", "ln1_w", "ln1_b"], ["h1"], axis=-1, epsilon=1e-5),
              N("MatMul", ["h1", "w1"], ["f0"]), N("Add", ["f0", "b1"], ["f1"]),
              N("Div", ["f1", "sqrt2"], ["g0"]), N("Erf", ["g0"], ["g1"]),
              N("Add", ["g1", "one"], ["g2"]), N("Mul", ["f1", "g2"], ["g3"]),
              N("Mul", ["g3", "half"], ["g4"]), N("MatMul", ["g4", "w2"], ["f2"]),
              N("Add", ["f2", "b2"], ["f3"]), N("Add", ["f3", "h1"], ["f4"]),
              N("LayerNormalization", ["f4", "ln2_w", "ln2_b"], ["y"], axis=-1, epsilon=1e-5)]
    return _model(nodes, [helper.make_tensor_value_info("ids", TP.INT64, ["batch", "seq"]),
                          helper.make_tensor_value_info("mask", TP.FLOAT, ["batch", "seq"])],
                  [helper.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", d])],
                  [_init(k, v) for k, v in inits.items()], name="bert_block")


def _bert_feeds(rng, batch, seq):
    return {"ids": rng.integers(0, 50, (batch, seq)),
            "mask": (rng.random((batch, seq)) > 0.2).astype(F32)}


def test_mlp_round_trip(rng):
    _roundtrip(mlp_model(rng), [{"x": rng.standard_normal((n, 16)).astype(F32)}
                                for n in (1, 5)])


def test_cnn_round_trip(rng):
    _roundtrip(cnn_model(rng), [{"x": rng.standard_normal((n, 3, 12, 12)).astype(F32)}
                                for n in (1, 3)])


def test_bert_block_round_trip_keeps_dynamic_batch_and_sequence(rng):
    g, exported = _roundtrip(bert_model(rng), [_bert_feeds(rng, 2, 7), _bert_feeds(rng, 1, 3)])
    for vi in exported.graph.input:
        dims = [d.dim_param for d in vi.type.tensor_type.shape.dim]
        assert dims == ["batch", "seq"], (vi.name, dims)
    out_dims = exported.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out_dims] == ["batch", "seq", 32]


def test_save_writes_a_loadable_file(rng, tmp_path):
    g = pyinfer.load(mlp_model(rng))
    path = tmp_path / "mlp.onnx"
    pyinfer.save(g, path)
    back = pyinfer.load(str(path))
    x = rng.standard_normal((3, 16)).astype(F32)
    assert_close(evaluate(back, [x])[0], evaluate(g, [x])[0], F32)


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_optimized_graphs_export_fused_nodes_and_attention(rng, opset):
    """After the passes (FUSED_ELEMENTWISE, ATTENTION, LAYER_NORM, GEMM epilogues)."""
    from pyinfer.graph.passes import optimize
    from pyinfer.plan.plan import specialize
    model = bert_model(rng)
    feeds = _bert_feeds(rng, 2, 5)
    g = pyinfer.load(model)
    opt = optimize(specialize(g, [feeds[v.name].shape for v in g.inputs]))
    ops = {n.op for n in opt.nodes}
    assert {Op.ATTENTION, Op.FUSED_ELEMENTWISE, Op.LAYER_NORM, Op.GEMM} <= ops, ops
    # the head merge taken into the attention node (passes/layout.py) exports as a Transpose
    assert all("out_perm" in n.attrs for n in opt.nodes if n.op is Op.ATTENTION)
    exported = to_onnx(opt, opset=opset)
    onnx.checker.check_model(exported)
    assert_close(_ort(exported, feeds)[0], _ort(model, feeds)[0], F32, atol_extra=1e-5)


# ---- per op: ONNX model -> load -> export -> ORT against ORT -------------------------------

def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                         list(shape))


def _case(op_type, ins, outs, attrs=None, inits=(), opset=17, in_types=None, out_types=None):
    """A one-node model: ``ins``: {name: shape} graph inputs (float32 unless ``in_types``),
    ``outs``: output names."""
    node = helper.make_node(op_type, list(ins) + [n for n, _ in inits], list(outs),
                            **(attrs or {}))
    in_types = in_types or {}
    out_types = out_types or {}
    return _model([node], [_vi(n, in_types.get(n, F32), s) for n, s in ins.items()],
                  [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(
                      np.dtype(out_types.get(o, F32))), None) for o in outs],
                  [_init(n, v) for n, v in inits], opset=opset, name=op_type)


def _feed(model, rng, sizes):
    feeds = {}
    for vi in model.graph.input:
        dt = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        shape = tuple(d.dim_value if d.HasField("dim_value") else sizes[d.dim_param]
                      for d in vi.type.tensor_type.shape.dim)
        if np.dtype(dt).kind == "f":
            feeds[vi.name] = rng.standard_normal(shape).astype(dt)
        elif np.dtype(dt) == np.bool_:
            feeds[vi.name] = rng.random(shape) < 0.5
        else:
            feeds[vi.name] = rng.integers(0, 3, shape).astype(dt)
    return feeds


I64 = np.int64
X = {"x": (2, 3, 4)}
XY = {"x": (2, 3, 4), "y": (3, 1)}
OPS = {
    **{u: (u, X, ["z"]) for u in ("Exp", "Sqrt", "Abs", "Neg", "Tanh", "Sigmoid", "Relu", "Erf",
                                  "Reciprocal")},
    "Log": ("Log", X, ["z"]),
    **{b: (b, XY, ["z"]) for b in ("Add", "Sub", "Mul", "Div", "Max", "Min")},
    "Pow": ("Pow", {"x": (2, 3)}, ["z"], None, [("e", np.array(2.0, F32))]),
    **{c: (c, XY, ["z"], None, (), 17, None, {"z": np.bool_})
       for c in ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual")},
    "Where": ("Where", {"c": (3, 4), "x": (2, 3, 4), "y": (4,)}, ["z"], None, (), 17,
              {"c": np.bool_}),
    "Not": ("Not", {"c": (3, 4)}, ["z"], None, (), 17, {"c": np.bool_}, {"z": np.bool_}),
    "Cast": ("Cast", X, ["z"], {"to": TP.DOUBLE}, (), 17, None, {"z": np.float64}),
    "Clip": ("Clip", X, ["z"], None, [("lo", np.array(-0.5, F32)), ("hi", np.array(0.7, F32))]),
    "Gelu": ("Gelu", X, ["z"], {"approximate": "tanh"}, (), 20),
    "ReduceSum": ("ReduceSum", X, ["z"], {"keepdims": 0}, [("axes", np.array([0, 2], I64))]),
    "ReduceMean": ("ReduceMean", X, ["z"], {"axes": [1]}, (), 17),
    "ReduceMax": ("ReduceMax", X, ["z"], None, [("axes", np.array([-1], I64))], 18),
    "ReduceMin": ("ReduceMin", X, ["z"], {"keepdims": 0}),
    "Reshape": ("Reshape", X, ["z"], None, [("s", np.array([4, -1], I64))]),
    "Flatten": ("Flatten", X, ["z"], {"axis": 2}),
    "Squeeze": ("Squeeze", {"x": (2, 1, 4)}, ["z"], None, [("a", np.array([1], I64))]),
    "Unsqueeze": ("Unsqueeze", X, ["z"], None, [("a", np.array([0, 4], I64))]),
    "Transpose": ("Transpose", X, ["z"], {"perm": [2, 0, 1]}),
    "Concat": ("Concat", {"x": (2, 3), "y": (2, 5)}, ["z"], {"axis": 1}),
    "Slice": ("Slice", {"x": (5, 6, 7)}, ["z"], None,
              [("st", np.array([4, 1], I64)), ("en", np.array([0, 100], I64)),
               ("ax", np.array([0, 2], I64)), ("sp", np.array([-2, 3], I64))]),
    "Softmax": ("Softmax", X, ["z"], {"axis": 1}),
    "LogSoftmax": ("LogSoftmax", X, ["z"]),
    "LayerNormalization": ("LayerNormalization", X, ["z"], {"axis": 1, "epsilon": 1e-3},
                           [("w", np.linspace(0.5, 1.5, 12, dtype=F32).reshape(3, 4))]),
    "MatMul": ("MatMul", {"x": (2, 3, 4), "y": (4, 5)}, ["z"]),
    "Gemm": ("Gemm", {"x": (4, 3), "y": (5, 4)}, ["z"],
             {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0},
             [("c", np.arange(5, dtype=F32))]),
    "Conv": ("Conv", {"x": (1, 4, 9, 8)}, ["z"],
             {"group": 2, "strides": [2, 1], "auto_pad": "SAME_UPPER"},
             [("w", np.linspace(-1, 1, 6 * 2 * 9, dtype=F32).reshape(6, 2, 3, 3))]),
    "Conv-dilated": ("Conv", {"x": (2, 3, 9, 8)}, ["z"],
                     {"dilations": [2, 1], "pads": [2, 0, 1, 1], "strides": [1, 2]},
                     [("w", np.linspace(-1, 1, 4 * 3 * 6, dtype=F32).reshape(4, 3, 3, 2)),
                      ("b", np.array([0.5, -1, 0, 2], F32))]),
    "MaxPool": ("MaxPool", {"x": (1, 2, 9, 8)}, ["z"],
                {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1,
                 "dilations": [1, 2], "pads": [1, 0, 1, 1]}),
    "AveragePool": ("AveragePool", {"x": (1, 2, 7, 7)}, ["z"],
                    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                     "count_include_pad": 1}),
    "GlobalMaxPool": ("GlobalMaxPool", {"x": (2, 3, 5, 4)}, ["z"]),
    "BatchNormalization": ("BatchNormalization", {"x": (2, 3, 4, 5)}, ["z"], {"epsilon": 1e-2},
                           [("s", np.array([1, 2, 3], F32)), ("b", np.array([0, 1, -1], F32)),
                            ("m", np.array([0.1, 0, -0.2], F32)),
                            ("v", np.array([1, 0.5, 2], F32))]),
    "Pad-reflect": ("Pad", {"x": (1, 2, 5, 6)}, ["z"], {"mode": "reflect"},
                    [("p", np.array([0, 0, 2, 1, 0, 0, 1, 3], I64))]),
    "Pad-constant": ("Pad", {"x": (1, 2, 5, 6)}, ["z"], None,
                     [("p", np.array([0, 0, 2, -1, 0, 0, 1, 3], I64)),
                      ("v", np.array(1.5, F32))]),
    "LRN": ("LRN", {"x": (1, 5, 3, 3)}, ["z"], {"size": 3, "alpha": 1e-3, "beta": 0.7}),
    "Resize-linear": ("Resize", {"x": (1, 2, 4, 5)}, ["z"], {"mode": "linear"},
                      [("roi", np.array([], F32)), ("sc", np.array([1, 1, 2, 1.5], F32))]),
    "Resize-nearest": ("Resize", {"x": (1, 2, 4, 5)}, ["z"],
                       {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                        "nearest_mode": "floor"},
                       [("roi", np.array([], F32)), ("sc", np.array([], F32)),
                        ("sz", np.array([1, 2, 7, 3], I64))]),
    "Gather": ("Gather", {"x": (5, 4), "i": (2, 3)}, ["z"], {"axis": 0}, (), 17, {"i": I64}),
    "Split": ("Split", X, ["z", "w"], {"axis": 2}, [("s", np.array([1, 3], I64))]),
    "QuantizeLinear": ("QuantizeLinear", X, ["z"], None,
                       [("s", np.array(0.02, F32)), ("zp", np.array(10, np.int8))], 17, None,
                       {"z": np.int8}),
    "DequantizeLinear": ("DequantizeLinear", {"x": (3, 4)}, ["z"], {"axis": 1},
                         [("s", np.array([0.1, 0.2, 0.3, 0.4], F32)),
                          ("zp", np.array([0, 1, 2, 3], np.uint8))], 17, {"x": np.uint8}),
    "DynamicQuantizeLinear": ("DynamicQuantizeLinear", X, ["z", "s", "zp"], None, (), 17, None,
                              {"z": np.uint8, "zp": np.uint8}),
    "MatMulInteger": ("MatMulInteger", {"x": (3, 4)}, ["z"], None,
                      [("w", np.arange(-10, 10, dtype=np.int8).reshape(4, 5) * 6),
                       ("za", np.array(3, np.uint8))], 17, {"x": np.uint8}, {"z": np.int32}),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_round_trip(name, rng):
    model = _case(*OPS[name])
    feeds = _feed(model, rng, {})
    if name == "Log":
        feeds["x"] = np.abs(feeds["x"]) + 0.1
    if name in ("DequantizeLinear", "MatMulInteger"):
        feeds["x"] = rng.integers(0, 256, feeds["x"].shape).astype(np.uint8)
    _roundtrip(model, [feeds])


# ONNX shape ops only stay ops (not folded constants) when shapes are symbolic.
def _shape_model(nodes, inputs, out_type=F32, inits=()):
    return _model(nodes, [_vi(n, t, s) for n, (t, s) in inputs.items()],
                  [helper.make_tensor_value_info("z", helper.np_dtype_to_tensor_dtype(
                      np.dtype(out_type)), None)], [_init(n, v) for n, v in inits])


N = helper.make_node
SHAPE_OPS = {
    "Shape-ConstantOfShape": (
        [N("Shape", ["x"], ["s"], start=1),
         N("ConstantOfShape", ["s"], ["z"], value=_init("v", np.array([2.5], F32)))],
        {"x": (F32, ["a", "b"])}, F32, (), Op.CONSTANT_OF_SHAPE),
    "Range": (
        [N("Shape", ["x"], ["s"]), N("Gather", ["s", "one"], ["n"], axis=0),
         N("Range", ["zero", "n", "one"], ["z"])],
        {"x": (F32, ["a", "b"])}, I64,
        [("zero", np.array(0, I64)), ("one", np.array(1, I64))], Op.RANGE),
    "Expand": ([N("Shape", ["y"], ["s"]), N("Expand", ["x", "s"], ["z"])],
               {"x": (F32, [1, 3]), "y": (F32, ["a", 3])}, F32, (), Op.EXPAND),
    "dynamic Slice": (
        [N("Shape", ["x"], ["s"]), N("Gather", ["s", "one"], ["n"], axis=0),
         N("Unsqueeze", ["n", "ax0"], ["n1"]), N("Sub", ["n1", "one1"], ["e"]),
         N("Slice", ["x", "one1", "e", "ax1"], ["z"])],
        {"x": (F32, ["a", "b"])}, F32,
        [("one", np.array(1, I64)), ("ax0", np.array([0], I64)), ("one1", np.array([1], I64)),
         ("ax1", np.array([1], I64))], Op.DYNAMIC_SLICE),
    "dynamic Reshape": (
        [N("Shape", ["y"], ["s"]), N("Mul", ["s", "two"], ["t"]), N("Reshape", ["x", "t"], ["z"])],
        {"x": (F32, ["a", 6]), "y": (F32, ["b", "c"])}, F32, [("two", np.array([2, 1], I64))],
        Op.DYNAMIC_RESHAPE),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_op_round_trip_with_symbolic_dims(name, rng):
    nodes, inputs, out_type, inits, op = SHAPE_OPS[name]
    model = _shape_model(nodes, inputs, out_type, inits)
    assert op in {n.op for n in pyinfer.load(model).nodes}
    sizes = {"a": 3, "b": 4, "c": 2}
    feeds = _feed(model, rng, sizes)
    if name == "dynamic Reshape":
        feeds["y"] = np.zeros((9, 1), F32)      # (3, 6) -> (2 * 9, 1)
    _roundtrip(model, [feeds])


# ---- ops the importer never makes: pyinfer graphs against the NumPy reference ------------------

def _graph_case(build, feeds, tol_extra=0.0):
    g = Graph("case")
    build(g)
    exported = to_onnx(g)
    onnx.checker.check_model(exported)
    got = _ort(exported, {v.name: feeds[v.name] for v in g.inputs})
    want = evaluate(g, [feeds[v.name] for v in g.inputs])
    for a, w in zip(got, want):
        if np.asarray(w).dtype.kind == "f":
            assert_close(a, w, F32, atol_extra=tol_extra)
        else:
            np.testing.assert_array_equal(a, w)


def test_gemm_epilogue_residual_activation(rng):
    a = rng.standard_normal((4, 6)).astype(F32)
    r = rng.standard_normal((4, 5)).astype(F32)
    w = rng.standard_normal((5, 6)).astype(F32)
    bias = rng.standard_normal(5).astype(F32)
    for act in (None, "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"):
        def build(g):
            x, res = g.input("a", (4, 6), F32), g.input("r", (4, 5), F32)
            y = g.add(Op.GEMM, [x, g.constant(w), g.constant(bias), res],
                      {"trans_b": True, "alpha": 0.5, "activation": act})
            g.output(y, "y")
        bound = sum_bound(6, np.abs(a) @ np.abs(w.T) * 0.5, F32)
        _graph_case(build, {"a": a, "r": r}, bound)


def test_batched_gemm_and_matmul_broadcast(rng):
    a = rng.standard_normal((2, 3, 4)).astype(F32)

    def build(g):
        x = g.input("a", (2, 3, 4), F32)
        y = g.add(Op.GEMM, [g.constant(np.eye(3, dtype=F32)), g.constant(np.ones((3, 3), F32))],
                  {"trans_a": True})
        z = g.add(Op.MATMUL, [x, g.constant(np.arange(20, dtype=F32).reshape(4, 5) / 10)])
        g.output(y, "y")
        g.output(z, "z")
    _graph_case(build, {"a": a}, 1e-5)


def test_basic_index_slice(rng):
    x = rng.standard_normal((4, 5, 6)).astype(F32)
    for index in [(1,), (slice(None), -1), (Ellipsis, None, slice(4, 0, -2)),
                  (None, slice(1, None), 2, slice(None, None, -1)), (-2, Ellipsis, -1),
                  (slice(-3, None), None)]:
        def build(g):
            v = g.input("x", (4, 5, 6), F32)
            g.output(g.add(Op.SLICE, [v], {"index": index}), "y")
        _graph_case(build, {"x": x})


def test_rms_norm_rsqrt_attention_not_equal_argmax_and_host_ops(rng):
    q = rng.standard_normal((2, 3, 4)).astype(F32)
    k = rng.standard_normal((2, 5, 4)).astype(F32)
    m = rng.standard_normal((2, 3, 5)).astype(F32)
    ids = rng.integers(-5, 6, (3, 4)).astype(np.int64)

    def build(g):
        xq, xk, xm = g.input("q", (2, 3, 4), F32), g.input("k", (2, 5, 4), F32), \
            g.input("m", (2, 3, 5), F32)
        xi = g.input("ids", (3, 4), np.int64)
        g.output(g.add(Op.RMS_NORM, [xq, g.constant(np.linspace(0.5, 2, 4, dtype=F32))],
                       {"axis": -1, "eps": 1e-3}), "rms")
        g.output(g.add(Op.RSQRT, [g.add(Op.ABS, [xq])]), "rsqrt")
        g.output(g.add(Op.ATTENTION, [xq, xk, xk, xm], {"scale": 0.3}), "att")
        g.output(g.add(Op.NOT_EQUAL, [xq, g.constant(np.float64(0.5))]), "ne")
        g.output(g.add(Op.ARGMAX, [xq], {"axis": None, "keepdims": True}), "argmax")
        g.output(g.add(Op.HOST_ELEMENTWISE, [xi, g.constant(np.int64(3))], {"fn": "div"}), "div")
        g.output(g.add(Op.HOST_ELEMENTWISE, [xi, g.constant(np.int64(3))], {"fn": "mod"}), "mod")
        g.output(g.add(Op.HOST_ELEMENTWISE, [xi, g.constant(np.int64(0))],
                       {"fn": "not_equal"}), "hne")
    _graph_case(build, {"q": q, "k": k, "m": m, "ids": ids}, 1e-5)


def test_conv_with_residual_and_clip_activation(rng):
    x = rng.standard_normal((1, 3, 6, 6)).astype(F32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(F32)
    r = rng.standard_normal((1, 4, 6, 6)).astype(F32)
    for act, extra in (("relu6", {}), ("clip", {"clip_min": -0.5, "clip_max": 1.0}),
                       ("silu", {})):
        def build(g):
            xv, rv = g.input("x", x.shape, F32), g.input("r", r.shape, F32)
            y = g.add(Op.CONV, [xv, g.constant(w), g.constant(np.ones(4, F32)), rv],
                      {"pads": (1, 1, 1, 1), "activation": act, **extra})
            g.output(y, "y")
        _graph_case(build, {"x": x, "r": r}, sum_bound(27, 30.0, F32))


def test_float64_graph_with_weak_scalar_constants(rng):
    x = rng.standard_normal((3, 4))

    def build(g):
        v = g.input("x", (3, 4), np.float64)
        y = g.add(Op.MUL, [v, g.constant(np.float32(0.5))])
        g.output(g.add(Op.WHERE, [g.add(Op.GREATER, [y, g.constant(np.float32(0))]), y,
                                  g.constant(np.float32(-1))]), "y")
    g = Graph("f64")
    build(g)
    got = _ort(to_onnx(g), {"x": x})[0]
    assert got.dtype == np.float64
    assert_close(got, evaluate(g, [x])[0], np.float64)


def test_every_op_has_an_exporter_but_planner_internal_ones():
    planner_internal = {Op.LAYOUT, Op.QCONV}
    missing = set(Op) - set(supported()) - planner_internal
    assert not missing, f"ops without an ONNX exporter: {sorted(o.name for o in missing)}"


def test_unexported_op_and_bad_opset_raise_named_errors():
    g = Graph("layout")
    x = g.input("x", (1, 8, 4, 4), F32)
    g.output(g.add(Op.LAYOUT, [x], {"to": "NCHWc", "block": 8}), "y")
    with pytest.raises(UnsupportedError, match=r"LAYOUT has no ONNX exporter"):
        to_onnx(g)
    g2 = Graph("ok")
    g2.output(g2.add(Op.RELU, [g2.input("x", (2,), F32)]), "y")
    with pytest.raises(UnsupportedError, match=r"'opset' expected an int in \[13, 21\]"):
        to_onnx(g2, opset=11)


# ---- compressed models -----------------------------------------------------------------------

def _two_layer(rng):
    f = lambda *s: rng.standard_normal(s).astype(F32)  # noqa: E731
    w1, b1, w2, b2 = f(24, 40), f(40), f(40, 12), f(12)
    N_ = helper.make_node
    model = _model([N_("MatMul", ["x", "w1"], ["h"]), N_("Add", ["h", "b1"], ["h1"]),
                    N_("Relu", ["h1"], ["r"]), N_("Gemm", ["r", "w2", "b2"], ["y"])],
                   [helper.make_tensor_value_info("x", TP.FLOAT, ["batch", 24])],
                   [helper.make_tensor_value_info("y", TP.FLOAT, ["batch", 12])],
                   [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)])
    return model, b1


def _dense_weights(g):
    """(W1, W2) as the pruned graph holds them (SPARSE_GEMM constants)."""
    return [n.inputs[1].data for n in g.nodes if n.op is Op.SPARSE_GEMM]


@pytest.mark.parametrize("structure", ["unstructured", "block"])
def test_pruned_model_exported_runs_in_ort_and_equals_pyinfer(structure, rng):
    from pyinfer.compress import prune
    model, b1 = _two_layer(rng)
    g = prune(pyinfer.load(model), 0.75, structure=structure)
    w1, w2 = _dense_weights(g)
    assert np.mean(w1 == 0) >= 0.7 and np.mean(w2 == 0) >= 0.7
    exported = to_onnx(g)
    onnx.checker.check_model(exported)
    stored = {t.name: numpy_helper.to_array(t) for t in exported.graph.initializer}
    assert sum(np.array_equal(v, w1) or np.array_equal(v, w2) for v in stored.values()) == 2
    x = rng.standard_normal((5, 24)).astype(F32)
    got = _ort(exported, {"x": x})[0]
    want = pyinfer.Interpreter(g).run({"x": x})[0]
    # Both sum the same (pruned) products in different orders: the rounding bound of
    # layer 1 carried through |W2|, plus layer 2's own.
    # ReLU is 1-Lipschitz, so layer 1's bound reaches layer 2 multiplied by |W2|.
    h = np.maximum(x @ w1 + b1, 0)
    e1 = sum_bound(24, np.abs(x) @ np.abs(w1), F32) + 1e-5 * np.abs(h) + 1e-6
    bound = e1 @ np.abs(w2) + sum_bound(40, np.abs(h) @ np.abs(w2), F32)
    assert_close(got, want, F32, atol_extra=bound)


def test_quantize_dynamic_model_exported_as_qdq_runs_in_ort_within_int8_tolerance(rng):
    from pyinfer.compress import quantize_dynamic
    from pyinfer.ops.quant import dynamic_params
    model = _model([helper.make_node("MatMul", ["x", "w"], ["h"]),
                    helper.make_node("Add", ["h", "b"], ["y"])],
                   [helper.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", 48])],
                   [helper.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", 20])],
                   [_init("w", rng.standard_normal((48, 20)).astype(F32)),
                    _init("b", rng.standard_normal(20).astype(F32))])
    g32 = pyinfer.load(model)
    gq = quantize_dynamic(g32, activation_granularity="tensor")  # the QDQ form; per row: test_quant
    assert Op.QGEMM in [n.op for n in gq.nodes] and Op.MATMUL not in [n.op for n in gq.nodes]
    exported = to_onnx(gq)
    onnx.checker.check_model(exported)
    types = {n.op_type for n in exported.graph.node}
    assert {"DynamicQuantizeLinear", "DequantizeLinear", "MatMul"} <= types, types
    x = rng.standard_normal((2, 3, 48)).astype(F32)
    got = _ort(exported, {"x": x})[0]
    # Against pyinfer's int8 model: the same quantized operands, summed in float32 by ORT.
    assert_close(got, pyinfer.Interpreter(gq).run({"x": x})[0], F32,
                 atol_extra=sum_bound(48, np.abs(x) @ np.abs(g32.nodes[0].inputs[1].data), F32))
    # Against fp32: the quantization error bound, half a step of each operand per term.
    w = g32.nodes[0].inputs[1].data
    s_a, _ = dynamic_params(x.min(), x.max())
    s_w = np.abs(w).max(axis=0) / 127
    bound = (s_a / 2) * np.abs(w).sum(axis=0) + np.abs(x) @ np.ones_like(w) * (s_w / 2) \
        + 48 * s_a * s_w / 4
    assert np.all(np.abs(got - evaluate(g32, [x])[0]) <= bound + 1e-4)


@pytest.mark.parametrize("opset", [13, 17])
def test_outputs_that_are_inputs_constants_or_shapes(opset):
    g = Graph("io")
    x = g.input("x", ("n", 3), F32)
    g.output(x, "same")
    g.output(g.constant(np.arange(3, dtype=F32)), "c")
    g.output(g.add(Op.SHAPE, [x], {"start": 1}), "s")
    exported = to_onnx(g, opset=opset)
    assert [o.name for o in exported.graph.output] == ["same", "c", "s"]
    xv = np.arange(12, dtype=F32).reshape(4, 3)
    same, c, s = _ort(exported, {"x": xv})
    np.testing.assert_array_equal(same, xv)
    np.testing.assert_array_equal(c, np.arange(3, dtype=F32))
    np.testing.assert_array_equal(s, [3])
