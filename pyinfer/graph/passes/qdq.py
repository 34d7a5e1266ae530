"""Quantized-graph fusion: the forms ONNX quantizers write become QGEMM nodes.

Rules (each matched where every interior value has one consumer and is not a
graph output; otherwise the reason goes to ``graph.notes``):

* QDQ weights: ``MatMul(DQ(a_q, sa, za), DQ(w_q, sw, zw))`` and the same with
  Gemm (constant bias) -> ``QGEMM(a_q, w_q, sw, zw, bias, sa, za;
  a_mode="quantized")``: the int8 product instead of two dequantizations and a
  float product.  a_q is u8; w_q a constant s8 (u8 weights are shifted to s8).
* ONNX Runtime's dynamic form: ``DynamicQuantizeLinear(x) -> MatMulInteger
  (QGEMM out int32) -> Cast(float) -> Mul(., Mul(x_scale, w_scale))`` ->
  ``QGEMM(x, ...; a_mode="dynamic", out="float")``.
* Epilogue: a float-output QGEMM without bias absorbs a following ``Add`` of a
  constant row vector (the bias), then an activation.

The fold pass leaves DequantizeLinear alone (its NEVER_FOLD) so that constant
int8 weights reach these rules; what no rule fused is folded here at the end.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ._util import apply_rules, finish, is_output, make_node, note, place, producer, users

ACTIVATIONS = {Op.RELU: "relu", Op.GELU: "gelu", Op.GELU_TANH: "gelu_tanh", Op.SILU: "silu",
               Op.SIGMOID: "sigmoid", Op.TANH: "tanh"}


def _single(graph, use, v):
    return not is_output(graph, v) and len(use.get(v, [])) == 1


def _const_s8_weight(graph, w, zw):
    """(w s8 data, zero (N,) or None) for a constant u8/s8 weight, else None."""
    if not w.is_constant or w.ndim != 2 or (zw is not None and not zw.is_constant):
        return None
    data = w.data
    z = None if zw is None else np.asarray(zw.data).astype(np.int32)
    if data.dtype == np.uint8:
        data = (data ^ np.uint8(0x80)).view(np.int8)
        z = (np.zeros(1, np.int32) if z is None else z) - 128
    elif data.dtype != np.int8:
        return None
    return data, z


def _fuse_qdq_linear(graph: Graph, node, use) -> bool:
    a, b = node.inputs[:2]
    dqa, dqw = producer(a, Op.DEQUANTIZE_LINEAR), producer(b, Op.DEQUANTIZE_LINEAR)
    if dqa is None or dqw is None:
        return False
    if node.op is Op.GEMM and (node.attrs.get("trans_a") or node.attrs.get("trans_b")
                               or len(node.inputs) > 3 or node.attrs.get("alpha", 1.0) != 1.0):
        note(graph, [node], "qdq: Gemm with transposes, alpha or a residual stays float")
        return False
    aq, sa, za = (list(dqa.inputs) + [None])[:3]
    wq, sw, zw = (list(dqw.inputs) + [None])[:3]
    if aq.dtype != np.uint8 or sa.size != 1 or (za is not None and za.size != 1):
        note(graph, [dqa, node], "qdq: activation is not per-tensor uint8")
        return False
    if sw.size != 1 and dqw.attrs.get("axis", 1) % 2 != 1:
        note(graph, [dqw, node], "qdq: weight scales are not per output column (axis 1)")
        return False
    wz = _const_s8_weight(graph, wq, zw)
    if wz is None or not sw.is_constant:
        note(graph, [dqw, node], "qdq: weight is not a constant int8/uint8 matrix")
        return False
    bias = node.inputs[2] if node.op is Op.GEMM and len(node.inputs) > 2 else None
    if bias is not None and (not bias.is_constant or bias.size != wq.shape[1]):
        note(graph, [node], "qdq: bias is not a constant row vector")
        return False
    n = wq.shape[1]
    w_s8 = graph.constant(wz[0], name=f"{wq.name}_s8")
    w_zero = None if wz[1] is None else graph.constant(
        np.broadcast_to(wz[1].reshape(-1), (n,)).astype(np.int32), name=f"{wq.name}_zero")
    bias_v = None if bias is None else graph.constant(
        np.asarray(bias.data, np.float32).reshape(n), name=f"{node.name}_bias")
    za_v = za if za is not None else graph.constant(np.uint8(0), name="zero_u8")
    q = place(graph, make_node(graph, Op.QGEMM,
                               [aq, w_s8, sw, w_zero, bias_v, sa, za_v],
                               {"a_mode": "quantized", "out": "float",
                                "activation": node.attrs.get("activation")},
                               name=f"{node.name}_int8", fused_from=(dqa.name, dqw.name, node.name)),
              node)
    graph.replace_uses(node.outputs[0], q.outputs[0])
    return True


def _fuse_dynamic(graph: Graph, node, use) -> bool:
    """ORT dynamic: QGEMM int32 on a DYNAMIC_QUANTIZE_LINEAR -> CAST -> MUL by scales."""
    if node.attrs.get("out") != "int32" or node.attrs.get("a_mode") != "quantized":
        return False
    a, w, _ws, w_zero, _b, _sa, a_zero = (list(node.inputs) + [None] * 7)[:7]
    dql = producer(a, Op.DYNAMIC_QUANTIZE_LINEAR)
    if dql is None or a_zero is not dql.outputs[2]:
        return False
    y = node.outputs[0]
    if not _single(graph, use, y):
        return False
    cast = use[y][0]
    if cast.op is not Op.CAST or np.dtype(cast.attrs.get("dtype")) != np.float32 or \
            not _single(graph, use, cast.outputs[0]):
        return False
    mul = use[cast.outputs[0]][0]
    if mul.op is not Op.MUL:
        return False
    other = mul.inputs[1] if mul.inputs[0] is cast.outputs[0] else mul.inputs[0]
    smul = producer(other, Op.MUL)
    if smul is None:
        return False
    p, q = smul.inputs
    w_scale = q if p is dql.outputs[1] else p if q is dql.outputs[1] else None
    n = w.shape[1]
    if w_scale is None or not w_scale.is_constant or w_scale.size not in (1, n) or \
            tuple(mul.outputs[0].shape) != tuple(y.shape):
        return False
    ws = graph.constant(np.asarray(w_scale.data, np.float32).reshape(-1), name=f"{w.name}_scale")
    fused = place(graph, make_node(graph, Op.QGEMM, [dql.inputs[0], w, ws, w_zero],
                                   {"a_mode": "dynamic", "out": "float", "activation": None},
                                   name=f"{node.name}_dynamic",
                                   fused_from=(dql.name, node.name, cast.name, mul.name)), mul)
    graph.replace_uses(mul.outputs[0], fused.outputs[0])
    return True


def _absorb_epilogue(graph: Graph, node, use) -> bool:
    at = node.attrs
    if at.get("out") != "float" or at.get("activation") is not None:
        return False
    ins = list(node.inputs) + [None] * (7 - len(node.inputs))
    y = node.outputs[0]
    n = y.shape[-1]
    changed = False
    if ins[4] is None and _single(graph, use, y):
        c = use[y][0]
        other = None
        if c.op is Op.ADD and len(c.inputs) == 2:
            other = c.inputs[1] if c.inputs[0] is y else c.inputs[0]
        if other is not None and other.is_constant and other.size == n and \
                tuple(c.outputs[0].shape) == tuple(y.shape) and c.outputs[0].dtype == y.dtype:
            ins[4] = graph.constant(np.asarray(other.data, np.float32).reshape(n),
                                    name=f"{node.name}_bias")
            last, chain = c.outputs[0], [c]
            changed = True
    if not changed:
        last, chain = y, []
    act = None
    if _single(graph, use, last):
        c = use[last][0]
        if c.op in ACTIVATIONS:
            act, last = ACTIVATIONS[c.op], c.outputs[0]
            chain.append(c)
    if not chain:
        return False
    while ins and ins[-1] is None:
        ins.pop()
    new = place(graph, make_node(graph, Op.QGEMM, ins, dict(at, activation=act),
                                 name=node.name, fused_from=node.fused_from +
                                 tuple(c.name for c in chain)), chain[-1])
    graph.replace_uses(last, new.outputs[0])
    return True


def _fold_leftover_weights(graph: Graph) -> bool:
    """DequantizeLinear of constants that no rule fused (weight-only quantization):
    computed once now, as the fold pass does for other constant nodes (which
    leaves DequantizeLinear to this pass so the rules above see int8 weights)."""
    from ..reference import eval_node
    changed = False
    for node in list(graph.nodes):
        if node.op is Op.DEQUANTIZE_LINEAR and all(v is None or v.is_constant for v in node.inputs):
            (r,) = eval_node(node, [None if v is None else v.data for v in node.inputs])
            c = graph.constant(np.asarray(r, np.float32), name=f"{node.outputs[0].name}_folded")
            graph.replace_uses(node.outputs[0], c)
            changed = True
    return changed


def qdq(graph: Graph) -> None:
    changed = False
    for node in [n for n in graph.nodes if n.op in (Op.MATMUL, Op.GEMM)]:
        changed |= _fuse_qdq_linear(graph, node, users(graph))
    if changed:
        finish(graph)
    apply_rules(graph, (Op.QGEMM,), (_fuse_dynamic, _absorb_epilogue))
    if _fold_leftover_weights(graph):
        finish(graph)
