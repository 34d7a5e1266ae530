"""What jit-traced NumPy code becomes: how many kernels, how much memory, and
that a prepared plan runs without compiling anything."""
import numpy as np
import pytest

import pyinfer
import pyinfer as pi
from pyinfer.testing import assert_close, eps, sum_bound

RNG = np.random.default_rng(7)
F32 = np.float32


def data(*shape):
    return RNG.standard_normal(shape).astype(F32)


def kernels(fn, *args):
    return fn.interpreter(*args).plan.kernel_count


def test_elementwise_chain_is_one_kernel():
    @pi.jit
    def f(x):
        return pi.tanh(x * 0.5 + 0.25) * pi.sigmoid(x) + 1.5

    x = data(1000, 33)
    x64 = x.astype(np.float64)
    assert_close(f(x), np.tanh(x64 * 0.5 + 0.25) / (1 + np.exp(-x64)) + 1.5, F32)
    assert kernels(f, x) == 1


def test_gemm_bias_gelu_is_one_kernel():
    w, b = data(64, 48), data(48)

    @pi.jit
    def f(x):
        return pi.gelu(x @ w + b)

    x = data(16, 64)
    assert kernels(f, x) == 1
    ref = pyinfer.ops.gemm(x.astype(np.float64), w.astype(np.float64), bias=b.astype(np.float64),
                           activation="gelu", backend="numpy")
    assert_close(f(x), ref, F32, atol_extra=1.2 * sum_bound(64, np.abs(x) @ np.abs(w), F32))


def test_three_layer_mlp_is_three_kernels():
    ws = [(data(32, 32) / 6, data(32)) for _ in range(3)]

    @pi.jit
    def mlp(x):
        h = x
        for i, (w, b) in enumerate(ws):
            h = h @ w + b
            if i < 2:
                h = pi.gelu(h)
        return h

    x = data(8, 32)
    assert kernels(mlp, x) == 3
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(ws):
        h = h @ w + b
        if i < 2:
            h = pyinfer.ops.gelu(h, backend="numpy")
    assert_close(mlp(x), h, F32, atol_extra=3 * sum_bound(32, np.abs(h) + 4, F32))


def test_softmax_and_layernorm_written_in_numpy_become_one_kernel():
    @pi.jit
    def softmax(x):
        e = pi.exp(x - pi.max(x, axis=-1, keepdims=True))
        return e / pi.sum(e, axis=-1, keepdims=True)

    @pi.jit
    def layernorm(x, w, b):
        m = pi.mean(x, axis=-1, keepdims=True)
        d = x - m
        v = pi.mean(d * d, axis=-1, keepdims=True)
        return d / pi.sqrt(v + 1e-5) * w + b

    x, w, b = data(64, 96), data(96), data(96)
    assert kernels(softmax, x) == 1
    assert kernels(layernorm, x, w, b) == 1
    assert_close(softmax(x), pyinfer.ops.softmax(x.astype(np.float64), backend="numpy"), F32,
                 rtol_extra=4 * np.sqrt(96) * eps(F32))
    ln = pyinfer.ops.layer_norm(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                backend="numpy")
    assert_close(layernorm(x, w, b), ln, F32, atol_extra=8 * np.sqrt(96) * eps(F32) * (np.abs(ln) + 4))


def test_prepared_plan_runs_with_zero_compilations():
    @pi.jit
    def f(x, y):
        return pi.sum(pi.exp(x) * y, axis=1) + pi.tanh(x @ y.T).sum()

    x, y = data(40, 24), data(40, 24)
    f(x, y)
    before = pyinfer.stats()
    for _ in range(3):
        f(x, y)
    after = pyinfer.stats()
    assert after["numba_compiles"] == before["numba_compiles"]
    assert after["fused_kernels"] == before["fused_kernels"]
    assert after["plans_prepared"] == before["plans_prepared"]


def test_twelve_layer_mlp_arena_is_small():
    ws = [(data(64, 64) / 8, data(64)) for _ in range(12)]

    @pi.jit
    def mlp(x):
        h = x
        for w, b in ws:
            h = pi.relu(h @ w + b)
        return h

    plan = mlp.interpreter(data(16, 64)).plan
    assert plan.kernel_count == 12
    assert plan.arena_bytes <= 0.3 * plan.naive_bytes, (plan.arena_bytes, plan.naive_bytes)


def test_explain_names_kernels_and_missed_fusions():
    w = data(32, 32)

    @pi.jit
    def f(x):
        h = x @ w
        return pi.relu(h) + h  # h has two consumers: the epilogue cannot take the relu

    text = f.explain(data(4, 32))
    assert "kernels" in text and "gemm" in text
    assert "consumer" in text


def test_tuning_cache_is_written_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("PYINFER_TUNE", "1")
    monkeypatch.setenv("PYINFER_CACHE_DIR", str(tmp_path))
    g = pyinfer.Graph("tune")
    x = g.input("x", (64, 128), F32)
    g.output(g.add(pyinfer.Op.SOFTMAX, [x], {"axis": -1}))
    it = pyinfer.Interpreter(g)
    table = (tmp_path / "tuning.json").read_text()
    assert "softmax" in table
    (y,) = it.run([np.ones((64, 128), F32)])
    np.testing.assert_allclose(y, 1 / 128, rtol=1e-6)
    pyinfer.Interpreter(g)  # second prepare reads the cache
    assert (tmp_path / "tuning.json").read_text() == table


def test_attention_is_one_kernel_and_runs_without_allocating():
    import tracemalloc

    @pi.jit
    def attention(q, k, v):
        s = q @ pi.transpose(k, (0, 2, 1)) * 0.125
        e = pi.exp(s - pi.max(s, axis=-1, keepdims=True))
        return (e / pi.sum(e, axis=-1, keepdims=True)) @ v

    q, k, v = data(4, 64, 32), data(4, 64, 32), data(4, 64, 32)
    assert kernels(attention, q, k, v) == 1
    it = attention.interpreter(q, k, v)
    out = [np.empty((4, 64, 32), F32)]
    it.run([q, k, v], outputs=out)
    q64, k64, v64 = (t.astype(np.float64) for t in (q, k, v))
    s = q64 @ k64.transpose(0, 2, 1) * 0.125
    p = pyinfer.ops.softmax(s, backend="numpy")
    assert_close(out[0], p @ v64, F32, atol_extra=4 * sum_bound(64, np.abs(p) @ np.abs(v64), F32)
                 + 4 * sum_bound(32, 1.0, F32))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        it.run([q, k, v], outputs=out)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(d.size_diff for d in after.compare_to(before, "filename") if d.size_diff > 0)
    assert grown < 8 * 1024, grown  # the 4x64x64 scores alone would be 64 KiB
