"""SPARSE_GEMM: ``y = act(x @ W + bias)`` with a pruned constant weight that
the plan may store block-sparse.

| op | inputs | attrs |
|---|---|---|
| SPARSE_GEMM | (x (..., k), w const (k, n), bias (n,) or None) | ``block=(br, bc)``, ``activation``, ``kernel`` |

``kernel``: "auto" (the default) measures; "sparse" or "dense" pins the choice.

``pyinfer.compress.prune`` makes these nodes.  The weight stays a dense
constant in the graph (what a saver or another pass sees); ``lower`` builds
its block-sparse form (pyinfer.compress.bsr) once, at plan time, times the
block-sparse kernel and the dense GEMM on the plan-time sample and keeps the
faster, saying which and why in ``Interpreter.explain()``.  Whether sparsity
pays depends on the density, the block shape and the batch: a 90%-sparse
layer wins by a wide margin, an unstructured 50% one never does.

The reference is the dense product with the (pruned) weight: the op's
meaning.  The block-sparse kernel sums stored blocks only, so the two differ
only where an inf/NaN in x meets a dropped block.
"""
from __future__ import annotations

import time
import weakref

import numpy as np

from ... import registry
from ...backends.numpy_ref import ACTIVATIONS, apply_activation
from ...errors import UnsupportedError
from ..ir import Node, Op
from ..opdefs import define
from ..shapes import fail

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_BLOCK = (1, 16)
KERNEL_CHOICES = ("auto", "sparse", "dense")


def _parts(node: Node):
    x, w = node.inputs[:2]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    return x, w, bias


def _shape(node: Node):
    if len(node.inputs) not in (2, 3):
        raise fail(node, f"expected inputs (x, w, bias|None), received {len(node.inputs)}")
    x, w, bias = _parts(node)
    for name, v in (("x", x), ("w", w), ("bias", bias)):
        if v is not None and v.dtype not in FLOATS:
            raise fail(node, f"input '{name}' expected float32 or float64, received {v.dtype}")
    if not w.is_constant or w.ndim != 2:
        raise fail(node, f"input 'w' expected a 2-d constant (the plan stores it block-sparse), "
                         f"received {'a constant' if w.is_constant else 'a computed value'} "
                         f"of shape {w.shape}")
    k, n = w.shape
    if x.ndim < 1 or (isinstance(x.shape[-1], int) and x.shape[-1] != k):
        raise fail(node, f"input 'x' expected shape (..., {k}) to match w {w.shape}, "
                         f"received {x.shape}")
    if bias is not None and not (bias.ndim <= 1 and bias.shape in ((), (1,), (n,))):
        raise fail(node, f"input 'bias' expected shape ({n},), received {bias.shape}")
    block = node.attrs.get("block", DEFAULT_BLOCK)
    if not (isinstance(block, (tuple, list)) and len(block) == 2
            and all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 1
                    for b in block)):
        raise fail(node, f"attribute 'block' expected two positive ints, received {block!r}")
    node.attrs["block"] = (int(block[0]), int(block[1]))
    act = node.attrs.setdefault("activation", None)
    if act is not None and act not in ACTIVATIONS:
        raise fail(node, f"attribute 'activation' expected None or one of {ACTIVATIONS}, "
                         f"received {act!r}")
    kernel = node.attrs.setdefault("kernel", "auto")
    if kernel not in KERNEL_CHOICES:
        raise fail(node, f"attribute 'kernel' expected one of {KERNEL_CHOICES}, received {kernel!r}")
    dtype = np.result_type(*[v.dtype for v in (x, w, bias) if v is not None])
    return [(tuple(x.shape[:-1]) + (n,), dtype)]


def _reference(node: Node, args):
    x, w, bias = (list(args) + [None])[:3]
    dtype = node.outputs[0].dtype
    with np.errstate(all="ignore"):
        y = np.matmul(np.asarray(x, dtype), np.asarray(w, dtype))
        if bias is not None:
            y = y + np.asarray(bias, dtype)
        return [apply_activation(y, node.attrs.get("activation")).astype(dtype, copy=False)]


# ---- lowering -----------------------------------------------------------------------

# Block-sparse forms of constants already converted, per (block, dtype): a plan
# made again for another input shape does not convert the weight again.  Keyed
# by identity (arrays are unhashable), dropped when the constant dies.
_BSR_CACHE: dict = {}  # id(constant) -> (weakref to it, {(block, dtype): BSRMatrix})


def _bsr_of(w: np.ndarray, block, dtype):
    from ...compress.bsr import to_bsr
    entry = _BSR_CACHE.get(id(w))
    if entry is None or entry[0]() is not w:
        entry = (weakref.ref(w, lambda _, key=id(w): _BSR_CACHE.pop(key, None)), {})
        _BSR_CACHE[id(w)] = entry
    key = (block, np.dtype(dtype).str)
    if key not in entry[1]:
        entry[1][key] = to_bsr(np.ascontiguousarray(w.astype(dtype, copy=False)), block)
    return entry[1][key]


