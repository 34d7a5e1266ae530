"""Walk a ``pyinfer.Graph`` and write it as an ``onnx.ModelProto``.

``ExportContext`` is what an exporter (``registry``) sees: it names values
(graph inputs and outputs keep theirs, constants become initializers on first
use), makes ONNX nodes, and builds int64 shape tensors for target shapes that
hold symbolic dims: each symbol is read at run time with ``Shape`` from the
first value known to have it (a graph input's ``dim_param`` first), so an
exported model keeps the dynamic batch and sequence of the original.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import BackendUnavailableError, ModelError, UnsupportedError
from ..graph.ir import Graph, Node, Value
from .registry import lookup

OPSET_MIN, OPSET_MAX = 13, 21
DEFAULT_OPSET = 17          # LayerNormalization's first opset
# The oldest IR version each opset needs: older readers (ONNX Runtime) refuse newer ones.
_IR_VERSION = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def _onnx():
    try:
        import onnx
    except ImportError:
        raise BackendUnavailableError(
            "pyinfer.export needs the 'onnx' package: pip install 'pyinfer[onnx]' "
            "(or pip install onnx)") from None
    return onnx


def elem_type(dtype) -> int:
    from onnx import helper
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


class ExportContext:
    """State of one export: ``opset``, ``graph``, the ONNX nodes and initializers
    written so far, and the ONNX name of every pyinfer value."""

    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict = {}            # Value -> ONNX name
        self.used: set = set()
        self._const_cache: dict = {}     # small constants by content
        self._dim_source: dict = {}      # symbol -> (ONNX name, axis)
        self._dim_cache: dict = {}       # symbol -> name of a (1,) int64 tensor
        self._shape_cache: dict = {}     # shape tuple -> name of a 1-d int64 tensor
        self.current: Optional[Node] = None

    # ---- names -------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        base = base or "t"
        name, i = base, 0
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def _base(self, suffix: str) -> str:
        return f"{self.current.name}.{suffix}" if self.current is not None else suffix

    def name(self, value: Optional[Value]) -> str:
        """The ONNX name of a value ('' for None); a constant becomes an initializer."""
        if value is None:
            return ""
        got = self.names.get(value)
        if got is not None:
            return got
        if value.is_constant:
            got = self.const(value.data, value.name)
            self.names[value] = got
            return got
        raise ModelError(f"export: value '{value.name}' is read before it is produced (the "
                         f"graph is not in topological order)")

    def define(self, value: Value, name: str) -> None:
        self.names[value] = name
        for axis, d in enumerate(value.shape):
            if isinstance(d, str) and d not in self._dim_source:
                self._dim_source[d] = (name, axis)

    # ---- building ------------------------------------------------------------------------

    def const(self, data, base: str = "const") -> str:
        """An initializer holding ``data`` (small ones shared by content)."""
        from onnx import numpy_helper
        arr = np.ascontiguousarray(np.asarray(data))
        key = None
        if arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._const_cache:
                return self._const_cache[key]
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(arr, name))
        if key is not None:
            self._const_cache[key] = name
        return name

    def node(self, op_type: str, inputs: Sequence[str], outputs=1, *, domain: str = "",
             **attrs) -> list:
        """Append an ONNX node; ``outputs`` is a list of names or a count of fresh
        ones.  Attributes whose value is None are left out.  Returns the output names."""
        from onnx import helper
        if isinstance(outputs, int):
            outputs = [self.fresh(self._base(op_type)) for _ in range(outputs)]
        inputs = list(inputs)
        while inputs and inputs[-1] == "":
            inputs.pop()  # trailing absent optional inputs are simply left off
        attrs = {k: v for k, v in attrs.items() if v is not None}
        name = self.fresh(self._base(op_type)) if self.current is not None else self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, list(outputs), name=name,
                                           domain=domain or None, **attrs))
        return list(outputs)

    def one(self, op_type: str, inputs: Sequence[str], out: Optional[str] = None, **attrs) -> str:
        """A one-output node; ``out`` its name (fresh when None)."""
        return self.node(op_type, inputs, [out] if out else 1, **attrs)[0]

    def identity(self, x: str, out: Optional[str]) -> str:
        return x if out is None or out == x else self.one("Identity", [x], out)

    def cast(self, x: str, src, dst, out: Optional[str] = None) -> str:
        if np.dtype(src) == np.dtype(dst):
            return self.identity(x, out)
        return self.one("Cast", [x], out, to=elem_type(dst))

    def value_as(self, value: Optional[Value], dtype) -> str:
        """``value`` in ``dtype``: a constant re-encoded, anything else through Cast."""
        if value is None:
            return ""
        dtype = np.dtype(dtype)
        if value.dtype == dtype:
            return self.name(value)
        if value.is_constant:
            return self.const(value.data.astype(dtype), f"{value.name}.{dtype.name}")
        return self.cast(self.name(value), value.dtype, dtype)

    def scalar(self, x, dtype) -> str:
        return self.const(np.asarray(x, dtype=dtype), f"c_{np.dtype(dtype).name}")

    def ints(self, values, base: str = "ints") -> str:
        return self.const(np.asarray(list(values), np.int64).reshape(-1), base)

    # ---- shape tensors ---------------------------------------------------------------------

    def dim(self, sym: str) -> str:
        """A (1,) int64 tensor holding symbolic dim ``sym`` at run time."""
        got = self._dim_cache.get(sym)
        if got is not None:
            return got
        if sym not in self._dim_source:
            raise UnsupportedError(
                f"export: node '{self.current.name if self.current else '?'}' needs the "
                f"run-time value of dim '{sym}', which no graph input or earlier value has")
        src, axis = self._dim_source[sym]
        saved, self.current = self.current, None
        try:
            out = self.fresh(f"dim.{sym}")
            if self.opset >= 15:
                got = self.one("Shape", [src], out, start=axis, end=axis + 1)
            else:
                shape = self.one("Shape", [src])
                got = self.one("Gather", [shape, self.ints([axis], "axis")], out, axis=0)
        finally:
            self.current = saved
        self._dim_cache[sym] = got
        return got

    def shape_tensor(self, dims) -> str:
        """A 1-d int64 tensor of ``dims`` (ints, -1, symbolic dims)."""
        dims = tuple(d if isinstance(d, str) else int(d) for d in dims)
        got = self._shape_cache.get(dims)
        if got is not None:
            return got
        if all(isinstance(d, int) for d in dims):
            got = self.ints(dims, "shape")
        else:
            pieces, run = [], []
            for d in dims:
                if isinstance(d, str):
                    if run:
                        pieces.append(self.ints(run, "dims"))
                        run = []
                    pieces.append(self.dim(d))
                else:
                    run.append(d)
            if run:
                pieces.append(self.ints(run, "dims"))
            got = pieces[0] if len(pieces) == 1 else self.one("Concat", pieces, axis=0)
        self._shape_cache[dims] = got
        return got

    # ---- common compound forms ---------------------------------------------------------------

    def reduce(self, op_type: str, x: str, axes, keepdims: bool, out: Optional[str] = None) -> str:
        """ReduceSum/Mean/Max/Min over ``axes`` (None: all), in this opset's form."""
        axes_input = 13 if op_type == "ReduceSum" else 18
        if axes is None:
            return self.one(op_type, [x], out, keepdims=int(keepdims))
        axes = [int(a) for a in axes]
        if self.opset >= axes_input:
            return self.one(op_type, [x, self.ints(axes, "axes")], out, keepdims=int(keepdims))
        return self.one(op_type, [x], out, axes=axes, keepdims=int(keepdims))

    def activation(self, x: str, act: Optional[str], dtype, out: Optional[str] = None,
                   clip=None) -> str:
        """``act(x)`` for the epilogue activations of GEMM/CONV/SPARSE_GEMM nodes."""
        if act is None:
            return self.identity(x, out)
        simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
        if act in simple:
            return self.one(simple[act], [x], out)
        if act in ("relu6", "clip"):
            lo, hi = (0.0, 6.0) if act == "relu6" else clip
            return self.one("Clip", [x, "" if lo is None or lo == -np.inf else self.scalar(lo, dtype),
                                     "" if hi is None or hi == np.inf else self.scalar(hi, dtype)],
                            out)
        if act == "silu":
            return self.one("Mul", [x, self.one("Sigmoid", [x])], out)
        if act in ("gelu", "gelu_tanh"):
            return self.gelu(x, act == "gelu_tanh", dtype, out)
        raise UnsupportedError(f"export: activation {act!r} has no ONNX form")

    def gelu(self, x: str, tanh: bool, dtype, out: Optional[str] = None) -> str:
        if self.opset >= 20:
            return self.one("Gelu", [x], out, approximate="tanh" if tanh else "none")
        half = self.one("Mul", [x, self.scalar(0.5, dtype)])
        if tanh:   # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube = self.one("Mul", [self.one("Mul", [x, x]), x])
            inner = self.one("Add", [x, self.one("Mul", [cube, self.scalar(0.044715, dtype)])])
            t = self.one("Tanh", [self.one("Mul", [inner, self.scalar(np.sqrt(2 / np.pi), dtype)])])
        else:      # 0.5 x (1 + erf(x / sqrt 2))
            t = self.one("Erf", [self.one("Div", [x, self.scalar(np.sqrt(2.0), dtype)])])
        return self.one("Mul", [half, self.one("Add", [t, self.scalar(1.0, dtype)])], out)

    def unsupported(self, node: Node, why: str) -> UnsupportedError:
        return UnsupportedError(f"export: node '{node.name}' ({node.op.value}): {why}")


