"""What the converters share: float-or-host dispatch, shape tensors followed
symbolically, and reshapes whose target mixes ints and symbolic dims.

A *sym* is an object array holding, per element of an int shape tensor, an
int, a symbol name (a graph input's ``dim_param``, which ``specialize`` can
bind) or None (unknown).  ``result`` turns a computed sym into a graph value:
a constant when every element is an int, else the real node (which
``specialize`` folds per input shape) with its sym recorded beside it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...graph.ir import Op, Value

FLOAT_KINDS = "f"


def is_float(*values) -> bool:
    return all(v is None or v.dtype.kind == "f" for v in values)


def host(ctx, node, fn: str, inputs, attrs=None, sym=None) -> Value:
    """Integer/bool arithmetic: computed now when the inputs are constants, else a
    HOST_ELEMENTWISE node (NumPy on the host at run time)."""
    from ...graph.families.onnx_ops import _BOOL_RESULT, HOST_FUNCTIONS
    attrs = dict(attrs or {}, fn=fn)
    if all(v.is_constant for v in inputs):
        data = [v.data for v in inputs]
        kw = {"fmod": attrs.get("fmod", 0)} if fn == "mod" else {}
        with np.errstate(all="ignore"):
            r = np.asarray(HOST_FUNCTIONS[fn](*data, **kw))
        if fn not in _BOOL_RESULT:
            r = r.astype(np.result_type(*(d.dtype for d in (
                data[1:] if fn == "where" else data[:1] if fn == "pow" else data))))
        return ctx.const(r, name=node.output[0] or "host")
    out = ctx.graph.add(Op.HOST_ELEMENTWISE, inputs, attrs, name=node.name)
    if sym is not None:
        ctx.symbolic[out] = sym
    return out


def const_like(ctx, data, like: Value, name="c") -> Value:
    """A constant in ``like``'s dtype (ONNX constants feeding float ops)."""
    return ctx.const(np.asarray(data).astype(like.dtype), name=name)


def require_const(ctx, node, v: Optional[Value], what: str) -> Optional[np.ndarray]:
    if v is None:
        return None
    data = ctx.constant(v)
    if data is None:
        raise ctx.unsupported(node, f"input '{what}' must be a constant (an initializer or "
                                    f"computable from the model's shapes); it is computed at "
                                    f"run time")
    return data


def ints(arr) -> tuple:
    return tuple(int(i) for i in np.asarray(arr).reshape(-1))


# ---- symbolic shape tensors ------------------------------------------------------------

def known(sym) -> bool:
    return sym is not None and all(isinstance(e, (int, np.integer)) for e in sym.reshape(-1))


def result(ctx, sym, make, dtype=np.int64, name="shape"):
    """A constant if every element of ``sym`` is an int, else ``make()`` with the sym kept."""
    if sym is not None and known(sym):
        return ctx.const(np.array(sym.tolist(), dtype=dtype).reshape(sym.shape), name=name)
    v = make()
    if sym is not None and isinstance(v, Value):
        ctx.symbolic[v] = sym
    return v


def sym_of_shape(shape) -> np.ndarray:
    arr = np.empty(len(shape), dtype=object)
    for i, d in enumerate(shape):
        arr[i] = d if isinstance(d, str) else int(d)
    return arr


def bindable(ctx, d) -> bool:
    return isinstance(d, int) or (isinstance(d, str) and d in ctx.input_symbols)


def hint(ctx, sym) -> Optional[tuple]:
    """A shape hint from a 1-d sym (unknown elements as fresh symbols)."""
    if sym is None or sym.ndim != 1:
        return None
    out = []
    for i, e in enumerate(sym.tolist()):
        out.append(int(e) if isinstance(e, (int, np.integer)) else
                   (e if isinstance(e, str) else f"?{ctx.graph.node_name('dim')}"))
    return tuple(out)


