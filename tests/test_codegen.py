"""The fused-kernel code generator (kernels/codegen.py) against the NumPy meaning
of a program (pyinfer.graph.reference.run_program).

Compile time dominates: every distinct (program, dtypes, canonical pattern)
is one Numba compile, so the examples below draw shapes freely but programs,
dtypes and broadcast patterns from small fixed pools (different shapes with the
same pattern reuse one kernel: that is what canonicalisation is for).
"""
from __future__ import annotations

import os
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyinfer.graph.reference import run_program
from pyinfer.kernels import codegen as cg
from pyinfer.testing import BASE_TOL, assert_close, sum_bound

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


# ---- a seeded generator of well-conditioned random programs ----------------------------
# Values stay within |v| <= 8 and every op is well conditioned there, so the
# float32 tolerance (a few ulp of O(1) values) holds for the whole program.

def random_program(seed: int, n_inputs: int = 3, n_ops: int = 14):
    rnd = random.Random(seed)
    prog, bound, isbool = [], [], []

    def add(ins, b, is_b=False):
        prog.append(ins)
        bound.append(b)
        isbool.append(is_b)
        return len(prog) - 1

    def const(v):
        return add(("const", float(v)), abs(v))

    for j in range(n_inputs):
        add(("in", j), 3.0)
    while len(prog) < n_inputs + n_ops:
        fl = [i for i in range(len(prog)) if not isbool[i] and prog[i][0] != "const"]
        a, b = rnd.choice(fl[-3:]), rnd.choice(fl)     # mostly chains, some fan-in
        kind = rnd.choice(["squash", "keep", "exp", "log", "sqrt", "add", "sub", "mul",
                           "max", "min", "div", "where", "recip"])
        if kind == "squash":
            add((rnd.choice(["tanh", "sigmoid", "erf"]), a), 1.0)
        elif kind == "keep":
            add((rnd.choice(["neg", "abs", "relu", "gelu", "silu", "gelu_tanh"]), a), bound[a])
        elif kind == "exp":
            t = add(("tanh", a), 1.0)
            add(("exp", t), 2.72)
        elif kind in ("log", "sqrt", "recip", "div"):
            pos = add(("add", add(("abs", b), bound[b]), const(1.5)), bound[b] + 1.5)
            if kind == "log":
                add(("log", pos), np.log(bound[b] + 1.5))
            elif kind == "sqrt":
                add(("sqrt", pos), np.sqrt(bound[b] + 1.5))
            elif kind == "recip":
                add(("reciprocal", pos), 1.0)
            else:
                add(("div", a, pos), bound[a] / 1.5)
        elif kind in ("add", "sub") and bound[a] + bound[b] <= 9:
            add((kind, a, b), bound[a] + bound[b])
        elif kind == "mul" and bound[a] * bound[b] <= 9:
            add(("mul", a, b), bound[a] * bound[b])
        elif kind in ("max", "min"):
            add(("maximum" if kind == "max" else "minimum", a, b), max(bound[a], bound[b]))
        elif kind == "where":
            c = add((rnd.choice(["less", "greater_equal", "not_equal"]), a, const(0.25)),
                    1.0, True)
            add(("where", c, a, b), max(bound[a], bound[b]))
    # the first result reads every input
    last = add(("tanh", len(prog) - 1), 1.0)
    for j in range(n_inputs):
        last = add(("add", last, add(("sigmoid", j), 1.0)), bound[last] + 1.0)
    return tuple(prog), (last, rnd.randrange(n_inputs, last))


PROGRAMS = [random_program(209), random_program(263)]   # seeds picked for op coverage

