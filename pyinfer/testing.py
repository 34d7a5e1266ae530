"""What the tests and benchmarks share (STYLE.md 12): the op case list, the
reference evaluation in float64, and the tolerance policy.

Tolerances are set from error analysis, per dtype, before any kernel is
tested; a failing comparison is a kernel bug, never a reason to loosen them:

* elementwise: ``rtol = 1e-5, atol = 1e-6`` (float32; a few dozen ulp, what a
  vectorized polynomial exp/tanh/erf keeps) and ``1e-12 / 1e-14`` (float64).
* anything that sums ``n`` terms (reductions, softmax, norms, GEMM's K) adds
  the probabilistic rounding bound ``4 * sqrt(n) * eps * sum|terms|``
  (Higham, *Accuracy and Stability*, 2nd ed., 3.1), which holds for any
  summation order the kernel picks (sequential, blocked, pairwise, SIMD lanes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

BASE_TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def sum_bound(n: int, abs_sum, dtype):
    """Rounding bound for a sum of ``n`` terms whose absolute values sum to ``abs_sum``."""
    return 4.0 * math.sqrt(max(n, 1)) * eps(dtype) * np.asarray(abs_sum, dtype=np.float64)


def assert_close(actual, expected, dtype, *, atol_extra=0.0, rtol_extra=0.0, what=""):
    """Compare ``actual`` (any dtype) with a float64 ``expected`` under the
    dtype's tolerance plus the op-specific bound.  NaN must match NaN, and an
    infinity must match the same infinity."""
    rtol, atol = BASE_TOL[np.dtype(dtype)]
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    bad_nan = nan_a != nan_e
    inf_e = np.isinf(expected)
    bad_inf = inf_e & (actual != expected)
    finite = ~(nan_e | inf_e | nan_a)
    tol = atol + np.asarray(atol_extra) + (rtol + np.asarray(rtol_extra)) * np.abs(expected)
    tol = np.broadcast_to(tol, expected.shape)
    err = np.abs(actual - expected)
    bad = bad_nan | bad_inf | (finite & ~(err <= tol))
    if bad.any():
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {idx}: "
            f"actual {actual[idx]!r}, expected {expected[idx]!r}, tol {float(tol[idx]):.3g}")


# ---- the case list ---------------------------------------------------------

UNARY = ("exp", "log", "sqrt", "rsqrt", "abs", "neg", "tanh", "sigmoid", "relu", "gelu",
         "gelu_tanh", "silu", "erf")
BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
REDUCE = ("sum", "mean", "max", "min")
ACTIVATIONS = (None, "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh")
# Inputs of these ops must stay in the domain where the result is finite.
POSITIVE_INPUT = ("log", "sqrt", "rsqrt")


@dataclass(frozen=True)
class OpCase:
    """One op call: its name, input shapes, attributes.  Tests run it on every
    backend against the reference; bench/ times it against the peers."""
    op: str
    shapes: tuple
    attrs: dict = field(default_factory=dict)
    dtype: str = "float32"
    label: Optional[str] = None

    def __str__(self):
        shapes = ",".join("x".join(map(str, s)) or "()" for s in self.shapes)
        attrs = ",".join(f"{k}={v}" for k, v in self.attrs.items())
        return self.label or f"{self.op}[{shapes}{';' + attrs if attrs else ''}]{self.dtype}"


# The benchmark cases named by the speed targets (bench/ times these).
BENCH_CASES = (
    OpCase("gemm", ((1024, 1024), (1024, 1024))),
    OpCase("gemm", ((8, 768), (768, 3072))),
    OpCase("gemm", ((1, 768), (768, 3072))),
    OpCase("gemm", ((128, 384), (384, 1536), (1536,)), {"activation": "gelu"}),
    OpCase("softmax", ((12, 1536, 128),), {"axis": -1}),
    OpCase("layer_norm", ((4096, 384), (384,), (384,)), {"eps": 1e-5}),
    OpCase("add", ((1 << 24,), (1 << 24,))),
)
# Timed by bench/ too, beyond the targets.
EXTRA_BENCH_CASES = (
    OpCase("gelu", ((1 << 24,),)),
    OpCase("sum", ((4096, 384),), {"axis": -1}),
    OpCase("matmul", ((12, 128, 64), (12, 64, 128))),
    OpCase("rms_norm", ((4096, 384), (384,)), {"eps": 1e-5}),
)


def random_input(rng: np.random.Generator, shape, dtype, op: str = "") -> np.ndarray:
    """Unit-scale data; strictly positive where the op needs it."""
    x = rng.standard_normal(shape)
    if op in POSITIVE_INPUT:
        x = np.abs(x) + 0.05
    return x.astype(dtype)
