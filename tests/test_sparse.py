"""Block-sparse GEMM and pruning.

* ``pyinfer.ops.sparse_gemm`` on every backend (and, for C, every ISA this CPU
  runs) against a dense product in float64 of the matrix the blocks describe:
  m = 1..9 (every register-tile remainder, primes), k and n on and around the
  block edges, block densities 1, 0.5, 0.05 and 0 (all blocks dropped), bias,
  activations, strided and transposed x, outputs poisoned with NaN first.
* ``pyinfer.compress.prune``: the magnitude rule (count, and every kept
  weight/block at least as large as every dropped one) and pruned graphs run
  through ``pyinfer.Interpreter`` against NumPy with the pruned weights, on
  both the block-sparse and the dense kernel.
* bad arguments raise pyinfer errors naming the argument or node.

Tolerance (pyinfer.testing, never loosened): the base float32 tolerance plus
the summation bound ``4 sqrt(k) eps sum|x w|`` (+ |bias|), times 1.2 for the
activations' slope (max |act'| < 1.13).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyinfer
from pyinfer import Graph, Interpreter, Op
from pyinfer.backends import _native
from pyinfer.compress import prune, prune_weights
from pyinfer.errors import DTypeError, ShapeError, UnsupportedError
from pyinfer.ops import sparse_gemm, to_bsr
from pyinfer.testing import assert_close, sum_bound

ACTS = [None, "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"]
# every height the C kernel unrolls (1, 2, 4, 8) at both vector widths, and
# shapes that take its general or portable paths
BLOCKS = [(1, 8), (1, 16), (2, 8), (2, 16), (4, 8), (4, 16), (8, 8), (8, 16), (3, 5), (1, 32)]
EDGES = [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 40]
_erf = np.vectorize(math.erf)


def ref_act(y, act):
    return {None: lambda v: v, "relu": lambda v: np.maximum(v, 0),
            "gelu": lambda v: 0.5 * v * (1 + _erf(v / math.sqrt(2))),
            "gelu_tanh": lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                          * (v + 0.044715 * v ** 3))),
            "silu": lambda v: v / (1 + np.exp(-v)), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
            "tanh": np.tanh}[act](y)


def block_sparse(rng, k, n, block, density, dtype=np.float32):
    """A (k, n) matrix whose (br, bc) blocks are each kept with probability
    ``density`` (kept blocks hold no zeros)."""
    br, bc = block
    keep = rng.random((-(-k // br), -(-n // bc))) < density
    mask = np.repeat(np.repeat(keep, br, 0), bc, 1)[:k, :n]
    w = rng.uniform(0.5, 1.5, (k, n)) * rng.choice([-1, 1], (k, n))
    return np.where(mask, w, 0).astype(dtype)


def expected(x, w, bias, act):
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = x64 @ w64
    s = np.abs(x64) @ np.abs(w64)
    if bias is not None:
        y = y + bias
        s = s + np.abs(bias)
    return ref_act(y, act), 1.2 * sum_bound(x.shape[-1], s, x.dtype)


def check(x, w, block, bias, act, backend, dtype=np.float32):
    W = to_bsr(w, block)
    out = np.full(x.shape[:-1] + (w.shape[1],), np.nan, dtype)
    got = sparse_gemm(x, W, bias, act, out=out, backend=backend)
    assert got is out
    ref, bound = expected(x, w, bias, act)
    assert_close(got, ref, dtype, atol_extra=bound,
                 what=f"{backend} m={x.shape[0]} k,n={w.shape} block={block} act={act}")


@settings(deadline=None, max_examples=60)
@given(m=st.integers(1, 9), k=st.sampled_from(EDGES), n=st.sampled_from(EDGES),
       block=st.sampled_from(BLOCKS), density=st.sampled_from([1.0, 0.5, 0.05, 0.0]),
       act=st.sampled_from(ACTS), has_bias=st.booleans(),
       layout=st.sampled_from(["c", "transposed", "strided"]),
       backend=st.sampled_from(["c", "numpy"]), seed=st.integers(0, 2**16))
def test_sparse_gemm_matches_dense(m, k, n, block, density, act, has_bias, layout, backend,
                                   seed):
    rng = np.random.default_rng(seed)
    w = block_sparse(rng, k, n, block, density)
    x = rng.standard_normal((m, k)).astype(np.float32)
    if layout == "transposed":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    bias = rng.standard_normal(n).astype(np.float32) if has_bias else None
    check(x, w, block, bias, act, backend)


@pytest.mark.parametrize("isa", _native.isas_available())
@pytest.mark.parametrize("block", [(1, 8), (1, 16), (4, 16), (8, 8), (3, 5)])
@pytest.mark.parametrize("k", [37, 40])  # 40: the unrolled block rows; 37 cuts the last one
def test_c_kernel_on_every_isa(isa, block, k):
    rng = np.random.default_rng(isa)
    with _native.force_isa(isa):
        for m in (1, 2, 3, 4, 5, 8, 9):
            for density in (0.5, 0.95):
                w = block_sparse(rng, k, 45, block, 1 - density)
                x = rng.standard_normal((m, k)).astype(np.float32)
                check(x, w, block, rng.standard_normal(45).astype(np.float32), "gelu", "c")


def test_all_blocks_dropped_gives_the_epilogue_of_bias():
    w = np.zeros((20, 24), np.float32)
    W = to_bsr(w, (4, 16))
    assert W.nnzb == 0 and W.density == 0.0
    bias = np.linspace(-2, 2, 24).astype(np.float32)
    x = np.ones((3, 20), np.float32)
    for backend in ("c", "numpy"):
        out = np.full((3, 24), np.nan, np.float32)
        sparse_gemm(x, W, bias, "relu", out=out, backend=backend)
        assert np.array_equal(out, np.broadcast_to(np.maximum(bias, 0), (3, 24)))
        assert np.array_equal(sparse_gemm(x, W, backend=backend), np.zeros((3, 24)))


def test_large_layer_splits_across_threads():
    rng = np.random.default_rng(7)
    w = block_sparse(rng, 256, 520, (1, 16), 0.2)
    x = rng.standard_normal((8, 256)).astype(np.float32)
    with _Threads(2):
        check(x, w, (1, 16), rng.standard_normal(520).astype(np.float32), "silu", "c")


class _Threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = pyinfer.get_num_threads()
        pyinfer.set_num_threads(self.n)

    def __exit__(self, *exc):
        pyinfer.set_num_threads(self.old)


def test_float64_runs_on_the_reference_and_c_says_why_not():
    rng = np.random.default_rng(3)
    w = block_sparse(rng, 17, 33, (1, 8), 0.5, np.float64)
    x = rng.standard_normal((5, 17))
    bias = rng.standard_normal(33)
    check(x, w, (1, 8), bias, "tanh", None, np.float64)
    with pytest.raises(UnsupportedError, match="float32 only"):
        sparse_gemm(x, to_bsr(w, (1, 8)), backend="c")


def test_batched_x_and_non_contiguous_out():
    rng = np.random.default_rng(5)
    w = block_sparse(rng, 16, 24, (2, 8), 0.5)
    W = to_bsr(w, (2, 8))
    x = rng.standard_normal((2, 3, 16)).astype(np.float32)
    ref = x.astype(np.float64) @ w
    assert_close(sparse_gemm(x, W), ref, np.float32, atol_extra=1e-5)
    big = np.full((2, 3, 48), np.nan, np.float32)
    out = big[:, :, ::2]
    assert sparse_gemm(x, W, out=out) is out
    assert_close(out, ref, np.float32, atol_extra=1e-5)
    assert np.isnan(big[:, :, 1::2]).all()


@pytest.mark.parametrize("form", ["strided", "one", "scalar", "float64", "list"])
def test_bias_forms_broadcast_and_promote(form):
    rng = np.random.default_rng(12)
    w = block_sparse(rng, 24, 40, (1, 16), 0.5)
    x = rng.standard_normal((3, 24)).astype(np.float32)
    full = rng.standard_normal(80).astype(np.float32)
    bias = {"strided": full[::2], "one": full[:1], "scalar": full[0],
            "float64": full[:40].astype(np.float64), "list": full[:40].tolist()}[form]
    got = sparse_gemm(x, to_bsr(w, (1, 16)), bias)
    dtype = np.float64 if form in ("float64", "list") else np.float32  # a list is float64
    assert got.dtype == dtype
    ref = x.astype(np.float64) @ w + np.broadcast_to(np.asarray(bias, np.float64), (40,))
    assert_close(got, ref, dtype, atol_extra=sum_bound(24, np.abs(x) @ np.abs(w), np.float32)
                 + 1e-6)


def test_to_bsr_round_trips_and_stores_only_nonzero_blocks():
    rng = np.random.default_rng(11)
    for k, n, block in [(7, 13, (2, 4)), (16, 32, (1, 8)), (5, 3, (4, 16)), (1, 1, (1, 1))]:
        w = block_sparse(rng, k, n, block, 0.5)
        W = to_bsr(w, block)
        assert np.array_equal(W.to_dense(), w)
        assert all((W.data[e] != 0).any() for e in range(W.nnzb))
        assert W.indptr[0] == 0 and W.indptr[-1] == W.nnzb and np.all(np.diff(W.indptr) >= 0)


@pytest.mark.parametrize("call, error, words", [
    (lambda: to_bsr(np.ones((4, 4), np.int32)), DTypeError, "'w'"),
    (lambda: to_bsr(np.ones(4, np.float32)), ShapeError, "'w'"),
    (lambda: to_bsr(np.ones((4, 4), np.float32), (0, 8)), ShapeError, "'block'"),
    (lambda: to_bsr(np.ones((4, 4), np.float32), (1, 8.0)), ShapeError, "'block'"),
    (lambda: sparse_gemm(np.ones((2, 5), np.float32), to_bsr(np.ones((4, 4), np.float32))),
     ShapeError, "'x'"),
    (lambda: sparse_gemm(np.ones((2, 4), np.float32), np.ones((4, 4), np.float32)),
     ShapeError, "'w_bsr'"),
    (lambda: sparse_gemm(np.ones((2, 4), np.float32), to_bsr(np.ones((4, 4), np.float32)),
                         bias=np.ones(3, np.float32)), ShapeError, "'bias'"),
    (lambda: sparse_gemm(np.ones((2, 4), np.float32), to_bsr(np.ones((4, 4), np.float32)),
                         activation="swish"), ShapeError, "'activation'"),
    (lambda: sparse_gemm(np.ones((2, 4), np.int64), to_bsr(np.ones((4, 4), np.float32))),
     DTypeError, "'x'"),
])
def test_bad_arguments_name_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ---- pruning --------------------------------------------------------------------------

def test_unstructured_rule_drops_the_smallest():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((30, 50)).astype(np.float32)
    for s in (0.0, 0.5, 0.9):
        p = prune_weights(w, s)
        dropped = p == 0
        assert dropped.sum() == round(s * w.size)
        if 0 < dropped.sum():
            assert np.abs(w[~dropped]).min() >= np.abs(w[dropped]).max()
        assert np.array_equal(p[~dropped], w[~dropped])


@pytest.mark.parametrize("block", [(1, 16), (4, 16), (3, 5)])
def test_block_rule_drops_whole_blocks_of_smallest_norm(block):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((37, 45)).astype(np.float32)
    br, bc = block
    kb, nb = -(-37 // br), -(-45 // bc)
    p = prune_weights(w, 0.8, "block", block)
    norms = np.array([[np.linalg.norm(w[i * br:(i + 1) * br, j * bc:(j + 1) * bc])
                       for j in range(nb)] for i in range(kb)])
    kept = np.array([[(p[i * br:(i + 1) * br, j * bc:(j + 1) * bc] != 0).any()
                      for j in range(nb)] for i in range(kb)])
    assert (~kept).sum() == round(0.8 * kb * nb)
    assert norms[kept].min() >= norms[~kept].max()
    assert np.array_equal(p != 0, np.repeat(np.repeat(kept, br, 0), bc, 1)[:37, :45])


def mlp(rng, batch=5, k=48, h=80, n=24):
    g = Graph("mlp")
    x = g.input("x", (batch, k), np.float32)
    w1 = rng.standard_normal((k, h)).astype(np.float32)
    w2 = rng.standard_normal((n, h)).astype(np.float32)  # Gemm with trans_b
    b2 = rng.standard_normal(n).astype(np.float32)
    hid = g.add(Op.MATMUL, [x, g.constant(w1, "w1")], name="fc1")
    hid = g.add(Op.RELU, [hid], name="act")
    y = g.add(Op.GEMM, [hid, g.constant(w2, "w2"), g.constant(b2, "b2")],
              {"trans_b": True, "alpha": 0.5}, name="fc2")
    g.output(y)
    return g, (w1, w2, b2)


@pytest.mark.parametrize("structure, block", [("unstructured", None), ("block", (1, 16)),
                                              ("block", (4, 8))])
@pytest.mark.parametrize("kernel", ["auto", "sparse", "dense"])
def test_pruned_graph_equals_numpy_with_pruned_weights(structure, block, kernel):
    rng = np.random.default_rng(4)
    g, (w1, w2, b2) = mlp(rng)
    p = prune(g, 0.75, structure, block)
    assert [n.op for n in g.nodes] == [Op.MATMUL, Op.RELU, Op.GEMM]  # input graph unchanged
    assert [n.op for n in p.nodes] == [Op.SPARSE_GEMM, Op.RELU, Op.SPARSE_GEMM]
    for node in p.nodes:
        if node.op is Op.SPARSE_GEMM:
            node.attrs["kernel"] = kernel
    blk = block or (1, 8)
    pw1 = prune_weights(w1, 0.75, structure, blk)
    pw2 = prune_weights((w2.T * np.float32(0.5)), 0.75, structure, blk)
    x = rng.standard_normal((5, 48)).astype(np.float32)
    hid = np.maximum(x.astype(np.float64) @ pw1, 0)
    ref = hid @ pw2 + b2
    it = Interpreter(p)
    (got,) = it.run([x])
    bound = sum_bound(80, np.abs(hid) @ np.abs(pw2) + np.abs(b2), np.float32) \
        + sum_bound(48, (np.abs(x) @ np.abs(pw1)) @ np.abs(pw2), np.float32)
    assert_close(got, ref, np.float32, atol_extra=bound, what=f"{structure} {kernel}")
    text = it.explain()
    if kernel == "auto":
        assert "block-sparse c.sparse_gemm" in text and " us vs dense " in text
    else:
        assert f"kernel={kernel!r} pinned" in text
        assert ("c.sparse_gemm <- sparse_gemm 'fc1'" in text) == (kernel == "sparse")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", ["sparse", "dense"])
def test_pruned_matmul_takes_the_following_bias_add_and_activation(dtype, kernel):
    """ONNX exports a Linear as MatMul then Add: the pruned layer runs it (and the
    ReLU after it, here a graph output) as one kernel, named as the layer was."""
    rng = np.random.default_rng(11)
    g = Graph("linear")
    x = g.input("x", (3, 40), dtype)
    w = rng.standard_normal((40, 48)).astype(dtype)
    b = rng.standard_normal(48).astype(dtype)
    y = g.add(Op.MATMUL, [x, g.constant(w, "w")], name="fc")
    y = g.add(Op.ADD, [y, g.constant(b, "b")], name="bias")
    g.output(g.add(Op.RELU, [y], name="act"))
    p = prune(g, 0.5, "block", (1, 16))
    for node in p.nodes:
        if node.op is Op.SPARSE_GEMM:
            node.attrs["kernel"] = kernel
    it = Interpreter(p)
    text = it.explain()
    assert "1 kernels" in text and "'fc'" in text and "fused ['fc', 'bias', 'act']" in text
    xv = rng.standard_normal((3, 40)).astype(dtype)
    out = np.full((3, 48), np.nan, dtype)
    it.run([xv], outputs=[out])
    pw = prune_weights(w, 0.5, "block", (1, 16)).astype(np.float64)
    ref = np.maximum(xv.astype(np.float64) @ pw + b, 0)
    bound = sum_bound(40, np.abs(xv) @ np.abs(pw) + np.abs(b), dtype)
    assert_close(out, ref, dtype, atol_extra=bound, what=f"{kernel} {np.dtype(dtype)}")


def test_sparse_gemm_node_runs_batched_inputs():
    rng = np.random.default_rng(6)
    g = Graph("b")
    x = g.input("x", (2, 3, 32), np.float32)
    w = prune_weights(rng.standard_normal((32, 40)).astype(np.float32), 0.9, "block", (1, 8))
    y = g.add(Op.SPARSE_GEMM, [x, g.constant(w, "w"), None],
              {"block": (1, 8), "activation": "relu", "kernel": "sparse"})
    g.output(y)
    xv = rng.standard_normal((2, 3, 32)).astype(np.float32)
    (got,) = Interpreter(g).run([xv])
    assert_close(got, np.maximum(xv.astype(np.float64) @ w, 0), np.float32, atol_extra=1e-5)


@pytest.mark.parametrize("kwargs, words", [
    ({"sparsity": 1.0}, "'sparsity'"), ({"sparsity": -0.1}, "'sparsity'"),
    ({"sparsity": float("nan")}, "'sparsity'"), ({"sparsity": True}, "'sparsity'"),
    ({"sparsity": "0.5"}, "'sparsity'"),
    ({"sparsity": 0.5, "structure": "rows"}, "'structure'"),
    ({"sparsity": 0.5, "structure": "block", "block": (2,)}, "'block'"),
    ({"sparsity": 0.5, "nodes": ["nope"]}, "'nodes'.*nope"),
])
def test_prune_rejects_bad_arguments(kwargs, words):
    g, _ = mlp(np.random.default_rng(0))
    with pytest.raises(ShapeError, match=words):
        prune(g, **kwargs)


def test_sparse_gemm_node_errors_name_the_node():
    g = Graph("e")
    x = g.input("x", (2, 8), np.float32)
    w = g.input("w", (8, 4), np.float32)
    with pytest.raises(ShapeError, match="node 'fc'.*'w' expected a 2-d constant"):
        g.add(Op.SPARSE_GEMM, [x, w, None], name="fc")
    with pytest.raises(ShapeError, match="node 'fc2'.*'x' expected shape"):
        g.add(Op.SPARSE_GEMM, [x, g.constant(np.ones((9, 4), np.float32)), None], name="fc2")
    with pytest.raises(ShapeError, match="node 'fc3'.*'block'"):
        g.add(Op.SPARSE_GEMM, [x, g.constant(np.ones((8, 4), np.float32))], {"block": (0, 8)},
              name="fc3")
