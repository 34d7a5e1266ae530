"""One thread budget for both pools (OpenMP in C, Numba's).

The C library keeps the single source of truth (``pi_get_num_threads``); Numba
follows it before each parallel kernel.  threadpoolctl sees pyinfer as a library
of its own (user_api "pyinfer"), so ``threadpool_limits(1)`` limits both pools.

Within the budget each C kernel call takes only as many threads as its work
pays for (``pi_threads_for`` in csrc/pi_internal.h: waking a sleeping OpenMP
worker costs ~25 us here); ``fork_ns`` / ``set_fork_ns`` expose that cost.
"""
from __future__ import annotations

import contextlib
import os
from typing import Optional

from .errors import ShapeError

_lib = None


def _native_lib():
    global _lib
    if _lib is None:
        from ._native import lib
        _lib = lib
    return _lib


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 <= n <= the cores this process may use) in every kernel."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ShapeError(f"set_num_threads: argument 'n' expected an int >= 1, received {n!r}")
    # More threads than cores only adds contention (llama.cpp#11247).
    _native_lib().pi_set_num_threads(min(n, cpu_count()))


def get_num_threads() -> int:
    return int(_native_lib().pi_get_num_threads())


@contextlib.contextmanager
def budget(n: Optional[int]):
    """``n`` threads for the duration of a ``with`` block (None: leave the budget
    as it is).  Costs two C calls, unlike ``threadpoolctl.threadpool_limits``,
    which inspects every loaded library each time (about 1.6 ms here): too much
    for ``Interpreter.run``."""
    if n is None:
        yield
        return
    before = get_num_threads()
    # The budget never exceeds the usable cores, so before == n needs no
    # affinity query (a system call per Interpreter.run otherwise).
    if before == n or before == min(n, cpu_count()):
        yield
        return
    set_num_threads(n)
    try:
        yield
    finally:
        _native_lib().pi_set_num_threads(before)


def fork_ns() -> float:
    """The cost of a parallel region (ns) that the C kernels weigh their work
    against before using more than one thread (csrc/pi_internal.h,
    ``pi_threads_for``): a call gets t threads when its single-thread time is at
    least t times this.  Set at load from PYINFER_FORK_US (microseconds)."""
    return float(_native_lib().pi_get_fork_ns())


def set_fork_ns(ns: float) -> None:
    """Change ``fork_ns``; 0 makes every kernel use the whole thread budget."""
    if not isinstance(ns, (int, float)) or isinstance(ns, bool) or not ns >= 0:
        raise ShapeError(f"set_fork_ns: argument 'ns' expected a number >= 0, received {ns!r}")
    _native_lib().pi_set_fork_ns(float(ns))


@contextlib.contextmanager
def fork_threshold(ns: float):
    """``set_fork_ns(ns)`` for the duration of a ``with`` block (tests force the
    multi-thread split of small calls with 0)."""
    before = fork_ns()
    set_fork_ns(ns)
    try:
        yield
    finally:
        set_fork_ns(before)


def sync_numba() -> int:
    """Make Numba's pool match the budget; called by Numba kernel wrappers. Cheap."""
    import numba
    n = min(get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


def _register_threadpoolctl() -> None:
    """Let threadpoolctl find and limit pyinfer's budget."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register"):
        return

    class PyinferController(threadpoolctl.LibController):
        user_api = "pyinfer"
        internal_api = "pyinfer"
        filename_prefixes = ("_native",)
        # Other packages ship a "_native" extension too (hypothesis does): only a
        # library exporting pyinfer's thread functions is ours.
        check_symbols = ("pi_get_num_threads", "pi_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.pi_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.pi_set_num_threads(int(num_threads))

        def get_version(self):
            from . import __version__
            return __version__

        def set_additional_attributes(self):
            pass

    threadpoolctl.register(PyinferController)
