"""Vectorizable scalar math for Numba kernels: exp, log, tanh, sigmoid, erf, gelu, gelu_tanh, silu.

Numba from PyPI has no SVML, so ``math.exp`` in a jitted loop is a scalar libm
call that stops LLVM from vectorizing the loop.  The float32 versions here are
branch-free (selects only) polynomial/rational approximations, written so that
LLVM turns a loop over them into packed AVX2/FMA code; 2**n is made by an
integer bitcast (``_i32_as_f32``).  Each is within a few ulp of the float64
truth (measured by tests/test_numba_fastmath.py) and keeps special values:
exp(-inf)=0, exp(inf)=inf, NaN propagates, large |x| saturates, -0 keeps its sign.

float64 uses libm (``math.exp`` ...): accurate, not vectorized.

Each public name (``exp``, ``tanh``, ...) is a plain Python function (a NumPy
reference, usable outside Numba) overloaded for Numba on float32/float64
scalars, so one kernel source serves both dtypes.  The overloads are compiled
with ``_FM`` (contract + arcp only): no nnan/ninf (NaN/Inf must survive) and no
nsz (tanh(-0) = -0).

Caveat of Numba's cache: a kernel cached on disk is not invalidated when this
file changes; clear ``__pycache__`` of kernels/ after editing it.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

_FM = {"contract", "arcp"}
# forceinline: the entry-point wrappers (and gelu_f32/erf_f32, too large for LLVM's
# inline threshold) are marked alwaysinline, so a kernel loop over them has no call
# and vectorizes.  LLVM inlining keeps each instruction's own fast-math flags.
_JO = {"fastmath": _FM, "error_model": "numpy", "forceinline": True}

f32 = np.float32
i32 = np.int32


# ---- bitcasts ---------------------------------------------------------------

@intrinsic
def _i32_as_f32(typingctx, i):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return sig, codegen


@intrinsic
def _f32_as_i32(typingctx, x):
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return sig, codegen


# ---- float32 approximations ---------------------------------------------------
# Constants are np.float32 globals: a Python float literal would promote the
# arithmetic to float64.

_EXP_HI = f32(88.8)           # above log(FLT_MAX)=88.7228: result overflows to inf
_EXP_LO = f32(-104.0)         # below log(denormal min / 2): result rounds to 0
_LOG2E = f32(1.44269504088896341)
_HALF = f32(0.5)
_ONE = f32(1.0)
_TWO = f32(2.0)
_ZERO = f32(0.0)
_NZERO = f32(-0.0)
_C1 = f32(0.693359375)        # Cody-Waite split of ln 2: C1 has 9 significant bits
_C2 = f32(-2.12194440e-4)
# Cephes expf minimax polynomial for e**r - 1 - r on |r| <= ln2/2.
_E0 = f32(1.9875691500e-4)
_E1 = f32(1.3981999507e-3)
_E2 = f32(8.3334519073e-3)
_E3 = f32(4.1665795894e-2)
_E4 = f32(1.6666665459e-1)
_E5 = f32(5.0000001201e-1)


@register_jitable(fastmath=_FM, error_model="numpy")
def _exp_reduced(r, n):
    """e**r * 2**n for |r| <= ln2/2 (float32) and n = round(x / ln2)."""
    p = _E0
    p = p * r + _E1
    p = p * r + _E2
    p = p * r + _E3
    p = p * r + _E4
    p = p * r + _E5
    p = p * (r * r) + r + _ONE
    ni = i32(n)
    # 2**n as two factors so that n in [-150, 128] never leaves the normal range
    # of each factor: the product then rounds once into the denormals or to inf.
    n1 = ni >> i32(1)
    n2 = ni - n1
    s1 = _i32_as_f32((n1 + i32(127)) << i32(23))
    s2 = _i32_as_f32((n2 + i32(127)) << i32(23))
    return (p * s1) * s2


@register_jitable(fastmath=_FM, error_model="numpy")
def exp_f32(x):
    xc = x
    if xc > _EXP_HI:
        xc = _EXP_HI
    if xc < _EXP_LO:
        xc = _EXP_LO
    if xc != xc:              # NaN: keep the integer path defined, restore NaN below
        xc = _ZERO
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _C1
    r = r - n * _C2
    y = _exp_reduced(r, n)
    if x != x:
        y = x
    return y


_SQRTHF = f32(0.707106781186547524)
_L = (f32(7.0376836292e-2), f32(-1.1514610310e-1), f32(1.1676998740e-1),
      f32(-1.2420140846e-1), f32(1.4249322787e-1), f32(-1.6668057665e-1),
      f32(2.0000714765e-1), f32(-2.4999993993e-1), f32(3.3333331174e-1))
_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8 = _L
_FLT_MIN = f32(1.17549435e-38)
_TWO23 = f32(8388608.0)
_INF32 = f32(np.inf)
_NAN32 = f32(np.nan)


@register_jitable(fastmath=_FM, error_model="numpy")
def log_f32(x):
    # Cephes logf: x = m * 2**e with m in [sqrt(1/2), sqrt(2)), log(1+f) by a polynomial.
    xs = x
    eadj = i32(0)
    if x < _FLT_MIN:          # denormals (and 0, negatives; fixed up below)
        xs = x * _TWO23
        eadj = i32(-23)
    bits = _f32_as_i32(xs)
    e = ((bits >> i32(23)) & i32(0xFF)) - i32(126) + eadj
    m = _i32_as_f32((bits & i32(0x007FFFFF)) | i32(0x3F000000))   # [0.5, 1)
    if m < _SQRTHF:
        e = e - i32(1)
        m = m + m - _ONE
    else:
        m = m - _ONE
    ef = f32(e)
    z = m * m
    y = _L0
    y = y * m + _L1
    y = y * m + _L2
    y = y * m + _L3
    y = y * m + _L4
    y = y * m + _L5
    y = y * m + _L6
    y = y * m + _L7
    y = y * m + _L8
    y = y * m * z
    y = y + ef * _C2
    y = y - _HALF * z
    r = m + y + ef * _C1
    if x == _ZERO:
        r = -_INF32
    if x < _ZERO:
        r = _NAN32
    if x == _INF32:
        r = x
    if x != x:
        r = x
    return r


_T0 = f32(-5.70498872745e-3)
_T1 = f32(2.06390887954e-2)
_T2 = f32(-5.37397155531e-2)
_T3 = f32(1.33314422036e-1)
_T4 = f32(-3.33332819422e-1)
_TANH_SMALL = f32(0.625)


@register_jitable(fastmath=_FM, error_model="numpy")
def tanh_f32(x):
    # Cephes tanhf: odd polynomial below 0.625, 1 - 2/(e**2|x| + 1) above.
    a = abs(x)
    e = exp_f32(a + a)
    big = _ONE - _TWO / (e + _ONE)
    if x < _ZERO:
        big = -big
    z = x * x
    p = _T0
    p = p * z + _T1
    p = p * z + _T2
    p = p * z + _T3
    p = p * z + _T4
    small = p * z * x + x
    # `not (a >= C)` is one select (NaN takes `small`, which is NaN); `a < C or a != a`
    # is a branch LLVM does not if-convert, which keeps the loop scalar.
    return small if not (a >= _TANH_SMALL) else big


@register_jitable(fastmath=_FM, error_model="numpy")
def sigmoid_f32(x):
    # e = exp(-|x|) never overflows; 1/(1+e) or e/(1+e) is the same function.
    e = exp_f32(-abs(x))
    r = _ONE / (_ONE + e)
    return r if x >= _ZERO else e * r


@register_jitable(fastmath=_FM, error_model="numpy")
def silu_f32(x):
    # x * sigmoid(x); for x < 0 that is x e / (1+e) with e = exp(x) = h*h, h = exp(x/2):
    # (x h) h keeps full precision where e alone would already be a denormal (x < -87).
    h = exp_f32(-abs(x) * _HALF)
    e = h * h
    r = _ONE / (_ONE + e)
    y = x * r
    if x < _ZERO:
        y = ((x * h) * h) * r
    if x == -_INF32:
        y = _NZERO
    return y


# erf on |x| < 0.5: Taylor series of 2/sqrt(pi) * sum (-1)^k x^(2k+1) / (k! (2k+1)),
# truncated after x^15 (next term < 1e-9 relative).
_P = tuple(f32(2.0 / math.sqrt(math.pi) * (-1) ** k / (math.factorial(k) * (2 * k + 1)))
           for k in range(8))
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7 = _P
# erfc(z) = t exp(-z*z + Q(t)), t = 2/(2+z) (Numerical Recipes erfcc, after
# Chebyshev): fractional error < 1.2e-7 for every z >= 0.
_Q = (f32(-1.26551223), f32(1.00002368), f32(0.37409196), f32(0.09678418),
      f32(-0.18628806), f32(0.27886807), f32(-1.13520398), f32(1.48851587),
      f32(-0.82215223), f32(0.17087277))
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6, _Q7, _Q8, _Q9 = _Q
_ERF_SMALL = f32(0.5)
_ERFC_BIG = f32(10.0)
_RSQRT2 = f32(0.707106781186547524)
_HIMASK = i32(-4096)
_GELU_ZERO = f32(-14.5)          # clears the low 12 mantissa bits: 12-bit value, exact square


@register_jitable(fastmath=_FM, error_model="numpy")
def _erf_small(x):
    z = x * x
    p = _P7
    p = p * z + _P6
    p = p * z + _P5
    p = p * z + _P4
    p = p * z + _P3
    p = p * z + _P2
    p = p * z + _P1
    p = p * z + _P0
    return x * p


@register_jitable(fastmath=_FM, error_model="numpy")
def _erfc_core(a, a2_hi, a2_lo):
    """erfc(a) for a >= 0 given a*a = a2_hi + a2_lo with a2_hi exact.

    exp(-a*a) is taken as exp(-a2_hi) * exp(-a2_lo + ...): a rounded a*a would
    cost a relative error of a*a*2**-24 (30 ulp at a = 4)."""
    t = _TWO / (_TWO + a)
    q = _Q9
    q = q * t + _Q8
    q = q * t + _Q7
    q = q * t + _Q6
    q = q * t + _Q5
    q = q * t + _Q4
    q = q * t + _Q3
    q = q * t + _Q2
    q = q * t + _Q1
    q = q * t + _Q0
    return t * exp_f32(-a2_hi) * exp_f32(q - a2_lo)


@register_jitable(fastmath=_FM, error_model="numpy")
def _split_sq(a):
    """a*a as hi + lo, hi exact (a with 12 significant bits, squared)."""
    ah = _i32_as_f32(_f32_as_i32(a) & _HIMASK)
    return ah * ah, (a - ah) * (a + ah)


@register_jitable(fastmath=_FM, error_model="numpy", forceinline=True)
def erf_f32(x):
    a = abs(x)
    ac = _ERFC_BIG if a > _ERFC_BIG else a     # erfc(10) < 1e-44: erf is 1; keeps inf finite
    hi, lo = _split_sq(ac)
    big = _ONE - _erfc_core(ac, hi, lo)
    if x < _ZERO:
        big = -big
    small = _erf_small(x)
    return small if not (a >= _ERF_SMALL) else big  # one select, see tanh_f32


@register_jitable(fastmath=_FM, error_model="numpy", forceinline=True)
def gelu_f32(x):
    # 0.5 x (1 + erf(x/sqrt2)); for x/sqrt2 <= -0.5 write 1 + erf(u) = erfc(-u), which
    # has no cancellation, and take u*u = x*x/2 from the exact split of x, not of u.
    u = x * _RSQRT2
    xa = abs(x)
    xc = _ERFC_BIG * f32(1.4142135) if xa > _ERFC_BIG * f32(1.4142135) else xa
    hi, lo = _split_sq(xc)
    a = xc * _RSQRT2
    t = _TWO / (_TWO + a)
    q = _Q9
    q = q * t + _Q8
    q = q * t + _Q7
    q = q * t + _Q6
    q = q * t + _Q5
    q = q * t + _Q4
    q = q * t + _Q3
    q = q * t + _Q2
    q = q * t + _Q1
    q = q * t + _Q0
    e1 = exp_f32(-hi * _HALF)
    e2 = exp_f32(q - lo * _HALF)
    # u < 0: 0.5 x erfc(|u|), multiplied so that the one tiny factor comes last
    # (the result stays accurate down to FLT_MIN).
    y = (((_HALF * x) * t) * e2) * e1
    if u >= _ZERO:
        y = _HALF * x * (_TWO - t * e1 * e2)
    if abs(u) < _ERF_SMALL:
        y = _HALF * x * (_ONE + _erf_small(u))
    if x < _GELU_ZERO:        # |result| < 1e-46 (and -inf, where x*0 would be NaN)
        y = _NZERO
    return y


_LN2_64 = math.log(2.0)
_LOG2E_64 = 1.0 / math.log(2.0)


@register_jitable(fastmath=_FM, error_model="numpy")
def _exp_f32_of_f64(v):
    """float32 exp of a float64 argument, reduced in float64: for an argument that
    is itself a computed value, rounding it to float32 first would cost |v| * 2**-24
    relative error (100 ulp at v = -86)."""
    vc = v
    if vc > 88.8:
        vc = 88.8
    if vc < -104.0:
        vc = -104.0
    if vc != vc:
        vc = 0.0
    n = np.floor(vc * _LOG2E_64 + 0.5)
    r = f32(vc - n * _LN2_64)
    y = _exp_reduced(r, n)
    if v != v:
        y = f32(v)
    return y


_GT1_64 = 2.0 * math.sqrt(2.0 / math.pi)
_GT2_64 = _GT1_64 * 0.044715


@register_jitable(fastmath=_FM, error_model="numpy")
def gelu_tanh_f32(x):
    # 0.5 x (1 + tanh(u)) = x * sigmoid(2u): no cancellation for negative x.  2u is
    # formed in float64 since exp amplifies its relative error by |2u|.
    xd = np.float64(x)
    v = xd * (_GT1_64 + _GT2_64 * (xd * xd))
    h = _exp_f32_of_f64(-abs(v) * 0.5)   # e = h*h, kept apart as in silu_f32
    r = _ONE / (_ONE + h * h)
    y = x * r
    if x < _ZERO:
        y = ((x * h) * r) * h
    if x == -_INF32:
        y = _NZERO
    return y


# ---- float64: libm ------------------------------------------------------------

_RSQRT2_64 = 1.0 / math.sqrt(2.0)


@register_jitable(error_model="numpy")
def sigmoid_f64(x):
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    return r if x >= 0.0 else e * r


@register_jitable(error_model="numpy")
def silu_f64(x):
    s = sigmoid_f64(x)
    return x * s if s != 0.0 else -0.0


@register_jitable(error_model="numpy")
def gelu_f64(x):
    y = 0.5 * x * math.erfc(-x * _RSQRT2_64)
    return y if y == y or x != x else -0.0      # -inf * 0


@register_jitable(error_model="numpy")
def gelu_tanh_f64(x):
    s = sigmoid_f64(x * (_GT1_64 + _GT2_64 * (x * x)))
    return x * s if s != 0.0 else -0.0


# ---- generic entry points (NumPy reference in Python, overloaded in Numba) -------

def exp(x):
    return np.exp(x)


def log(x):
    return np.log(x)


def tanh(x):
    return np.tanh(x)


def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def silu(x):
    return x * sigmoid(x)


def erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(np.asarray(x).dtype)


def gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return x * sigmoid(x * (_GT1_64 + _GT2_64 * x * x))


def _make_overload(stub, impl32, impl64):
    @overload(stub, jit_options=_JO)
    def _ov(x):
        if isinstance(x, types.Float):
            return impl32 if x.bitwidth == 32 else impl64
    return _ov


def _wrap(fn):
    # overload wants an implementation with the stub's argument name.
    def impl(x):
        return fn(x)
    return impl


_make_overload(exp, _wrap(exp_f32), lambda x: math.exp(x))
_make_overload(log, _wrap(log_f32), lambda x: math.log(x))
_make_overload(tanh, _wrap(tanh_f32), lambda x: math.tanh(x))
_make_overload(sigmoid, _wrap(sigmoid_f32), _wrap(sigmoid_f64))
_make_overload(silu, _wrap(silu_f32), _wrap(silu_f64))
_make_overload(erf, _wrap(erf_f32), lambda x: math.erf(x))
_make_overload(gelu, _wrap(gelu_f32), _wrap(gelu_f64))
_make_overload(gelu_tanh, _wrap(gelu_tanh_f32), _wrap(gelu_tanh_f64))

__all__ = ["exp", "log", "tanh", "sigmoid", "silu", "erf", "gelu", "gelu_tanh",
           "exp_f32", "log_f32", "tanh_f32", "sigmoid_f32", "silu_f32", "erf_f32",
           "gelu_f32", "gelu_tanh_f32"]


def rsqrt(x):
    return 1 / np.sqrt(x)


def relu(x):
    return np.where(x < 0, 0, x)


@register_jitable(fastmath=_FM, error_model="numpy")
def rsqrt_f32(x):
    # Under arcp LLVM may turn 1/sqrt(x) into an rsqrt estimate plus a Newton
    # step, which makes NaN of 0 and inf: give those their exact values by select.
    r = _ONE / math.sqrt(x)
    if x == _ZERO:
        r = math.copysign(_INF32, x)
    if x == _INF32:
        r = _ZERO
    return r


_make_overload(rsqrt, _wrap(rsqrt_f32), lambda x: 1.0 / math.sqrt(x))
# 0 if x < 0 else x: NaN and -0 pass through (np.maximum(x, 0) propagates NaN too).
_make_overload(relu, lambda x: _ZERO if x < _ZERO else x, lambda x: 0.0 if x < 0.0 else x)


def cast_like(v, d):
    """``d`` converted to the type of ``v`` (keeps float32 kernels in float32)."""
    return np.asarray(d, dtype=np.asarray(v).dtype)[()]


@overload(cast_like)
def _ov_cast_like(v, d):
    if isinstance(v, types.Float):
        conv = np.float32 if v.bitwidth == 32 else np.float64
        return lambda v, d: conv(d)
