"""int8 against fp32 and ONNX Runtime, same run, same thread budget.

Groups (compare within a group; pytest-benchmark's table, or the ratios the
run writes to extra_info):

* ``qgemm MxKxN``: u8 x s8 GEMM to float32 (dequantize epilogue), weights
  packed once (what a plan does), 7-bit weights (|w| <= 64, what
  ``quantize_dynamic`` makes on AVX2 without VNNI: the vpmaddubsw kernel) and
  full-range ones (``pyinfer-int8-exact``: the 16-bit vpmaddwd kernel on
  AVX2) -- against our fp32 GEMM (``pyinfer.ops.gemm(backend="c")``) and ONNX
  Runtime's MatMulInteger (a one-node session with the 7-bit B as an
  initializer, int32 out).
* ``mlp``: a 3-layer MLP (768-3072-768, batch 32) fp32 vs
  ``pyinfer.compress.quantize_dynamic`` (default reduce_range), and ONNX
  Runtime fp32 vs its own ``quantize_dynamic`` model (reduce_range=True, so
  both int8 models are exact and equal).
* ``minilm`` (when ``pyinfer.models.minilm``'s weights are installed): the
  same four on all-MiniLM-L6-v2 at batch 1 x 128 tokens.

* ``pyinfer-int8-plan``: the same one-node MatMulInteger model ORT runs
  (7-bit B as an initializer, int32 out), through ``pyinfer.Interpreter``:
  runtime against runtime, both allocating the output each run.  The eager
  ``pyinfer-int8`` row pays the op's argument validation and kernel selection
  on every call (50-300 us here, 10-30% of a 128-row call at 2 threads), which
  a plan pays once.
* ``qgemm MxKxN dyn``: the dynamic->float path of a quantized layer, float
  activation in: a one-node MatMul model through each library's own
  ``quantize_dynamic`` (pyinfer: quantize inside the GEMM call; ORT:
  DynamicQuantizeLinear + MatMulInteger, fused by its optimizer).

Run: pytest bench/test_bench_quant.py --benchmark-only --bench-threads 2
On a loaded machine, alternate the contenders round by round instead (medians
of interleaved rounds, the load average printed with them):
    python bench/test_bench_quant.py [--threads 2] [--rounds 15] [--shapes 128x384x1536]
(``--blocks``: 20 calls of each contender in a row, 3 times, ORT at its defaults.
``--node-time``: kernel against kernel, no runtime around either: our C GEMM
call (int32 out) timed around the call, against the MatMulInteger node time
ORT's own profiler records, interleaved.)
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

import pyinfer
from pyinfer import ops

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=5, min_rounds=15,
                                   max_time=2.0, disable_gc=True)

ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
onnx = pytest.importorskip("onnx", reason='pip install ".[test]"')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SHAPES = [(128, 384, 1536), (128, 1536, 384), (1024, 384, 1536), (1024, 1024, 1024)]
KERNEL_CONTENDERS = ["pyinfer-int8", "pyinfer-int8-plan", "pyinfer-int8-exact", "pyinfer-fp32",
                     "ort-MatMulInteger"]
DYN_CONTENDERS = ["pyinfer-int8-dyn", "ort-int8-dyn"]
GEMM_CONTENDERS = KERNEL_CONTENDERS + DYN_CONTENDERS
_ORT_DEFAULTS = False  # block-wise runs: ORT at its defaults (spinning workers)


def _session(model_or_path, threads):
    if _ORT_DEFAULTS:
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3
        src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    from pyinfer.peers import ort_session
    return ort_session(model_or_path, threads)


def _matmul_model(path, k, n, seed=0):
    """A one-node fp32 MatMul (x (m, k) @ W) with W an initializer; its int8
    forms are each library's quantize_dynamic of it (the dynamic->float path:
    quantize x at run time, int GEMM, dequantize)."""
    w = (np.random.default_rng(seed).standard_normal((k, n)) * 0.05).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def _mmi_model(b, m, k):
    """The one-node MatMulInteger model (a (m, k) u8 input, ``b`` an int8
    initializer, a_zero 7, int32 out) that ORT and pyinfer's plan both run."""
    node = helper.make_node("MatMulInteger", ["a", "b", "za"], ["y"])
    g = helper.make_graph([node], "mmi", [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [m, b.shape[1]])],
                          [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.uint8(7), "za")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _gemm_fn(contender, m, k, n, threads):
    rng = np.random.default_rng(0)
    if contender.endswith("int8-dyn"):
        from onnxruntime.quantization import QuantType, quantize_dynamic as ort_qd
        from pyinfer.compress import quantize_dynamic
        fp32 = os.path.join(_TMP, f"mm_{k}x{n}.onnx")
        int8 = os.path.join(_TMP, f"mm_{k}x{n}_int8.onnx")
        if not os.path.exists(int8):
            _matmul_model(fp32, k, n)
            ort_qd(fp32, int8, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        feeds = {"x": rng.standard_normal((m, k)).astype(np.float32)}
        if contender.startswith("ort"):
            sess = _session(int8, threads)
            return lambda: sess.run(None, feeds)
        it = pyinfer.Interpreter(quantize_dynamic(pyinfer.load(fp32)))
        return lambda: it.run(feeds)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    full = rng.integers(-128, 128, (k, n), dtype=np.int8)
    b = rng.integers(-64, 65, (k, n), dtype=np.int8)
    if contender == "pyinfer-int8-exact":
        contender, b = "pyinfer-int8", full
    if contender == "pyinfer-int8":
        w = ops.qweight(b, 0)
        scale = np.full(n, 1e-3, np.float32)
        out = np.empty((m, n), np.float32)
        ops.qgemm(a, w, 7, None, 0.1, scale, out=out)  # packs the weight once
        return lambda: ops.qgemm(a, w, 7, None, 0.1, scale, out=out)
    if contender == "pyinfer-fp32":
        af = rng.standard_normal((m, k)).astype(np.float32)
        bf = rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        return lambda: ops.gemm(af, bf, out=out, backend="c")
    feed = {"a": a}
    if contender == "pyinfer-int8-plan":
        it = pyinfer.Interpreter(pyinfer.load(_mmi_model(b, m, k)))
        return lambda: it.run(feed)
    sess = _session(_mmi_model(b, m, k), threads)
    return lambda: sess.run(None, feed)


@pytest.mark.parametrize("contender", GEMM_CONTENDERS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_qgemm(benchmark, threads, shape, contender):
    benchmark.group = f"qgemm {'x'.join(map(str, shape))} ({threads} threads)"
    fn = _gemm_fn(contender, *shape, threads)
    fn()
    benchmark(fn)


# ---- models ---------------------------------------------------------------------------

def _mlp_onnx(path, d=768, h=3072, seed=0):
    rng = np.random.default_rng(seed)
    arrs = {"w1": rng.standard_normal((d, h)) * 0.03, "b1": rng.standard_normal(h) * 0.1,
            "w2": rng.standard_normal((h, h // 4)) * 0.03, "b2": rng.standard_normal(h // 4) * 0.1,
            "w3": rng.standard_normal((h // 4, d)) * 0.03}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in arrs.items()]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a1"]), helper.make_node("Add", ["a1", "b1"], ["a2"]),
             helper.make_node("Relu", ["a2"], ["a3"]), helper.make_node("MatMul", ["a3", "w2"], ["a4"]),
             helper.make_node("Add", ["a4", "b2"], ["a5"]), helper.make_node("Relu", ["a5"], ["a6"]),
             helper.make_node("MatMul", ["a6", "w3"], ["y"])]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", d])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


_TMP = tempfile.mkdtemp(prefix="pyinfer_bench_quant_")


def _model_paths(name):
    """(fp32 path, ORT-int8 path, feeds) for a bench model, built once."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    fp32 = os.path.join(_TMP, f"{name}.onnx")
    int8 = os.path.join(_TMP, f"{name}_int8.onnx")
    if name == "mlp":
        if not os.path.exists(fp32):
            _mlp_onnx(fp32)
        feeds = {"x": np.random.default_rng(1).standard_normal((32, 768)).astype(np.float32)}
    else:
        try:
            from pyinfer.models import minilm
            src = str(minilm.onnx_path())
        except Exception as e:  # weights package not installed
            pytest.skip(f"MiniLM unavailable: {e}")
        fp32 = src
        sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
        feeds = {}
        for i in sess.get_inputs():
            feeds[i.name] = np.ones((1, 128), np.int64) if "mask" in i.name else \
                np.random.default_rng(2).integers(100, 2000, (1, 128)).astype(np.int64) \
                if "input_ids" in i.name else np.zeros((1, 128), np.int64)
    if not os.path.exists(int8):
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)
    return fp32, int8, feeds


MODEL_CONTENDERS = ["pyinfer-fp32", "pyinfer-int8", "ort-fp32", "ort-int8"]


def _model_fn(model, contender, threads):
    from pyinfer.compress import quantize_dynamic
    fp32, int8, feeds = _model_paths(model)
    if contender.startswith("ort"):
        sess = _session(int8 if contender == "ort-int8" else fp32, threads)
        fn = lambda: sess.run(None, feeds)  # noqa: E731
    else:
        g = pyinfer.load(fp32)
        if contender == "pyinfer-int8":
            g = quantize_dynamic(g)
        it = pyinfer.Interpreter(g)
        fn = lambda: it.run(feeds)  # noqa: E731
    return fn


@pytest.mark.parametrize("contender", MODEL_CONTENDERS)
@pytest.mark.parametrize("model", ["mlp", "minilm"])
def test_model(benchmark, threads, model, contender):
    benchmark.group = f"{model} ({threads} threads)"
    fn = _model_fn(model, contender, threads)
    fn()
    benchmark(fn)


def _blocks(groups, threads, block=20, repeats=3):
    """Each contender run ``block`` times in a row (after warm-up), contenders
    in turn, ``repeats`` times: medians of each contender's blocks, in ms."""
    import time
    pyinfer.set_num_threads(threads)
    for title, fns in groups:
        for fn in fns.values():
            for _ in range(3):
                fn()
        times = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                for _ in range(block):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(v)) * 1e3 for name, v in times.items()}
        first = next(iter(med))
        print(f"| {title} (blocks) | " + " | ".join(f"{n} {ms:.3f} ms" for n, ms in med.items()) +
              " | " + ", ".join(f"{first} vs {n} {med[n] / med[first]:.2f}x" for n in med
                                if n != first) + f" | load {os.getloadavg()[0]:.1f} |", flush=True)


def _interleaved(groups, threads, rounds):
    """Each group's contenders alternated round by round (one call each per
    round, after warm-up calls): medians in ms, and ratios to the first."""
    import time
    pyinfer.set_num_threads(threads)
    for title, fns in groups:
        for fn in fns.values():
            for _ in range(3):
                fn()
        times = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(v)) * 1e3 for name, v in times.items()}
        first = next(iter(med))
        print(f"| {title} | " + " | ".join(f"{n} {ms:.3f} ms" for n, ms in med.items()) + " | " +
              ", ".join(f"{first} vs {n} {med[n] / med[first]:.2f}x" for n in med if n != first)
              + f" | load {os.getloadavg()[0]:.1f} |", flush=True)


def _node_time(shapes, threads, rounds):
    """Kernel against kernel: our C GEMM (pi_u8s8_gemm, int32 out, the weight
    packed once, pointers and workspace made before the loop) timed around the
    one cffi call, against ORT's MatMulInteger node time from its own profiler;
    one call of each per round.  Both results are checked against the exact
    product."""
    import json
    import time
    from pyinfer.backends import c_quant
    from pyinfer.backends._native import ffi, lib
    pyinfer.set_num_threads(threads)
    for m, k, n in shapes:
        rng = np.random.default_rng(0)
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b = rng.integers(-64, 65, (k, n), dtype=np.int8)
        w = ops.qweight(b, 0)
        out = np.empty((m, n), np.int32)
        # what c_quant.qgemm passes, made once (its per-call Python is not the kernel's)
        pb = c_quant._ptr("char", c_quant.packed_weight(w))
        ws, ws_size = c_quant._workspace(lib.pi_u8s8_gemm_workspace_bytes(pb, m))
        pa, po = c_quant._ptr("unsigned char", a), c_quant._ptr("char", out)

        def ours_call():
            return lib.pi_u8s8_gemm(m, n, k, pa, k, 1, 7, pb, lib.PI_QOUT_S32, ffi.NULL, ffi.NULL,
                                    0, 1.0, 0, po, n * 4, 4, ws, ws_size)
        # peers.ort_session's options (no spinning), plus ORT's profiler
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(_TMP, f"ort_{m}x{k}x{n}")
        sess = ort.InferenceSession(_mmi_model(b, m, k).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        ours, warm = [], 3
        for r in range(rounds + warm):
            t0 = time.perf_counter()
            status = ours_call()
            t1 = time.perf_counter()
            assert status == 0, status
            y = sess.run(None, {"a": a})[0]
            if r >= warm:
                ours.append(t1 - t0)
        exact = (a.astype(np.int64) - 7) @ b.astype(np.int64)
        assert np.array_equal(out, exact) and np.array_equal(y, exact)
        path = sess.end_profiling()
        with open(path) as f:
            events = json.load(f)
        os.remove(path)
        node = [e["dur"] * 1e-6 for e in events
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")][warm:]
        mo, mn, mac = float(np.median(ours)), float(np.median(node)), m * k * n
        print(f"| {m}x{k}x{n} node time | pyinfer C call {mo * 1e3:.3f} ms ({mac / mo / 1e9:.1f} "
              f"GMAC/s, best {min(ours) * 1e3:.3f}) | ORT MatMulInteger node {mn * 1e3:.3f} ms "
              f"({mac / mn / 1e9:.1f} GMAC/s, best {min(node) * 1e3:.3f}) | pyinfer vs ORT "
              f"{mn / mo:.2f}x | load {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--only", choices=["gemm", "mlp"], default=None)
    ap.add_argument("--shapes", default=None, help="MxKxN,... (default: all of SHAPES)")
    ap.add_argument("--blocks", action="store_true",
                    help="20 runs of each contender in a row, 3 times, ORT at its defaults "
                         "(spinning workers) instead of interleaved single calls")
    ap.add_argument("--node-time", action="store_true",
                    help="kernel against kernel: our C qgemm call against ORT's profiled "
                         "MatMulInteger node time (int32 out), interleaved")
    opts = ap.parse_args()
    _ORT_DEFAULTS = opts.blocks
    shapes = SHAPES if opts.shapes is None else \
        [tuple(int(v) for v in s.split("x")) for s in opts.shapes.split(",")]
    if opts.node_time:
        print(f"threads {opts.threads}, rounds {opts.rounds}, load {os.getloadavg()}")
        _node_time(shapes, opts.threads, opts.rounds)
        raise SystemExit(0)
    groups = []
    if opts.only in (None, "gemm"):
        for shape in shapes:
            title = "x".join(map(str, shape))
            fns = {c: _gemm_fn(c, *shape, opts.threads) for c in GEMM_CONTENDERS}
            # kernels (u8 A in), then the dynamic->float path (float A in): two groups
            groups.append((title, {c: fns[c] for c in KERNEL_CONTENDERS}))
            groups.append((title + " dyn", {c: fns[c] for c in DYN_CONTENDERS}))
    if opts.only in (None, "mlp"):
        groups.append(("mlp", {c: _model_fn("mlp", c, opts.threads) for c in
                               ["pyinfer-int8", "pyinfer-fp32", "ort-int8", "ort-fp32"]}))
    print(f"threads {opts.threads}, rounds {opts.rounds}, load {os.getloadavg()}")
    if opts.blocks:
        _blocks(groups, opts.threads)
    else:
        _interleaved(groups, opts.threads, opts.rounds)
