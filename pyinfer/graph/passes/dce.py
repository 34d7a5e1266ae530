"""Dead code elimination: drop every node none of whose results is used or returned.

Graph inputs are never removed (they are the caller's signature), nor are
constants (they are not nodes)."""
from __future__ import annotations

from ..ir import Graph
from ._util import dce as _dce


def dce(graph: Graph) -> None:
    _dce(graph)
