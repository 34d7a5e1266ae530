"""Output layouts: a kernel that writes through strides writes a following
transpose's layout itself.

The fused attention kernel writes its (..., H, S, D) result through any
strides.  Transformers transpose that result to (..., S, H, D) and reshape it
to (..., S, H*D) for the output projection, a copy of the whole activation
per layer.  Here ATTENTION takes the TRANSPOSE as its attribute ``out_perm``
(its result is then the transposed tensor, contiguous in the arena); the
reshape that follows becomes a view and the copy disappears.

| rule | matches | becomes |
|---|---|---|
| transpose into the writer | ATTENTION whose only reader is TRANSPOSE(perm) keeping the last axis, neither a graph output | ATTENTION(out_perm=perm) |

The last axis stays last so that the kernel's rows are still written with
unit stride.
"""
from __future__ import annotations

from ..ir import Graph, Op
from ._util import apply_rules, is_output

# ops whose kernels write any strided output, and take ``out_perm``
STRIDED_WRITERS = frozenset({Op.ATTENTION})


def compose(first, then) -> tuple:
    """The permutation of transposing by ``first`` then by ``then``."""
    return tuple(first[p] for p in then)


def _transpose_into_writer(graph: Graph, node, users) -> bool:
    out = node.outputs[0]
    readers = users.get(out, [])
    if len(readers) != 1 or is_output(graph, out):
        return False
    t = readers[0]
    if t.op is not Op.TRANSPOSE or t.inputs[0] is not out:
        return False
    perm = tuple(t.attrs["perm"])
    if perm[-1] != len(perm) - 1:
        return False
    before = tuple(node.attrs.get("out_perm", range(len(perm))))
    node.attrs["out_perm"] = compose(before, perm)
    # The writer now produces the transpose's value (its name, and its
    # output_name if it is a graph output); the transpose goes.
    result = t.outputs[0]
    node.outputs = [result]
    result.producer = node
    graph.remove([t])
    return True


def layout(graph: Graph) -> None:
    apply_rules(graph, STRIDED_WRITERS, [_transpose_into_writer])
