"""CNN ops (pooling, global pooling, batch norm, resize) against ONNX Runtime
(one-node models) and NumPy, in the same run.

    pytest bench/test_bench_cnn_ops.py --benchmark-only      # pytest-benchmark
    python bench/test_bench_cnn_ops.py [--threads N]          # a markdown table

Fairness (bench/README.md): every contender allocates its result; ONNX
Runtime gets the BatchNormalization parameters as graph inputs (not
initializers, so it cannot fold them at load any more than the eager call
can); ONNX Runtime runs sequentially with intra_op_num_threads = pyinfer's
thread count.  NumPy is what a NumPy user writes (sliding_window_view + max,
the batch-norm formula, np.repeat).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pytest

import pyinfer
from pyinfer import ops, peers

RNG = np.random.default_rng(0)


def _bn_params(c):
    return [RNG.standard_normal(c).astype(np.float32) for _ in range(3)] + \
        [(RNG.random(c) + 0.5).astype(np.float32)]


# (label, pyinfer callable maker, numpy maker, onnx (op_type, attrs, extra inputs) maker)
def _cases():
    cases = []
    for n in (1, 8):
        x = RNG.standard_normal((n, 64, 112, 112)).astype(np.float32)
        cases.append((f"max_pool 3x3 s2 p1 ({n},64,112,112)", [x],
                      lambda x: ops.max_pool2d(x, 3, 2, 1),
                      _np_max_pool_3x3_s2_p1,
                      ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))))
    x = RNG.standard_normal((8, 512, 7, 7)).astype(np.float32)
    cases.append(("global_avg_pool (8,512,7,7)", [x], ops.global_avg_pool,
                  lambda x: x.mean(axis=(2, 3), keepdims=True), ("GlobalAveragePool", {})))
    x = RNG.standard_normal((8, 64, 56, 56)).astype(np.float32)
    cases.append(("batch_norm (8,64,56,56)", [x] + _bn_params(64),
                  lambda x, s, b, m, v: ops.batch_norm(x, s, b, m, v, 1e-5),
                  _np_batch_norm, ("BatchNormalization", dict(epsilon=1e-5))))
    x = RNG.standard_normal((1, 64, 56, 56)).astype(np.float32)
    cases.append(("resize nearest 2x (1,64,56,56)", [x],
                  lambda x: ops.resize(x, scales=(1, 1, 2, 2), mode="nearest",
                                       coordinate_transformation_mode="asymmetric",
                                       nearest_mode="floor"),
                  lambda x: np.repeat(np.repeat(x, 2, axis=2), 2, axis=3),
                  ("Resize", dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                                  nearest_mode="floor"))))
    return cases


def _np_max_pool_3x3_s2_p1(x):
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    return win.max(axis=(-2, -1))


def _np_batch_norm(x, s, b, m, v):
    sh = (1, -1, 1, 1)
    return (x - m.reshape(sh)) / np.sqrt(v.reshape(sh) + 1e-5) * s.reshape(sh) + b.reshape(sh)


def _ort(spec, inputs, threads):
    """A no-argument callable running the one-node ONNX model on ``inputs``."""
    reason = peers.why_unavailable("onnxruntime")
    if reason:
        raise peers.PeerUnavailable(reason)
    from onnx import helper, numpy_helper
    op_type, attrs = spec
    names = ["x", "scale", "bias", "mean", "var"][:len(inputs)]
    extra = []
    node_inputs = list(names)
    if op_type == "Resize":
        extra = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
        node_inputs = ["x", "", "scales"]
    node = helper.make_node(op_type, node_inputs, ["y"], **attrs)
    model = peers._model([node], names, inputs, "y")
    model.graph.initializer.extend(extra)
    sess = peers.ort_session(model, threads)
    feed = dict(zip(names, inputs))
    return lambda: sess.run(None, feed)[0]


CASES = _cases()
CONTENDERS = ("pyinfer", "numpy", "onnxruntime")


def make(contender, index, threads):
    label, inputs, fn, np_fn, spec = CASES[index]
    if contender == "pyinfer":
        return lambda: fn(*inputs)
    if contender == "numpy":
        return lambda: np_fn(*inputs)
    return _ort(spec, inputs, threads)


def check_agreement(index, threads):
    """The contenders compute the same thing (a benchmark of wrong answers is no benchmark)."""
    results = []
    for c in CONTENDERS:
        try:
            results.append(make(c, index, threads)())
        except peers.PeerError:
            continue
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-4, atol=1e-5)


pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=10, min_rounds=20,
                                   max_time=1.5, disable_gc=True)


@pytest.mark.parametrize("index, contender",
                         [pytest.param(i, c, id=f"{CASES[i][0]}-{c}")
                          for i in range(len(CASES)) for c in CONTENDERS])
def test_cnn_op(benchmark, threads, index, contender):
    benchmark.group = CASES[index][0]
    try:
        fn = make(contender, index, threads)
    except peers.PeerError as exc:
        pytest.skip(f"{contender}: {exc}")
    if contender == "pyinfer":
        check_agreement(index, threads)
    benchmark(fn)


def _median(fn, rounds=40, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), (max(times) - min(times)) / statistics.median(times)


def _fmt(s):
    return f"{s * 1e6:.0f} us" if s < 1e-2 else f"{s * 1e3:.1f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args(argv)
    if args.threads:
        pyinfer.set_num_threads(args.threads)
    threads = pyinfer.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        limit = None
    print(f"threads {threads}; onnxruntime {peers.version('onnxruntime')}; numpy {np.__version__}\n")
    print("| case | contender | median | spread | pyinfer speed-up |")
    print("|---|---|---:|---:|---:|")
    for i, (label, *_rest) in enumerate(CASES):
        check_agreement(i, threads)
        base = None
        for c in CONTENDERS:
            try:
                fn = make(c, i, threads)
            except peers.PeerError as exc:
                print(f"| {label} | {c} | n/a ({exc}) | | |")
                continue
            med, spread = _median(fn, args.rounds)
            base = med if c == "pyinfer" else base
            ratio = "" if c == "pyinfer" else f"{med / base:.2f}x"
            print(f"| {label if c == 'pyinfer' else ''} | {c} | {_fmt(med)} | {spread:.0%} | {ratio} |")
    if limit is not None:
        limit.unregister() if hasattr(limit, "unregister") else None


if __name__ == "__main__":
    main()
