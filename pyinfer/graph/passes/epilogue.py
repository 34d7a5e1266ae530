"""GEMM epilogue fusion: ``act(alpha * (a @ b) + bias + residual)`` becomes one
``Op.GEMM`` node (inputs ``[a, b, bias|None, residual|None]``, attrs ``alpha``,
``activation``, ``trans_a``, ``trans_b``), the epilogue run on the C tile while
it is still in registers (STYLE.md 6).

A MATMUL qualifies when ``b`` is 2-d; ``a`` may be 1-d or n-d, in which case it is
flattened to ``(M, K)`` by a RESHAPE (a view) and the result reshaped back, so
BERT's ``(batch, seq, hidden) @ (hidden, out)`` is one GEMM.  A TRANSPOSE of a
2-d operand becomes ``trans_a``/``trans_b``.  Then a table of epilogue steps is
walked down the chain of single consumers:

| step | node | condition |
|---|---|---|
| alpha | ``* c``, ``/ c`` | c a scalar constant; nothing else fused yet |
| bias | ``+ v`` | v broadcasts along rows (shape ``(N,)``, ``(1, N)``...); before the activation |
| residual | ``+ r`` | r broadcastable to the result; before the activation |
| activation | relu, gelu, gelu_tanh, silu, sigmoid, tanh | last: the kernel applies it after the adds |

A SPARSE_GEMM (a pruned layer) without an epilogue takes a following bias add and
activation the same way.

Every intermediate must have one consumer and not be a graph output (else it
would have to be stored anyway); each stop for such a reason is noted.  An add
after the activation (``act(x@w+b) + r``) cannot join: the kernel's activation
comes last, so that add is left for elementwise fusion.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ._util import finish, is_output, make_node, note, place, producer, scalar, users

ACTIVATIONS = {Op.RELU: "relu", Op.GELU: "gelu", Op.GELU_TANH: "gelu_tanh", Op.SILU: "silu",
               Op.SIGMOID: "sigmoid", Op.TANH: "tanh"}


def _row_vector(v, n) -> bool:
    """Does ``v`` broadcast along rows of an (..., N) result: shape (N,), (1, N), (1, 1, N)?"""
    return v.ndim >= 1 and v.shape[-1] == n and all(d == 1 for d in v.shape[:-1])


def _as_bias(graph, v, n, anchor):
    """The bias as a C-contiguous (N,) value (the kernel contract)."""
    if v.shape == (n,):
        return v
    if v.is_constant:
        return graph.constant(np.ascontiguousarray(v.data.reshape(n)), name=f"{v.name}_bias")
    return place(graph, make_node(graph, Op.RESHAPE, [v], {"shape": (n,)}), anchor).outputs[0]


def _reshaped(graph, v, shape, anchor):
    """``v`` as ``shape``: itself, the source of a reshape that already has it (the
    previous GEMM's un-flattening), or a new RESHAPE view."""
    shape = tuple(shape)
    if tuple(v.shape) == shape:
        return v
    r = producer(v, Op.RESHAPE)
    if r is not None and tuple(r.inputs[0].shape) == shape:
        return r.inputs[0]
    for n in graph.nodes:  # the same view made for an earlier GEMM reading v
        if n.op is Op.RESHAPE and n.inputs[0] is v and tuple(n.outputs[0].shape) == shape:
            return n.outputs[0]
    return place(graph, make_node(graph, Op.RESHAPE, [v], {"shape": shape}), anchor).outputs[0]


def _fuse_one(graph: Graph, mm, use) -> bool:
    a, b = mm.inputs
    y = mm.outputs[0]
    if b.ndim != 2:
        note(graph, [mm], "epilogue: not a GEMM: layout: b is not 2-d (batched matmul)")
        return False
    if a.dtype != b.dtype or a.dtype.kind != "f":
        note(graph, [mm], f"epilogue: not a GEMM: dtype: a is {a.dtype}, b is {b.dtype}")
        return False
    lead = tuple(a.shape[:-1])
    if not all(isinstance(d, int) for d in lead + tuple(b.shape)):
        note(graph, [mm], "epilogue: not a GEMM: layout: symbolic dims in the rows of a")
        return False
    m, n = int(np.prod(lead, dtype=np.int64)) if lead else 1, b.shape[1]
    alpha, bias, residual, act = 1.0, None, None, None
    chain, last = [mm], y
    while True:
        cons = use.get(last, [])
        if is_output(graph, last) or len(cons) != 1:
            nxt = cons[0] if len(cons) == 1 else None
            if cons and (len(cons) > 1 or nxt.op in (Op.ADD, Op.MUL) or nxt.op in ACTIVATIONS):
                note(graph, chain + cons, "epilogue: stopped: multiple consumers: "
                     f"'{last.name}' is " + ("a graph output" if is_output(graph, last) else
                                            f"read by {len(cons)} nodes"))
            break
        c = cons[0]
        out = c.outputs[0]
        if tuple(out.shape) != tuple(last.shape) or out.dtype != last.dtype:
            break  # it broadcasts the result up or promotes it: not an epilogue
        if c.op in (Op.MUL, Op.DIV) and bias is None and residual is None and act is None:
            other = c.inputs[1] if c.inputs[0] is last else c.inputs[0]
            k = scalar(other)
            if k is None or (c.op is Op.DIV and c.inputs[1] is last):
                break
            alpha = alpha * k if c.op is Op.MUL else alpha / k
        elif c.op is Op.ADD and act is None and c.inputs[0] is not c.inputs[1]:
            other = c.inputs[1] if c.inputs[0] is last else c.inputs[0]
            if other.dtype != y.dtype:
                note(graph, chain + [c], f"epilogue: stopped: dtype: '{other.name}' is "
                                         f"{other.dtype}, the GEMM {y.dtype}")
                break
            if bias is None and _row_vector(other, n):
                bias = other
            elif residual is None and (len(lead) <= 1 or tuple(other.shape) == tuple(last.shape)
                                       or _row_vector(other, n)):
                residual = other
            else:
                note(graph, chain + [c], f"epilogue: stopped: layout: '{other.name}' "
                                         f"{other.shape} cannot be an (M, N) view of the "
                                         "flattened result")
                break
        elif c.op in ACTIVATIONS and act is None:
            act = ACTIVATIONS[c.op]
        else:
            if c.op is Op.ADD and act is not None:
                note(graph, chain + [c], "epilogue: stopped: an add after the activation "
                                         "cannot join the GEMM (its activation is applied last)")
            break
        chain.append(c)
        last = out
    if len(chain) == 1 and a.ndim == 2 and producer(a, Op.TRANSPOSE) is None and \
            producer(b, Op.TRANSPOSE) is None:
        return False  # a bare 2-d matmul: nothing to gain from rewriting it

    anchor = chain[-1]
    trans_a = trans_b = False
    ta, tb = producer(a, Op.TRANSPOSE), producer(b, Op.TRANSPOSE)
    if a.ndim == 2 and ta is not None and len(use.get(a, [])) == 1 and not is_output(graph, a):
        a, trans_a = ta.inputs[0], True
    if tb is not None and len(use.get(b, [])) == 1 and not is_output(graph, b):
        b, trans_b = tb.inputs[0], True
    if a.ndim != 2:
        a = _reshaped(graph, a, (m, a.shape[-1]), anchor)
    if bias is not None:
        bias = _as_bias(graph, bias, n, anchor)
    if residual is not None and len(lead) != 1 and residual.ndim > 2:
        shape = (m, n) if tuple(residual.shape) == tuple(y.shape) else (1, n)
        residual = _reshaped(graph, residual, shape, anchor)
    if residual is not None and bias is None:
        # Graph.copy and Node.__repr__ do not take a None input yet: a zero bias costs one
        # add per output element inside the epilogue.
        bias = graph.constant(np.zeros(n, y.dtype), name="zero_bias")
    inputs = [a, b, bias, residual]
    while inputs[-1] is None:
        inputs.pop()
    gemm = place(graph, make_node(graph, Op.GEMM, inputs,
                                  {"alpha": float(alpha), "activation": act,
                                   "trans_a": trans_a, "trans_b": trans_b},
                                  name="gemm", fused_from=tuple(n_.name for n_ in chain)), anchor)
    result = gemm.outputs[0]
    result = _reshaped(graph, result, last.shape, anchor)
    graph.replace_uses(last, result)
    return True


def _fuse_sparse(graph: Graph, sg, use) -> bool:
    """A SPARSE_GEMM without epilogue (``prune`` makes one from a bare MatMul,
    whose bias Add follows it in ONNX exports) takes the row-vector bias add and
    the activation after it, as a GEMM would."""
    if sg.attrs.get("activation") is not None:
        return False
    x, w = sg.inputs[:2]
    bias = sg.inputs[2] if len(sg.inputs) > 2 else None
    n, y = w.shape[1], sg.outputs[0]
    act, chain, last = None, [sg], y
    while True:
        cons = use.get(last, [])
        if is_output(graph, last) or len(cons) != 1:
            break
        c = cons[0]
        out = c.outputs[0]
        if tuple(out.shape) != tuple(last.shape) or out.dtype != last.dtype:
            break
        if c.op is Op.ADD and bias is None and act is None and c.inputs[0] is not c.inputs[1]:
            other = c.inputs[1] if c.inputs[0] is last else c.inputs[0]
            if other.dtype != y.dtype or not _row_vector(other, n):
                break
            bias = other
        elif c.op in ACTIVATIONS and act is None:
            act = ACTIVATIONS[c.op]
        else:
            break
        chain.append(c)
        last = out
    if len(chain) == 1:
        return False
    # Rewritten in place: the node keeps its name (prune's, the user's layer name).
    if bias is not None:
        sg.inputs = [x, w, _as_bias(graph, bias, n, chain[-1])]
    sg.attrs["activation"] = act
    sg.fused_from = tuple(n_.name for n_ in chain)
    graph.replace_uses(last, y)
    return True


def epilogue(graph: Graph) -> None:
    changed = False
    for mm in [n for n in graph.nodes if n.op is Op.MATMUL]:
        if _fuse_one(graph, mm, users(graph)):
            changed = True
    for sg in [n for n in graph.nodes if n.op is Op.SPARSE_GEMM]:
        if _fuse_sparse(graph, sg, users(graph)):
            changed = True
    if changed:
        finish(graph)
