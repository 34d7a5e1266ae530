"""Backends register their kernels in pyinfer.registry on import.

numpy is the reference and always present; c needs the built extension; numba
needs numba.  A backend that cannot load is marked unavailable with the reason
(``python -m pyinfer info`` shows it) instead of failing the import of pyinfer.
"""
import importlib
import pkgutil

from .. import registry
from . import numpy_ref  # noqa: F401  (the reference: always first)
from . import _native

if _native.lib is None:
    registry.mark_unavailable("c", _native.IMPORT_ERROR)
else:
    # Every c_<family>.py module registers the C kernels of one family.
    for _info in pkgutil.iter_modules(__path__):
        if _info.name.startswith("c_"):
            importlib.import_module(f"{__name__}.{_info.name}")

from . import numba_backend  # noqa: F401  (marks itself unavailable without numba)
from . import blas  # noqa: F401  (OpenBLAS product + pyinfer epilogue where that wins)

from . import cupy_backend  # noqa: E402  (imports CuPy only when a CUDA array is seen)

registry.mark_unavailable("cupy", cupy_backend.status)
