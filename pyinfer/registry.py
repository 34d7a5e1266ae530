"""The one table that maps (op, backend) to a kernel.

A kernel is a plain function taking the op's normalised arguments (see
``pyinfer.ops`` for each op's kernel signature) and writing into ``out``.
Adding a kernel is one ``@register`` line; the eager API and the executor
look kernels up here and never branch on a backend's name.

``supports(*args, **attrs)`` returns ``None`` when the kernel can run the call
and otherwise a short reason, which ``explain`` and error messages repeat.
``priority`` orders the backends that support a call under ``backend=None``
(higher wins); it may be a number or a function of the same arguments, so a
kernel can step aside for small inputs where its overhead would dominate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .errors import BackendUnavailableError, UnsupportedError

BACKENDS = ("numpy", "c", "numba", "blas", "cupy")

Supports = Callable[..., Optional[str]]
Priority = Union[int, Callable[..., int]]


@dataclass(frozen=True)
class Kernel:
    op: str
    backend: str
    fn: Callable
    supports: Optional[Supports]
    priority: Priority

    def why_not(self, *args, **attrs) -> Optional[str]:
        return None if self.supports is None else self.supports(*args, **attrs)

    def rank(self, *args, **attrs) -> int:
        p = self.priority
        return p(*args, **attrs) if callable(p) else p


_KERNELS: dict[str, dict[str, Kernel]] = {}
# backend -> reason it cannot be used, filled by backend modules that fail to load.
_UNAVAILABLE: dict[str, str] = {}
_DEBUG = bool(os.environ.get("PYINFER_DEBUG"))


def register(op: str, backend: str, *, supports: Optional[Supports] = None,
             priority: Priority = 0):
    """Decorator: make ``fn`` the kernel of ``op`` on ``backend``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {BACKENDS}")

    def deco(fn):
        table = _KERNELS.setdefault(op, {})
        if backend in table:
            raise ValueError(f"kernel for ({op!r}, {backend!r}) registered twice")
        table[backend] = Kernel(op, backend, fn, supports, priority)
        return fn

    return deco


def mark_unavailable(backend: str, reason) -> None:
    """``reason``: a string, or a function returning the reason or None (for a
    backend whose availability is costly to probe and is only checked when asked)."""
    _UNAVAILABLE[backend] = reason


def unavailable_reason(backend: str) -> Optional[str]:
    why = _UNAVAILABLE.get(backend)
    return why() if callable(why) else why


def kernels(op: str) -> dict[str, Kernel]:
    return dict(_KERNELS.get(op, {}))


def ops() -> list[str]:
    return sorted(_KERNELS)


_ORDER: dict = {}  # op -> (its kernels, (registration index, kernel) by falling priority)


def _by_priority(op: str, table: dict) -> tuple:
    """The op's kernels, those of computed priority first, then by falling
    fixed priority, so ``select`` can stop at the first fixed one that
    supports the call (the eager ops pay ``select`` on every call; asking every
    lower backend's ``supports`` was a visible share of a small op)."""
    kernels = tuple(table.values())
    cached = _ORDER.get(op)
    # valid while the table holds the same kernels (a test may swap a table or an entry)
    if cached is None or cached[0] != kernels:
        ranked = sorted(enumerate(kernels),
                        key=lambda ik: (not callable(ik[1].priority),
                                        0 if callable(ik[1].priority) else -ik[1].priority))
        cached = _ORDER[op] = (kernels, tuple(ranked))
    return cached[1]


def select(op: str, backend: Optional[str], *args, **attrs) -> Kernel:
    """The kernel that runs this call: the named backend's, or under
    ``backend=None`` the highest-priority one that supports it."""
    table = _KERNELS.get(op)
    if not table:
        raise UnsupportedError(f"no kernel is registered for op '{op}'")
    if backend is not None:
        if backend not in BACKENDS:
            raise BackendUnavailableError(
                f"{op}: argument 'backend' expected one of {BACKENDS} or None, received {backend!r}")
        kernel = table.get(backend)
        if kernel is None:
            why = unavailable_reason(backend)
            if why:
                raise BackendUnavailableError(f"{op}: backend '{backend}' is unavailable: {why}")
            raise UnsupportedError(f"{op}: backend '{backend}' has no kernel for this op")
        reason = kernel.why_not(*args, **attrs)
        if reason is not None:
            raise UnsupportedError(f"{op}: backend '{backend}' cannot run this call: {reason}")
        return kernel
    best, best_rank, best_index, rejected = None, None, None, []
    for index, kernel in _by_priority(op, table):
        if kernel.backend == "cupy":
            continue  # never chosen implicitly for host arrays
        if best is not None and not callable(kernel.priority) and kernel.priority < best_rank:
            break  # the rest rank lower still (fixed priorities, sorted): not worth asking
        reason = kernel.why_not(*args, **attrs)
        if reason is not None:
            rejected.append(f"{kernel.backend}: {reason}")
            continue
        r = kernel.rank(*args, **attrs)
        # highest rank wins; a tie goes to the kernel registered first
        if best is None or r > best_rank or (r == best_rank and index < best_index):
            best, best_rank, best_index = kernel, r, index
    if best is None:
        raise UnsupportedError(f"{op}: no backend can run this call ({'; '.join(rejected)})")
    if _DEBUG:
        import logging
        logging.getLogger("pyinfer").debug("%s -> %s (rejected: %s)", op, best.backend, rejected)
    return best


def explain(op: str, *args, **attrs) -> list[tuple[str, Optional[str]]]:
    """For each registered backend of ``op``: (backend, None if it can run this
    call, else the reason it cannot)."""
    return [(b, k.why_not(*args, **attrs)) for b, k in _KERNELS.get(op, {}).items()]
