"""Winograd 3x3 convolution against ONNX Runtime and im2col + OpenBLAS.

Case: conv 3x3, 64 -> 64 channels, 56 x 56, pad 1, stride 1 (a ResNet-18/34
stage-1 layer), float32 NCHW, at batch 1 and 8.  Contenders, in the same run:

* ``winograd-f2`` / ``winograd-f4``: pyinfer.backends.winograd.conv3x3 with
  weights transformed once beforehand (as a plan does);
* ``onnxruntime``: a one-node ONNX Conv model with the weights as an
  *initializer*, so ONNX Runtime may pre-pack them too (its default graph
  optimisations, NCHWc layout included), intra_op_num_threads = our threads;
* ``im2col-openblas``: the textbook lowering a NumPy user would write -- an
  im2col copy (sliding_window_view) and one OpenBLAS sgemm per image.

Every contender allocates its result.  ``extra_info["gflops"]`` is the
effective rate 2*N*K*C*9*Ho*Wo / time (the direct algorithm's FLOPs, so
Winograd's count is comparable).  Run:

    pytest bench/test_bench_winograd.py --benchmark-only [--bench-threads N]
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from pyinfer import peers
from pyinfer.backends import winograd

C = K = 64
H = W = 56
PADS = (1, 1, 1, 1)
BATCHES = (1, 8)
CONTENDERS = ("winograd-f4", "winograd-f2", "onnxruntime", "im2col-openblas")

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=5, min_rounds=20,
                                   max_time=2.0, disable_gc=True)


@functools.lru_cache(maxsize=None)
def _inputs(n: int):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((K, C, 3, 3)) / 24).astype(np.float32)
    return x, w


def _onnxruntime(x, w, threads):
    reason = peers.why_unavailable("onnxruntime")
    if reason:
        raise peers.PeerUnavailable(reason)
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=list(PADS),
                            strides=[1, 1])
    graph = helper.make_graph(
        [node], "conv3x3",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="pyinfer.bench")
    run = peers.ort_session(model, threads).run
    feed = {"x": x}
    return lambda: run(None, feed)[0]


def _im2col_openblas(x, w):
    n = x.shape[0]
    wm = w.reshape(K, C * 9)

    def fn():
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = sliding_window_view(xp, (3, 3), axis=(2, 3))  # N, C, H, W, 3, 3
        cols = np.ascontiguousarray(cols.transpose(0, 1, 4, 5, 2, 3)).reshape(n, C * 9, H * W)
        return (wm @ cols).reshape(n, K, H, W)
    return fn


def _make(contender, x, w, threads):
    if contender.startswith("winograd"):
        tile = int(contender[-1])
        why = winograd.supports(x.shape, w.shape, 1, 1, 1, x.dtype)
        if why:
            raise peers.PeerUnavailable(why)
        wt = winograd.transform_weights(w, tile)
        return lambda: winograd.conv3x3(x, wt, tile, PADS)
    if contender == "onnxruntime":
        return _onnxruntime(x, w, threads)
    return _im2col_openblas(x, w)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_conv3x3(benchmark, threads, n, contender):
    x, w = _inputs(n)
    benchmark.group = f"conv3x3 {C}->{K} {H}x{W} pad1 N={n}"
    try:
        fn = _make(contender, x, w, threads)
    except peers.PeerError as exc:
        pytest.skip(f"{contender}: {exc}")
    flops = 2.0 * n * K * C * 9 * H * W
    benchmark.extra_info.update(contender=contender, n=n, threads=threads, flops=flops)
    fn()
    benchmark(fn)
    benchmark.extra_info["gflops"] = flops / benchmark.stats.stats.median / 1e9
