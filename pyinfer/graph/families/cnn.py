"""CNN graph ops besides convolution: MAX_POOL, AVG_POOL, GLOBAL_AVG_POOL,
GLOBAL_MAX_POOL, BATCH_NORM, PAD, LRN and RESIZE (NCHW, ONNX semantics).

Conventions shared with the importer (all attrs plain Python values):

| op | inputs | attrs (defaults) |
|---|---|---|
| MAX_POOL | (x,) | kernel_shape, strides (1,1), pads (0,0,0,0) as (top, left, bottom, right), dilations (1,1), ceil_mode False, auto_pad "NOTSET" |
| AVG_POOL | (x,) | as MAX_POOL without dilations, plus count_include_pad False |
| GLOBAL_AVG_POOL, GLOBAL_MAX_POOL | (x,) | -> (N, C, 1, ...) |
| BATCH_NORM | (x, scale, bias, mean, var) | eps 1e-5; channels on axis 1 |
| PAD | (x,) | pads (ONNX order, negative crops), mode "constant", value 0.0 |
| LRN | (x,) | size, alpha 1e-4, beta 0.75, bias 1.0 |
| RESIZE | (x,) | sizes (full shape) or scales, mode, coordinate_transformation_mode, nearest_mode, exclude_outside, extrapolation_value |

The shape rules use the eager ops' geometry (``pyinfer.ops.cnn``), so a graph
and an eager call agree; once the spatial dims are concrete they resolve
``auto_pad`` into ``pads`` (and RESIZE's scales into ``sizes``) in the node's
attrs.  Symbolic spatial dims give fresh symbolic output dims.  References are
the ``numpy`` kernels of ``pyinfer.backends.numpy_cnn``; lowering picks the
registry's kernel for the real shapes.  A BATCH_NORM whose parameters are
constants is folded at plan time into ``x * a + b`` (the ``channel_affine``
kernel); the Conv+BN folding pass (conv family) removes most of them earlier.
"""
from __future__ import annotations

import itertools

import numpy as np

from ...backends import numpy_cnn
from ...errors import DTypeError, PyinferError, ShapeError
from ...ops import cnn as eager
from ..ir import Node, Op
from ..opdefs import define
from ..shapes import FLOATS, fail

_fresh = itertools.count()


def _unknown(node: Node, i: int) -> str:
    return f"?{node.name}.{i}.{next(_fresh)}"


def _x(node: Node, ndim=None, min_ndim=None):
    x = node.inputs[0]
    if x.dtype not in FLOATS:
        raise DTypeError(f"node '{node.name}' ({node.op.value}): input '{x.name}' expected "
                         f"float32 or float64, received {x.dtype}")
    if (ndim is not None and x.ndim != ndim) or (min_ndim is not None and x.ndim < min_ndim):
        want = f"{ndim}-d (N, C, H, W)" if ndim is not None else f"at least {min_ndim}-d"
        raise fail(node, f"input '{x.name}' expected {want}, received shape {x.shape}")
    return x


def _concrete(dims) -> bool:
    return all(isinstance(d, (int, np.integer)) for d in dims)


def _rethrow(node: Node, fn, *args, **kw):
    """Run an eager-op helper, re-raising its ShapeError with the node's name."""
    try:
        return fn(*args, **kw)
    except ShapeError as e:
        raise fail(node, str(e)) from None


# ---- pooling ------------------------------------------------------------------------


def _pool_shape(node: Node):
    x = _x(node, ndim=4)
    at = node.attrs
    is_max = node.op is Op.MAX_POOL
    name = node.op.value
    if "kernel_shape" not in at:
        raise fail(node, "attribute 'kernel_shape' is required")
    at["kernel_shape"] = _rethrow(node, eager.int_pair, at["kernel_shape"], "kernel_shape", name, 1)
    at["strides"] = _rethrow(node, eager.int_pair, at.get("strides") or 1, "strides", name, 1)
    at["dilations"] = _rethrow(node, eager.int_pair, at.get("dilations") or 1, "dilations", name, 1)
    if not is_max and at["dilations"] != (1, 1):
        raise fail(node, f"attribute 'dilations' must be (1, 1) for average pooling, "
                         f"received {at['dilations']}")
    at["pads"] = _rethrow(node, eager.pads4, at.get("pads") or 0, name)
    at["ceil_mode"] = bool(at.get("ceil_mode", False))
    at["count_include_pad"] = bool(at.get("count_include_pad", False))
    at.setdefault("auto_pad", "NOTSET")
    n, c, h, w = x.shape
    if not _concrete((h, w)):
        return [((n, c, _unknown(node, 2), _unknown(node, 3)), x.dtype)]
    pads, (oh, ow) = _rethrow(node, eager.pool_geometry, name, (h, w), at["kernel_shape"],
                              at["strides"], at["pads"], at["dilations"], at["ceil_mode"],
                              at["auto_pad"])
    if at["auto_pad"] != "NOTSET":
        at.update(pads=pads, auto_pad="NOTSET", ceil_mode=False)
    return [((n, c, oh, ow), x.dtype)]


