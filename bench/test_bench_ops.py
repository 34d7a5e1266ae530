"""Every bench case against every contender, grouped by case.

Cases: pyinfer.testing.BENCH_CASES plus pyinfer.bench.EXTRA_CASES (one list,
STYLE.md 12).  Contenders: pyinfer under backend=None ("pyinfer"), pyinfer on
each CPU backend ("pyinfer[c]", ...), and the peers of pyinfer.peers (NumPy,
ONNX Runtime, PyTorch, numexpr).  A contender that cannot run a case (backend
not built, no kernel for the op, peer not installed, numexpr on a GEMM) is
skipped with the reason.  The first call is timed separately and kept in
``extra_info["first_call_s"]`` (it may compile); pytest-benchmark then warms up
and runs many rounds.
"""
from __future__ import annotations

import functools
import time

import pytest

from pyinfer import bench, peers

CASES = bench.all_cases()
CONTENDERS = ("pyinfer",) + tuple(f"pyinfer[{b}]" for b in bench.CPU_BACKENDS) + peers.PEERS
# Case-major order, so one case's inputs are built once for all its contenders.
PARAMS = [pytest.param(i, c, id=f"{bench.case_label(case)}-{c}")
          for i, case in enumerate(CASES) for c in CONTENDERS]
SLOW_CALL_S = 0.5  # a slower call (a reference kernel) gets 3 rounds, not many

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=20, min_rounds=15,
                                   max_time=1.5, disable_gc=True)


@functools.lru_cache(maxsize=1)
def _inputs(index: int):
    return bench.case_inputs(CASES[index])


@pytest.mark.parametrize("index, contender", PARAMS)
def test_op(benchmark, threads, index, contender):
    case = CASES[index]
    benchmark.group = bench.case_label(case)
    benchmark.extra_info.update(case=str(case), contender=contender, threads=threads)
    try:
        fn = bench.make_contender(contender, case, _inputs(index), threads)
    except peers.PeerError as exc:
        pytest.skip(f"{contender}: {exc}")
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    benchmark.extra_info["first_call_s"] = first
    if contender == "pyinfer":
        benchmark.extra_info["backend"] = bench.picked_backend(fn)
    if first > SLOW_CALL_S:
        benchmark.pedantic(fn, rounds=3, warmup_rounds=1, iterations=1)
    else:
        benchmark(fn)
