"""``pyinfer compress``: each method on a tiny model (the table's rows, the saved
ONNX model running in ONNX Runtime like pyinfer's compressed graph), and bad
input as one line on stderr with exit status 2."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import pyinfer
from pyinfer.cli import main
from pyinfer.compress.cli import accuracy, weight_bytes
from pyinfer.testing import assert_close

onnx = pytest.importorskip("onnx", reason="compress reads and writes ONNX (test extra)")
ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime runs the saved models")
from onnx import TensorProto as TP, helper, numpy_helper  # noqa: E402

F32 = np.float32


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    rng = np.random.default_rng(7)
    f = lambda *s: rng.standard_normal(s).astype(F32)  # noqa: E731
    N = helper.make_node
    g = helper.make_graph(
        [N("MatMul", ["x", "w1"], ["h"]), N("Add", ["h", "b1"], ["h1"]), N("Relu", ["h1"], ["r"]),
         N("Gemm", ["r", "w2", "b2"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TP.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("y", TP.FLOAT, ["batch", 16])],
        [numpy_helper.from_array(a, n) for n, a in
         (("w1", f(32, 48)), ("b1", f(48)), ("w2", f(48, 16)), ("b2", f(16)))])
    path = tmp_path_factory.mktemp("compress") / "tiny.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              str(path))
    return str(path)


def _table_rows(text: str) -> dict:
    """method -> its table row, from the printed table."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("method"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        method = line.split("  ")[0].strip()
        rows[method] = line
    return rows


def _run(capsys, *argv):
    rc = main(["compress", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("argv, row, op", [
    (["--int8", "dynamic"], "int8 dynamic", "QGEMM"),
    (["--prune", "0.8", "--structure", "block"], "prune 0.8 block", "SPARSE_GEMM"),
    (["--prune", "0.5"], "prune 0.5 unstructured", "SPARSE_GEMM"),
    (["--low-rank", "0.9"], "low-rank energy 0.9", None),
])
def test_each_method_prints_its_row_and_saves_a_model_ort_runs(argv, row, op, model_path,
                                                               tmp_path, capsys):
    out = tmp_path / "out.onnx"
    rc, text, err = _run(capsys, model_path, *argv, "-o", str(out), "--rounds", "2",
                         "--batch", "4")
    assert rc == 0, err
    rows = _table_rows(text)
    assert list(rows) == ["fp32", row], text
    cells = rows[row].split()
    assert cells[-1].endswith("x") and cells[-2] == "ms"
    # The saved model: ONNX Runtime on it agrees with pyinfer on the compressed graph.
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(F32)
    saved = onnx.load(str(out))
    onnx.checker.check_model(saved)
    got = ort.InferenceSession(saved.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    g = pyinfer.load(str(out))
    assert_close(got, pyinfer.Interpreter(g).run({"x": x})[0], F32, atol_extra=1e-4)
    if op == "QGEMM":   # the per-row form (MatMulInteger) re-imports as int8 layers
        assert any(n.op is pyinfer.Op.QGEMM for n in g.nodes)


def test_static_int8_with_calibration_and_combined_methods(model_path, tmp_path, capsys):
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=np.random.default_rng(1).standard_normal((16, 32)).astype(F32))
    out = tmp_path / "out.onnx"
    rc, text, err = _run(capsys, model_path, "--int8", "static", "--calibration", str(cal),
                         "--low-rank", "0.95", "-o", str(out), "--rounds", "2")
    assert rc == 0, err
    rows = _table_rows(text)
    assert list(rows) == ["fp32", "low-rank energy 0.95", "int8 static",
                          "combined: low-rank energy 0.95 + int8 static"], text
    assert "combined: low-rank energy 0.95 + int8 static" in text.splitlines()[0]
    assert out.exists()


def test_accuracy_and_weight_size_helpers():
    ref = [np.array([[1.0, -2.0], [0.5, 4.0]], F32)]
    err, rel, cos = accuracy([ref[0] + np.array([[0, 0.4], [0, 0]], F32)], ref)
    assert err == pytest.approx(0.4) and rel == pytest.approx(0.1)
    assert cos == pytest.approx(float(np.dot(ref[0].ravel() + [0, 0.4, 0, 0], ref[0].ravel()) /
                                      np.linalg.norm(ref[0].ravel() + [0, 0.4, 0, 0]) /
                                      np.linalg.norm(ref[0].ravel())), rel=1e-6)
    from pyinfer.compress import prune
    from pyinfer.graph.ir import Graph, Op
    g = Graph("w")
    x = g.input("x", (2, 64), F32)
    g.output(g.add(Op.MATMUL, [x, g.constant(np.ones((64, 64), F32))]), "y")
    assert weight_bytes(g) == 64 * 64 * 4
    # 75% of 1x16 blocks gone: a quarter of the values plus int32 block indices and panel pointers
    pruned = prune(g, 0.75, structure="block")
    assert weight_bytes(pruned) == 64 * 64 * 4 // 4 + 64 * 4 // 4 * 4 + (64 // 16 + 1) * 4


@pytest.mark.parametrize("argv, message", [
    (["--prune", "1.0"], "--prune expected a sparsity in [0, 1), received 1.0"),
    (["--prune", "-0.1"], "--prune expected a sparsity in [0, 1), received -0.1"),
    (["--low-rank", "0"], "--low-rank expected an energy in (0, 1], received 0.0"),
    (["--low-rank", "1.5"], "--low-rank expected an energy in (0, 1], received 1.5"),
    (["--int8", "static"], "--int8 static needs --calibration FILE.npz"),
    ([], "choose at least one method"),
])
def test_bad_values_give_one_line_and_status_2(argv, message, model_path, tmp_path, capsys):
    rc, text, err = _run(capsys, model_path, *argv, "-o", str(tmp_path / "o.onnx"))
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("pyinfer compress: ") and message in err, err
    assert not (tmp_path / "o.onnx").exists()


def test_unsupported_operator_and_bad_calibration_give_one_line(model_path, tmp_path, capsys):
    g = helper.make_graph([helper.make_node("Foo", ["x"], ["y"], domain="com.example")], "bad",
                          [helper.make_tensor_value_info("x", TP.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [2])])
    bad = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                  helper.make_opsetid("com.example", 1)]),
              str(bad))
    rc, _, err = _run(capsys, str(bad), "--prune", "0.5", "-o", str(tmp_path / "o.onnx"))
    assert rc == 2 and err.count("\n") == 1 and "UnsupportedOperatorError" in err and "Foo" in err
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=np.zeros((2, 5), F32))
    rc, _, err = _run(capsys, model_path, "--int8", "static", "--calibration", str(cal),
                      "-o", str(tmp_path / "o.onnx"))
    assert rc == 2 and err.count("\n") == 1 and "input 'x' expected shape" in err


def test_command_line_exit_status_without_traceback(model_path, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pyinfer", "compress", model_path, "--prune", "2",
                        "-o", str(tmp_path / "o.onnx")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == "pyinfer compress: --prune expected a sparsity in [0, 1), " \
                               "received 2.0"
