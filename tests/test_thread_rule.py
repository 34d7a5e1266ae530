"""The thread rule (csrc/pi_internal.h, ``pi_threads_for``): results never depend
on how many threads a kernel call used.

Every C kernel that forks decides its thread count from its estimated work;
with the fork threshold at 0 (``pyinfer.threads.fork_threshold(0)``) the same
small calls are split over 2 threads.  Each case runs once on 1 thread and
once split, outputs poisoned with NaN first, and the two must agree: exactly
where the split only hands whole rows, planes, panels or elements to each
thread (the arithmetic of each output is the same), within the dtype's GEMM
bound where the thread count also picks the GEMM's B handling (streamed or
packed) and so its micro-kernel.  The NumPy-reference tests of each family
(test_c_ops, test_sparse, test_attention, test_conv, test_winograd, ...)
check the values themselves.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from pyinfer import ops, threads
from pyinfer.backends import _native
from pyinfer.errors import ShapeError
from pyinfer.testing import assert_close, sum_bound

needs_c = pytest.mark.skipif(_native.lib is None, reason="C extension not built")
pytestmark = needs_c

FLOATS = st.sampled_from([np.float32, np.float64])


@contextlib.contextmanager
def team(n: int, fork_ns: float):
    """n OpenMP threads (set in C directly: the test needs 2 even where the
    process may use one core) and the given fork threshold."""
    lib = _native.lib
    before = lib.pi_get_num_threads()
    lib.pi_set_num_threads(n)
    try:
        with threads.fork_threshold(fork_ns):
            yield
    finally:
        lib.pi_set_num_threads(before)


def one_and_split(run, shape, dtype=np.float32):
    """run(out) on 1 thread and split over 2 threads (fork threshold 0)."""
    got = []
    for n, fork in ((1, threads.fork_ns()), (2, 0.0)):
        out = np.full(shape, np.nan, dtype)
        with team(n, fork):
            run(out)
        got.append(out)
    return got


def same(run, shape, dtype=np.float32):
    single, split = one_and_split(run, shape, dtype)
    np.testing.assert_array_equal(split, single)
    assert not np.isnan(split).any()


def arr(draw, shape, dtype):
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- the knob ----------------------------------------------------------------------

def test_fork_ns_round_trips_and_validates():
    before = threads.fork_ns()
    assert before > 0
    with threads.fork_threshold(0):
        assert threads.fork_ns() == 0.0
        with threads.fork_threshold(12345.0):
            assert threads.fork_ns() == 12345.0
        assert threads.fork_ns() == 0.0
    assert threads.fork_ns() == before
    for bad in (-1.0, float("nan"), "5", True):
        with pytest.raises(ShapeError, match="'ns'"):
            threads.set_fork_ns(bad)
    assert threads.fork_ns() == before


def test_fork_us_environment_variable_sets_the_threshold(tmp_path):
    import subprocess
    import sys
    code = "from pyinfer import threads; print(threads.fork_ns())"
    env = {**__import__("os").environ, "PYINFER_FORK_US": "7.5"}
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()[-1]
    assert float(got) == 7500.0


# ---- kernels: 1 thread and split agree ------------------------------------------------

@settings(deadline=None, max_examples=30)
@given(st.data(), FLOATS, st.integers(1, 300),
       st.sampled_from(["add", "mul", "pow", "exp", "gelu", "tanh", "relu", "sqrt"]))
def test_elementwise(data, dtype, n, op):
    x = np.abs(arr(data.draw, (n,), dtype)) + 0.5
    if op in ("add", "mul", "pow"):
        y = arr(data.draw, (n,), dtype)
        same(lambda out: getattr(ops, op)(x, y, out=out, backend="c"), (n,), dtype)
    else:
        same(lambda out: getattr(ops, op)(x, out=out, backend="c"), (n,), dtype)


@settings(deadline=None, max_examples=15)
@given(st.data(), FLOATS, st.integers(1, 9), st.integers(1, 70), st.integers(1, 5))
def test_softmax_and_norms(data, dtype, outer, n, inner):
    x = arr(data.draw, (outer, n, inner), dtype)
    same(lambda out: ops.softmax(x, axis=1, out=out, backend="c"), x.shape, dtype)
    rows = arr(data.draw, (outer, n), dtype)
    w = arr(data.draw, (n,), dtype)
    same(lambda out: ops.layer_norm(rows, w, w, out=out, backend="c"), rows.shape, dtype)
    same(lambda out: ops.rms_norm(rows, w, out=out, backend="c"), rows.shape, dtype)


@settings(deadline=None, max_examples=25)
@given(st.data(), st.integers(1, 9), st.integers(1, 40), st.integers(1, 70),
       st.sampled_from([(1, 16), (4, 16), (2, 8), (3, 5)]))
def test_sparse_gemm(data, m, k, n, block):
    w = arr(data.draw, (k, n), np.float32)
    w[np.abs(w) < 1.0] = 0
    wb = ops.to_bsr(w, block)
    x = arr(data.draw, (m, k), np.float32)
    b = arr(data.draw, (n,), np.float32)
    same(lambda out: ops.sparse_gemm(x, wb, b, "gelu", out=out, backend="c"), (m, n))


@settings(deadline=None, max_examples=30)
@given(st.data(), FLOATS, st.integers(1, 4), st.integers(1, 70), st.integers(1, 90),
       st.integers(1, 40))
def test_gemm(data, dtype, batch, m, n, k):
    a = arr(data.draw, (batch, m, k), dtype)
    b = arr(data.draw, (batch, k, n), dtype)
    single, split = one_and_split(lambda out: ops.matmul(a, b, out=out, backend="c"),
                                  (batch, m, n), dtype)
    # The thread count may switch B between streamed and packed, so the
    # micro-kernel: both within the GEMM bound of the exact product.
    exact = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    bound = 2 * sum_bound(k, exact, dtype)
    assert_close(split, single, dtype, atol_extra=bound, what="gemm split vs 1 thread")


@settings(deadline=None, max_examples=10)
@given(st.data(), st.integers(1, 40), st.integers(1, 70), st.integers(1, 40))
def test_gemm_packed(data, m, n, k):
    from pyinfer.backends import c_gemm
    b = c_gemm.pack_b(arr(data.draw, (k, n), np.float32), m)
    a = arr(data.draw, (m, k), np.float32)
    same(lambda out: c_gemm.gemm_packed(a, b, None, None, alpha=1.0, activation=None, out=out),
         (m, n))


@settings(deadline=None, max_examples=10)
@given(st.data(), FLOATS, st.integers(1, 3), st.integers(1, 20), st.integers(1, 40),
       st.integers(1, 20))
def test_attention(data, dtype, heads, sq, sk, d):
    q = arr(data.draw, (1, heads, sq, d), dtype)
    k = arr(data.draw, (1, heads, sk, d), dtype)
    v = arr(data.draw, (1, heads, sk, d), dtype)
    same(lambda out: ops.attention(q, k, v, out=out, backend="c"), q.shape, dtype)


@settings(deadline=None, max_examples=10)
@given(st.data(), FLOATS, st.integers(1, 2), st.integers(1, 6), st.integers(3, 13))
def test_pooling(data, dtype, n, c, hw):
    x = arr(data.draw, (n, c, hw, hw), dtype)
    oh = (hw + 2 - 3) // 2 + 1
    same(lambda out: ops.max_pool2d(x, (3, 3), (2, 2), 1, out=out, backend="c"),
         (n, c, oh, oh), dtype)
    same(lambda out: ops.avg_pool2d(x, (3, 3), (2, 2), 1, out=out, backend="c"),
         (n, c, oh, oh), dtype)
    same(lambda out: ops.global_avg_pool(x, out=out, backend="c"), (n, c, 1, 1), dtype)


@settings(deadline=None, max_examples=40)
@given(st.data(), st.sampled_from(["implicit", "depthwise", "winograd", "nchwc"]),
       st.integers(1, 2), st.integers(3, 11))
def test_conv_paths(data, path, n, hw):
    from pyinfer.backends import c_conv
    c = 8 if path in ("depthwise", "nchwc") else data.draw(st.integers(1, 9))
    k = c if path == "depthwise" else (8 if path == "nchwc" else data.draw(st.integers(1, 9)))
    groups = c if path == "depthwise" else 1
    x = arr(data.draw, (n, c, hw, hw), np.float32)
    w = arr(data.draw, (k, c // groups, 3, 3), np.float32)
    if path == "nchwc":
        from pyinfer.graph.families.conv import to_nchwc
        # AVX2 only: elsewhere the drawn case is discarded (a skip would skip the test)
        assume(c_conv.nchwc_reason(x.shape, w.shape, 1, np.float32) is None)
        kern = c_conv.NchwcConvKernel(x.shape, w, None, stride=(1, 1), pads=(1, 1, 1, 1),
                                      dilation=(1, 1), activation=None, clip=None)
        x5 = to_nchwc(x, 8)
        same(lambda out: kern(x5, None, out), (n, 1, hw, hw, 8))
        return
    with c_conv.force_path(path):
        same(lambda out: ops.conv2d(x, w, padding=1, groups=groups, out=out, backend="c"),
             (n, k, hw, hw))
