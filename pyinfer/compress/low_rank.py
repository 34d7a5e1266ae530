"""Low-rank factorization of the constant weights of MatMul/Gemm layers.

``low_rank(graph, energy=0.9)`` or ``low_rank(graph, rank=r)`` replaces each
linear layer's constant weight W (k x n) by the product of two thinner ones,
``U' (k x r) = U_r diag(s_r)`` and ``V' (r x n) = V_r^T`` from the truncated
SVD, so that ``x @ W`` becomes ``(x @ U') @ V'``: two MatMuls (a Gemm keeps
its bias, residual and activation on the second).  This is the best rank-r
approximation in the Frobenius norm (Eckart-Young), with relative error
``sqrt(sum_{i>r} s_i^2 / sum_i s_i^2)``.

* ``energy`` in (0, 1]: r is the smallest rank whose kept share of the
  squared singular values, ``cumsum(s^2)[r-1] / sum(s^2)`` computed in
  float64, is at least ``energy`` (r = min(k, n) if rounding keeps it
  below);
* ``rank``: that r for every layer (at most min(k, n) of each).

A layer is factored only where it saves multiply-adds, ``k*r + r*n < k*n``;
otherwise (and for a zero weight or a Gemm with trans_a) it is left as it
was and the report says why.  The report (``LowRankReport``, returned with
the graph) gives per layer the rank, the relative error, the parameter counts
and, measured here with pyinfer's GEMM, the time of the dense and the
factored product.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from ..errors import ShapeError
from ..timing import median_seconds
from ..graph.ir import Graph, Op
from .prune import linear_layers, make_node, replace


@dataclass
class LowRankLayer:
    """What ``low_rank`` did to one layer."""
    name: str
    k: int
    n: int
    rank: Optional[int]         # chosen rank (None when the weight is zero)
    rel_error: float            # ||W - U'V'||_F / ||W||_F of the chosen rank
    energy: float               # share of sum(s^2) kept
    params_before: int
    params_after: int
    factored: bool
    reason: str = ""            # why not factored
    m: int = 0                  # rows of x the timing used
    dense_us: Optional[float] = None
    factored_us: Optional[float] = None

    @property
    def speedup(self) -> Optional[float]:
        """dense time / factored time (> 1: the factored layer is faster)."""
        if self.dense_us is None or self.factored_us is None or self.factored_us <= 0:
            return None
        return self.dense_us / self.factored_us


@dataclass
class LowRankReport:
    layers: list = field(default_factory=list)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, name: str) -> LowRankLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def __str__(self):
        rows = ["layer                k x n        rank  rel.err  params        dense us  "
                "low-rank us  speedup  note"]
        for l in self.layers:
            t = (f"{l.dense_us:8.1f}  {l.factored_us:11.1f}  {l.speedup:6.2f}x"
                 if l.speedup is not None else f"{'-':>8}  {'-':>11}  {'-':>7}")
            rows.append(f"{l.name[:20]:20} {l.k:>5}x{l.n:<6} {str(l.rank):>5}  "
                        f"{l.rel_error:7.4f}  {l.params_before:>6}->{l.params_after:<6} {t}  "
                        f"{'' if l.factored else 'kept: ' + l.reason}")
        return "\n".join(rows)


def _check_args(energy, rank):
    if (energy is None) == (rank is None):
        raise ShapeError("low_rank: give exactly one of 'energy' (in (0, 1]) and 'rank'")
    if energy is not None:
        if isinstance(energy, bool) or not isinstance(energy, numbers.Real) \
                or not (0.0 < float(energy) <= 1.0):
            raise ShapeError(f"low_rank: argument 'energy' expected a number in (0, 1], "
                             f"received {energy!r}")
        return float(energy), None
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
        raise ShapeError(f"low_rank: argument 'rank' expected a positive int, received {rank!r}")
    return None, int(rank)


def choose_rank(s: np.ndarray, energy: float) -> int:
    """The smallest r with cumsum(s^2)[r-1] / sum(s^2) >= energy (float64)."""
    sq = np.square(np.asarray(s, np.float64))
    share = np.cumsum(sq) / sq.sum()
    hits = np.nonzero(share >= energy)[0]
    return int(hits[0]) + 1 if hits.size else len(s)


def time_layer(w: np.ndarray, u: np.ndarray, v: np.ndarray, m: int, repeat: int = 20):
    """(dense, factored) median seconds of ``x @ w`` and ``(x @ u) @ v`` with
    pyinfer's GEMM (backend auto) on random x of m rows."""
    from .. import ops
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, w.shape[0])).astype(w.dtype)
    y = np.empty((m, w.shape[1]), w.dtype)
    t = np.empty((m, u.shape[1]), w.dtype)
    dense = median_seconds(lambda: ops.gemm(x, w, out=y), repeat)
    factored = median_seconds(lambda: ops.gemm(ops.gemm(x, u, out=t), v, out=y), repeat)
    return dense, factored


