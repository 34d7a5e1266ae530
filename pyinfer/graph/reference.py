"""Evaluate a graph node by node with NumPy: the golden answer for every pass,
plan and backend (a graph's meaning does not depend on how it is run).

``evaluate(graph, inputs)`` returns the outputs; ``evaluate_all`` returns
every value, which ``pyinfer.check``-style tools use to find the first node
that diverges.
"""
from __future__ import annotations

import numpy as np

from ..backends import numpy_ref
from . import opdefs
from .ir import Graph, Node, Op

_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
           "equal": np.equal, "not_equal": np.not_equal, "less": np.less,
           "less_equal": np.less_equal, "greater": np.greater, "greater_equal": np.greater_equal}
_UNARY = dict(numpy_ref.UNARY)
_UNARY["reciprocal"] = lambda x: 1.0 / x
_UNARY["logical_not"] = np.logical_not


def _elementwise(opname: str, args, dtype):
    with np.errstate(all="ignore"):
        if opname in _UNARY:
            r = _UNARY[opname](args[0])
        elif opname in _BINARY:
            r = _BINARY[opname](*args)
        elif opname == "where":
            r = np.where(*args)
        else:
            raise KeyError(f"no reference for elementwise op {opname!r}")
    r = np.asarray(r)
    if dtype is not None and r.dtype.kind == "f" and r.dtype != dtype:
        r = r.astype(dtype)
    return r


def run_program(program, results, inputs, dtype):
    """Evaluate a fused elementwise program (docs/fusion-ir.md) with NumPy."""
    regs = []
    for ins in program:
        tag = ins[0]
        if tag == "in":
            regs.append(np.asarray(inputs[ins[1]]))
        elif tag == "const":
            regs.append(ins[1])
        elif tag == "cast":
            regs.append(np.asarray(regs[ins[1]]).astype(ins[2]))
        else:
            args = [regs[i] for i in ins[1:]]
            arr_args = [np.asarray(a, dtype=dtype) if isinstance(a, float) else a for a in args]
            regs.append(_elementwise(tag, arr_args, dtype))
    return [np.asarray(regs[r]) for r in results]


def eval_node(node: Node, args: list) -> list:
    op, at = node.op, node.attrs
    d = opdefs.get(op)
    if d is not None:
        return d.reference(node, args)
    out_dtype = node.outputs[0].dtype
    if op is Op.CAST:
        return [np.asarray(args[0]).astype(at["dtype"])]
    if op.value in _UNARY or op.value in _BINARY or op is Op.WHERE:
        return [_elementwise(op.value, args, out_dtype if out_dtype.kind == "f" else None)]
    if op in (Op.SUM, Op.MEAN, Op.MAX, Op.MIN):
        fn = {Op.SUM: np.sum, Op.MEAN: np.mean, Op.MAX: np.max, Op.MIN: np.min}[op]
        with np.errstate(all="ignore"):
            return [np.asarray(fn(args[0], axis=at["axis"], keepdims=at["keepdims"]))]
    if op is Op.ARGMAX:
        return [np.asarray(np.argmax(args[0], axis=at["axis"], keepdims=at["keepdims"]))]
    if op is Op.SOFTMAX:
        return [numpy_ref.softmax_ref(args[0], at["axis"])]
    if op is Op.LOG_SOFTMAX:
        return [numpy_ref.log_softmax_ref(args[0], at["axis"])]
    if op is Op.LAYER_NORM:
        x, w, b = (args + [None, None])[:3]
        return [numpy_ref.layer_norm_ref(x, w, b, at["axis"], x.dtype.type(at["eps"]))
                .astype(out_dtype)]
    if op is Op.RMS_NORM:
        x, w = (args + [None])[:2]
        return [numpy_ref.rms_norm_ref(x, w, at["axis"], x.dtype.type(at["eps"])).astype(out_dtype)]
    if op is Op.MATMUL:
        return [np.matmul(*args)]
    if op is Op.GEMM:
        a, b, bias, res = (args + [None, None])[:4]
        a = a.T if at.get("trans_a") else a
        b = b.T if at.get("trans_b") else b
        return [np.asarray(numpy_ref.gemm_ref(a, b, bias, res, at.get("alpha", 1.0),
                                              at.get("activation"))).astype(out_dtype)]
    if op is Op.RESHAPE:
        return [np.reshape(args[0], at["shape"])]
    if op is Op.TRANSPOSE:
        return [np.transpose(args[0], at["perm"])]
    if op is Op.CONCAT:
        return [np.concatenate(args, axis=at["axis"])]
    if op is Op.SLICE:
        return [args[0][at["index"]]]
    if op is Op.ATTENTION:
        q, k, v, mask = (args + [None])[:4]
        s = np.matmul(q, np.swapaxes(k, -1, -2)) * at.get("scale", 1.0 / np.sqrt(q.shape[-1]))
        if mask is not None:
            s = s + mask
        y = np.matmul(numpy_ref.softmax_ref(s.astype(out_dtype), -1), v).astype(out_dtype)
        return [y if "out_perm" not in at else np.transpose(y, at["out_perm"])]
    if op is Op.FUSED_ELEMENTWISE:
        dtypes = at.get("dtypes") or (at["dtype"],) * len(at["results"])
        res = run_program(at["program"], at["results"], args, at["dtype"])
        return [np.broadcast_to(r, at["shape"]).astype(dt) for r, dt in zip(res, dtypes)]
    if op is Op.FUSED_REDUCTION:
        (val,) = run_program(at["program"], at["results"], args, at["dtype"])
        val = np.broadcast_to(val, at["input_shape"]) if "input_shape" in at else val
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[at["reduce"]]
        with np.errstate(all="ignore"):
            return [np.asarray(fn(val, axis=at["axis"], keepdims=at["keepdims"]))
                    .astype(at["dtype"])]
    raise KeyError(f"no reference for {op}")


def evaluate_all(graph: Graph, inputs) -> dict:
    """Every value of the graph (by Value object) for the given inputs (a list
    in graph-input order, or a dict by input name)."""
    if isinstance(inputs, dict):
        inputs = [inputs[v.name] for v in graph.inputs]
    env = {v: np.asarray(x) for v, x in zip(graph.inputs, inputs)}

    def get(v):
        if v is None:
            return None
        if v.is_constant:
            return v.data
        return env[v]

    for node in graph.nodes:
        results = eval_node(node, [get(v) for v in node.inputs])
        for v, r in zip(node.outputs, results):
            r = np.asarray(r)
            if r.dtype != v.dtype:
                r = r.astype(v.dtype)
            env[v] = r
    return env


def evaluate(graph: Graph, inputs) -> list:
    env = evaluate_all(graph, inputs)
    return [v.data if v.is_constant else env[v] for v in graph.outputs]
