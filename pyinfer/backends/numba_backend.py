"""The numba backend: registers the Numba kernels of ``pyinfer.kernels``.

Layer 2 of STYLE 9: these wrappers trust the ops layer's validation (docs/kernel-contract.md),
normalise layout (coalesce dims, pick the canonical strided form), sync Numba's
thread pool with pyinfer's budget, and call the private jitted kernels.
Priority 10, or -1 for inputs so small that NumPy's lower call overhead wins
(a parallel Numba call costs ~10-20 us of Python and thread wake-up).
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ..threads import sync_numba

try:
    import numba  # noqa: F401
    from ..kernels import elementwise as _ew, gemm as _gemm, norm as _norm, reduce as _red
    from ..kernels._layout import addr, bstrides, canon, coalesce
except Exception as e:  # noqa: BLE001  (numba missing or broken: the backend is off)
    registry.mark_unavailable("numba", f"numba could not be imported: {e}")
    _ew = None

SMALL = 1 << 15          # elements below which NumPy is faster (measured, 2 cores)


def _prio(*arrays, **_):
    n = max(a.size for a in arrays if isinstance(a, np.ndarray))
    return 10 if n >= SMALL else -1


def _prio_out(*args, out, **_):
    return 10 if out.size >= SMALL else -1


def _rank_ok(out, *ins):
    if canon(out, *ins) is None:
        return "more than 4 dims remain after coalescing"
    return None


def _tag(a):
    return a.dtype.type(0)


# ---- elementwise -------------------------------------------------------------------

def _unary(name):
    k = _ew.unary_kernels[name]

    def kernel(x, *, out):
        sh, (so, sx) = canon(out, x)
        sync_numba()
        k(addr(x), addr(out), _tag(out), sh, sx, so, _ew.BLOCK)
        return out

    kernel.__name__ = f"numba_{name}"
    return kernel


def _binary(name):
    k = _ew.binary_kernels[name]

    def kernel(a, b, *, out):
        sh, (so, sa, sb) = canon(out, a, b)
        if sa[3] == 0 and sb[3] == 1 and name in ("add", "mul", "maximum", "minimum"):
            # commutative: put the broadcast operand second (vectorized loop, in-place path)
            a, b, sa, sb = b, a, sb, sa
        sync_numba()
        k(addr(a), addr(b), addr(out), _tag(out), sh, sa, sb, so, _ew.BLOCK)
        return out

    kernel.__name__ = f"numba_{name}"
    return kernel


def where(cond, a, b, *, out):
    sh, (so, sc, sa, sb) = canon(out, cond, a, b)
    sync_numba()
    _ew.where_kernel(addr(cond), addr(a), addr(b), addr(out), _tag(out), sh, sc, sa, sb, so,
                     _ew.BLOCK)
    return out


# ---- reductions ----------------------------------------------------------------------

def _okn(x, axes):
    """x as (O, K, N) with element strides, K = the reduced axes, or None if they do not
    merge into one run."""
    keep_before, red, keep_after = [], [], []
    for d in range(x.ndim):
        if d in axes:
            red.append(d)
        elif red:
            keep_after.append(d)
        else:
            keep_before.append(d)
    if keep_after and red and keep_after[0] < red[-1]:
        return None                                  # kept dim between reduced dims
    st = [s // x.itemsize for s in x.strides]
    parts = []
    for dims in (keep_before, red, keep_after):
        sh, (s,) = coalesce([x.shape[d] for d in dims], [[st[d] for d in dims]])
        if len(sh) > 1:
            return None
        parts.append((sh[0], s[0]) if sh else (1, 0))
    return parts


def _out_strides(out, x, axes, keepdims):
    """(oo, on): out as (O, N) - its strides over the kept dims before / after K."""
    full = out if keepdims else out.reshape(
        [1 if d in axes else x.shape[d] for d in range(x.ndim)]) if out.flags.c_contiguous \
        else None
    if full is None:
        idx = tuple(np.newaxis if d in axes else slice(None) for d in range(x.ndim))
        full = out[idx]
    st = [s // out.itemsize for s in full.strides]
    lo = min(axes)
    before = [d for d in range(x.ndim) if d < lo and d not in axes]
    after = [d for d in range(x.ndim) if d > lo and d not in axes]
    res = []
    for dims in (before, after):
        sh, (s,) = coalesce([x.shape[d] for d in dims], [[st[d] for d in dims]])
        if len(sh) > 1:
            return None
        res.append(s[0] if sh else 0)
    return res


def _reduce_call(name, x, axes, keepdims, out, scale):
    okn = _okn(x, axes)
    if okn is None and not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)               # kept dims that do not merge: copy once
        okn = _okn(x, axes)
    if okn is None:
        # reduced axes that do not merge: reduce the last one alone into a contiguous
        # temporary, then the others (all before it, so their numbers still hold)
        last = axes[-1]
        tmp = np.empty(x.shape[:last] + x.shape[last + 1:], x.dtype)
        _reduce_call(name, x, (last,), False, tmp, 1.0)
        dst = out[(slice(None),) * last + (0,)] if keepdims else out
        return _reduce_call(name, tmp, axes[:-1], keepdims, dst, scale)
    os_ = _out_strides(out, x, axes, keepdims)
    if os_ is None:
        tmp = np.empty(out.shape, out.dtype)
        _reduce_call(name, x, axes, keepdims, tmp, scale)
        out[...] = tmp
        return out
    (O, so), (K, sk), (N, sn) = okn
    oo, on = os_
    sync_numba()
    if O * N == 1 and K >= 1 << 16:
        out[...] = _combine(name, x, K, sk, scale)
        return out
    k = _red.reduce_kernels["sum" if name == "mean" else name]
    k(addr(x), addr(out), _tag(x), O, K, N, so, sk, sn, oo, on, scale)
    return out


def _combine(name, x, K, sk, scale):
    """Whole-array reduction: c chunks of K in parallel, the tail, combined here.
    (Partial sums are stored in x's dtype: c = 64 roundings of 2**-24 each.)"""
    k = _red.reduce_kernels["sum" if name == "mean" else name]
    c = 64
    Kc = K // c
    tail = K - c * Kc
    part = np.empty(c + 1, x.dtype)
    k(addr(x), addr(part), _tag(x), c, Kc, 1, Kc * sk, sk, 0, 1, 0, 1.0)
    if tail:
        k(addr(x) + c * Kc * sk * x.itemsize, addr(part) + c * x.itemsize, _tag(x), 1, tail, 1,
          0, sk, 0, 1, 0, 1.0)
    part = part[:c + (1 if tail else 0)]
    if name in ("sum", "mean"):
        return part.astype(np.float64).sum() * scale
    if np.isnan(part).any():
        return np.nan
    return part.max() if name == "max" else part.min()


def _reduction(name):
    def kernel(x, *, axis, keepdims, out):
        K = 1
        for d in axis:
            K *= x.shape[d]
        scale = 1.0 / K if name == "mean" else 1.0
        return _reduce_call(name, x, tuple(axis), keepdims, out, scale)

    kernel.__name__ = f"numba_{name}"
    return kernel


def argmax(x, *, axis, keepdims, out):
    if axis is None:
        xr = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        O, K, N, so, sk, sn, oo, on = 1, x.size, 1, 0, 1, 0, 0, 0
        o1 = np.empty(1, np.int64)
        sync_numba()
        _red.argmax_kernel(addr(xr), addr(o1), _tag(x), O, K, N, so, sk, sn, oo, on)
        out[...] = o1[0]
        return out
    okn = _okn(x, (axis,))
    os_ = _out_strides(out, x, (axis,), keepdims) if okn is not None else None
    if okn is None or os_ is None:
        xc = np.ascontiguousarray(x)
        tmp = np.empty(out.shape, np.int64)
        argmax(xc, axis=axis, keepdims=keepdims, out=tmp)
        out[...] = tmp
        return out
    (O, so), (K, sk), (N, sn) = okn
    oo, on = os_
    sync_numba()
    _red.argmax_kernel(addr(x), addr(out), _tag(x), O, K, N, so, sk, sn, oo, on)
    return out


# ---- softmax, norms ----------------------------------------------------------------------

def _softmax(logsm):
    k = _norm.log_softmax_kernel if logsm else _norm.softmax_kernel

    def kernel(x, *, axis, out):
        okx = _okn(x, (axis,))
        oko = _okn(out, (axis,))
        if okx is None or oko is None:
            xc = np.ascontiguousarray(x)
            tmp = np.empty(x.shape, x.dtype)
            kernel(xc, axis=axis, out=tmp)
            out[...] = tmp
            return out
        (O, sx), (K, sk), (N, sn) = okx
        (_, so), (_, ok), (_, on) = oko
        sync_numba()
        k(addr(x), addr(out), _tag(x), O, K, N, sx, sk, sn, so, ok, on)
        return out

    kernel.__name__ = "numba_log_softmax" if logsm else "numba_softmax"
    return kernel


def _rows(a, axis):
    """a as (O, K) rows: (O, K, so, sk) or None when the dims do not merge."""
    okn = _okn(a, tuple(range(axis, a.ndim)))
    if okn is None:
        return None
    (O, so), (K, sk), _ = okn
    return O, K, so, sk


def _norm_call(k, x, weight, bias, axis, eps, out):
    rx, ro = _rows(x, axis), _rows(out, axis)
    if rx is None or ro is None:
        xc = np.ascontiguousarray(x)
        tmp = np.empty(x.shape, x.dtype)
        _norm_call(k, xc, weight, bias, axis, eps, tmp)
        out[...] = tmp
        return out
    O, K, sx, kx = rx
    _, _, so, ko = ro
    sync_numba()
    k(addr(x), 0 if weight is None else addr(weight), 0 if bias is None else addr(bias),
      addr(out), _tag(x), O, K, sx, kx, so, ko, float(eps))
    return out


def layer_norm(x, weight, bias, *, axis, eps, out):
    return _norm_call(_norm.layer_norm_kernel, x, weight, bias, axis, eps, out)


def rms_norm(x, weight, *, axis, eps, out):
    return _norm_call(_norm.rms_norm_kernel, x, weight, None, axis, eps, out)


# ---- gemm, matmul -------------------------------------------------------------------------

def _st(a):
    return [s // a.itemsize for s in a.strides]


def _matmul3(a, b, out, alpha, bias, residual, activation):
    """a (Bt, M, K), b (Bb, K, N) with Bb in (1, Bt), out (Bt, M, N)."""
    Bt, M, K = a.shape
    N = b.shape[2]
    bp = np.ascontiguousarray(b)                  # packed: unit-stride rows of B
    if not bp.flags.writeable:                    # one Numba type (readonly arrays are another)
        bp = bp.copy()
    sab, sam, sak = _st(a)
    sbb = K * N if bp.shape[0] > 1 else 0
    scb, scm, scn = _st(out)
    if residual is not None:
        srb, srm, srn = _st(residual)
    else:
        srb = srm = srn = 0
    sync_numba()
    _gemm.gemm_kernel(addr(a), bp.reshape(-1), addr(out), _tag(out), Bt, M, N, K, sab, sam, sak,
                      sbb, scb, scm, scn, out.dtype.type(alpha),
                      0 if bias is None else addr(bias),
                      0 if residual is None else addr(residual), srb, srm, srn,
                      _gemm.ACT[activation])
    return out


def gemm(a, b, bias, residual, *, alpha, activation, out):
    _matmul3(a[None], b[None], out[None], alpha, bias,
             None if residual is None else residual[None], activation)
    return out


def matmul(a, b, *, out):
    if b.strides[0] == 0:
        b = b[:1]
    return _matmul3(a, b, out, 1.0, None, None, None)


def _gemm_prio(a, b, bias=None, residual=None, *, out, alpha=1.0, activation=None):
    """The portable fallback: it beats NumPy only where fusing an epilogue saves
    passes over memory (bench/RESULTS.md); a plain product is OpenBLAS's."""
    epilogue = bias is not None or residual is not None or activation is not None or alpha != 1.0
    big = a.shape[-2] * a.shape[-1] * b.shape[-1] >= 1 << 18
    return 5 if epilogue and big else -2


def _register_all():
    for name in _ew.UNARY:
        registry.register(name, "numba", supports=lambda x, *, out: _rank_ok(out, x),
                          priority=_prio_out)(_unary(name))
    for name in _ew.BINARY:
        registry.register(name, "numba", supports=lambda a, b, *, out: _rank_ok(out, a, b),
                          priority=_prio_out)(_binary(name))
    registry.register("where", "numba",
                      supports=lambda c, a, b, *, out: _rank_ok(out, c, a, b),
                      priority=_prio_out)(where)
    for name in ("sum", "mean", "max", "min"):
        registry.register(name, "numba", priority=_prio)(_reduction(name))
    registry.register("argmax", "numba", priority=_prio)(argmax)
    registry.register("softmax", "numba", priority=_prio)(_softmax(False))
    registry.register("log_softmax", "numba", priority=_prio)(_softmax(True))
    registry.register("layer_norm", "numba", priority=_prio)(layer_norm)
    registry.register("rms_norm", "numba", priority=_prio)(rms_norm)
    registry.register("gemm", "numba", priority=_gemm_prio)(gemm)
    registry.register("matmul", "numba", priority=_gemm_prio)(matmul)


if _ew is not None:
    _register_all()
