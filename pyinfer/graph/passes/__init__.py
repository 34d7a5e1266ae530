"""Graph passes: each a small rule-table module, run in a fixed order.

``PASSES`` maps a name to ``fn(graph) -> None`` (rewrites in place, keeps the
graph's outputs, their ``output_name`` and topological order).  ``optimize``
runs them on a copy.  Every pass leaves a graph that
``pyinfer.graph.reference.evaluate`` gives the same answer for (up to rounding:
a fused GELU is computed once, not as seven ops).  Fusions not done are recorded
in ``graph.notes`` as ``(node names, reason)`` for ``Interpreter.explain()``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Union

from ..ir import VIEW_OPS, Graph
# The modules keep their names in this package (``passes.patterns.PATTERNS``);
# the pass functions are reached through ``PASSES``.
from . import cnn, cse, dce, epilogue, fold, fuse, layout, patterns, simplify
from . import qdq  # int8: QDQ / ONNX Runtime quantized forms -> QGEMM
from . import qdq_conv  # int8: QDQ Conv -> QCONV
from . import qrows  # int8: the exported per-row dynamic GEMM -> QGEMM

PASSES = OrderedDict([
    ("qrows", qrows.qrows),             # exported per-row int8 GEMM -> QGEMM (before simplify)
    ("fold", fold.fold),                # constants in, constants out
    ("simplify", simplify.simplify),    # x*1, x/c, pow, double transpose...
    ("cse", cse.cse),                   # one node per distinct computation
    ("patterns", patterns.patterns),    # GELU, SiLU, softmax, layernorm, RMSNorm, attention
    ("cnn", cnn.cnn),                   # conv + batch norm / bias / residual / activation -> conv
    ("qdq_conv", qdq_conv.qdq_conv),    # DQ->Conv(->Q) -> QCONV (before qdq folds leftover DQs)
    ("qdq", qdq.qdq),                  # DQ->MatMul, DynamicQuantizeLinear->MatMulInteger -> QGEMM
    ("epilogue", epilogue.epilogue),    # matmul + bias + activation + residual -> GEMM
    ("fuse", fuse.fuse),                # elementwise chains (+ their reduction) -> one kernel
    ("layout", layout.layout),          # attention writes the transpose that follows it
    ("dce", dce.dce),
])


def optimize(graph: Graph, passes: Union[None, str, Iterable[str]] = None) -> Graph:
    """An optimized copy of ``graph``.  ``passes``: None for all (in ``PASSES``
    order), ``"none"`` or ``[]`` for none, or a list of names run in the given order."""
    if passes is None:
        names = list(PASSES)
    elif isinstance(passes, str):
        names = [] if passes == "none" else [passes]
    else:
        names = list(passes)
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ValueError(f"optimize: argument 'passes' expected names from {list(PASSES)}, "
                         f"received {unknown}")
    g = graph.copy()
    for name in names:
        PASSES[name](g)
    return g


def kernel_count(graph: Graph) -> int:
    """Nodes that launch a kernel: all but RESHAPE/TRANSPOSE/SLICE views (constants
    are not nodes)."""
    return sum(1 for n in graph.nodes if n.op not in VIEW_OPS)


__all__ = ["PASSES", "optimize", "kernel_count"]