def _cancel(in_shape, target):
    """-1 in ``target`` from the dims of ``in_shape`` when symbols cancel out, else None."""
    ins = list(in_shape)
    rest_syms = []
    int_in = 1
    for d in ins:
        if isinstance(d, str):
            rest_syms.append(d)
        else:
            int_in *= d
    int_out = 1
    for d in target:
        if d == -1:
            continue
        if isinstance(d, str):
            if d in rest_syms:
                rest_syms.remove(d)
            else:
                return None
        else:
            int_out *= d
    if rest_syms or int_out == 0 or int_in % int_out:
        return None
    return int_in // int_out


def reshape(ctx, node, x: Value, target) -> Value:
    """RESHAPE ``x`` to ``target`` (ints, -1 once, symbol names): a plain RESHAPE when
    every dim can be bound by ``specialize``, else a DYNAMIC_RESHAPE whose shape
    tensor is computed from ``SHAPE(x)`` at run time (symbols that are dims of x)."""
    target = [d if isinstance(d, str) else int(d) for d in target]
    if -1 in target and x.size is None:
        fill = _cancel(x.shape, target)
        if fill is not None:
            target[target.index(-1)] = fill
    if all(bindable(ctx, d) for d in target) and (-1 not in target or x.size is not None):
        return ctx.graph.add(Op.RESHAPE, [x], {"shape": tuple(target)}, name=node.name)
    # Some dims are known only at run time: build the shape tensor from x's shape.
    pieces = []
    xshape = None
    for d in target:
        if isinstance(d, int):
            pieces.append(ctx.const(np.array([d], np.int64), name="dim"))
        elif d in x.shape:
            if xshape is None:
                xshape = ctx.graph.add(Op.SHAPE, [x], {}, name=f"{node.name}_shape")
            idx = ctx.const(np.array([x.shape.index(d)], np.int64), name="axis")
            pieces.append(ctx.graph.add(Op.GATHER, [xshape, idx], {"axis": 0},
                                        name=f"{node.name}_dim"))
        else:
            raise ctx.unsupported(node, f"reshape target {tuple(target)}: dim '{d}' is known "
                                        f"only at run time and is not a dim of the input")
    shape_v = pieces[0] if len(pieces) == 1 else ctx.graph.add(
        Op.CONCAT, pieces, {"axis": 0}, name=f"{node.name}_target")
    hint_shape = tuple(d if d != -1 else f"?{ctx.graph.node_name('dim')}" for d in target)
    return ctx.graph.add(Op.DYNAMIC_RESHAPE, [x, shape_v],
                         {"allowzero": 1, "shape_hint": hint_shape}, name=node.name)


def norm_axes(ctx, node, axes, ndim) -> tuple:
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ctx.unsupported(node, f"axis {a} out of range for rank {ndim}")
        out.append(a % ndim)
    return tuple(out)


def depends_on_values(ctx, v) -> bool:
    """Does ``v`` depend on the *values* of a graph input (not only on shapes)?
    A shape operand that does makes output shapes data-dependent, which a plan
    specialised per input shape cannot express."""
    memo = ctx.__dict__.setdefault("_value_dependent", {})
    stack = [v]
    while stack:
        u = stack[-1]
        if u is None or u.is_constant:
            memo[u] = False
            stack.pop()
            continue
        if u in memo:
            stack.pop()
            continue
        p = u.producer
        if p is None:
            memo[u] = True
            stack.pop()
            continue
        if p.op is Op.SHAPE:
            memo[u] = False
            stack.pop()
            continue
        todo = [w for w in p.inputs if w is not None and w not in memo]
        if todo:
            stack.extend(todo)
            continue
        memo[u] = any(memo[w] for w in p.inputs if w is not None)
        stack.pop()
    return memo[v]


def shape_operand(ctx, node, v, what: str):
    """Refuse a shape operand computed from input values (data-dependent shapes)."""
    if v is not None and depends_on_values(ctx, v):
        raise ctx.unsupported(node, f"input '{what}' is computed from the values of a graph "
                                    f"input, so the output shape depends on data (pyinfer plans "
                                    f"per input shape; data-dependent shapes are not supported)")