def low_rank(graph: Graph, energy: Optional[float] = None, rank: Optional[int] = None,
             nodes: Optional[Iterable[str]] = None, measure: bool = True,
             batch: Optional[int] = None):
    """Factor each MatMul/Gemm constant weight W (k, n) as U'V' (truncated SVD).

    Give ``energy`` in (0, 1] (the share of the squared singular values kept,
    which picks the rank per layer) or ``rank`` (the same for every layer, at
    most min(k, n)).  ``nodes`` restricts it to the named layers.  With
    ``measure`` each factored layer's dense and factored products are timed
    on ``batch`` rows (default: the product of x's leading dims where they
    are concrete, else 1).  Returns ``(graph, LowRankReport)``; the input
    graph is not changed.
    """
    energy, rank = _check_args(energy, rank)
    g = graph.copy()
    report = LowRankReport()
    for lin in linear_layers(g, nodes):
        node = lin.node
        k, n = lin.w.shape
        if rank is not None and rank > min(k, n):
            raise ShapeError(f"low_rank: node '{node.name}': argument 'rank' expected at most "
                             f"min(k, n) = {min(k, n)} for weight '{lin.weight.name}' {k}x{n}, "
                             f"received {rank}")
        w64 = np.asarray(lin.w, np.float64)
        u, s, vt = np.linalg.svd(w64, full_matrices=False)
        total = float(np.sum(np.square(s)))
        if total == 0.0:
            report.layers.append(LowRankLayer(node.name, k, n, None, 0.0, 1.0, k * n, k * n,
                                              False, "zero weight"))
            continue
        r = rank if rank is not None else choose_rank(s, energy)
        kept = float(np.sum(np.square(s[:r]))) / total
        rel_error = math.sqrt(float(np.sum(np.square(s[r:]))) / total)
        layer = LowRankLayer(node.name, k, n, r, rel_error, kept, k * n, k * n, False)
        report.layers.append(layer)
        if lin.why_fixed is not None:
            layer.reason = lin.why_fixed
            continue
        if k * r + r * n >= k * n:
            layer.reason = f"no saving: k*r + r*n = {k * r + r * n} >= k*n = {k * n}"
            continue
        dt = lin.w.dtype
        uf = np.ascontiguousarray((u[:, :r] * s[:r]).astype(dt))
        vf = np.ascontiguousarray(vt[:r].astype(dt))
        u_c = g.constant(uf, f"{lin.weight.name}.U")
        v_c = g.constant(vf, f"{lin.weight.name}.V")
        first = make_node(g, Op.MATMUL, [lin.x, u_c], {}, g.node_name(f"{node.name}.U"))
        if node.op is Op.MATMUL:
            second = make_node(g, Op.MATMUL, [first.outputs[0], v_c], {}, node.name,
                               output=node.outputs[0])
        else:
            second = make_node(g, Op.GEMM,
                               [first.outputs[0], v_c, lin.bias, lin.residual][:len(node.inputs)],
                               {"alpha": 1.0, "trans_a": False, "trans_b": False,
                                "activation": lin.activation}, node.name,
                               output=node.outputs[0])
        replace(g, node, [first, second])
        layer.factored = True
        layer.params_after = k * r + r * n
        if measure:
            m = batch
            if m is None:
                lead = lin.x.shape[:-1]
                m = int(np.prod(lead)) if all(isinstance(d, int) for d in lead) else 1
            layer.m = max(int(m), 1)
            d, f = time_layer(np.ascontiguousarray(lin.w), uf, vf, layer.m)
            layer.dense_us, layer.factored_us = d * 1e6, f * 1e6
    return g, report
