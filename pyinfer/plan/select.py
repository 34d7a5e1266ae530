"""Kernel selection: turn each node of an optimized graph into a ``Step``.

A step names the function to call, where each argument comes from (a graph
value or a constant prepared at plan time) and the static keyword arguments.
Registry ops go through ``pyinfer.registry.select`` on arrays of the real
shapes (heuristics: each kernel's ``supports`` and ``priority``); with
``PYINFER_TUNE=1`` every supporting backend is timed once per (op, shapes,
dtypes, attrs) and the winner kept in a tuning cache in the user cache dir.
Ops no backend registers (views, casts, compares, concatenate) run on NumPy
directly, and fused nodes on generated kernels.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .. import registry
from ..errors import UnsupportedError
from ..graph import opdefs
from ..graph.ir import BINARY_OPS, COMPARE_OPS, Node, Op, Value

REGISTRY_UNARY = {Op.EXP, Op.LOG, Op.SQRT, Op.RSQRT, Op.ABS, Op.NEG, Op.TANH, Op.SIGMOID, Op.RELU,
                  Op.GELU, Op.GELU_TANH, Op.SILU, Op.ERF}
# Kernels that may write their output over an input that is exactly the same array.
IN_PLACE_OK = REGISTRY_UNARY | BINARY_OPS | {Op.SOFTMAX, Op.LOG_SOFTMAX, Op.LAYER_NORM,
                                              Op.RMS_NORM, Op.FUSED_ELEMENTWISE}
VIEW_KINDS = {Op.RESHAPE, Op.TRANSPOSE, Op.SLICE}


@dataclass(eq=False)
class Step:
    node: Node
    fn: Callable
    args: list              # Value (read from the environment) or a plan-time object
    kwargs: dict = field(default_factory=dict)
    backend: str = "numpy"
    kernel: str = ""        # human-readable kernel name for explain/profile
    is_view: bool = False   # produces a view, launches nothing
    out_mode: str = "kw"    # "kw": fn(*args, out=o); "list": fn(args, outs, **kwargs); "return": o = fn(*args)
    in_place_ok: bool = False
    flops: int = 0
    # Temporaries the step needs while it runs: the planner gives each a slot in
    # the arena (alive for this step only) and passes them as kwargs["scratch"].
    scratch: tuple = ()


# ---- host (NumPy) implementations for ops no backend registers --------------------

_COMPARE = {Op.EQUAL: np.equal, Op.NOT_EQUAL: np.not_equal, Op.LESS: np.less,
            Op.LESS_EQUAL: np.less_equal, Op.GREATER: np.greater, Op.GREATER_EQUAL: np.greater_equal}


def _host_binary(ufunc):
    def fn(a, b, *, out):
        ufunc(a, b, out=out)
    return fn


def _host_reciprocal(x, *, out):
    np.divide(1.0, x, out=out)


def _host_not(x, *, out):
    np.logical_not(x, out=out)


def _host_cast(x, *, out):
    np.copyto(out, x, casting="unsafe")


def _host_concat(*xs, axis, out):
    np.concatenate(xs, axis=axis, out=out)


def _reshape(x, *, shape):
    return x.reshape(shape)


def _reshapes_as_view(x, shape) -> bool:
    return x.size == 0 or np.shares_memory(x.reshape(shape), x)


def _reshape_copy(x, *, shape, out=None):
    if out is None:             # a plan-time sample
        return np.reshape(x, shape)
    np.copyto(out.reshape(x.shape), x)


def _transpose(x, *, perm):
    return x.transpose(perm)


def _slice(x, *, index):
    return x[index]


# ---- tuning cache ----------------------------------------------------------------

_TUNE_LOCK = threading.Lock()


def _cache_dir() -> str:
    return os.environ.get("PYINFER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyinfer")


def _tuning_path() -> str:
    return os.path.join(_cache_dir(), "tuning.json")


def _tune_key(op, args, attrs) -> str:
    parts = [op]
    for a in args:
        if isinstance(a, np.ndarray):
            parts.append(f"{a.dtype.str}{a.shape}{a.strides}")
        else:
            parts.append(repr(a))
    parts.append(repr(sorted(attrs.items())))
    return "|".join(parts)


def _load_tuning() -> dict:
    try:
        with open(_tuning_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _save_tuning(entry_key: str, backend: str) -> None:
    with _TUNE_LOCK:
        table = _load_tuning()
        table[entry_key] = backend
        os.makedirs(_cache_dir(), exist_ok=True)
        tmp = _tuning_path() + f".{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(table, f, indent=0, sort_keys=True)
        os.replace(tmp, _tuning_path())


def _measure(kernel, args, attrs, out, repeat=5) -> float:
    kernel.fn(*args, out=out, **attrs)  # warm-up (and JIT)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        kernel.fn(*args, out=out, **attrs)
        best = min(best, time.perf_counter() - t)
    return best


def choose(op: str, backend: Optional[str], args: tuple, attrs: dict, out, notes: list,
           node_name: str) -> registry.Kernel:
    """The kernel for one registry op on these (plan-time, real-shaped) arrays."""
    if backend not in (None, "auto"):
        try:
            return registry.select(op, backend, *args, out=out, **attrs)
        except UnsupportedError as e:
            notes.append(((node_name,), f"backend '{backend}' not used: {e}; chose automatically"))
    if os.environ.get("PYINFER_TUNE") == "1":
        key = _tune_key(op, args, attrs)
        table = _load_tuning()
        kernels = registry.kernels(op)
        if key in table and table[key] in kernels and kernels[table[key]].why_not(
                *args, out=out, **attrs) is None:
            return kernels[table[key]]
        candidates = [k for k in kernels.values()
                      if k.backend != "cupy" and k.why_not(*args, out=out, **attrs) is None]
        if candidates:
            best = min(candidates, key=lambda k: _measure(k, args, attrs, out))
            _save_tuning(key, best.backend)
            return best
    return registry.select(op, None, *args, out=out, **attrs)


# ---- lowering ----------------------------------------------------------------------

def lower(node: Node, backend: Optional[str], sample: Callable[[Value], Any], notes: list,
          fused_compiler: Optional[Callable] = None) -> Step:
    """Make the step for ``node``.  ``sample(value)`` gives a plan-time array of
    the value's real shape, dtype and layout (for supports() and tuning)."""
    op, at = node.op, node.attrs
    out_v = node.outputs[0]
    dtype = out_v.dtype

    def const_as(v: Value, dt=dtype):
        """A constant input cast once, at plan time, to the compute dtype."""
        if v is not None and v.is_constant and v.data.dtype != dt and v.data.dtype.kind == "f":
            return np.ascontiguousarray(v.data.astype(dt))
        return v

    def registry_step(opname, args, attrs, in_place=False, flops=0):
        sample_args = tuple(sample(a) if isinstance(a, (Value,) + DERIVED_REFS) else a
                            for a in args)
        kernel = choose(opname, backend, sample_args, attrs, sample(out_v), notes, node.name)
        return Step(node, kernel.fn, list(args), dict(attrs), kernel.backend,
                    f"{kernel.backend}.{opname}", in_place_ok=in_place, flops=flops)

    d = opdefs.get(op)
    if d is not None:
        step = d.lower(node, LowerContext(backend, sample, notes, registry_step)) \
            if d.lower is not None else None
        return step if step is not None else reference_step(node)
    if op is Op.RESHAPE and not _reshapes_as_view(sample(node.inputs[0]), at.get("shape")):
        # A reshape of a strided view (transpose -> reshape) cannot be a view: copy.
        return Step(node, _reshape_copy, [node.inputs[0]], {"shape": at.get("shape")},
                    "numpy", "numpy.reshape_copy")
    if op in VIEW_KINDS:
        fn, kw = {Op.RESHAPE: (_reshape, {"shape": at.get("shape")}),
                  Op.TRANSPOSE: (_transpose, {"perm": at.get("perm")}),
                  Op.SLICE: (_slice, {"index": at.get("index")})}[op]
        return Step(node, fn, [node.inputs[0]], kw, "view", op.value, is_view=True,
                    out_mode="return")
    if op in REGISTRY_UNARY:
        return registry_step(op.value, [node.inputs[0]], {}, in_place=True)
    if op in BINARY_OPS:
        return registry_step(op.value, [const_as(v) for v in node.inputs], {}, in_place=True)
    if op is Op.WHERE:
        c, a, b = node.inputs
        return registry_step("where", [c, const_as(a), const_as(b)], {})
    if op in (Op.SUM, Op.MEAN, Op.MAX, Op.MIN, Op.ARGMAX):
        return registry_step(op.value, [node.inputs[0]],
                             {"axis": at["axis"], "keepdims": at["keepdims"]})
    if op in (Op.SOFTMAX, Op.LOG_SOFTMAX):
        return registry_step(op.value, [node.inputs[0]], {"axis": at["axis"]}, in_place=True)
    if op in (Op.LAYER_NORM, Op.RMS_NORM):
        x = node.inputs[0]
        norm_shape = x.shape[at["axis"]:]
        n_params = 2 if op is Op.LAYER_NORM else 1
        params = (list(node.inputs[1:]) + [None] * n_params)[:n_params]
        if all(p is None or p.is_constant or (p.shape == norm_shape and p.dtype == dtype)
               for p in params):
            params = [np.ascontiguousarray(np.broadcast_to(p.data.astype(dtype), norm_shape))
                      if p is not None and p.is_constant else p for p in params]
            return registry_step(op.value, [x] + params, {"axis": at["axis"], "eps": at["eps"]},
                                 in_place=True)
        # Parameters computed at run time in another shape: the eager op broadcasts them.
        from .. import ops as eager
        return Step(node, getattr(eager, op.value), [x] + params,
                    {"axis": at["axis"], "eps": at["eps"]}, "auto", f"ops.{op.value}")
    if op in (Op.MATMUL, Op.GEMM):
        return _lower_linear(node, registry_step, const_as)
    if op in COMPARE_OPS:
        return Step(node, _host_binary(_COMPARE[op]), list(node.inputs), {}, "numpy",
                    f"numpy.{op.value}")
    if op is Op.RECIPROCAL:
        return Step(node, _host_reciprocal, list(node.inputs), {}, "numpy", "numpy.reciprocal",
                    in_place_ok=True)
    if op is Op.NOT:
        return Step(node, _host_not, list(node.inputs), {}, "numpy", "numpy.logical_not")
    if op is Op.CAST:
        return Step(node, _host_cast, list(node.inputs), {}, "numpy", "numpy.cast")
    if op is Op.CONCAT:
        return Step(node, _host_concat, list(node.inputs), {"axis": at["axis"]}, "numpy",
                    "numpy.concatenate")
    if op is Op.ATTENTION:
        return _lower_attention(node, backend, sample, notes)
    if op in (Op.FUSED_ELEMENTWISE, Op.FUSED_REDUCTION):
        if fused_compiler is None:
            raise UnsupportedError(f"node '{node.name}': no compiler for fused kernels")
        return fused_compiler(node, sample)
    raise UnsupportedError(f"node '{node.name}': the planner has no kernel for op '{op.value}'")


