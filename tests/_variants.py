"""Parametrisation shared by the differential tests: every fast backend of an op,
the C backend once per ISA this CPU has, so every code path runs here."""
import contextlib

import pytest

from pyinfer import registry
from pyinfer.backends import _native


def backend_variants(op):
    """pytest params (backend, isa) for every non-reference backend of ``op``."""
    out = []
    for backend in registry.kernels(op):
        if backend == "numpy":
            continue
        if backend == "c":
            for isa in _native.isas_available():
                out.append(pytest.param(backend, isa, id=f"c-{_native.ISA_NAMES[isa]}"))
        else:
            out.append(pytest.param(backend, None, id=backend))
    return out


@contextlib.contextmanager
def on_isa(isa):
    """Run the block on ``isa`` (None: the CPU's best)."""
    if isa is None:
        yield
    else:
        with _native.force_isa(isa):
            yield
