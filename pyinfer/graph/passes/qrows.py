"""Per-row dynamic int8 GEMMs read back from ONNX: the standard-op form that
``pyinfer.export`` writes for a QGEMM with a_granularity "row"
(export/ops/compressed.py ``_qgemm_rows``) becomes that QGEMM again.

The form, as the importer builds it (this pass runs first, before simplify
rewrites its divisions by constants)::

    lo = Minimum(ReduceMin(x, last axis, keepdims), 0)
    hi = Maximum(ReduceMax(x, last axis, keepdims), 0)
    s  = Where(Equal(hi, lo), 1, (hi - lo) / 255)
    zf = clip255(rint(0 - lo / s))            rint(v) = (v + 1.5*2^23) - 1.5*2^23
    q  = Cast<u8>(clip255(rint(x / s) + zf))  clip255(v) = Minimum(Maximum(v, 0), 255)
    acc = QGEMM<int32>(q, w) - Cast<int32>(zf) * colsum(w - w_zero)
    y  = Cast<float32>(acc) * (s * w_scale)

-> ``QGEMM(x, w, w_scale, w_zero; a_mode="dynamic", a_granularity="row",
out="float")``, which computes exactly that (for rows of finite values; the
kernel's NaN rule ignores NaN where ReduceMin would propagate it).  The qdq
pass then gives it the bias Add and activation that follow.  Only the
constants the exporter writes are accepted, and colsum must be the weight's.
Interior values used elsewhere stay computed for those users; the rewrite only
replaces ``y``.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ._util import apply_rules, make_node, place, producer, scalar

_MAGIC = 12582912.0  # 1.5 * 2^23


def _bin(v, op):
    """The two inputs of v's producer if it is ``op`` (integer arithmetic comes
    from the importer as HOST_ELEMENTWISE with fn ``op.value``), else None."""
    n = producer(v, {op, Op.HOST_ELEMENTWISE})
    if n is None or len(n.inputs) != 2:
        return None
    if n.op is Op.HOST_ELEMENTWISE and n.attrs.get("fn") != op.value:
        return None
    return n.inputs


def _is(v, c: float) -> bool:
    return scalar(v) == c


def _rint_of(v):
    outer = _bin(v, Op.SUB)
    if outer is None or not _is(outer[1], _MAGIC):
        return None
    inner = _bin(outer[0], Op.ADD)
    if inner is None or not _is(inner[1], _MAGIC):
        return None
    return inner[0]


def _clip255_of(v):
    top = _bin(v, Op.MINIMUM)
    if top is None or not _is(top[1], 255.0):
        return None
    bottom = _bin(top[0], Op.MAXIMUM)
    if bottom is None or not _is(bottom[1], 0.0):
        return None
    return bottom[0]


def _cast_of(v, dtype):
    n = producer(v, Op.CAST)
    if n is None or np.dtype(n.attrs.get("dtype")) != np.dtype(dtype):
        return None
    return n.inputs[0]


def _row_bound(v, clamp_op, reduce_op):
    """x for ``clamp_op(reduce_op(x, last axis, keepdims), 0)``, else None."""
    pair = _bin(v, clamp_op)
    if pair is None or not _is(pair[1], 0.0):
        return None
    red = producer(pair[0], reduce_op)
    if red is None or not red.attrs.get("keepdims"):
        return None
    x = red.inputs[0]
    axes = tuple(int(a) % x.ndim for a in (red.attrs.get("axis") or ()))
    return x if axes == (x.ndim - 1,) else None


def _row_scale(s):
    """(x, lo) when s is the row scale of x, else None."""
    n = producer(s, Op.WHERE)
    if n is None or len(n.inputs) != 3 or not _is(n.inputs[1], 1.0):
        return None
    eq = _bin(n.inputs[0], Op.EQUAL)
    step = _bin(n.inputs[2], Op.DIV)
    if eq is None or step is None or not _is(step[1], 255.0):
        return None
    diff = _bin(step[0], Op.SUB)
    hi, lo = eq
    if diff is None or diff[0] is not hi or diff[1] is not lo:
        return None
    x = _row_bound(lo, Op.MINIMUM, Op.MIN)
    if x is None or _row_bound(hi, Op.MAXIMUM, Op.MAX) is not x:
        return None
    return x, lo


def _fold_rows(graph: Graph, node, use) -> bool:
    if len(node.inputs) != 2:
        return False
    cast_acc, scale = node.inputs
    acc = _cast_of(cast_acc, np.float32)
    sub = None if acc is None else _bin(acc, Op.SUB)
    sw = _bin(scale, Op.MUL)
    if sub is None or sw is None:
        return False
    mm, corr = sub
    qg = producer(mm, Op.QGEMM)
    zc = _bin(corr, Op.MUL)
    if qg is None or zc is None or qg.attrs.get("out") != "int32" or \
            qg.attrs.get("a_mode") != "quantized":
        return False
    q, w, w_scale0, w_zero, bias, a_scale, a_zero = (list(qg.inputs) + [None] * 7)[:7]
    if w_scale0 is not None or bias is not None or a_scale is not None or \
            (a_zero is not None and not _is(a_zero, 0.0)) or not w.is_constant or \
            (w_zero is not None and not w_zero.is_constant):
        return False
    s, ws = sw
    found = _row_scale(s)
    if found is None or not ws.is_constant or ws.dtype != np.float32:
        return False
    x, lo = found
    zf = _cast_of(zc[0], np.int32)
    if zf is None or not zc[1].is_constant:
        return False
    # every helper passes None through: a chain that breaks anywhere gives None
    zpair = _bin(_rint_of(_clip255_of(zf)), Op.SUB)
    zdiv = None if zpair is None or not _is(zpair[0], 0.0) else _bin(zpair[1], Op.DIV)
    if zdiv is None or zdiv[0] is not lo or zdiv[1] is not s:
        return False
    summed = _bin(_clip255_of(_cast_of(q, np.uint8)), Op.ADD)
    if summed is None or summed[1] is not zf:
        return False
    xdiv = _bin(_rint_of(summed[0]), Op.DIV)
    if xdiv is None or xdiv[0] is not x or xdiv[1] is not s or x.dtype != np.float32:
        return False
    n = w.shape[1]
    bz = np.zeros(n, np.int64) if w_zero is None else \
        np.broadcast_to(np.asarray(w_zero.data, np.int64).reshape(-1), (n,))
    colsum = (np.asarray(w.data, np.int64) - bz).sum(axis=0)
    if ws.size not in (1, n) or not np.array_equal(
            np.broadcast_to(np.asarray(zc[1].data, np.int64).reshape(-1), (n,)), colsum):
        return False
    if tuple(node.outputs[0].shape) != tuple(x.shape[:-1]) + (n,):
        return False
    ins = [x, w, ws] + ([w_zero] if w_zero is not None else [])
    fused = place(graph, make_node(graph, Op.QGEMM, ins,
                                   {"a_mode": "dynamic", "a_granularity": "row", "out": "float",
                                    "activation": None},
                                   name=f"{qg.name}_rows", fused_from=(qg.name, node.name)), node)
    graph.replace_uses(node.outputs[0], fused.outputs[0])
    return True


def qrows(graph: Graph) -> None:
    apply_rules(graph, (Op.MUL,), (_fold_rows,))