@dataclass
class LowerContext:
    """What an op family's ``lower`` gets (pyinfer.graph.opdefs)."""
    backend: Optional[str]
    sample: Callable
    notes: list
    registry_step: Callable


def reference_step(node: Node) -> Step:
    """Run a node's NumPy reference on the host (ops without a fast kernel yet)."""
    from ..graph.reference import eval_node

    def run(args, outs):
        for o, r in zip(outs, eval_node(node, list(args))):
            np.copyto(o, r, casting="unsafe")
    return Step(node, run, list(node.inputs), {}, "numpy", f"reference.{node.op.value}",
                out_mode="list")


def _lower_linear(node, registry_step, const_as):
    """2-d MATMUL and GEMM go straight to the gemm kernel (with transposes as
    views and the epilogue operands prepared at plan time); batched MATMUL
    through the eager op, which handles broadcasting of the batch dims."""
    at = node.attrs
    out_v = node.outputs[0]
    if node.op is Op.MATMUL:
        a, b = node.inputs
        if a.ndim == 2 and b.ndim == 2:
            m, k = a.shape
            n = b.shape[1]
            return _prepack(registry_step("gemm", [const_as(a), const_as(b), None, None],
                                          {"alpha": 1.0, "activation": None},
                                          flops=2 * m * n * k), m)
        from ..ops import matmul as eager_matmul
        kdim = a.shape[-1]
        return Step(node, eager_matmul, [const_as(a), const_as(b)], {}, "auto",
                    "ops.matmul", flops=2 * int(np.prod(out_v.shape)) * kdim)
    a, b = node.inputs[:2]
    bias, res = (list(node.inputs[2:]) + [None, None])[:2]
    a, b = const_as(a), const_as(b)
    m, n = out_v.shape
    dt = out_v.dtype
    if at.get("trans_a"):
        a = _TransposedRef(a)
    if at.get("trans_b"):
        b = _TransposedRef(b)
    bias_arg = res_arg = None
    if bias is not None:
        if bias.is_constant and (bias.ndim < 2 or bias.shape[0] == 1):
            bias_arg = np.ascontiguousarray(np.broadcast_to(
                bias.data.astype(dt).reshape(-1), (n,)))
        elif bias.is_constant:
            res_arg = np.broadcast_to(bias.data.astype(dt), (m, n))
        elif bias.shape == (n,):
            bias_arg = bias
        else:
            res_arg = _BroadcastRef(bias, (m, n))
    if res is not None:
        if res_arg is not None:
            raise UnsupportedError(f"node '{node.name}': a 2-d bias and a residual together")
        res_arg = np.broadcast_to(res.data.astype(dt), (m, n)) if res.is_constant else \
            (res if res.shape == (m, n) else _BroadcastRef(res, (m, n)))
    kdim = node.inputs[0].shape[0 if at.get("trans_a") else 1]
    return _prepack(registry_step("gemm", [a, b, bias_arg, res_arg],
                                  {"alpha": float(at.get("alpha", 1.0)),
                                   "activation": at.get("activation")},
                                  flops=2 * m * n * kdim), m)


