"""Graph-executor benchmarks (the "Graph executor" issue's speed targets).

    python bench/graph_bench.py [--quick] [--markdown]

Every case is measured in one process and run against its peer (NumPy,
ONNX Runtime, pyinfer's own eager op), median of many rounds, with
``pyinfer.bench.measure_many`` (rotating sweeps, so machine noise hits all
contenders alike).  Also importable by bench/test_bench_graph.py.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import pyinfer
import pyinfer as pi
from pyinfer import bench as _bench
from pyinfer import peers as _peers

F32 = np.float32
A, B, C = 0.5, 0.25, 1.5


# ---- cases: each returns {contender name: no-arg callable} -------------------------

def fused_expression(n=1 << 24):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(F32)
    out = np.empty_like(x)

    @pi.jit
    def f(x):
        return pi.tanh(x * A + B) * pi.sigmoid(x) + C

    it = f.interpreter(x)
    fns = {"pyinfer.jit": lambda: it.run([x], outputs=[out]),
           "numpy": lambda: np.tanh(x * F32(A) + F32(B)) * (1 / (1 + np.exp(-x))) + F32(C),
           "copy (bandwidth floor)": lambda: np.copyto(out, x)}
    ort = _ort_elementwise(x)
    if ort:
        fns["onnxruntime"] = ort
    return fns, 2 * x.nbytes


def _ort_elementwise(x):
    if _peers.why_unavailable("onnxruntime"):
        return None
    from onnx import TensorProto, helper
    c = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, [], [v])  # noqa: E731
    nodes = [helper.make_node("Mul", ["x", "a"], ["t0"]), helper.make_node("Add", ["t0", "b"], ["t1"]),
             helper.make_node("Tanh", ["t1"], ["t2"]), helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Mul", ["t2", "s"], ["t3"]), helper.make_node("Add", ["t3", "c"], ["y"])]
    g = helper.make_graph(nodes, "expr", [helper.make_tensor_value_info("x", 1, list(x.shape))],
                          [helper.make_tensor_value_info("y", 1, list(x.shape))],
                          [c("a", A), c("b", B), c("c", C)])
    sess = _peers.ort_session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)],
                                             ir_version=8), pyinfer.get_num_threads())
    return lambda: sess.run(None, {"x": x})


def softmax_expression():
    x = np.random.default_rng(1).standard_normal((12, 1536, 128)).astype(F32)
    out = np.empty_like(x)

    @pi.jit
    def f(x):
        e = pi.exp(x - pi.max(x, axis=-1, keepdims=True))
        return e / pi.sum(e, axis=-1, keepdims=True)

    it = f.interpreter(x)
    return {"pyinfer.jit(expression)": lambda: it.run([x], outputs=[out]),
            "pyinfer.ops.softmax": lambda: pyinfer.ops.softmax(x, out=out)}, 2 * x.nbytes


def layernorm_expression():
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s).astype(F32) for s in ((4096, 384), (384,), (384,)))
    out = np.empty_like(x)

    @pi.jit
    def f(x):
        m = pi.mean(x, axis=-1, keepdims=True)
        d = x - m
        v = pi.mean(d * d, axis=-1, keepdims=True)
        return d / pi.sqrt(v + 1e-5) * w + b

    it = f.interpreter(x)
    return {"pyinfer.jit(expression)": lambda: it.run([x], outputs=[out]),
            "pyinfer.ops.layer_norm": lambda: pyinfer.ops.layer_norm(x, w, b, out=out)}, \
        2 * x.nbytes


def tiny_chain(nodes=100):
    g = pyinfer.Graph("chain")
    x = g.input("x", (1,), F32)
    h = x
    ops = [pyinfer.Op.EXP, pyinfer.Op.TANH, pyinfer.Op.NEG, pyinfer.Op.ABS, pyinfer.Op.SQRT]
    for i in range(nodes):
        h = g.add(ops[i % len(ops)], [h])
    g.output(h)
    it = pyinfer.Interpreter(g, passes="none")
    xv, out = np.ones(1, F32), [np.empty(1, F32)]
    return {f"interpreter, {nodes} nodes": lambda: it.run([xv], outputs=out)}, None


def mlp(batch):
    rng = np.random.default_rng(3)
    dims = (768, 3072, 768, 768)
    ws = [(rng.standard_normal((i, o)) / np.sqrt(i)).astype(F32) for i, o in zip(dims, dims[1:])]
    bs = [rng.standard_normal(o).astype(F32) * 0.1 for o in dims[1:]]
    x = rng.standard_normal((batch, 768)).astype(F32)

    @pi.jit
    def f(x):
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w + b
            if i < len(ws) - 1:
                h = pi.gelu(h)
        return h

    it = f.interpreter(x)
    out = [np.empty((batch, 768), F32)]
    fns = {"pyinfer.jit": lambda: it.run([x], outputs=out)}

    def np_mlp():
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w + b
            if i < len(ws) - 1:
                h = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))
        return h
    fns["numpy (tanh gelu)"] = np_mlp
    if not _peers.why_unavailable("onnxruntime"):
        fns["onnxruntime"] = _ort_mlp(x, ws, bs)
    return fns, None


def _ort_mlp(x, ws, bs):
    from onnx import helper, numpy_helper
    nodes, inits, last = [], [], "x"
    for i, (w, b) in enumerate(zip(ws, bs)):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        last = f"a{i}"
        if i < len(ws) - 1:
            node, domains = _peers._gelu_node(last, f"g{i}")
            nodes.append(node)
            last = f"g{i}"
    _, domains = _peers._gelu_node("q", "r")
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", 1, list(x.shape))],
                          [helper.make_tensor_value_info(last, 1, None)], inits)
    imports = [helper.make_opsetid("", _peers._ORT_OPSET)] + \
        [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(g, opset_imports=imports, ir_version=9 if _peers._ORT_OPSET <= 20 else 10)
    sess = _peers.ort_session(model, pyinfer.get_num_threads())
    return lambda: sess.run(None, {"x": x})


def arena_report():
    ws = [(np.eye(768, dtype=F32), np.zeros(768, F32)) for _ in range(12)]

    @pi.jit
    def f(x):
        h = x
        for w, b in ws:
            h = pi.gelu(h @ w + b)
        return h

    plan = f.interpreter(np.ones((64, 768), F32)).plan
    return plan.arena_bytes, plan.naive_bytes


CASES = {
    "tanh(x*a+b)*sigmoid(x)+c, 16M f32": fused_expression,
    "softmax as NumPy expression 12x1536x128": softmax_expression,
    "layer_norm as NumPy expression 4096x384": layernorm_expression,
    "100 tiny unfused ops": tiny_chain,
    "MLP 768-3072-768-768 GELU, batch 1": lambda: mlp(1),
    "MLP 768-3072-768-768 GELU, batch 64": lambda: mlp(64),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    timer = _bench.QUICK if args.quick else _bench.FULL
    info = _bench.machine_info()
    print(f"# pyinfer graph benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# {info.get('cpu')}, {pyinfer.get_num_threads()} threads, ISA {info.get('isa')}")
    sep = " | " if args.markdown else "  "
    print(sep.join(["case", "contender", "median", "spread", "vs first", "GB/s"]))
    for name, make in CASES.items():
        fns, nbytes = make()
        results = _bench.measure_many(fns, timer)
        first = None
        for contender, res in results.items():
            if isinstance(res, Exception):
                print(sep.join([name, contender, f"failed: {res}", "", "", ""]))
                continue
            t = res[0]
            first = first or t.median
            gbs = f"{nbytes / t.median / 1e9:.1f}" if nbytes else ""
            extra = f" ({t.median / 100 * 1e6:.2f} us/node)" if "tiny" in name else ""
            print(sep.join([name, contender, _bench.fmt_time(t.median) + extra,
                            f"{t.spread:.0%}", f"{t.median / first:.2f}x", gbs]))
        sys.stdout.flush()
    arena, naive = arena_report()
    print(f"12-layer MLP (64x768): arena {arena} bytes, naive {naive} bytes, "
          f"ratio {arena / naive:.3f}")


if __name__ == "__main__":
    main()
