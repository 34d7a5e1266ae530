"""Op.CONV and Op.LAYOUT: shape rules, NumPy references and lowering.

| op | inputs | attrs |
|---|---|---|
| CONV | (x, w, bias or None, residual or None) | strides, pads (top, left, bottom, right), dilations, group, auto_pad, activation (None, relu, relu6, clip, gelu, gelu_tanh, silu, sigmoid, tanh), clip_min, clip_max, layout ("NCHW", or "NCHWc": x, residual and y blocked, group 1) |
| LAYOUT | (x,) | to ("NCHWc" or "NCHW"), block; channels (the NCHW channel count, for to="NCHW") |

The CONV shape rule fills in defaults and, once the spatial dims are concrete,
resolves ``auto_pad`` into ``pads`` (and sets it to NOTSET), so later passes and
the lowering only ever see explicit pads.  ``y = act(conv(x, w) + bias + residual)``.

Lowering: with constant weights (and bias) and the C backend, the step is a
``ConvKernel`` built at plan time -- the path chosen for the real shapes and the
weights packed for it once -- so ``run`` never repacks a weight.  Anything else
(weights computed at run time, ``backend="numpy"``) goes through the registry's
``conv2d`` kernel.

LAYOUT is the NCHW <-> NCHWc reorder: NCHWc is (N, ceil(C/c), H, W, c) with the
channels past C zero.  Its reference is the lowering too (a NumPy reorder).
"""
from __future__ import annotations

import numpy as np

from ...errors import DTypeError, ShapeError
from ...ops import conv as eager
from ..ir import Node, Op
from ..opdefs import define
from ..shapes import fail

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
NCHWC_BLOCK = 8  # channels per block: one AVX2 float32 vector


def _concrete(*dims) -> bool:
    return all(isinstance(d, int) for d in dims)


def _rethrow(node, fn, *args):
    """Run an eager validator; its ShapeError is re-raised naming the node."""
    try:
        return fn(*args)
    except ShapeError as e:
        raise fail(node, str(e)) from None


def conv_inputs(node: Node):
    """(x, w, bias, residual), absent ones None."""
    ins = list(node.inputs) + [None] * (4 - len(node.inputs))
    return ins[0], ins[1], ins[2], ins[3]


