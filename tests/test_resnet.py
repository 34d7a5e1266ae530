"""ResNet-18 (pyinfer.models.resnet, random weights) end to end: ONNX import,
Conv+BatchNorm folding, Conv+Add+Relu residual epilogues, and the same answer as
ONNX Runtime on the same file."""
import numpy as np
import pytest

import pyinfer
from pyinfer.models import resnet

ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')


@pytest.fixture(scope="module")
def model():
    return resnet.build(seed=3, size=32)


def test_resnet18_equals_onnxruntime_and_fuses(model):
    it = pyinfer.Interpreter(pyinfer.load(model))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 3):  # the batch dim is symbolic: one plan per batch size
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        out = np.full((batch, 1000), np.nan, np.float32)
        it.run([x], outputs=[out])
        (want,) = sess.run(None, {"input": x})
        # float32 through 18 layers of sums over up to 4608 terms: 1e-4 of the scale
        assert np.abs(out - want).max() <= 1e-4 * np.abs(want).max()
    plan = it.plan
    ops = [s.node.op for s in plan.steps if not s.is_view]
    # 20 convolutions (every BatchNorm, residual Add and Relu folded in), a max pool,
    # a global average pool and the classifier GEMM.
    assert ops.count(pyinfer.Op.CONV) == 20
    assert plan.kernel_count == 23
    assert pyinfer.Op.BATCH_NORM not in ops and pyinfer.Op.ADD not in ops