# canonical broadcast patterns, as functions of sizes (m, n, k) >= 2 -> input shapes,
# output shape; every input 0 is full.
PATTERNS = {
    "full": lambda m, n, k: (((m, n), (m, n), (m, n)), (m, n)),
    "row_scalar": lambda m, n, k: (((m, n), (n,), ()), (m, n)),
    "col_row": lambda m, n, k: (((m, n), (m, 1), (1, n)), (m, n)),
    "middle": lambda m, n, k: (((m, n, k), (m, 1, k), (n, 1)), (m, n, k)),
}
# (program, dtype) pairs; each meets each pattern: 3 x 4 kernels at most
PROG_DTYPES = [(0, F32), (1, F64), (1, F32)]


def _data(rng, shape, dtype, strided):
    x = np.clip(rng.standard_normal(shape), -3, 3).astype(dtype)
    if strided and x.ndim >= 1:
        # same values, non-contiguous: every other element of a wider array
        wide = np.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
        assert not x.flags.c_contiguous or x.size <= 1
    return x


def _expected(prog, results, xs):
    outs = run_program(prog, results, [x.astype(np.float64) for x in xs], np.float64)
    return outs


def _attrs(prog, results, shape, dtype, **extra):
    return dict(program=prog, results=results, shape=shape, dtype=dtype, **extra)


def _insert_ones(shapes, out_shape, where):
    """Add a size-1 dim at position ``where`` of the output (and of each input that
    reaches that far): the canonical pattern, so the kernel, must not change."""
    nd = len(out_shape)
    pos = where % (nd + 1)
    new_out = out_shape[:pos] + (1,) + out_shape[pos:]
    new_in = []
    for s in shapes:
        al = (1,) * (nd - len(s)) + tuple(s)
        new_in.append(al[:pos] + (1,) + al[pos:])
    return new_in, new_out


@settings(max_examples=30)
@given(pd=st.sampled_from(PROG_DTYPES), pattern=st.sampled_from(sorted(PATTERNS)),
       m=st.sampled_from([2, 3, 7, 13, 64]), n=st.sampled_from([2, 5, 17, 31, 257]),
       k=st.sampled_from([2, 3, 11]), ones=st.none() | st.integers(0, 3),
       strided=st.booleans(), seed=st.integers(0, 2**31))
def test_random_programs(pd, pattern, m, n, k, ones, strided, seed):
    pi, dtype = pd
    prog, results = PROGRAMS[pi]
    shapes, out_shape = PATTERNS[pattern](m, n, k)
    if ones is not None:
        shapes, out_shape = _insert_ones(shapes, out_shape, ones)
    rng = np.random.default_rng(seed)
    xs = [_data(rng, s, dtype, strided and i != 1) for i, s in enumerate(shapes)]
    kern = cg.compile_fused(_attrs(prog, results, out_shape, dtype), shapes, [dtype] * 3)
    outs = [np.full(out_shape, np.nan, dtype) for _ in results]
    kern(xs, outs)
    for q, (got, want) in enumerate(zip(outs, _expected(prog, results, xs))):
        assert_close(got, np.broadcast_to(want, out_shape), dtype,
                     what=f"{pattern} result {q} {dtype}")


def test_canonical_patterns():
    prog, results = PROGRAMS[0]
    spec = lambda shapes, out: cg._Spec(_attrs(prog, results, out, F32), shapes,  # noqa: E731
                                        [F32] * 3)
    s = spec([(4, 5), (4, 5), ()], (4, 5))
    assert (s.sizes, s.pattern) == ((20,), ("F", "F", "B"))
    s = spec([(4, 5), (5,), (4, 1)], (4, 5))
    assert (s.sizes, s.pattern) == ((4, 5), ("FF", "BF", "FB"))
    s = spec([(1, 4, 1, 5), (5,), ()], (1, 4, 1, 5))
    assert (s.sizes, s.pattern) == ((4, 5), ("FF", "BF", "BB"))
    s = spec([(2, 3, 4), (2, 1, 4), (3, 1)], (2, 3, 4))
    assert (s.sizes, s.pattern) == ((2, 3, 4), ("FFF", "FBF", "BFB"))
    # the key does not depend on sizes, only on the canonical pattern
    assert cg.key(_attrs(prog, results, (4, 5), F32), [(4, 5), (5,), ()], [F32] * 3) == \
        cg.key(_attrs(prog, results, (9, 1, 3), F32), [(9, 1, 3), (3,), (1,)], [F32] * 3)


