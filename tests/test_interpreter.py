"""The Interpreter: plans equal the reference evaluation, memory is planned
and reused, run allocates nothing given outputs, is thread-safe and
reproducible, and rejects bad inputs by name."""
import threading
import tracemalloc

import numpy as np
import pytest

import pyinfer
from pyinfer.errors import DTypeError, ShapeError
from pyinfer.graph.ir import Graph, Op
from pyinfer.graph.reference import evaluate
from pyinfer.runtime.interpreter import Interpreter
from pyinfer.testing import assert_close, sum_bound


def mlp(layers=3, width=32, batch=4, dtype=np.float32, seed=0, batch_dim=None):
    rng = np.random.default_rng(seed)
    g = Graph("mlp")
    x = g.input("x", (batch_dim or batch, width), dtype)
    h = x
    for i in range(layers):
        w = g.constant((rng.standard_normal((width, width)) / np.sqrt(width)).astype(dtype), f"w{i}")
        b = g.constant(rng.standard_normal(width).astype(dtype), f"b{i}")
        h = g.add(Op.GELU, [g.add(Op.ADD, [g.add(Op.MATMUL, [h, w]), b])])
    g.output(h, "y")
    return g


def _close(got, g, xs, dtype=np.float32):
    (expected,) = evaluate(g, [x.astype(np.float64) for x in xs])
    width = g.inputs[0].shape[1]
    # Each layer sums `width` products of unit-scale terms; allow that per layer.
    assert_close(got, expected, dtype, atol_extra=8 * sum_bound(width, width, dtype))


@pytest.mark.parametrize("backend", ["auto", "numpy", "c", "numba"])
@pytest.mark.parametrize("passes", [None, "none"])
def test_mlp_matches_reference(backend, passes):
    g = mlp()
    it = Interpreter(g, backend=backend, passes=passes)
    x = np.random.default_rng(1).standard_normal((4, 32)).astype(np.float32)
    (y,) = it.run([x])
    _close(y, g, [x])
    (y2,) = it.run({"x": x})
    np.testing.assert_array_equal(y, y2)


def test_inputs_and_outputs_are_described():
    it = Interpreter(mlp())
    assert [(i.name, i.shape, i.dtype) for i in it.inputs] == [("x", (4, 32), np.float32)]
    assert [(o.name, o.shape) for o in it.outputs] == [("y", (4, 32))]


def test_arena_reuses_memory_on_a_deep_mlp():
    it = Interpreter(mlp(layers=12, width=64, batch=8), passes="none")
    plan = it.plan
    assert plan.naive_bytes > 0
    assert plan.arena_bytes <= 0.3 * plan.naive_bytes, (plan.arena_bytes, plan.naive_bytes)


def test_run_with_outputs_allocates_nothing():
    it = Interpreter(mlp(width=256, batch=16), backend="numpy", passes="none")
    x = np.ones((16, 256), np.float32)
    out = [np.empty((16, 256), np.float32)]
    it.run([x], outputs=out)  # warm: first-run effects (lazy imports, pools)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        it.run([x], outputs=out)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    # Python bookkeeping (an env dict, argument lists) stays tiny; an array of
    # this graph's intermediates would be 16 KiB.
    assert grown < 8 * 1024, grown


def test_outputs_argument_is_written_and_checked():
    it = Interpreter(mlp())
    x = np.ones((4, 32), np.float32)
    out = np.full((4, 32), np.nan, np.float32)
    (y,) = it.run([x], outputs=[out])
    assert y is out and np.isfinite(out).all()
    with pytest.raises(ShapeError, match="'y'.*shape"):
        it.run([x], outputs=[np.empty((4, 31), np.float32)])
    with pytest.raises(DTypeError, match="'y'"):
        it.run([x], outputs=[np.empty((4, 32), np.float64)])


