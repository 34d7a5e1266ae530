"""ResNet-18 (pyinfer.models.resnet, random weights, 224x224) on pyinfer against
ONNX Runtime on the same ONNX file, same process, same thread count.

    python bench/resnet_bench.py [--threads 2] [--batch 1 8] [--rounds 30]

Contenders alternate call by call (so load from elsewhere hits both alike); the
table gives the median latency of each and ORT/pyinfer (above 1: pyinfer faster).
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    import onnxruntime as ort
    import pyinfer
    from pyinfer.models import resnet
    from pyinfer.timing import interleaved
    pyinfer.set_num_threads(args.threads)
    model = resnet.build(seed=0, size=224)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    it = pyinfer.Interpreter(pyinfer.load(model))
    print(f"load average {os.getloadavg()[0]:.1f}, {args.threads} threads")
    print("| batch | pyinfer ms | ORT ms | ORT / pyinfer | max rel. diff |")
    print("|---|---|---|---|---|")
    for b in args.batch:
        x = np.random.default_rng(b).standard_normal((b, 3, 224, 224)).astype(np.float32)
        (y,) = it.run([x])
        (yo,) = sess.run(None, {"input": x})
        diff = np.abs(y - yo).max() / np.abs(yo).max()
        med = interleaved({"pyinfer": lambda: it.run([x]),
                           "ORT": lambda: sess.run(None, {"input": x})}, args.rounds)
        p, o = med["pyinfer"] * 1e3, med["ORT"] * 1e3
        print(f"| {b} | {p:.2f} | {o:.2f} | {o / p:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
