"""Counters a test or a user can read: how many JIT compilations happened.

Numba announces every real compilation (not a load from its on-disk cache)
with a ``numba:compile`` event; we count those, plus the fused kernels the
code generator builds.  ``pyinfer.stats()`` returns a snapshot.
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
_counts = {"numba_compiles": 0, "plans_prepared": 0}
_installed = False


def _install() -> None:
    global _installed
    if _installed:
        return
    try:
        from numba.core import event

        class _Listener(event.Listener):
            def on_start(self, ev):
                pass

            def on_end(self, ev):
                with _lock:
                    _counts["numba_compiles"] += 1

        event.register("numba:compile", _Listener())
    except Exception:  # numba missing or its event API changed: counts stay 0
        return
    _installed = True


def bump(name: str, n: int = 1) -> None:
    with _lock:
        _counts[name] = _counts.get(name, 0) + n


def stats() -> dict:
    """A snapshot of the counters: ``numba_compiles`` (JIT compilations of any
    pyinfer kernel so far), ``fused_kernels`` (generated kernels built),
    ``plans_prepared``."""
    _install()
    snap = dict(_counts)
    try:
        from ..kernels import codegen
        snap["fused_kernels"] = codegen.compile_count()
    except Exception:
        snap.setdefault("fused_kernels", 0)
    return snap
