"""The graph IR: an ``Op`` enum, values, nodes and the ``Graph`` builder.

A ``Value`` is an edge: a shape (ints, or strings for symbolic dims), a dtype,
the node that produces it (None for graph inputs and constants) and, for a
constant, its data.  A ``Node`` applies one ``Op`` to input values with
attributes and produces output values.  ``Graph.add`` infers the outputs'
shapes and dtypes at once (pyinfer.graph.shapes), so an error names the node
that caused it, not some later kernel.

Front ends (``pyinfer.jit``'s tracer, the ONNX importer) build graphs through
``Graph.input``, ``Graph.constant``, ``Graph.add`` and ``Graph.output``; passes
rewrite them with ``Graph.replace_uses`` and ``Graph.remove``.
"""
from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

Dim = Union[int, str]


class Op(enum.Enum):
    # elementwise, one input
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    ABS = "abs"
    NEG = "neg"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"
    GELU = "gelu"
    GELU_TANH = "gelu_tanh"
    SILU = "silu"
    ERF = "erf"
    RECIPROCAL = "reciprocal"
    NOT = "logical_not"
    CAST = "cast"
    # elementwise, two inputs
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    POW = "pow"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    EQUAL = "equal"
    NOT_EQUAL = "not_equal"
    LESS = "less"
    LESS_EQUAL = "less_equal"
    GREATER = "greater"
    GREATER_EQUAL = "greater_equal"
    # elementwise, three inputs
    WHERE = "where"
    # reductions
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"
    ARGMAX = "argmax"
    # data movement (views where possible)
    RESHAPE = "reshape"
    TRANSPOSE = "transpose"
    CONCAT = "concatenate"
    SLICE = "slice"
    # linear algebra and normalisation
    MATMUL = "matmul"
    GEMM = "gemm"
    SOFTMAX = "softmax"
    LOG_SOFTMAX = "log_softmax"
    LAYER_NORM = "layer_norm"
    RMS_NORM = "rms_norm"
    ATTENTION = "attention"
    # made by fusion passes
    FUSED_ELEMENTWISE = "fused_elementwise"
    FUSED_REDUCTION = "fused_reduction"
    # ---- families defined through pyinfer.graph.opdefs (graph/families/*.py) ----
    # convolution (families/conv.py)
    CONV = "conv2d"
    LAYOUT = "layout"                  # NCHW <-> NCHWc reorder made by the layout pass
    # CNN ops besides convolution (families/cnn.py)
    MAX_POOL = "max_pool2d"
    AVG_POOL = "avg_pool2d"
    GLOBAL_AVG_POOL = "global_avg_pool"
    GLOBAL_MAX_POOL = "global_max_pool"
    BATCH_NORM = "batch_norm"
    PAD = "pad"
    LRN = "lrn"
    RESIZE = "resize"
    # ONNX data movement and shape computation (families/onnx_ops.py)
    GATHER = "gather"
    SPLIT = "split"
    EXPAND = "expand"
    SHAPE = "shape"
    RANGE = "range"
    CONSTANT_OF_SHAPE = "constant_of_shape"
    DYNAMIC_RESHAPE = "dynamic_reshape"    # (x, shape tensor): RESHAPE once the shape is known
    DYNAMIC_SLICE = "dynamic_slice"        # (x, starts, ends, axes, steps): SLICE once they are known
    HOST_ELEMENTWISE = "host_elementwise"  # integer/bool arithmetic of shape computations (NumPy)
    # quantized and compressed kernels (families/quant.py)
    QUANTIZE_LINEAR = "quantize_linear"
    DEQUANTIZE_LINEAR = "dequantize_linear"
    DYNAMIC_QUANTIZE_LINEAR = "dynamic_quantize_linear"
    QGEMM = "qgemm"                    # u8 x s8 -> s32 GEMM with a requantize/dequantize epilogue
    QCONV = "qconv2d"
    SPARSE_GEMM = "sparse_gemm"        # block-sparse (BSR) weights


UNARY_OPS = frozenset({Op.EXP, Op.LOG, Op.SQRT, Op.RSQRT, Op.ABS, Op.NEG, Op.TANH, Op.SIGMOID,
                       Op.RELU, Op.GELU, Op.GELU_TANH, Op.SILU, Op.ERF, Op.RECIPROCAL, Op.NOT,
                       Op.CAST})
BINARY_OPS = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAXIMUM, Op.MINIMUM})
COMPARE_OPS = frozenset({Op.EQUAL, Op.NOT_EQUAL, Op.LESS, Op.LESS_EQUAL, Op.GREATER,
                         Op.GREATER_EQUAL})
ELEMENTWISE_OPS = UNARY_OPS | BINARY_OPS | COMPARE_OPS | {Op.WHERE}
REDUCE_OPS = frozenset({Op.SUM, Op.MEAN, Op.MAX, Op.MIN})
VIEW_OPS = frozenset({Op.RESHAPE, Op.TRANSPOSE, Op.SLICE})


