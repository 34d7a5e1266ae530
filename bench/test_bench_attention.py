"""Fused attention (c.attention, csrc/pi_attention.c) against what it replaced
and against the peers, at MiniLM's shapes: B = 1 and 8, H = 12, S = 128,
D = 32, float32, q/k/v the (B, S, H*D) projections seen as (B, H, S, D)
views, an additive (B, 1, 1, S) padding mask.

Contenders, in the same process:

* ``c.attention``: the prepared C call (``c_attention.Attention``), reading the
  views in place and writing into a preallocated output, as a plan runs it;
* ``3-op``: the lowering it replaced -- ``ops.matmul``, mul, add, softmax,
  ``ops.matmul`` into a preallocated score buffer and output;
* ``torch-sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` on the
  same memory (``torch.from_numpy`` views), ``inference_mode``;
* ``onnxruntime``: a MatMul(q, Transpose(k)) * scale + mask -> Softmax ->
  MatMul(v) ONNX graph on contiguous (B, H, S, D) inputs (its sessions from
  ``pyinfer.peers.ort_session``: workers do not spin).

pytest-benchmark:  pytest bench/test_bench_attention.py --benchmark-only [--bench-threads N]

Script mode (the tables of the report):

    python bench/test_bench_attention.py [--threads 1 2] [--batch 1 8] [--rounds 21]
        [--model]      # also MiniLM end to end: before (3-op) / after, ONNX Runtime fp32

Kernels: contenders alternate call by call for ``--rounds`` rounds (median).
``--model``: the whole MiniLM plan with the old attention lowering ("before",
planned with the C attention kernel hidden from the registry), the current one
("after") and ONNX Runtime, first interleaved call by call (ORT not spinning),
then block-wise (5 warm-up runs, then 20 runs of each contender, three times;
ORT at its default settings, spinning workers included).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import time

import numpy as np
import pytest

H, S, D = 12, 128, 32
BATCHES = (1, 8)
CONTENDERS = ("c.attention", "3-op", "torch-sdpa", "onnxruntime")

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=5, min_rounds=20,
                                   max_time=2.0, disable_gc=True)


@functools.lru_cache(maxsize=None)
def _inputs(b: int):
    rng = np.random.default_rng(b)

    def heads():  # a (B, S, H*D) projection seen as (B, H, S, D)
        return rng.standard_normal((b, S, H * D)).astype(np.float32) \
            .reshape(b, S, H, D).transpose(0, 2, 1, 3)
    mask = np.zeros((b, 1, 1, S), np.float32)
    for i in range(b):
        mask[i, ..., S - 7 * (i + 1):] = -10000.0      # padding keys
    return heads(), heads(), heads(), mask


def flops(b: int) -> float:
    return 2.0 * b * H * S * S * (D + D)


def _c_attention(q, k, v, mask, threads):
    import pyinfer
    from pyinfer.backends.c_attention import Attention
    pyinfer.set_num_threads(threads)
    out = np.empty(q.shape[:-1] + (v.shape[-1],), np.float32)
    mb = np.broadcast_to(mask, q.shape[:-1] + (k.shape[-2],))
    call = Attention.plan(q, k, v, mb, out, 1 / np.sqrt(D))

    def fn():
        call(q, k, v, mb, out=out)
        return out
    return fn


def _three_op(q, k, v, mask, threads):
    import pyinfer
    from pyinfer import ops
    pyinfer.set_num_threads(threads)
    s = np.empty(q.shape[:-1] + (k.shape[-2],), np.float32)
    out = np.empty(q.shape[:-1] + (v.shape[-1],), np.float32)
    scale = np.float32(1 / np.sqrt(D))
    kt = np.swapaxes(k, -1, -2)

    def fn():
        ops.matmul(q, kt, out=s)
        ops.mul(s, scale, out=s)
        ops.add(s, mask, out=s)
        ops.softmax(s, axis=-1, out=s)
        ops.matmul(s, v, out=out)
        return out
    return fn


def _torch_sdpa(q, k, v, mask, threads):
    from pyinfer import peers
    why = peers.why_unavailable("torch")
    if why:
        raise peers.PeerUnavailable(why)
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    tq, tk, tv, tm = (torch.from_numpy(t) for t in (q, k, v, mask))

    def fn():
        with torch.inference_mode():
            return F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm)
    return fn


def _ort_model(b: int):
    from onnx import TensorProto, helper, numpy_helper
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["ss"]),
             helper.make_node("Add", ["ss", "mask"], ["sm"]),
             helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info(n, f, [b, H, S, D]) for n in "qkv"] +
        [helper.make_tensor_value_info("mask", f, [b, 1, 1, S])],
        [helper.make_tensor_value_info("y", f, None)],
        initializer=[numpy_helper.from_array(np.array(1 / np.sqrt(D), np.float32), "scale")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                             producer_name="pyinfer.bench")


def _onnxruntime(q, k, v, mask, threads):
    from pyinfer import peers
    why = peers.why_unavailable("onnxruntime")
    if why:
        raise peers.PeerUnavailable(why)
    run = peers.ort_session(_ort_model(q.shape[0]), threads).run
    feed = {"q": np.ascontiguousarray(q), "k": np.ascontiguousarray(k),
            "v": np.ascontiguousarray(v), "mask": mask}
    return lambda: run(None, feed)[0]


MAKERS = {"c.attention": _c_attention, "3-op": _three_op, "torch-sdpa": _torch_sdpa,
          "onnxruntime": _onnxruntime}


@pytest.mark.parametrize("b", BATCHES)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_attention(benchmark, threads, b, contender):
    from pyinfer import peers
    q, k, v, mask = _inputs(b)
    benchmark.group = f"attention B={b} H={H} S={S} D={D}"
    try:
        fn = MAKERS[contender](q, k, v, mask, threads)
    except peers.PeerError as exc:
        pytest.skip(f"{contender}: {exc}")
    benchmark.extra_info.update(contender=contender, b=b, threads=threads, flops=flops(b))
    fn()
    benchmark(fn)
    benchmark.extra_info["gflops"] = flops(b) / benchmark.stats.stats.median / 1e9


# ---- script mode --------------------------------------------------------------------------

def _interleaved(fns: dict, rounds: int) -> dict:
    from pyinfer.timing import interleaved
    return interleaved(fns, rounds, warmup=3)


def _blocks(fns: dict, per_block: int = 20, repeats: int = 3, warmup: int = 5) -> dict:
    """Median of each contender over ``repeats`` blocks of ``per_block`` runs in a row."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            for _ in range(warmup):
                fn()
            for _ in range(per_block):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {name: float(np.median(t)) for name, t in times.items()}