def test_bool_results_and_where():
    # y = where(x < c, x * 2, -x); m = x < c; both stored (dtypes differ)
    prog = (("in", 0), ("in", 1), ("less", 0, 1), ("const", 2.0), ("mul", 0, 3),
            ("neg", 0), ("where", 2, 4, 5), ("logical_not", 2))
    shape = (33, 17)
    attrs = _attrs(prog, (6, 2, 7), shape, F32, dtypes=(F32, np.dtype(bool), np.dtype(bool)))
    kern = cg.compile_fused(attrs, [shape, (17,)], [F32, F32])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(F32)
    c = rng.standard_normal(17).astype(F32)
    y = np.full(shape, np.nan, F32)
    m = np.ones(shape, bool)
    nm = np.zeros(shape, bool)
    kern([x, c], [y, m, nm])
    np.testing.assert_array_equal(m, x < c)
    np.testing.assert_array_equal(nm, ~(x < c))
    np.testing.assert_array_equal(y, np.where(x < c, x * 2, -x))


def test_bool_input_and_scalar_output():
    prog = (("in", 0), ("in", 1), ("const", 1.0), ("add", 1, 2), ("where", 0, 3, 1))
    attrs = _attrs(prog, (4,), (), F64)
    kern = cg.compile_fused(attrs, [(), ()], [np.dtype(bool), F64])
    out = np.full((), np.nan)
    kern([np.array(True), np.array(2.5)], [out])
    assert out == 3.5


def test_special_values_propagate():
    prog, results = PROGRAMS[0]
    kern = cg.compile_fused(_attrs(prog, results, (3, 5), F32), [(3, 5)] * 3, [F32] * 3)
    x = np.full((3, 5), 0.5, F32)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, np.inf, -np.inf
    xs = [x, x.copy(), x.copy()]
    outs = [np.zeros((3, 5), F32) for _ in results]
    kern(xs, outs)
    for got, want in zip(outs, _expected(prog, results, xs)):
        assert_close(got, np.broadcast_to(want, got.shape), F32, what="special values")
    assert np.isnan(outs[0][0, 0])       # NaN in every input reaches the first result
    # the bench expression through every special value
    prog = (("in", 0), ("const", 0.5), ("mul", 0, 1), ("tanh", 2), ("sigmoid", 0),
            ("mul", 3, 4), ("exp", 0), ("maximum", 5, 6))
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0], F32)
    kern = cg.compile_fused(_attrs(prog, (7,), vals.shape, F32), [vals.shape], [F32])
    out = np.zeros_like(vals)
    kern([vals], [out])
    # NumPy in float32 itself: exp(100) overflows to inf there, as it must here
    (want,) = run_program(prog, (7,), [vals], F32)
    assert_close(out, want, F32, what="nan/inf")


def test_same_program_compiles_once():
    prog, results = PROGRAMS[1]
    attrs = _attrs(prog, results, (6, 7), F64)
    k1 = cg.compile_fused(attrs, [(6, 7)] * 3, [F64] * 3)
    n = cg.compile_count()
    k2 = cg.compile_fused(dict(attrs), [(6, 7)] * 3, [F64] * 3)
    assert k2 is k1 and cg.compile_count() == n
    # other sizes, same canonical pattern: the same file and dispatcher, no compile
    k3 = cg.compile_fused(_attrs(prog, results, (50, 3, 9), F64), [(50, 3, 9)] * 3, [F64] * 3)
    assert k3.path == k1.path and k3._fn is k1._fn and cg.compile_count() == n
    assert os.path.basename(k1.path) == f"fused_{cg._digest(k1.key)}.py"
    assert cg.source(attrs, [(6, 7)] * 3, [F64] * 3) == k1.source
    with open(k1.path) as f:
        assert f.read() == k1.source
    # calling never compiles
    xs = [np.ones((50, 3, 9))] * 3
    k3(xs, [np.empty((50, 3, 9)) for _ in results])
    assert cg.compile_count() == n


