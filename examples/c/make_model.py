"""Write tiny.onnx for embed_demo: y = relu(x @ W + b), x (2, 4) float32 -> y (2, 3).

    python make_model.py [PATH] [--batch N]     (default PATH tiny.onnx, batch 2)

W and b are fixed small values, so C and Python runs can be compared exactly.
"""
import argparse

import numpy as np


def tiny_model(batch: int = 2, k: int = 4, n: int = 3):
    """The onnx.ModelProto of relu(x @ W + b) and its weights."""
    from onnx import TensorProto, helper, numpy_helper
    w = (((np.arange(k * n).reshape(k, n) * 5) % 11 - 5) / 8).astype(np.float32)
    b = ((np.arange(n) % 3 - 1) / 4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["xwb"]),
         helper.make_node("Relu", ["xwb"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main() -> None:
    import onnx
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", nargs="?", default="tiny.onnx")
    p.add_argument("--batch", type=int, default=2)
    args = p.parse_args()
    onnx.save(tiny_model(args.batch), args.path)
    print(args.path)


if __name__ == "__main__":
    main()
