"""The CNN passes (pyinfer/graph/passes/cnn.py) and Op.CONV's lowering.

Each folded graph must give the unfolded graph's answer: the reference is the
same Graph run with passes="none" on the numpy backend (node by node, float32
like the graph), the optimized one through pyinfer.Interpreter on the C kernels.
Tolerance: both sides round, so twice the conv's dot-product bound
(tests/test_conv.py) over |x| |w| scaled by the largest BN factor, plus the
BN/add/activation steps of the reference (a few eps of the result, in the +1
of the magnitude); the BN-folded weights round once more (w * s in float32),
one more term per product in the sum bound.
"""
from __future__ import annotations

import numpy as np
import pytest

import pyinfer
from pyinfer.backends import _native
from pyinfer.backends.numpy_conv import conv2d_ref
from pyinfer.graph.ir import Graph, Op
from pyinfer.testing import assert_close, sum_bound

needs_c = pytest.mark.skipif(_native.lib is None, reason="C extension not built")


def _run_both(g, inputs, dtype=np.float32):
    opt = pyinfer.Interpreter(g)
    plain = pyinfer.Interpreter(g, passes="none", backend="numpy")
    return opt, opt.run(inputs), plain.run(inputs)


def _conv_bound(x, w, scale=1.0):
    """Per-element rounding bound of a conv of x with w (times a weight scale)."""
    mag = conv2d_ref(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64) * scale,
                     pads=(1, 1, 1, 1))
    return 2 * 1.2 * sum_bound(w[0].size + 3, mag + 1.0, np.float32)


def _graph_conv_bn_add_relu(rng, *, with_bias=True, act_op=Op.RELU):
    g = Graph("block")
    x = g.input("x", (2, 6, 9, 7), np.float32)
    r = g.input("r", (2, 10, 9, 7), np.float32)
    w = rng.standard_normal((10, 6, 3, 3)).astype(np.float32)
    b = g.constant(rng.standard_normal(10).astype(np.float32)) if with_bias else None
    y = g.add(Op.CONV, [x, g.constant(w), b], {"pads": (1, 1, 1, 1)})
    params = [rng.random(10) + 0.5, rng.standard_normal(10), rng.standard_normal(10),
              rng.random(10) + 0.5]
    y = g.add(Op.BATCH_NORM, [y] + [g.constant(p.astype(np.float32)) for p in params],
              {"eps": 1e-3})
    y = g.add(Op.ADD, [r, y])
    if act_op is not None:
        y = g.add(act_op, [y])
    g.output(y, "y")
    scale = np.abs(params[0]) / np.sqrt(params[3] + 1e-3)
    return g, w, scale.max()


@needs_c
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("act_op", [Op.RELU, Op.SILU, Op.SIGMOID, None])
def test_conv_bn_add_act_is_one_kernel(with_bias, act_op, rng):
    g, w, scale = _graph_conv_bn_add_relu(rng, with_bias=with_bias, act_op=act_op)
    x = rng.standard_normal((2, 6, 9, 7)).astype(np.float32)
    r = rng.standard_normal((2, 10, 9, 7)).astype(np.float32)
    opt, got, want = _run_both(g, [x, r])
    assert opt.plan.kernel_count == 1
    optimized = pyinfer.graph.passes.optimize(g)
    assert [n.op for n in optimized.nodes] == [Op.CONV]
    conv = optimized.nodes[0]
    assert conv.inputs[3] is optimized.inputs[1]  # r became the residual
    assert conv.attrs["activation"] == {Op.RELU: "relu", Op.SILU: "silu",
                                        Op.SIGMOID: "sigmoid", None: None}[act_op]
    assert_close(got[0], want[0], np.float32, atol_extra=_conv_bound(x, w, scale) * (1 + scale))


