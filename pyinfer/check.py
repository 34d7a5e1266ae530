"""``pyinfer.check(model, inputs)``: where does pyinfer's answer part from the reference?

Three comparisons, each on the same inputs, each pointing at a different culprit:

1. **import** (ONNX models, ``reference="onnx"``): every tensor the ONNX model
   names, as ``onnx.reference.ReferenceEvaluator`` computes it, against the same
   name in pyinfer's graph evaluated by its NumPy reference
   (``pyinfer.graph.reference.evaluate_all``).  A divergence here is a converter bug.
2. **kernels**: each node of the (specialized, unoptimized) graph run alone
   through pyinfer's planner and kernels (``backend``) on the reference values
   of its inputs, against the reference value of its outputs.  Inputs come from
   the reference, so an error does not travel: the first node that diverges is
   the node whose kernel is wrong.
3. **outputs**: the whole model through ``pyinfer.Interpreter`` (passes, fusion,
   planner, arena) against the reference outputs.  A divergence here that the
   nodes alone do not show is a pass or planner bug.

A value diverges when ``max|a - r| > atol + rtol * max|r|`` (norm-wise: a sum of
many terms has an error relative to its terms, not to a result that cancels
near zero); NaN/Inf must match; integer and bool values must be equal.  The
report gives, for the first divergence, the node, its op, the max abs error and
the relative error ``max|a - r| / max|r|``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

# rtol / atol by dtype (norm-wise, see above); float32 keeps ~7 digits, a kernel
# that sums a few thousand terms in another order loses about two of them.
DEFAULT_TOL = {np.dtype(np.float16): (1e-2, 1e-3), np.dtype(np.float32): (1e-4, 1e-6),
               np.dtype(np.float64): (1e-10, 1e-14)}
DEFAULT_DIMS = {"batch": 1}
DEFAULT_SYMBOL = 16            # any other symbolic dim (a sequence, say)


@dataclass
class Divergence:
    stage: str                 # "import" | "kernels" | "outputs"
    node: str                  # node name (ONNX node name for "import")
    op: str
    value: str                 # the tensor compared
    max_abs: float
    max_rel: float
    shape: tuple = ()
    detail: str = ""           # the kernel that ran, or why the comparison failed

    def __str__(self):
        extra = f" [{self.detail}]" if self.detail else ""
        return (f"{self.stage}: node '{self.node}' ({self.op}) output '{self.value}' "
                f"{'x'.join(map(str, self.shape)) or 'scalar'}: max abs err {self.max_abs:.3g}, "
                f"rel err {self.max_rel:.3g}{extra}")


@dataclass
class CheckResult:
    """What ``check`` found.  ``ok`` is False when anything diverged; ``first``
    is the first divergence in graph order (kernels before outputs)."""
    reference: str
    backend: str
    inputs: dict
    stages: dict = field(default_factory=dict)     # stage -> (compared, diverged count, seconds)
    divergences: list = field(default_factory=list)
    rtol: Optional[float] = None
    atol: Optional[float] = None

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def first(self) -> Optional[Divergence]:
        return self.divergences[0] if self.divergences else None

    def report(self) -> str:
        ins = ", ".join(f"{k} {'x'.join(map(str, v.shape)) or 'scalar'} {v.dtype}"
                        for k, v in self.inputs.items())
        lines = [f"reference: {self.reference}; pyinfer backend: {self.backend}",
                 f"inputs: {ins}"]
        for stage, (n, bad, secs) in self.stages.items():
            state = "all agree" if not bad else f"{bad} diverge"
            lines.append(f"  {stage:<8} {n} compared, {state}  ({secs:.2f} s)")
        if self.ok:
            lines.append("OK: pyinfer agrees with the reference everywhere")
        else:
            lines.append(f"FIRST DIVERGENCE: {self.first}")
            for d in self.divergences[1:6]:
                lines.append(f"  then {d}")
            if len(self.divergences) > 6:
                lines.append(f"  ... and {len(self.divergences) - 6} more")
        return "\n".join(lines)


# ---- comparing ------------------------------------------------------------------------------

def compare(actual, expected, rtol=None, atol=None) -> Optional[tuple]:
    """None when they agree, else ``(max_abs, max_rel, why)``."""
    a, r = np.asarray(actual), np.asarray(expected)
    if a.shape != r.shape:
        return float("inf"), float("inf"), f"shape {a.shape} != reference {r.shape}"
    if r.dtype.kind not in "fc" or a.dtype.kind not in "fc":
        bad = int(np.count_nonzero(a != r))
        if not bad:
            return None
        diff = np.abs(a.astype(np.float64) - r.astype(np.float64))
        return float(diff.max()), float(diff.max() / max(float(np.abs(r).max()), 1.0)), \
            f"{bad} of {r.size} differ"
    rt, at = DEFAULT_TOL.get(r.dtype, DEFAULT_TOL[np.dtype(np.float32)])
    rtol = rt if rtol is None else rtol
    atol = at if atol is None else atol
    a64, r64 = a.astype(np.float64), r.astype(np.float64)
    fin_a, fin_r = np.isfinite(a64), np.isfinite(r64)
    special = (~fin_r | ~fin_a) & ~((a64 == r64) | (np.isnan(a64) & np.isnan(r64)))
    if r.size == 0:
        return None
    both = fin_a & fin_r
    diff = np.where(both, np.abs(a64 - r64), 0.0)
    max_abs = float(diff.max())
    scale = float(np.abs(np.where(fin_r, r64, 0.0)).max())
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    if special.any():
        return (float("inf") if not max_abs else max_abs), max_rel, \
            f"{int(special.sum())} NaN/Inf where the reference differs"
    if max_abs > atol + rtol * scale:
        return max_abs, max_rel, ""
    return None


# ---- inputs ---------------------------------------------------------------------------------

def random_inputs(specs, dims: Optional[dict] = None, seed: int = 0) -> dict:
    """Random arrays for input specs ``[(name, shape, dtype)]``: symbolic dims
    from ``dims`` (default: ``batch`` 1, any other 16); floats standard normal,
    integers 0 or 1 (valid as an index into any table and as a mask), bools random."""
    dims = {**DEFAULT_DIMS, **(dims or {})}
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, dtype in specs:
        dtype = np.dtype(dtype)
        concrete = tuple(d if isinstance(d, int) else int(dims.get(d, dims.get("*", DEFAULT_SYMBOL)))
                         for d in shape)
        if dtype.kind == "f":
            out[name] = rng.standard_normal(concrete).astype(dtype)
        elif dtype.kind in "iu":
            out[name] = rng.integers(0, 2, concrete).astype(dtype)
        elif dtype.kind == "b":
            out[name] = rng.random(concrete) < 0.5
        else:
            raise ValueError(f"random_inputs: input '{name}' has dtype {dtype}, which random "
                             f"inputs cannot fill; pass it explicitly")
    return out


# ---- the model ------------------------------------------------------------------------------

def _as_onnx(model):
    """The ModelProto of a path / bytes / ModelProto, else None (a pyinfer Graph)."""
    from .graph.ir import Graph
    if isinstance(model, Graph):
        return None
    import onnx
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return onnx.load(str(model))


def _onnx_values(proto, feeds) -> tuple:
    """Every tensor the ONNX reference evaluator computes, by name; and the node
    (name, op type) that produced each."""
    from onnx.reference import ReferenceEvaluator
    ev = ReferenceEvaluator(proto)
    values = ev.run(None, feeds, intermediate=True)
    producers = {}
    for i, node in enumerate(proto.graph.node):
        for o in node.output:
            producers[o] = (node.name or f"#{i}", node.op_type)
    return values, producers


def _onnx_name_map(proto, g) -> dict:
    """ONNX tensor name -> pyinfer Value, for the tensors that can be matched:
    the graph outputs by name, and the outputs of the pyinfer node a converter
    made for an ONNX node.  Converters name their nodes after the ONNX node
    (``N``, then ``N_<k>`` for more), and the last of them produces the result;
    a candidate whose shape or dtype differs from the ONNX tensor's is not
    compared (see ``_comparable``), nor is an ONNX node that left no node."""
    import re
    onnx_names = {n.name for n in proto.graph.node}
    family: dict = {}
    for node in g.nodes:       # graph order: the last one made per ONNX node wins
        base = node.name
        if base not in onnx_names:
            m = re.fullmatch(r"(.*)_\d+", node.name)
            base = m.group(1) if m and m.group(1) in onnx_names else None
        if base is not None:
            family[base] = node
    by_name = {}
    for onnx_node in proto.graph.node:
        node = family.get(onnx_node.name)
        if node is not None and len(node.outputs) == len(onnx_node.output):
            for name, v in zip(onnx_node.output, node.outputs):
                by_name[name] = v
    for v in g.outputs:
        by_name[v.output_name or v.name] = v
    return by_name


def _comparable(v, ref) -> bool:
    ref = np.asarray(ref)
    return tuple(v.shape) == ref.shape and (v.dtype == ref.dtype or
                                            (v.dtype.kind == ref.dtype.kind == "f"))


def _node_graph(node, env):
    """``node`` alone in a graph: its non-constant inputs become graph inputs with
    the concrete shapes of the reference values in ``env``."""
    from .graph.ir import Graph, Value
    g = Graph(f"check:{node.name}")
    ins, feeds, seen = [], [], {}
    for v in node.inputs:
        if v is None or v.is_constant:
            ins.append(None if v is None else Value(v.name, v.shape, v.dtype, data=v.data))
            continue
        if v not in seen:
            x = env[v]
            seen[v] = g.input(f"in{len(seen)}", x.shape, x.dtype)
            feeds.append(x)
        ins.append(seen[v])
    outs = g.add(node.op, ins, dict(node.attrs), name=node.name, n_outputs=len(node.outputs))
    outs = outs if isinstance(outs, tuple) else (outs,)
    for o in outs:
        g.output(o)
    return g, feeds


def check(model, inputs=None, *, backend: str = "auto", reference: Optional[str] = None,
          rtol: Optional[float] = None, atol: Optional[float] = None, dims: Optional[dict] = None,
          seed: int = 0, stages=("import", "kernels", "outputs"),
          progress: Optional[Callable[[int, int, str], None]] = None) -> CheckResult:
    """Run ``model`` (an ONNX path / bytes / ModelProto, or a ``pyinfer.Graph``)
    on pyinfer and on a reference, and find where they diverge.

    inputs: dict by input name (or list in input order); None: random ones
    (``random_inputs``, symbolic dims from ``dims``).  reference: "onnx"
    (``onnx.reference.ReferenceEvaluator``; the default for ONNX models) or
    "numpy" (``pyinfer.graph.reference``; the only one for a Graph).
    rtol/atol: the norm-wise tolerance (default by dtype, ``DEFAULT_TOL``).
    progress(done, total, node_name) is called as the kernel stage goes.
    Returns a ``CheckResult`` (``.ok``, ``.first``, ``.report()``)."""
    from . import Interpreter
    from .graph import reference as graph_reference
    from .plan.plan import specialize

    proto = _as_onnx(model)
    if reference is None:
        reference = "numpy" if proto is None else "onnx"
    if reference not in ("onnx", "numpy"):
        raise ValueError(f"check: argument 'reference' expected 'onnx' or 'numpy', "
                         f"received {reference!r}")
    if reference == "onnx" and proto is None:
        raise ValueError("check: reference 'onnx' needs an ONNX model, received a pyinfer.Graph")
    if proto is not None:
        from . import load
        graph = load(proto)
    else:
        graph = model

    specs = [(v.name, v.shape, v.dtype) for v in graph.inputs]
    if inputs is None:
        inputs = random_inputs(specs, dims, seed)
    elif not isinstance(inputs, dict):
        inputs = dict(zip([s[0] for s in specs], inputs))
    missing = [s[0] for s in specs if s[0] not in inputs]
    if missing:
        from .errors import ShapeError
        raise ShapeError(f"check: inputs expected names {[s[0] for s in specs]}, missing {missing}")
    inputs = {s[0]: np.ascontiguousarray(inputs[s[0]], dtype=s[2]) for s in specs}
    feeds = [inputs[s[0]] for s in specs]

    ref_name = ("onnx.reference.ReferenceEvaluator" if reference == "onnx"
                else "pyinfer.graph.reference (NumPy)")
    result = CheckResult(ref_name, backend, inputs, rtol=rtol, atol=atol)

    # The graph as every plan sees it: concrete shapes, shape chains folded.
    g = specialize(graph, [x.shape for x in feeds])
    env = graph_reference.evaluate_all(g, feeds)

    def value_of(v):
        return v.data if v.is_constant else env[v]

    if reference == "onnx" and "import" in stages:
        t0 = time.perf_counter()
        onnx_vals, producers = _onnx_values(proto, inputs)
        by_name = _onnx_name_map(proto, g)
        n = 0
        for node in proto.graph.node:
            for name in node.output:
                v = by_name.get(name)
                if not name or v is None or name not in onnx_vals or \
                        not _comparable(v, onnx_vals[name]):
                    continue
                n += 1
                bad = compare(value_of(v), onnx_vals[name], rtol, atol)
                if bad is not None:
                    result.divergences.append(Divergence(
                        "import", producers[name][0], producers[name][1], name, bad[0], bad[1],
                        tuple(np.shape(onnx_vals[name])), bad[2] or "pyinfer's NumPy reference "
                        "of the imported graph vs ONNX's reference"))
        result.stages["import"] = (n, len(result.divergences), time.perf_counter() - t0)

    if "kernels" in stages:
        t0 = time.perf_counter()
        before = len(result.divergences)
        todo = [nd for nd in g.nodes]
        for i, node in enumerate(todo):
            if progress:
                progress(i, len(todo), node.name)
            try:
                ng, node_feeds = _node_graph(node, env)
                interp = Interpreter(ng, backend=backend)
                got = interp.run(node_feeds)
                kernel = ", ".join(s.kernel for s in interp.plan.steps) or "folded"
            except Exception as exc:  # a kernel that cannot run is a divergence too
                result.divergences.append(Divergence(
                    "kernels", node.name, node.op.value, node.outputs[0].name, float("inf"),
                    float("inf"), tuple(node.outputs[0].shape), f"{type(exc).__name__}: {exc}"))
                continue
            for v, a in zip(node.outputs, got):
                bad = compare(a, env[v], rtol, atol)
                if bad is not None:
                    result.divergences.append(Divergence(
                        "kernels", node.name, node.op.value, v.name, bad[0], bad[1],
                        tuple(np.shape(env[v])), (bad[2] + "; " if bad[2] else "") + f"ran {kernel}"))
        if progress:
            progress(len(todo), len(todo), "")
        result.stages["kernels"] = (len(todo), len(result.divergences) - before,
                                    time.perf_counter() - t0)

    if "outputs" in stages:
        t0 = time.perf_counter()
        before = len(result.divergences)
        nodes_ok = not any(d.stage == "kernels" for d in result.divergences)
        got = Interpreter(graph, backend=backend).run(feeds)
        if reference == "onnx":
            if "import" not in stages:
                onnx_vals = _onnx_values(proto, inputs)[0]
            want = [onnx_vals[o.name] for o in proto.graph.output]
        else:
            want = [value_of(v) for v in g.outputs]
        for v, a, r in zip(graph.outputs, got, want):
            bad = compare(a, r, rtol, atol)
            if bad is not None:
                name = v.output_name or v.name
                why = bad[2] or ("the optimized plan (passes, fusion, arena) vs the reference, "
                                 "while every node alone agrees" if nodes_ok else "")
                result.divergences.append(Divergence(
                    "outputs", f"output {name}", "model", name, bad[0], bad[1],
                    tuple(np.shape(r)), why))
        result.stages["outputs"] = (len(got), len(result.divergences) - before,
                                    time.perf_counter() - t0)
    return result
