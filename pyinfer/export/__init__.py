"""ONNX export: ``pyinfer.save(graph, path)`` and ``to_onnx(graph, opset=17) -> onnx.ModelProto``.

The importer's mirror image.  ``registry`` holds the per-op exporter
registration (``@exporter(Op.X)``), ``build`` the context an exporter sees
(names, initializers, shape tensors for symbolic dims) and the walk over the
graph; ``ops/`` the exporters, one module per op family, every module there
imported on first use, so an op family adds ONNX export with one new module.

Graph inputs keep their symbolic dims (``dim_param``); a reshape to
``(batch, seq, 12, 64)`` becomes a ``Reshape`` whose shape tensor is built at
run time from the inputs' ``Shape``.  Compressed ops become standard ONNX that
ONNX Runtime runs: ``SPARSE_GEMM`` a dense ``MatMul`` on the pruned weight,
``QGEMM`` the QDQ form (``DequantizeLinear`` on the int8 weight,
``DynamicQuantizeLinear`` / ``QuantizeLinear`` + ``DequantizeLinear`` on the
activation).  ``onnx`` is needed only here (the ``onnx`` extra).
"""
from __future__ import annotations

import os
from typing import Union

from .build import DEFAULT_OPSET, OPSET_MAX, OPSET_MIN, to_onnx
from .registry import exporter

__all__ = ["to_onnx", "save", "exporter", "DEFAULT_OPSET", "OPSET_MIN", "OPSET_MAX"]


def save(graph, path: Union[str, os.PathLike], opset: int = DEFAULT_OPSET) -> None:
    """Write ``graph`` to ``path`` as an ONNX model (see ``to_onnx``)."""
    model = to_onnx(graph, opset=opset)
    with open(os.fspath(path), "wb") as f:
        f.write(model.SerializeToString())
