"""MiniLM-L6 (seq 128) fp32 and int8 against ONNX Runtime, one process, rotating order.

    python bench/minilm_bench.py --batch 1 --threads 2 --rounds 21 [--full-range] [--per-tensor]

Contenders: pyinfer fp32, pyinfer int8 (``pyinfer.compress.quantize_dynamic``), ONNX
Runtime fp32 and ONNX Runtime int8 (``onnxruntime.quantization.quantize_dynamic`` with
``per_channel=True, reduce_range=True``: 7-bit weights, what pyinfer picks on AVX2
without VNNI); pyinfer's int8 quantizes activations per row (per token), its
default.  ``--full-range`` adds pyinfer int8 with 8-bit weights, ``--per-tensor``
pyinfer int8 with per-tensor activation scales (ORT's rule).  ORT runs
without spinning (``pyinfer.peers.ort_session``).  Also prints the sentence-embedding
cosine of each int8 model to its fp32 model on the built-in sentences (min, mean).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import pyinfer
from pyinfer.compress import quantize_dynamic
from pyinfer.models import minilm
from pyinfer.peers import ort_session


def _cosine(a, b):
    c = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return f"min {c.min():.5f} mean {c.mean():.5f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--full-range", action="store_true")
    ap.add_argument("--per-tensor", action="store_true")
    opts = ap.parse_args()
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
    src = str(minilm.onnx_path())
    ort_int8 = os.path.join(tempfile.mkdtemp(prefix="pyinfer_minilm_"), "int8.onnx")
    ort_quantize_dynamic(src, ort_int8, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)
    g = pyinfer.load(src)
    models = {"pi-fp32": g, "pi-int8": quantize_dynamic(g)}
    if opts.full_range:
        models["pi-int8-8bit"] = quantize_dynamic(g, reduce_range=False)
    if opts.per_tensor:
        models["pi-int8-tensor"] = quantize_dynamic(g, activation_granularity="tensor")
    interps = {k: pyinfer.Interpreter(m, threads=opts.threads) for k, m in models.items()}
    sessions = {"ort-fp32": ort_session(src, opts.threads), "ort-int8": ort_session(ort_int8, opts.threads)}

    sentences = minilm.tokenize(minilm.SENTENCES)
    emb = {k: it.run(sentences)[1] for k, it in interps.items()}
    emb.update({k: s.run(None, dict(sentences))[1] for k, s in sessions.items()})
    for k in emb:
        if "int8" in k:
            ref = emb["pi-fp32" if k.startswith("pi") else "ort-fp32"]
            print(f"{k} cosine to its fp32 model: {_cosine(emb[k], ref)}")

    rng = np.random.default_rng(2)
    b = opts.batch
    feeds = {"input_ids": rng.integers(100, 2000, (b, 128)).astype(np.int64),
             "attention_mask": np.ones((b, 128), np.int64),
             "token_type_ids": np.zeros((b, 128), np.int64)}
    fns = {k: (lambda it=it: it.run(feeds)) for k, it in interps.items()}
    fns.update({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()})
    for f in fns.values():
        f()
        f()
    names = list(fns)
    times = {k: [] for k in names}
    for r in range(opts.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    ms = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    print(f"batch {b}, seq 128, {opts.threads} threads, {opts.rounds} rounds, "
          f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(" | ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))
    for k in ms:
        if k.startswith("pi-int8"):
            print(f"{k}: vs pi-fp32 {ms['pi-fp32'] / ms[k]:.2f}x, vs ort-int8 "
                  f"{ms['ort-int8'] / ms[k]:.2f}x")
    print(f"pi-fp32 vs ort-fp32 {ms['ort-fp32'] / ms['pi-fp32']:.2f}x")


if __name__ == "__main__":
    main()
