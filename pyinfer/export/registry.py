"""pyinfer Op -> ONNX exporters: registration and discovery.

An exporter writes one pyinfer node as ONNX nodes::

    from pyinfer.export.registry import exporter

    @exporter(Op.RELU)
    def relu(ctx, node, ins, outs):
        ctx.node("Relu", ins, outs)

``ins`` are the ONNX names of the node's inputs ('' for an absent optional
one), ``outs`` the names its outputs must have; ``ctx`` is the
``pyinfer.export.build.ExportContext``.  Every module of
``pyinfer/export/ops/`` is imported on first use (names starting with '_' are
helpers), so an op family adds export with one new module.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Optional

_EXPORTERS: dict = {}
_LOADED = False


def exporter(*ops):
    """Register ``fn(ctx, node, ins, outs)`` for each of ``ops`` (pyinfer ``Op``s)."""
    def register(fn: Callable):
        for op in ops:
            if op in _EXPORTERS:
                prev = _EXPORTERS[op]
                raise ValueError(f"exporter for {op} registered twice: {prev.__module__}."
                                 f"{prev.__name__} and {fn.__module__}.{fn.__name__}")
            _EXPORTERS[op] = fn
        return fn
    return register


def load_exporters() -> None:
    global _LOADED
    if _LOADED:
        return
    from . import ops
    for info in pkgutil.iter_modules(ops.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{ops.__name__}.{info.name}")
    _LOADED = True


def lookup(op) -> Optional[Callable]:
    load_exporters()
    return _EXPORTERS.get(op)


def supported() -> list:
    """The ops that have an exporter."""
    load_exporters()
    return sorted(_EXPORTERS, key=lambda o: o.value)
