"""Constant folding: a node whose inputs are all constants becomes a constant,
computed by the reference evaluator (``reference.eval_node``), so folding can
never change what a graph means.

Size limit: a folded result may not be larger than ``FOLD_LIMIT_BYTES`` unless
it is no larger than its inputs together (``transpose(W)`` folds; broadcasting a
scalar to a 64 MiB tensor does not: the kernel would write it faster than the
model file could carry it).  Skipped folds are noted.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..reference import eval_node
from ._util import finish, note

FOLD_LIMIT_BYTES = 1 << 20
# Fused nodes are only made after folding; folding them would be harmless but pointless.
NEVER_FOLD = frozenset({Op.FUSED_ELEMENTWISE, Op.FUSED_REDUCTION})
NEVER_FOLD = NEVER_FOLD | {Op.DEQUANTIZE_LINEAR}  # int8 weights stay int8 for the qdq pass (it folds what it does not fuse)


def fold(graph: Graph) -> None:
    changed = False
    for node in list(graph.nodes):
        if node.op in NEVER_FOLD or not node.inputs:
            continue
        if not all(v is None or v.is_constant for v in node.inputs):
            continue
        out_bytes = sum(v.nbytes or 0 for v in node.outputs)
        in_bytes = sum(v.nbytes or 0 for v in node.inputs if v is not None)
        if out_bytes > max(FOLD_LIMIT_BYTES, in_bytes):
            note(graph, [node], f"fold: result of {out_bytes} bytes exceeds the folding limit "
                                f"({FOLD_LIMIT_BYTES} bytes) and its inputs; computed at run time")
            continue
        try:
            results = eval_node(node, [None if v is None else v.data for v in node.inputs])
        except Exception as exc:  # a node the reference cannot evaluate stays as it is
            note(graph, [node], f"fold: unsupported op ({type(exc).__name__}: {exc})")
            continue
        for v, r in zip(node.outputs, results):
            r = np.asarray(r)
            if r.dtype != v.dtype:
                r = r.astype(v.dtype)
            graph.replace_uses(v, graph.constant(r, name=f"{v.name}_folded"))
        changed = True
    if changed:
        finish(graph)
