"""ONNX -> pyinfer converters: the registration API and the context a converter sees.

A converter turns one ONNX node into pyinfer graph nodes.  Converters are
registered per ONNX op type (and domain, and the ai.onnx opsets they cover) in
modules of ``pyinfer/importer/converters/``; every module there is imported
when the importer first runs, so an op family adds ONNX support with one new
module::

    from pyinfer.importer.convert import converter

    @converter("QuantizeLinear")            # domain "" (ai.onnx), opsets 11-21
    def quantize_linear(ctx, node):
        x, scale, zp = ctx.inputs(node)      # pyinfer Values (None: absent optional input)
        axis = ctx.attr(node, "axis", 1)
        return [ctx.graph.add(Op.QUANTIZE_LINEAR, [x, scale, zp], {"axis": axis},
                              name=node.name)]

A converter returns one pyinfer ``Value`` per ONNX output (a NumPy array is
accepted too and becomes a graph constant).  It raises ``ctx.unsupported(node,
reason)`` for a form it cannot express (an attribute value, an input it needs
constant that is not, ...): the importer never lets anything else escape.

``ctx.constant(value)`` is how converters see through shape computations: the
data of a Value that is a constant (an initializer, a Constant node, or
anything the importer folded), else None.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import ModelError, UnsupportedOperatorError
from ..graph.ir import Graph, Value

OPSET_MIN, OPSET_MAX = 11, 21
# Element types a tensor may have (float8/float4/int4/bfloat16/strings are refused).
DTYPES = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16,
                                         np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                         np.uint64, np.bool_))


@dataclass(frozen=True)
class Converter:
    op_type: str
    domain: str
    opsets: tuple      # (first, last) ai.onnx opset covered, inclusive
    fn: Callable


_CONVERTERS: dict = {}   # (domain, op_type) -> [Converter]
_LOADED = False


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def converter(op_type: str, domain: str = "", opsets: tuple = (OPSET_MIN, OPSET_MAX)):
    """Register ``fn(ctx, node) -> [Value, ...]`` for ``op_type`` in ``domain``
    over the (inclusive) range of the model's opset for that domain.  Two
    converters for one op may split the range (an op whose inputs changed in
    opset 13, say), never overlap."""
    lo, hi = opsets
    if not (isinstance(lo, int) and isinstance(hi, int) and lo <= hi):
        raise ValueError(f"converter {op_type!r}: argument 'opsets' expected (first, last), "
                         f"received {opsets!r}")
    key = (_norm_domain(domain), op_type)

    def register(fn):
        for c in _CONVERTERS.get(key, ()):
            if not (hi < c.opsets[0] or lo > c.opsets[1]):
                raise ValueError(f"converter for {op_type!r} (domain {domain!r}) opsets "
                                 f"{opsets} overlaps {c.fn.__module__}.{c.fn.__name__} "
                                 f"{c.opsets}")
        _CONVERTERS.setdefault(key, []).append(Converter(op_type, key[0], (lo, hi), fn))
        return fn
    return register


def load_converters() -> None:
    """Import every module of ``pyinfer.importer.converters`` (once)."""
    global _LOADED
    if _LOADED:
        return
    from . import converters
    for info in pkgutil.iter_modules(converters.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{converters.__name__}.{info.name}")
    _LOADED = True


def lookup(op_type: str, domain: str, opset: int) -> Optional[Converter]:
    """The converter for ``op_type`` in ``domain`` at that domain's opset, or None."""
    load_converters()
    for c in _CONVERTERS.get((_norm_domain(domain), op_type), ()):
        if c.opsets[0] <= opset <= c.opsets[1]:
            return c
    return None


def registered(domain: str = "") -> dict:
    """``{op_type: [(first, last) opsets, ...]}`` for one domain (the support table)."""
    load_converters()
    d = _norm_domain(domain)
    return {op: sorted(c.opsets for c in cs) for (dom, op), cs in sorted(_CONVERTERS.items())
            if dom == d}


def describe(node, domain_opset: int) -> str:
    """How errors name a node: op type, domain, opset and node name."""
    dom = _norm_domain(node.domain) or "ai.onnx"
    return (f"ONNX node '{node.name or '<unnamed>'}' (op type '{node.op_type}', domain "
            f"'{dom}', opset {domain_opset})")


