"""Low-rank factorization (pyinfer.compress.low_rank).

* the rank rule: for ``energy`` the smallest r whose share of sum(s^2) is at
  least ``energy``, checked against an SVD computed here, minimality included;
  for ``rank`` exactly that rank;
* factored graphs, run through ``pyinfer.Interpreter``, equal the NumPy
  product ``(x @ U) @ V`` of the factors the graph holds, and U @ V is W's
  truncation with the reported relative error;
* layers where factoring saves nothing are left alone and say so;
* bad energy/rank arguments raise ShapeError naming the argument (and node).

Tolerance: float32 base tolerance plus the summation bound of each product.
"""
from __future__ import annotations

import numpy as np
import pytest

from pyinfer import Graph, Interpreter, Op
from pyinfer.compress import low_rank
from pyinfer.errors import ShapeError
from pyinfer.testing import assert_close, sum_bound


def low_rank_weight(rng, k, n, r, noise=1e-3):
    """A (k, n) float32 matrix of rank r plus small noise, singular values decaying."""
    a = rng.standard_normal((k, r)) * np.linspace(3, 1, r)
    return (a @ rng.standard_normal((r, n)) + noise * rng.standard_normal((k, n))).astype(np.float32)


def graph(rng, k=64, h=96, n=40, r=6, batch=3):
    g = Graph("lr")
    x = g.input("x", (batch, k), np.float32)
    w1 = low_rank_weight(rng, k, h, r)
    w2 = low_rank_weight(rng, n, h, r)  # stored (n, h): Gemm trans_b
    b2 = rng.standard_normal(n).astype(np.float32)
    hid = g.add(Op.MATMUL, [x, g.constant(w1, "w1")], name="fc1")
    y = g.add(Op.GEMM, [hid, g.constant(w2, "w2"), g.constant(b2, "b2")],
              {"trans_b": True, "alpha": 2.0, "activation": "tanh"}, name="fc2")
    g.output(y)
    return g, (w1, w2.T * np.float32(2.0), b2)


def share(w):
    s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    return s, np.cumsum(s ** 2) / np.sum(s ** 2)


def factors(g, name):
    """(U, V) constants of the two MatMul/Gemm nodes that replaced ``name``."""
    first = next(n for n in g.nodes if n.name == f"{name}.U")
    second = next(n for n in g.nodes if n.name == name)
    assert second.inputs[0] is first.outputs[0]
    return first.inputs[1].data, second.inputs[1].data


@pytest.mark.parametrize("energy", [0.5, 0.9, 0.999])
def test_energy_picks_the_smallest_rank_that_keeps_it(energy):
    rng = np.random.default_rng(1)
    g, (w1, w2, _) = graph(rng)
    out, report = low_rank(g, energy=energy, measure=False)
    for name, w in (("fc1", w1), ("fc2", w2)):
        s, sh = share(w)
        layer = report[name]
        r = layer.rank
        assert sh[r - 1] >= energy and (r == 1 or sh[r - 2] < energy)
        assert layer.factored
        u, v = factors(out, name)
        assert u.shape == (w.shape[0], r) and v.shape == (r, w.shape[1])
        err = np.linalg.norm(w.astype(np.float64) - u.astype(np.float64) @ v) / np.linalg.norm(w)
        assert layer.rel_error == pytest.approx(np.sqrt(np.sum(s[r:] ** 2) / np.sum(s ** 2)))
        assert err == pytest.approx(layer.rel_error, rel=1e-3, abs=1e-6)
        assert layer.params_after == r * (w.shape[0] + w.shape[1])


@pytest.mark.parametrize("rank", [1, 4, 20])
def test_factored_graph_equals_numpy_product_of_u_and_v(rank):
    rng = np.random.default_rng(2)
    g, (_, _, b2) = graph(rng)
    out, report = low_rank(g, rank=rank, measure=False)
    assert [n.op for n in out.nodes] == [Op.MATMUL, Op.MATMUL, Op.MATMUL, Op.GEMM]
    assert [n.op for n in g.nodes] == [Op.MATMUL, Op.GEMM]  # input graph unchanged
    assert all(layer.rank == rank for layer in report)
    u1, v1 = factors(out, "fc1")
    u2, v2 = factors(out, "fc2")
    x = rng.standard_normal((3, 64)).astype(np.float32)
    (got,) = Interpreter(out).run([x])
    f = [a.astype(np.float64) for a in (x, u1, v1, u2, v2)]
    ref, bound = f[0], np.zeros((3, 64))
    for a, inner in zip(f[1:], (64, rank, 96, rank)):
        # rounding of this product plus the earlier error carried through it
        bound = bound @ np.abs(a) + sum_bound(inner, np.abs(ref) @ np.abs(a), np.float32)
        ref = ref @ a
    assert_close(got, np.tanh(ref + b2), np.float32, atol_extra=bound)


def test_layers_without_a_saving_are_kept_and_reported():
    rng = np.random.default_rng(3)
    g = Graph("sq")
    x = g.input("x", (2, 8), np.float32)
    w = rng.standard_normal((8, 8)).astype(np.float32)
    g.output(g.add(Op.MATMUL, [x, g.constant(w, "w")], name="fc"))
    out, report = low_rank(g, rank=4, measure=False)  # 8*4 + 4*8 == 64: no saving
    assert [n.op for n in out.nodes] == [Op.MATMUL]
    assert np.array_equal(out.nodes[0].inputs[1].data, w)
    assert not report["fc"].factored and "no saving" in report["fc"].reason
    assert "kept: no saving" in str(report)


def test_report_times_the_dense_and_factored_layer():
    rng = np.random.default_rng(4)
    g, _ = graph(rng)
    _, report = low_rank(g, rank=4)
    for layer in report:
        assert layer.m == 3 and layer.dense_us > 0 and layer.factored_us > 0
        assert layer.speedup == pytest.approx(layer.dense_us / layer.factored_us)
    text = str(report)
    assert "fc1" in text and "fc2" in text and "speedup" in text


@pytest.mark.parametrize("kwargs, words", [
    ({"energy": 0.0}, "'energy'"), ({"energy": 1.5}, "'energy'"), ({"energy": -0.2}, "'energy'"),
    ({"energy": float("nan")}, "'energy'"), ({"energy": True}, "'energy'"),
    ({"rank": 0}, "'rank'"), ({"rank": 2.5}, "'rank'"),
    ({}, "exactly one"), ({"energy": 0.5, "rank": 3}, "exactly one"),
    ({"rank": 41}, "node 'fc2'.*'rank' expected at most min\\(k, n\\) = 40.*received 41"),
])
def test_bad_arguments_raise_naming_them(kwargs, words):
    g, _ = graph(np.random.default_rng(0))
    with pytest.raises(ShapeError, match=words):
        low_rank(g, measure=False, **kwargs)
