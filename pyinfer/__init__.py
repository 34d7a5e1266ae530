"""pyinfer: low-level inference kernels (C and Numba) behind a NumPy-like API."""
__version__ = "0.1.0"

from .errors import (BackendUnavailableError, DTypeError, PyinferError, ShapeError,
                     UnsupportedError)
from .threads import get_num_threads, set_num_threads
from . import threads as _threads

_threads._register_threadpoolctl()

from . import ops  # noqa: E402  (registers every backend's kernels)

__all__ = ["ops", "set_num_threads", "get_num_threads", "PyinferError", "ShapeError",
           "DTypeError", "BackendUnavailableError", "UnsupportedError", "__version__"]
