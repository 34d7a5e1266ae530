"""pyinfer: low-level inference kernels (C and Numba) behind a NumPy-like API.

    pyinfer.ops.<op>(..., out=None, backend=None)   eager kernels
    pyinfer.Graph / pyinfer.Interpreter               build a graph, prepare it, run it
    pyinfer.set_num_threads(n)                        one thread budget for every pool
"""
__version__ = "0.1.0"

from .errors import (BackendUnavailableError, DTypeError, PyinferError, ShapeError,
                     UnsupportedError)
from .errors import ModelError, UnsupportedOperatorError  # noqa: E402  (ONNX import)
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
from .importer import load  # noqa: E402  (ONNX import; needs the onnx extra when called)
from .check import check  # noqa: E402  (where a model diverges from the reference; pyinfer.check)
from .api import *  # noqa: E402,F401,F403  (the NumPy-mirroring namespace: pi.exp, pi.sum, ...)
from .api import __all__ as _api_all  # noqa: E402

__all__ = _api_all + ["ops", "Graph", "Op", "Interpreter", "jit", "stats", "set_num_threads", "get_num_threads",
           "PyinferError", "ShapeError", "DTypeError", "BackendUnavailableError",
           "UnsupportedError", "__version__"]
__all__ += ["load", "ModelError", "UnsupportedOperatorError"]  # ONNX import
__all__ += ["check"]  # pyinfer.check
from .config import get_include, get_library_dir  # noqa: E402  (C hosts: pyinfer.h, libpyinfer_kernels.so)
__all__ += ["get_include", "get_library_dir"]  # C ABI (pyinfer.config)
from .export import save, to_onnx  # noqa: E402  (ONNX export; needs the onnx extra when called)
