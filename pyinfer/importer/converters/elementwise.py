"""Elementwise ONNX operators: unary and binary arithmetic, comparisons, logic,
Where, Clip, variadic Sum/Max/Min, Cast, Identity/Dropout, Constant, Erf, Gelu.

Float tensors map onto the core elementwise ops, which the pattern and fusion
passes know (GELU's Erf form, LayerNorm's Sub/Pow/Sqrt/Div chain).  Integer and
bool tensors (shape computations, masks built from ids) go to
``host`` (folded now when constant, else a NumPy step), and their values are
followed symbolically where they are shape tensors.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Op
from ..convert import DTYPES, converter
from ._common import const_like, host, is_float, result

# ---- symbolic arithmetic on shape tensors ------------------------------------------------


def _is_int(e):
    return isinstance(e, (int, np.integer)) and not isinstance(e, bool)


def _sym_apply(fn, *syms):
    """Elementwise over object arrays; None (unknown) where ``fn`` returns None."""
    arrs = np.broadcast_arrays(*syms)
    out = np.empty(arrs[0].shape, dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(a[idx] for a in arrs))
    return out


def _sym_arith(name):
    def f(a, b):
        if _is_int(a) and _is_int(b):
            a, b = int(a), int(b)
            if name == "add":
                return a + b
            if name == "sub":
                return a - b
            if name == "mul":
                return a * b
            if name == "div":
                return None if b == 0 else int(np.trunc(a / b)) if abs(a) < 2**52 else None
            return None
        # a symbol survives its identities only: x*1, x+0, x-0, x/1
        if isinstance(a, str) and _is_int(b):
            if (name in ("mul", "div") and b == 1) or (name in ("add", "sub") and b == 0):
                return a
        if isinstance(b, str) and _is_int(a):
            if (name == "mul" and a == 1) or (name == "add" and a == 0):
                return b
        return None
    return f


def _sym_compare(name):
    def f(a, b):
        if _is_int(a) and _is_int(b):
            return bool({"equal": a == b, "less": a < b, "greater": a > b,
                         "less_equal": a <= b, "greater_equal": a >= b,
                         "not_equal": a != b}[name])
        # a dim is never negative: comparing it with a negative constant is known
        if isinstance(a, str) and _is_int(b) and b < 0:
            return {"equal": False, "not_equal": True, "greater": True, "greater_equal": True,
                    "less": False, "less_equal": False}[name]
        if isinstance(b, str) and _is_int(a) and a < 0:
            return {"equal": False, "not_equal": True, "greater": False,
                    "greater_equal": False, "less": True, "less_equal": True}[name]
        if isinstance(a, str) and a == b:
            return name in ("equal", "less_equal", "greater_equal")
        return None
    return f


def _bool_sym_result(ctx, sym, make):
    if sym is not None and all(isinstance(e, (bool, np.bool_)) for e in sym.reshape(-1)):
        return ctx.const(np.array(sym.tolist(), dtype=bool).reshape(sym.shape), name="cond")
    v = make()
    if sym is not None:
        ctx.symbolic[v] = sym
    return v


# ---- binary --------------------------------------------------------------------------------

_ARITH = {"Add": (Op.ADD, "add"), "Sub": (Op.SUB, "sub"), "Mul": (Op.MUL, "mul"),
          "Div": (Op.DIV, "div")}


def _arith(op, fn):
    def convert(ctx, node):
        a, b = ctx.inputs(node)
        if is_float(a, b):
            return [ctx.graph.add(op, [a, b], name=node.name)]
        sa, sb = ctx.sym(a), ctx.sym(b)
        sym = _sym_apply(_sym_arith(fn), sa, sb) if sa is not None and sb is not None else None
        return [result(ctx, sym, lambda: host(ctx, node, fn, [a, b]),
                       dtype=np.result_type(a.dtype, b.dtype), name=node.output[0])]
    return convert


for _name, (_op, _fn) in _ARITH.items():
    converter(_name)(_arith(_op, _fn))

_COMPARE = {"Equal": (Op.EQUAL, "equal"), "Less": (Op.LESS, "less"),
            "Greater": (Op.GREATER, "greater"), "LessOrEqual": (Op.LESS_EQUAL, "less_equal"),
            "GreaterOrEqual": (Op.GREATER_EQUAL, "greater_equal")}


def _compare(op, fn):
    def convert(ctx, node):
        a, b = ctx.inputs(node)
        if is_float(a, b):
            return [ctx.graph.add(op, [a, b], name=node.name)]
        sa, sb = ctx.sym(a), ctx.sym(b)
        sym = _sym_apply(_sym_compare(fn), sa, sb) if sa is not None and sb is not None \
            else None
        return [_bool_sym_result(ctx, sym, lambda: host(ctx, node, fn, [a, b]))]
    return convert


for _name, (_op, _fn) in _COMPARE.items():
    converter(_name)(_compare(_op, _fn))


@converter("Pow")
def _pow(ctx, node):
    x, y = ctx.inputs(node)
    if is_float(x) and (y.is_constant or y.dtype == x.dtype):
        if y.dtype != x.dtype:
            y = const_like(ctx, y.data, x, name=f"{node.name}_exponent")
        return [ctx.graph.add(Op.POW, [x, y], name=node.name)]
    return [host(ctx, node, "pow", [x, y])]


@converter("Mod")
def _mod(ctx, node):
    a, b = ctx.inputs(node)
    return [host(ctx, node, "mod", [a, b], {"fmod": ctx.attr(node, "fmod", 0)})]


for _name, _fn in (("And", "logical_and"), ("Or", "logical_or"), ("Xor", "logical_xor")):
    converter(_name)(lambda ctx, node, fn=_fn: [host(ctx, node, fn, ctx.inputs(node))])


@converter("Not")
def _not(ctx, node):
    (x,) = ctx.inputs(node)
    if x.is_constant:
        return [host(ctx, node, "logical_not", [x])]
    return [ctx.graph.add(Op.NOT, [x], name=node.name)]


@converter("Where")
def _where(ctx, node):
    c, a, b = ctx.inputs(node)
    if is_float(a, b) and not (c.is_constant and a.is_constant and b.is_constant):
        return [ctx.graph.add(Op.WHERE, [c, a, b], name=node.name)]
    sc, sa, sb = ctx.sym(c), ctx.sym(a), ctx.sym(b)
    if sc is not None and sa is not None and sb is not None:
        sym = _sym_apply(lambda k, x, y: None if not isinstance(k, (bool, np.bool_))
                         else (x if k else y), sc, sa, sb)
        return [result(ctx, sym, lambda: host(ctx, node, "where", [c, a, b]),
                       dtype=a.dtype, name=node.output[0])]
    return [host(ctx, node, "where", [c, a, b])]


# ---- unary ----------------------------------------------------------------------------------

_UNARY = {"Relu": Op.RELU, "Sigmoid": Op.SIGMOID, "Tanh": Op.TANH, "Erf": Op.ERF,
          "Sqrt": Op.SQRT, "Reciprocal": Op.RECIPROCAL, "Neg": Op.NEG, "Exp": Op.EXP,
          "Log": Op.LOG, "Abs": Op.ABS}
_HOST_UNARY = {"Neg": "neg", "Abs": "abs"}


def _unary(op, onnx_name):
    def convert(ctx, node):
        (x,) = ctx.inputs(node)
        if not is_float(x) and onnx_name in _HOST_UNARY:
            return [host(ctx, node, _HOST_UNARY[onnx_name], [x])]
        if not is_float(x) and onnx_name == "Relu":
            return [host(ctx, node, "maximum", [x, ctx.const(np.zeros((), x.dtype))])]
        return [ctx.graph.add(op, [x], name=node.name)]
    return convert


for _name, _op in _UNARY.items():
    converter(_name)(_unary(_op, _name))


@converter("Gelu", opsets=(20, 21))
def _gelu(ctx, node):
    (x,) = ctx.inputs(node)
    approx = ctx.attr(node, "approximate", "none")
    if approx not in ("none", "tanh"):
        raise ctx.unsupported(node, f"attribute 'approximate' = {approx!r}")
    return [ctx.graph.add(Op.GELU if approx == "none" else Op.GELU_TANH, [x], name=node.name)]


@converter("Clip")
def _clip(ctx, node):
    x = ctx.input(node, 0)
    lo, hi = ctx.input(node, 1), ctx.input(node, 2)
    if ctx.opset < 11:  # pragma: no cover  (opsets start at 11)
        raise ctx.unsupported(node, "Clip before opset 11")
    if not is_float(x):
        out = x
        if lo is not None:
            out = host(ctx, node, "maximum", [out, lo])
        if hi is not None:
            out = host(ctx, node, "minimum", [out, hi])
        return [out]
    out = x
    for bound, op in ((lo, Op.MAXIMUM), (hi, Op.MINIMUM)):
        if bound is None:
            continue
        if bound.is_constant and bound.dtype != x.dtype:
            bound = const_like(ctx, bound.data, x)
        out = ctx.graph.add(op, [out, bound], name=node.name)
    return [out]


def _variadic(op, fn):
    def convert(ctx, node):
        xs = [v for v in ctx.inputs(node) if v is not None]
        if len(xs) == 1:
            return [xs[0]]
        out = xs[0]
        for v in xs[1:]:
            out = ctx.graph.add(op, [out, v], name=node.name) if is_float(out, v) else \
                host(ctx, node, fn, [out, v])
        return [out]
    return convert


converter("Sum")(_variadic(Op.ADD, "add"))
converter("Max")(_variadic(Op.MAXIMUM, "maximum"))
converter("Min")(_variadic(Op.MINIMUM, "minimum"))


# ---- casts, identities, constants -------------------------------------------------------------

@converter("Cast", opsets=(11, 28))  # 19-28 added float8/float4 and their rounding only
def _cast(ctx, node):
    from onnx import helper
    (x,) = ctx.inputs(node)
    to = ctx.attr(node, "to")
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(to))
    except Exception:
        raise ctx.unsupported(node, f"cast to element type {to}") from None
    if dt not in DTYPES or x.dtype not in DTYPES:
        raise ctx.unsupported(node, f"cast from {x.dtype} to {dt}")
    if x.is_constant:
        with np.errstate(all="ignore"):
            return [ctx.const(x.data.astype(dt), name=node.output[0])]
    sym = ctx.sym(x)
    out = ctx.graph.add(Op.CAST, [x], {"dtype": dt}, name=node.name)
    if sym is not None and dt.kind in "iu":
        ctx.symbolic[out] = sym
    return [out]


@converter("Identity")
def _identity(ctx, node):
    return [ctx.input(node, 0)]


@converter("Dropout")
def _dropout(ctx, node):
    x = ctx.input(node, 0)
    training = ctx.input(node, 2)
    if training is not None:
        t = ctx.constant(training)
        if t is None or bool(np.asarray(t).reshape(-1)[0]):
            raise ctx.unsupported(node, "training mode (inference only)")
    outs = [x]
    if len(node.output) > 1 and node.output[1]:
        # inference: the mask is all true
        if any(isinstance(d, str) for d in x.shape):
            raise ctx.unsupported(node, "the mask output of a symbolic-shape input")
        outs.append(ctx.const(np.ones(x.shape, bool), name=node.output[1]))
    return outs


@converter("Constant")
def _constant(ctx, node):
    for a in node.attribute:
        name = a.name
        if name == "value":
            value = ctx.attr(node, "value")
        elif name == "value_float":
            value = np.array(ctx.attr(node, name), np.float32)
        elif name == "value_floats":
            value = np.array(ctx.attr(node, name), np.float32)
        elif name == "value_int":
            value = np.array(ctx.attr(node, name), np.int64)
        elif name == "value_ints":
            value = np.array(ctx.attr(node, name), np.int64)
        else:
            raise ctx.unsupported(node, f"attribute '{name}'")
        value = np.asarray(value)
        if value.dtype not in DTYPES:
            raise ctx.unsupported(node, f"constant of element type {value.dtype}")
        return [ctx.const(value, name=node.output[0])]
    raise ctx.unsupported(node, "a Constant without a value")
