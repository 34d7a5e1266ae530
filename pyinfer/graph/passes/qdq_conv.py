"""Quantized convolutions in QDQ form -> QCONV (graph/families/qconv.py).

Rules (run before ``qdq``, whose last step folds the DequantizeLinear of
constants that no rule took):

* QDQ conv: ``Conv(DQ(x_q, sx, zx), DQ(w_q, sw, zw), bias)`` -> ``QCONV(x_q,
  w_s8, sw, zw, bias, sx, zx)``, as ``onnxruntime.quantization.quantize_static
  (quant_format=QDQ)`` and ``pyinfer.save`` of a quantized graph write it.
  x_q is u8 (or s8, ONNX Runtime's default: QCONV shifts it to u8 exactly)
  with a per-tensor scale and zero point (constants or computed at run time by
  DynamicQuantizeLinear); w_q a constant s8 or u8 (shifted to s8
  exactly) with constant per-tensor or per-output-channel (axis 0) scale and
  zero point; the bias a float constant or ``DQ(int32 B, sx * sw)``, which is
  ``float32(B) * scale`` once, as the QLinearConv importer does (ONNX Runtime
  adds B to the int32 accumulator instead: the two differ in float32 rounding
  only).  The conv's activation joins the epilogue when QCONV has it (not
  clip: that, and a residual input, follow as float nodes).
* ONNX Runtime's dynamic form: ``DynamicQuantizeLinear(x) -> ConvInteger ->
  Cast(float) -> Mul(., Mul(x_scale, w_scale))`` -> QCONV with a float result
  and DynamicQuantizeLinear's run-time scale (``quantize_dynamic``'s form).
* epilogue: a float QCONV without bias absorbs a following Add of a
  per-channel constant (the bias), then an activation QCONV has.
* requantize (``absorb_requantize``): ``QuantizeLinear(QCONV(... out float))``
  with a constant scalar scale and a u8 zero point, the float result read by
  nothing else -> QCONV out "u8": the next int8 conv reads u8 straight from
  this one's epilogue (the ``y -> Q -> DQ -> Conv`` chain of QDQ models, and
  ``quantize_static``'s chained convs).  An int8 QuantizeLinear stays (QCONV
  requantizes to u8 only).

A DequantizeLinear that feeds something else as well stays for that reader
(dce removes it when nothing does).  Where a rule does not apply to a QDQ-looking
conv, the reason goes to ``graph.notes``.
"""
from __future__ import annotations

import numpy as np

from ...backends.numpy_ref import ACTIVATIONS as EPILOGUE_ACTIVATIONS
from ..ir import Graph, Node, Op, Value
from ._util import apply_rules, finish, is_output, make_node, note, place, producer, users

U8, S8, S32, F32 = (np.dtype(t) for t in (np.uint8, np.int8, np.int32, np.float32))


def _per_tensor(v) -> bool:
    return v is None or v.size == 1


def _weight(dqw: Node, k: int):
    """(w s8 data, w_zero (K,) int32 or None, w_scale float32 (K,) or ()) of a
    constant weight DequantizeLinear, else the reason it is not one."""
    wq, sw, zw = (list(dqw.inputs) + [None])[:3]
    if not wq.is_constant or wq.ndim != 4 or not sw.is_constant or \
            (zw is not None and not zw.is_constant):
        return "the weight, its scale or zero point is computed at run time"
    if wq.dtype not in (U8, S8):
        return f"weight of type {wq.dtype} (int8/uint8 only)"
    if sw.size not in (1, k) or (zw is not None and zw.size not in (1, k)):
        return f"weight scale/zero point of {sw.size} values for {k} output channels"
    if not _per_tensor(sw) and dqw.attrs.get("axis", 1) % 4 != 0:
        return f"per-channel weight scales on axis {dqw.attrs.get('axis')} (the output " \
               "channels are axis 0)"
    data = wq.data
    z = np.zeros(k, np.int32) if zw is None else \
        np.broadcast_to(np.asarray(zw.data, np.int32).reshape(-1), (k,)).copy()
    if data.dtype == U8:
        data, z = (data ^ np.uint8(0x80)).view(np.int8), z - 128
    if z.min() < -128 or z.max() > 127:
        return "a weight zero point outside int8's range after the shift"
    scale = np.asarray(sw.data, np.float32).reshape(-1)
    return data, (z if z.any() else None), (scale.reshape(()) if scale.size == 1 else scale)


