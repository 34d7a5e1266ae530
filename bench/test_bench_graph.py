"""pytest-benchmark view of bench/graph_bench.py: the graph executor's cases,
each contender in the same group.  Run: pytest bench/ --benchmark-only"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import graph_bench  # noqa: E402

_made = {}


def _contenders(case):
    if case not in _made:
        _made[case] = graph_bench.CASES[case]()[0]
    return _made[case]


@pytest.mark.parametrize("case, contender", [
    (case, name) for case in graph_bench.CASES for name in (
        "pyinfer.jit", "pyinfer.jit(expression)", "numpy", "onnxruntime", "pyinfer.ops.softmax",
        "pyinfer.ops.layer_norm", "interpreter, 100 nodes", "numpy (tanh gelu)")])
def test_graph(benchmark, case, contender):
    fns = _contenders(case)
    if contender not in fns:
        pytest.skip(f"{contender} does not run {case}")
    benchmark.group = case
    benchmark(fns[contender])
