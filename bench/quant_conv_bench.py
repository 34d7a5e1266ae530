"""int8 convolution in a plan against the float32 one: where does int8 pay?

    python bench/quant_conv_bench.py [--threads 1 2] [--rounds 21] [--resnet|--ort [--size 64]]

One Conv (+bias+ReLU) graph per shape, planned three ways: float32, and
``quantize_dynamic`` / ``quantize_static`` with the conv named (so the size
threshold ``CONV_MIN_MACS`` does not keep it float).  The three interpreters
alternate call by call; the table gives the medians and fp32 / int8 (above 1:
int8 faster) beside the conv's multiply-adds per image, which is what
``compress.quantize.CONV_MIN_MACS`` is chosen from.  ``--resnet``: ResNet-18
(pyinfer.models.resnet, --size x --size images) fp32 / dynamic / static end to end with
the cosine of the logits to fp32.  ``--ort``: ResNet-18 quantized by ONNX
Runtime (``quantize_static``, QDQ, u8 activations, per-channel 7-bit weights)
run by pyinfer (every conv a QCONV) and by ONNX Runtime (QLinearConv):
interleaved call by call with ORT's workers not spinning
(``pyinfer.peers.ort_session``), then block-wise (20 runs each, 3 times) with
ORT at its defaults.
"""
import argparse
import os
import time

import numpy as np

SHAPES = [  # (C, K, H=W, kernel, stride, group)
    (8, 8, 8, 3, 1, 1), (16, 16, 16, 3, 1, 1), (32, 32, 16, 3, 1, 1), (16, 32, 32, 1, 1, 1),
    (64, 64, 28, 3, 1, 1), (64, 64, 56, 3, 1, 1), (128, 128, 28, 3, 1, 1), (256, 256, 14, 3, 1, 1),
    (512, 512, 7, 3, 1, 1), (64, 128, 56, 1, 2, 1), (64, 64, 56, 3, 1, 64), (3, 64, 112, 7, 2, 1),
]


