"""Pattern fusion: a table of rules recognising subgraphs of primitive ops, as
NumPy users and PyTorch's ONNX export write them, and replacing each by one op.

| rule | matches (any operand order, products/quotients by constants anywhere) | makes |
|---|---|---|
| sigmoid | ``1/(1+exp(-x))`` | SIGMOID |
| silu | ``x*sigmoid(x)``, ``x/(1+exp(-x))`` | SILU |
| gelu | ``0.5*x*(1+erf(x/sqrt(2)))``, ``x*0.5*(...)``, ``x*(1+erf(x*0.7071..))*0.5``, ``.../2`` | GELU |
| gelu_tanh | ``0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3)))`` (``x**3`` as pow or ``x*x*x``), and ``sqrt(2/pi)*x*(1+0.044715*x*x)`` inside the tanh | GELU_TANH |
| softmax | ``e=exp(x-max(x,a,keepdims)); e/sum(e,a,keepdims)`` (or ``*1/sum``, or no max) | SOFTMAX |
| log_softmax | ``t - log(sum(exp(t)))`` with ``t = x-max(x)`` or ``x``; ``log(softmax(x))`` | LOG_SOFTMAX |
| layer_norm | ``d=x-mean(x); d/sqrt(mean(d*d)+eps)*w+b`` (``d**2``; ``*rsqrt``, ``*1/sqrt``; w, b optional) over trailing axes | LAYER_NORM |
| rms_norm | ``x/sqrt(mean(x*x)+eps)*w`` (``x**2``, ``*rsqrt``; w optional) | RMS_NORM |
| attention | ``softmax((q @ kᵀ)*scale (+ mask)) @ v``, kᵀ a transpose whose last step swaps the last two axes, scale a product/quotient by constants (also on q) | ATTENTION(q, k, v[, mask]; scale) |

Constants must be the exact ones (relative 1e-6, what float32 storage keeps):
``0.044716`` is not GELU's ``0.044715``, and the graph keeps its own ops then.
Attributes taken from the graph keep the graph's constants exactly (``eps``,
``scale``).  A match whose intermediate is also read elsewhere (or returned) is
not replaced, since the intermediate would then be computed twice; the reason is
noted in ``graph.notes``.

Phases: activations first, then softmax and the norms, then attention (which
and ``log(softmax)`` look for the SOFTMAX the previous phase made).  Within a phase the graph is
walked from the end, so the largest match (``n*w+b`` rather than ``n``) wins.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..ir import Graph, Op
from ._util import (close, escaping, finish, flatten_add, flatten_mul, make_node, note, place,
                    producer, same_leaves, scalar, users)

SQRT1_2 = 1.0 / math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_C = 0.044715


@dataclass
class Match:
    op: Op
    inputs: list
    attrs: dict = field(default_factory=dict)
    interior: list = field(default_factory=list)   # nodes the new one replaces


@dataclass(frozen=True)
class Pattern:
    name: str
    phase: int
    roots: frozenset        # ops the root node may have
    match: Callable         # (graph, root) -> Match | None


def _uniq(nodes):
    seen, out = set(), []
    for n in nodes:
        if n is not None and id(n) not in seen:
            seen.add(id(n))
            out.append(n)
    return out


def _neg_of(u):
    """``u == -x``: returns (x, nodes) or None."""
    n = producer(u, Op.NEG)
    if n is not None:
        return n.inputs[0], [n]
    c, leaves, nodes = flatten_mul(u)
    if nodes and c == -1.0 and len(leaves) == 1 and leaves[0][1] == 1:
        return leaves[0][0], nodes
    return None


def _one_plus_exp_neg(d):
    """``d == 1 + exp(-x)``: returns (x, nodes) or None."""
    c, leaves, nodes = flatten_add(d)
    if not nodes or c != 1.0 or len(leaves) != 1 or leaves[0][1] != 1:
        return None
    e = producer(leaves[0][0], Op.EXP)
    if e is None:
        return None
    neg = _neg_of(e.inputs[0])
    if neg is None:
        return None
    return neg[0], nodes + [e] + neg[1]


# ---- activations -----------------------------------------------------------------------

def _sigmoid(graph, root):
    c, leaves, nodes = flatten_mul(root.outputs[0])
    if c != 1.0 or len(leaves) != 1 or leaves[0][1] != -1:
        return None
    inner = _one_plus_exp_neg(leaves[0][0])
    if inner is None:
        return None
    x, more = inner
    return Match(Op.SIGMOID, [x], {}, nodes + more)


def _silu(graph, root):
    c, leaves, nodes = flatten_mul(root.outputs[0])
    if c != 1.0 or len(leaves) != 2:
        return None
    for (x, ex), (s, es) in (leaves, leaves[::-1]):
        if ex != 1:
            continue
        sig = producer(s, Op.SIGMOID)
        if es == 1 and sig is not None and sig.inputs[0] is x:
            return Match(Op.SILU, [x], {}, nodes + [sig])
        if es == -1:
            inner = _one_plus_exp_neg(s)
            if inner is not None and inner[0] is x:
                return Match(Op.SILU, [x], {}, nodes + inner[1])
    return None


def _scaled(u, target):
    """``u == x * target`` (or ``x / (1/target)``) for a scalar constant: returns (x, node)."""
    n = producer(u, {Op.MUL, Op.DIV})
    if n is None:
        return None
    a, b = n.inputs
    if n.op is Op.MUL:
        for x, c in ((a, b), (b, a)):
            if close(scalar(c), target):
                return x, n
        return None
    cb = scalar(b)
    if cb and close(1.0 / cb, target):
        return a, n
    return None


def _gelu_outer(graph, root, inner_op, parse_arg):
    """``0.5 * x * (1 + inner_op(arg))`` where ``parse_arg(arg) -> (x, nodes)``."""
    v = root.outputs[0]
    _, leaves, _ = flatten_mul(v)
    for f, e in leaves:
        if e != 1:
            continue
        cf, lf, nf = flatten_add(f)
        if not nf or cf != 1.0 or len(lf) != 1 or lf[0][1] != 1:
            continue
        t = producer(lf[0][0], inner_op)
        if t is None:
            continue
        parsed = parse_arg(t.inputs[0])
        if parsed is None:
            continue
        x, arg_nodes = parsed
        c, outer, nodes = flatten_mul(v, stop=(x, f))
        if close(c, 0.5) and same_leaves(outer, [(x, 1), (f, 1)]):
            return x, nodes + nf + [t] + arg_nodes
    return None


def _gelu(graph, root):
    def arg(u):
        got = _scaled(u, SQRT1_2)
        return None if got is None else (got[0], [got[1]])
    m = _gelu_outer(graph, root, Op.ERF, arg)
    return None if m is None else Match(Op.GELU, [m[0]], {}, m[1])


def _cubic_term(t, x, power):
    """``t == 0.044715 * x**power``: returns nodes or None."""
    c, leaves, nodes = flatten_mul(t, stop=(x,))
    if nodes and close(c, GELU_TANH_C) and same_leaves(leaves, [(x, 1)] * power):
        return nodes
    return None


def _gelu_tanh_arg(u):
    c, leaves, nodes = flatten_mul(u)
    if not close(c, SQRT_2_OVER_PI) or not nodes:
        return None
    if len(leaves) == 1 and leaves[0][1] == 1:
        # sqrt(2/pi) * (x + 0.044715 * x**3): one ADD (x may itself be a sum: no flattening)
        add = producer(leaves[0][0], Op.ADD)
        if add is None:
            return None
        for x, t in (add.inputs, add.inputs[::-1]):
            more = _cubic_term(t, x, 3)
            if more is not None:
                return x, nodes + [add] + more
    if len(leaves) == 2 and all(e == 1 for _, e in leaves):
        # sqrt(2/pi) * x * (1 + 0.044715 * x * x)
        for (x, _), (p, _) in (leaves, leaves[::-1]):
            cp, lp, np_ = flatten_add(p)
            if np_ and cp == 1.0 and len(lp) == 1 and lp[0][1] == 1:
                more = _cubic_term(lp[0][0], x, 2)
                if more is not None:
                    return x, nodes + np_ + more
    return None


def _gelu_tanh(graph, root):
    m = _gelu_outer(graph, root, Op.TANH, _gelu_tanh_arg)
    return None if m is None else Match(Op.GELU_TANH, [m[0]], {}, m[1])


# ---- softmax ------------------------------------------------------------------------------

def _single_axis(node):
    axis = node.attrs.get("axis")
    return axis[0] if isinstance(axis, tuple) and len(axis) == 1 else None


def _shifted(t, axis):
    """``t == x - max(x, axis, keepdims)``: returns (x, nodes); else (t, [])."""
    sub = producer(t, Op.SUB)
    if sub is not None:
        mx = producer(sub.inputs[1], Op.MAX)
        if mx is not None and mx.inputs[0] is sub.inputs[0] and _single_axis(mx) == axis \
                and mx.attrs.get("keepdims"):
            return sub.inputs[0], [sub, mx]
    return t, []


def _softmax(graph, root):
    c, leaves, nodes = flatten_mul(root.outputs[0])
    if c != 1.0 or len(leaves) != 2:
        return None
    for (e, ee), (s, es) in (leaves, leaves[::-1]):
        exp, red = producer(e, Op.EXP), producer(s, Op.SUM)
        if ee != 1 or es != -1 or exp is None or red is None or red.inputs[0] is not e:
            continue
        axis = _single_axis(red)
        if axis is None or not red.attrs.get("keepdims"):
            continue
        x, more = _shifted(exp.inputs[0], axis)
        return Match(Op.SOFTMAX, [x], {"axis": axis}, nodes + [exp, red] + more)
    return None


def _log_softmax(graph, root):
    if root.op is Op.LOG:
        sm = producer(root.inputs[0], Op.SOFTMAX)
        if sm is not None:
            return Match(Op.LOG_SOFTMAX, [sm.inputs[0]], {"axis": sm.attrs["axis"]}, [root, sm])
        return None
    t, lg = root.inputs[0], producer(root.inputs[1], Op.LOG)
    red = producer(lg.inputs[0], Op.SUM) if lg is not None else None
    exp = producer(red.inputs[0], Op.EXP) if red is not None else None
    if exp is None or exp.inputs[0] is not t or not red.attrs.get("keepdims"):
        return None
    axis = _single_axis(red)
    if axis is None:
        return None
    x, more = _shifted(t, axis)
    return Match(Op.LOG_SOFTMAX, [x], {"axis": axis}, [root, lg, red, exp] + more)


# ---- norms --------------------------------------------------------------------------------

def _trailing_mean(v, x=None):
    """``v == mean(arg, trailing axes, keepdims=True)``: returns (node, first axis)."""
    n = producer(v, Op.MEAN)
    if n is None or not n.attrs.get("keepdims") or (x is not None and n.inputs[0] is not x):
        return None
    nd = n.inputs[0].ndim
    axes = tuple(n.attrs["axis"])
    if not axes or axes != tuple(range(axes[0], nd)):
        return None
    return n, axes[0]


def _norm_core(v):
    """``z * invsqrt(mean(z*z) + eps) [* w]``, z either ``x - mean(x)`` (layer norm) or x (RMS)."""
    _, leaves, _ = flatten_mul(v)
    for u, e in leaves:
        r = producer(u)
        if r is None or not ((r.op is Op.SQRT and e == -1) or (r.op is Op.RSQRT and e == 1)):
            continue
        eps, la, na = flatten_add(r.inputs[0])
        if len(la) != 1 or la[0][1] != 1 or eps < 0 or not math.isfinite(eps):
            continue
        got = _trailing_mean(la[0][0])
        if got is None:
            continue
        ms, axis = got
        ct, lt, nt = flatten_mul(ms.inputs[0])
        if ct != 1.0 or len(lt) != 2 or lt[0] != lt[1] or lt[0][1] != 1 or \
                lt[0][0] is not lt[1][0]:
            continue
        z = lt[0][0]
        sub = producer(z, Op.SUB)
        mean = _trailing_mean(sub.inputs[1], sub.inputs[0]) if sub is not None else None
        if mean is not None and mean[1] == axis:
            kind, x, extra = "ln", sub.inputs[0], [sub, mean[0]]
        else:
            kind, x, extra = "rms", z, []
        c, outer, nodes = flatten_mul(v, stop=(z,))
        if not close(c, 1.0) or not nodes:
            continue
        rest = [item for item in outer if item[0] is not u and item[0] is not z]
        if len(outer) != len(rest) + 2 or any(ex != 1 for _, ex in rest) or len(rest) > 1:
            continue
        w = rest[0][0] if rest else None
        interior = nodes + [r] + na + [ms] + nt + extra
        return dict(kind=kind, x=x, axis=axis, eps=eps, weight=w, interior=interior)
    return None


def _param(graph, p, x, axis, anchor):
    """A weight/bias broadcastable over ``x.shape[axis:]`` as a value of exactly that
    shape (kernels take it so), or None."""
    norm = tuple(x.shape[axis:])
    if p is None:
        return None
    if tuple(p.shape) == norm:
        return p
    lead = len(p.shape) - len(norm)
    if lead > axis or (lead > 0 and any(d != 1 for d in p.shape[:lead])):
        return None
    tail = tuple(p.shape[max(lead, 0):])
    tail = (1,) * (len(norm) - len(tail)) + tail
    if any(t not in (1, n) for t, n in zip(tail, norm)):
        return None
    if tail == norm and not p.is_constant:
        return place(graph, make_node(graph, Op.RESHAPE, [p], {"shape": norm}), anchor).outputs[0]
    if p.is_constant and all(isinstance(d, int) for d in norm):
        data = np.ascontiguousarray(np.broadcast_to(p.data.reshape(tail), norm))
        return graph.constant(data, name=f"{p.name}_{'x'.join(map(str, norm))}")
    return None


def _norm(graph, root):
    v = root.outputs[0]
    cases = []
    if root.op is Op.ADD:
        a, b = root.inputs
        cases = [(a, b), (b, a)]
    cases.append((v, None))
    for core_v, bias in cases:
        core = _norm_core(core_v)
        if core is None or (bias is not None and core["kind"] != "ln"):
            continue
        x, axis = core["x"], core["axis"]
        w = _param(graph, core["weight"], x, axis, root) if core["weight"] is not None else None
        if core["weight"] is not None and w is None:
            continue
        b = _param(graph, bias, x, axis, root) if bias is not None else None
        if bias is not None and b is None:
            continue
        interior = core["interior"] + ([root] if bias is not None else [])
        attrs = {"axis": axis, "eps": core["eps"]}
        if core["kind"] == "ln":
            inputs = [x, w, b] if b is not None else ([x, w] if w is not None else [x])
            if b is not None and w is None:
                one = graph.constant(np.ones(tuple(x.shape[axis:]), x.dtype), name="ln_ones")
                inputs = [x, one, b]
            return Match(Op.LAYER_NORM, inputs, attrs, interior)
        return Match(Op.RMS_NORM, [x, w] if w is not None else [x], attrs, interior)
    return None


# ---- attention ----------------------------------------------------------------------------

def _scores(s):
    """``s == (q @ transpose(k)) * scale``: returns (q, k, scale, nodes) or None."""
    c, leaves, nodes = flatten_mul(s)
    if len(leaves) != 1 or leaves[0][1] != 1:
        return None
    mm = producer(leaves[0][0], Op.MATMUL)
    if mm is None:
        return None
    qq, kt = mm.inputs
    tr = producer(kt, Op.TRANSPOSE)
    if tr is None or qq.ndim < 2 or kt.ndim != qq.ndim:
        return None
    # kᵀ may be one transpose doing more than swapping the last two axes (ONNX export folds
    # (0,2,1,3) and (0,1,3,2) into (0,2,3,1)): k is then the rest of it, a view.
    perm = tuple(tr.attrs["perm"])
    k_perm = perm[:-2] + (perm[-1], perm[-2])
    cq, lq, nq = flatten_mul(qq)
    if nq and len(lq) == 1 and lq[0][1] == 1:
        q, c, more = lq[0][0], c * cq, nq
    else:
        q, more = qq, []
    if not math.isfinite(c):
        return None
    # tr is a view: it may stay for other readers without computing anything twice.
    return q, (tr.inputs[0], k_perm), c, nodes + [mm] + more


def _attention(graph, root):
    p, v = root.inputs
    sm = producer(p, Op.SOFTMAX)
    if sm is None or sm.attrs["axis"] != p.ndim - 1 or v.ndim != p.ndim:
        return None
    s = sm.inputs[0]
    options = []
    add = producer(s, Op.ADD)
    if add is not None:
        a, b = add.inputs
        options += [(a, b, [add]), (b, a, [add])]
    options.append((s, None, []))
    for s0, mask, extra in options:
        got = _scores(s0)
        if got is None:
            continue
        q, (k, k_perm), scale, nodes = got
        if mask is not None and mask.dtype.kind != "f":
            continue
        if k_perm != tuple(range(len(k_perm))):
            k = place(graph, make_node(graph, Op.TRANSPOSE, [k], {"perm": k_perm}),
                      root).outputs[0]
        inputs = [q, k, v] + ([mask] if mask is not None else [])
        return Match(Op.ATTENTION, inputs, {"scale": float(scale)}, [sm] + extra + nodes)
    return None


F = frozenset
PATTERNS = (
    Pattern("sigmoid", 0, F({Op.DIV, Op.RECIPROCAL, Op.MUL}), _sigmoid),
    Pattern("silu", 0, F({Op.MUL, Op.DIV}), _silu),
    Pattern("gelu", 0, F({Op.MUL, Op.DIV}), _gelu),
    Pattern("gelu_tanh", 0, F({Op.MUL, Op.DIV}), _gelu_tanh),
    Pattern("softmax", 1, F({Op.DIV, Op.MUL}), _softmax),
    Pattern("log_softmax", 1, F({Op.SUB}), _log_softmax),
    Pattern("layer_norm/rms_norm", 1, F({Op.ADD, Op.MUL, Op.DIV}), _norm),
    Pattern("log(softmax)", 2, F({Op.LOG}), _log_softmax),
    Pattern("attention", 2, F({Op.MATMUL}), _attention),
)


def _try(graph, root, pattern, use) -> bool:
    m = pattern.match(graph, root)
    if m is None:
        return False
    interior = _uniq([root] + m.interior)
    names = tuple(n.name for n in interior)
    bad = escaping(graph, interior, root, use)
    if bad:
        note(graph, interior, f"{pattern.name}: not fused: multiple consumers: "
                              + ", ".join(f"'{n.name}'" for n in bad)
                              + " is also used outside the pattern (it would be computed twice)")
        return False
    new = make_node(graph, m.op, m.inputs, m.attrs, name=pattern.name.split("/")[0],
                    fused_from=names)
    old = root.outputs[0]
    if tuple(new.outputs[0].shape) != tuple(old.shape):
        note(graph, interior, f"{pattern.name}: not fused: layout: result shape "
                              f"{new.outputs[0].shape} differs from {old.shape}")
        return False
    if new.outputs[0].dtype != old.dtype:
        note(graph, interior, f"{pattern.name}: not fused: dtype: {new.outputs[0].dtype} "
                              f"differs from {old.dtype}")
        return False
    place(graph, new, root)
    graph.replace_uses(old, new.outputs[0])
    return True


def patterns(graph: Graph) -> None:
    for phase in sorted({p.phase for p in PATTERNS}):
        rules = [p for p in PATTERNS if p.phase == phase]
        dead: set = set()
        use = users(graph)
        for root in reversed(list(graph.nodes)):
            if id(root) in dead or len(root.outputs) != 1:
                continue
            for pattern in rules:
                if root.op in pattern.roots and _try(graph, root, pattern, use):
                    interior = graph.nodes  # recompute what died: every node now unused
                    finish(graph)
                    alive = {id(n) for n in graph.nodes}
                    dead |= {id(n) for n in interior if id(n) not in alive}
                    use = users(graph)
                    break
        finish(graph)
