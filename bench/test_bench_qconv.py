"""int8 convolution against ONNX Runtime's QLinearConv and our fp32 conv2d.

Contenders, per case (u8 NCHW input with zero point 128, s8 weights per
output channel, 7-bit (|w| <= 64, what quantize_* make with reduce_range on
AVX2 without VNNI, and what ORT's AVX2 kernel is exact for), bias, u8 output):

* ``pyinfer-int8``: ``ops.qconv2d`` on a ``qconv_weight`` (packed once), u8 out
  (the eager op: its argument checks cost tens of microseconds a call);
* ``pyinfer-int8-graph``: the same one-node QLinearConv model as ORT's, loaded
  by ``pyinfer.load`` and run by an ``Interpreter`` (QCONV, weights packed at
  plan time): the per-call cost a model sees;
* ``ort-QLinearConv``: a one-node ONNX Runtime session, the weight an initializer;
* ``pyinfer-fp32``: ``ops.conv2d`` on float32 data of the same shapes.

Cases: depthwise 3x3 144ch 56x56; 3x3 64->64 56x56; 3x3 stride 2 128->128
28x28; 1x1 256->64 56x56; batch 1 and 8.

Run: pytest bench/test_bench_qconv.py --benchmark-only --bench-threads 2
On a loaded machine run it as a script (threads 1 and 2 in one process):
    python bench/test_bench_qconv.py [--threads 1 2] [--rounds 15] [--batch 1 8]
It prints two tables: contenders alternated call by call (ORT with
intra-op spinning off, medians of the rounds), and block-wise (20 calls of
each, 3 repeats, ORT at its default spinning; the median of the per-block
medians).  Ratios: pyinfer time / ORT time, and ORT / pyinfer (speedup).
``--mode cpu`` times 1 thread by the calling thread's CPU time instead of the
wall clock: on a machine loaded past its cores a call longer than the
scheduler's slice is preempted and its wall time jumps (0.33 CPUs utilized at
load 8 on 2 vCPUs), while its CPU time stays put.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

import pyinfer
from pyinfer import ops

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=5, min_rounds=15,
                                   max_time=2.0, disable_gc=True)

ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
onnx = pytest.importorskip("onnx", reason='pip install ".[test]"')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# name, (C, K, H=W, kernel, stride, groups)
CASES = {
    "dw3x3 144ch 56": (144, 144, 56, 3, 1, 144),
    "3x3 64ch 56": (64, 64, 56, 3, 1, 1),
    "3x3s2 128ch 28": (128, 128, 28, 3, 2, 1),
    "1x1 256->64 56": (256, 64, 56, 1, 1, 1),
}
CONTENDERS = ["pyinfer-int8", "pyinfer-int8-graph", "ort-QLinearConv", "pyinfer-fp32"]
XS, XZ, YS, YZ = 0.02, 128, 0.05, 100


def _data(case, batch):
    c, k, hw, kk, stride, groups = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, c, hw, hw), dtype=np.uint8)
    w = rng.integers(-64, 65, (k, c // groups, kk, kk), dtype=np.int8)
    ws = (rng.random(k) * 0.004 + 0.001).astype(np.float32)
    bias = rng.integers(-2000, 2000, k).astype(np.int32)
    pad = kk // 2
    return x, w, ws, bias, stride, pad, groups


def _qlinearconv_model(case, batch):
    x, w, ws, bias, stride, pad, groups = _data(case, batch)
    k, kk = w.shape[0], w.shape[2]
    inits = [numpy_helper.from_array(np.array(XS, np.float32), "xs"),
             numpy_helper.from_array(np.array(XZ, np.uint8), "xz"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(ws, "ws"),
             numpy_helper.from_array(np.zeros(k, np.int8), "wz"),
             numpy_helper.from_array(np.array(YS, np.float32), "ys"),
             numpy_helper.from_array(np.array(YZ, np.uint8), "yz"),
             numpy_helper.from_array(bias, "b")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                            ["y"], group=groups, pads=[pad] * 4, strides=[stride] * 2,
                            kernel_shape=[kk, kk])
    g = helper.make_graph([node], "qlc", [helper.make_tensor_value_info("x", TensorProto.UINT8,
                                                                         list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [None] * 4)],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), {"x": x}


def _ort_session(case, batch, threads, spinning):
    model, feed = _qlinearconv_model(case, batch)
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, feed)


def make(contender, case, batch, threads, spinning=False):
    """A no-argument callable running one contender once (weights prepared)."""
    x, w, ws, bias, stride, pad, groups = _data(case, batch)
    if contender == "ort-QLinearConv":
        return _ort_session(case, batch, threads, spinning)
    if contender == "pyinfer-int8-graph":
        model, feed = _qlinearconv_model(case, batch)
        it = pyinfer.Interpreter(pyinfer.load(model), threads=threads)
        outs = it.run(feed)
        return lambda: it.run(feed, outputs=outs)
    if contender == "pyinfer-int8":
        qw = ops.qconv_weight(w, 0, groups=groups)
        fbias = (bias * (np.float32(XS) * ws)).astype(np.float32)
        kw = dict(bias=fbias, stride=stride, padding=pad, groups=groups, out_scale=YS,
                  out_zero=YZ)
        out = ops.qconv2d(x, qw, XZ, None, XS, ws, **kw)  # packs the weight once
        return lambda: ops.qconv2d(x, qw, XZ, None, XS, ws, out=out, **kw)
    xf = (x.astype(np.float32) - XZ) * XS
    wf = w.astype(np.float32) * ws.reshape(-1, 1, 1, 1)
    fb = np.zeros(w.shape[0], np.float32)
    out = ops.conv2d(xf, wf, fb, stride=stride, padding=pad, groups=groups)
    return lambda: ops.conv2d(xf, wf, fb, stride=stride, padding=pad, groups=groups, out=out)


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("case", list(CASES))
def test_qconv(benchmark, threads, case, batch, contender):
    benchmark.group = f"qconv {case} batch {batch} ({threads} threads)"
    pyinfer.set_num_threads(threads)
    fn = make(contender, case, batch, threads, spinning=True)
    fn()
    benchmark(fn)


def interleaved(fns, rounds, clock=time.perf_counter):
    """Medians (ms) of the contenders called one after another, round by round."""
    from pyinfer.timing import interleaved as medians
    return {name: t * 1e3 for name, t in medians(fns, rounds, warmup=3, clock=clock).items()}


def blockwise(fns, calls=20, repeats=3):
    """Median over repeats of each contender's median over a block of calls (ms)."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    meds = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            ts = []
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            meds[name].append(float(np.median(ts)))
    return {name: float(np.median(v)) * 1e3 for name, v in meds.items()}


