"""Eager kernels with NumPy-like signatures: ``pyinfer.ops.<op>(..., out=None, backend=None)``.

Each op validates its arguments (errors name the argument, the expected and
the received shape or dtype), allocates ``out`` when not given, then runs the
kernel the registry selects: the named backend's, or under ``backend=None``
the fastest that supports the call.  Kernel signatures: docs/kernel-contract.md.
"""
from __future__ import annotations

from .. import backends  # noqa: F401  (registers every backend's kernels)
from .. import registry as _registry
from . import elementwise as _elementwise
from . import linalg as _linalg
from . import norm as _norm
from . import reduce as _reduce

_ALL = {**_elementwise.OPS, **_reduce.OPS, **_norm.OPS, **_linalg.OPS,
        "where": _elementwise.where}
globals().update(_ALL)

__all__ = sorted(_ALL) + ["explain"]


def explain(op: str, *args, **attrs):
    """Which backends could run ``op`` on these (already normalised) kernel
    arguments, and for those that could not, why."""
    return _registry.explain(op, *args, **attrs)
