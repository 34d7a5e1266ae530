"""Glue between NumPy arrays and the C kernels of ``pyinfer._native``.

Everything that reaches C passes through here: dtype, alignment and the byte
strides are read off the (already validated) arrays, and statuses are turned
into exceptions.  Kernels themselves trust what they are given.
"""
from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from ..errors import BackendUnavailableError, PyinferError


def _load():
    """Import the extension with OpenMP's threads set to sleep when a parallel
    region ends (OMP_WAIT_POLICY=PASSIVE), unless the user chose a policy or a
    spin count, or set PYINFER_OMP_SPIN=1.

    Why: libgomp's default lets workers spin for a while after each region.
    On a machine whose cores are shared (other processes, or other thread pools
    of this one: OpenBLAS, ONNX Runtime) a spinning worker keeps the core its
    partner needs, and every barrier then waits a scheduler time slice.  Measured
    on the 2-core development machine under load: MiniLM at 2 threads took
    180-3000 ms with spinning, 63-73 ms with sleeping workers; small kernels
    (50 us) cost about 1.3x more on an idle machine.  The variable is read once,
    when libgomp loads with the extension, and restored afterwards so that
    libraries loaded later (torch's own OpenMP) keep their defaults.  Numba's
    OpenMP threading layer shares this libgomp and its policy.
    """
    ours = not any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")) and \
        os.environ.get("PYINFER_OMP_SPIN") != "1"
    if ours:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from .._native import ffi, lib
        return ffi, lib, None
    except ImportError as exc:  # the extension was not built
        return None, None, (f"the C extension pyinfer._native is not built ({exc}); "
                            f"reinstall with 'pip install .'")
    finally:
        if ours:
            del os.environ["OMP_WAIT_POLICY"]


ffi, lib, IMPORT_ERROR = _load()

class Scratch:
    """Per-thread scratch memory for C kernels, 64-byte aligned, grown on demand
    and never shrunk.  ``scratch(nbytes) -> (void pointer, usable bytes)``.

    Each kernel family owns one instance, so a kernel whose C code calls another
    family's (conv -> GEMM) never shares a buffer with it.  The cdata pointer is
    cached with the buffer: a call costs ~0.1 us, not the ~2 us of a fresh cast.
    """

    def __init__(self):
        self._tls = threading.local()

    def __call__(self, nbytes: int):
        w = getattr(self._tls, "ws", None)
        if w is None or w[2] < nbytes:
            buf = np.empty(max(int(nbytes), 1 << 16) + 64, np.uint8)
            off = (-buf.ctypes.data) % 64
            w = (buf, ffi.cast("void *", buf.ctypes.data + off), buf.nbytes - off)
            self._tls.ws = w
        return w[1], w[2]


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