def _pool_kernel_attrs(node: Node) -> dict:
    at = node.attrs
    kw = {"kernel": at["kernel_shape"], "strides": at["strides"], "pads": at["pads"]}
    if node.op is Op.MAX_POOL:
        kw["dilations"] = at["dilations"]
    else:
        kw["count_include_pad"] = at["count_include_pad"]
    return kw


def _pool_ref(node: Node, args):
    x = np.asarray(args[0])
    _, (oh, ow) = eager.pool_geometry(node.op.value, x.shape[2:], node.attrs["kernel_shape"],
                                      node.attrs["strides"], node.attrs["pads"],
                                      node.attrs["dilations"], node.attrs["ceil_mode"],
                                      node.attrs["auto_pad"])
    out = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    kernel = numpy_cnn.max_pool2d if node.op is Op.MAX_POOL else numpy_cnn.avg_pool2d
    kernel(x, out=out, **_pool_kernel_attrs(node))
    return [out]


def _pool_lower(node: Node, ctx):
    return ctx.registry_step(node.op.value, [node.inputs[0]], _pool_kernel_attrs(node))


define(Op.MAX_POOL, shape=_pool_shape, reference=_pool_ref, lower=_pool_lower)
define(Op.AVG_POOL, shape=_pool_shape, reference=_pool_ref, lower=_pool_lower)


def _global_shape(node: Node):
    x = _x(node, min_ndim=3)
    return [(tuple(x.shape[:2]) + (1,) * (x.ndim - 2), x.dtype)]


def _global_ref(node: Node, args):
    x = np.asarray(args[0])
    out = np.empty(x.shape[:2] + (1,) * (x.ndim - 2), x.dtype)
    getattr(numpy_cnn, node.op.value)(x, out=out)
    return [out]


def _global_lower(node: Node, ctx):
    return ctx.registry_step(node.op.value, [node.inputs[0]], {})


define(Op.GLOBAL_AVG_POOL, shape=_global_shape, reference=_global_ref, lower=_global_lower)
define(Op.GLOBAL_MAX_POOL, shape=_global_shape, reference=_global_ref, lower=_global_lower)


# ---- batch norm ----------------------------------------------------------------------------


def _bn_shape(node: Node):
    x = _x(node, min_ndim=2)
    if len(node.inputs) != 5 or any(v is None for v in node.inputs):
        raise fail(node, "expected 5 inputs (x, scale, bias, mean, var)")
    c = x.shape[1]
    for v, role in zip(node.inputs[1:], ("scale", "bias", "mean", "var")):
        if v.dtype not in FLOATS:
            raise DTypeError(f"node '{node.name}' (batch_norm): input '{v.name}' ({role}) expected "
                             f"float32 or float64, received {v.dtype}")
        if v.ndim != 1 or (isinstance(c, int) and isinstance(v.shape[0], int) and v.shape[0] != c):
            raise fail(node, f"input '{v.name}' ({role}) expected shape ({c},), received {v.shape}")
    node.attrs["eps"] = _rethrow(node, eager.check_eps, node.attrs.get("eps", 1e-5), "batch_norm")
    return [(tuple(x.shape), x.dtype)]


def _bn_ref(node: Node, args):
    x = np.asarray(args[0])
    out = np.empty(x.shape, x.dtype)
    numpy_cnn.batch_norm(x, *args[1:], eps=node.attrs["eps"], out=out)
    return [out]


def _bn_lower(node: Node, ctx):
    x, *params = node.inputs
    dtype = node.outputs[0].dtype
    if all(p.is_constant for p in params):
        a, b = numpy_cnn.fold_batch_norm(*(p.data for p in params), node.attrs["eps"], dtype)
        return ctx.registry_step("channel_affine", [x, a, b], {}, in_place=True)
    return ctx.registry_step("batch_norm", [x, *params], {"eps": node.attrs["eps"]},
                             in_place=True)


define(Op.BATCH_NORM, shape=_bn_shape, reference=_bn_ref, lower=_bn_lower)


# ---- pad -------------------------------------------------------------------------------------


def _pad_shape(node: Node):
    x = node.inputs[0]
    at = node.attrs
    nd = x.ndim
    pads = tuple(int(p) for p in at.get("pads", ()))
    if len(pads) != 2 * nd:
        raise fail(node, f"attribute 'pads' expected {2 * nd} ints (all begins, then all ends), "
                         f"received {at.get('pads')}")
    at["pads"] = pads
    at["mode"] = at.get("mode", "constant")
    if at["mode"] not in eager.PAD_MODES:
        raise fail(node, f"attribute 'mode' expected one of {eager.PAD_MODES}, received {at['mode']!r}")
    at["value"] = float(at.get("value", 0.0))
    shape = []
    for i, d in enumerate(x.shape):
        b, e = pads[i], pads[nd + i]
        if not isinstance(d, (int, np.integer)):
            shape.append(d if b == e == 0 else _unknown(node, i))
            continue
        kept = d - max(0, -b) - max(0, -e)
        if kept < 0:
            raise fail(node, f"attribute 'pads' crops more than the {d} elements of axis {i}")
        shape.append(kept + max(0, b) + max(0, e))
    return [(tuple(shape), x.dtype)]