def _conv_shape(node: Node):
    op = "conv2d"
    x, w, bias, residual = conv_inputs(node)
    if x is None or w is None or len(node.inputs) > 4:
        raise fail(node, "expected inputs (x, w, bias or None, residual or None)")
    for v in (x, w, bias, residual):
        if v is not None and v.dtype not in FLOATS:
            raise DTypeError(f"node '{node.name}' (conv2d): input '{v.name}' expected float32 "
                             f"or float64, received {v.dtype}")
    at = node.attrs
    layout = at.setdefault("layout", "NCHW")
    if layout == "NCHWc":
        # x is (N, ceil(C/8), H, W, 8) with C = w's input channels (groups 1).
        if x.ndim != 5 or w.ndim != 4 or x.shape[4] != NCHWC_BLOCK or \
                x.shape[1] != -(-w.shape[1] // NCHWC_BLOCK) or at.get("group", 1) != 1:
            raise fail(node, f"layout NCHWc expects x (N, ceil(C/{NCHWC_BLOCK}), H, W, "
                             f"{NCHWC_BLOCK}) for w (K, C, KH, KW) and group 1, received "
                             f"{x.shape} and {w.shape}")
        x_nchw = (x.shape[0], w.shape[1]) + tuple(x.shape[2:4])
    elif layout == "NCHW":
        if x.ndim != 4 or w.ndim != 4:
            raise fail(node, f"expected a 4-d x (NCHW) and a 4-d w, received {x.shape} and "
                             f"{w.shape}")
        x_nchw = tuple(x.shape)
    else:
        raise fail(node, f"attribute 'layout' expected 'NCHW' or 'NCHWc', received {layout!r}")
    if not _concrete(*w.shape, x_nchw[1]):
        raise fail(node, f"the channels of x {x.shape} and the weight shape {w.shape} must be "
                         "known")
    stride = _rethrow(node, eager.pair, tuple(at.get("strides", (1, 1))), "strides", op)
    dilation = _rethrow(node, eager.pair, tuple(at.get("dilations", (1, 1))), "dilations", op)
    auto_pad = at.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad not in eager.AUTO_PADS:
        raise fail(node, f"attribute 'auto_pad' expected one of {eager.AUTO_PADS}, "
                         f"received {auto_pad!r}")
    group = at.get("group", 1)
    hw = tuple(x_nchw[2:])
    if auto_pad != "NOTSET" and _concrete(*hw):
        pads = eager.resolve_auto_pad(auto_pad, hw, w.shape[2:], stride, dilation)
        auto_pad = "NOTSET"
    else:
        pads = _rethrow(node, eager.normalize_pads, tuple(at.get("pads", (0, 0, 0, 0))), "pads",
                        op)
    activation, clip = _rethrow(node, eager.normalize_activation, at.get("activation"),
                                at.get("clip_min"), at.get("clip_max"), op)
    at.update(strides=stride, dilations=dilation, pads=pads, auto_pad=auto_pad,
              group=int(group) if isinstance(group, (int, np.integer)) else group)
    at.setdefault("activation", None)
    if activation == "clip":
        at.update(clip_min=clip[0], clip_max=clip[1])
    dtype = np.result_type(*[v.dtype for v in (x, w, bias, residual) if v is not None])
    k = w.shape[0]
    if _concrete(*hw) and auto_pad == "NOTSET":
        oh, ow = _rethrow(node, eager.check_geometry, x_nchw, tuple(w.shape), stride, pads,
                          dilation, group, op)
    else:
        # Symbolic spatial dims: a plan specialises the graph before it needs them.
        _rethrow(node, eager.check_geometry, (1, x_nchw[1], 1 << 30, 1 << 30), tuple(w.shape),
                 stride, pads, dilation, group, op)
        oh, ow = f"{node.name}.oh", f"{node.name}.ow"
    shape = (x.shape[0], k, oh, ow)
    if layout == "NCHWc":
        shape = (x.shape[0], -(-k // NCHWC_BLOCK), oh, ow, NCHWC_BLOCK)
    if bias is not None and tuple(bias.shape) != (k,):
        raise fail(node, f"input '{bias.name}' (bias) expected shape ({k},), received {bias.shape}")
    if residual is not None and tuple(residual.shape) != shape and _concrete(*shape):
        try:
            ok = np.broadcast_shapes(tuple(residual.shape), shape) == shape
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise fail(node, f"input '{residual.name}' (residual) expected a shape "
                             f"broadcastable to {shape}, received {residual.shape}")
    return [(shape, dtype)]


def conv_attrs(node: Node) -> dict:
    """The kernel attributes (docs/kernel-contract.md, conv2d) of a CONV node."""
    at = node.attrs
    activation, clip = eager.normalize_activation(at.get("activation"), at.get("clip_min"),
                                                  at.get("clip_max"), "conv2d")
    return {"stride": tuple(at["strides"]), "pads": tuple(at["pads"]),
            "dilation": tuple(at["dilations"]), "groups": int(at["group"]),
            "activation": activation, "clip": clip}


def _conv_ref(node: Node, args):
    from ...backends.numpy_conv import conv2d_ref
    x, w, bias, residual = (list(args) + [None] * 4)[:4]
    dtype = node.outputs[0].dtype
    blocked = node.attrs.get("layout") == "NCHWc"
    x = np.asarray(x, dtype)
    if blocked:
        x = from_nchwc(x, np.shape(w)[1])
        if residual is not None:
            residual = from_nchwc(np.asarray(residual), np.shape(w)[0])
    y = conv2d_ref(x, np.asarray(w, dtype), None if bias is None else np.asarray(bias, dtype),
                   None if residual is None else np.asarray(residual, dtype), **conv_attrs(node))
    if blocked:
        y = to_nchwc(y, NCHWC_BLOCK)
    return [y.astype(dtype, copy=False)]


def _flops(node: Node) -> int:
    w = node.inputs[1]
    return 2 * int(np.prod(node.outputs[0].shape)) * int(np.prod(w.shape[1:]))


def _conv_lower(node: Node, ctx):
    x, w, bias, residual = conv_inputs(node)
    dtype = node.outputs[0].dtype
    attrs = conv_attrs(node)

    def const(v):
        return None if v is None else np.ascontiguousarray(v.data, dtype)

    if node.attrs.get("layout") == "NCHWc":
        return _nchwc_lower(node, ctx, const)

    # Any backend but the reference may use the packed C kernel (numba has no
    # conv: it would fall back to the C kernel anyway, re-packing every run).
    if ctx.backend != "numpy" and w.is_constant and (bias is None or bias.is_constant):
        from ...backends import _native
        if _native.lib is not None:
            from ...backends import c_conv
            wd, bd = const(w), const(bias)
            sample_out = np.empty(node.outputs[0].shape, dtype)
            sample_res = None if residual is None else ctx.sample(residual)
            why = c_conv._supports(ctx.sample(x), wd, bd, sample_res, out=sample_out, **attrs)
            if why is None:
                kernel = c_conv.ConvKernel(
                    x.shape, wd, bd, dtype=dtype, has_residual=residual is not None, **attrs)
                return _prepacked_step(node, kernel, x, residual)
            ctx.notes.append(((node.name,), f"conv2d: the C kernel cannot run this: {why}"))
    wv = const(w) if w.is_constant else w
    bv = const(bias) if bias is not None and bias.is_constant else bias
    rv = residual
    if residual is not None and residual.is_constant:
        rv = np.broadcast_to(np.asarray(residual.data, dtype), node.outputs[0].shape)
    elif residual is not None and tuple(residual.shape) != tuple(node.outputs[0].shape):
        from ...plan.select import _BroadcastRef
        rv = _BroadcastRef(residual, tuple(node.outputs[0].shape))
    return ctx.registry_step("conv2d", [x, wv, bv, rv], attrs, flops=_flops(node))


def _prepacked_step(node, kernel, x, residual):
    from ...plan.select import Step

    def conv(x, residual=None, *, out):
        kernel(x, residual, out)

    args = [x]
    if residual is not None:
        if residual.is_constant:
            args.append(np.ascontiguousarray(np.broadcast_to(
                residual.data.astype(kernel.dtype), node.outputs[0].shape)))
        elif tuple(residual.shape) != tuple(node.outputs[0].shape):
            from ...plan.select import _BroadcastRef
            args.append(_BroadcastRef(residual, tuple(node.outputs[0].shape)))
        else:
            args.append(residual)
    return Step(node, conv, args, {}, "c", f"c.conv2d[{kernel.path}]", flops=_flops(node))


def _nchwc_lower(node, ctx, const):
    """The direct NCHWc kernel with its weights packed now; without it (no C
    extension, no AVX2, weights computed at run time) the reference runs."""
    x, w, bias, residual = conv_inputs(node)
    if ctx.backend == "numpy" or not w.is_constant or \
            (bias is not None and not bias.is_constant) or node.outputs[0].dtype != np.float32:
        return None
    from ...backends import _native
    if _native.lib is None:
        return None
    from ...backends import c_conv
    x_nchw = (x.shape[0], w.shape[1]) + tuple(x.shape[2:4])
    if c_conv.nchwc_reason(x_nchw, w.shape, 1, np.float32) is not None:
        return None
    at = conv_attrs(node)
    kernel = c_conv.NchwcConvKernel(x_nchw, const(w), const(bias), stride=at["stride"],
                                    pads=at["pads"], dilation=at["dilation"],
                                    activation=at["activation"], clip=at["clip"])
    return _prepacked_step(node, kernel, x, residual)


define(Op.CONV, shape=_conv_shape, reference=_conv_ref, lower=_conv_lower)


# ---- LAYOUT: NCHW <-> NCHWc -----------------------------------------------------------------

def to_nchwc(x: np.ndarray, block: int) -> np.ndarray:
    n, c, h, w = x.shape
    cb = -(-c // block)
    y = np.zeros((n, cb * block, h, w), x.dtype)
    y[:, :c] = x
    return np.ascontiguousarray(y.reshape(n, cb, block, h, w).transpose(0, 1, 3, 4, 2))


def from_nchwc(x: np.ndarray, channels: int) -> np.ndarray:
    n, cb, h, w, block = x.shape
    return np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3).reshape(n, cb * block, h, w)
                                [:, :channels])


def _layout_shape(node: Node):
    (x,) = node.inputs
    at = node.attrs
    block = at.get("block")
    if not isinstance(block, int) or block < 1:
        raise fail(node, f"attribute 'block' expected an int >= 1, received {block!r}")
    if at.get("to") == "NCHWc":
        if x.ndim != 4 or not isinstance(x.shape[1], int):
            raise fail(node, f"expected a 4-d NCHW input with known channels, received {x.shape}")
        n, c, h, w = x.shape
        at["channels"] = c
        return [((n, -(-c // block), h, w, block), x.dtype)]
    if at.get("to") == "NCHW":
        c = at.get("channels")
        if x.ndim != 5 or x.shape[4] != block or not isinstance(c, int) or \
                not (isinstance(x.shape[1], int) and (x.shape[1] - 1) * block < c <= x.shape[1] * block):
            raise fail(node, f"expected an NCHWc input with block {block} holding 'channels' "
                             f"{c}, received {x.shape}")
        n, _, h, w, _ = x.shape
        return [((n, c, h, w), x.dtype)]
    raise fail(node, f"attribute 'to' expected 'NCHWc' or 'NCHW', received {at.get('to')!r}")


def _layout_ref(node: Node, args):
    x = np.asarray(args[0])
    if node.attrs["to"] == "NCHWc":
        return [to_nchwc(x, node.attrs["block"])]
    return [from_nchwc(x, node.attrs["channels"])]


def _layout_lower(node: Node, ctx):
    from ...plan.select import Step
    at = node.attrs

    def reorder(x, *, out):
        np.copyto(out, to_nchwc(x, at["block"]) if at["to"] == "NCHWc" else
                  from_nchwc(x, at["channels"]))
    return Step(node, reorder, [node.inputs[0]], {}, "numpy", f"numpy.layout[{at['to']}]")


define(Op.LAYOUT, shape=_layout_shape, reference=_layout_ref, lower=_layout_lower)
