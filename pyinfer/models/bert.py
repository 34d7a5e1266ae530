"""A BERT encoder (with mean pooling and L2 normalisation) twice: as an ONNX
graph built with ``onnx.helper``, and as a direct NumPy function.

The two are written independently from the same weights (Hugging Face names,
``encoder.layer.<i>.attention.self.query.weight`` ...), so that the graph can be
checked against NumPy with ONNX Runtime before pyinfer ever sees it.

The graph follows what ``torch.onnx.export`` makes of ``BertModel`` followed by
sentence-transformers' mean pooling, so pyinfer meets the ops a real export has:

* embeddings: ``Gather`` of word / token-type rows, position ids ``Slice``d from a
  constant by ``Shape(input_ids)[1]``, ``Add``, ``LayerNormalization`` (or, with
  ``layer_norm="decomposed"``, ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add:
  what opsets before 17 get);
* attention mask: ``Unsqueeze`` to ``[B,1,1,S]``, ``Cast``, ``(1 - m) * -10000``;
* each layer: ``MatMul`` by the transposed weight + ``Add`` bias; ``Reshape``
  ``[0,0,H,D]`` and ``Transpose`` to heads (keys straight to ``(0,2,3,1)``, the two
  transposes the exporter folds into one); ``MatMul``, ``Div`` by sqrt(D), ``Add``
  mask, ``Softmax``, ``MatMul``, back with ``Transpose``/``Reshape``; residual
  ``Add`` + LayerNorm; the FFN with the erf form of GELU
  (``x * (erf(x / sqrt 2) + 1) * 0.5``);
* pooling: mask-weighted ``ReduceSum`` over the sequence divided by the
  ``Clip``ped token count, then divided by its ``Clip``ped L2 norm.

Inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64
``[batch, sequence]`` (both dims symbolic).  Outputs ``last_hidden_state``
``[batch, sequence, hidden]`` and ``sentence_embedding`` ``[batch, hidden]`` (float32).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

OPSET = 17                  # LayerNormalization is an ONNX op from 17 on
IR_VERSION = 8              # what opset 17 goes with (ONNX Runtime 1.14+ reads it)
MASK_VALUE = -10000.0       # what BERT adds to the scores of padding keys
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("last_hidden_state", "sentence_embedding")


# ---- configuration -----------------------------------------------------------------------

def config_of(config: Mapping) -> dict:
    """The numbers the encoder needs, from a Hugging Face ``config.json`` dict."""
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    if hidden % heads:
        raise ValueError(f"bert: hidden_size {hidden} is not a multiple of "
                         f"num_attention_heads {heads}")
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"bert: hidden_act expected 'gelu' (the erf form), received {act!r}")
    if int(config["num_hidden_layers"]) < 1:
        raise ValueError("bert: num_hidden_layers expected >= 1, received "
                         f"{config['num_hidden_layers']}")
    return {"hidden": hidden, "heads": heads, "layers": int(config["num_hidden_layers"]),
            "eps": float(config.get("layer_norm_eps", 1e-12))}


# ---- NumPy ---------------------------------------------------------------------------------

def _erf(x: np.ndarray) -> np.ndarray:
    # NumPy has no erf ufunc; math.erf elementwise is slow but obviously right.
    return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)


def numpy_forward(weights: Mapping[str, np.ndarray], config: Mapping, input_ids, attention_mask,
                  token_type_ids=None, dtype=np.float64) -> tuple:
    """The encoder and pooling computed directly in NumPy (``dtype``: float64 by
    default, so it can serve as the golden answer for float32 runs).
    Returns ``(last_hidden_state, sentence_embedding)``."""
    c = config_of(config)
    ids = np.asarray(input_ids, dtype=np.int64)
    mask = np.asarray(attention_mask, dtype=np.int64)
    types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids, np.int64)
    w = {k: np.asarray(v, dtype=dtype) if v.dtype.kind == "f" else v for k, v in weights.items()}
    batch, seq = ids.shape
    heads, dh = c["heads"], c["hidden"] // c["heads"]

    def layer_norm(x, prefix):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + c["eps"]) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def linear(x, prefix):
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    def split_heads(x):                     # [B, S, hidden] -> [B, heads, S, dh]
        return x.reshape(batch, seq, heads, dh).transpose(0, 2, 1, 3)

    e = "embeddings."
    h = (w[e + "word_embeddings.weight"][ids] + w[e + "token_type_embeddings.weight"][types]
         + w[e + "position_embeddings.weight"][np.arange(seq)][None])
    h = layer_norm(h, e + "LayerNorm")
    bias = (1.0 - mask[:, None, None, :].astype(dtype)) * MASK_VALUE
    for i in range(c["layers"]):
        p = f"encoder.layer.{i}."
        q = split_heads(linear(h, p + "attention.self.query"))
        k = split_heads(linear(h, p + "attention.self.key"))
        v = split_heads(linear(h, p + "attention.self.value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(0, 2, 1, 3).reshape(batch, seq, c["hidden"])
        h = layer_norm(linear(ctx, p + "attention.output.dense") + h,
                       p + "attention.output.LayerNorm")
        f = linear(h, p + "intermediate.dense")
        f = 0.5 * f * (1.0 + _erf(f / math.sqrt(2.0)))
        h = layer_norm(linear(f, p + "output.dense") + h, p + "output.LayerNorm")
    m = mask[:, :, None].astype(dtype)
    pooled = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    norm = np.sqrt((pooled * pooled).sum(1, keepdims=True))
    return h, pooled / np.maximum(norm, 1e-12)


# ---- ONNX ----------------------------------------------------------------------------------

class _Builder:
    """Nodes and initializers with unique names, in the order they are made."""

    def __init__(self):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self._n = [], [], 0

    def const(self, name: str, array) -> str:
        self.inits.append(self.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def op(self, op_type: str, inputs, name: str, out: str | None = None, **attrs) -> str:
        self._n += 1
        out = out or f"/{name}/{op_type}_output_{self._n}"
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out],
                                                name=f"/{name}/{op_type}_{self._n}", **attrs))
        return out


def build_onnx(weights: Mapping[str, np.ndarray], config: Mapping, layer_norm: str = "fused",
               name: str = "bert") -> "onnx.ModelProto":  # noqa: F821
    """The encoder + mean pooling + L2 normalisation as an ONNX model (opset 17).
    ``layer_norm``: "fused" (``LayerNormalization``) or "decomposed" (the
    ReduceMean/Sub/Pow/... form)."""
    from onnx import TensorProto, helper
    if layer_norm not in ("fused", "decomposed"):
        raise ValueError(f"build_onnx: argument 'layer_norm' expected 'fused' or 'decomposed', "
                         f"received {layer_norm!r}")
    c = config_of(config)
    hidden, heads = c["hidden"], c["heads"]
    dh = hidden // heads
    b = _Builder()
    f32 = np.float32

    def scalar(cname, value, dtype=f32):
        return b.const(cname, np.array(value, dtype=dtype))

    one, half = scalar("one", 1.0), scalar("half", 0.5)
    sqrt2, sqrt_dh = scalar("sqrt2", math.sqrt(2.0)), scalar("sqrt_head_dim", math.sqrt(dh))
    ax_last, ax_seq = b.const("axes_last", np.array([-1], np.int64)), \
        b.const("axes_seq", np.array([1], np.int64))
    heads_shape = b.const("heads_shape", np.array([0, 0, heads, dh], np.int64))
    merged_shape = b.const("merged_shape", np.array([0, 0, hidden], np.int64))
    if layer_norm == "decomposed":
        two, eps = scalar("two", 2.0), scalar("eps", c["eps"])

    def ln(x, prefix, where, out=None):
        g = b.const(prefix + ".weight", weights[prefix + ".weight"].astype(f32))
        beta = b.const(prefix + ".bias", weights[prefix + ".bias"].astype(f32))
        if layer_norm == "fused":
            return b.op("LayerNormalization", [x, g, beta], where, out, axis=-1,
                        epsilon=c["eps"])
        mu = b.op("ReduceMean", [x], where + "/mean", axes=[-1])
        d = b.op("Sub", [x, mu], where)
        var = b.op("ReduceMean", [b.op("Pow", [d, two], where)], where + "/var", axes=[-1])
        y = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [var, eps], where)], where)], where)
        return b.op("Add", [b.op("Mul", [y, g], where), beta], where, out)

    def linear(x, prefix, where):
        wt = b.const(prefix + ".weight.T", weights[prefix + ".weight"].T.astype(f32))
        bias = b.const(prefix + ".bias", weights[prefix + ".bias"].astype(f32))
        return b.op("Add", [bias, b.op("MatMul", [x, wt], where)], where)

    # embeddings
    e = "embeddings."
    words = b.op("Gather", [b.const(e + "word_embeddings.weight",
                                    weights[e + "word_embeddings.weight"].astype(f32)),
                            "input_ids"], "embeddings/word_embeddings")
    types = b.op("Gather", [b.const(e + "token_type_embeddings.weight",
                                    weights[e + "token_type_embeddings.weight"].astype(f32)),
                            "token_type_ids"], "embeddings/token_type_embeddings")
    seq_len = b.op("Gather", [b.op("Shape", ["input_ids"], "embeddings"),
                              b.const("index_one", np.array(1, np.int64))], "embeddings", axis=0)
    seq_end = b.op("Unsqueeze", [seq_len, b.const("axes_zero", np.array([0], np.int64))],
                   "embeddings")
    n_pos = weights[e + "position_embeddings.weight"].shape[0]
    pos_ids = b.op("Slice", [b.const(e + "position_ids", np.arange(n_pos, dtype=np.int64)[None]),
                             b.const("starts_zero", np.array([0], np.int64)), seq_end, ax_seq],
                   "embeddings")
    pos = b.op("Gather", [b.const(e + "position_embeddings.weight",
                                  weights[e + "position_embeddings.weight"].astype(f32)),
                          pos_ids], "embeddings/position_embeddings")
    h = b.op("Add", [b.op("Add", [words, types], "embeddings"), pos], "embeddings/add_position")
    h = ln(h, e + "LayerNorm", "embeddings/LayerNorm")

    # the additive attention mask, [B, 1, 1, S]
    m = b.op("Unsqueeze", ["attention_mask", b.const("axes_1_2", np.array([1, 2], np.int64))],
             "mask")
    m = b.op("Cast", [m], "mask", to=TensorProto.FLOAT)
    m = b.op("Mul", [b.op("Sub", [one, m], "mask"), scalar("mask_value", MASK_VALUE)], "mask")

    for i in range(c["layers"]):
        p, at = f"encoder.layer.{i}.", f"encoder/layer.{i}/attention"
        q = b.op("Transpose", [b.op("Reshape", [linear(h, p + "attention.self.query", at + "/query"),
                                                heads_shape], at + "/query")],
                 at + "/query", perm=[0, 2, 1, 3])
        kt = b.op("Transpose", [b.op("Reshape", [linear(h, p + "attention.self.key", at + "/key"),
                                                 heads_shape], at + "/key")],
                  at + "/key", perm=[0, 2, 3, 1])
        v = b.op("Transpose", [b.op("Reshape", [linear(h, p + "attention.self.value", at + "/value"),
                                                heads_shape], at + "/value")],
                 at + "/value", perm=[0, 2, 1, 3])
        s = b.op("Div", [b.op("MatMul", [q, kt], at + "/scores"), sqrt_dh], at + "/scores")
        s = b.op("Softmax", [b.op("Add", [s, m], at + "/scores")], at, axis=-1)
        ctx = b.op("Transpose", [b.op("MatMul", [s, v], at + "/context")], at + "/context",
                   perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, merged_shape], at + "/context")
        o = linear(ctx, p + "attention.output.dense", at + "/output/dense")
        h = ln(b.op("Add", [o, h], at + "/output"), p + "attention.output.LayerNorm",
               at + "/output/LayerNorm")
        ff = f"encoder/layer.{i}"
        f = linear(h, p + "intermediate.dense", ff + "/intermediate/dense")
        g = b.op("Erf", [b.op("Div", [f, sqrt2], ff + "/gelu")], ff + "/gelu")
        f = b.op("Mul", [b.op("Mul", [f, b.op("Add", [g, one], ff + "/gelu")], ff + "/gelu"), half],
                 ff + "/gelu")
        o = linear(f, p + "output.dense", ff + "/output/dense")
        h = ln(b.op("Add", [o, h], ff + "/output"), p + "output.LayerNorm", ff + "/output/LayerNorm",
               OUTPUTS[0] if i == c["layers"] - 1 else None)

    # mean over the tokens the mask keeps, then x / max(|x|, 1e-12)
    mf = b.op("Cast", [b.op("Unsqueeze", ["attention_mask", b.const("axes_two", np.array([2], np.int64))],
                            "pooling")], "pooling", to=TensorProto.FLOAT)
    summed = b.op("ReduceSum", [b.op("Mul", [h, mf], "pooling"), ax_seq], "pooling/sum", keepdims=0)
    count = b.op("ReduceSum", [mf, ax_seq], "pooling/count", keepdims=0)
    count = b.op("Clip", [count, scalar("min_count", 1e-9)], "pooling/count")
    pooled = b.op("Div", [summed, count], "pooling")
    sq = b.op("ReduceSum", [b.op("Mul", [pooled, pooled], "normalize"), ax_last], "normalize",
              keepdims=1)
    norm = b.op("Clip", [b.op("Sqrt", [sq], "normalize"), scalar("min_norm", 1e-12)], "normalize")
    b.op("Div", [pooled, norm], "normalize", OUTPUTS[1])

    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
            for n in INPUTS]
    outs = [helper.make_tensor_value_info(OUTPUTS[0], TensorProto.FLOAT,
                                          ["batch", "sequence", hidden]),
            helper.make_tensor_value_info(OUTPUTS[1], TensorProto.FLOAT, ["batch", hidden])]
    graph = helper.make_graph(b.nodes, name, ints, outs, initializer=b.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             ir_version=IR_VERSION, producer_name="pyinfer.models.bert")