@needs_c
def test_clip_and_channel_constant_fold(rng):
    """conv + c[K,1,1] -> bias; max(., 0) then min(., 6) -> clip 0..6 (ReLU6)."""
    g = Graph()
    x = g.input("x", (1, 4, 8, 8), np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    y = g.add(Op.CONV, [x, g.constant(w)], {"pads": (1, 1, 1, 1)})
    y = g.add(Op.ADD, [y, g.constant(rng.standard_normal((5, 1, 1)).astype(np.float32))])
    y = g.add(Op.MAXIMUM, [y, g.constant(np.float32(0.0))])
    y = g.add(Op.MINIMUM, [g.constant(np.float32(0.5)), y])
    g.output(y)
    optimized = pyinfer.graph.passes.optimize(g)
    assert [n.op for n in optimized.nodes] == [Op.CONV]
    at = optimized.nodes[0].attrs
    assert (at["activation"], at["clip_min"], at["clip_max"]) == ("clip", 0.0, 0.5)
    assert optimized.nodes[0].inputs[2] is not None  # the constant became the bias
    xv = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    _, got, want = _run_both(g, [xv])
    assert_close(got[0], want[0], np.float32, atol_extra=_conv_bound(xv, w))


def test_no_fusion_when_the_conv_output_is_read_twice(rng):
    g = Graph()
    x = g.input("x", (1, 3, 6, 6), np.float32)
    y = g.add(Op.CONV, [x, g.constant(rng.standard_normal((3, 3, 1, 1)).astype(np.float32))])
    z = g.add(Op.RELU, [y])
    g.output(g.add(Op.ADD, [z, y]))
    optimized = pyinfer.graph.passes.optimize(g)
    assert optimized.nodes[0].op is Op.CONV and optimized.nodes[0].attrs["activation"] is None
    assert any("cnn: stopped" in reason for _, reason in optimized.notes)


def test_residual_computed_from_the_conv_is_not_fused(rng):
    """conv(x) + relu(conv(x)) cannot make relu(conv) the conv's own residual."""
    g = Graph()
    x = g.input("x", (1, 3, 6, 6), np.float32)
    y = g.add(Op.CONV, [x, g.constant(rng.standard_normal((3, 3, 1, 1)).astype(np.float32))])
    y2 = g.add(Op.CONV, [y, g.constant(rng.standard_normal((3, 3, 1, 1)).astype(np.float32))])
    g.output(g.add(Op.ADD, [y2, y]))
    xv = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    _, got, want = _run_both(g, [xv])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    optimized = pyinfer.graph.passes.optimize(g)
    # The second conv takes y as its residual; the first one stays plain.
    assert optimized.nodes[1].inputs[3] is optimized.nodes[0].outputs[0]


def test_bn_not_folded_with_runtime_weights(rng):
    g = Graph()
    x = g.input("x", (1, 2, 5, 5), np.float32)
    w = g.input("w", (2, 2, 3, 3), np.float32)
    y = g.add(Op.CONV, [x, w], {"pads": (1, 1, 1, 1)})
    ones = g.constant(np.ones(2, np.float32))
    zeros = g.constant(np.zeros(2, np.float32))
    g.output(g.add(Op.BATCH_NORM, [y, ones, zeros, zeros, ones]))
    optimized = pyinfer.graph.passes.optimize(g)
    assert [n.op for n in optimized.nodes] == [Op.CONV, Op.BATCH_NORM]
    xv = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    wv = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    _, got, want = _run_both(g, [xv, wv])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)


@needs_c
def test_weights_packed_at_plan_time_only(rng, monkeypatch):
    from pyinfer.backends import c_conv
    g, _, _ = _graph_conv_bn_add_relu(rng)
    packs = []
    original = c_conv.ConvKernel._pack
    monkeypatch.setattr(c_conv.ConvKernel, "_pack",
                        lambda self: (packs.append(1), original(self))[1])
    with c_conv.force_path("implicit"):
        interp = pyinfer.Interpreter(g)
    assert len(packs) == 1
    x = rng.standard_normal((2, 6, 9, 7)).astype(np.float32)
    r = rng.standard_normal((2, 10, 9, 7)).astype(np.float32)
    first = interp.run([x, r])[0]
    second = interp.run([x, r])[0]
    assert len(packs) == 1  # run never repacks
    np.testing.assert_array_equal(first, second)
    assert "c.conv2d[implicit]" in interp.explain()


