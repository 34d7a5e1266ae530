"""One thread budget for the C (OpenMP) and Numba pools, honoured by
threadpoolctl; results do not depend on the thread count."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import pyinfer
from pyinfer import ops
from pyinfer.threads import cpu_count


@pytest.fixture(autouse=True)
def restore_threads():
    n = pyinfer.get_num_threads()
    yield
    pyinfer.set_num_threads(n)


def test_set_and_get():
    pyinfer.set_num_threads(1)
    assert pyinfer.get_num_threads() == 1
    pyinfer.set_num_threads(10_000)  # never more threads than cores
    assert pyinfer.get_num_threads() == cpu_count()


def test_threadpoolctl_sees_and_limits_pyinfer():
    ours = [i for i in threadpool_info() if i["user_api"] == "pyinfer"]
    assert len(ours) == 1, threadpool_info()
    assert ours[0]["num_threads"] == pyinfer.get_num_threads()
    with threadpool_limits(limits=1, user_api="pyinfer"):
        assert pyinfer.get_num_threads() == 1
    assert pyinfer.get_num_threads() == ours[0]["num_threads"]


def test_numba_follows_the_budget():
    import numba
    x = np.ones((64, 64), np.float32)
    pyinfer.set_num_threads(1)
    ops.softmax(x, backend="numba")
    assert numba.get_num_threads() == 1


@pytest.mark.parametrize("backend", ["c", "numba"])
def test_results_do_not_depend_on_thread_count(backend, rng):
    a = rng.standard_normal((67, 129)).astype(np.float32)
    b = rng.standard_normal((129, 45)).astype(np.float32)
    x = rng.standard_normal((33, 1000)).astype(np.float32)
    results = []
    for n in (1, cpu_count()):
        pyinfer.set_num_threads(n)
        results.append((ops.gemm(a, b, backend=backend), ops.softmax(x, backend=backend),
                        ops.sum(x, axis=1, backend=backend) if backend == "numba" else None))
    for r1, r2 in zip(*results):
        if r1 is not None:
            np.testing.assert_array_equal(r1, r2)
