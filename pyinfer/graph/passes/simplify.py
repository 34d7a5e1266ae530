"""Algebraic simplification: a table of small rewrite rules.

Each rule names the op it looks at and a function ``(graph, node) -> Value|None``
giving what the node's result can be replaced with (an existing value or the
result of new nodes placed before it).  The driver keeps a rewrite only when the
replacement has exactly the node's shape and dtype, so a rule never has to
think about broadcasting (``x * ones((3, 1))`` is not ``x``) or promotion.
Rules run to a fixed point (bounded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir import Graph, Node, Op
from ._util import can_replace, finish, make_node, place, producer, scalar


@dataclass(frozen=True)
class Rule:
    name: str
    op: Op
    rewrite: Callable


def _is_const(v, value) -> bool:
    """Is ``v`` a constant all of whose elements equal ``value``?"""
    return v is not None and v.is_constant and v.data.size > 0 and v.dtype.kind in "fiu" \
        and bool(np.all(v.data == value))


def _new(graph, anchor, op, inputs, attrs=None):
    return place(graph, make_node(graph, op, inputs, attrs), anchor).outputs[0]


def _identity(op, value, sides):
    """``x op value`` (and ``value op x`` where ``sides`` is 2) is ``x``."""
    def rewrite(graph, node):
        a, b = node.inputs
        if _is_const(b, value):
            return a
        if sides == 2 and _is_const(a, value):
            return b
        return None
    return rewrite


def _pow(graph, node):
    x, p = node.inputs
    e = scalar(p)
    if e is None:
        return None
    if e == 1.0:
        return x
    if e == 2.0:
        return _new(graph, node, Op.MUL, [x, x])
    if e == 0.5:
        return _new(graph, node, Op.SQRT, [x])
    if e == -0.5:
        return _new(graph, node, Op.RSQRT, [x])
    if e == -1.0:
        return _new(graph, node, Op.RECIPROCAL, [x])
    return None


def _div(graph, node):
    x, c = node.inputs
    if _is_const(x, 1.0):
        return _new(graph, node, Op.RECIPROCAL, [c])
    if c.is_constant and c.dtype.kind == "f" and node.outputs[0].dtype.kind == "f":
        # x / c -> x * (1/c): a multiply is several times cheaper than a divide.
        with np.errstate(all="ignore"):
            inv = (np.asarray(1.0, c.dtype) / c.data).astype(c.dtype)
        return _new(graph, node, Op.MUL, [x, graph.constant(inv, name=f"{c.name}_inv")])
    return None


def _sub(graph, node):
    a, b = node.inputs
    if _is_const(b, 0.0):
        return a
    if _is_const(a, 0.0):
        return _new(graph, node, Op.NEG, [b])
    nb = producer(b, Op.NEG)
    if nb is not None:  # a - (-y) -> a + y
        return _new(graph, node, Op.ADD, [a, nb.inputs[0]])
    return None


def _add_neg(graph, node):
    a, b = node.inputs
    for x, y in ((a, b), (b, a)):
        ny = producer(y, Op.NEG)
        if ny is not None:  # x + (-z) -> x - z
            return _new(graph, node, Op.SUB, [x, ny.inputs[0]])
    return None


def _mul_neg_one(graph, node):
    a, b = node.inputs
    for x, c in ((a, b), (b, a)):
        if _is_const(c, -1.0):
            return _new(graph, node, Op.NEG, [x])
    return None


def _involution(op):
    """``op(op(x))`` is ``x``."""
    def rewrite(graph, node):
        inner = producer(node.inputs[0], op)
        return inner.inputs[0] if inner is not None else None
    return rewrite


def _recip_sqrt(graph, node):
    inner = producer(node.inputs[0], Op.SQRT)
    return _new(graph, node, Op.RSQRT, [inner.inputs[0]]) if inner is not None else None


def _transpose(graph, node):
    perm = tuple(node.attrs["perm"])
    if perm == tuple(range(len(perm))):
        return node.inputs[0]
    inner = producer(node.inputs[0], Op.TRANSPOSE)
    if inner is None:
        return None
    composed = tuple(inner.attrs["perm"][p] for p in perm)
    if composed == tuple(range(len(composed))):
        return inner.inputs[0]
    return _new(graph, node, Op.TRANSPOSE, [inner.inputs[0]], {"perm": composed})


def _reshape(graph, node):
    x = node.inputs[0]
    if tuple(x.shape) == tuple(node.outputs[0].shape) and \
            all(isinstance(d, int) for d in x.shape):
        return x
    inner = producer(x, Op.RESHAPE)
    if inner is None:
        return None
    return _new(graph, node, Op.RESHAPE, [inner.inputs[0]], {"shape": node.attrs["shape"]})


def _cast(graph, node):
    x = node.inputs[0]
    return x if x.dtype == node.outputs[0].dtype else None


RULES = (
    Rule("x*1 -> x", Op.MUL, _identity(Op.MUL, 1.0, 2)),
    Rule("x*-1 -> neg x", Op.MUL, _mul_neg_one),
    Rule("x+0 -> x", Op.ADD, _identity(Op.ADD, 0.0, 2)),
    Rule("x+(-y) -> x-y", Op.ADD, _add_neg),
    Rule("x-0 -> x, 0-x -> neg x, x-(-y) -> x+y", Op.SUB, _sub),
    Rule("x/1 -> x", Op.DIV, _identity(Op.DIV, 1.0, 1)),
    Rule("1/x -> reciprocal x, x/c -> x*(1/c)", Op.DIV, _div),
    Rule("x**1, x**2, x**0.5, x**-0.5, x**-1", Op.POW, _pow),
    Rule("neg(neg x) -> x", Op.NEG, _involution(Op.NEG)),
    Rule("1/(1/x) -> x", Op.RECIPROCAL, _involution(Op.RECIPROCAL)),
    Rule("1/sqrt x -> rsqrt x", Op.RECIPROCAL, _recip_sqrt),
    Rule("transpose(transpose x), identity transpose", Op.TRANSPOSE, _transpose),
    Rule("reshape(reshape x), identity reshape", Op.RESHAPE, _reshape),
    Rule("cast to own dtype", Op.CAST, _cast),
)

MAX_ROUNDS = 8


def _apply(graph: Graph, node: Node) -> bool:
    for rule in RULES:
        if rule.op is not node.op:
            continue
        new = rule.rewrite(graph, node)
        old = node.outputs[0]
        if new is None or new is old:
            continue
        if tuple(new.shape) != tuple(old.shape) or new.dtype != old.dtype:
            continue  # the rule would change broadcasting or promotion: not the same value
        if not can_replace(graph, old, new):
            continue  # both are returned under their own names
        graph.replace_uses(old, new)
        return True
    return False


def simplify(graph: Graph) -> None:
    for _ in range(MAX_ROUNDS):
        changed = False
        for node in list(graph.nodes):
            if len(node.outputs) == 1 and _apply(graph, node):
                changed = True  # the node is dead now; finish() removes it
        finish(graph)
        if not changed:
            break
