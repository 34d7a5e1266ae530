"""Magnitude pruning of the constant weights of MatMul/Gemm layers.

``prune(graph, sparsity, structure="unstructured"|"block", block=...)``
returns a new graph in which each linear layer with a constant weight
``W`` (k x n) has the given fraction of its weights set to zero:

* ``"unstructured"``: the ``round(sparsity * k * n)`` weights of smallest
  magnitude;
* ``"block"``: the ``round(sparsity * blocks)`` (br x bc) blocks of smallest
  L2 norm (blocks at the edges may be partial), so that whole blocks vanish
  and the block-sparse kernel skips them.

Ties go to the earlier position (a stable sort), so the result is
deterministic.  Each pruned layer becomes a ``SPARSE_GEMM`` node
(pyinfer/graph/families/sparse.py) with its ``block`` as storage layout; the
planner then times the block-sparse and the dense kernel on that layer's real
shapes and keeps the faster.  A layer whose form SPARSE_GEMM cannot express
(Gemm with trans_a, a residual or a 2-d bias) keeps its op with the pruned
weight.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from ..errors import ShapeError
from ..graph.ir import Graph, Node, Op, Value
from ..graph.shapes import infer
from .bsr import check_block

STRUCTURES = ("unstructured", "block")
UNSTRUCTURED_STORAGE_BLOCK = (1, 8)
DEFAULT_BLOCK = (1, 16)


# ---- the layers compression applies to ------------------------------------------------

@dataclass
class Linear:
    """A MatMul/Gemm node seen as ``y = act(x @ W + bias (+ residual))``."""
    node: Node
    x: Value
    weight: Value          # the constant as the node holds it
    w: np.ndarray          # W (k, n) as the product uses it: alpha and trans_b applied
    bias: Optional[Value]
    residual: Optional[Value]
    activation: Optional[str]
    # Why the layer cannot be rewritten as x @ W' (+ bias ...), or None.
    why_fixed: Optional[str]


def linear_layers(graph: Graph, names: Optional[Iterable[str]] = None) -> list:
    """Every MatMul/Gemm of ``graph`` whose second operand is a 2-d float
    constant and whose first is not (in graph order), optionally only those
    named in ``names``."""
    wanted = None if names is None else set(names)
    found = []
    for node in graph.nodes:
        if node.op not in (Op.MATMUL, Op.GEMM) or (wanted is not None and node.name not in wanted):
            continue
        a, b = node.inputs[:2]
        if a is None or a.is_constant or b is None or not b.is_constant or b.ndim != 2 \
                or b.dtype.kind != "f":
            continue
        if node.op is Op.MATMUL:
            found.append(Linear(node, a, b, b.data, None, None, None, None))
            continue
        at = node.attrs
        w = b.data.T if at.get("trans_b") else b.data
        alpha = float(at.get("alpha", 1.0))
        if alpha != 1.0:
            w = w * w.dtype.type(alpha)
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        res = node.inputs[3] if len(node.inputs) > 3 else None
        why = "trans_a" if at.get("trans_a") else None
        found.append(Linear(node, a, b, np.asarray(w), bias, res, at.get("activation"), why))
    if wanted is not None:
        missing = wanted - {lin.node.name for lin in found}
        if missing:
            raise ShapeError(f"argument 'nodes': no MatMul/Gemm with a constant weight named "
                             f"{sorted(missing)}")
    return found


def make_node(graph: Graph, op: Op, inputs: list, attrs: dict, name: str,
              output: Optional[Value] = None) -> Node:
    """A node whose outputs are inferred now; with ``output`` it takes over
    that value (its consumers and graph-output role stay) after checking that
    shape and dtype agree."""
    node = Node(op, list(inputs), [], dict(attrs), name)
    ((shape, dtype),) = infer(node)
    if output is None:
        node.outputs.append(Value(graph.new_value_name(name), tuple(shape), np.dtype(dtype),
                                  producer=node))
    else:
        if tuple(shape) != tuple(output.shape) or np.dtype(dtype) != output.dtype:
            raise ShapeError(f"node '{name}': rewritten as {op.value} it would give "
                             f"{tuple(shape)} {np.dtype(dtype)}, not {output.shape} {output.dtype}")
        output.producer = node
        node.outputs.append(output)
    return node


def replace(graph: Graph, old: Node, new_nodes: list) -> None:
    """Put ``new_nodes`` where ``old`` was (topological order kept)."""
    i = next(j for j, n in enumerate(graph.nodes) if n is old)
    graph.nodes[i:i + 1] = new_nodes


def _check_sparsity(sparsity) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) \
            or not (0.0 <= float(sparsity) < 1.0):
        raise ShapeError(f"prune: argument 'sparsity' expected a number in [0, 1), "
                         f"received {sparsity!r}")
    return float(sparsity)


def _check_structure(structure) -> str:
    if structure not in STRUCTURES:
        raise ShapeError(f"prune: argument 'structure' expected one of {STRUCTURES}, "
                         f"received {structure!r}")
    return structure


# ---- the masks --------------------------------------------------------------------------

def prune_weights(w, sparsity: float, structure: str = "unstructured",
                  block=DEFAULT_BLOCK) -> np.ndarray:
    """A copy of the 2-d float array ``w`` with its smallest weights (or
    ``block``-shaped blocks, by L2 norm) set to zero: ``round(sparsity *
    count)`` of them, ties broken by position."""
    sparsity = _check_sparsity(sparsity)
    structure = _check_structure(structure)
    w = np.asarray(w)
    if w.ndim != 2 or w.dtype.kind != "f":
        raise ShapeError(f"prune: argument 'w' expected a 2-d float array, received "
                         f"{w.ndim}-d {w.dtype}")
    out = np.array(w, copy=True)
    if structure == "unstructured":
        drop = int(round(sparsity * w.size))
        order = np.argsort(np.abs(w), axis=None, kind="stable")
        out.reshape(-1)[order[:drop]] = 0
        return out
    br, bc = check_block(block, "prune")
    k, n = w.shape
    kb, nb = -(-k // br), -(-n // bc)
    sq = np.zeros((kb * br, nb * bc), np.float64)
    sq[:k, :n] = np.square(w, dtype=np.float64)
    norms = np.sqrt(sq.reshape(kb, br, nb, bc).sum(axis=(1, 3)))  # (kb, nb)
    drop = int(round(sparsity * norms.size))
    order = np.argsort(norms, axis=None, kind="stable")
    keep = np.ones(norms.size, bool)
    keep[order[:drop]] = False
    mask = np.repeat(np.repeat(keep.reshape(kb, nb), br, axis=0), bc, axis=1)[:k, :n]
    out[~mask] = 0
    return out


# ---- the graph rewrite ------------------------------------------------------------------

def prune(graph: Graph, sparsity: float, structure: str = "unstructured", block=None,
          nodes: Optional[Iterable[str]] = None) -> Graph:
    """A copy of ``graph`` with every MatMul/Gemm constant weight (or those of
    the nodes named in ``nodes``) magnitude-pruned to ``sparsity`` in [0, 1).

    ``structure``: "unstructured" (single weights) or "block" (whole
    ``block`` = (rows along k, columns along n) blocks, default 1x16: two AVX2
    vectors).  ``block`` is also the storage layout the block-sparse kernel
    uses; for unstructured pruning it defaults to 1x8.  Pruned layers become
    SPARSE_GEMM nodes; the plan picks the block-sparse or the dense kernel
    for each by measured speed (``Interpreter.explain()`` says which).
    """
    sparsity = _check_sparsity(sparsity)
    structure = _check_structure(structure)
    if block is None:
        block = DEFAULT_BLOCK if structure == "block" else UNSTRUCTURED_STORAGE_BLOCK
    block = check_block(block, "prune")
    g = graph.copy()
    for lin in linear_layers(g, nodes):
        node = lin.node
        pruned = prune_weights(lin.w, sparsity, structure, block)
        bias = lin.bias
        bias_ok = bias is None or (bias.ndim <= 1 or (bias.ndim == 2 and bias.shape[0] == 1))
        if lin.why_fixed is None and lin.residual is None and bias_ok:
            if bias is not None and bias.ndim == 2:
                bias = g.constant(bias.data.reshape(-1), f"{bias.name}.row") \
                    if bias.is_constant else None
            if bias is not None or lin.bias is None:
                w_const = g.constant(pruned, f"{lin.weight.name}.pruned")
                new = make_node(g, Op.SPARSE_GEMM, [lin.x, w_const, bias],
                                {"block": block, "activation": lin.activation}, node.name,
                                output=node.outputs[0])
                replace(g, node, [new])
                continue
        # Keep the op; prune its constant in the orientation it is stored.
        mask = pruned != 0
        if node.op is Op.GEMM and node.attrs.get("trans_b"):
            mask = mask.T
        w_const = g.constant(np.where(mask, lin.weight.data, 0).astype(lin.weight.dtype),
                             f"{lin.weight.name}.pruned")
        node.inputs = [node.inputs[0], w_const] + node.inputs[2:]
    return g
