"""Elementwise-chain fusion and reduction fusion (docs/fusion-ir.md).

Elementwise: nodes are grouped greedily in topological order.  A node joins the
group of a producer when the rules of ``JOIN_RULES`` all allow it:

* dtype: float or bool values only, one float dtype per group;
* shape: the same output shape, or a *cheap* producer group of a smaller shape
  broadcasting into the consumer whose values all stay inside the group (a
  kernel evaluates its whole program per output element, so an expensive
  producer of a smaller shape would be recomputed for every broadcast element,
  and a smaller value cannot be stored as one of the group's results);
* no cycle: no path leaves the group and comes back (``a -> sum -> b`` with
  ``a`` and ``b`` elementwise stays two kernels).

Each group of two or more nodes becomes one FUSED_ELEMENTWISE node: its program
reads external inputs (broadcast), folds one-element constants in as
``("const", v)``, and stores one result per value read outside the group or
returned (never recomputing a producer in two kernels).  The generated kernel is
cached by the program, never by a closure.

Reduction: a group (even of one node) whose only outside use is one SUM/MEAN/MAX/MIN
of a value of the group's shape becomes a FUSED_REDUCTION (``input_shape`` = the
broadcast shape reduced).  A group whose value also feeds other consumers is
left as an elementwise kernel plus the reduction, and a note says why.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import COMPARE_OPS, ELEMENTWISE_OPS, REDUCE_OPS, VIEW_OPS, Graph, Node, Op, Value
from ..shapes import broadcast as _broadcast
from ._util import finish, is_output, note, users

CHEAP_OPS = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.NEG, Op.ABS, Op.RELU, Op.MAXIMUM, Op.MINIMUM,
                       Op.WHERE, Op.NOT, Op.CAST}) | COMPARE_OPS


def _bshape(*shapes) -> Optional[tuple]:
    try:
        return _broadcast(Node(Op.ADD, [], []), *shapes)
    except Exception:
        return None


def _fits(small, big) -> bool:
    """Does ``small`` broadcast into ``big`` without changing it?"""
    return _bshape(small, big) == tuple(big)


def _float_of(node) -> Optional[np.dtype]:
    dt = node.outputs[0].dtype
    return dt if dt.kind == "f" else None


class _Group:
    def __init__(self, node):
        self.nodes = [node]
        self.ids = {id(node)}
        self.shape = tuple(node.outputs[0].shape)
        self.dtype = _float_of(node)
        self.cheap = node.op in CHEAP_OPS


def _candidate(graph, node) -> bool:
    if node.op not in ELEMENTWISE_OPS or len(node.outputs) != 1:
        return False
    vals = [v for v in node.inputs if v is not None] + node.outputs
    if all(v.dtype.kind in "fb" for v in vals):
        return True
    note(graph, [node], "fuse: dtype: only float and bool values are fused; "
                        + ", ".join(f"'{v.name}' is {v.dtype}" for v in vals
                                    if v.dtype.kind not in "fb"))
    return False


class _Fuser:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.use = users(graph)
        self.index = {id(n): i for i, n in enumerate(graph.nodes)}
        self.group_of: dict = {}

    # -- join rules -------------------------------------------------------------------

    def _dtype_ok(self, g, h, consumer) -> Optional[str]:
        if g.dtype is not None and h.dtype is not None and g.dtype != h.dtype:
            return f"dtype: {g.dtype} and {h.dtype} in one kernel"
        return None

    def _shape_ok(self, g, h, consumer) -> Optional[str]:
        """g: producer group, h: the consumer's group."""
        if g.shape == h.shape:
            return None
        if not _fits(g.shape, h.shape):
            return f"layout: shape {g.shape} does not broadcast into {h.shape}"
        for n in g.nodes:
            v = n.outputs[0]
            if is_output(self.graph, v) or any(id(c) not in g.ids and c is not consumer
                                               for c in self.use.get(v, ())):
                return (f"multiple consumers: '{v.name}' {g.shape} is also used outside; "
                        f"a result must have the kernel's shape {h.shape}")
        if not g.cheap:
            return (f"broadcast: an expensive producer of shape {g.shape} would be "
                    f"recomputed for every element of {h.shape}")
        return None

    def _cycle(self, ids) -> Optional[Node]:
        """A node outside ``ids`` on a path from the group back into it, if any."""
        top = max(self.index[i] for i in ids)
        nodes = self.graph.nodes
        frontier = [c for i in ids for v in nodes[self.index[i]].outputs
                    for c in self.use.get(v, ()) if id(c) not in ids]
        seen = set()
        while frontier:
            n = frontier.pop()
            if id(n) in seen or self.index[id(n)] > top:
                continue
            seen.add(id(n))
            for v in n.outputs:
                for c in self.use.get(v, ()):
                    if id(c) in ids:
                        return n
                    frontier.append(c)
        return None

    def _join(self, g, h, consumer) -> bool:
        for rule in (self._dtype_ok, self._shape_ok):
            why = rule(g, h, consumer)
            if why:
                note(self.graph, [g.nodes[-1], consumer], f"fuse: not fused: {why}")
                return False
        through = self._cycle(g.ids | h.ids)
        if through is not None:
            note(self.graph, [g.nodes[-1], through, consumer],
                 f"fuse: not fused: '{through.name}' ({through.op.value}) lies between them; "
                 "one kernel would need its own result as input")
            return False
        return True

    # -- grouping -------------------------------------------------------------------------

    def group(self):
        groups = []
        for node in self.graph.nodes:
            if not _candidate(self.graph, node):
                continue
            h = _Group(node)
            groups.append(h)
            self.group_of[id(node)] = h
            for v in node.inputs:
                p = v.producer if v is not None and not v.is_constant else None
                g = self.group_of.get(id(p)) if p is not None else None
                if g is None or g is h or not self._join(g, h, node):
                    continue
                g.nodes += h.nodes
                g.ids |= h.ids
                g.cheap = g.cheap and h.cheap
                g.dtype = g.dtype or h.dtype
                g.shape = h.shape if _fits(g.shape, h.shape) else g.shape
                for n in h.nodes:
                    self.group_of[id(n)] = g
                groups.remove(h)
                h = g
        for g in groups:
            g.nodes.sort(key=lambda n: self.index[id(n)])
        return groups

    # -- code -----------------------------------------------------------------------------

    def program(self, g):
        """(inputs, program, {id(value): register}) for a group, in topological order."""
        program, inputs, regs, ins_at, consts = [], [], {}, {}, {}

        def reg_of(v):
            if id(v) in regs:
                return regs[id(v)]
            if v.is_constant and v.data.size == 1:
                x = v.data.reshape(-1)[0]
                val = bool(x) if v.dtype.kind == "b" else float(x)
                key = (type(val), repr(val))
                if key not in consts:
                    program.append(("const", val))
                    consts[key] = len(program) - 1
                return consts[key]
            if id(v) not in ins_at:
                inputs.append(v)
                program.append(("in", len(inputs) - 1))
                ins_at[id(v)] = len(program) - 1
            return ins_at[id(v)]

        for n in g.nodes:
            args = tuple(reg_of(v) for v in n.inputs)
            if n.op is Op.CAST:
                program.append(("cast", args[0], np.dtype(n.attrs["dtype"]).name))
            else:
                program.append((n.op.value,) + args)
            regs[id(n.outputs[0])] = len(program) - 1
        return inputs, tuple(program), regs

    def escaping(self, g):
        out = []
        for n in g.nodes:
            v = n.outputs[0]
            if is_output(self.graph, v) or any(id(c) not in g.ids for c in self.use.get(v, ())):
                out.append(v)
        return out

    def compute_dtype(self, g, inputs):
        if g.dtype is not None:
            return g.dtype
        floats = [v.dtype for v in inputs if v.dtype.kind == "f"]
        return np.result_type(*floats) if floats else np.dtype(np.bool_)

    def emit_reduction(self, g, red) -> bool:
        inputs, program, regs = self.program(g)
        r = red.inputs[0]
        val = red.outputs[0]
        attrs = {"program": program, "results": (regs[id(r)],), "reduce": red.op.value,
                 "axis": tuple(red.attrs["axis"]), "keepdims": bool(red.attrs["keepdims"]),
                 "shape": tuple(val.shape), "dtype": val.dtype, "input_shape": tuple(r.shape)}
        node = Node(Op.FUSED_REDUCTION, inputs, [], attrs, self.graph.node_name("fused_reduction"),
                    tuple(n.name for n in g.nodes) + (red.name,))
        node.outputs.append(Value(self.graph.new_value_name(node.name), tuple(val.shape),
                                  val.dtype, producer=node))
        self.graph.insert_before(red, node)
        self.graph.replace_uses(val, node.outputs[0])
        return True

    def emit(self, g, results):
        inputs, program, regs = self.program(g)
        dtype = self.compute_dtype(g, inputs)
        attrs = {"program": program, "results": tuple(regs[id(v)] for v in results),
                 "shape": g.shape, "dtype": dtype}
        dtypes = tuple(v.dtype for v in results)
        if any(d != dtype for d in dtypes):
            attrs["dtypes"] = dtypes
        node = Node(Op.FUSED_ELEMENTWISE, inputs, [], attrs, self.graph.node_name("fused"),
                    tuple(n.name for n in g.nodes))
        for v in results:
            node.outputs.append(Value(self.graph.new_value_name(node.name), g.shape, v.dtype,
                                      producer=node))
        self.graph.insert_before(g.nodes[-1], node)
        for old, new in zip(results, node.outputs):
            self.graph.replace_uses(old, new)


