"""CNN passes: fold what follows a convolution into the convolution.

Rules, applied to every ``Op.CONV`` (docs/conv.md):

| rule | match | makes |
|---|---|---|
| bn | ``BATCH_NORM(conv(x, w, b))``, constant w, b, BN parameters | ``conv(x, w * s, (b - mean) * s + beta)``, ``s = scale / sqrt(var + eps)`` |
| bias | ``conv + c``, c a constant of shape (K,1,1) / (1,K,1,1) | c added into the conv's bias |
| residual | ``conv + r``, r of the output's shape, not computed from the conv | ``residual`` input |
| activation | relu, silu, sigmoid, tanh, gelu, gelu_tanh, and ``maximum``/``minimum`` by scalar constants (Clip, ReLU6) | ``activation`` attr (``clip`` with ``clip_min``/``clip_max``) |
| layout | two or more convs, each read only by the next (f32, group 1, constant weights, no residual) | the chain in NCHWc between one LAYOUT in and one out; only with ``NCHWC_CHAINS`` (off: see there) |

The kernel computes ``act(conv + bias + residual)``, so the adds must come
before the activation and the chain is walked in that order; every
intermediate must have one consumer and not be a graph output.  Stops are
noted in ``graph.notes`` for ``Interpreter.explain()``.

Weight pre-packing is not a graph rewrite: ``Op.CONV``'s ``lower`` packs
constant weights once at plan time (graph/families/conv.py).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Graph, Op
from ._util import finish, is_output, note, producer, scalar, users

ACTIVATIONS = {Op.RELU: "relu", Op.SILU: "silu", Op.SIGMOID: "sigmoid", Op.TANH: "tanh",
               Op.GELU: "gelu", Op.GELU_TANH: "gelu_tanh"}


def _conv_inputs(node):
    ins = list(node.inputs) + [None] * (4 - len(node.inputs))
    return ins[:4]


def _set_inputs(node, x, w, bias, residual):
    ins = [x, w, bias, residual]
    while ins and ins[-1] is None:
        ins.pop()
    node.inputs = ins


def _depends_on(v, node) -> bool:
    """Is value ``v`` computed (transitively) from an output of ``node``?"""
    seen, stack = set(), [v]
    while stack:
        u = stack.pop()
        if u is None or id(u) in seen:
            continue
        seen.add(id(u))
        p = u.producer
        if p is None or u.is_constant:
            continue
        if p is node:
            return True
        stack.extend(p.inputs)
    return False


def _single_consumer(graph, v, use):
    """The one node reading ``v``, or None (graph output, no or several readers)."""
    cons = use.get(v, [])
    if is_output(graph, v) or len(cons) != 1:
        return None
    return cons[0]


# ---- Conv + BatchNorm -------------------------------------------------------------------

def fold_batch_norm(graph: Graph) -> bool:
    changed = False
    use = users(graph)
    for bn in [n for n in graph.nodes if n.op is Op.BATCH_NORM]:
        conv = producer(bn.inputs[0], Op.CONV)
        if conv is None:
            continue
        x, w, bias, residual = _conv_inputs(conv)
        y = conv.outputs[0]
        why = None
        if _single_consumer(graph, y, use) is not bn:
            why = f"'{y.name}' has other consumers or is a graph output"
        elif residual is not None or conv.attrs.get("activation") is not None:
            why = "the conv already has a residual or an activation"
        elif not w.is_constant or (bias is not None and not bias.is_constant):
            why = "the conv's weights or bias are not constants"
        elif not all(p.is_constant for p in bn.inputs[1:]):
            why = "the batch norm's parameters are not constants"
        if why is not None:
            note(graph, [conv, bn], f"cnn: batch norm not folded: {why}")
            continue
        scale, beta, mean, var = (p.data.astype(np.float64) for p in bn.inputs[1:])
        s = scale / np.sqrt(var + bn.attrs.get("eps", 1e-5))
        w64 = w.data.astype(np.float64) * s.reshape(-1, 1, 1, 1)
        b64 = (np.zeros(s.shape) if bias is None else bias.data.astype(np.float64))
        b64 = (b64 - mean) * s + beta
        dt = y.dtype
        _set_inputs(conv, x, graph.constant(w64.astype(dt), name=f"{w.name}_bn"),
                    graph.constant(b64.astype(dt), name=f"{conv.name}_bn_bias"), None)
        conv.fused_from = tuple(conv.fused_from or (conv.name,)) + (bn.name,)
        graph.replace_uses(bn.outputs[0], y)
        graph.remove([bn])
        use = users(graph)
        changed = True
    return changed


# ---- Conv + Add / activation ---------------------------------------------------------------

def _channel_constant(v, k):
    """A constant that adds one value per output channel: shape (K,1,1) or
    (1,K,1,1) (or a scalar) -> its (K,) values; else None."""
    if v is None or not v.is_constant or v.dtype.kind != "f":
        return None
    shape = tuple(v.shape)
    if v.data.size == 1 and len(shape) <= 4:
        return np.full(k, float(v.data.reshape(-1)[0]))
    if shape in ((k, 1, 1), (1, k, 1, 1)):
        return v.data.reshape(k).astype(np.float64)
    return None


def _absorb(graph, conv, use) -> bool:
    """Take the next consumer of the conv into it; True if one was taken."""
    y = conv.outputs[0]
    c = _single_consumer(graph, y, use)
    if c is None:
        cons = use.get(y, [])
        if cons and any(n.op in ACTIVATIONS or n.op in (Op.ADD, Op.MAXIMUM, Op.MINIMUM)
                        for n in cons):
            note(graph, [conv] + cons, f"cnn: stopped: '{y.name}' is "
                 + ("a graph output" if is_output(graph, y) else f"read by {len(cons)} nodes"))
        return False
    out = c.outputs[0]
    if tuple(out.shape) != tuple(y.shape) or out.dtype != y.dtype:
        return False  # broadcasts the result up or promotes it: not an epilogue
    x, w, bias, residual = _conv_inputs(conv)
    at = conv.attrs
    act = at.get("activation")
    k = y.shape[1]
    if c.op is Op.ADD:
        if c.inputs[0] is c.inputs[1]:
            return False
        other = c.inputs[1] if c.inputs[0] is y else c.inputs[0]
        if act is not None:
            note(graph, [conv, c], "cnn: stopped: an add after the activation cannot join the "
                                   "conv (its activation is applied last)")
            return False
        chan = _channel_constant(other, k)
        if chan is not None and (bias is None or bias.is_constant):
            base = np.zeros(k) if bias is None else bias.data.astype(np.float64)
            bias = graph.constant((base + chan).astype(y.dtype), name=f"{conv.name}_bias")
        elif residual is None and tuple(other.shape) == tuple(y.shape) and \
                other.dtype == y.dtype and not _depends_on(other, conv):
            residual = other
        else:
            note(graph, [conv, c], f"cnn: add not fused: '{other.name}' {other.shape} is neither "
                                   "a per-channel constant nor a residual of the output's shape")
            return False
        _set_inputs(conv, x, w, bias, residual)
    elif c.op in ACTIVATIONS and act is None:
        at["activation"] = ACTIVATIONS[c.op]
    elif c.op in (Op.MAXIMUM, Op.MINIMUM):
        other = c.inputs[1] if c.inputs[0] is y else c.inputs[0]
        v = scalar(other)
        if v is None or math.isnan(v):
            return False
        lo, hi = -math.inf, math.inf
        if act == "relu":
            lo = 0.0
        elif act in ("clip", "relu6"):
            lo, hi = at.get("clip_min", 0.0), at.get("clip_max", 6.0)
        elif act is not None:
            return False
        if c.op is Op.MAXIMUM:
            lo = max(lo, v)
            hi = max(hi, lo)  # max(min(y, hi), lo) with lo > hi is the constant lo
        else:
            hi = min(hi, v)
            lo = min(lo, hi)
        if lo == 0.0 and hi == math.inf:
            at["activation"] = "relu"
            at.pop("clip_min", None)
            at.pop("clip_max", None)
        else:
            at.update(activation="clip", clip_min=float(lo), clip_max=float(hi))
    else:
        return False
    conv.fused_from = tuple(conv.fused_from or (conv.name,)) + (c.name,)
    graph.replace_uses(out, y)
    graph.remove([c])
    return True


def fuse_epilogues(graph: Graph) -> bool:
    changed = False
    for conv in [n for n in graph.nodes if n.op is Op.CONV]:
        while _absorb(graph, conv, users(graph)):
            changed = True
    return changed


# ---- NCHWc layout propagation ---------------------------------------------------------------

# Off by default: the direct NCHWc kernel (csrc/pi_conv_nchwc.c) measured about half
# the implicit GEMM's speed on this machine (bench/RESULTS.md, conv section), so
# keeping chains blocked would make them slower.  Set True to use it (tests do).
NCHWC_CHAINS = False


def _nchwc_ok(graph, conv) -> bool:
    """Can this conv run in NCHWc (the direct kernel's conditions)?"""
    x, w, bias, residual = _conv_inputs(conv)
    y = conv.outputs[0]
    if conv.attrs.get("layout", "NCHW") != "NCHW" or conv.attrs.get("group", 1) != 1 or \
            residual is not None or not w.is_constant or \
            (bias is not None and not bias.is_constant) or y.dtype != np.float32 or \
            x.ndim != 4 or not all(isinstance(d, int) for d in tuple(x.shape) + tuple(y.shape)):
        return False
    from ...backends import _native
    if _native.lib is None:
        return False
    from ...backends import c_conv
    return c_conv.nchwc_reason(x.shape, w.shape, 1, y.dtype) is None


def propagate_layout(graph: Graph) -> bool:
    """Chains of two or more convolutions, each read only by the next, run in
    NCHWc: one LAYOUT into the blocked layout before the chain, one back after it,
    none in between (STYLE.md 11: ``n`` convs, 2 reorders)."""
    from ..families.conv import NCHWC_BLOCK
    from ._util import make_node, place
    use = users(graph)
    chains, taken = [], set()
    for conv in graph.nodes:
        if conv.op is not Op.CONV or id(conv) in taken or not _nchwc_ok(graph, conv):
            continue
        chain = [conv]
        while True:
            nxt = _single_consumer(graph, chain[-1].outputs[0], use)
            if nxt is None or nxt.op is not Op.CONV or nxt.inputs[0] is not chain[-1].outputs[0] \
                    or not _nchwc_ok(graph, nxt):
                break
            chain.append(nxt)
        taken.update(id(c) for c in chain)
        if len(chain) >= 2:
            chains.append(chain)
    for chain in chains:
        first, last = chain[0], chain[-1]
        prev = place(graph, make_node(graph, Op.LAYOUT, [first.inputs[0]],
                                      {"to": "NCHWc", "block": NCHWC_BLOCK}), first).outputs[0]
        for conv in chain:
            attrs = dict(conv.attrs, layout="NCHWc")
            new = place(graph, make_node(graph, Op.CONV, [prev] + list(conv.inputs[1:]), attrs,
                                         name=f"{conv.name}_nchwc",
                                         fused_from=conv.fused_from or (conv.name,)), last)
            prev = new.outputs[0]
        back = place(graph, make_node(graph, Op.LAYOUT, [prev],
                                      {"to": "NCHW", "block": NCHWC_BLOCK,
                                       "channels": last.outputs[0].shape[1]}), last)
        graph.replace_uses(last.outputs[0], back.outputs[0])
    return bool(chains)


def cnn(graph: Graph) -> None:
    changed = fold_batch_norm(graph)
    changed = fuse_epilogues(graph) or changed
    if NCHWC_CHAINS:
        changed = propagate_layout(graph) or changed
    if changed:
        finish(graph)