def _bias(bias: Value, k: int):
    """The float32 (K,) bias, or the reason there is none we can use."""
    if bias is None:
        return None
    if bias.is_constant:
        if bias.size != k:
            return f"a bias of {bias.size} values for {k} channels"
        return np.ascontiguousarray(bias.data, np.float32).reshape(k)
    dqb = producer(bias, Op.DEQUANTIZE_LINEAR)
    if dqb is None or not all(v is None or v.is_constant for v in dqb.inputs):
        return "the bias is computed at run time"
    from ..reference import eval_node
    (b,) = eval_node(dqb, [None if v is None else v.data for v in dqb.inputs])
    b = np.asarray(b, np.float32)
    return b.reshape(k) if b.size == k else f"a bias of {b.size} values for {k} channels"


def _fuse(graph: Graph, conv: Node) -> bool:
    from ..families.conv import conv_inputs
    x, w, bias, residual = conv_inputs(conv)
    dqx, dqw = producer(x, Op.DEQUANTIZE_LINEAR), producer(w, Op.DEQUANTIZE_LINEAR)
    if dqx is None or dqw is None:
        return False
    at = conv.attrs
    k = w.shape[0]
    xq, sx, zx = (list(dqx.inputs) + [None])[:3]
    why = None
    if xq.dtype not in (U8, S8) or xq.ndim != 4:
        why = f"input of type {xq.dtype}, rank {xq.ndim} (uint8/int8 NCHW only)"
    elif not (_per_tensor(sx) and _per_tensor(zx)):
        why = "per-channel input scales (per-tensor only)"
    elif at.get("layout", "NCHW") != "NCHW" or (at.get("auto_pad") or "NOTSET") != "NOTSET":
        why = "NCHWc layout or unresolved auto_pad"
    elif conv.outputs[0].dtype != np.float32:
        why = f"a {conv.outputs[0].dtype} result (float32 only)"
    if why is None:
        wd = _weight(dqw, k)
        why = wd if isinstance(wd, str) else None
    if why is None:
        b = _bias(bias, k)
        why = b if isinstance(b, str) else None
    if why is not None:
        note(graph, [dqx, dqw, conv], f"qdq_conv: stays float: {why}")
        return False
    w_s8, w_zero, w_scale = wd
    name = conv.name
    act = at.get("activation")
    in_epilogue = act if residual is None and act in EPILOGUE_ACTIVATIONS else None
    ins = [xq, graph.constant(w_s8, name=f"{name}_w_s8"),
           graph.constant(w_scale, name=f"{name}_w_scale"),
           None if w_zero is None else graph.constant(w_zero, name=f"{name}_w_zero"),
           None if b is None else graph.constant(b, name=f"{name}_bias"),
           sx, zx]
    while ins[-1] is None:
        ins.pop()
    attrs = {"strides": tuple(at.get("strides", (1, 1))), "pads": tuple(at.get("pads", (0,) * 4)),
             "dilations": tuple(at.get("dilations", (1, 1))), "group": int(at.get("group", 1)),
             "out": "float", "activation": in_epilogue}
    q = place(graph, make_node(graph, Op.QCONV, ins, attrs, name=f"{name}_int8",
                               fused_from=(dqx.name, dqw.name) + (conv.fused_from or (name,))),
              conv)
    y = q.outputs[0]

    def then(op, inputs, attrs=None):
        return place(graph, make_node(graph, op, inputs, attrs), conv).outputs[0]

    if residual is not None:
        y = then(Op.ADD, [y, residual])
    if act is not None and in_epilogue is None:
        from ...compress.quantize import _float_activation
        y = _float_activation(graph, then, y, act, at)
    graph.replace_uses(conv.outputs[0], y)
    return True


def _requantize(graph: Graph, node: Node, use) -> bool:
    at = node.attrs
    y = node.outputs[0]
    if at.get("out") != "float" or is_output(graph, y) or len(use.get(y, ())) != 1:
        return False
    ql = use[y][0]
    if ql.op is not Op.QUANTIZE_LINEAR or ql.inputs[0] is not y:
        return False
    _, s, z = (list(ql.inputs) + [None])[:3]
    if not s.is_constant or s.size != 1 or (z is not None and (not z.is_constant or
                                                               z.dtype != U8)):
        return False
    out_scale = float(np.asarray(s.data, np.float32).reshape(()))
    if not (np.isfinite(out_scale) and out_scale > 0):
        return False
    attrs = dict(at, out="u8", out_scale=out_scale,
                 out_zero=0 if z is None else int(z.data.reshape(())))
    new = place(graph, make_node(graph, Op.QCONV, list(node.inputs), attrs, name=node.name,
                                 fused_from=tuple(node.fused_from or (node.name,)) + (ql.name,)),
                ql)
    graph.replace_uses(ql.outputs[0], new.outputs[0])
    return True