def _seconds(call, repeat: int = 7) -> float:
    call()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
    return best


def _as_2d(arr: np.ndarray, cols: int) -> np.ndarray:
    return arr if arr.ndim == 2 else arr.reshape(-1, cols)


def _lower(node: Node, ctx):
    from ...plan.select import Step, choose
    x, w, bias = _parts(node)
    out_v = node.outputs[0]
    dt = out_v.dtype
    k, n = w.shape
    act = node.attrs.get("activation")
    block = node.attrs["block"]
    dense_w = np.ascontiguousarray(w.data.astype(dt, copy=False))
    bias_val = None  # a computed (n,) bias, read at run time
    bias_arr = None  # a constant bias, prepared now
    if bias is not None and bias.is_constant:
        bias_arr = np.ascontiguousarray(np.broadcast_to(bias.data.astype(dt), (n,)))
    elif bias is not None:
        if bias.shape != (n,) or bias.dtype != dt:
            return None  # the reference handles broadcasting and casts
        bias_val = bias
    xs = _as_2d(np.ascontiguousarray(ctx.sample(x), dt), k)
    os_ = _as_2d(np.ascontiguousarray(ctx.sample(out_v)), n)
    bs = bias_arr if bias_val is None else np.ascontiguousarray(ctx.sample(bias_val))
    m = xs.shape[0]

    gemm_attrs = {"alpha": 1.0, "activation": act}
    dense = choose("gemm", ctx.backend, (xs, dense_w, bs, None), gemm_attrs, os_, ctx.notes,
                   node.name)
    dense_fn, dense_b, dense_name = dense.fn, dense_w, f"{dense.backend}.gemm"
    if dense.backend == "c":
        # What a dense layer runs in a plan (select._prepack): B packed once.
        from ...backends import c_gemm
        dense_fn, dense_b, dense_name = c_gemm.gemm_packed, c_gemm.pack_b(dense_w, m), \
            "c.gemm[packed B]"
    bsr = _bsr_of(w.data, block, dt)
    sparse = None
    prefer = node.attrs.get("kernel", "auto")
    if ctx.backend in (None, "auto", "c") and prefer != "dense":
        try:
            sparse = registry.select("sparse_gemm", "c", xs, bsr, bs, out=os_, activation=act)
        except UnsupportedError as e:
            ctx.notes.append(((node.name,), f"block-sparse kernel not used: {e}"))
    density = f"{bsr.density:.0%} of {block[0]}x{block[1]} blocks stored"
    use_sparse = sparse is not None and prefer == "sparse"
    if sparse is not None and prefer == "auto":
        t_dense = _seconds(lambda: dense_fn(xs, dense_b, bs, None, out=os_, **gemm_attrs))
        t_sparse = _seconds(lambda: sparse.fn(xs, bsr, bs, activation=act, out=os_))
        use_sparse = t_sparse < t_dense
        ctx.notes.append(((node.name,), (
            f"block-sparse {sparse.backend}.sparse_gemm {t_sparse * 1e6:.1f} us vs dense "
            f"{dense_name} {t_dense * 1e6:.1f} us at m={m} ({density}): "
            f"{'block-sparse' if use_sparse else 'dense'} kept")))
    elif prefer != "auto":
        ctx.notes.append(((node.name,), f"kernel={prefer!r} pinned ({density}): "
                                        f"{'block-sparse' if use_sparse else 'dense'} used"))

    if use_sparse:
        fn, w_arg, name = sparse.fn, bsr, f"{sparse.backend}.sparse_gemm"

        def call(x2, b, o2):
            fn(x2, w_arg, b, activation=act, out=o2)
        flops = 2 * m * bsr.nnzb * block[0] * block[1]
    else:
        fn, name = dense_fn, f"{dense_name}(pruned weight dense)"

        def call(x2, b, o2):
            fn(x2, dense_b, b, None, out=o2, **gemm_attrs)
        flops = 2 * m * n * k

    def run(xa, *rest, out):
        b = rest[0] if rest else bias_arr
        x2 = _as_2d(xa, k)
        if out.ndim == 2:
            call(x2, b, out)
            return
        o2 = out.reshape(-1, n)
        if np.may_share_memory(o2, out):
            call(x2, b, o2)
        else:  # dims that do not merge without a copy
            tmp = np.empty((x2.shape[0], n), dt)
            call(x2, b, tmp)
            np.copyto(out, tmp.reshape(out.shape))

    args = [x] + ([bias_val] if bias_val is not None else [])
    return Step(node, run, args, {}, sparse.backend if use_sparse else dense.backend, name,
                flops=flops)


define(Op.SPARSE_GEMM, shape=_shape, reference=_reference, lower=_lower)
