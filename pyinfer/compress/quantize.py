"""Post-training int8 quantization of a graph's linear layers.

    quantize_dynamic(graph, per_channel=True, nodes=None, reduce_range=None, min_macs=None,
                     activation_granularity="row")
    quantize_static(graph, calibration_data, method="minmax", per_channel=True, nodes=None,
                    reduce_range=None, min_macs=None)

Both return a new graph in which each MATMUL / GEMM whose weight is a constant
2-d float matrix becomes a ``QGEMM`` node (pyinfer/graph/families/quant.py),
and each CONV with a constant weight a ``QCONV`` (graph/families/qconv.py):

* weights: symmetric int8 (zero point 0), one scale per output column
  (``per_channel``) or per tensor: range [-127, 127] with ``scale = max|w| /
  127``, or with ``reduce_range`` 7-bit, [-64, 64] with ``scale = max|w| / 64``
  (ONNX Runtime's ``reduce_range`` rule).  ``reduce_range=None`` (the default)
  picks 7-bit where this CPU has a faster exact kernel for 7-bit weights:
  AVX2 without AVX-512 VNNI, where the vpmaddubsw kernel is exact only when
  ``|w| <= 64`` (pi_qgemm_ukernels.h) and 1.1-1.45x faster than the exact
  16-bit one (bench/RESULTS.md); full range with VNNI (exact at any width),
  without the C extension, or with ``reduce_range=False``.  The choice is recorded in ``graph.notes``.
  It costs one bit of weight precision (error up to ``max|w| / 128`` per
  weight instead of ``/ 254``); pass it explicitly for a model that is the
  same on every machine;
* activations: uint8, asymmetric.  ``quantize_dynamic`` quantizes each
  MatMul/Gemm input at run time inside the fused kernel's step, by default
  per row (``activation_granularity="row"``: each token by the scale and zero
  point ONNX DynamicQuantizeLinear's rule gives its own min/max, found as the
  kernel packs the row; transformer tokens' ranges differ by orders of
  magnitude, and one scale for all of them cost MiniLM's embeddings their
  0.99 cosine: bench/RESULTS.md), or per tensor (``"tensor"``: exactly
  ONNX Runtime's DynamicQuantizeLinear + MatMulInteger, which imported
  models keep).  Convolutions stay per tensor: their input is quantized once
  by a DYNAMIC_QUANTIZE_LINEAR node shared by every conv reading it;
  ``quantize_static`` fixes the activation's scale and zero point from
  calibration runs: ``minmax`` (whole observed range), ``percentile`` (the
  0.01 / 99.99 percentiles: clips rare outliers) or ``entropy`` (the clipping
  threshold whose quantized histogram is closest in KL divergence to the
  observed one, TensorRT's calibration idea).

GEMM's alpha folds into the weight scales, a constant bias goes to the int8
epilogue.  Layers that cannot run in int8 (a run-time weight, transposed
activations, a residual input, a batched product) stay in float, with the
reason in ``graph.notes``; naming such a layer in ``nodes`` raises
``UnsupportedError`` naming it.

Convolutions: BatchNorm is folded into the weights and bias, ReLU & co. into
the conv first (the ``cnn`` pass, so the int8 weight is the folded one), then
the weight is quantized per output channel (axis 0 of (K, C/group, KH, KW)).
The activation is quantized by its own node, shared by every conv reading
it (a ResNet block input feeds its first conv and its shortcut):
``DYNAMIC_QUANTIZE_LINEAR`` (run-time range) or ``QUANTIZE_LINEAR``
(calibrated), then ``QCONV`` with the bias and the activation in its epilogue.
A residual input and a clip (ReLU6) activation, which the int8 epilogue does
not have, follow as float ADD / MAXIMUM / MINIMUM nodes (the fuse pass makes
them one elementwise kernel).  Static quantization also requantizes a conv's
output to u8 in its epilogue when the only reader is another int8 conv's
QuantizeLinear (``qdq_conv.absorb_requantize``): no float round trip between
chained convs; and it puts the bias on QLinearConv's int32 grid (step
``x_scale * w_scale``, see ``_int32_grid``) so the saved model fuses in ONNX
Runtime.  Without ``nodes`` a conv too small to gain from int8
(fewer than ``min_macs``, default ``CONV_MIN_MACS``, multiply-adds per image)
stays in float with that reason; named in ``nodes`` it is quantized anyway.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from ..backends.numpy_ref import ACTIVATIONS as EPILOGUE_ACTIVATIONS
from ..errors import ShapeError, UnsupportedError
from ..graph.ir import Graph, Node, Op, Value
from ..graph.passes._util import finish, make_node, note, place
from ..ops.quant import MAX_K, dynamic_params

METHODS = ("minmax", "percentile", "entropy")
LINEAR_OPS = (Op.MATMUL, Op.GEMM, Op.CONV)


def quantize_weight(w: np.ndarray, per_channel: bool = True, reduce_range: bool = False):
    """float (K, N) -> (int8 (K, N), float32 scale (N,) or ()) symmetric, in
    [-127, 127], or [-64, 64] (7 bits) with ``reduce_range``."""
    qmax = np.float32(64 if reduce_range else 127)
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=0) if per_channel else np.abs(w).max()
    scale = np.where(amax > 0, amax / qmax, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8)
    return q, scale


def prefers_reduced_range() -> bool:
    """True where 7-bit weights get a faster exact int8 kernel than full-range
    ones on this CPU (AVX2 without AVX-512 VNNI): the C backend picks different
    micro-kernels for the two."""
    try:
        from ..backends import c_quant
    except ImportError:  # no C extension: the NumPy reference is exact at any width
        return False
    return c_quant.kernel_for_weight_bits(7) != c_quant.kernel_for_weight_bits(8)


def _resolve_reduce_range(graph: Graph, reduce_range: Optional[bool], nodes) -> bool:
    if reduce_range is not None:
        return bool(reduce_range)
    chosen = prefers_reduced_range()
    if nodes:
        note(graph, nodes, "quantize: 7-bit weights [-64, 64] (reduce_range=None on a CPU "
             "with AVX2 but no AVX-512 VNNI: its fast u8 x s8 kernel is exact only for "
             "|w| <= 64; pass reduce_range=False for full-range weights)" if chosen else
             "quantize: full-range weights [-127, 127] (reduce_range=None: this CPU's "
             "int8 kernel is as fast for them)")
    return chosen


def _why_not(graph: Graph, node: Node) -> Optional[str]:
    """None if ``node`` can become a QGEMM / QCONV, else the reason."""
    if node.op is Op.CONV:
        return _conv_why_not(node)
    if node.op not in (Op.MATMUL, Op.GEMM):
        return f"op '{node.op.value}' has no int8 kernel (int8 covers MatMul, Gemm and Conv)"
    a, b = node.inputs[:2]
    if not b.is_constant or b.ndim != 2 or b.dtype.kind != "f":
        return "the weight is not a constant 2-d float matrix"
    if a.dtype.kind != "f" or a.ndim < 1:
        return f"the activation is {a.dtype}, not float"
    if node.op is Op.GEMM:
        at = node.attrs
        if at.get("trans_a"):
            return "transposed activations (trans_a)"
        if len(node.inputs) > 3 and node.inputs[3] is not None:
            return "a residual input"
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            bias = node.inputs[2]
            if not bias.is_constant or bias.size != node.outputs[0].shape[-1]:
                return "a bias that is not a constant row vector"
    return None


def _weight(node: Node):
    b = node.inputs[1].data
    if node.op is Op.GEMM:
        if node.attrs.get("trans_b"):
            b = b.T
        b = b * np.float32(node.attrs.get("alpha", 1.0))
    return np.ascontiguousarray(b, np.float32)


def _candidates(graph: Graph, nodes: Optional[Iterable[str]], min_macs: Optional[int] = None):
    names = None if nodes is None else set(nodes)
    known = {n.name for n in graph.nodes}
    if names is not None:
        missing = sorted(names - known)
        if missing:
            raise ShapeError(f"quantize: argument 'nodes' names {missing}, which are not nodes "
                             f"of graph '{graph.name}'")
    out = []
    for node in graph.nodes:
        if names is not None and node.name not in names:
            continue
        if node.op not in LINEAR_OPS and names is None:
            continue
        why = _why_not(graph, node)
        if why is not None:
            if names is not None:
                raise UnsupportedError(f"quantize: node '{node.name}' ({node.op.value}) cannot "
                                       f"run in int8: {why}")
            note(graph, [node], f"quantize: kept in float: {why}")
            continue
        if names is None and node.op is Op.CONV:
            why = _conv_unprofitable(node, CONV_MIN_MACS if min_macs is None else min_macs)
            if why is not None:
                note(graph, [node], f"quantize: kept in float: {why}")
                continue
        out.append(node)
    return out


def _prepare(graph: Graph) -> Graph:
    """A copy of ``graph`` with BatchNorm, bias adds and activations folded into
    its convolutions (the cnn pass's rules; no NCHWc layout), so that the
    weight quantized is the one the conv multiplies with."""
    from ..graph.passes import cnn
    g = graph.copy()
    if any(n.op is Op.CONV for n in g.nodes):
        changed = cnn.fold_batch_norm(g)
        if cnn.fuse_epilogues(g) or changed:
            finish(g)
    return g


def _rewrite(graph: Graph, node: Node, per_channel: bool, a_mode: str, a_params=None,
             reduce_range: bool = False, a_granularity: str = "tensor"):
    a = node.inputs[0]
    wq, ws = quantize_weight(_weight(node), per_channel, reduce_range)
    n = wq.shape[1]
    bias = None
    if node.op is Op.GEMM and len(node.inputs) > 2 and node.inputs[2] is not None:
        bias = graph.constant(np.ascontiguousarray(node.inputs[2].data, np.float32).reshape(n),
                              name=f"{node.name}_bias")
    inputs = [a, graph.constant(wq, name=f"{node.name}_wq"),
              graph.constant(ws, name=f"{node.name}_wscale"), None, bias]
    if a_mode == "static":
        s, z = a_params
        inputs += [graph.constant(np.float32(s), name=f"{node.name}_ascale"),
                   graph.constant(np.uint8(z), name=f"{node.name}_azero")]
    while inputs[-1] is None:
        inputs.pop()
    act = node.attrs.get("activation") if node.op is Op.GEMM else None
    q = place(graph, make_node(graph, Op.QGEMM, inputs,
                               {"a_mode": a_mode, "out": "float", "activation": act,
                                "a_granularity": a_granularity},
                               name=f"{node.name}_int8", fused_from=(node.name,)), node)
    y = q.outputs[0]
    old = node.outputs[0]
    if y.dtype != old.dtype:  # a float64 model: cast the float32 result back
        y = place(graph, make_node(graph, Op.CAST, [y], {"dtype": old.dtype}), node).outputs[0]
    graph.replace_uses(old, y)


def quantize_dynamic(graph: Graph, per_channel: bool = True,
                     nodes: Optional[Sequence[str]] = None,
                     reduce_range: Optional[bool] = None,
                     min_macs: Optional[int] = None,
                     activation_granularity: str = "row") -> Graph:
    """A copy of ``graph`` whose MatMul/Gemm layers with constant weights run in
    int8: weights quantized now (symmetric, per output channel by default),
    activations at run time, per row (``activation_granularity="row"``, the
    default) or per tensor (``"tensor"``; convs are per tensor either way).
    ``nodes``: only these (by name).
    ``reduce_range``: 7-bit weights ([-64, 64]); None (default) chooses 7-bit
    on AVX2 CPUs without AVX-512 VNNI, where the fast exact kernel needs them,
    and full range elsewhere (the module docstring says why; graph.notes
    records the choice).  ``min_macs``: without ``nodes``, convs with fewer
    multiply-adds per image stay float (default ``CONV_MIN_MACS``; 0: none)."""
    if activation_granularity not in ("row", "tensor"):
        raise ShapeError(f"quantize_dynamic: argument 'activation_granularity' expected 'row' "
                         f"or 'tensor', received {activation_granularity!r}")
    g = _prepare(graph)
    cands = _candidates(g, nodes, min_macs)
    reduced = _resolve_reduce_range(g, reduce_range, cands)
    quantized: dict = {"origin": {n.name: n for n in graph.nodes}}
    for node in cands:
        if node.op is Op.CONV:
            _rewrite_conv(g, node, per_channel, "dynamic", quantized, reduce_range=reduced)
        else:
            _rewrite(g, node, per_channel, "dynamic", reduce_range=reduced,
                     a_granularity=activation_granularity)
    finish(g)
    return g


# ---- calibration ---------------------------------------------------------------------------

def _check_calibration(graph: Graph, calibration_data):
    if isinstance(calibration_data, dict):
        calibration_data = [calibration_data]
    batches = list(calibration_data)
    if not batches:
        raise ShapeError("quantize_static: argument 'calibration_data' expected at least one "
                         "batch (a dict of input name -> array), received none")
    for i, feed in enumerate(batches):
        if not isinstance(feed, dict):
            raise ShapeError(f"quantize_static: calibration batch {i} expected a dict of input "
                             f"name -> array, received {type(feed).__name__}")
        for v in graph.inputs:
            if v.name not in feed:
                raise ShapeError(f"quantize_static: calibration batch {i} lacks input '{v.name}'")
            x = np.asarray(feed[v.name])
            if x.ndim != len(v.shape) or any(isinstance(d, int) and d != s
                                             for d, s in zip(v.shape, x.shape)):
                raise ShapeError(f"quantize_static: calibration batch {i}, input '{v.name}' "
                                 f"expected shape {v.shape}, received {x.shape}")
    return batches


def _range(values: list, method: str):
    x = np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in values])
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0, 0.0
    if method == "minmax":
        return float(x.min()), float(x.max())
    if method == "percentile":
        lo, hi = np.percentile(x, [0.01, 99.99])
        return float(lo), float(hi)
    return _entropy_range(x)


def _entropy_range(x: np.ndarray, bins: int = 2048, levels: int = 128):
    """The clipping threshold t for [-t, t] (or [0, t] for non-negative x)
    minimizing KL(P || Q): P the observed |x| histogram clipped at t (outliers
    added to the last bin), Q that histogram merged into ``levels`` bins and
    expanded back over the bins it covers (non-empty ones only)."""
    ax = np.abs(x)
    top = float(ax.max())
    if top == 0:
        return 0.0, 0.0
    hist, edges = np.histogram(ax, bins=bins, range=(0, top))
    hist = hist.astype(np.float64)
    best_t, best_kl = top, np.inf
    for i in range(levels, bins + 1, 16):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        nz = p > 0
        chunks = np.array_split(np.arange(i), levels)
        q = np.zeros(i)
        for c in chunks:
            sel = c[nz[c]]
            if sel.size:
                q[sel] = hist[:i][c].sum() / sel.size
        q[-1] = max(q[-1], 1e-12) if nz[-1] else q[-1]
        pn, qn = p / p.sum(), q / max(q.sum(), 1e-300)
        m = nz & (qn > 0)
        kl = float(np.sum(pn[m] * np.log(pn[m] / qn[m]))) + (1e9 if np.any(nz & (qn == 0)) else 0)
        if kl < best_kl:
            best_kl, best_t = kl, float(edges[i])
    lo = -best_t if x.min() < 0 else 0.0
    return max(lo, float(x.min())), min(best_t, float(x.max()))


def quantize_static(graph: Graph, calibration_data, method: str = "minmax",
                    per_channel: bool = True, nodes: Optional[Sequence[str]] = None,
                    reduce_range: Optional[bool] = None,
                    min_macs: Optional[int] = None) -> Graph:
    """A copy of ``graph`` whose MatMul/Gemm layers with constant weights run in
    int8 with activation scales fixed from ``calibration_data`` (a dict, or a
    list of dicts, of graph input name -> array, run through the NumPy reference).
    ``reduce_range`` and ``min_macs`` as in ``quantize_dynamic``."""
    from ..graph.reference import evaluate_all
    from ..plan.plan import specialize
    if method not in METHODS:
        raise ShapeError(f"quantize_static: argument 'method' expected one of {METHODS}, "
                         f"received {method!r}")
    batches = _check_calibration(graph, calibration_data)
    g = _prepare(graph)
    cands = _candidates(g, nodes, min_macs)
    seen: dict = {}
    symbolic = any(not isinstance(d, int) for v in g.inputs for d in v.shape)
    for feed in batches:
        # With symbolic dims the reference needs concrete shapes: calibrate on a
        # copy specialised to this batch (node names are kept).
        gs = specialize(g, [np.shape(feed[v.name]) for v in g.inputs]) if symbolic else g
        env = evaluate_all(gs, {v.name: np.asarray(feed[v.name], v.dtype) for v in gs.inputs})
        by_name = {n.name: n for n in gs.nodes}
        for node in cands:
            a = by_name[node.name].inputs[0]
            seen.setdefault(node.name, []).append(a.data if a.is_constant else env[a])
    reduced = _resolve_reduce_range(g, reduce_range, cands)
    quantized: dict = {"origin": {n.name: n for n in graph.nodes}}
    for node in cands:
        lo, hi = _range(seen[node.name], method)
        s, z = dynamic_params(lo, hi)
        if node.op is Op.CONV:
            _rewrite_conv(g, node, per_channel, "static", quantized, (s, z),
                          reduce_range=reduced)
        else:
            _rewrite(g, node, per_channel, "static", (s, z), reduce_range=reduced)
    finish(g)
    if any(n.op is Op.CONV for n in cands):
        from ..graph.passes.qdq_conv import absorb_requantize
        absorb_requantize(g)
    return g


# ---- convolutions ------------------------------------------------------------------------

# Fewer multiply-adds per image than this and a conv stays in float when no
# ``nodes`` are named: int8 adds fixed costs (quantizing the input: ~140 us of
# Python in the DynamicQuantizeLinear step at 4k elements, ~15 us static; the
# kernel's NHWC copy) that small convs do not earn back.
# bench/quant_conv_bench.py, 2026-11-25, AVX2 without VNNI, 1-2 threads, load
# average 8 on 2 vCPUs (so only the small shapes are stable), with the one-call
# C qconv kernels (af57667): up to 2.4M MACs the int8 conv is 0.23-0.38x the
# float32 time dynamic, 0.57-0.76x static; from 6M on it follows the kernels'
# throughput instead (static 0.6-1.1x, 2-6x where the float path is slow:
# 512 channels 7x7).  So on that machine int8 convs buy 4x smaller weights
# more than speed.
CONV_MIN_MACS = 1 << 22


def _conv_why_not(node: Node) -> Optional[str]:
    from ..graph.families.conv import conv_inputs
    x, w, bias, residual = conv_inputs(node)
    at = node.attrs
    if at.get("layout", "NCHW") != "NCHW":
        return f"layout {at.get('layout')} (int8 convolution is NCHW)"
    if not w.is_constant or w.ndim != 4 or w.dtype.kind != "f":
        return "the weight is not a constant 4-d float tensor"
    if x.dtype.kind != "f" or x.ndim != 4:
        return f"the input is {x.ndim}-d {x.dtype}, not a 4-d float tensor (NCHW)"
    if bias is not None and not bias.is_constant:
        return "the bias is computed at run time"
    if (at.get("auto_pad") or "NOTSET") != "NOTSET":
        return f"auto_pad {at.get('auto_pad')} with symbolic spatial dims (no explicit pads)"
    k, cg, kh, kw = w.shape
    if cg * kh * kw > MAX_K:
        return f"C/group*KH*KW = {cg * kh * kw} > {MAX_K}: int32 accumulation would not be exact"
    return None


def _conv_unprofitable(node: Node, min_macs: int) -> Optional[str]:
    w = node.inputs[1]
    y = node.outputs[0]
    hw = y.shape[2:]
    if not all(isinstance(d, int) for d in hw):
        return None  # unknown image size: assume a real one
    macs = int(np.prod(w.shape[1:])) * w.shape[0] * hw[0] * hw[1]
    if macs < min_macs:
        return (f"tiny conv ({macs} multiply-adds per image < min_macs {min_macs}): "
                "quantizing its input and the int8 im2col cost more than int8 saves; name "
                "it in 'nodes' or lower 'min_macs' to quantize it anyway")
    return None


def quantize_conv_weight(w: np.ndarray, per_channel: bool = True, reduce_range: bool = False):
    """float (K, C/group, KH, KW) -> (int8 of that shape, float32 scale (K,) or
    ()): ``quantize_weight`` per output channel (axis 0)."""
    w = np.asarray(w, np.float32)
    q, scale = quantize_weight(w.reshape(w.shape[0], -1).T, per_channel, reduce_range)
    return np.ascontiguousarray(q.T).reshape(w.shape), scale


def _quantized_input(graph: Graph, x: Value, mode: str, params, cache: dict, anchor: Node):
    """(x_u8, x_scale, x_zero) Values for conv input ``x``: one quantize node
    per input value (and, static, per range), shared by its convs (``cache``;
    its "origin" entry holds the graph's nodes before the cnn pass)."""
    key = (id(x), mode, None if params is None else (float(params[0]), int(params[1])))
    if key in cache:
        return cache[key]
    if mode == "dynamic":
        q = place(graph, make_node(graph, Op.DYNAMIC_QUANTIZE_LINEAR, [x],
                                   name=f"{x.name}_quantize"), anchor)
        got = tuple(q.outputs)
    else:
        s, z = params
        sv = graph.constant(np.float32(s), name=f"{x.name}_scale")
        zv = graph.constant(np.uint8(z), name=f"{x.name}_zero")
        xf = x
        if x.dtype != np.float32:
            # QuantizeLinear rounds to float32 first anyway; the C quantize
            # kernel reads float32 only (its supports() does not say so)
            xf = place(graph, make_node(graph, Op.CAST, [x], {"dtype": np.dtype(np.float32)}),
                       anchor).outputs[0]
        q = place(graph, make_node(graph, Op.QUANTIZE_LINEAR, [xf, sv, zv], {"axis": 1},
                                   name=f"{x.name}_quantize"), anchor)
        got = (q.outputs[0], sv, zv)
    cache[key] = got
    return got


def _rewrite_conv(graph: Graph, node: Node, per_channel: bool, mode: str, cache: dict,
                  params=None, reduce_range: bool = False):
    from ..graph.families.conv import conv_inputs
    x, w, bias, residual = conv_inputs(node)
    at = node.attrs
    act = at.get("activation")
    wq, ws = quantize_conv_weight(w.data, per_channel, reduce_range)
    k = wq.shape[0]
    xq, xs, xz = _quantized_input(graph, x, mode, params, cache, node)
    bias_f = None if bias is None else np.ascontiguousarray(bias.data, np.float32).reshape(k)
    if bias_f is not None and mode == "static":
        bias_f = _int32_grid(bias_f, np.float32(params[0]) * np.broadcast_to(ws, (k,)))
    bias_v = None if bias_f is None else graph.constant(bias_f, name=f"{node.name}_bias")
    # act(conv + bias + residual): the activation can join the int8 epilogue
    # only when no residual is added before it
    in_epilogue = act if residual is None and act in EPILOGUE_ACTIVATIONS else None
    attrs = {"strides": tuple(at.get("strides", (1, 1))), "pads": tuple(at.get("pads", (0,) * 4)),
             "dilations": tuple(at.get("dilations", (1, 1))), "group": int(at.get("group", 1)),
             "out": "float", "activation": in_epilogue}
    q = place(graph, make_node(graph, Op.QCONV,
                               [xq, graph.constant(wq, name=f"{node.name}_wq"),
                                graph.constant(ws, name=f"{node.name}_wscale"), None, bias_v,
                                xs, xz], attrs,
                               name=f"{node.name}_int8",
                               fused_from=_in_epilogue(node, residual, in_epilogue != act,
                                                       cache.get("origin", {}))),
              node)
    old = node.outputs[0]
    y = q.outputs[0]

    def then(op, inputs, attrs=None):
        return place(graph, make_node(graph, op, inputs, attrs), node).outputs[0]

    if y.dtype != old.dtype:  # a float64 model: cast the float32 result back
        y = then(Op.CAST, [y], {"dtype": old.dtype})
    if residual is not None:
        y = then(Op.ADD, [y, residual])
    if act is not None and in_epilogue is None:
        y = _float_activation(graph, then, y, act, at)
    graph.replace_uses(old, y)


def _int32_grid(bias: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``float32(B) * scale`` with ``B = rint(bias / scale)`` int32: the bias
    QLinearConv takes (ONNX Runtime's quantizer rounds it so too).  It moves
    the bias by at most half of ``x_scale * w_scale`` (1/510 of an input step
    times a weight step) and lets the exported QDQ conv fuse into ONNX
    Runtime's QLinearConv (export/ops/qconv.py).  Kept as is where B would not
    fit int32."""
    scale = np.asarray(scale, np.float32)
    q = np.rint(bias.astype(np.float64) / scale)
    if not np.all(np.abs(q) < 2 ** 31):
        return bias
    return (q.astype(np.int32).astype(np.float32) * scale).astype(np.float32)


def _in_epilogue(node: Node, residual, act_outside: bool, origin: dict) -> tuple:
    """The names the int8 conv really took in, for ``explain()``: the conv's
    ``fused_from`` less the residual Add and the activation nodes, which now run
    as float nodes.  ``origin``: the graph's nodes by name before the cnn pass."""
    from ..graph.passes.cnn import ACTIVATIONS as CNN_ACTIVATIONS
    act_ops = set(CNN_ACTIVATIONS) | {Op.MAXIMUM, Op.MINIMUM}
    names = list(node.fused_from or (node.name,))

    def dropped(name):
        n = origin.get(name)
        if n is None or name == node.name:
            return False
        if n.op in act_ops:
            return act_outside
        return residual is not None and n.op is Op.ADD and \
            not any(v is not None and v.is_constant for v in n.inputs)
    return tuple(nm for nm in names if not dropped(nm)) or (node.name,)


def _float_activation(graph: Graph, then, y: Value, act: str, at: dict) -> Value:
    from ..graph.passes.cnn import ACTIVATIONS as CNN_ACTIVATIONS
    by_name = {v: k for k, v in CNN_ACTIVATIONS.items()}
    if act in by_name:
        return then(by_name[act], [y])
    lo, hi = (0.0, 6.0) if act == "relu6" else (at.get("clip_min"), at.get("clip_max"))
    if lo is not None and np.isfinite(lo):
        y = then(Op.MAXIMUM, [y, graph.constant(np.asarray(lo, y.dtype))])
    if hi is not None and np.isfinite(hi):
        y = then(Op.MINIMUM, [y, graph.constant(np.asarray(hi, y.dtype))])
    return y
