"""CUDA source for the CuPy backend, generated from the same fused-expression IR
(docs/fusion-ir.md) that the Numba generator (``codegen``) compiles.

``elementwise(attrs, in_dtypes) -> CudaElementwise``: the ``in_params``,
``out_params``, ``operation`` and ``preamble`` of one ``cupy.ElementwiseKernel``
(CuPy does the broadcasting and indexing, so only the expression is generated).
``reduction(attrs, in_dtypes) -> CudaReduction``: the same program feeding a
``cupy.ReductionKernel`` (sum/mean accumulate in double, as the CPU kernels do).

The device helpers in ``PRELUDE`` are written in the common subset of CUDA C++
and C99 (``PI_FN`` is ``__device__ __forceinline__`` under nvcc/NVRTC and
``static inline`` elsewhere), so that a host C compiler can check the generated
expressions against NumPy on a machine without a GPU
(tests/test_cuda_codegen.py).  The key of a kernel is its program, results and
dtypes: kernels are cached by CuPy per (name, source), and the name is a hash
of that key.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError

PRELUDE = r"""
#ifdef __CUDACC__
#define PI_FN __device__ __forceinline__
#else
#include <math.h>
#include <stdbool.h>
#define PI_FN static inline
#endif
PI_FN float pi_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
PI_FN double pi_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
PI_FN float pi_reluf(float x) { return x > 0.0f ? x : (x != x ? x : 0.0f); }
PI_FN double pi_relu(double x) { return x > 0.0 ? x : (x != x ? x : 0.0); }
PI_FN float pi_geluf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
PI_FN double pi_gelu(double x) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752)); }
PI_FN float pi_gelu_tanhf(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
PI_FN double pi_gelu_tanh(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
PI_FN float pi_siluf(float x) { return x / (1.0f + expf(-x)); }
PI_FN double pi_silu(double x) { return x / (1.0 + exp(-x)); }
PI_FN float pi_rsqrtf(float x) { return 1.0f / sqrtf(x); }
PI_FN double pi_rsqrt(double x) { return 1.0 / sqrt(x); }
/* NaN in either operand wins, as np.maximum / np.minimum */
PI_FN float pi_maxf(float a, float b) { return a != a ? a : (a >= b ? a : b); }
PI_FN double pi_max(double a, double b) { return a != a ? a : (a >= b ? a : b); }
PI_FN float pi_minf(float a, float b) { return a != a ? a : (a <= b ? a : b); }
PI_FN double pi_min(double a, double b) { return a != a ? a : (a <= b ? a : b); }
"""

# op -> (float32 form, float64 form), "{0}" the operand
_UNARY = {
    "exp": ("expf({0})", "exp({0})"),
    "log": ("logf({0})", "log({0})"),
    "sqrt": ("sqrtf({0})", "sqrt({0})"),
    "rsqrt": ("pi_rsqrtf({0})", "pi_rsqrt({0})"),
    "abs": ("fabsf({0})", "fabs({0})"),
    "neg": ("(-{0})", "(-{0})"),
    "tanh": ("tanhf({0})", "tanh({0})"),
    "sigmoid": ("pi_sigmoidf({0})", "pi_sigmoid({0})"),
    "relu": ("pi_reluf({0})", "pi_relu({0})"),
    "gelu": ("pi_geluf({0})", "pi_gelu({0})"),
    "gelu_tanh": ("pi_gelu_tanhf({0})", "pi_gelu_tanh({0})"),
    "silu": ("pi_siluf({0})", "pi_silu({0})"),
    "erf": ("erff({0})", "erf({0})"),
    "reciprocal": ("(1.0f / {0})", "(1.0 / {0})"),
}
_BINARY = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "pow": ("powf({0}, {1})", "pow({0}, {1})"),
    "maximum": ("pi_maxf({0}, {1})", "pi_max({0}, {1})"),
    "minimum": ("pi_minf({0}, {1})", "pi_min({0}, {1})"),
}
_CMP = {"equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">",
        "greater_equal": ">="}
_CTYPE = {"f4": "float", "f8": "double", "b1": "bool", "i8": "long long", "i4": "int"}


def ctype(dt) -> str:
    dt = np.dtype(dt)
    key = f"{dt.kind}{dt.itemsize}"
    if key not in _CTYPE:
        raise UnsupportedError(f"CUDA code generation: no C type for dtype {dt}")
    return _CTYPE[key]


def _literal(v: float, T: np.dtype) -> str:
    if np.isnan(v):
        return "(0.0f/0.0f)" if T == np.float32 else "(0.0/0.0)"
    if np.isinf(v):
        one = "1.0f" if T == np.float32 else "1.0"
        return f"({'-' if v < 0 else ''}{one}/0.0{'f' if T == np.float32 else ''})"
    text = repr(float(T.type(v)))
    if "e" not in text and "." not in text:
        text += ".0"
    return text + ("f" if T == np.float32 else "")


@dataclass(frozen=True)
class CudaElementwise:
    name: str
    in_params: str
    out_params: str
    operation: str
    preamble: str = PRELUDE


@dataclass(frozen=True)
class CudaReduction:
    name: str
    in_params: str
    out_params: str
    map_expr: str
    reduce_expr: str
    post_map_expr: str
    identity: str
    reduce_type: str
    preamble: str = PRELUDE


def _compute_dtype(attrs, in_dtypes) -> np.dtype:
    dt = np.dtype(attrs["dtype"])
    if dt.kind == "f":
        return dt
    floats = [d for d in in_dtypes if np.dtype(d).kind == "f"]
    return np.dtype(floats[0]) if floats else np.dtype(np.float32)


def _body(program, results, in_dtypes, T) -> tuple:
    """(statement lines, kind per register) for the registers the results need."""
    f32 = T == np.float32
    kind = []
    lines = []
    tname = ctype(T)

    def f(r):
        return f"(({tname})v{r})" if kind[r] == "b" else f"v{r}"

    def b(r):
        return f"v{r}" if kind[r] == "b" else f"(v{r} != ({tname})0)"

    for i, ins in enumerate(program):
        tag = ins[0]
        if tag == "in":
            dt = np.dtype(in_dtypes[ins[1]])
            k = "b" if dt.kind == "b" else "f"
            expr = f"in{ins[1]}" if k == "b" or dt == T else f"({tname})in{ins[1]}"
        elif tag == "const":
            if isinstance(ins[1], (bool, np.bool_)):
                k, expr = "b", ("true" if ins[1] else "false")
            else:
                k, expr = "f", _literal(float(ins[1]), T)
        elif tag == "cast":
            dt = np.dtype(ins[2])
            if dt.kind == "b":
                k, expr = "b", b(ins[1])
            else:  # round through the target type, then compute on in T
                k, expr = "f", f"({tname})({ctype(dt)}){f(ins[1])}"
        elif tag in _UNARY:
            k, expr = "f", _UNARY[tag][0 if f32 else 1].format(f(ins[1]))
        elif tag == "logical_not":
            k, expr = "b", f"!{b(ins[1])}"
        elif tag in _BINARY:
            form = _BINARY[tag]
            form = form if isinstance(form, str) else form[0 if f32 else 1]
            k, expr = "f", form.format(f(ins[1]), f(ins[2]))
        elif tag in _CMP:
            x, y = ins[1], ins[2]
            k = "b"
            if kind[x] == "b" and kind[y] == "b":
                expr = f"(v{x} {_CMP[tag]} v{y})"
            else:
                expr = f"({f(x)} {_CMP[tag]} {f(y)})"
        elif tag == "where":
            c, x, y = ins[1], ins[2], ins[3]
            if kind[x] == "b" and kind[y] == "b":
                k, expr = "b", f"({b(c)} ? v{x} : v{y})"
            else:
                k, expr = "f", f"({b(c)} ? {f(x)} : {f(y)})"
        else:
            raise UnsupportedError(f"CUDA code generation: no code for elementwise op {tag!r}")
        kind.append(k)
        lines.append(f"{'bool' if k == 'b' else tname} v{i} = {expr};")
    return lines, kind


def _name(prefix, *key) -> str:
    return f"pi_{prefix}_" + hashlib.sha1(repr(key).encode()).hexdigest()[:16]


def elementwise(attrs: dict, in_dtypes) -> CudaElementwise:
    """The ElementwiseKernel for a FUSED_ELEMENTWISE program (or any single op
    written as a one-instruction program)."""
    program = tuple(tuple(ins) for ins in attrs["program"])
    results = tuple(int(r) for r in attrs["results"])
    in_dtypes = tuple(np.dtype(d) for d in in_dtypes)
    T = _compute_dtype(attrs, in_dtypes)
    out_dtypes = tuple(np.dtype(d) for d in (attrs.get("dtypes") or (attrs["dtype"],) * len(results)))
    lines, kind = _body(program, results, in_dtypes, T)
    stores = []
    for q, (r, dt) in enumerate(zip(results, out_dtypes)):
        if dt.kind == "b":
            val = f"v{r}" if kind[r] == "b" else f"(v{r} != ({ctype(T)})0)"
        else:
            val = f"({ctype(dt)})v{r}"
        stores.append(f"out{q} = {val};")
    in_params = ", ".join(f"{ctype(d)} in{p}" for p, d in enumerate(in_dtypes))
    out_params = ", ".join(f"{ctype(d)} out{q}" for q, d in enumerate(out_dtypes))
    return CudaElementwise(_name("ew", program, results, in_dtypes, out_dtypes),
                           in_params, out_params, "\n".join(lines + stores))


def reduction(attrs: dict, in_dtypes) -> CudaReduction:
    """The ReductionKernel for a FUSED_REDUCTION program: the program is the map
    expression (a statement-expression is not portable, so the registers are
    inlined into one expression), the reduce is sum/mean/max/min."""
    program = tuple(tuple(ins) for ins in attrs["program"])
    (result,) = tuple(int(r) for r in attrs["results"])
    in_dtypes = tuple(np.dtype(d) for d in in_dtypes)
    T = _compute_dtype(attrs, in_dtypes)
    lines, kind = _body(program, (result,), in_dtypes, T)
    # Inline the SSA registers into one expression (map_expr must be an expression).
    exprs: dict = {}
    for i, line in enumerate(lines):
        expr = line.split(" = ", 1)[1].rstrip(";")
        for j in sorted(exprs, reverse=True):
            expr = expr.replace(f"v{j}", f"({exprs[j]})")
        exprs[i] = expr
    red = attrs["reduce"]
    acc = "double" if red in ("sum", "mean") else ctype(T)
    inf = _literal(float("inf"), T)
    identity, reduce_expr = {
        "sum": ("0", "a + b"), "mean": ("0", "a + b"),
        "max": (f"-{inf}", "(a != a || a >= b) ? a : b"),
        "min": (inf, "(a != a || a <= b) ? a : b"),
    }[red]
    post = "y = (%s)(a / _in_ind.size() * _out_ind.size())" % ctype(T) if red == "mean" \
        else f"y = ({ctype(T)})a"
    in_params = ", ".join(f"{ctype(d)} in{p}" for p, d in enumerate(in_dtypes))
    return CudaReduction(_name("red", program, result, in_dtypes, red), in_params,
                         f"{ctype(T)} y", f"({acc})({exprs[result]})", reduce_expr, post,
                         identity, acc)


def host_check_source(kernel: CudaElementwise) -> str:
    """A C99 translation unit applying ``kernel.operation`` to contiguous arrays,
    for checking the generated expression on the host with gcc (no GPU here)."""
    params = [p.strip() for p in kernel.in_params.split(",") if p.strip()]
    outs = [p.strip() for p in kernel.out_params.split(",") if p.strip()]
    args = ", ".join([f"const {t} *{n}_p" for t, n in (p.rsplit(" ", 1) for p in params)] +
                     [f"{t} *{n}_p" for t, n in (p.rsplit(" ", 1) for p in outs)])
    loads = "".join(f"        {t} {n} = {n}_p[i];\n" for t, n in (p.rsplit(" ", 1) for p in params))
    decl_outs = "".join(f"        {t} {n};\n" for t, n in (p.rsplit(" ", 1) for p in outs))
    stores = "".join(f"        {n}_p[i] = {n};\n" for t, n in (p.rsplit(" ", 1) for p in outs))
    body = "\n".join("        " + line for line in kernel.operation.splitlines())
    return (f"{kernel.preamble}\nvoid run(long long n{', ' if args else ''}{args}) {{\n"
            f"    for (long long i = 0; i < n; i++) {{\n{loads}{decl_outs}{body}\n{stores}"
            f"    }}\n}}\n")