def _constant_data(arg) -> Optional[np.ndarray]:
    """The plan-time array of a constant argument (a constant value, an array
    cast at plan time, or the transpose of either), else None."""
    if isinstance(arg, _TransposedRef):
        inner = _constant_data(arg.value)
        return None if inner is None else inner.T
    if isinstance(arg, np.ndarray):
        return arg
    if isinstance(arg, Value) and arg.is_constant:
        return arg.data
    return None


def _prepack(step: Step, m: int) -> Step:
    """A c gemm step whose B is a constant: pack B once, now, and run the
    packed-B kernel, which then packs only A per run and splits the work
    across threads without a barrier."""
    if step.backend != "c":
        return step
    b = _constant_data(step.args[1])
    if b is None or b.ndim != 2 or b.dtype != step.node.outputs[0].dtype:
        return step
    from ..backends import c_gemm
    step.fn = c_gemm.gemm_packed
    step.args[1] = c_gemm.pack_b(b, m)
    step.kernel = "c.gemm[packed B]"
    return step


@dataclass(frozen=True, eq=False)
class _TransposedRef:
    """An argument that is the transpose (a view) of a value."""
    value: Value

    def resolve(self, arr):
        return arr.T


@dataclass(frozen=True, eq=False)
class _BroadcastRef:
    value: Value
    shape: tuple

    def resolve(self, arr):
        return np.broadcast_to(arr, self.shape)


