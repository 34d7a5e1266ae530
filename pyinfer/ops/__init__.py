"""Eager kernels with NumPy-like signatures: ``pyinfer.ops.<op>(..., out=None, backend=None)``.

Each op validates its arguments (errors name the argument, the expected and
the received shape or dtype), allocates ``out`` when not given, then runs the
kernel the registry selects: the named backend's, or under ``backend=None``
the fastest that supports the call.  Kernel signatures: docs/kernel-contract.md.
"""
from __future__ import annotations

import functools as _functools
import importlib as _importlib
import pkgutil as _pkgutil

import numpy as _np

from .. import backends  # noqa: F401  (registers every backend's kernels)
from .. import registry as _registry

# Every public module here is one family of ops with an ``OPS`` dict
# (name -> function): adding a family is adding a module.
_ALL = {}
for _info in _pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        _module = _importlib.import_module(f"{__name__}.{_info.name}")
        _ALL.update(_module.OPS)


def _device_aware(name, fn):
    """CUDA arrays (or ``backend="cupy"``) go to the CuPy backend; host calls
    pay one type check per argument."""
    from ..backends import cupy_backend

    @_functools.wraps(fn)
    def op(*args, **kwargs):
        if kwargs.get("backend") == "cupy" or any(
                type(a) is not _np.ndarray and hasattr(a, "__cuda_array_interface__")
                for a in (*args, *kwargs.values())):
            return cupy_backend.eager(name, args, kwargs)
        return fn(*args, **kwargs)
    return op


_ALL = {name: _device_aware(name, fn) for name, fn in _ALL.items()}
globals().update(_ALL)

__all__ = sorted(_ALL) + ["explain"]


def explain(op: str, *args, **attrs):
    """Which backends could run ``op`` on these (already normalised) kernel
    arguments, and for those that could not, why."""
    return _registry.explain(op, *args, **attrs)
