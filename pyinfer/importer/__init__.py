"""ONNX import: ``pyinfer.load(path | bytes | onnx.ModelProto) -> Graph``.

``convert`` holds the converter registration API other op families use;
``converters/`` the converters; ``reader`` reads and checks a model and builds
the graph.  ``onnx`` is needed only here, and imported only when a model is
loaded (the ``onnx`` extra).
"""


def load(model, *, name=None, base_dir=None):
    """Import an ONNX model (a path, the file's bytes, or an ``onnx.ModelProto``)
    as a ``pyinfer.Graph``; see ``pyinfer.importer.reader.load``."""
    from .reader import load as _load
    return _load(model, name=name, base_dir=base_dir)


__all__ = ["load"]
