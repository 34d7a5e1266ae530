"""The reference backend: each op written plainly in NumPy.

This is the spec (STYLE.md 3): short, obviously right, computed in the
working dtype with NumPy's own semantics.  Every fast kernel is tested against
it, and a new op starts here.  Kernel signatures: docs/kernel-contract.md.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import register

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

# ---- math shared by unary ops and GEMM epilogues ---------------------------


def erf(x: np.ndarray) -> np.ndarray:
    """erf via math.erf, elementwise in float64 (NumPy has no erf ufunc)."""
    x64 = np.asarray(x, dtype=np.float64)
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x64), dtype=np.float64)


def sigmoid(x):
    # exp(-|x|) never overflows; the two branches are the same function.
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype)


def _tends_to_zero_at_neg_inf(x, y):
    return np.where(x == -np.inf, -0.0, y).astype(np.result_type(x), copy=False)


UNARY = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "abs": np.abs,
    "neg": np.negative,
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "relu": lambda x: np.maximum(x, 0),  # NaN propagates, as in NumPy's maximum
    # At -inf these tend to 0 (the formulas would give -inf * 0 = NaN).
    "gelu": lambda x: _tends_to_zero_at_neg_inf(x, 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))),
    "gelu_tanh": lambda x: _tends_to_zero_at_neg_inf(
        x, 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))),
    "silu": lambda x: _tends_to_zero_at_neg_inf(x, x * sigmoid(x)),
    "erf": erf,
}

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh")

BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


def apply_activation(y: np.ndarray, activation) -> np.ndarray:
    return y if activation is None else UNARY[activation](y)


def _store(out: np.ndarray, value) -> None:
    with np.errstate(all="ignore"):
        np.copyto(out, value, casting="unsafe")


# Ufuncs write straight into out (the interpreter calls these on tiny tensors,
# where a temporary or an errstate context would cost more than the math).
_UFUNC_UNARY = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
                "neg": np.negative, "tanh": np.tanh}


def _register_unary(name):
    ufunc = _UFUNC_UNARY.get(name)
    fn = UNARY[name]

    if ufunc is not None:
        @register(name, "numpy")
        def kernel(x, *, out):
            ufunc(x, out=out)
    else:
        @register(name, "numpy")
        def kernel(x, *, out):
            with np.errstate(all="ignore"):
                _store(out, fn(x))

    kernel.__name__ = f"numpy_{name}"


def _register_binary(name):
    fn = BINARY[name]

    @register(name, "numpy")
    def kernel(a, b, *, out):
        fn(a, b, out=out)

    kernel.__name__ = f"numpy_{name}"


for _name in UNARY:
    _register_unary(_name)
for _name in BINARY:
    _register_binary(_name)


@register("where", "numpy")
def where(cond, a, b, *, out):
    _store(out, np.where(cond, a, b))


# ---- reductions ------------------------------------------------------------

def _reduction(name, fn):
    @register(name, "numpy")
    def kernel(x, *, axis, keepdims, out):
        fn(x, axis=axis, keepdims=keepdims, out=out)

    kernel.__name__ = f"numpy_{name}"


_reduction("sum", np.sum)
_reduction("mean", np.mean)
_reduction("max", np.max)
_reduction("min", np.min)


@register("argmax", "numpy")
def argmax(x, *, axis, keepdims, out):
    np.argmax(x, axis=axis, keepdims=keepdims, out=out)


# ---- normalisation -------------------------------------------------------------

def softmax_ref(x, axis):
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax_ref(x, axis):
    with np.errstate(all="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


@register("softmax", "numpy")
def softmax(x, *, axis, out):
    _store(out, softmax_ref(x, axis))


@register("log_softmax", "numpy")
def log_softmax(x, *, axis, out):
    _store(out, log_softmax_ref(x, axis))


def layer_norm_ref(x, weight, bias, axis, eps):
    axes = tuple(range(axis, x.ndim))
    with np.errstate(all="ignore"):
        mean = np.mean(x, axis=axes, keepdims=True)
        var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
        y = (x - mean) / np.sqrt(var + eps)
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
    return y


def rms_norm_ref(x, weight, axis, eps):
    axes = tuple(range(axis, x.ndim))
    with np.errstate(all="ignore"):
        y = x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
        if weight is not None:
            y = y * weight
    return y


@register("layer_norm", "numpy")
def layer_norm(x, weight, bias, *, axis, eps, out):
    _store(out, layer_norm_ref(x, weight, bias, axis, x.dtype.type(eps)))


@register("rms_norm", "numpy")
def rms_norm(x, weight, *, axis, eps, out):
    _store(out, rms_norm_ref(x, weight, axis, x.dtype.type(eps)))


# ---- GEMM --------------------------------------------------------------------

def gemm_ref(a, b, bias, residual, alpha, activation):
    with np.errstate(all="ignore"):
        y = np.matmul(a, b)
        if alpha != 1.0:
            y = y * y.dtype.type(alpha)
        if bias is not None:
            y = y + bias
        if residual is not None:
            y = y + residual
        return apply_activation(y, activation)


@register("gemm", "numpy")
def gemm(a, b, bias, residual, *, alpha, activation, out):
    _store(out, gemm_ref(a, b, bias, residual, alpha, activation))


@register("matmul", "numpy")
def matmul(a, b, *, out):
    np.matmul(a, b, out=out)