def _pad_value(node: Node, dtype):
    return np.asarray(node.attrs["value"]).astype(dtype)[()]


def _pad_ref(node: Node, args):
    x = np.asarray(args[0])
    at = node.attrs
    nd = x.ndim
    shape = tuple(x.shape[i] - max(0, -at["pads"][i]) - max(0, -at["pads"][nd + i])
                  + max(0, at["pads"][i]) + max(0, at["pads"][nd + i]) for i in range(nd))
    out = np.empty(shape, x.dtype)
    numpy_cnn.pad(x, pads=at["pads"], mode=at["mode"], value=_pad_value(node, x.dtype), out=out)
    return [out]


def _pad_lower(node: Node, ctx):
    at = node.attrs
    return ctx.registry_step("pad", [node.inputs[0]], {
        "pads": at["pads"], "mode": at["mode"],
        "value": _pad_value(node, node.outputs[0].dtype)})


define(Op.PAD, shape=_pad_shape, reference=_pad_ref, lower=_pad_lower)


# ---- LRN --------------------------------------------------------------------------------------


def _lrn_attrs(node: Node) -> dict:
    at = node.attrs
    return {"size": int(at["size"]), "alpha": float(at.get("alpha", 1e-4)),
            "beta": float(at.get("beta", 0.75)), "bias": float(at.get("bias", 1.0))}


def _lrn_shape(node: Node):
    x = _x(node, min_ndim=3)
    if "size" not in node.attrs or int(node.attrs["size"]) < 1:
        raise fail(node, f"attribute 'size' expected an int >= 1, received {node.attrs.get('size')}")
    node.attrs.update(_lrn_attrs(node))
    return [(tuple(x.shape), x.dtype)]


def _lrn_ref(node: Node, args):
    x = np.asarray(args[0])
    out = np.empty(x.shape, x.dtype)
    numpy_cnn.lrn(x, out=out, **_lrn_attrs(node))
    return [out]


def _lrn_lower(node: Node, ctx):
    return ctx.registry_step("lrn", [node.inputs[0]], _lrn_attrs(node))


define(Op.LRN, shape=_lrn_shape, reference=_lrn_ref, lower=_lrn_lower)


# ---- resize -------------------------------------------------------------------------------------


def _resize_attrs(node: Node) -> dict:
    at = node.attrs
    return {"mode": at["mode"], "coordinate_transformation_mode": at["coordinate_transformation_mode"],
            "nearest_mode": at["nearest_mode"], "scales": at.get("scales")}


def _resize_shape(node: Node):
    x = _x(node, min_ndim=1)
    at = node.attrs
    at.setdefault("mode", "nearest")
    at.setdefault("coordinate_transformation_mode", "half_pixel")
    at.setdefault("nearest_mode", "round_prefer_floor")
    at.setdefault("exclude_outside", 0)
    at.setdefault("extrapolation_value", 0.0)
    try:
        eager.check_resize_modes("resize", at["mode"], at["coordinate_transformation_mode"],
                                 at["nearest_mode"])
    except PyinferError as e:
        raise type(e)(f"node '{node.name}' (resize): {e}") from None
    scales = at.get("scales")
    if scales is not None:
        at["scales"] = tuple(float(s) for s in scales)
    sizes = at.get("sizes")
    if sizes is not None:
        sizes = tuple(sizes)
        if len(sizes) != x.ndim:
            raise fail(node, f"attribute 'sizes' expected {x.ndim} dims, received {sizes}")
        at["sizes"] = sizes
        return [(sizes, x.dtype)]
    if scales is None:
        raise fail(node, "one of the attributes 'sizes' and 'scales' is required")
    if not _concrete(x.shape):
        # Concrete dims scale now; a symbolic dim keeps its name at scale 1.
        shape = tuple(int(d * s) if isinstance(d, (int, np.integer)) else
                      (d if s == 1.0 else _unknown(node, i))
                      for i, (d, s) in enumerate(zip(x.shape, at["scales"])))
        return [(shape, x.dtype)]
    sizes, _ = _rethrow(node, eager.resize_sizes, "resize", x.shape, None, at["scales"])
    at["sizes"] = sizes
    return [(sizes, x.dtype)]


def _resize_ref(node: Node, args):
    x = np.asarray(args[0])
    sizes = node.attrs.get("sizes")
    if sizes is None or not _concrete(sizes):
        sizes, _ = eager.resize_sizes("resize", x.shape, None, node.attrs["scales"])
    out = np.empty(tuple(sizes), x.dtype)
    numpy_cnn.resize(x, out=out, **_resize_attrs(node))
    return [out]


def _resize_lower(node: Node, ctx):
    return ctx.registry_step("resize", [node.inputs[0]], _resize_attrs(node))


define(Op.RESIZE, shape=_resize_shape, reference=_resize_ref, lower=_resize_lower)
