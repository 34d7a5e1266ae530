"""Elementwise ops: unary, binary, comparisons, where, cast, and the host
(integer/bool) arithmetic of shape computations.

pyinfer follows NumPy's promotion with 0-d constants weak (``x * 0.5`` stays
float32); ONNX wants both operands of one type, so operands are brought to
the node's compute dtype (a constant re-encoded, anything else cast).
``emit`` is shared with the fused-program expansion (``fused.py``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...graph.ir import Op
from ..registry import exporter

# pyinfer op value -> ONNX op type, for ops that map one to one.
UNARY = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "neg": "Neg", "tanh": "Tanh",
         "sigmoid": "Sigmoid", "relu": "Relu", "erf": "Erf", "reciprocal": "Reciprocal",
         "logical_not": "Not"}
BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
          "maximum": "Max", "minimum": "Min"}
COMPARE = {"equal": "Equal", "less": "Less", "less_equal": "LessOrEqual",
           "greater": "Greater", "greater_equal": "GreaterOrEqual"}


def emit(ctx, opname: str, args: list, dtype, out: Optional[str] = None) -> str:
    """ONNX nodes computing elementwise ``opname`` (an ``Op.value``) on ONNX names
    ``args`` already in their operand dtypes; ``dtype``: the float compute dtype."""
    if opname in UNARY:
        return ctx.one(UNARY[opname], args, out)
    if opname in BINARY:
        return ctx.one(BINARY[opname], args, out)
    if opname in COMPARE:
        return ctx.one(COMPARE[opname], args, out)
    if opname == "not_equal":
        return ctx.one("Not", [ctx.one("Equal", args)], out)
    if opname == "where":
        return ctx.one("Where", args, out)
    if opname == "rsqrt":
        return ctx.one("Reciprocal", [ctx.one("Sqrt", args)], out)
    if opname in ("gelu", "gelu_tanh", "silu"):
        return ctx.activation(args[0], opname, dtype, out)
    raise KeyError(opname)


def compute_dtype(node) -> np.dtype:
    """The dtype pyinfer computes a float elementwise node in (0-d constants weak)."""
    vals = [v for v in node.inputs if v is not None and v.dtype.kind == "f"]
    strong = [v.dtype for v in vals if not (v.is_constant and v.ndim == 0)]
    return np.result_type(*(strong or [v.dtype for v in vals] or [np.float32]))


_UNARY_OPS = [Op(k) for k in UNARY] + [Op.RSQRT, Op.GELU, Op.GELU_TANH, Op.SILU]


@exporter(*_UNARY_OPS)
def _unary(ctx, node, ins, outs):
    x = node.inputs[0]
    dt = node.outputs[0].dtype
    arg = ins[0] if node.op is Op.NOT else ctx.value_as(x, dt)
    emit(ctx, node.op.value, [arg], dt, outs[0])


@exporter(*[Op(k) for k in BINARY])
def _binary(ctx, node, ins, outs):
    dt = node.outputs[0].dtype
    emit(ctx, node.op.value, [ctx.value_as(v, dt) for v in node.inputs], dt, outs[0])


@exporter(*[Op(k) for k in COMPARE], Op.NOT_EQUAL)
def _compare(ctx, node, ins, outs):
    dt = compute_dtype(node)
    emit(ctx, node.op.value, [ctx.value_as(v, dt) for v in node.inputs], dt, outs[0])


@exporter(Op.WHERE)
def _where(ctx, node, ins, outs):
    dt = node.outputs[0].dtype
    c, a, b = node.inputs
    ctx.one("Where", [ins[0], ctx.value_as(a, dt), ctx.value_as(b, dt)], outs[0])


@exporter(Op.CAST)
def _cast(ctx, node, ins, outs):
    ctx.cast(ins[0], node.inputs[0].dtype, node.outputs[0].dtype, outs[0])


# ---- HOST_ELEMENTWISE: integer/bool arithmetic (NumPy semantics, ONNX's integer division) --

_HOST = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
         "maximum": "Max", "minimum": "Min", "neg": "Neg", "abs": "Abs", "sign": "Sign",
         "equal": "Equal", "less": "Less", "less_equal": "LessOrEqual", "greater": "Greater",
         "greater_equal": "GreaterOrEqual", "logical_and": "And", "logical_or": "Or",
         "logical_xor": "Xor", "logical_not": "Not"}
_HOST_COMPARE = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}


@exporter(Op.HOST_ELEMENTWISE)
def _host(ctx, node, ins, outs):
    fn = node.attrs["fn"]
    out_dt = node.outputs[0].dtype
    if fn == "where":
        c, a, b = node.inputs
        ctx.one("Where", [ins[0], ctx.value_as(a, out_dt), ctx.value_as(b, out_dt)], outs[0])
        return
    if fn in _HOST_COMPARE:
        dt = np.result_type(*(v.dtype for v in node.inputs))
    elif fn.startswith("logical_"):
        dt = np.dtype(np.bool_)
    elif fn == "pow":
        ctx.one("Pow", ins, outs[0])     # the base's type, any exponent type
        return
    else:
        dt = out_dt
    args = [ctx.value_as(v, dt) for v in node.inputs]
    if fn == "not_equal":
        ctx.one("Not", [ctx.one("Equal", args)], outs[0])
    elif fn == "mod":
        ctx.one("Mod", args, outs[0], fmod=int(node.attrs.get("fmod", 0)))
    elif fn in _HOST:
        ctx.one(_HOST[fn], args, outs[0])
    else:
        raise ctx.unsupported(node, f"host function {fn!r} has no ONNX form")
