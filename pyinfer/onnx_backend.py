"""pyinfer as an ONNX backend (``onnx.backend.base.Backend``), so the ONNX
backend test machinery and tools written against that API can run models on it::

    import pyinfer.onnx_backend as backend
    rep = backend.prepare(model)          # pyinfer.load + pyinfer.Interpreter
    outputs = rep.run([x])                # or backend.run_model(model, [x])

Only the CPU device is supported.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from .importer import load
from .runtime.interpreter import Interpreter


class PyinferRep(BackendRep):
    """A prepared model: one ``Interpreter`` (a plan per input shape, cached)."""

    def __init__(self, interpreter: Interpreter):
        self.interpreter = interpreter
        self.input_names = [i.name for i in interpreter.inputs]
        self.output_names = [o.name for o in interpreter.outputs]

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        if isinstance(inputs, dict):
            feed = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feed = [np.asarray(x) for x in inputs]
        outs = self.interpreter.run(feed)
        return namedtupledict("Outputs", self.output_names)(*outs)


class PyinferBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs: Any) -> PyinferRep:
        """``model``: an ``onnx.ModelProto``, bytes or a path.  kwargs: ``backend``
        ("auto" or a pyinfer backend name), ``threads``."""
        if not cls.supports_device(device):
            from .errors import BackendUnavailableError
            raise BackendUnavailableError(f"pyinfer.onnx_backend: device {device!r} is not "
                                          f"supported (CPU only)")
        graph = load(model)
        return PyinferRep(Interpreter(graph, backend=kwargs.get("backend", "auto"),
                                      threads=kwargs.get("threads")))

    @classmethod
    def run_model(cls, model, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info=None, **kwargs: Any):
        """Run one NodeProto on ``inputs`` (a model is made around it)."""
        from onnx import helper
        present = [n for n in node.input if n]
        graph_inputs = [helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(np.asarray(x).dtype), np.shape(x))
            for n, x in zip(present, inputs)]
        outs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
        opset = kwargs.get("opset_version", 21)
        model = helper.make_model(helper.make_graph([node], "node", graph_inputs, outs),
                                  opset_imports=[helper.make_opsetid("", opset)])
        return cls.run_model(model, list(inputs), device, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except Exception:
            return False


prepare = PyinferBackend.prepare
run_model = PyinferBackend.run_model
run_node = PyinferBackend.run_node
supports_device = PyinferBackend.supports_device
is_compatible = PyinferBackend.is_compatible
