"""What every pass shares: building a node without appending it, rewiring uses,
re-sorting the graph, dead-code removal, notes, and the small matchers the rule
tables are written with (scalar constants, flattened products and sums).

Passes rewrite in place and may leave nodes out of order or dead for a moment;
``finish(graph)`` (a stable topological sort, then dce) puts the graph right again.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Op, Value
from ..shapes import infer

# ---- building and rewiring -----------------------------------------------------------


def make_node(graph: Graph, op: Op, inputs, attrs=None, name: Optional[str] = None,
              fused_from: tuple = ()) -> Node:
    """A node with inferred outputs, not yet placed in ``graph.nodes``."""
    node = Node(op, list(inputs), [], dict(attrs or {}), graph.node_name(name or op.value),
                tuple(fused_from))
    for shape, dtype in infer(node):
        node.outputs.append(Value(graph.new_value_name(node.name), tuple(shape),
                                  np.dtype(dtype), producer=node))
    return node


def place(graph: Graph, node: Node, anchor: Node) -> Node:
    """Insert ``node`` just before ``anchor`` (``finish`` re-sorts anyway)."""
    graph.insert_before(anchor, node)
    return node


def is_output(graph: Graph, v: Value) -> bool:
    return any(o is v for o in graph.outputs)


def can_replace(graph: Graph, old: Value, new: Value) -> bool:
    """A value carries one ``output_name``: two graph outputs cannot become one value."""
    return not (is_output(graph, old) and is_output(graph, new))


def users(graph: Graph) -> dict:
    """value -> list of consuming nodes (a node reading a value twice appears once)."""
    out: dict = {}
    for node in graph.nodes:
        seen = set()
        for v in node.inputs:
            if v is not None and id(v) not in seen:
                seen.add(id(v))
                out.setdefault(v, []).append(node)
    return out


def note(graph: Graph, nodes, reason: str) -> None:
    """Record why a rewrite was not done: ``(tuple of node names, reason)``, once."""
    names = tuple(n.name if isinstance(n, Node) else str(n) for n in nodes)
    entry = (names, reason)
    if entry not in graph.notes:
        graph.notes.append(entry)


def dce(graph: Graph) -> int:
    """Remove nodes none of whose outputs is used or returned; returns how many."""
    live = {id(v) for v in graph.outputs}
    keep = []
    for node in reversed(graph.nodes):
        if any(id(v) in live for v in node.outputs):
            keep.append(node)
            live.update(id(v) for v in node.inputs if v is not None)
    removed = len(graph.nodes) - len(keep)
    graph.nodes = keep[::-1]
    return removed


def toposort(graph: Graph) -> None:
    """Stable topological sort (keeps the existing order where it is legal)."""
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    producer = {}
    for n in graph.nodes:
        for v in n.outputs:
            producer[id(v)] = n
    deps = {id(n): {id(producer[id(v)]) for v in n.inputs
                    if v is not None and id(v) in producer} - {id(n)} for n in graph.nodes}
    done, order = set(), []
    import heapq
    waiting = {id(n): len(deps[id(n)]) for n in graph.nodes}
    rdeps: dict = {}
    for n in graph.nodes:
        for d in deps[id(n)]:
            rdeps.setdefault(d, []).append(n)
    heap = [(index[id(n)], id(n), n) for n in graph.nodes if waiting[id(n)] == 0]
    heapq.heapify(heap)
    while heap:
        _, nid, n = heapq.heappop(heap)
        order.append(n)
        done.add(nid)
        for m in rdeps.get(nid, ()):
            waiting[id(m)] -= 1
            if waiting[id(m)] == 0:
                heapq.heappush(heap, (index[id(m)], id(m), m))
    if len(order) != len(graph.nodes):
        raise AssertionError("pass made a cycle in the graph: " +
                             ", ".join(n.name for n in graph.nodes if id(n) not in done))
    graph.nodes = order


def finish(graph: Graph) -> None:
    toposort(graph)  # first: dce's backward sweep needs producers before consumers
    dce(graph)


# ---- matching helpers ------------------------------------------------------------------

def apply_rules(graph: Graph, ops, rules) -> None:
    """Each rule ``rule(graph, node, users) -> changed`` in turn over the nodes
    of ``ops`` (a snapshot per rule, use lists fresh per node), the graph
    finished after a rule that changed it, so the next rule sees its result."""
    for rule in rules:
        changed = False
        for node in [n for n in graph.nodes if n.op in ops]:
            changed |= rule(graph, node, users(graph))
        if changed:
            finish(graph)


def producer(v: Optional[Value], op=None) -> Optional[Node]:
    """The node making ``v`` (None for inputs/constants), if its op is ``op`` (an Op or a set)."""
    if v is None or v.producer is None or v.is_constant:
        return None
    n = v.producer
    if op is None or n.op is op or (isinstance(op, (set, frozenset)) and n.op in op):
        return n
    return None


def scalar(v: Optional[Value]) -> Optional[float]:
    """The value of a constant with one element, as a Python float; else None."""
    if v is None or not v.is_constant or v.data.size != 1 or v.dtype.kind not in "fiu":
        return None
    return float(v.data.reshape(-1)[0])


def close(a: Optional[float], b: float, rtol: float = 1e-6) -> bool:
    """Constant equality that survives float32 rounding of the written constant
    but not a different constant (0.044716 is not 0.044715)."""
    return a is not None and math.isfinite(a) and abs(a - b) <= rtol * abs(b)


def flatten_mul(v: Value, stop=()):
    """A product tree as ``(const, [(leaf, exponent)], nodes)``: MUL is descended,
    DIV by a value gives exponent -1, MUL and DIV by one-element constants fold
    into ``const``, RECIPROCAL flips the exponent, POW by a small
    integer constant repeats its base.  ``stop`` values are leaves."""
    stop_ids = {id(s) for s in stop}
    const, leaves, nodes = 1.0, [], []

    def walk(u, e):
        nonlocal const
        c = scalar(u)
        if c is not None:
            const *= c ** e if c != 0 or e > 0 else math.inf
            return
        n = producer(u)
        if n is None or id(u) in stop_ids:
            leaves.append((u, e))
            return
        if n.op is Op.MUL:
            nodes.append(n)
            walk(n.inputs[0], e)
            walk(n.inputs[1], e)
        elif n.op is Op.DIV:
            nodes.append(n)
            walk(n.inputs[0], e)
            walk(n.inputs[1], -e)
        elif n.op is Op.RECIPROCAL:
            nodes.append(n)
            walk(n.inputs[0], -e)
        elif n.op is Op.POW and scalar(n.inputs[1]) in (2.0, 3.0, 4.0):
            nodes.append(n)
            for _ in range(int(scalar(n.inputs[1]))):
                walk(n.inputs[0], e)
        else:
            leaves.append((u, e))

    walk(v, 1)
    return const, leaves, nodes


def flatten_add(v: Value, stop=()):
    """A sum tree as ``(const, [(leaf, sign)], nodes)``; ADD/SUB and NEG are descended,
    one-element constants fold into ``const``."""
    stop_ids = {id(s) for s in stop}
    const, leaves, nodes = 0.0, [], []

    def walk(u, s):
        nonlocal const
        c = scalar(u)
        if c is not None:
            const += s * c
            return
        n = producer(u)
        if n is None or id(u) in stop_ids:
            leaves.append((u, s))
        elif n.op is Op.ADD:
            nodes.append(n)
            walk(n.inputs[0], s)
            walk(n.inputs[1], s)
        elif n.op is Op.SUB:
            nodes.append(n)
            walk(n.inputs[0], s)
            walk(n.inputs[1], -s)
        else:
            leaves.append((u, s))

    walk(v, 1)
    return const, leaves, nodes


def same_leaves(leaves, expected) -> bool:
    """Do ``[(value, exp)]`` lists hold the same items, in any order (by identity)?"""
    a = sorted((id(v), e) for v, e in leaves)
    b = sorted((id(v), e) for v, e in expected)
    return a == b


def escaping(graph: Graph, interior, root: Node, use: Optional[dict] = None):
    """Interior nodes (other than ``root``) whose results are read outside the match
    or returned: such a match would have to compute them twice."""
    use = users(graph) if use is None else use
    inside = {id(n) for n in interior} | {id(root)}
    bad = []
    for n in interior:
        if n is root:
            continue
        for v in n.outputs:
            if is_output(graph, v) or any(id(c) not in inside for c in use.get(v, ())):
                bad.append(n)
                break
    return bad