def test_shape_rule_resolves_auto_pad():
    g = Graph()
    x = g.input("x", (1, 3, 10, 9), np.float32)
    w = g.constant(np.zeros((4, 3, 3, 3), np.float32))
    y = g.add(Op.CONV, [x, w], {"strides": (2, 2), "auto_pad": "SAME_LOWER"})
    assert y.shape == (1, 4, 5, 5)
    assert y.producer.attrs["auto_pad"] == "NOTSET"
    assert y.producer.attrs["pads"] == (1, 1, 0, 1)
    g2 = Graph()
    xs = g2.input("x", (1, 3, "h", "w"), np.float32)
    ys = g2.add(Op.CONV, [xs, g2.constant(np.zeros((4, 3, 3, 3), np.float32))],
                {"auto_pad": "SAME_UPPER"})
    assert ys.producer.attrs["auto_pad"] == "SAME_UPPER" and isinstance(ys.shape[2], str)


@pytest.mark.parametrize("attrs,match", [
    ({"group": 2}, "groups"),
    ({"strides": (0, 1)}, "strides"),
    ({"dilations": (1, -2)}, "dilations"),
    ({"auto_pad": "SAME"}, "auto_pad"),
])
def test_shape_rule_errors_name_the_node(attrs, match):
    g = Graph()
    x = g.input("x", (1, 3, 8, 8), np.float32)
    w = g.constant(np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(pyinfer.ShapeError, match=match):
        g.add(Op.CONV, [x, w], attrs, name="bad_conv")


def test_layout_roundtrip_reference(rng):
    from pyinfer.graph.families.conv import from_nchwc, to_nchwc
    x = rng.standard_normal((2, 11, 3, 4))
    blocked = to_nchwc(x, 8)
    assert blocked.shape == (2, 2, 3, 4, 8)
    assert np.all(blocked[:, 1, :, :, 3:] == 0)
    np.testing.assert_array_equal(blocked[1, 1, 2, 3, 2], x[1, 10, 2, 3])
    np.testing.assert_array_equal(from_nchwc(blocked, 11), x)


@needs_c
def test_nchwc_chain_of_three_convs_converts_layout_twice(rng, monkeypatch):
    from pyinfer.backends import c_conv
    from pyinfer.graph.passes import cnn
    if c_conv.nchwc_reason((1, 8, 8, 8), (8, 8, 3, 3), 1, np.float32) is not None:
        pytest.skip("the NCHWc kernel needs AVX2")
    monkeypatch.setattr(cnn, "NCHWC_CHAINS", True)
    g = Graph()
    x = g.input("x", (2, 5, 11, 9), np.float32)
    y = x
    weights = []
    for i, (k, stride) in enumerate([(12, 1), (9, 2), (16, 1)]):
        w = rng.standard_normal((k, y.shape[1], 3, 3)).astype(np.float32)
        weights.append(w)
        y = g.add(Op.CONV, [y, g.constant(w), g.constant(rng.standard_normal(k).astype(
            np.float32))], {"pads": (1, 1, 1, 1), "strides": (stride, stride)})
        y = g.add(Op.RELU, [y])
    g.output(y)
    optimized = pyinfer.graph.passes.optimize(g)
    ops = [n.op for n in optimized.nodes]
    assert ops == [Op.LAYOUT, Op.CONV, Op.CONV, Op.CONV, Op.LAYOUT]
    assert all(n.attrs["layout"] == "NCHWc" for n in optimized.nodes if n.op is Op.CONV)
    interp = pyinfer.Interpreter(g)
    assert interp.explain().count("layout[") == 2
    assert interp.explain().count("c.conv2d[nchwc]") == 3
    xv = rng.standard_normal((2, 5, 11, 9)).astype(np.float32)
    got = interp.run([xv])[0]
    want = pyinfer.Interpreter(g, passes="none", backend="numpy").run([xv])[0]
    # Three convs in a row: each one's rounding is carried (relu is 1-Lipschitz)
    # through the next ones; the bound is checked against the float64 magnitude.
    mag = np.abs(xv).astype(np.float64)
    for w in weights:
        mag = conv2d_ref(mag, np.abs(w).astype(np.float64), pads=(1, 1, 1, 1),
                         stride=(2, 2) if w is weights[1] else (1, 1)) + 3.0
    assert_close(got, want, np.float32,
                 atol_extra=3 * 2 * 1.2 * sum_bound(16 * 9 + 3, mag, np.float32))
