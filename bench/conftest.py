"""pytest-benchmark configuration for bench/ (not part of the test suite).

Run:  pytest bench/ --benchmark-only            (see bench/README.md)

* The default ``pytest`` run never collects bench/ (``testpaths = ["tests"]``);
  if bench/ is collected anyway (``pytest .``) without ``--benchmark-only``,
  ``--benchmark-enable`` or ``--benchmark-disable``, its items are skipped, so a
  test run never spends minutes timing.  ``--benchmark-disable`` runs every
  benchmark body once: a quick check that the suite itself works.
* When OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set (they slow current NumPy),
  a ``--benchmark-only`` run re-executes itself once without them, in this
  process only; ``PYINFER_BENCH_KEEP_OPENBLAS_ENV=1`` keeps them.  The machine
  info saved with the results records which OpenBLAS kernel ran.
* ``--bench-threads N`` (default: pyinfer's budget) is given to pyinfer and to
  every peer: OpenBLAS via threadpoolctl, ONNX Runtime's intra_op_num_threads,
  torch.set_num_threads, numexpr.set_num_threads.
"""
from __future__ import annotations

import os
import sys

import pytest

_REEXEC_FLAG = "PYINFER_BENCH_REEXEC"
_OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def pytest_addoption(parser):
    parser.addoption("--bench-threads", type=int, default=None, metavar="N",
                     help="pyinfer bench: threads for pyinfer and every peer "
                          "(default: pyinfer's current budget)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    present = [k for k in _OPENBLAS_ENV if k in os.environ]
    if (present and config.getoption("benchmark_only", False)
            and not os.environ.get(_REEXEC_FLAG)
            and not os.environ.get("PYINFER_BENCH_KEEP_OPENBLAS_ENV")):
        env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_ENV}
        env[_REEXEC_FLAG] = ",".join(f"{k}={os.environ[k]}" for k in present)
        sys.stderr.write(f"bench: re-running without {', '.join(present)} (they slow NumPy's "
                         f"OpenBLAS; PYINFER_BENCH_KEEP_OPENBLAS_ENV=1 keeps them)\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], env)


def _benchmarking(config) -> bool:
    return any(config.getoption(o, False)
               for o in ("benchmark_only", "benchmark_enable", "benchmark_disable"))


def pytest_collection_modifyitems(config, items):
    if _benchmarking(config):
        return
    skip = pytest.mark.skip(reason="bench/ is timed only with: pytest bench/ --benchmark-only")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


def pytest_benchmark_update_machine_info(config, machine_info):
    from pyinfer import bench, peers
    info = bench.machine_info(_threads(config))
    info["peers"] = {p: peers.version(p) or peers.why_unavailable(p) for p in peers.PEERS}
    if os.environ.get(_REEXEC_FLAG):
        info["openblas_env_removed"] = os.environ[_REEXEC_FLAG]
    machine_info["pyinfer"] = info


def _threads(config) -> int:
    import pyinfer
    n = config.getoption("bench_threads")
    return n if n is not None else pyinfer.get_num_threads()


@pytest.fixture(scope="session")
def threads(request):
    """The thread budget of this run, applied to pyinfer and OpenBLAS (the peer
    builders in pyinfer.peers apply it to ONNX Runtime, torch and numexpr)."""
    import pyinfer
    n = request.config.getoption("bench_threads")
    if n is not None:
        pyinfer.set_num_threads(n)
    n = pyinfer.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield n
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield n
