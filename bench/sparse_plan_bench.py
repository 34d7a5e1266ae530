"""A pruned 768x3072 Linear (ONNX MatMul + Add) in a plan: block-sparse against the dense
layer, m = 1, 2, 4, 8 rows.

    python bench/sparse_plan_bench.py --threads 2 --rounds 15

Dense is the unpruned layer's plan (``c.gemm`` with B packed once, or ``blas.gemm`` at
m = 1, whichever the selector runs); sparse is ``pyinfer.compress.prune(..., "block")``'s
plan, whose SPARSE_GEMM takes the bias add and picks its kernel by measured speed.  Each
round times 10 runs of each, the order alternating (``pyinfer.timing.interleaved``);
medians per run.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import pyinfer
from pyinfer.compress import prune
from pyinfer.timing import interleaved


def linear_onnx(path: str, k: int = 768, n: int = 3072) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    opts = ap.parse_args()
    path = os.path.join(tempfile.mkdtemp(prefix="pyinfer_sparse_"), "linear.onnx")
    linear_onnx(path)
    base = pyinfer.load(path)
    rng = np.random.default_rng(1)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {opts.threads} threads, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| sparsity | block | m | sparse plan us | dense plan us | dense / sparse |")
    print("|---|---|---:|---:|---:|---:|")
    dense = pyinfer.Interpreter(base, threads=opts.threads)
    for sparsity in (0.8, 0.9):
        for block in ((1, 16), (4, 16)):
            sparse = pyinfer.Interpreter(prune(base, sparsity, "block", block), threads=opts.threads)
            for m in (1, 2, 4, 8):
                feeds = {"x": rng.standard_normal((m, 768)).astype(np.float32)}
                fns = {"sparse": lambda: sparse.run(feeds), "dense": lambda: dense.run(feeds)}
                med = interleaved(fns, opts.rounds, number=10, warmup=3)
                us = {k: v * 1e6 for k, v in med.items()}
                print(f"| {sparsity:.0%} | {block[0]}x{block[1]} | {m} | {us['sparse']:.0f} | "
                      f"{us['dense']:.0f} | {us['dense'] / us['sparse']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
