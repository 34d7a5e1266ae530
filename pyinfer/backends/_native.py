"""Glue between NumPy arrays and the C kernels of ``pyinfer._native``.

Everything that reaches C passes through here: dtype, alignment and the byte
strides are read off the (already validated) arrays, and statuses are turned
into exceptions.  Kernels themselves trust what they are given.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..errors import BackendUnavailableError, PyinferError

try:
    from .._native import ffi, lib
    IMPORT_ERROR = None
except ImportError as exc:  # the extension was not built
    ffi = lib = None
    IMPORT_ERROR = f"the C extension pyinfer._native is not built ({exc}); reinstall with 'pip install .'"

ISA_NAMES = {0: "portable", 1: "avx2", 2: "avx512f"}
_CTYPE = {np.dtype(np.float32): "float *", np.dtype(np.float64): "double *"}


def require() -> None:
    if lib is None:
        raise BackendUnavailableError(IMPORT_ERROR)


def ptr(arr: np.ndarray):
    """A typed C pointer to the first element of ``arr`` (no copy, no check)."""
    return ffi.cast(_CTYPE.get(arr.dtype, "void *"), arr.ctypes.data)


def null():
    return ffi.NULL


def check(status: int, op: str) -> None:
    if status != 0:
        msg = ffi.string(lib.pi_status_string(status)).decode()
        raise PyinferError(f"{op}: C kernel failed with status {status} ({msg})")


def isa() -> str:
    return ISA_NAMES.get(lib.pi_isa(), "unknown")


def isas_available() -> list[int]:
    """Every ISA level this CPU can run, lowest first (tests walk all of them)."""
    return list(range(lib.pi_isa_detected() + 1))


@contextlib.contextmanager
def force_isa(level: int):
    """Run the C kernels on a lower ISA inside the block (for tests)."""
    previous = lib.pi_isa()
    check(lib.pi_set_isa(level), "force_isa")
    try:
        yield
    finally:
        lib.pi_set_isa(previous)
