import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# CI explores a fixed set of examples so a red run is reproducible; locally
# hypothesis explores new ones each run.
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=30, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", deadline=None, max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _int8_ukernels() -> list:
    """The int8 GEMM micro-kernels this CPU runs (none without the C extension)."""
    from pyinfer.backends import _native
    if _native.lib is None:
        return []
    from pyinfer.backends import c_quant
    return [u for u in c_quant.ukernels() if c_quant.runs(u.index)]


@pytest.fixture(params=_int8_ukernels(), ids=lambda u: u.name)
def ukernel(request):
    """Each runnable int8 micro-kernel in turn, forced for the test's calls."""
    from pyinfer.backends import c_quant
    c_quant.force_ukernel(request.param.index)
    try:
        yield request.param
    finally:
        c_quant.force_ukernel(None)


# Under pytest-xdist each worker is a process with its own OpenMP and Numba
# pools; at the default budget (every core) two workers would run four threads
# on CI's two cores, and an OpenMP barrier waiting for a descheduled thread
# costs milliseconds.  One thread per worker; tests about threading set their own.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import pyinfer
    pyinfer.set_num_threads(1)