def _channel_values(v: Value, k: int):
    """(K,) float32 of a constant that is one value per output channel (shape
    (), (1,), (K,1,1) or (1,K,1,1)), else None."""
    if v is None or not v.is_constant or v.dtype.kind != "f":
        return None
    shape = tuple(v.shape)
    if v.size == 1 and len(shape) <= 4:
        return np.full(k, np.float32(v.data.reshape(-1)[0]), np.float32)
    if shape in ((k, 1, 1), (1, k, 1, 1)):
        return np.ascontiguousarray(v.data, np.float32).reshape(k)
    return None


def _single_user(graph, use, v):
    cons = use.get(v, [])
    return None if is_output(graph, v) or len(cons) != 1 else cons[0]


def _fuse_dynamic(graph: Graph, node: Node, use) -> bool:
    """ONNX Runtime's dynamic conv: ``DynamicQuantizeLinear(x) -> ConvInteger
    (QCONV out int32) -> Cast(float) -> Mul(., Mul(x_scale, w_scale))`` ->
    one QCONV with a float result and the run-time x_scale."""
    at = node.attrs
    x, w, w_scale, w_zero, bias, x_scale, x_zero = (list(node.inputs) + [None] * 7)[:7]
    dql = producer(x, Op.DYNAMIC_QUANTIZE_LINEAR)
    if at.get("out") != "int32" or dql is None or x_zero is not dql.outputs[2]:
        return False
    k = w.shape[0]
    cast = _single_user(graph, use, node.outputs[0])
    if cast is None or cast.op is not Op.CAST or np.dtype(cast.attrs.get("dtype")) != np.float32:
        return False
    mul = _single_user(graph, use, cast.outputs[0])
    if mul is None or mul.op is not Op.MUL or \
            tuple(mul.outputs[0].shape) != tuple(node.outputs[0].shape):
        return False
    other = mul.inputs[1] if mul.inputs[0] is cast.outputs[0] else mul.inputs[0]
    smul = producer(other, Op.MUL)
    if smul is None:
        return False
    p, q = smul.inputs
    ws = q if p is dql.outputs[1] else p if q is dql.outputs[1] else None
    ws_k = _channel_values(ws, k)
    if ws_k is None:
        return False
    ins = [x, w, graph.constant(ws_k, name=f"{node.name}_w_scale"), w_zero, None,
           dql.outputs[1], x_zero]
    fused = place(graph, make_node(graph, Op.QCONV, ins, dict(at, out="float", activation=None),
                                   name=f"{node.name}_dynamic",
                                   fused_from=(node.name, cast.name, mul.name)), mul)
    graph.replace_uses(mul.outputs[0], fused.outputs[0])
    return True


def _absorb_epilogue(graph: Graph, node: Node, use) -> bool:
    """A float QCONV without bias or activation takes a following Add of a
    per-channel constant (the bias) and then an activation."""
    at = node.attrs
    if at.get("out") != "float" or at.get("activation") is not None:
        return False
    ins = (list(node.inputs) + [None] * 7)[:7]
    k = ins[1].shape[0]
    last, chain = node.outputs[0], []
    c = _single_user(graph, use, last)
    if ins[4] is None and c is not None and c.op is Op.ADD and c.inputs[0] is not c.inputs[1] \
            and tuple(c.outputs[0].shape) == tuple(last.shape) and c.outputs[0].dtype == F32:
        b = _channel_values(c.inputs[1] if c.inputs[0] is last else c.inputs[0], k)
        if b is not None:
            ins[4] = graph.constant(b, name=f"{node.name}_bias")
            last, chain = c.outputs[0], [c]
    c = _single_user(graph, use, last)
    from .cnn import ACTIVATIONS
    if c is not None and ACTIVATIONS.get(c.op) in EPILOGUE_ACTIVATIONS:
        at = dict(at, activation=ACTIVATIONS[c.op])
        last = c.outputs[0]
        chain.append(c)
    if not chain:
        return False
    while ins[-1] is None:
        ins.pop()
    new = place(graph, make_node(graph, Op.QCONV, ins, at, name=node.name,
                                 fused_from=tuple(node.fused_from or (node.name,)) +
                                 tuple(n.name for n in chain)), chain[-1])
    graph.replace_uses(last, new.outputs[0])
    return True


def absorb_requantize(graph: Graph) -> None:
    """Every float-output QCONV read only by a QuantizeLinear to u8 with
    constant per-tensor parameters requantizes in its epilogue instead."""
    changed = False
    for node in [n for n in graph.nodes if n.op is Op.QCONV]:
        changed |= _requantize(graph, node, users(graph))
    if changed:
        finish(graph)


def qdq_conv(graph: Graph) -> None:
    changed = False
    for conv in [n for n in graph.nodes if n.op is Op.CONV]:
        changed |= _fuse(graph, conv)
    if changed:
        finish(graph)
    apply_rules(graph, (Op.QCONV,), (_fuse_dynamic, _absorb_epilogue))
    absorb_requantize(graph)
