"""int8 convolution in a plan against the float32 one: where does int8 pay?

    python bench/quant_conv_bench.py [--threads 1 2] [--rounds 21] [--resnet [--size 64]]

One Conv (+bias+ReLU) graph per shape, planned three ways: float32, and
``quantize_dynamic`` / ``quantize_static`` with the conv named (so the size
threshold ``CONV_MIN_MACS`` does not keep it float).  The three interpreters
alternate call by call; the table gives the medians and fp32 / int8 (above 1:
int8 faster) beside the conv's multiply-adds per image, which is what
``compress.quantize.CONV_MIN_MACS`` is chosen from.  ``--resnet``: ResNet-18
(pyinfer.models.resnet, --size x --size images) fp32 / dynamic / static end to end with
the cosine of the logits to fp32.
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
    times = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times]


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--resnet", action="store_true")
    ap.add_argument("--size", type=int, default=64, help="--resnet: image size")
    args = ap.parse_args()
    for t in args.threads:
        if args.resnet:
            resnet_table(t, args.rounds, args.size)
        else:
            shapes_table(t, args.rounds)


if __name__ == "__main__":
    main()
