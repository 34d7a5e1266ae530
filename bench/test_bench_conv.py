"""conv2d against ONNX Runtime (one-node Conv models built with onnx.helper).

Cases (float32, NCHW): 3x3 64->64 at 56x56 pad 1, batch 1 and 8; 1x1 256->64 at
56x56; 3x3 stride 2 128->256 at 28x28; depthwise 3x3 144 channels at 56x56.

Contenders per case (one benchmark group each):

* ``pyinfer`` -- ``pyinfer.ops.conv2d`` (the path chosen by shape; weights packed
  on every call, as ORT must when the weights are a graph input: peers.py's
  fairness rule);
* ``pyinfer.plan[<path>]`` -- ``c_conv.ConvKernel`` with the weights packed once
  (what an Interpreter runs), for every path that supports the case;
* ``onnxruntime`` -- weights as graph inputs; ``onnxruntime.init`` -- weights as
  initializers (ORT pre-packs them at session creation), the fair peer of
  ``pyinfer.plan``;
* ``openblas.sgemm`` -- NumPy's matmul of the same GEMM (K x Cout by K x P, the
  im2col matrix made beforehand): the practical ceiling of an im2col conv.

``python bench/test_bench_conv.py [threads] [case...]`` prints the same
contenders as a table of medians (what bench/RESULTS.md quotes).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import pyinfer
from pyinfer import peers

CASES = {
    # name: (x shape, w shape, stride, pad, groups)
    "conv3x3_64_56_b1": ((1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    "conv3x3_64_56_b8": ((8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    "conv1x1_256to64_56": ((1, 256, 56, 56), (64, 256, 1, 1), 1, 0, 1),
    "conv3x3s2_128to256_28": ((1, 128, 28, 28), (256, 128, 3, 3), 2, 1, 1),
    "dwconv3x3_144_56": ((1, 144, 56, 56), (144, 1, 3, 3), 1, 1, 144),
}


def flops(name) -> float:
    xs, ws, s, p, g = CASES[name]
    oh = (xs[2] + 2 * p - ws[2]) // s + 1
    ow = (xs[3] + 2 * p - ws[3]) // s + 1
    return 2.0 * xs[0] * ws[0] * oh * ow * ws[1] * ws[2] * ws[3]


def inputs(name):
    xs, ws, *_ = CASES[name]
    rng = np.random.default_rng(0)
    return (rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32),
            rng.standard_normal(ws[0]).astype(np.float32))


def ort_conv(name, x, w, b, threads, initializer: bool):
    """A no-argument callable running the case's Conv in ONNX Runtime."""
    why = peers.why_unavailable("onnxruntime")
    if why:
        raise peers.PeerUnavailable(why)
    from onnx import TensorProto, helper, numpy_helper
    _, _, s, p, g = CASES[name]
    feeds = {"x": x} if initializer else {"x": x, "w": w, "b": b}
    graph_inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape))
                    for k, v in feeds.items()]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")] \
        if initializer else []
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[s, s], pads=[p] * 4,
                            group=g, kernel_shape=list(w.shape[2:]))
    graph = helper.make_graph([node], "conv", graph_inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    sess = peers.ort_session(model, threads)
    run = sess.run
    return lambda: run(None, feeds)[0]


def contenders(name, threads):
    """{label: callable} for one case."""
    from pyinfer.backends import c_conv
    x, w, b = inputs(name)
    xs, ws, s, p, g = CASES[name]
    out = {"pyinfer": lambda: pyinfer.ops.conv2d(x, w, b, stride=s, padding=p, groups=g)}
    for path in c_conv.PATHS:
        if c_conv.path_reason(path, xs, ws, (s, s), (p,) * 4, (1, 1), g, np.float32, b, None,
                              None) is None:
            kern = c_conv.ConvKernel(xs, w, b, stride=(s, s), pads=(p,) * 4, dilation=(1, 1),
                                     groups=g, activation=None, clip=None, dtype=np.float32,
                                     path=path)

            y = np.empty(kern.out_shape, np.float32)  # an Interpreter's arena slot

            def run(kern=kern, y=y):
                kern(x, None, y)
                return y
            out[f"pyinfer.plan[{path}]"] = run
    for label, init in (("onnxruntime", False), ("onnxruntime.init", True)):
        try:
            out[label] = ort_conv(name, x, w, b, threads, init)
        except peers.PeerError:
            pass
    if g == 1:
        kdim = ws[1] * ws[2] * ws[3]
        oh = (xs[2] + 2 * p - ws[2]) // s + 1
        a = np.ascontiguousarray(w.reshape(ws[0], kdim))
        col = np.random.default_rng(1).standard_normal((kdim, oh * oh)).astype(np.float32)
        out["openblas.sgemm"] = lambda: [a @ col for _ in range(xs[0])]
    return out


PARAMS = [(n, c) for n in CASES for c in ("pyinfer", "pyinfer.plan[implicit]",
                                          "pyinfer.plan[winograd]", "pyinfer.plan[gemm1x1]",
                                          "pyinfer.plan[depthwise]", "onnxruntime",
                                          "onnxruntime.init", "openblas.sgemm")]

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=5, min_rounds=15,
                                   max_time=2.0, disable_gc=True)


@pytest.mark.parametrize("name, contender", PARAMS, ids=[f"{n}-{c}" for n, c in PARAMS])
def test_conv(benchmark, threads, name, contender):
    fns = contenders(name, threads)
    if contender not in fns:
        pytest.skip(f"{contender} does not run {name}")
    benchmark.group = name
    benchmark.extra_info.update(case=name, contender=contender, threads=threads,
                                gflop=flops(name) / 1e9)
    benchmark(fns[contender])


def table(rounds: int = 15, threads: int = 2, repeats: int = 3, names=None):
    """Per case, each contender timed in a block of ``rounds`` consecutive calls,
    the blocks cycled ``repeats`` times; the median of all calls is quoted.
    Blocks, not call-by-call interleaving: on 2 cores the thread pools of the
    contenders (GOMP, OpenBLAS, ORT) spin after each call and steal the cores
    of whoever runs next, which made every interleaved median meaningless."""
    pyinfer.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        limit = None
    from pyinfer.backends import c_conv
    rows = []
    for name in names or CASES:
        fns = contenders(name, threads)
        times = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                fn(), fn()
                for _ in range(rounds):
                    t = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t)
        med = {k: float(np.median(v)) for k, v in times.items()}
        xs, ws, s, p, g = CASES[name]
        chosen = c_conv.choose_path(xs, ws, (s, s), (p,) * 4, (1, 1), g, np.float32,
                                    np.zeros(1), None, None)
        rows.append((name, chosen, med))
        ort, ort_i = med.get("onnxruntime"), med.get("onnxruntime.init")
        print(f"\n{name}  ({flops(name) / 1e9:.2f} GFLOP; plan path: {chosen})")
        for k, v in sorted(med.items(), key=lambda kv: kv[1]):
            extra = ""
            if ort:
                extra += f"  vs ORT x{ort / v:.2f}"
            if ort_i:
                extra += f"  vs ORT.init x{ort_i / v:.2f}"
            q1, q3 = np.percentile(times[k], [25, 75])
            print(f"  {k:26s} {v * 1e3:8.3f} ms [{q1 * 1e3:.2f}-{q3 * 1e3:.2f}]  "
                  f"{flops(name) / v / 1e9:6.1f} GFLOP/s{extra}")
    if limit is not None:
        limit.restore_original_limits()
    return rows


if __name__ == "__main__":
    import sys
    table(threads=int(sys.argv[1]) if len(sys.argv) > 1 else 2, names=sys.argv[2:] or None)