def test_bad_arguments_are_named():
    from pyinfer.errors import DTypeError, ShapeError
    prog, results = PROGRAMS[1]
    kern = cg.compile_fused(_attrs(prog, results, (6, 7), F64), [(6, 7)] * 3, [F64] * 3)
    good = [np.ones((6, 7))] * 3
    outs = [np.empty((6, 7)) for _ in results]
    with pytest.raises(ShapeError, match=r"inputs\[1\]"):
        kern([good[0], np.ones((7, 6)), good[2]], outs)
    with pytest.raises(DTypeError, match=r"inputs\[2\]"):
        kern([good[0], good[1], np.ones((6, 7), F32)], outs)
    with pytest.raises(ShapeError, match=r"outputs\[0\]"):
        kern(good, [np.empty((7, 6)).T, outs[1]])
    with pytest.raises(ShapeError, match="does not broadcast"):
        cg.compile_fused(_attrs(prog, results, (6, 7), F64), [(6, 7), (5,), ()], [F64] * 3)


# ---- reductions ------------------------------------------------------------------------

# value = tanh(x * y) + x (y broadcast), then reduced
RPROG = (("in", 0), ("in", 1), ("mul", 0, 1), ("tanh", 2), ("add", 3, 0))
RCASES = [  # (reduce, dtype, x shape fn, y shape fn, axis, keepdims)
    ("sum", F32, lambda a, b, c: (a, b), lambda a, b, c: (b,), (1,), True),
    ("mean", F64, lambda a, b, c: (a, b), lambda a, b, c: (b,), (0,), False),
    ("max", F32, lambda a, b, c: (a, b, c), lambda a, b, c: (c,), (1, 2), False),
    ("min", F32, lambda a, b, c: (a, b, c), lambda a, b, c: (a, 1, 1), (1,), True),
    ("sum", F32, lambda a, b, c: (a, b, c), lambda a, b, c: (b, 1), (0, 2), False),
]


def _reduce_expected(val, op, axis, keepdims):
    fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[op]
    return fn(val, axis=axis, keepdims=keepdims)


def _check_reduction(kern, xs, op, axis, keepdims, dtype, shape):
    out = np.full(kern.out_shapes[0], np.nan, dtype)
    kern(xs, [out])
    (val,) = run_program(RPROG, (4,), [x.astype(np.float64) for x in xs], np.float64)
    val = np.broadcast_to(val, shape)
    want = _reduce_expected(val, op, axis, keepdims)
    n = int(np.prod([shape[a] for a in axis]))
    s = np.sum(np.abs(val), axis=axis, keepdims=keepdims)
    extra = sum_bound(n, s, dtype) + BASE_TOL[dtype][0] * s
    if op == "mean":
        extra = extra / n
    elif op in ("max", "min"):
        extra = 0.0
    assert_close(out, want, dtype, atol_extra=extra, what=f"{op} axis={axis}")
    return out


@settings(max_examples=25)
@given(case=st.integers(0, len(RCASES) - 1), a=st.sampled_from([1, 2, 5, 19]),
       b=st.sampled_from([2, 3, 33, 300]), c=st.sampled_from([2, 7, 260]),
       seed=st.integers(0, 2**31))
def test_reductions(case, a, b, c, seed):
    op, dtype, xs_fn, ys_fn, axis, keepdims = RCASES[case]
    shape = xs_fn(a, b, c)
    ys = ys_fn(a, b, c)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(ys).astype(dtype)
    attrs = dict(program=RPROG, results=(4,), reduce=op, axis=axis, keepdims=keepdims,
                 shape=None, dtype=dtype)
    kern = cg.compile_fused(attrs, [shape, ys], [dtype, dtype])
    _check_reduction(kern, [x, y], op, axis, keepdims, dtype, shape)