@pytest.mark.parametrize("bad, error, words", [
    ({"z": np.ones((4, 32), np.float32)}, ShapeError, ["'z'", "unknown"]),
    ([], ShapeError, ["expected 1 inputs"]),
    ([np.ones((4, 32), np.float32)] * 2, ShapeError, ["expected 1 inputs", "received 2"]),
    ([np.ones((4, 32, 1), np.float32)], ShapeError, ["'x'", "(4, 32)", "(4, 32, 1)"]),
    ([np.ones((4, 31), np.float32)], ShapeError, ["'x'", "(4, 31)"]),
    ([np.ones((4, 32), np.float64)], DTypeError, ["'x'", "float32", "float64"]),
])
def test_bad_inputs_name_the_input(bad, error, words):
    it = Interpreter(mlp())
    with pytest.raises(error) as info:
        it.run(bad)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_repeated_shape_skips_the_general_checks_and_nothing_else(monkeypatch):
    """A run whose inputs are exactly the last run's kind (C-contiguous aligned
    ndarrays, same shapes and dtypes) skips the general input checks; every
    other input still gets them (and their conversions and errors)."""
    g = mlp(batch_dim="batch")
    it = Interpreter(g)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 32)).astype(np.float32)
    (first,) = it.run({"x": x})

    def general_checks(inputs):
        raise AssertionError("general path")

    general = it._check_inputs
    monkeypatch.setattr(it, "_check_inputs", general_checks)
    for same in ({"x": x}, [x], (x,), x):
        (y,) = it.run(same)
        np.testing.assert_array_equal(y, first)
    x3 = rng.standard_normal((3, 32)).astype(np.float32)
    for other in (np.asfortranarray(x), x[::-1][::-1].copy(order="F"), x3, [x.astype(np.float64)],
                  {"x": x, "extra": x}, [x, x], x.tolist()):
        with pytest.raises(AssertionError, match="general path"):
            it.run(other)
    monkeypatch.setattr(it, "_check_inputs", general)
    (y,) = it.run(np.asfortranarray(x))  # converted on the general path
    np.testing.assert_array_equal(y, first)
    readonly = x.copy()
    readonly.flags.writeable = False
    (y,) = it.run([readonly])
    np.testing.assert_array_equal(y, first)
    with pytest.raises(DTypeError, match="'x'"):
        it.run([x.astype(np.float64)])
    with pytest.raises(ShapeError, match="unknown"):
        it.run({"x": x, "extra": x})


def test_symbolic_batch_gets_a_plan_per_shape():
    g = mlp(batch_dim="batch")
    it = Interpreter(g)
    for batch in (1, 5, 3, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 32)).astype(np.float32)
        (y,) = it.run([x])
        assert y.shape == (batch, 32)
        _close(y, g, [x])
    assert len(it._plans) == 3


def test_concurrent_runs_equal_single_threaded():
    it = Interpreter(mlp(layers=3, width=64, batch=8))
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((8, 64)).astype(np.float32) for _ in range(8)]
    expected = [it.run([x])[0] for x in xs]
    failures = []

    def worker(i):
        for _ in range(200):
            (y,) = it.run([xs[i]])
            if not np.array_equal(y, expected[i]):
                failures.append(i)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_results_are_bit_identical_across_thread_counts():
    g = mlp(layers=2, width=96, batch=33)
    x = np.random.default_rng(4).standard_normal((33, 96)).astype(np.float32)
    outs = []
    for n in (1, 2):
        it = Interpreter(g, threads=n)
        outs.append(it.run([x])[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_prepared_plan_compiles_nothing_when_run():
    it = Interpreter(mlp(), backend="numba")
    x = np.ones((4, 32), np.float32)
    before = pyinfer.stats()
    it.run([x])
    it.run([x])
    after = pyinfer.stats()
    assert after["numba_compiles"] == before["numba_compiles"]
    assert after["fused_kernels"] == before["fused_kernels"]


def test_explain_profile_and_dot():
    it = Interpreter(mlp())
    text = it.explain()
    assert f"{it.plan.kernel_count} kernels" in text and "arena" in text
    table = it.profile([np.ones((4, 32), np.float32)], repeat=3)
    assert "total" in table and "GFLOP/s" in table
    dot = it.to_dot()
    assert dot.startswith('digraph "mlp"') and "->" in dot


def test_graph_outputs_that_are_inputs_views_or_repeated():
    g = Graph("odd")
    x = g.input("x", (3, 4), np.float32)
    t = g.add(Op.TRANSPOSE, [x])
    e = g.add(Op.EXP, [x])
    g.output(x, "same")
    g.output(t, "transposed")
    g.output(e, "e1")
    g.output(e, "e2")
    g.output(g.constant(np.float32(2.5)), "const")
    it = Interpreter(g)
    xv = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
    same, tr, e1, e2, c = it.run([xv])
    np.testing.assert_array_equal(same, xv)
    assert same is not xv
    np.testing.assert_array_equal(tr, xv.T)
    assert_close(e1, np.exp(xv.astype(np.float64)), np.float32)
    np.testing.assert_array_equal(e1, e2)
    assert c == 2.5