def _row(case, batch, threads, med):
    p, gr, o, f = (med["pyinfer-int8"], med["pyinfer-int8-graph"], med["ort-QLinearConv"],
                   med["pyinfer-fp32"])
    return (f"| {case} | {batch} | {threads} | {p:.3f} | {gr:.3f} | {o:.3f} | {f:.3f} | "
            f"{p / o:.2f} | {o / p:.2f} | {gr / o:.2f} | {o / gr:.2f} | {f / p:.2f} |")


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--mode", choices=["interleaved", "blockwise", "cpu", "both"], default="both")
    opts = ap.parse_args(argv)
    head = ("| case | batch | threads | int8 op ms | int8 graph ms | ORT ms | fp32 ms | "
            "op/ORT | ORT/op | graph/ORT | ORT/graph | fp32/int8 op |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load "
          f"{os.getloadavg()[0]:.1f}, ISA {pyinfer.backends._native.isa()}")
    for mode in (["interleaved", "blockwise"] if opts.mode == "both" else [opts.mode]):
        print(f"\n{mode}" + {"interleaved": " (ORT spinning off)",
                              "blockwise": " (ORT default spinning)",
                              "cpu": " (1 thread: the calling thread's CPU time, interleaved)"
                              }[mode])
        print(head)
        for threads in ([1] if mode == "cpu" else opts.threads):
            pyinfer.set_num_threads(threads)
            for case in opts.case:
                for batch in opts.batch:
                    fns = {c: make(c, case, batch, threads, spinning=mode == "blockwise")
                           for c in CONTENDERS}
                    med = blockwise(fns) if mode == "blockwise" else interleaved(
                        fns, opts.rounds, time.thread_time if mode == "cpu" else time.perf_counter)
                    print(_row(case, batch, threads, med), flush=True)
    print(f"\nload {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
