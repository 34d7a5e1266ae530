"""ResNet-18 as an ONNX model built with ``onnx.helper`` (random weights), in the
form ``torch.onnx.export`` gives torchvision's resnet18: Conv, BatchNormalization,
Relu, MaxPool, Add, GlobalAveragePool, Flatten, Gemm.

It exists for tests and benchmarks of the CNN path (no network access here, so
no pretrained weights): ``build(seed=0, batch="batch") -> onnx.ModelProto``.
Weights are He-initialised and the batch-norm statistics random but sane, so
activations stay at unit scale through the 18 layers.
"""
from __future__ import annotations

from typing import Union

import numpy as np

from ..errors import MissingDependencyError

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, first block's stride)


def build(seed: int = 0, batch: Union[int, str] = "batch", size: Union[int, str] = 224,
          classes: int = 1000, opset: int = 17):
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        raise MissingDependencyError("pyinfer.models.resnet needs onnx: pip install "
                                     "'pyinfer[onnx]'") from e
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    counter = iter(range(10_000))

    def name(base):
        return f"{base}_{next(counter)}"

    def const(base, arr):
        n = name(base)
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), n))
        return n

    def conv_bn(x, cin, cout, k, stride, relu):
        w = rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        y = name("conv")
        nodes.append(helper.make_node("Conv", [x, const("w", w)], [y], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        bn = name("bn")
        nodes.append(helper.make_node(
            "BatchNormalization",
            [y, const("gamma", rng.uniform(0.5, 1.0, cout)), const("beta", rng.normal(0, 0.1, cout)),
             const("mean", rng.normal(0, 0.1, cout)), const("var", rng.uniform(0.5, 1.5, cout))],
            [bn], epsilon=1e-5))
        if not relu:
            return bn
        r = name("relu")
        nodes.append(helper.make_node("Relu", [bn], [r]))
        return r

    x = conv_bn("input", 3, 64, 7, 2, True)
    p = name("pool")
    nodes.append(helper.make_node("MaxPool", [x], [p], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, cin = p, 64
    for cout, stride in STAGES:
        for block in range(2):
            s = stride if block == 0 else 1
            h = conv_bn(x, cin, cout, 3, s, True)
            h = conv_bn(h, cout, cout, 3, 1, False)
            short = x if s == 1 and cin == cout else conv_bn(x, cin, cout, 1, s, False)
            a, r = name("add"), name("relu")
            nodes.append(helper.make_node("Add", [h, short], [a]))
            nodes.append(helper.make_node("Relu", [a], [r]))
            x, cin = r, cout
    g, f, y = name("gap"), name("flatten"), "logits"
    nodes.append(helper.make_node("GlobalAveragePool", [x], [g]))
    nodes.append(helper.make_node("Flatten", [g], [f], axis=1))
    fc_w = rng.standard_normal((classes, 512)) * np.sqrt(1.0 / 512)
    nodes.append(helper.make_node("Gemm", [f, const("fc_w", fc_w), const("fc_b", np.zeros(classes))],
                                  [y], transB=1))
    graph = helper.make_graph(
        nodes, "resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [batch, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="pyinfer.models.resnet")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