DERIVED_REFS = (_TransposedRef, _BroadcastRef)


def _lower_attention(node, backend, sample, notes):
    """One call of the fused C kernel (``c.attention``), its sizes and strides
    prepared here: q, k, v are read through their strides (transposed views of
    the projections cost nothing) and the mask broadcast by zero strides.
    What it cannot run (inputs of another dtype than the result, batch dims
    that do not merge into two strided axes, another backend asked for) runs
    the eager ops, each choosing its own backend, with the scores in an arena
    scratch slot, so that ``run`` allocates nothing either way."""
    from .. import ops as eager
    q_v, k_v, v_v = node.inputs[:3]
    mask_v = node.inputs[3] if len(node.inputs) > 3 else None
    scale = float(node.attrs.get("scale", 1.0 / np.sqrt(q_v.shape[-1])))
    out_v = node.outputs[0]
    dt = out_v.dtype
    sq, sk, dv = q_v.shape[-2], k_v.shape[-2], v_v.shape[-1]
    # out_perm (passes/layout.py): the result is stored transposed; the kernel
    # writes the logical (..., sq, dv) tensor through the inverse view.
    perm = node.attrs.get("out_perm")
    inv = None if perm is None else tuple(int(i) for i in np.argsort(perm))
    logical = out_v.shape if inv is None else tuple(out_v.shape[i] for i in inv)
    batch = tuple(logical[:-2])

    def written(out):
        return out if inv is None else out.transpose(inv)
    flops = 2 * int(np.prod(batch, dtype=np.int64)) * sq * sk * (q_v.shape[-1] + dv)

    fused = registry.kernels("attention").get("c")
    if fused is not None and backend in (None, "auto", "c"):
        def operand(v, shape):
            if v is None:
                return None
            if v.is_constant and v.data.dtype != dt and v.data.dtype.kind == "f":
                v = Value(v.name, v.shape, dt, data=np.ascontiguousarray(v.data.astype(dt)))
            return v if tuple(v.shape) == shape else _BroadcastRef(v, shape)

        args = [operand(q_v, batch + tuple(q_v.shape[-2:])),
                operand(k_v, batch + tuple(k_v.shape[-2:])),
                operand(v_v, batch + tuple(v_v.shape[-2:])),
                operand(mask_v, batch + (sq, sk))]
        from ..backends.c_attention import Attention
        try:
            samples = [None if a is None else sample(a) for a in args]
            call = Attention.plan(*samples, written(sample(out_v)), scale)
        except ValueError as e:   # operands that do not broadcast to the batch
            call = str(e)
        if not isinstance(call, str):
            if inv is not None:
                planned = call

                def call(*operands, out):
                    planned(*operands, out=out.transpose(inv))
            return Step(node, call, [a for a in args if a is not None], {}, "c",
                        "c.attention" + ("" if perm is None else f"[out_perm {tuple(perm)}]"),
                        flops=flops)
        notes.append(((node.name,), f"c.attention not used: {call}; ran matmul, softmax, "
                                    f"matmul"))

    scores = Value(f"{node.name}.scores", batch + (sq, sk), dt)

    def attention(q, k, v, mask=None, *, out, scratch):
        (s,) = scratch
        eager.matmul(q, np.swapaxes(k, -1, -2), out=s)
        eager.mul(s, np.asarray(scale, s.dtype), out=s)
        if mask is not None:
            eager.add(s, mask, out=s)
        eager.softmax(s, axis=-1, out=s)
        eager.matmul(s, v, out=written(out))

    args = [q_v, k_v, v_v] + ([mask_v] if mask_v is not None else [])
    return Step(node, attention, args, {}, "auto", "attention(matmul,softmax,matmul)",
                flops=flops, scratch=(scores,))