class ImportContext:
    """What a converter sees while one model is imported.

    ``graph``: the ``pyinfer.Graph`` under construction; ``opset``: the model's
    ai.onnx opset; ``opsets``: every domain's opset; ``values``: ONNX value name
    -> pyinfer ``Value``.
    """

    def __init__(self, graph: Graph, opsets: dict):
        self.graph = graph
        self.opsets = {_norm_domain(k): v for k, v in opsets.items()}
        self.opset = self.opsets.get("", OPSET_MAX)
        self.values: dict = {}
        # Shape tensors followed symbolically (pyinfer.importer.symbolic): Value -> object
        # array of ints, symbol names, or None (unknown), for values that are not constants.
        self.symbolic: dict = {}
        # Dim names of the graph inputs: the symbols ``specialize`` can bind.
        self.input_symbols: set = set()

    # ---- reading a node ------------------------------------------------------------------

    def value(self, name: str) -> Optional[Value]:
        """The pyinfer Value of an ONNX value name ('' is an absent optional input)."""
        if name == "":
            return None
        try:
            v = self.values[name]
        except KeyError:
            raise ModelError(f"ONNX value '{name}' is read before it is produced (the graph is "
                             f"not topologically sorted, or the name is undefined)") from None
        if isinstance(v, Missing):
            raise v.error
        return v

    def inputs(self, node) -> list:
        """One Value per input of ``node`` (None for an absent optional input)."""
        return [self.value(n) for n in node.input]

    def input(self, node, i: int) -> Optional[Value]:
        """Input ``i`` of ``node``; None where it is absent (also past the end)."""
        return self.value(node.input[i]) if i < len(node.input) else None

    def attr(self, node, name: str, default=None):
        """An attribute as a plain Python value: int, float, str, tuple of those,
        or an ndarray for a tensor; ``default`` when the node does not have it."""
        for a in node.attribute:
            if a.name == name:
                return _attr_value(self, node, a)
        return default

    def sym(self, value: Optional[Value]) -> Optional[np.ndarray]:
        """A shape tensor's elements as an object array (ints, symbol names, None for
        unknown) when the importer knows them, else None."""
        if value is None:
            return None
        if value.is_constant:
            if value.dtype.kind not in "iu" or value.data.size > 64:
                return None
            return value.data.astype(object)
        return self.symbolic.get(value)

    def constant(self, value: Optional[Value]) -> Optional[np.ndarray]:
        """The data of a constant Value (read-only), else None (also for None)."""
        if value is None or not value.is_constant:
            return None
        return value.data

    # ---- building --------------------------------------------------------------------------

    def const(self, data, name: str = "const") -> Value:
        """A new graph constant."""
        return self.graph.constant(np.asarray(data), name=name)

    def unsupported(self, node, reason: str) -> UnsupportedOperatorError:
        """The error to raise for a form of ``node`` the importer cannot express."""
        opset = self.opsets.get(_norm_domain(node.domain), self.opset)
        return UnsupportedOperatorError(f"{describe(node, opset)}: {reason}")


class Missing:
    """An output a converter does not produce: only reading it is an error."""

    def __init__(self, error: Exception):
        self.error = error


def _attr_value(ctx, node, a):
    from onnx import AttributeProto, numpy_helper
    t = a.type
    if t == AttributeProto.INT:
        return int(a.i)
    if t == AttributeProto.FLOAT:
        return float(a.f)
    if t == AttributeProto.STRING:
        return a.s.decode("utf-8", "replace")
    if t == AttributeProto.INTS:
        return tuple(int(i) for i in a.ints)
    if t == AttributeProto.FLOATS:
        return tuple(float(f) for f in a.floats)
    if t == AttributeProto.STRINGS:
        return tuple(s.decode("utf-8", "replace") for s in a.strings)
    if t == AttributeProto.TENSOR:
        try:
            return numpy_helper.to_array(a.t)
        except Exception as e:
            raise ModelError(f"{describe(node, ctx.opset)}: attribute '{a.name}' holds an "
                             f"unreadable tensor: {e}") from None
    raise ctx.unsupported(node, f"attribute '{a.name}' of type "
                                f"{AttributeProto.AttributeType.Name(t)} is not supported")
