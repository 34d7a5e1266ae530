"""Common subexpression elimination: two nodes with the same op, the same inputs
and the same attributes are one node; equal constants are one constant.

Keys are structural (``freeze`` turns attrs into hashable tuples), inputs are
compared by identity after earlier merges, so one forward sweep finds every
duplicate in a topologically ordered graph."""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ._util import finish

# Constants larger than this are compared by identity only (hashing weights costs
# more than it can save: two equal weight matrices are rare).
CONST_KEY_LIMIT = 1 << 16


def freeze(x):
    """A hashable, equality-preserving stand-in for an attribute value."""
    if isinstance(x, dict):
        return ("dict",) + tuple(sorted((str(k), freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__,) + tuple(freeze(v) for v in x)
    if isinstance(x, np.ndarray):
        return ("array", x.shape, x.dtype.str, x.tobytes())
    if isinstance(x, np.dtype):
        return ("dtype", x.str)
    if isinstance(x, type) and issubclass(x, np.generic):
        return ("dtype", np.dtype(x).str)
    if isinstance(x, slice):
        return ("slice", freeze(x.start), freeze(x.stop), freeze(x.step))
    if isinstance(x, float) and x != x:
        return ("nan",)
    if isinstance(x, np.generic):
        return ("scalar", x.dtype.str, x.item())
    try:
        hash(x)
    except TypeError:
        return ("repr", repr(x))
    return (type(x).__name__, x)


def _const_key(v):
    if v.data.size > CONST_KEY_LIMIT:
        return ("value", id(v))
    return ("const", v.data.shape, v.dtype.str, v.data.tobytes())


def cse(graph: Graph) -> None:
    canon: dict = {}       # id(value) -> canonical value
    const_seen: dict = {}
    seen: dict = {}
    changed = False

    def rep(v):
        if v is None:
            return None
        if id(v) in canon:
            return canon[id(v)]
        if v.is_constant:
            key = _const_key(v)
            canon[id(v)] = const_seen.setdefault(key, v)
            return canon[id(v)]
        return v

    for node in graph.nodes:
        new_inputs = [rep(v) for v in node.inputs]
        if any(a is not b for a, b in zip(new_inputs, node.inputs)):
            node.inputs = new_inputs
            changed = True
        key = (node.op, tuple(("none",) if v is None else ("v", id(v)) for v in node.inputs),
               freeze(node.attrs), len(node.outputs))
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        for old, new in zip(node.outputs, first.outputs):
            if old.dtype != new.dtype or old.shape != new.shape:
                break
        else:
            for old, new in zip(node.outputs, first.outputs):
                canon[id(old)] = new
            changed = True
    # A returned duplicate hands its output_name to the survivor, unless the survivor is
    # returned too (two names for one value): then the duplicate node stays.
    outs, taken = [], {id(o) for o in graph.outputs}
    for v in graph.outputs:
        new = v if v.is_constant else rep(v)
        if new is not v:
            if id(new) in taken:
                new = v
            else:
                taken.add(id(new))
                new.output_name = v.output_name
        outs.append(new)
    graph.outputs = outs
    if changed:
        finish(graph)