def _graph(c, k, hw, ks, stride, group):
    import pyinfer
    from pyinfer.graph.ir import Op
    rng = np.random.default_rng(0)
    g = pyinfer.Graph("conv")
    x = g.input("x", (1, c, hw, hw), np.float32)
    w = (rng.standard_normal((k, c // group, ks, ks)) / np.sqrt(c // group * ks * ks)).astype(
        np.float32)
    y = g.add(Op.CONV, [x, g.constant(w), g.constant(rng.standard_normal(k).astype(np.float32))],
              {"strides": (stride, stride), "pads": (ks // 2,) * 4, "group": group,
               "activation": "relu"}, name="conv")
    g.output(y, "y")
    return g, rng.standard_normal((1, c, hw, hw)).astype(np.float32)


def _interleaved(fns, rounds):
    """Medians of a list of contenders (pyinfer.timing.interleaved keyed by position)."""
    from pyinfer.timing import interleaved
    med = interleaved(dict(enumerate(fns)), rounds, warmup=1)
    return [med[i] for i in range(len(fns))]


def shapes_table(threads, rounds):
    import pyinfer
    from pyinfer import compress
    pyinfer.set_num_threads(threads)
    print(f"\n{threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    print("| C | K | HxW | kxk/s | group | MACs/image | fp32 ms | dynamic ms | static ms | "
          "fp32/dyn | fp32/static |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c, k, hw, ks, s, grp in SHAPES:
        g, x = _graph(c, k, hw, ks, s, grp)
        feed = {"x": x}
        its = [pyinfer.Interpreter(g),
               pyinfer.Interpreter(compress.quantize_dynamic(g, nodes=["conv"])),
               pyinfer.Interpreter(compress.quantize_static(g, feed, nodes=["conv"]))]
        f, d, st = _interleaved([lambda it=it: it.run(feed) for it in its], rounds)
        oh = (hw + 2 * (ks // 2) - ks) // s + 1
        macs = k * (c // grp) * ks * ks * oh * oh
        print(f"| {c} | {k} | {hw} | {ks}/{s} | {grp} | {macs / 1e6:.2f}M | {f * 1e3:.3f} | "
              f"{d * 1e3:.3f} | {st * 1e3:.3f} | {f / d:.2f} | {f / st:.2f} |")


def resnet_table(threads, rounds, size=64):
    import pyinfer
    from pyinfer import compress
    from pyinfer.models import resnet
    pyinfer.set_num_threads(threads)
    g = pyinfer.load(resnet.build(seed=0, batch=1, size=size).SerializeToString())
    rng = np.random.default_rng(1)
    feed = {"input": rng.standard_normal((1, 3, size, size)).astype(np.float32)}
    cal = [{"input": rng.standard_normal((1, 3, size, size)).astype(np.float32)} for _ in range(4)]
    variants = {"fp32": g, "dynamic": compress.quantize_dynamic(g),
                "static": compress.quantize_static(g, cal)}
    its = {k: pyinfer.Interpreter(v) for k, v in variants.items()}
    ref = its["fp32"].run(feed)[0].ravel().astype(np.float64)
    times = _interleaved([lambda it=it: it.run(feed) for it in its.values()], rounds)
    print(f"\nResNet-18 {size}x{size} batch 1, {threads} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| model | int8 convs | ms | fp32 / this | cosine to fp32 |")
    print("|---|---|---|---|---|")
    for (name, it), t in zip(its.items(), times):
        y = it.run(feed)[0].ravel().astype(np.float64)
        cos = y @ ref / np.linalg.norm(y) / np.linalg.norm(ref)
        nq = sum(n.op.name == "QCONV" for n in variants[name].nodes)
        print(f"| {name} | {nq} | {t * 1e3:.2f} | {times[0] / t:.2f} | {cos:.5f} |")


def ort_table(threads, rounds, size=64):
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import pyinfer
    from pyinfer.models import resnet
    from pyinfer.peers import ort_session
    pyinfer.set_num_threads(threads)
    rng = np.random.default_rng(1)
    cal = [{"input": rng.standard_normal((1, 3, size, size)).astype(np.float32)} for _ in range(4)]
    feed = {"input": rng.standard_normal((1, 3, size, size)).astype(np.float32)}

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(cal)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as d:
        f32, pre, qdq = (os.path.join(d, n) for n in ("f32.onnx", "pre.onnx", "qdq.onnx"))
        onnx.save(resnet.build(seed=0, batch=1, size=size), f32)
        quant_pre_process(f32, pre)
        quantize_static(pre, qdq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        model = onnx.load(qdq)
    it = pyinfer.Interpreter(pyinfer.load(model.SerializeToString()))
    nq = sum("qconv2d" in s.kernel for s in it.plan.steps)
    quiet = ort_session(model, threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    default = ort.InferenceSession(model.SerializeToString(), so,
                                   providers=["CPUExecutionProvider"])
    y, yo = it.run(feed)[0], quiet.run(None, feed)[0]
    p, o = _interleaved([lambda: it.run(feed), lambda: quiet.run(None, feed)], rounds)
    blocks = {"pyinfer": [], "ORT": []}
    for _ in range(3):
        for name, fn in (("pyinfer", lambda: it.run(feed)),
                         ("ORT", lambda: default.run(None, feed))):
            fn()
            t = time.perf_counter()
            for _ in range(20):
                fn()
            blocks[name].append((time.perf_counter() - t) / 20)
    step = min(float(onnx.numpy_helper.to_array(i)) for i in model.graph.initializer
               if i.name.startswith("logits") and i.name.endswith("scale"))
    print(f"\nResNet-18 QDQ by ORT, {size}x{size} batch 1, {threads} thread(s), {nq} int8 conv "
          f"steps, load average {os.getloadavg()[0]:.1f}; max |pyinfer - ORT| "
          f"{np.abs(y - yo).max():.3g} (output step {step:.3g})")
    print("| measurement | pyinfer ms | ORT ms | ORT / pyinfer |")
    print("|---|---|---|---|")
    print(f"| interleaved, median of {rounds} | {p * 1e3:.2f} | {o * 1e3:.2f} | {o / p:.2f} |")
    bp, bo = np.array(blocks["pyinfer"]) * 1e3, np.array(blocks["ORT"]) * 1e3
    print(f"| blocks of 20, ORT defaults (3 blocks: min-max) | {bp.min():.2f}-{bp.max():.2f} | "
          f"{bo.min():.2f}-{bo.max():.2f} | {np.median(bo) / np.median(bp):.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--resnet", action="store_true")
    ap.add_argument("--ort", action="store_true")
    ap.add_argument("--size", type=int, default=64, help="--resnet/--ort: image size")
    args = ap.parse_args()
    for t in args.threads:
        if args.ort:
            ort_table(t, args.rounds, args.size)
        elif args.resnet:
            resnet_table(t, args.rounds, args.size)
        else:
            shapes_table(t, args.rounds)


if __name__ == "__main__":
    main()
