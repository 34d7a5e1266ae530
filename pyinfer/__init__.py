"""pyinfer: low-level inference kernels (C and Numba) behind a NumPy-like API.

    pyinfer.ops.<op>(..., out=None, backend=None)   eager kernels
    pyinfer.Graph / pyinfer.Interpreter               build a graph, prepare it, run it
    pyinfer.load(path) / pyinfer.save(graph, path)    ONNX in and out
    pyinfer.compress                                  int8, pruning, low-rank
    pyinfer.set_num_threads(n)                        one thread budget for every pool
"""
__version__ = "0.1.0"

import importlib as _importlib

from .errors import (BackendUnavailableError, DTypeError, MissingDependencyError, ModelError,
                     PyinferError, ShapeError, UnsupportedError, UnsupportedOperatorError)
from .threads import get_num_threads, set_num_threads
from . import threads as _threads
from .runtime import stats as _stats

_threads._register_threadpoolctl()
_stats._install()  # count JIT compilations from the start

from . import ops  # noqa: E402  (registers every backend's kernels)
from .graph import Graph, Op  # noqa: E402
from .graph import families as _families  # noqa: E402,F401  (op families register)
from .runtime.interpreter import Interpreter  # noqa: E402
from .runtime.stats import stats  # noqa: E402
from .frontend.jit import jit  # noqa: E402
from .importer import load  # noqa: E402  (ONNX import; needs onnx when called)
from .export import save, to_onnx  # noqa: E402  (ONNX export; needs onnx when called)
from .check import check  # noqa: E402  (where a model departs from the reference)
from .config import get_include, get_library_dir  # noqa: E402  (for C hosts)
from .api import *  # noqa: E402,F401,F403  (the NumPy-mirroring namespace: pi.exp, pi.sum, ...)
from .api import __all__ as _api_all  # noqa: E402

__all__ = _api_all + [
    "ops", "Graph", "Op", "Interpreter", "jit", "stats", "set_num_threads", "get_num_threads",
    "load", "save", "to_onnx", "check", "compress", "models", "get_include", "get_library_dir",
    "PyinferError", "ShapeError", "DTypeError", "BackendUnavailableError", "UnsupportedError",
    "UnsupportedOperatorError", "ModelError", "MissingDependencyError", "__version__"]


def __getattr__(name):
    """``pyinfer.compress`` and ``pyinfer.models`` load on first use."""
    if name in ("compress", "models"):
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pyinfer' has no attribute {name!r}")
