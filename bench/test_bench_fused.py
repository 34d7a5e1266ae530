"""Fused elementwise kernel vs NumPy, numexpr and ONNX Runtime, in one run.

    tanh(x * a + b) * sigmoid(x) + c,   x: 16M float32, a, b, c scalars

Every contender writes into a preallocated output (ORT through io_binding), uses
2 threads where it can, and is warmed up before timing (the fused kernel is
compiled by ``compile_fused`` before the first round; ``np.copyto`` is the
memory-bandwidth floor: 64 MiB read + 64 MiB written).  ``test_report`` prints
the medians, the ratios and the GB/s achieved (bytes moved / median time).

    pytest bench/test_bench_fused.py --benchmark-columns=median,iqr,rounds
"""
from __future__ import annotations

import numpy as np
import pytest

N = 1 << 24
A, B, C = 0.75, -0.25, 0.5
BYTES = 2 * N * 4            # read x, write out
THREADS = 2
RESULTS: dict = {}
TARGETS = {"numpy": 5.0, "onnxruntime": 1.5}

PROGRAM = (("in", 0), ("const", A), ("mul", 0, 1), ("const", B), ("add", 2, 3), ("tanh", 4),
           ("sigmoid", 0), ("mul", 5, 6), ("const", C), ("add", 7, 8))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N).astype(np.float32)
    out = np.empty_like(x)
    out.fill(0)          # touch the pages: no first-touch faults inside a timing
    return x, out


def _run(benchmark, name, fn, warmup=2):
    for _ in range(warmup):
        fn()
    benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=1)
    RESULTS[name] = benchmark.stats.stats.median


def test_copy_floor(benchmark, data):
    x, out = data
    _run(benchmark, "copy", lambda: np.copyto(out, x))


def test_pyinfer_fused(benchmark, data):
    import pyinfer
    from pyinfer.kernels import codegen
    x, out = data
    pyinfer.set_num_threads(THREADS)
    attrs = dict(program=PROGRAM, results=(9,), shape=(N,), dtype=np.dtype(np.float32))
    kern = codegen.compile_fused(attrs, [(N,)], [np.float32])   # compiled here, not timed
    assert kern.parallel
    kern([x], [out])
    ref = np.tanh(x.astype(np.float64) * A + B) / (1 + np.exp(-x.astype(np.float64))) + C
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    _run(benchmark, "pyinfer", lambda: kern([x], [out]))


def test_numpy(benchmark, data):
    x, out = data
    a, b, c = np.float32(A), np.float32(B), np.float32(C)

    def fn():
        np.add(np.tanh(x * a + b) * (np.float32(1) / (np.float32(1) + np.exp(-x))), c, out=out)
    _run(benchmark, "numpy", fn, warmup=1)


def test_numexpr(benchmark, data):
    ne = pytest.importorskip("numexpr")
    x, out = data
    ne.set_num_threads(THREADS)
    a, b, c = np.float32(A), np.float32(B), np.float32(C)
    expr = "tanh(x * a + b) * (1 / (1 + exp(-x))) + c"
    env = {"x": x, "a": a, "b": b, "c": c}
    _run(benchmark, "numexpr", lambda: ne.evaluate(expr, local_dict=env, out=out))


def test_onnxruntime(benchmark, data):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    x, out = data
    init = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in
            (("a", A), ("b", B), ("c", C))]
    nodes = [helper.make_node("Mul", ["x", "a"], ["xa"]),
             helper.make_node("Add", ["xa", "b"], ["xab"]),
             helper.make_node("Tanh", ["xab"], ["t"]),
             helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Mul", ["t", "s"], ["ts"]),
             helper.make_node("Add", ["ts", "c"], ["y"])]
    graph = helper.make_graph(nodes, "fused_bench",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [N])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [N])],
                              init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    io = sess.io_binding()
    io.bind_cpu_input("x", x)
    io.bind_output("y", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
    _run(benchmark, "onnxruntime", lambda: sess.run_with_iobinding(io))


def test_report(benchmark):
    """Ratios and bandwidth of the runs above (run the whole file).  Takes the
    benchmark fixture only so that --benchmark-only keeps it."""
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    if "pyinfer" not in RESULTS:
        pytest.skip("run the whole file")
    t = RESULTS["pyinfer"]
    lines = [f"{'contender':<12} {'median ms':>10} {'GB/s':>7} {'pyinfer x':>9}"]
    for name, v in sorted(RESULTS.items(), key=lambda kv: kv[1]):
        lines.append(f"{name:<12} {v * 1e3:>10.2f} {BYTES / v / 1e9:>7.1f} {v / t:>9.2f}")
    lines.append(f"(2 threads; {BYTES / 2**20:.0f} MiB moved per call; ceiling ~32 GB/s)")
    print("\n" + "\n".join(lines))
    for peer, target in TARGETS.items():
        if peer in RESULTS:
            print(f"pyinfer vs {peer}: {RESULTS[peer] / t:.2f}x (target {target}x)")