def test_reduction_nan_and_empty():
    attrs = dict(program=RPROG, results=(4,), reduce="max", axis=(1, 2), keepdims=False,
                 shape=None, dtype=F32)
    kern = cg.compile_fused(attrs, [(3, 4, 5), (5,)], [F32, F32])
    x = np.ones((3, 4, 5), F32)
    x[1, 2, 3] = np.nan
    out = np.zeros(3, F32)
    kern([x, np.ones(5, F32)], [out])
    assert np.isnan(out[1]) and not np.isnan(out[0]) and not np.isnan(out[2])
    attrs = dict(attrs, reduce="sum", axis=(1,), keepdims=True)
    kern = cg.compile_fused(attrs, [(4, 0), (0,)], [F32, F32])
    out = np.full((4, 1), np.nan, F32)
    kern([np.ones((4, 0), F32), np.ones(0, F32)], [out])
    assert (out == 0).all()


def test_parallel_reduction_is_thread_count_invariant():
    """Fixed split points: one and two threads give the same bits.  A sum of
    300K elements to a scalar: five fixed CHUNKs, partials combined in order."""
    axis = (0, 1)
    import pyinfer
    shape = (300, 1000)
    attrs = dict(program=RPROG, results=(4,), reduce="sum", axis=axis, keepdims=False,
                 shape=None, dtype=F32)
    kern = cg.compile_fused(attrs, [shape, (1000,)], [F32, F32], parallel=True)
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(shape).astype(F32), rng.standard_normal(1000).astype(F32)]
    before = pyinfer.get_num_threads()
    try:
        got = []
        for n in (1, 2):
            pyinfer.set_num_threads(n)
            got.append(_check_reduction(kern, xs, "sum", axis, False, F32, shape))
        np.testing.assert_array_equal(got[0], got[1])
    finally:
        pyinfer.set_num_threads(before)


def test_parallel_elementwise_matches_serial():
    prog, results = PROGRAMS[0]
    shape = (300, 257)
    attrs = _attrs(prog, results, shape, F32)
    par = cg.compile_fused(attrs, [shape, (257,), ()], [F32] * 3, parallel=True)
    ser = cg.compile_fused(attrs, [shape, (257,), ()], [F32] * 3, parallel=False)
    assert par.parallel and not ser.parallel and par.path == ser.path
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(s).astype(F32) for s in (shape, (257,), ())]
    a = [np.full(shape, np.nan, F32) for _ in results]
    b = [np.full(shape, np.nan, F32) for _ in results]
    par(xs, a)
    ser(xs, b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---- vectorization ------------------------------------------------------------------------

def test_float32_kernel_vectorizes(tmp_path, monkeypatch):
    """The generated float32 loop is packed AVX2 (ymm) code, transcendentals included.
    A fresh cache dir: Numba cannot show the assembly of a kernel loaded from disk."""
    monkeypatch.setenv("PYINFER_CACHE_DIR", str(tmp_path))
    prog = (("in", 0), ("in", 1), ("mul", 0, 1), ("const", 0.3125), ("add", 2, 3),
            ("tanh", 4), ("sigmoid", 0), ("mul", 5, 6), ("add", 7, 1))
    kern = cg.compile_fused(_attrs(prog, (8,), (64, 128), F32), [(64, 128), (128,)],
                            [F32, F32], parallel=False)
    assert kern.path.startswith(str(tmp_path))
    asm = kern._fn.inspect_asm(kern._module.sig)
    if not re.search(r"\bv\w+\s", asm):
        pytest.skip("no x86 AVX assembly on this machine")
    packed = re.findall(r"\bv(?:fmadd|fnmadd|fmsub|mul|add|sub|div)\w*ps\s+[^\n]*%ymm", asm)
    assert len(packed) >= 16, f"float32 kernel not vectorized: {len(packed)} packed ymm ops"