def _value_info(ctx: ExportContext, name: str, value: Value, symbols: set):
    from onnx import helper
    dims = []
    for d in value.shape:
        dims.append(int(d) if isinstance(d, int) else d if d in symbols else None)
    return helper.make_tensor_value_info(name, elem_type(value.dtype), dims)


def to_onnx(graph: Graph, opset: int = DEFAULT_OPSET, check: bool = True):
    """``graph`` as an ``onnx.ModelProto`` of ai.onnx ``opset`` (13-21).

    Symbolic input dims stay symbolic (``dim_param``).  Raises
    ``UnsupportedError`` naming the first node whose op (or form) has no ONNX
    exporter.  With ``check`` the result passes ``onnx.checker`` (else
    ``ModelError``).
    """
    onnx = _onnx()
    from onnx import helper
    if isinstance(opset, bool) or not isinstance(opset, int) or \
            not OPSET_MIN <= opset <= OPSET_MAX:
        raise UnsupportedError(f"to_onnx: argument 'opset' expected an int in "
                               f"[{OPSET_MIN}, {OPSET_MAX}], received {opset!r}")
    ctx = ExportContext(graph, opset)
    symbols = set()
    for v in graph.inputs:
        ctx.used.add(v.name)
        ctx.define(v, v.name)
        symbols.update(d for d in v.shape if isinstance(d, str))
    out_names = {}
    for v in graph.outputs:
        name = v.output_name or v.name
        if name in ctx.used and v not in graph.inputs:
            raise ModelError(f"export: graph output name '{name}' is used twice (a value "
                             f"returned twice has one name: return a copy under the other)")
        ctx.used.add(name)
        if v not in out_names and not v.is_constant and v not in graph.inputs:
            out_names[v] = name
    for node in graph.nodes:
        fn = lookup(node.op)
        if fn is None:
            raise UnsupportedError(
                f"export: node '{node.name}' ({node.op.value}): op {node.op.name} has no ONNX "
                f"exporter (export the graph before Interpreter passes rewrite it, or add one in "
                f"pyinfer/export/ops/)")
        ctx.current = node
        ins = [ctx.name(v) for v in node.inputs]
        outs = [out_names.get(v) or ctx.fresh(v.name) for v in node.outputs]
        fn(ctx, node, ins, outs)
        for v, n in zip(node.outputs, outs):
            ctx.define(v, n)
    ctx.current = None
    outputs = []
    for v in graph.outputs:
        name = v.output_name or v.name
        src = ctx.name(v)
        if src != name:
            ctx.one("Identity", [src], name)
        outputs.append(_value_info(ctx, name, v, symbols))
    inputs = [_value_info(ctx, v.name, v, symbols) for v in graph.inputs]
    # Exporters see every input's name, so constants an exporter re-encoded (a weight
    # scale broadcast per column, say) were made initializers too: keep the read ones.
    read = {n for node in ctx.nodes for n in node.input} | {o.name for o in outputs}
    g = helper.make_graph(ctx.nodes, graph.name or "pyinfer", inputs, outputs,
                          initializer=[t for t in ctx.initializers if t.name in read])
    from .. import __version__
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="pyinfer", producer_version=__version__,
                              ir_version=_IR_VERSION[opset])
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as e:
            raise ModelError(f"export: the ONNX model fails onnx.checker: "
                             f"{str(e).strip().splitlines()[0]}") from None
    return model