def kernel_table(batches, thread_counts, rounds):
    from pyinfer import peers
    print(f"\nattention H={H} S={S} D={D} float32, interleaved, median of {rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| B | threads | contender | ms | GFLOP/s | x c.attention time |")
    print("|---|---|---|---|---|---|")
    for b in batches:
        q, k, v, mask = _inputs(b)
        for th in thread_counts:
            fns = {}
            for name, make in MAKERS.items():
                try:
                    fns[name] = make(q, k, v, mask, th)
                except peers.PeerError as exc:
                    print(f"| {b} | {th} | {name} | unavailable: {exc} | | |")
            base = fns["c.attention"]()
            want = np.asarray(fns["3-op"]()).copy()
            assert np.allclose(base, want, rtol=1e-4, atol=1e-5)
            med = _interleaved(fns, rounds)
            for name, t in med.items():
                print(f"| {b} | {th} | {name} | {t * 1e3:.3f} | {flops(b) / t / 1e9:.1f} | "
                      f"{t / med['c.attention']:.2f} |")


@contextlib.contextmanager
def _without_c_attention():
    """Plans made inside lower ATTENTION as before the fused kernel (3 eager ops)."""
    from pyinfer import registry
    table = registry._KERNELS["attention"]
    saved = table.pop("c")
    try:
        yield
    finally:
        table["c"] = saved


def model_table(batches, thread_counts, rounds):
    import pyinfer
    from pyinfer import peers
    from pyinfer.models import bert, minilm
    path = str(minilm.onnx_path())
    graph = pyinfer.load(path)
    words = "the a cat dog sat on mat quickly brown fox jumps over lazy river bank".split()
    rng = np.random.default_rng(0)
    print(f"\nMiniLM (all-MiniLM-L6-v2) seq {S}, float32, load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| B | threads | mode | before (3-op) ms | after (c.attention) ms | ORT ms | "
          "before / after | ORT / after |")
    print("|---|---|---|---|---|---|---|---|")
    for b in batches:
        text = [" ".join(rng.choice(words, size=int(rng.integers(20, 120)))) for _ in range(b)]
        feeds = minilm.tokenize(text, pad_to=S)
        xs = [feeds[n] for n in bert.INPUTS]
        for th in thread_counts:
            with _without_c_attention():
                before = pyinfer.Interpreter(graph, threads=th)
                before.prepare([x.shape for x in xs])
            after = pyinfer.Interpreter(graph, threads=th)
            after.prepare([x.shape for x in xs])
            assert "c.attention" in after.explain() and "c.attention" not in before.explain()
            ort_quiet = peers.ort_session(path, th)
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = th
            ort_default = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            feed = dict(zip(bert.INPUTS, xs))
            ya, yb = after.run(xs)[0], before.run(xs)[0]
            yo = ort_quiet.run(None, feed)[0]
            assert np.abs(ya - yo).max() < 1e-3 and np.abs(yb - yo).max() < 1e-3
            fns = {"before": lambda: before.run(xs), "after": lambda: after.run(xs),
                   "ort": lambda: ort_quiet.run(None, feed)}
            med = _interleaved(fns, rounds)
            blk = _blocks({"before": fns["before"], "after": fns["after"],
                           "ort": lambda: ort_default.run(None, feed)})
            for mode, m in (("interleaved, ORT no spin", med), ("blocks, ORT default", blk)):
                print(f"| {b} | {th} | {mode} | {m['before'] * 1e3:.2f} | "
                      f"{m['after'] * 1e3:.2f} | {m['ort'] * 1e3:.2f} | "
                      f"{m['before'] / m['after']:.2f}x | {m['ort'] / m['after']:.2f}x |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=list(BATCHES))
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--model", action="store_true", help="also MiniLM end to end")
    ap.add_argument("--model-only", action="store_true")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    if not args.model_only:
        for th in args.threads:
            with threadpool_limits(limits=th, user_api="blas"):
                kernel_table(args.batch, [th], args.rounds)
    if args.model or args.model_only:
        model_table(args.batch, args.threads, args.rounds)


if __name__ == "__main__":
    main()
