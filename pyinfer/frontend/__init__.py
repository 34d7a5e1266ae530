"""Front ends that build a ``Graph``: tracing NumPy-like code (``pyinfer.jit``,
defined in ``pyinfer.frontend.jit``).

The ``jit`` function is deliberately not re-exported here: the name would shadow
the submodule ``pyinfer.frontend.jit`` (``import pyinfer.frontend.jit as m``
would then give the function).  Use ``pyinfer.jit``.
"""
from .jit import JitFunction
from .trace import Tensor, TraceError

__all__ = ["JitFunction", "Tensor", "TraceError"]
