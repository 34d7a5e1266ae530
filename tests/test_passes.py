"""Graph passes: each rule table before/after, the kernel count a graph becomes,
and the golden rule: every pass on or off, ``reference.evaluate`` gives the same
answer (up to the rounding a fused op changes)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyinfer.graph import Graph, Op
from pyinfer.graph.passes import PASSES, kernel_count, optimize
from pyinfer.graph.reference import evaluate
from pyinfer.testing import assert_close

F32, F64 = np.float32, np.float64
STRUCTURAL = ["fold", "simplify", "cse", "patterns", "dce"]  # patterns without fusion


def ops(g):
    return [n.op for n in g.nodes]


def count(g, op):
    return sum(1 for n in g.nodes if n.op is op)


def inputs_for(g, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(v.shape)).astype(v.dtype) for v in g.inputs]


def same_answer(g, opt, seed=0, loose=False):
    """``opt`` computes what ``g`` computes, for random inputs."""
    ins = inputs_for(g, seed)
    want, got = evaluate(g, ins), evaluate(opt, ins)
    assert len(want) == len(got)
    assert [v.output_name for v in g.outputs] == [v.output_name for v in opt.outputs]
    for w, a, v in zip(want, got, g.outputs):
        dt = np.dtype(v.dtype) if v.dtype.kind == "f" else np.dtype(F64)
        extra = (1e-4, 1e-5) if dt == F32 else (1e-9, 1e-9)
        if loose:
            extra = (1e-3, 1e-4) if dt == F32 else (1e-9, 1e-9)
        assert_close(a, np.asarray(w, np.float64), dt, rtol_extra=extra[0], atol_extra=extra[1],
                     what=v.output_name)


def c(g, value, dtype=F32):
    return g.constant(np.asarray(value, dtype))


# ---- graph builders: the forms people write -------------------------------------------

def gelu_erf(g, x, form=0, k=1 / math.sqrt(2)):
    dt = x.dtype
    if form == 0:    # 0.5 * x * (1 + erf(x / sqrt(2)))
        inner = g.add(Op.DIV, [x, g.add(Op.SQRT, [c(g, 2.0, dt)])]) if k == 1 / math.sqrt(2) \
            else g.add(Op.MUL, [x, c(g, k, dt)])
        return g.add(Op.MUL, [g.add(Op.MUL, [c(g, 0.5, dt), x]),
                              g.add(Op.ADD, [c(g, 1.0, dt), g.add(Op.ERF, [inner])])])
    if form == 1:    # x * 0.5 * (1 + erf(x * 0.7071...))
        inner = g.add(Op.MUL, [x, c(g, k, dt)])
        return g.add(Op.MUL, [g.add(Op.MUL, [x, c(g, 0.5, dt)]),
                              g.add(Op.ADD, [g.add(Op.ERF, [inner]), c(g, 1.0, dt)])])
    # PyTorch ONNX export: x * (1 + erf(x / 1.41421...)) / 2  (the div by 2 kept as div)
    inner = g.add(Op.DIV, [x, c(g, 1 / k, dt)])
    return g.add(Op.DIV, [g.add(Op.MUL, [x, g.add(Op.ADD, [g.add(Op.ERF, [inner]),
                                                          c(g, 1.0, dt)])]), c(g, 2.0, dt)])


def gelu_tanh(g, x, form=0, coef=0.044715):
    dt = x.dtype
    k = c(g, math.sqrt(2 / math.pi), dt)
    if form == 0:    # x + 0.044715 * x**3
        cube = g.add(Op.POW, [x, c(g, 3.0, dt)])
        arg = g.add(Op.MUL, [k, g.add(Op.ADD, [x, g.add(Op.MUL, [c(g, coef, dt), cube])])])
    elif form == 1:  # x + 0.044715 * x * x * x
        t = g.add(Op.MUL, [g.add(Op.MUL, [g.add(Op.MUL, [c(g, coef, dt), x]), x]), x])
        arg = g.add(Op.MUL, [g.add(Op.ADD, [t, x]), k])
    else:            # HF: sqrt(2/pi) * x * (1 + 0.044715 * x * x)
        p = g.add(Op.ADD, [c(g, 1.0, dt), g.add(Op.MUL, [c(g, coef, dt),
                                                         g.add(Op.MUL, [x, x])])])
        arg = g.add(Op.MUL, [g.add(Op.MUL, [k, x]), p])
    one_plus = g.add(Op.ADD, [c(g, 1.0, dt), g.add(Op.TANH, [arg])])
    return g.add(Op.MUL, [g.add(Op.MUL, [c(g, 0.5, dt), x]), one_plus])


def sigmoid_written(g, x):
    d = g.add(Op.ADD, [c(g, 1.0, x.dtype), g.add(Op.EXP, [g.add(Op.NEG, [x])])])
    return g.add(Op.DIV, [c(g, 1.0, x.dtype), d])


def softmax_written(g, x, axis=-1, stable=True):
    t = g.add(Op.SUB, [x, g.add(Op.MAX, [x], {"axis": axis, "keepdims": True})]) if stable else x
    e = g.add(Op.EXP, [t])
    return g.add(Op.DIV, [e, g.add(Op.SUM, [e], {"axis": axis, "keepdims": True})])


def layer_norm_written(g, x, w=None, b=None, eps=1e-5, square="pow", inv="div", axis=-1):
    dt = x.dtype
    m = g.add(Op.MEAN, [x], {"axis": axis, "keepdims": True})
    d = g.add(Op.SUB, [x, m])
    sq = g.add(Op.POW, [d, c(g, 2.0, dt)]) if square == "pow" else g.add(Op.MUL, [d, d])
    var = g.add(Op.MEAN, [sq], {"axis": axis, "keepdims": True})
    ve = g.add(Op.ADD, [var, c(g, eps, dt)])
    if inv == "div":
        y = g.add(Op.DIV, [d, g.add(Op.SQRT, [ve])])
    elif inv == "rsqrt":
        y = g.add(Op.MUL, [d, g.add(Op.RSQRT, [ve])])
    else:
        y = g.add(Op.MUL, [d, g.add(Op.DIV, [c(g, 1.0, dt), g.add(Op.SQRT, [ve])])])
    if w is not None:
        y = g.add(Op.MUL, [y, w])
    if b is not None:
        y = g.add(Op.ADD, [y, b])
    return y


def attention_written(g, q, k, v, mask=None, scale_form="div", dt=F32):
    d = q.shape[-1]
    kt = g.add(Op.TRANSPOSE, [k], {"perm": tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2)})
    if scale_form == "q":
        q = g.add(Op.MUL, [q, c(g, 1 / math.sqrt(d), dt)])
    s = g.add(Op.MATMUL, [q, kt])
    if scale_form == "div":
        s = g.add(Op.DIV, [s, c(g, math.sqrt(d), dt)])
    elif scale_form == "mul":
        s = g.add(Op.MUL, [c(g, 0.125, dt), s])
    if mask is not None:
        s = g.add(Op.ADD, [s, mask])
    return g.add(Op.MATMUL, [softmax_written(g, s), v])


def unary_graph(build, shape=(4, 16), dtype=F32, **kw):
    g = Graph("t")
    x = g.input("x", shape, dtype)
    g.output(build(g, x, **kw), "y")
    return g


# ---- dce, fold, cse ----------------------------------------------------------------------

def test_dce_removes_unused_nodes_and_keeps_outputs():
    g = Graph()
    x = g.input("x", (3,), F32)
    g.add(Op.EXP, [x])                       # dead
    y = g.add(Op.TANH, [x])
    g.output(y, "out")
    opt = optimize(g, ["dce"])
    assert ops(opt) == [Op.TANH] and opt.outputs[0].output_name == "out"
    same_answer(g, opt)


def test_fold_constants_and_size_limit():
    g = Graph()
    x = g.input("x", (4,), F32)
    k = g.add(Op.MUL, [c(g, [1, 2, 3, 4]), g.add(Op.EXP, [c(g, [0, 1, 2, 3])])])
    # a 2 MiB broadcast of two small constants: cheaper to compute than to store
    big = g.add(Op.ADD, [c(g, np.ones((1024, 1))), c(g, np.ones((1, 512)))])
    g.output(g.add(Op.ADD, [x, k]), "y")
    g.output(g.add(Op.SUM, [big], {"axis": (0, 1)}), "z")
    opt = optimize(g, ["fold"])
    assert ops(opt) == [Op.ADD, Op.ADD, Op.SUM]
    assert any("folding limit" in r for _, r in opt.notes)
    same_answer(g, opt)
    # a transpose of a weight is as large as its input: folded
    g = Graph()
    x = g.input("x", (3, 600), F32)
    w = g.add(Op.TRANSPOSE, [c(g, np.ones((600, 600)))], {"perm": (1, 0)})
    g.output(g.add(Op.MATMUL, [x, w]), "y")
    assert ops(optimize(g, ["fold"])) == [Op.MATMUL]


def test_cse_merges_duplicates_and_equal_constants():
    g = Graph()
    x = g.input("x", (3, 4), F32)
    a = g.add(Op.MUL, [x, c(g, 2.0)])
    b = g.add(Op.MUL, [x, c(g, 2.0)])        # same op, equal constant
    s1 = g.add(Op.SUM, [a], {"axis": 1})
    s2 = g.add(Op.SUM, [b], {"axis": (1,)})  # same axis, written differently
    g.output(g.add(Op.ADD, [s1, s2]), "y")
    g.output(b, "b")
    opt = optimize(g, ["cse"])
    assert count(opt, Op.MUL) == 1 and count(opt, Op.SUM) == 1
    assert [v.output_name for v in opt.outputs] == ["y", "b"]
    same_answer(g, opt)


# ---- simplify -------------------------------------------------------------------------

@pytest.mark.parametrize("op,const,expect", [
    (Op.MUL, 1.0, []), (Op.ADD, 0.0, []), (Op.SUB, 0.0, []), (Op.DIV, 1.0, []),
    (Op.POW, 1.0, []), (Op.POW, 2.0, [Op.MUL]), (Op.POW, 0.5, [Op.SQRT]),
    (Op.POW, -0.5, [Op.RSQRT]), (Op.DIV, 4.0, [Op.MUL]),
])
def test_simplify_rules(op, const, expect):
    g = Graph()
    x = g.input("x", (3, 4), F32)
    g.output(g.add(Op.TANH, [g.add(op, [x, c(g, const)])]), "y")
    opt = optimize(g, ["simplify"])
    assert ops(opt) == expect + [Op.TANH]
    # positive inputs keep sqrt/rsqrt finite
    ins = [np.abs(inputs_for(g)[0]) + 0.1]
    assert_close(evaluate(opt, ins)[0], evaluate(g, ins)[0].astype(F64), F32)


def test_simplify_structural_rules():
    g = Graph()
    x = g.input("x", (2, 3, 4), F32)
    t = g.add(Op.TRANSPOSE, [g.add(Op.TRANSPOSE, [x], {"perm": (1, 0, 2)})], {"perm": (1, 0, 2)})
    r = g.add(Op.RESHAPE, [g.add(Op.RESHAPE, [t], {"shape": (6, 4)})], {"shape": (4, 6)})
    n = g.add(Op.NEG, [g.add(Op.NEG, [r])])
    g.output(n, "y")
    opt = optimize(g, ["simplify"])
    assert ops(opt) == [Op.RESHAPE] and opt.nodes[0].inputs[0] is opt.inputs[0]
    same_answer(g, opt)


def test_simplify_keeps_broadcasting_and_promotion():
    g = Graph()
    x = g.input("x", (4,), F32)
    y = g.add(Op.MUL, [x, c(g, np.ones((3, 1)))])        # broadcasts (4,) to (3, 4)
    z = g.add(Op.ADD, [x, c(g, np.zeros(4), F64)])       # promotes to float64
    g.output(y, "y")
    g.output(z, "z")
    opt = optimize(g, ["simplify"])
    assert ops(opt) == [Op.MUL, Op.ADD]


# ---- patterns --------------------------------------------------------------------------

PATTERN_CASES = [
    ("gelu-0.5*x*(1+erf(x/sqrt2))", lambda g, x: gelu_erf(g, x, 0), Op.GELU),
    ("gelu-x*0.5*(1+erf(x*c))", lambda g, x: gelu_erf(g, x, 1), Op.GELU),
    ("gelu-onnx-x*(1+erf(x/c))/2", lambda g, x: gelu_erf(g, x, 2), Op.GELU),
    ("gelu_tanh-pow3", lambda g, x: gelu_tanh(g, x, 0), Op.GELU_TANH),
    ("gelu_tanh-x*x*x", lambda g, x: gelu_tanh(g, x, 1), Op.GELU_TANH),
    ("gelu_tanh-hf", lambda g, x: gelu_tanh(g, x, 2), Op.GELU_TANH),
    ("sigmoid", sigmoid_written, Op.SIGMOID),
    ("silu-x*sigmoid", lambda g, x: g.add(Op.MUL, [x, g.add(Op.SIGMOID, [x])]), Op.SILU),
    ("silu-x*written-sigmoid", lambda g, x: g.add(Op.MUL, [sigmoid_written(g, x), x]), Op.SILU),
    ("softmax", lambda g, x: softmax_written(g, x), Op.SOFTMAX),
    ("softmax-unstable", lambda g, x: softmax_written(g, x, stable=False), Op.SOFTMAX),
    ("softmax-axis0", lambda g, x: softmax_written(g, x, axis=0), Op.SOFTMAX),
    ("log_softmax", lambda g, x: g.add(Op.LOG, [softmax_written(g, x)]), Op.LOG_SOFTMAX),
    ("log_softmax-written", lambda g, x: g.add(Op.SUB, [
        t := g.add(Op.SUB, [x, g.add(Op.MAX, [x], {"axis": -1, "keepdims": True})]),
        g.add(Op.LOG, [g.add(Op.SUM, [g.add(Op.EXP, [t])], {"axis": -1, "keepdims": True})])]),
     Op.LOG_SOFTMAX),
    ("layer_norm-pow-div", lambda g, x: layer_norm_written(
        g, x, c(g, np.linspace(0.5, 2, 16)), c(g, np.linspace(-1, 1, 16))), Op.LAYER_NORM),
    ("layer_norm-dd-rsqrt", lambda g, x: layer_norm_written(
        g, x, c(g, np.linspace(0.5, 2, 16)), None, square="mul", inv="rsqrt"), Op.LAYER_NORM),
    ("layer_norm-recip-noaffine", lambda g, x: layer_norm_written(g, x, inv="recip", eps=1e-6),
     Op.LAYER_NORM),
    ("layer_norm-bias-only", lambda g, x: layer_norm_written(
        g, x, None, c(g, np.linspace(-1, 1, 16))), Op.LAYER_NORM),
    ("layer_norm-w(1,16)", lambda g, x: layer_norm_written(
        g, x, c(g, np.linspace(0.5, 2, 16).reshape(1, 16)), None), Op.LAYER_NORM),
    ("rms_norm", lambda g, x: g.add(Op.MUL, [g.add(Op.DIV, [x, g.add(Op.SQRT, [g.add(Op.ADD, [
        g.add(Op.MEAN, [g.add(Op.MUL, [x, x])], {"axis": -1, "keepdims": True}),
        c(g, 1e-6)])])]), c(g, np.linspace(0.5, 2, 16))]), Op.RMS_NORM),
    ("rms_norm-rsqrt-pow", lambda g, x: g.add(Op.MUL, [x, g.add(Op.RSQRT, [g.add(Op.ADD, [
        g.add(Op.MEAN, [g.add(Op.POW, [x, c(g, 2.0)])], {"axis": -1, "keepdims": True}),
        c(g, 1e-6)])])]), Op.RMS_NORM),
]


@pytest.mark.parametrize("name,build,op", PATTERN_CASES, ids=[p[0] for p in PATTERN_CASES])
@pytest.mark.parametrize("passes", ["patterns-only", "full"])
def test_pattern_recognised(name, build, op, passes):
    g = unary_graph(build)
    opt = optimize(g, ["fold", "patterns", "dce"] if passes == "patterns-only" else None)
    assert ops(opt) == [op], opt
    assert kernel_count(opt) == 1
    assert opt.nodes[0].fused_from    # explain() can say what it was
    same_answer(g, opt)


def test_pattern_keeps_constants_exactly():
    g = unary_graph(lambda g, x: layer_norm_written(g, x, eps=1e-3))
    opt = optimize(g)
    (ln,) = opt.nodes
    assert ln.attrs["eps"] == float(np.float32(1e-3)) and ln.attrs["axis"] == 1
    g = Graph()
    q = g.input("q", (2, 5, 8), F32)
    g.output(attention_written(g, q, q, q, scale_form="mul"), "y")
    (att,) = optimize(g).nodes
    assert att.op is Op.ATTENTION and att.attrs["scale"] == 0.125


def test_layer_norm_over_two_trailing_axes():
    g = unary_graph(lambda g, x: layer_norm_written(g, x, axis=(1, 2)), shape=(2, 3, 4))
    opt = optimize(g)
    assert ops(opt) == [Op.LAYER_NORM] and opt.nodes[0].attrs["axis"] == 1
    same_answer(g, opt)


@pytest.mark.parametrize("build,op", [
    (lambda g, x: gelu_tanh(g, x, 0, coef=0.044716), Op.GELU_TANH),
    (lambda g, x: gelu_tanh(g, x, 1, coef=0.04), Op.GELU_TANH),
    (lambda g, x: gelu_erf(g, x, 1, k=0.7072), Op.GELU),
    (lambda g, x: gelu_erf(g, x, 0, k=0.70710), Op.GELU),
    # a norm over a leading axis is not LAYER_NORM's layout (trailing axes)
    (lambda g, x: layer_norm_written(g, x, axis=0), Op.LAYER_NORM),
], ids=["tanh-0.044716", "tanh-0.04", "erf-0.7072", "erf-0.70710", "ln-axis0"])
def test_pattern_not_recognised_when_a_constant_differs(build, op):
    g = unary_graph(build)
    opt = optimize(g)
    assert op not in ops(opt)
    same_answer(g, opt)


@pytest.mark.parametrize("which", ["gelu", "softmax", "layer_norm"])
def test_pattern_not_recognised_when_intermediate_escapes(which):
    g = Graph()
    x = g.input("x", (4, 16), F32)
    if which == "gelu":
        y = gelu_erf(g, x, 0)
        leak = next(n for n in g.nodes if n.op is Op.ERF).outputs[0]
    elif which == "softmax":
        y = softmax_written(g, x)
        leak = next(n for n in g.nodes if n.op is Op.SUM).outputs[0]
    else:
        y = layer_norm_written(g, x)
        leak = next(n for n in g.nodes if n.op is Op.SQRT).outputs[0]
    g.output(y, "y")
    g.output(g.add(Op.MUL, [leak, c(g, 3.0)]), "leak")
    opt = optimize(g)
    assert {Op.GELU, Op.SOFTMAX, Op.LAYER_NORM}.isdisjoint(ops(opt))
    reasons = [r for names, r in opt.notes if leak.producer.name in names]
    assert any("multiple consumers" in r for r in reasons), opt.notes
    same_answer(g, opt)


@pytest.mark.parametrize("scale_form", ["div", "mul", "q", "none"])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_pattern(scale_form, masked):
    g = Graph()
    q, k, v = (g.input(n, (2, 3, 5, 8), F32) for n in "qkv")
    mask = g.input("mask", (1, 1, 5, 5), F32) if masked else None
    g.output(attention_written(g, q, k, v, mask, scale_form), "y")
    opt = optimize(g)
    assert ops(opt) == [Op.ATTENTION] and kernel_count(opt) == 1
    att = opt.nodes[0]
    assert len(att.inputs) == (4 if masked else 3)
    want = {"div": 1 / math.sqrt(8), "mul": 0.125, "q": 1 / math.sqrt(8), "none": 1.0}[scale_form]
    assert att.attrs["scale"] == pytest.approx(want, rel=1e-6)
    same_answer(g, opt)


def test_attention_transposes_and_non_transposes():
    # one transpose doing head split and kᵀ at once (as ONNX export writes it): matched,
    # k becomes the view transpose(k_src, (0, 2, 1, 3))
    g = Graph()
    q = g.input("q", (2, 3, 5, 4), F32)
    ksrc = g.input("k", (2, 5, 3, 4), F32)
    v = g.input("v", (2, 3, 5, 4), F32)
    s = g.add(Op.MATMUL, [q, g.add(Op.TRANSPOSE, [ksrc], {"perm": (0, 2, 3, 1)})])
    g.output(g.add(Op.MATMUL, [softmax_written(g, s), v]), "y")
    opt = optimize(g)
    assert ops(opt) == [Op.TRANSPOSE, Op.ATTENTION] and kernel_count(opt) == 1
    same_answer(g, opt)
    # kᵀ given as an input (no transpose to undo): softmax only
    g = Graph()
    q, kt = g.input("q", (2, 5, 4), F32), g.input("kt", (2, 4, 5), F32)
    v = g.input("v", (2, 5, 5), F32)
    g.output(g.add(Op.MATMUL, [softmax_written(g, g.add(Op.MATMUL, [q, kt])), v]), "y")
    opt = optimize(g)
    assert Op.ATTENTION not in ops(opt) and Op.SOFTMAX in ops(opt)
    same_answer(g, opt)


# ---- epilogue ------------------------------------------------------------------------------

def linear(g, x, k, n, rng, act=None, bias=True):
    w = c(g, rng.standard_normal((k, n)) / math.sqrt(k))
    y = g.add(Op.MATMUL, [x, w])
    if bias:
        y = g.add(Op.ADD, [y, c(g, rng.standard_normal(n))])
    return g.add(act, [y]) if act is not None else y


def test_gelu_of_linear_is_one_gemm():
    rng = np.random.default_rng(1)
    g = Graph()
    x = g.input("x", (5, 6), F32)
    g.output(gelu_erf(g, linear(g, x, 6, 7, rng), 0), "y")
    opt = optimize(g)
    assert ops(opt) == [Op.GEMM] and kernel_count(opt) == 1
    gm = opt.nodes[0]
    assert gm.attrs["activation"] == "gelu" and gm.inputs[2].shape == (7,)
    same_answer(g, opt)


def test_mlp_of_three_layers_is_three_kernels():
    rng = np.random.default_rng(2)
    g = Graph()
    h = g.input("x", (2, 3, 8), F32)        # (batch, seq, hidden): flattened to 2-d GEMMs
    h = linear(g, h, 8, 16, rng, Op.GELU)
    h = linear(g, h, 16, 16, rng, Op.GELU)
    g.output(linear(g, h, 16, 4, rng), "y")
    opt = optimize(g)
    assert kernel_count(opt) == 3 and count(opt, Op.GEMM) == 3
    assert count(opt, Op.RESHAPE) == 2      # flatten once, un-flatten once
    same_answer(g, opt)


@pytest.mark.parametrize("act", [Op.RELU, Op.GELU, Op.GELU_TANH, Op.SILU, Op.SIGMOID, Op.TANH])
def test_epilogue_bias_residual_activation(act):
    rng = np.random.default_rng(3)
    g = Graph()
    x = g.input("x", (4, 6), F32)
    r = g.input("r", (4, 5), F32)
    y = g.add(Op.MUL, [g.add(Op.MATMUL, [x, c(g, rng.standard_normal((6, 5)))]), c(g, 0.5)])
    y = g.add(Op.ADD, [g.add(Op.ADD, [y, c(g, rng.standard_normal((1, 5)))]), r])
    g.output(g.add(act, [y]), "y")          # act(alpha * x@w + b + r)
    opt = optimize(g)
    assert ops(opt) == [Op.GEMM]
    gm = opt.nodes[0]
    assert gm.attrs["alpha"] == 0.5 and gm.attrs["activation"] == act.value
    assert gm.inputs[2].shape == (5,) and gm.inputs[3] is opt.inputs[1]
    same_answer(g, opt)


def test_epilogue_residual_after_activation_is_a_separate_kernel():
    rng = np.random.default_rng(4)
    g = Graph()
    x = g.input("x", (2, 3, 6), F32)
    y = linear(g, x, 6, 6, rng, Op.RELU)
    g.output(g.add(Op.ADD, [y, x]), "y")     # act(x@w+b) + x: the add cannot join
    opt = optimize(g)
    assert kernel_count(opt) == 2 and count(opt, Op.GEMM) == 1
    assert any("after the activation" in r for _, r in opt.notes)
    same_answer(g, opt)


def test_epilogue_bert_residual_3d():
    rng = np.random.default_rng(5)
    g = Graph()
    x = g.input("x", (2, 3, 6), F32)
    g.output(g.add(Op.ADD, [linear(g, x, 6, 6, rng), x]), "y")   # x@w + b + x
    opt = optimize(g)
    assert kernel_count(opt) == 1 and count(opt, Op.GEMM) == 1
    same_answer(g, opt)


def test_epilogue_stops_at_shared_intermediate_and_notes_it():
    rng = np.random.default_rng(6)
    g = Graph()
    x = g.input("x", (4, 6), F32)
    y = linear(g, x, 6, 5, rng)              # x@w + b
    g.output(g.add(Op.RELU, [y]), "a")
    g.output(g.add(Op.TANH, [y]), "b")       # y has two consumers: no activation fused
    opt = optimize(g)
    gm = next(n for n in opt.nodes if n.op is Op.GEMM)
    assert gm.attrs["activation"] is None and len(gm.inputs) == 3
    assert any("multiple consumers" in r for _, r in opt.notes)
    same_answer(g, opt)


def test_epilogue_transposed_weight_input():
    g = Graph()
    x = g.input("x", (4, 6), F32)
    w = g.input("w", (5, 6), F32)
    y = g.add(Op.MATMUL, [x, g.add(Op.TRANSPOSE, [w], {"perm": (1, 0)})])
    g.output(g.add(Op.RELU, [y]), "y")
    opt = optimize(g)
    assert ops(opt) == [Op.GEMM] and opt.nodes[0].attrs["trans_b"]
    same_answer(g, opt)


# ---- elementwise and reduction fusion -----------------------------------------------------

def test_elementwise_chain_is_one_kernel():
    g = Graph()
    x = g.input("x", (4, 8), F32)
    a, b = g.input("a", (8,), F32), c(g, np.linspace(-1, 1, 8))
    t = g.add(Op.TANH, [g.add(Op.ADD, [g.add(Op.MUL, [x, a]), b])])
    g.output(g.add(Op.ADD, [g.add(Op.MUL, [t, g.add(Op.SIGMOID, [x])]), c(g, 2.0)]), "y")
    opt = optimize(g)
    assert ops(opt) == [Op.FUSED_ELEMENTWISE] and kernel_count(opt) == 1
    f = opt.nodes[0]
    at = f.attrs
    assert ("const", 2.0) in at["program"] and at["shape"] == (4, 8) and at["dtype"] == F32
    assert len(f.inputs) == 3               # x, a, b (b is not a scalar: an input)
    assert all(isinstance(i, tuple) for i in at["program"])
    same_answer(g, opt)


def test_fused_group_with_escaping_intermediate_has_two_results():
    g = Graph()
    x = g.input("x", (4, 8), F32)
    t = g.add(Op.TANH, [g.add(Op.MUL, [x, c(g, 3.0)])])
    g.output(g.add(Op.ADD, [t, c(g, 1.0)]), "y")
    g.output(g.add(Op.SUM, [t], {"axis": 1}), "s")     # t escapes to a reduction...
    g.output(g.add(Op.LESS, [t, x]), "m")             # ...and a bool result
    opt = optimize(g)
    f = next(n for n in opt.nodes if n.op is Op.FUSED_ELEMENTWISE)
    assert len(f.outputs) == 3 and kernel_count(opt) == 2
    assert f.attrs["dtypes"] == (np.dtype(F32), np.dtype(F32), np.dtype(bool)) or \
        sorted(str(d) for d in f.attrs["dtypes"]) == ["bool", "float32", "float32"]
    assert any("reduction not fused" in r for _, r in opt.notes)
    same_answer(g, opt)


def test_reduction_fusion():
    g = Graph()
    x = g.input("x", (4, 8), F32)
    bias = g.input("b", (8,), F32)
    sq = g.add(Op.MUL, [g.add(Op.ADD, [x, bias]), g.add(Op.ADD, [x, bias])])
    g.output(g.add(Op.MEAN, [sq], {"axis": -1, "keepdims": True}), "y")
    opt = optimize(g)
    assert ops(opt) == [Op.FUSED_REDUCTION]
    at = opt.nodes[0].attrs
    assert at["reduce"] == "mean" and at["axis"] == (1,) and at["keepdims"]
    assert at["input_shape"] == (4, 8) and at["shape"] == (4, 1)
    same_answer(g, opt)


def test_softmax_and_layernorm_without_patterns_count():
    g = unary_graph(lambda g, x: softmax_written(g, x))
    opt = optimize(g, [p for p in PASSES if p != "patterns"])
    # max | sub,exp | sum | div: exp has two consumers, so it is stored once, not recomputed
    assert kernel_count(opt) == 4
    assert any("lies between them" in r for _, r in opt.notes)
    same_answer(g, opt)
    g = unary_graph(lambda g, x: layer_norm_written(g, x))
    opt = optimize(g, [p for p in PASSES if p != "patterns"])
    assert kernel_count(opt) < 9
    assert any("expensive producer" in r for _, r in opt.notes)
    same_answer(g, opt)


def test_small_cheap_producer_broadcasts_into_the_kernel():
    g = Graph()
    x = g.input("x", (4, 8), F32)
    a = g.input("a", (8,), F32)
    small = g.add(Op.MUL, [a, c(g, 2.0)])              # (8,), cheap: fused, recomputed
    g.output(g.add(Op.TANH, [g.add(Op.ADD, [x, small])]), "y")
    assert kernel_count(optimize(g)) == 1
    g2 = Graph()
    x = g2.input("x", (4, 8), F32)
    a = g2.input("a", (8,), F32)
    small = g2.add(Op.EXP, [a])                         # expensive: its own kernel
    g2.output(g2.add(Op.TANH, [g2.add(Op.ADD, [x, small])]), "y")
    opt = optimize(g2)
    assert kernel_count(opt) == 2 and any("expensive" in r for _, r in opt.notes)
    same_answer(g2, opt)


def test_fusion_notes_dtype_and_layout():
    g = Graph()
    x = g.input("x", (4, 8), F32)
    t = g.add(Op.TRANSPOSE, [g.add(Op.EXP, [x])], {"perm": (1, 0)})
    y = g.add(Op.TANH, [t])
    g.output(g.add(Op.CAST, [g.add(Op.MUL, [y, y])], {"dtype": np.int32}), "y")
    opt = optimize(g)
    reasons = " | ".join(r for _, r in opt.notes)
    assert "layout" in reasons and "dtype" in reasons
    same_answer(g, opt)


# ---- every pass on and off --------------------------------------------------------------

def transformer_block(dtype=F32):
    rng = np.random.default_rng(7)
    g = Graph("block")
    x = g.input("x", (2, 5, 16), dtype)
    mask = g.input("mask", (1, 1, 5, 5), dtype)
    C = lambda v: c(g, v, dtype)  # noqa: E731
    h = layer_norm_written(g, x, C(np.linspace(0.5, 1.5, 16)), C(np.linspace(-.1, .1, 16)))

    def proj(h):
        y = g.add(Op.ADD, [g.add(Op.MATMUL, [h, C(rng.standard_normal((16, 16)) / 4)]),
                           C(rng.standard_normal(16) / 4)])
        return g.add(Op.TRANSPOSE, [g.add(Op.RESHAPE, [y], {"shape": (2, 5, 2, 8)})],
                     {"perm": (0, 2, 1, 3)})
    q, k, v = proj(h), proj(h), proj(h)
    a = attention_written(g, q, k, v, mask, "div", dtype)
    a = g.add(Op.RESHAPE, [g.add(Op.TRANSPOSE, [a], {"perm": (0, 2, 1, 3)})],
              {"shape": (2, 5, 16)})
    x2 = g.add(Op.ADD, [g.add(Op.ADD, [g.add(Op.MATMUL, [a, C(rng.standard_normal((16, 16)) / 4)]),
                                       C(np.zeros(16))]), x])
    h2 = layer_norm_written(g, x2, C(np.ones(16)), C(np.zeros(16)), square="mul")
    ff = gelu_tanh(g, g.add(Op.ADD, [g.add(Op.MATMUL, [h2, C(rng.standard_normal((16, 32)) / 4)]),
                                     C(rng.standard_normal(32) / 4)]), 0)
    out = g.add(Op.ADD, [g.add(Op.MATMUL, [ff, C(rng.standard_normal((32, 16)) / 6)]), x2])
    g.output(out, "out")
    g.output(g.add(Op.SUM, [g.add(Op.MUL, [out, out])], {"axis": (1, 2)}), "energy")
    return g


def test_transformer_block_kernel_count():
    g = transformer_block()
    opt = optimize(g)
    # ln, 3 gemm (q, k, v), attention, gemm+bias+residual, ln, gemm+bias+gelu_tanh,
    # gemm+residual, fused sum(out*out)
    assert kernel_count(opt) == 10, opt
    assert count(opt, Op.ATTENTION) == 1 and count(opt, Op.LAYER_NORM) == 2
    assert count(opt, Op.GEMM) == 6 and count(opt, Op.FUSED_REDUCTION) == 1
    same_answer(g, opt, loose=True)


@pytest.mark.parametrize("name", list(PASSES))
def test_every_pass_on_and_off_same_answer(name):
    g = transformer_block(F64)
    without = optimize(g, [p for p in PASSES if p != name])
    alone = optimize(g, [name])
    none = optimize(g, "none")
    assert kernel_count(none) == kernel_count(g)
    for opt in (without, alone):
        same_answer(g, opt)
        # outputs kept, order topological
        seen = set(map(id, opt.inputs))
        for n in opt.nodes:
            assert all(v is None or v.is_constant or id(v) in seen for v in n.inputs)
            seen |= set(map(id, n.outputs))


def test_optimize_returns_a_copy_and_checks_names():
    g = transformer_block()
    before = repr(g)
    optimize(g)
    assert repr(g) == before
    assert optimize(g, []).nodes and optimize(g, "none").nodes
    with pytest.raises(ValueError, match="passes"):
        optimize(g, ["nope"])


# ---- random DAGs --------------------------------------------------------------------------

B, N = 3, 4
UNARY = [Op.TANH, Op.SIGMOID, Op.RELU, Op.NEG, Op.ABS, Op.GELU, Op.SILU]
BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.MAXIMUM, Op.MINIMUM]


@st.composite
def random_graph(draw):
    g = Graph("random")
    pool = [g.input("x", (B, N), F64), g.input("y", (B, N), F64), g.input("b", (N,), F64),
            g.input("s", (B, 1), F64)]
    pick = lambda: pool[draw(st.integers(0, len(pool) - 1))]  # noqa: E731
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["unary", "binary", "const", "reduce", "where", "matmul",
                                     "softpat", "identity"]))
        a = pick()
        if kind == "unary":
            v = g.add(draw(st.sampled_from(UNARY)), [a])
        elif kind == "binary":
            b = pick()
            v = g.add(draw(st.sampled_from(BINARY)), [a, b])
        elif kind == "const":
            k = draw(st.sampled_from([0.5, 2.0, -3.0, 1.0, 0.0]))
            op = draw(st.sampled_from([Op.ADD, Op.MUL, Op.DIV, Op.SUB]))
            if op is Op.DIV and k == 0.0:
                k = 4.0
            v = g.add(op, [a, c(g, k, F64)])
        elif kind == "reduce":
            op = draw(st.sampled_from([Op.SUM, Op.MEAN, Op.MAX, Op.MIN]))
            axis = -1 if a.ndim == 1 else draw(st.sampled_from([0, 1]))
            v = g.add(op, [a], {"axis": axis, "keepdims": True})
        elif kind == "where":
            b = pick()
            v = g.add(Op.WHERE, [g.add(Op.GREATER, [a, b]), a, b])
        elif kind == "matmul":
            if a.shape[-1] != N:
                continue
            w = c(g, np.linspace(-1, 1, N * N).reshape(N, N), F64)
            v = g.add(Op.MATMUL, [a, w])
            if draw(st.booleans()):
                v = g.add(Op.ADD, [v, c(g, np.linspace(0, 1, N), F64)])
            if draw(st.booleans()):
                v = g.add(draw(st.sampled_from([Op.RELU, Op.TANH])), [v])
        elif kind == "softpat":
            v = g.add(Op.MUL, [a, g.add(Op.SIGMOID, [a])]) if draw(st.booleans()) \
                else softmax_written(g, a, axis=-1)
        else:
            v = g.add(Op.MUL, [g.add(Op.ADD, [a, c(g, 0.0, F64)]), c(g, 1.0, F64)])
        pool.append(v)
    g.output(pool[-1], "out")
    extra = draw(st.integers(4, len(pool) - 1)) if len(pool) > 5 else None
    if extra is not None and pool[extra] is not pool[-1]:
        g.output(pool[extra], "extra")
    return g


@given(random_graph(), st.sampled_from([None] + [[p] for p in PASSES]))
def test_random_dags_same_answer(g, passes):
    opt = optimize(g, passes)
    same_answer(g, opt)
    assert kernel_count(opt) <= kernel_count(g)


def test_two_outputs_never_become_one_value():
    # y = tanh(x) * 1 and z = tanh(x) are both returned: simplify must keep them apart
    g = Graph()
    x = g.input("x", (3, 4), F64)
    t = g.add(Op.TANH, [x])
    g.output(g.add(Op.MUL, [g.add(Op.ADD, [t, c(g, 0.0, F64)]), c(g, 1.0, F64)]), "y")
    g.output(t, "z")
    opt = optimize(g)
    assert [v.output_name for v in opt.outputs] == ["y", "z"]
    same_answer(g, opt)


def test_fused_value_read_before_the_group_ends():
    # tanh feeds a reduction that comes before the group's last (dead) node
    g = Graph()
    x = g.input("x", (3, 4), F64)
    t = g.add(Op.TANH, [x])
    s = g.add(Op.SUM, [t], {"axis": 0, "keepdims": True})
    g.add(Op.TANH, [t])
    u = g.add(Op.MUL, [t, c(g, 2.0, F64)])
    g.output(g.add(Op.TANH, [s]), "y")
    g.output(u, "u")
    opt = optimize(g, ["fuse"])
    same_answer(g, opt)
