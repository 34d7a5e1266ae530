"""Read an ONNX model, check it, and build a ``pyinfer.Graph`` from it.

Order of work, so that every failure is a named pyinfer error raised here and
never a crash later:

1. parse (``onnx`` package; a corrupt or truncated file -> ``ModelError``);
2. resolve external data inside the model's folder only (absolute paths, ``..``
   and symlinks leading out of it are refused -> ``ModelError``);
3. every node must have a converter for its op type, domain and opset ->
   otherwise ``UnsupportedOperatorError`` naming all four;
4. ``onnx.checker`` (structure and schemas) -> ``ModelError``;
5. convert node by node.  Graph inputs keep symbolic dims (``dim_param``) as
   strings; shape computations are followed symbolically (``symbolic.py``) so
   that a Reshape to ``(batch, seq, 12, 64)`` is a plain RESHAPE; what cannot be
   followed stays a dynamic op that ``specialize`` resolves per input shape.
6. if every input dim is concrete, ``specialize`` once now, so the graph holds
   plain ops and constants and the Interpreter prepares it as it is.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..errors import (BackendUnavailableError, DTypeError, ModelError, ShapeError,
                      UnsupportedOperatorError)
from ..graph.ir import Graph, Value
from .convert import DTYPES, OPSET_MIN, ImportContext, Missing, describe, lookup, registered

# Model opsets read at all; a node of a newer opset still imports when its
# operator did not change since a version a converter covers (see ``_resolve``).
MODEL_OPSET_MAX = 28


def _onnx():
    try:
        import onnx
    except ImportError:
        raise BackendUnavailableError(
            "pyinfer.load needs the 'onnx' package: pip install 'pyinfer[onnx]' "
            "(or pip install onnx)") from None
    return onnx


# ---- 1. parsing --------------------------------------------------------------------------

def _parse(model):
    """(proto, folder of the file or None, the serialized bytes or None)."""
    onnx = _onnx()
    base_dir = None
    if isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        return proto, None, None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelError(f"cannot read ONNX model '{path}': {e.strerror or e}") from None
        base_dir = os.path.dirname(os.path.abspath(path))
        where = f"'{path}'"
    elif isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        where = f"{len(data)} bytes"
    else:
        raise TypeError(f"pyinfer.load: argument 'model' expected a path, bytes or "
                        f"onnx.ModelProto, received {type(model).__name__}")
    if not data:
        raise ModelError(f"ONNX model {where} is empty")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError and friends
        raise ModelError(f"ONNX model {where} is corrupt or truncated: cannot parse the "
                         f"protobuf ({e})") from None
    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise ModelError(f"ONNX model {where} is corrupt or truncated: "
                         + ("no graph" if not proto.HasField("graph") else "no IR version"))
    return proto, base_dir, data


# ---- 2. external data ----------------------------------------------------------------------

def _inside(base_dir: str, location: str, tensor_name: str) -> str:
    """The real path of ``location`` if it lies inside ``base_dir``, else ModelError."""
    if not location:
        raise ModelError(f"tensor '{tensor_name}': external data without a location")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or \
            (len(location) > 1 and location[1] == ":"):
        raise ModelError(f"tensor '{tensor_name}': external data location '{location}' is an "
                         f"absolute path; only files inside the model's folder are read")
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        raise ModelError(f"tensor '{tensor_name}': external data location '{location}' "
                         f"leaves the model's folder ('..'); refused")
    root = os.path.realpath(base_dir)
    real = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, real]) != root:
        raise ModelError(f"tensor '{tensor_name}': external data location '{location}' "
                         f"resolves outside the model's folder (a symlink?); refused")
    return real


def _tensors(graph):
    """Every TensorProto of a graph (initializers, Constant nodes' attributes)."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t


def _load_external(proto, base_dir: Optional[str]):
    onnx = _onnx()
    from onnx.external_data_helper import ExternalDataInfo
    for t in _tensors(proto.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if base_dir is None:
            raise ModelError(f"tensor '{t.name}' has external data, but the model was not "
                             f"loaded from a file (pass its path, or base_dir=)")
        info = ExternalDataInfo(t)
        path = _inside(base_dir, info.location, t.name)
        try:
            with open(path, "rb") as f:
                offset = int(info.offset or 0)
                if offset:
                    f.seek(offset)
                n = int(info.length) if info.length else -1
                data = f.read(n)
        except OSError as e:
            raise ModelError(f"tensor '{t.name}': cannot read external data '{info.location}': "
                             f"{e.strerror or e}") from None
        if n >= 0 and len(data) != n:
            raise ModelError(f"tensor '{t.name}': external data '{info.location}' is truncated "
                             f"({len(data)} of {n} bytes at offset {info.offset or 0})")
        t.raw_data = data
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT


# ---- 3. support ------------------------------------------------------------------------------

def _opsets(proto) -> dict:
    out = {}
    for o in proto.opset_import:
        out["" if o.domain in ("", "ai.onnx") else o.domain] = int(o.version)
    if "" not in out:
        out[""] = OPSET_MIN  # an ai.onnx-free model; its opset never matters
    return out


def _resolve(node, opsets):
    """The converter for a node, or UnsupportedOperatorError naming it."""
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    if domain not in opsets:
        raise UnsupportedOperatorError(
            f"{describe(node, 0)}: the model imports no opset for domain '{node.domain}'")
    opset = opsets[domain]
    c = lookup(node.op_type, domain, opset)
    if c is None and domain == "" and opset > 21:
        # A newer model opset: the operator may not have changed since a version we cover,
        # or changed only in the element types it allows (bfloat16, float8, int4, ...;
        # pyinfer checks element types itself).
        since = _since_version(node.op_type, opset)
        if since is not None and since > 21 and _types_only_change(node.op_type, since, 21):
            since = 21
        if since is not None:
            c = lookup(node.op_type, domain, since)
    if c is not None:
        return c
    have = registered(domain).get(node.op_type)
    why = (f"supported for opsets {', '.join(f'{a}-{b}' for a, b in have)} only"
           if have else "operator not supported by pyinfer")
    raise UnsupportedOperatorError(f"{describe(node, opset)}: {why}")


def _signature(schema) -> tuple:
    attrs = tuple(sorted((name, int(a.type), a.default_value.SerializeToString()
                          if a.default_value is not None else b"", bool(a.required))
                         for name, a in schema.attributes.items()))
    ios = tuple((p.name, int(p.option)) for p in schema.inputs) + \
        (None,) + tuple((p.name, int(p.option)) for p in schema.outputs)
    return attrs, ios, schema.min_input, schema.max_input, schema.min_output, schema.max_output


def _types_only_change(op_type: str, new: int, old: int) -> bool:
    """Do the op's schemas at opsets ``new`` and ``old`` differ only in type constraints
    (same attributes with the same defaults, same inputs and outputs)?"""
    from onnx import defs
    try:
        return _signature(defs.get_schema(op_type, new, "")) == \
            _signature(defs.get_schema(op_type, old, ""))
    except Exception:
        return False


def _since_version(op_type: str, opset: int) -> Optional[int]:
    from onnx import defs
    try:
        return int(defs.get_schema(op_type, opset, "").since_version)
    except Exception:
        return None


# ---- 5. values ----------------------------------------------------------------------------------

def _dtype(elem_type: int, what: str) -> np.dtype:
    from onnx import helper
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        raise UnsupportedOperatorError(f"{what}: element type {elem_type} is not supported") \
            from None
    if dt not in DTYPES:
        raise UnsupportedOperatorError(f"{what}: element type {dt} is not supported")
    return dt


def _input_shape(vi) -> tuple:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        raise ModelError(f"graph input '{vi.name}' has no shape (pyinfer needs every input's "
                         f"rank; dims may be symbolic)")
    dims = []
    for i, d in enumerate(t.shape.dim):
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(str(d.dim_param))
        else:
            dims.append(f"{vi.name}.{i}")   # an anonymous dynamic dim: its own symbol
    return tuple(dims)


def load(model, *, name: Optional[str] = None, base_dir: Optional[str] = None) -> Graph:
    """Import an ONNX model as a ``pyinfer.Graph``.

    model: a path to a ``.onnx`` file, the file's bytes, or an ``onnx.ModelProto``.
    base_dir: where external data lives for bytes/ModelProto input (for a path,
    the model's own folder; never anything outside it).
    Raises ``ModelError`` for a corrupt, truncated or inconsistent model and
    ``UnsupportedOperatorError`` for an operator (type, domain, opset) pyinfer
    cannot run.
    """
    onnx = _onnx()
    proto, file_dir, data = _parse(model)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        data = None  # the checker would look for the external files from the cwd
    _load_external(proto, file_dir or (os.path.abspath(base_dir) if base_dir else None))
    opsets = _opsets(proto)
    if opsets[""] < OPSET_MIN or opsets[""] > MODEL_OPSET_MAX:
        raise UnsupportedOperatorError(
            f"ONNX model: ai.onnx opset {opsets['']} is not supported (pyinfer imports "
            f"opsets {OPSET_MIN}-21, and newer ones up to {MODEL_OPSET_MAX} where the "
            f"operators used did not change)")
    gp = proto.graph
    converters = [_resolve(node, opsets) for node in gp.node]
    try:
        # The checker works on bytes: hand it the ones read (serializing a 90 MB
        # proto again costs half a second of a model's time to first inference).
        onnx.checker.check_model(data if data is not None else proto)
    except Exception as e:
        raise ModelError(f"ONNX model is invalid: {str(e).strip().splitlines()[0]}") from None
    return _build(proto, converters, opsets, name)


def _build(proto, converters, opsets, name) -> Graph:
    from onnx import numpy_helper
    from ..graph.passes._util import dce
    from ..plan.plan import specialize
    gp = proto.graph
    g = Graph(name or gp.name or "onnx")
    ctx = ImportContext(g, opsets)
    init_names = {t.name for t in gp.initializer}
    for vi in gp.input:
        if vi.name in init_names:
            continue  # an initializer listed as an input (IR < 4 style): a constant here
        dt = _dtype(vi.type.tensor_type.elem_type, f"graph input '{vi.name}'")
        v = g.input(vi.name, _input_shape(vi), dt)
        ctx.values[vi.name] = v
        ctx.input_symbols.update(d for d in v.shape if isinstance(d, str))
    for t in gp.initializer:
        try:
            arr = numpy_helper.to_array(t)
        except Exception as e:
            raise ModelError(f"initializer '{t.name}' is unreadable: {e}") from None
        if arr.dtype not in DTYPES:
            raise UnsupportedOperatorError(f"initializer '{t.name}': element type {arr.dtype} "
                                           f"is not supported")
        ctx.values[t.name] = g.constant(arr, name=_safe(t.name))
    for node, conv in zip(gp.node, converters):
        _convert(ctx, node, conv)
    for vi in gp.output:
        v = ctx.value(vi.name)
        if v is None:
            raise ModelError(f"graph output '{vi.name}' is never produced")
        if v in g.outputs:
            # One value returned twice: a graph output is one value with one name.
            v = g.add(_identity_op(), [v], {"shape": tuple(v.shape)}, name=f"{vi.name}_copy")
        g.output(v, vi.name)
    if all(isinstance(d, int) for v in g.inputs for d in v.shape):
        g = specialize(g, [v.shape for v in g.inputs])
    dce(g)  # shape computations followed symbolically leave their nodes unused
    return g


def _identity_op():
    from ..graph.ir import Op
    return Op.RESHAPE


def _safe(name: str) -> str:
    return name or "init"


def _convert(ctx: ImportContext, node, conv):
    try:
        outs = conv.fn(ctx, node)
    except (UnsupportedOperatorError, ModelError):
        raise
    except DTypeError as e:
        raise ctx.unsupported(node, f"element type not supported: {e}") from None
    except ShapeError as e:
        raise ModelError(f"{describe(node, ctx.opset)}: {e}") from None
    if isinstance(outs, (Value, np.ndarray)):
        outs = [outs]
    outs = list(outs)
    for i, oname in enumerate(node.output):
        if not oname:
            continue
        if i >= len(outs) or outs[i] is None:
            ctx.values[oname] = Missing(ctx.unsupported(
                node, f"output {i} ('{oname}') is not supported"))
            continue
        v = outs[i]
        if isinstance(v, np.ndarray) or np.isscalar(v):
            v = ctx.const(np.asarray(v), name=oname)
        ctx.values[oname] = v