@dataclass(eq=False)
class Value:
    """An edge of the graph."""
    name: str
    shape: tuple
    dtype: np.dtype
    producer: Optional["Node"] = None
    data: Optional[np.ndarray] = None  # set for constants
    output_name: Optional[str] = None  # the name callers see, for graph outputs

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> Optional[int]:
        if any(not isinstance(d, int) for d in self.shape):
            return None
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> Optional[int]:
        n = self.size
        return None if n is None else n * self.dtype.itemsize

    def __repr__(self):
        shape = "x".join(map(str, self.shape)) or "scalar"
        kind = "const " if self.is_constant else ""
        return f"%{self.name}: {kind}{shape} {self.dtype}"


@dataclass(eq=False)
class Node:
    op: Op
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    name: str = ""
    # For nodes made by fusion: the original nodes' names, for explain().
    fused_from: tuple = ()

    def __repr__(self):
        ins = ", ".join("None" if v is None else f"%{v.name}" for v in self.inputs)
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        attrs = ", ".join(f"{k}={_short(v)}" for k, v in self.attrs.items())
        return f"{outs} = {self.op.value}({ins}{'; ' + attrs if attrs else ''})  # {self.name}"


def _short(v):
    if isinstance(v, np.ndarray):
        return f"array{v.shape}"
    text = repr(v)
    return text if len(text) < 60 else text[:57] + "..."


class Graph:
    """A dataflow graph in topological order, built one node at a time."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        # Why a rewrite was not done, for Interpreter.explain(): (node names, reason).
        self.notes: list[tuple] = []
        self._counter = itertools.count()
        self._names: set[str] = set()       # value names
        self._node_names: set[str] = set()

    # ---- building ---------------------------------------------------------------

    def _unique(self, base: str, taken: Optional[set] = None) -> str:
        taken = self._names if taken is None else taken
        name = base
        while name in taken:
            name = f"{base}_{next(self._counter)}"
        taken.add(name)
        return name

    def node_name(self, base: str) -> str:
        return self._unique(base, self._node_names)

    def input(self, name: str, shape: Sequence[Dim], dtype) -> Value:
        if name in self._names:
            raise ValueError(f"graph input name {name!r} is used twice")
        value = Value(self._unique(name), tuple(shape), np.dtype(dtype))
        self.inputs.append(value)
        return value

    def constant(self, data, name: str = "const") -> Value:
        arr = np.array(data, copy=True, order="C")  # 0-d stays 0-d (a weak scalar)
        arr.setflags(write=False)
        return Value(self._unique(name), arr.shape, arr.dtype, data=arr)

    def add(self, op: Op, inputs: Sequence[Value], attrs: Optional[dict] = None,
            name: Optional[str] = None, n_outputs: int = 1) -> Union[Value, tuple]:
        """Append a node; returns its output value (or a tuple of them)."""
        from .shapes import infer  # cycle: shapes needs Node
        node = Node(op, list(inputs), [], dict(attrs or {}),
                    self.node_name(name or op.value))
        for i, (shape, dtype) in enumerate(infer(node)):
            out_name = self._unique(node.name if n_outputs == 1 else f"{node.name}_{i}")
            node.outputs.append(Value(out_name, tuple(shape), np.dtype(dtype), producer=node))
        self.nodes.append(node)
        return node.outputs[0] if len(node.outputs) == 1 else tuple(node.outputs)

    def output(self, value: Value, name: Optional[str] = None) -> Value:
        self.outputs.append(value)
        value.output_name = name or value.output_name or value.name
        return value

    # ---- reading and rewriting --------------------------------------------------------

    def consumers(self) -> dict:
        """value -> list of nodes reading it."""
        users: dict = {}
        for node in self.nodes:
            for v in node.inputs:
                users.setdefault(v, []).append(node)
        return users

    def replace_uses(self, old: Value, new: Value) -> None:
        for node in self.nodes:
            node.inputs = [new if v is old else v for v in node.inputs]
        if old in self.outputs:
            self.outputs = [new if v is old else v for v in self.outputs]
            new.output_name = old.output_name

    def remove(self, nodes) -> None:
        doomed = set(map(id, nodes))
        self.nodes = [n for n in self.nodes if id(n) not in doomed]

    def insert_before(self, anchor: Node, node: Node) -> None:
        self.nodes.insert(self.nodes.index(anchor), node)

    def new_value_name(self, base: str) -> str:
        return self._unique(base)

    def copy(self) -> "Graph":
        """A structural copy (constants' data shared, read-only)."""
        g = Graph(self.name)
        g._names = set(self._names)
        g._node_names = set(self._node_names)
        g._counter = itertools.count(next(self._counter))
        vmap = {}

        def cp(v):
            if v is None:
                return None
            if v not in vmap:
                nv = Value(v.name, v.shape, v.dtype, None, v.data, v.output_name)
                vmap[v] = nv
            return vmap[v]

        g.inputs = [cp(v) for v in self.inputs]
        for n in self.nodes:
            nn = Node(n.op, [cp(v) for v in n.inputs], [], dict(n.attrs), n.name, n.fused_from)
            for v in n.outputs:
                nv = cp(v)
                nv.producer = nn
                nn.outputs.append(nv)
            g.nodes.append(nn)
        g.outputs = [cp(v) for v in self.outputs]
        g.notes = list(self.notes)
        return g

    def __repr__(self):
        lines = [f"graph {self.name}(" + ", ".join(map(repr, self.inputs)) + ")"]
        lines += [f"  {n!r}" for n in self.nodes]
        lines.append("  return " + ", ".join(f"%{v.name}" for v in self.outputs))
        return "\n".join(lines)
