"""Fused attention (csrc/pi_attention.c through pyinfer/backends/c_attention.py,
pyinfer.ops.attention, the ATTENTION lowering) against the formula in float64.

Tolerance (pyinfer.testing's policy): the dtype's base tolerance plus the
rounding bound of what the kernel sums.  A score s_ij = scale * q_i . k_j
carries sum_bound(D, scale * |q_i| . |k_j|) plus a few eps of |s_ij| (the
scale, the mask add, the max subtraction); an absolute error e in s_ij is a
relative error e in p_ij = exp(s_ij - m) / sum; so out_ic = sum_j p_ij v_jc
is off by at most sum_j p_ij |v_jc| (e_ij + ebar_i) (ebar_i = sum_j p_ij e_ij,
the normalising sum's share) plus the rounding of the two sums over Sk.
Outputs are poisoned with NaN first; NaN must match NaN (fully masked rows).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyinfer
from pyinfer import Graph, Op, ops
from pyinfer.backends import _native
from pyinfer.errors import DTypeError, ShapeError, UnsupportedError
from pyinfer.ops.attention import attention_ref
from pyinfer.testing import assert_close, eps, sum_bound

from _variants import backend_variants, on_isa

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
SEQ = [1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 64, 65, 129]
HEAD = [1, 8, 16, 31, 32, 64, 65]
VARIANTS = backend_variants("attention")


def _poisoned(shape, dtype):
    return np.full(shape, np.nan, dtype)


def _expected(q, k, v, mask, scale, dtype):
    """The float64 answer and the error bound of a ``dtype`` kernel."""
    q64, k64, v64 = (np.asarray(t, np.float64) for t in (q, k, v))
    m64 = None if mask is None else np.asarray(mask, np.float64)
    want = attention_ref(q64, k64, v64, m64, scale)
    e = eps(dtype)
    with np.errstate(all="ignore"):
        s = np.matmul(q64, np.swapaxes(k64, -1, -2)) * scale
        if m64 is not None:
            s = s + m64
        mx = np.max(s, axis=-1, keepdims=True)
        p = np.exp(s - mx)
        p = p / np.sum(p, axis=-1, keepdims=True)
        dot = sum_bound(q.shape[-1], np.matmul(np.abs(q64), np.swapaxes(np.abs(k64), -1, -2))
                        * abs(scale), dtype)
        err = dot + 4 * e * (np.abs(s) + np.abs(mx)) + 4 * e
        pe = np.where(p > 0, p * err, 0.0)       # -inf scores weigh nothing
        pv = np.matmul(p, np.abs(v64))
        sk = k.shape[-2]
        bound = (np.matmul(pe, np.abs(v64)) + np.sum(pe, axis=-1, keepdims=True) * pv
                 + sum_bound(sk, pv, dtype) + sum_bound(sk, 1.0, dtype) * pv)
    return want, bound


def _check(got, q, k, v, mask, scale, dtype, what=""):
    want, bound = _expected(q, k, v, mask, scale, dtype)
    assert_close(got, want, dtype, atol_extra=np.nan_to_num(bound, nan=0.0), what=what)


def _operands(rng, b, h, sq, sk, d, dv, dtype, layout):
    """q, k, v of shapes (b, h, s, d): contiguous, or views of (b, s, h*d)
    projections (what MiniLM's graph has), or every other element of a bigger
    array along the feature axis."""
    if layout == "projection":
        def proj(s, f):
            x = rng.standard_normal((b, s, h * f)).astype(dtype)
            return x.reshape(b, s, h, f).transpose(0, 2, 1, 3)
        return proj(sq, d), proj(sk, d), proj(sk, dv)
    if layout == "strided":
        def strided(s, f):
            return rng.standard_normal((b, h, s, 2 * f)).astype(dtype)[..., ::-2]
        return strided(sq, d), strided(sk, d), strided(sk, dv)
    return (rng.standard_normal((b, h, sq, d)).astype(dtype),
            rng.standard_normal((b, h, sk, d)).astype(dtype),
            rng.standard_normal((b, h, sk, dv)).astype(dtype))


def _mask(rng, kind, b, h, sq, sk, dtype):
    """Additive masks broadcast along different axes, with -inf and large negatives."""
    if kind is None:
        return None
    if kind == "keys":                          # BERT: (B, 1, 1, Sk), padding at -inf
        m = np.zeros((b, 1, 1, sk), dtype)
        for i in range(b):
            m[i, ..., 1 + (7 * i) % sk:] = -np.inf
        m[..., 0] = -10000.0 if sk > 1 else 0.0
        return m
    if kind == "causal":                        # (Sq, Sk): first row sees no key at all
        m = np.where(np.arange(sk)[None, :] >= np.arange(sq)[:, None], -np.inf, 0.0)
        return m.astype(dtype)
    if kind == "full":                          # (B, H, Sq, Sk) random, a third at -inf
        m = rng.standard_normal((b, h, sq, sk)).astype(dtype)
        m.reshape(-1)[::3] = -np.inf
        return m
    if kind == "per_row":                       # (B, H, Sq, 1): a constant per row
        return (rng.standard_normal((b, h, sq, 1)) * 30).astype(dtype)
    raise AssertionError(kind)


def _run(backend, isa, q, k, v, mask, scale, out):
    with on_isa(isa):
        return ops.attention(q, k, v, mask, scale=scale, out=out, backend=backend)


# ---- differential ----------------------------------------------------------------------

@pytest.mark.parametrize("backend,isa", VARIANTS)
@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 3), sq=st.sampled_from(SEQ),
       sk=st.sampled_from(SEQ), d=st.sampled_from(HEAD), dv=st.sampled_from(HEAD),
       dtype=st.sampled_from([F32, F64]),
       layout=st.sampled_from(["contiguous", "projection", "strided"]),
       mask=st.sampled_from([None, "keys", "causal", "full", "per_row"]),
       out_strided=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_attention_matches_reference(backend, isa, b, h, sq, sk, d, dv, dtype, layout, mask,
                                     out_strided, threads, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _operands(rng, b, h, sq, sk, d, dv, dtype, layout)
    m = _mask(rng, mask, b, h, sq, sk, dtype)
    scale = 1 / np.sqrt(d)
    if out_strided:
        big = _poisoned((b, sq, h, 2 * dv), dtype)
        out = big.transpose(0, 2, 1, 3)[..., 1::2]      # (b, h, sq, dv) through strides
    else:
        out = _poisoned((b, h, sq, dv), dtype)
    previous = pyinfer.get_num_threads()
    pyinfer.set_num_threads(threads)
    try:
        got = _run(backend, isa, q, k, v, m, scale, out)
    finally:
        pyinfer.set_num_threads(previous)
    assert got is out
    if out_strided:
        assert np.isnan(big[..., 0::2]).all()           # nothing written beside it
    _check(out, q, k, v, m, scale, dtype, f"{layout} mask={mask}")


@pytest.mark.parametrize("backend,isa", VARIANTS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_fully_masked_rows_are_nan_like_the_reference(backend, isa, dtype):
    rng = np.random.default_rng(3)
    q, k, v = _operands(rng, 2, 3, 9, 17, 16, 8, dtype, "contiguous")
    m = np.zeros((2, 1, 9, 17), dtype)
    m[0, :, 4] = -np.inf                                # row 4 of batch 0 sees nothing
    m[1, :, :, 5:] = -np.inf
    out = _run(backend, isa, q, k, v, m, 0.25, _poisoned((2, 3, 9, 8), dtype))
    assert np.isnan(out[0, :, 4]).all()
    assert np.isfinite(np.delete(out[0], 4, axis=1)).all() and np.isfinite(out[1]).all()
    _check(out, q, k, v, m, 0.25, dtype)
    want = attention_ref(q, k, v, m, 0.25)               # the reference in the same dtype
    assert (np.isnan(want) == np.isnan(out)).all()


@pytest.mark.parametrize("backend,isa", VARIANTS)
@pytest.mark.parametrize("mask", [None, "causal", "keys", "hide_first"])
def test_many_keys_online_softmax(backend, isa, mask):
    """More keys than one packed block (the flash path: running max and sum),
    including rows whose first key blocks are all -inf."""
    rng = np.random.default_rng(5)
    b, h, sq, sk, d, dv = 1, 2, 7, 1500, 64, 48
    q, k, v = _operands(rng, b, h, sq, sk, d, dv, F32, "projection")
    q *= 2                                              # spread the scores
    if mask == "hide_first":
        m = np.zeros((sq, sk), F32)
        for i in range(sq):
            m[i, :700 + 100 * i] = -np.inf
    else:
        m = _mask(rng, mask, b, h, sq, sk, F32)
    for threads in (1, 2):
        previous = pyinfer.get_num_threads()
        pyinfer.set_num_threads(threads)
        try:
            out = _run(backend, isa, q, k, v, m, 0.125, _poisoned((b, h, sq, dv), F32))
        finally:
            pyinfer.set_num_threads(previous)
        _check(out, q, k, v, m, 0.125, F32, f"threads={threads}")


@pytest.mark.parametrize("backend,isa", VARIANTS)
def test_batch_dims_broadcast_and_merge(backend, isa):
    rng = np.random.default_rng(7)
    # 3-d (no head axis), k and v shared by every head (zero strides), 5-d batches
    q = rng.standard_normal((4, 6, 8)).astype(F32)
    k = rng.standard_normal((4, 5, 8)).astype(F32)
    v = rng.standard_normal((4, 5, 3)).astype(F32)
    _check(_run(backend, isa, q, k, v, None, 0.3, None), q, k, v, None, 0.3, F32)
    q = rng.standard_normal((2, 3, 6, 8)).astype(F32)
    k = rng.standard_normal((2, 1, 5, 8)).astype(F32)
    v = rng.standard_normal((1, 5, 4)).astype(F32)
    m = rng.standard_normal((6, 5)).astype(F32)
    _check(_run(backend, isa, q, k, v, m, 0.3, None), q, k, v, m, 0.3, F32)
    q = rng.standard_normal((2, 2, 3, 6, 8)).astype(F32)
    _check(_run(backend, isa, q, q, q, None, 0.3, None), q, q, q, None, 0.3, F32)
    q2 = rng.standard_normal((2, 2)).astype(F32)       # 2-d: one matrix
    _check(_run(backend, isa, q2, q2, q2, None, 1.0, None), q2, q2, q2, None, 1.0, F32)


def test_batch_dims_that_do_not_merge_fall_back():
    rng = np.random.default_rng(8)
    base = rng.standard_normal((4, 3, 2, 6, 8)).astype(F32)
    q = base.transpose(2, 1, 0, 3, 4)                   # batch (2, 3, 4): no two strided axes
    out = _poisoned(q.shape[:-1] + (8,), F32)
    why = dict(ops.explain("attention", q, q, q, None, scale=0.5, out=out))
    assert "do not merge" in why["c"]
    with pytest.raises(UnsupportedError, match="do not merge"):
        ops.attention(q, q, q, scale=0.5, backend="c")
    _check(ops.attention(q, q, q, scale=0.5), q, q, q, None, 0.5, F32)   # numpy runs it


def test_out_overlapping_an_input_goes_through_a_temporary():
    rng = np.random.default_rng(9)
    q = rng.standard_normal((2, 5, 4)).astype(F64)
    want = attention_ref(q, q, q, None, 0.5)
    got = ops.attention(q, q, q, scale=0.5, out=q)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_eager_errors_name_the_argument():
    q = np.ones((2, 4, 8), F32)
    with pytest.raises(ShapeError, match="'k'"):
        ops.attention(q, np.ones((2, 4, 7), F32), q)
    with pytest.raises(ShapeError, match="'v'"):
        ops.attention(q, q, np.ones((2, 5, 8), F32))
    with pytest.raises(ShapeError, match="'k'.*at least one key"):
        ops.attention(q, np.ones((2, 0, 8), F32), np.ones((2, 0, 8), F32))
    with pytest.raises(ShapeError, match="'mask'"):
        ops.attention(q, q, q, mask=np.zeros((3, 4, 4), F32))
    with pytest.raises(ShapeError, match="'q'"):
        ops.attention(np.ones(8, F32), q, q)
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        ops.attention(q, np.ones((3, 4, 8), F32), np.ones((3, 4, 8), F32))
    with pytest.raises(DTypeError, match="'v'"):
        ops.attention(q, q, np.ones((2, 4, 8), np.int32))
    with pytest.raises(ShapeError, match="'scale'"):
        ops.attention(q, q, q, scale=float("nan"))
    with pytest.raises(ShapeError, match="'scale'"):
        ops.attention(q, q, q, scale=True)
    with pytest.raises(ShapeError, match="'scale'"):
        ops.attention(np.ones((4, 0), F32), np.ones((4, 0), F32), q[0])
    with pytest.raises(ShapeError, match="'out'"):
        ops.attention(q, q, q, out=np.empty((2, 4, 7), F32))
    with pytest.raises(DTypeError, match="'out'"):
        ops.attention(q, q, q, out=np.empty((2, 4, 8), F64))


def test_empty_head_dim_and_empty_outputs():
    mask = np.array([[0.0, -1.0, -np.inf]], F32)
    z = np.ones((1, 0), F32)
    v = np.arange(6, dtype=F32).reshape(3, 2)
    got = ops.attention(z, np.ones((3, 0), F32), v, mask=mask, scale=1.0, backend="c")
    p = np.exp([0.0, -1.0, 0.0]) * [1, 1, 0]
    np.testing.assert_allclose(got[0], (p / p.sum()) @ v, rtol=1e-6)
    assert ops.attention(np.ones((0, 4, 8), F32), np.ones((0, 4, 8), F32),
                         np.ones((0, 4, 8), F32)).shape == (0, 4, 8)


# ---- in a plan --------------------------------------------------------------------------

def _bert_attention_graph(b, s, h, d, mask_dtype=F32):
    """The BERT self-attention core as exported: q, k, v projections of
    (B, S, H*D) split into heads by reshape+transpose, an additive (B, 1, 1, S)
    mask, and the result put back to (B, S, H*D)."""
    g = Graph("bert_attention")
    x = g.input("x", (b, s, h * d), F32)
    mask = g.input("mask", (b, 1, 1, s), mask_dtype)
    rng = np.random.default_rng(0)
    heads = []
    for name in "qkv":
        w = g.constant((rng.standard_normal((h * d, h * d)) / np.sqrt(h * d)).astype(F32))
        y = g.add(Op.MATMUL, [x, w])
        y = g.add(Op.RESHAPE, [y], {"shape": (b, s, h, d)})
        heads.append(g.add(Op.TRANSPOSE, [y], {"perm": (0, 2, 1, 3)}))
    q, k, v = heads
    kt = g.add(Op.TRANSPOSE, [k], {"perm": (0, 1, 3, 2)})
    sc = g.add(Op.MUL, [g.add(Op.MATMUL, [q, kt]), g.constant(np.array(1 / np.sqrt(d), F32))])
    sc = g.add(Op.ADD, [sc, mask])
    p = g.add(Op.SOFTMAX, [sc], {"axis": -1})
    o = g.add(Op.TRANSPOSE, [g.add(Op.MATMUL, [p, v])], {"perm": (0, 2, 1, 3)})
    g.output(g.add(Op.RESHAPE, [o], {"shape": (b, s, h * d)}), "y")
    return g


def _feeds(b, s, h, d, mask_dtype=F32):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((b, s, h * d)).astype(F32)
    mask = np.zeros((b, 1, 1, s), mask_dtype)
    mask[0, ..., s - 3:] = -10000.0
    return [x, mask]


def test_plan_runs_c_attention_on_projection_views():
    b, s, h, d = 2, 17, 3, 8
    g = _bert_attention_graph(b, s, h, d)
    it = pyinfer.Interpreter(g)
    feeds = _feeds(b, s, h, d)
    (y,) = it.run(feeds)
    text = it.explain()
    # the head merge (transpose back to (B, S, H, D)) is written by the kernel
    # itself (passes/layout.py), so the reshape after it is a view, not a copy
    assert "c.attention[out_perm (0, 2, 1, 3)] <- attention" in text, text
    assert "attention(matmul,softmax,matmul)" not in text
    assert "reshape_copy" not in text and "<- transpose" not in text.split("c.attention")[-1]
    ref = pyinfer.Interpreter(g, backend="numpy")
    (want,) = ref.run(feeds)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    out = [np.full((b, s, h * d), np.nan, F32)]
    it.run(feeds, outputs=out)
    np.testing.assert_array_equal(out[0], y)
    assert "c.attention" in it.profile(feeds, repeat=2)


def _attention_then(reader_perms, extra_reader=False, merge=True):
    """q (2, 3, 5, 8) -> attention -> a TRANSPOSE per perm in reader_perms
    (each a graph output), optionally also a direct reader of the result;
    merge=False gives batch dims the C kernel cannot merge (the 3-op fallback)."""
    g = Graph("att_out")
    shape = (2, 3, 5, 8) if merge else (4, 3, 2, 5, 8)
    x = g.input("x", shape, F32)
    q = x if merge else g.add(Op.TRANSPOSE, [x], {"perm": (2, 1, 0, 3, 4)})
    kt = g.add(Op.TRANSPOSE, [q], {"perm": tuple(range(q.ndim - 2)) + (q.ndim - 1, q.ndim - 2)})
    sc = g.add(Op.MUL, [g.add(Op.MATMUL, [q, kt]), g.constant(np.array(0.3, F32))])
    o = g.add(Op.MATMUL, [g.add(Op.SOFTMAX, [sc], {"axis": -1}), q])
    for i, perm in enumerate(reader_perms):
        g.output(g.add(Op.TRANSPOSE, [o], {"perm": perm}), f"t{i}")
    if extra_reader:
        g.output(g.add(Op.RELU, [o]), "relu")
    feed = np.random.default_rng(5).standard_normal(shape).astype(F32)
    return g, feed


@pytest.mark.parametrize("perms,extra,merge,folded", [
    ([(0, 2, 1, 3)], False, True, True),       # the head merge of every transformer
    ([(1, 0, 2, 3)], False, True, True),
    ([(0, 1, 3, 2)], False, True, False),      # moves the last axis: rows would be strided
    ([(0, 2, 1, 3), (1, 0, 2, 3)], False, True, False),   # two readers
    ([(0, 2, 1, 3)], True, True, False),
    ([(0, 2, 1, 3, 4)], False, False, True),   # folded into the 3-op fallback too
])
def test_attention_writes_the_transpose_that_follows_it(perms, extra, merge, folded):
    g, feed = _attention_then(perms, extra, merge)
    want = pyinfer.Interpreter(g, passes="none", backend="numpy").run([feed])
    for backend in ("auto", "numpy"):
        it = pyinfer.Interpreter(g, backend=backend)
        got = it.run([feed])
        att = [n for n in it.plan.graph.nodes if n.op is Op.ATTENTION]
        assert len(att) == 1 and ("out_perm" in att[0].attrs) == folded, it.explain()
        for y, w in zip(got, want):
            assert y.shape == w.shape
            np.testing.assert_allclose(y, w, rtol=2e-5, atol=2e-6)


def test_plan_falls_back_when_batch_dims_do_not_merge():
    """q, k, v views whose three batch dims have no two-axis stride form: the
    plan says why and runs matmul, softmax, matmul; so does backend='numpy'."""
    g = Graph("att")
    x = g.input("x", (4, 3, 2, 6, 8), F32)
    q = g.add(Op.TRANSPOSE, [x], {"perm": (2, 1, 0, 3, 4)})
    kt = g.add(Op.TRANSPOSE, [x], {"perm": (2, 1, 0, 4, 3)})
    sc = g.add(Op.MUL, [g.add(Op.MATMUL, [q, kt]), g.constant(np.array(0.3, F32))])
    p = g.add(Op.SOFTMAX, [sc], {"axis": -1})
    g.output(g.add(Op.MATMUL, [p, q]), "y")
    feed = np.random.default_rng(4).standard_normal((4, 3, 2, 6, 8)).astype(F32)
    qv = feed.transpose(2, 1, 0, 3, 4)
    for backend, note in (("auto", "c.attention not used: the batch dims"), ("numpy", "")):
        it = pyinfer.Interpreter(g, backend=backend)
        (y,) = it.run([feed])
        text = it.explain()
        assert "attention(matmul,softmax,matmul) <- attention" in text and note in text, text
        _check(y, qv, qv, qv, None, 0.3, F32, backend)


@pytest.mark.skipif(_native.lib is None, reason="C extension not built")
def test_plan_attention_output_as_a_strided_caller_buffer():
    """The ATTENTION result as a graph output written into a caller's strided
    array: the planned layout does not apply, the call re-plans it."""
    g = Graph("att")
    q = g.input("q", (2, 5, 4), F32)
    kt = g.add(Op.TRANSPOSE, [q], {"perm": (0, 2, 1)})
    p = g.add(Op.SOFTMAX, [g.add(Op.MATMUL, [q, kt])], {"axis": -1})
    g.output(g.add(Op.MATMUL, [p, q]), "y")
    it = pyinfer.Interpreter(g)
    x = np.random.default_rng(2).standard_normal((2, 5, 4)).astype(F32)
    big = np.full((2, 5, 8), np.nan, F32)
    it.run([x], outputs=[big[..., ::2]])
    assert "c.attention" in it.explain()
    _check(big[..., ::2], x, x, x, None, 1.0, F32)
    assert np.isnan(big[..., 1::2]).all()
