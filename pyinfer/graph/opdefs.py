"""One place per op family: shape rule, NumPy reference and lowering together.

The core ops (elementwise, reductions, linear algebra) have their rules in
``shapes``, ``reference`` and ``plan.select``.  Op families added later (CNN
ops, ONNX data-movement ops, quantized ops, ...) each live in one module that
registers an ``OpDef`` per op::

    from pyinfer.graph.opdefs import define

    define(Op.MAX_POOL, shape=_pool_shape, reference=_pool_ref, lower=_pool_lower)

* ``shape(node) -> [(shape, dtype), ...]``: may normalise ``node.attrs`` and
  raises ``ShapeError``/``DTypeError`` naming the node (``shapes.fail``).
* ``reference(node, args) -> [ndarray, ...]``: plain NumPy, the golden answer.
* ``lower(node, ctx) -> Step`` (optional): the fast kernel.  ``ctx`` gives
  ``ctx.sample(value)``, ``ctx.backend``, ``ctx.notes`` and
  ``ctx.registry_step(opname, args, attrs, in_place=False, flops=0)``.
  Without ``lower`` (or when it returns None) the plan runs the reference on
  the host: every defined op runs, some just not fast yet; ``explain()``
  shows which (kernel name ``reference.<op>``).

Families register when ``pyinfer.graph.families`` is imported, which
``pyinfer.graph`` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .ir import Op


@dataclass(frozen=True)
class OpDef:
    op: Op
    shape: Callable
    reference: Callable
    lower: Optional[Callable] = None


_DEFS: dict = {}


def define(op: Op, *, shape: Callable, reference: Callable,
           lower: Optional[Callable] = None) -> OpDef:
    if op in _DEFS:
        raise ValueError(f"op {op} defined twice")
    d = OpDef(op, shape, reference, lower)
    _DEFS[op] = d
    return d


def get(op: Op) -> Optional[OpDef]:
    return _DEFS.get(op)


def defined() -> list:
    return sorted(_DEFS, key=lambda o: o.value)