def _reduction_of(fuser, g, results):
    """The reduction this group can be fused into, or None (noting why not)."""
    graph = fuser.graph
    reds = [(v, c) for v in results for c in fuser.use.get(v, ()) if c.op in REDUCE_OPS]
    if not reds:
        return None
    if len(results) == 1 and len(reds) == 1:
        v, red = reds[0]
        if len(fuser.use[v]) == 1 and not is_output(graph, v) and tuple(v.shape) == g.shape \
                and red.outputs[0].dtype == v.dtype:
            return red
    for v, red in reds:
        others = [c.name for c in fuser.use.get(v, ()) if c is not red]
        why = ("multiple consumers: '{}' is also read by {}".format(v.name, ", ".join(others))
               if others else "multiple consumers: the group has other results"
               if len(results) > 1 else "'{}' is a graph output".format(v.name)
               if is_output(graph, v) else "dtype or shape of the reduced value")
        note(graph, g.nodes + [red], f"fuse: reduction not fused: {why}; the elementwise "
                                     "kernel stores it once and the reduction reads it")
    return None


def _note_breaks(graph, use):
    """Say where elementwise chains are cut by a layout op or an op fusion cannot take."""
    for n in graph.nodes:
        if n.op in VIEW_OPS:
            p = n.inputs[0].producer
            cons = use.get(n.outputs[0], [])
            if p is not None and p.op in ELEMENTWISE_OPS and any(c.op in ELEMENTWISE_OPS
                                                                 for c in cons):
                note(graph, [p, n], f"fuse: not fused across '{n.name}': layout: a "
                                    f"{n.op.value} between elementwise nodes changes the indexing")
        elif n.op is Op.ARGMAX:
            p = n.inputs[0].producer
            if p is not None and p.op in ELEMENTWISE_OPS:
                note(graph, [p, n], "fuse: reduction not fused: unsupported op: argmax")


def fuse(graph: Graph) -> None:
    fuser = _Fuser(graph)
    groups = fuser.group()
    _note_breaks(graph, fuser.use)
    changed = False
    for g in groups:
        results = fuser.escaping(g)
        if any(tuple(v.shape) != g.shape for v in results):
            note(graph, g.nodes, "fuse: not fused: layout: a result is smaller than the kernel")
            continue
        red = _reduction_of(fuser, g, results)
        if red is not None:
            changed = fuser.emit_reduction(g, red)
        elif len(g.nodes) > 1:
            fuser.emit(g, results)
            changed = True
    if changed:
        finish(graph)
