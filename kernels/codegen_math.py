"""Scalar math that generated fused kernels call: ``fastmath``'s functions, with
two float32 stand-ins while fastmath's own versions do not vectorize.

``fastmath.tanh_f32`` and ``fastmath.erf_f32`` end with
``small if a < C or a != a else big``: Numba lowers the short-circuit ``or`` to
branches that LLVM (Numba 0.68) does not if-convert, so a loop calling them stays
scalar (tests/test_codegen.py::test_math_vectorizes measures it).
``small if not (a >= C) else big`` is the same function (NaN fails ``>=`` and
takes ``small``, which is NaN) and is one select.  The stand-ins below are
fastmath's code with that one line changed, built from fastmath's own
constants and helpers; once fastmath's versions vectorize, ``tanh``/``erf``
here become plain aliases again (delete ``_tanh_f32``/``_erf_f32``).
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from . import fastmath as fm

_FM = fm._FM


@register_jitable(fastmath=_FM)
def _tanh_f32(x):
    a = abs(x)
    e = fm.exp_f32(a + a)
    big = fm._ONE - fm._TWO / (e + fm._ONE)
    if x < fm._ZERO:
        big = -big
    z = x * x
    p = fm._T0
    p = p * z + fm._T1
    p = p * z + fm._T2
    p = p * z + fm._T3
    p = p * z + fm._T4
    small = p * z * x + x
    return small if not (a >= fm._TANH_SMALL) else big


@register_jitable(fastmath=_FM)
def _erf_f32(x):
    a = abs(x)
    ac = fm._ERFC_BIG if a > fm._ERFC_BIG else a
    hi, lo = fm._split_sq(ac)
    big = fm._ONE - fm._erfc_core(ac, hi, lo)
    if x < fm._ZERO:
        big = -big
    small = fm._erf_small(x)
    return small if not (a >= fm._ERF_SMALL) else big


def tanh(x):
    return np.tanh(x)


def erf(x):
    return fm.erf(x)


@overload(tanh, jit_options=fm._JO)
def _ov_tanh(x):
    if isinstance(x, types.Float):
        if x.bitwidth == 32:
            return lambda x: _tanh_f32(x)
        return lambda x: fm.tanh(x)


@overload(erf, jit_options=fm._JO)
def _ov_erf(x):
    if isinstance(x, types.Float):
        if x.bitwidth == 32:
            return lambda x: _erf_f32(x)
        return lambda x: fm.erf(x)


# Everything else is fastmath's own.
exp, log, sigmoid, silu, gelu, gelu_tanh, rsqrt, relu = (
    fm.exp, fm.log, fm.sigmoid, fm.silu, fm.gelu, fm.gelu_tanh, fm.rsqrt, fm.relu)
