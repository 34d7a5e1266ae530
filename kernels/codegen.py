"""The fused-kernel code generator: FUSED_ELEMENTWISE / FUSED_REDUCTION nodes
(docs/fusion-ir.md) become one generated Numba kernel each.

``compile_fused(node_or_attrs, input_shapes, input_dtypes) -> FusedKernel``

1. **Canonicalise** the iteration space.  Each input is aligned to the
   iteration shape by NumPy broadcasting; per dim it is ``F`` (walks the dim)
   or ``B`` (broadcast, stride 0).  Dims of size 1 are dropped and adjacent
   dims are merged when every input has the same letter on both (and, for a
   reduction, both are reduced or both kept).  An input of shape (M, N) added
   to a (N,) bias over (M, N) stays 2-D ``[FF, BF]``; (M, N) + (M, N) + scalar
   becomes 1-D ``[F, F, B]``.  Inputs are C-contiguous (the wrapper copies
   the rare one that is not), so each is passed flat and its element offset is
   the sum over its ``F`` dims of index * (product of its later ``F`` sizes).
2. **Generate** Python source: SSA registers become locals; each instruction is
   placed at the outermost loop level it depends on (constants and scalar inputs
   before the loops, column-broadcast inputs once per row, the rest in the
   contiguous inner loop, which LLVM vectorizes).  float32 transcendentals call
   the vectorizable approximations of ``fastmath``;
   constants are module globals typed to the compute dtype so float32 stays
   float32.  Two variants: ``kernel_par`` (``prange`` over fixed blocks of
   ``BLOCK`` elements) and ``kernel_ser`` (the same loops, serial; outputs
   below ``SERIAL_BELOW`` elements, where a parallel launch costs more than it
   saves).
3. **Cache**: the source goes to ``$PYINFER_CACHE_DIR`` (default
   ``~/.cache/pyinfer/fused``) as ``fused_<sha of key>.py``, written once (an
   unchanged file keeps Numba's ``cache=True`` index valid across processes),
   imported as a module and compiled for one explicit signature (all arrays 1-D
   C-contiguous, sizes int64), after which the dispatcher refuses to compile
   again: nothing JITs at run time.  The key holds the program, results,
   dtypes, the canonical broadcast/reduce pattern and a hash of this module's
   and fastmath's source, not the sizes, so one kernel serves every shape with
   the same pattern.

Reductions (one pass, deterministic): sums accumulate in float64.  When the
innermost canonical dim is reduced, each output is reduced by one thread over
fixed chunks of ``CHUNK`` elements (partials combined in order); when it is
kept, a thread owns a tile of ``TN`` output columns and walks the reduced rows
in order.  Split points depend on the sizes only, never on the thread count,
so results are bit-identical for any ``pyinfer.set_num_threads``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import threading
import time
from typing import Optional, Sequence

import numpy as np

from ..errors import UnsupportedError

BLOCK = 16384            # elements one prange task writes (64 KiB of float32)
SERIAL_BELOW = 32768     # outputs smaller than this run the serial variant
CHUNK = 65536            # fixed split of one long trailing reduction
TN = 256                 # output columns one thread owns in a leading reduction
_VERSION = 1

_UNARY_FM = {"exp", "log", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh", "silu", "erf",
             "rsqrt"}
_BINOP = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
_CMP = {"equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">",
        "greater_equal": ">="}

_lock = threading.RLock()
_modules: dict = {}          # key -> _Module
_kernels: dict = {}          # (key, shapes) -> FusedKernel
_count = 0
_compile_seconds = 0.0


def _salt() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256(str(_VERSION).encode())
    for name in ("codegen.py", "fastmath.py"):
        try:
            with open(os.path.join(here, name), "rb") as f:
                h.update(f.read())
        except OSError:
            pass
    return h.hexdigest()[:16]


_SALT = _salt()


# ---- analysis ---------------------------------------------------------------------

def _attrs_of(node_or_attrs):
    if isinstance(node_or_attrs, dict):
        attrs = node_or_attrs
        kind = "reduction" if "reduce" in attrs else "elementwise"
        return attrs, kind, None
    node = node_or_attrs
    kind = "reduction" if node.op.value == "fused_reduction" else "elementwise"
    return node.attrs, kind, node


def _norm_shapes_dtypes(node, input_shapes, input_dtypes):
    if input_shapes is None:
        input_shapes = [v.shape for v in node.inputs]
    if input_dtypes is None:
        input_dtypes = [v.dtype for v in node.inputs]
    shapes = tuple(tuple(int(d) for d in s) for s in input_shapes)
    dtypes = tuple(np.dtype(d) for d in input_dtypes)
    if len(shapes) != len(dtypes):
        raise ValueError("compile_fused: input_shapes and input_dtypes differ in length")
    return shapes, dtypes


class _Spec:
    """Everything the generator needs, derived once from attrs and input shapes."""

    def __init__(self, node_or_attrs, input_shapes, input_dtypes):
        from pyinfer.errors import ShapeError
        attrs, self.kind, node = _attrs_of(node_or_attrs)
        self.shapes, self.in_dtypes = _norm_shapes_dtypes(node, input_shapes, input_dtypes)
        self.program = tuple(tuple(ins) for ins in attrs["program"])
        self.results = tuple(int(r) for r in attrs["results"])
        dtype = np.dtype(attrs["dtype"])
        if self.kind == "elementwise":
            dts = attrs.get("dtypes") or (dtype,) * len(self.results)
            self.out_dtypes = tuple(np.dtype(d) for d in dts)
            self.iter_shape = tuple(int(d) for d in attrs["shape"])
            self.out_shape = self.iter_shape
        else:
            if len(self.results) != 1:
                raise ValueError("FUSED_REDUCTION: exactly one result is reduced")
            self.out_dtypes = (dtype,)
            self.reduce = attrs["reduce"]
            if self.reduce not in ("sum", "mean", "max", "min"):
                raise ValueError(f"FUSED_REDUCTION: unknown reduce {self.reduce!r}")
            if "input_shape" in attrs:
                self.iter_shape = tuple(int(d) for d in attrs["input_shape"])
            else:
                self.iter_shape = tuple(np.broadcast_shapes(*self.shapes)) if self.shapes else ()
            nd = len(self.iter_shape)
            axis = attrs["axis"]
            axis = tuple(range(nd)) if axis is None else (
                (axis,) if isinstance(axis, int) else tuple(axis))
            self.axis = tuple(sorted(a % nd for a in axis)) if nd else ()
            self.keepdims = bool(attrs.get("keepdims", False))
            self.out_shape = tuple(1 if d in self.axis else s
                                   for d, s in enumerate(self.iter_shape)
                                   if self.keepdims or d not in self.axis)
            self.n_reduced = int(np.prod([self.iter_shape[a] for a in self.axis],
                                         dtype=np.int64))
        # compute dtype: the float dtype the program works in
        if dtype.kind == "f":
            self.T = dtype
        else:
            fl = [d for d in self.in_dtypes if d.kind == "f"]
            self.T = fl[0] if fl else np.dtype(np.float32)
        self._canonicalise(ShapeError)

    def _canonicalise(self, ShapeError):
        S = self.iter_shape
        nd = len(S)
        pats = []
        for p, shp in enumerate(self.shapes):
            if len(shp) > nd:
                raise ShapeError(f"fused kernel: input {p} has shape {shp}, which does not "
                                 f"broadcast to {S}")
            al = (1,) * (nd - len(shp)) + shp
            row = []
            for d in range(nd):
                if al[d] == S[d]:
                    row.append("F")
                elif al[d] == 1:
                    row.append("B")
                else:
                    raise ShapeError(f"fused kernel: input {p} has shape {shp}, which does "
                                     f"not broadcast to {S}")
            pats.append(row)
        red = set(getattr(self, "axis", ()))
        # dims: (size, R/K, letters per input); size-1 dims carry nothing
        dims = [[S[d], "R" if d in red else "K", [pats[p][d] for p in range(len(pats))]]
                for d in range(nd) if S[d] != 1]
        merged = []
        for dim in dims:
            if merged and merged[-1][1] == dim[1] and merged[-1][2] == dim[2]:
                merged[-1][0] *= dim[0]
            else:
                merged.append(dim)
        if not merged:   # a scalar iteration space: one element
            merged = [[1, "K", ["B"] * len(pats)]]
        self.sizes = tuple(m[0] for m in merged)
        self.dimkinds = "".join(m[1] for m in merged)
        # per input: letters per canonical dim
        self.pattern = tuple("".join(m[2][p] for m in merged) for p in range(len(pats)))

    def key(self):
        prog = tuple(tuple(float(x) if isinstance(x, (float, np.floating)) else x
                           for x in ins) for ins in self.program)
        k = (self.kind, prog, self.results, self.T.str,
             tuple(d.str for d in self.in_dtypes), tuple(d.str for d in self.out_dtypes),
             self.dimkinds, self.pattern)
        if self.kind == "reduction":
            k += (self.reduce,)
        return k + (_SALT,)


# ---- code generation ------------------------------------------------------------------

def _npname(dt: np.dtype) -> str:
    return "np.bool_" if dt.kind == "b" else f"np.{dt.name}"


class _Gen:
    """Emits the expression part of a kernel: registers, their levels, constants."""

    def __init__(self, spec: _Spec):
        self.spec = spec
        self.T = spec.T
        self.consts: list = []
        n = len(spec.program)
        self.kind = [None] * n    # "f" (compute dtype) or "b" (bool)
        self.level = [0] * n      # 0: whole kernel, 1: per row, 2: inner loop
        self.inner_dim = len(spec.sizes) - 1
        for i, ins in enumerate(spec.program):
            tag = ins[0]
            if tag == "in":
                pat = spec.pattern[ins[1]]
                self.kind[i] = "b" if spec.in_dtypes[ins[1]].kind == "b" else "f"
                self.level[i] = 0 if "F" not in pat else (2 if pat[-1] == "F" else 1)
            elif tag == "const":
                self.kind[i] = "b" if isinstance(ins[1], (bool, np.bool_)) else "f"
            else:
                args = [a for a in ins[1:] if isinstance(a, (int, np.integer))
                        and not isinstance(a, bool)]
                if tag == "cast":
                    args = [ins[1]]
                self.level[i] = max((self.level[a] for a in args), default=0)
                self.kind[i] = self._result_kind(tag, ins)

    def _result_kind(self, tag, ins):
        if tag in _CMP or (tag == "logical_not"):
            return "b"
        if tag == "cast":
            return "b" if np.dtype(ins[2]).kind == "b" else "f"
        if tag == "where":
            return "b" if self.kind[ins[2]] == "b" and self.kind[ins[3]] == "b" else "f"
        return "f"

    def f(self, r):
        """Register r as a compute-dtype value."""
        return f"T(v{r})" if self.kind[r] == "b" else f"v{r}"

    def b(self, r):
        return f"v{r}" if self.kind[r] == "b" else f"(v{r} != ZERO)"

    def emit(self, i, load) -> str:
        """Source line for register i; ``load(p)`` is the element of input p."""
        ins = self.spec.program[i]
        tag = ins[0]
        if tag == "in":
            p = ins[1]
            dt = self.spec.in_dtypes[p]
            x = load(p)
            return f"v{i} = {x}" if dt.kind == "b" or dt == self.T else f"v{i} = T({x})"
        if tag == "const":
            v = ins[1]
            if self.kind[i] == "b":
                return f"v{i} = {bool(v)}"
            name = f"_K{len(self.consts)}"
            self.consts.append((name, float(v)))
            return f"v{i} = {name}"
        a = ins[1]
        if tag in _UNARY_FM:
            return f"v{i} = cm.{tag}({self.f(a)})"
        if tag == "sqrt":
            return f"v{i} = math.sqrt({self.f(a)})"
        if tag == "abs":
            return f"v{i} = abs({self.f(a)})"
        if tag == "neg":
            return f"v{i} = -{self.f(a)}"
        if tag == "reciprocal":
            return f"v{i} = ONE / {self.f(a)}"
        if tag == "logical_not":
            return f"v{i} = not {self.b(a)}"
        if tag == "cast":
            dt = np.dtype(ins[2])
            if dt.kind == "b":
                return f"v{i} = {self.b(a)}"
            # round through the target type, then compute on in T (what NumPy's
            # promotion back to the program dtype does)
            return f"v{i} = T({_npname(dt)}({self.f(a)}))"
        if tag in _BINOP:
            return f"v{i} = {self.f(a)} {_BINOP[tag]} {self.f(ins[2])}"
        if tag == "maximum":   # NaN in either operand wins, as np.maximum
            x, y = self.f(a), self.f(ins[2])
            return f"v{i} = {x} if {x} >= {y} else {y}; v{i} = {x} if {x} != {x} else v{i}"
        if tag == "minimum":
            x, y = self.f(a), self.f(ins[2])
            return f"v{i} = {x} if {x} <= {y} else {y}; v{i} = {x} if {x} != {x} else v{i}"
        if tag in _CMP:
            x, y = ins[1], ins[2]
            if self.kind[x] == "b" and self.kind[y] == "b":
                return f"v{i} = v{x} {_CMP[tag]} v{y}"
            return f"v{i} = {self.f(x)} {_CMP[tag]} {self.f(y)}"
        if tag == "where":
            c, x, y = ins[1], ins[2], ins[3]
            if self.kind[i] == "b":
                return f"v{i} = v{x} if {self.b(c)} else v{y}"
            return f"v{i} = {self.f(x)} if {self.b(c)} else {self.f(y)}"
        raise UnsupportedError(f"fused kernel: no code for elementwise op {tag!r}")

    def needed(self):
        """Registers reachable from the results, in SSA order."""
        need = set()
        for r in self.spec.results:
            need.add(r)
        for i in range(len(self.spec.program) - 1, -1, -1):
            if i in need:
                ins = self.spec.program[i]
                if ins[0] not in ("in", "const"):
                    for a in (ins[1:] if ins[0] != "cast" else ins[1:2]):
                        if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
                            need.add(int(a))
        return [i for i in range(len(self.spec.program)) if i in need]

    def store(self, r, q) -> str:
        dt = self.spec.out_dtypes[q]
        if dt.kind == "b":
            return self.b(r)
        v = self.f(r)
        return v if dt == self.T else f"{_npname(dt)}({v})"


def _strides(spec, p):
    """{dim: stride expression} of input p over its F dims (flat, C order)."""
    pat = spec.pattern[p]
    out = {}
    later = []
    for d in range(len(pat) - 1, -1, -1):
        if pat[d] == "F":
            out[d] = "*".join(f"n{e}" for e in later) or "1"
            later.append(d)
    return out


def _unravel(flat, dims, ind):
    """Lines setting i<d> for dims (C order) from the flat index ``flat``."""
    if not dims:
        return []
    if len(dims) == 1:
        return [f"{ind}i{dims[0]} = {flat}"]
    lines = [f"{ind}_t = {flat}"]
    for d in reversed(dims[1:]):
        lines.append(f"{ind}i{d} = _t % n{d}")
        lines.append(f"{ind}_t = _t // n{d}")
    lines.append(f"{ind}i{dims[0]} = _t")
    return lines


def _base(spec, p, dims):
    st = _strides(spec, p)
    terms = [f"i{d} * {st[d]}" if st[d] != "1" else f"i{d}" for d in dims if d in st]
    return " + ".join(terms) or "0"


def _header(spec, g: _Gen) -> list:
    lines = [
        "# generated by pyinfer.kernels.codegen: do not edit",
        f"# key salt {_SALT}; pattern {spec.dimkinds} {spec.pattern}",
        "import math",
        "import numpy as np",
        "from numba import njit, prange",
        "from pyinfer.kernels import fastmath as cm",
        "",
        f"T = {_npname(spec.T)}",
        "ZERO = T(0)",
        "ONE = T(1)",
        "NAN = T(np.nan)",
        "INF = T(np.inf)",
    ]
    for name, v in g.consts:
        lines.append(f"{name} = T({v!r})" if math.isfinite(v) else f"{name} = T(float('{v}'))")
    return lines


_FM_ELEM = "{'contract', 'arcp'}"     # no reassoc: (x + c) - c must stay what NumPy computes
_FM_RED = "{'contract', 'arcp', 'reassoc'}"   # reassoc: vector partial sums of the accumulator


def _body_lines(g: _Gen, regs, level, load, ind):
    return [ind + g.emit(i, load) for i in regs if g.level[i] == level]


def _gen_elementwise(spec: _Spec) -> str:
    g = _Gen(spec)
    k = len(spec.sizes)
    nin, nout = len(spec.shapes), len(spec.results)
    regs = g.needed()
    outer = list(range(k - 1))
    args = [f"n{d}" for d in range(k)] + [f"a{p}" for p in range(nin)] + \
           [f"o{q}" for q in range(nout)]

    def load_at(level):
        def load(p):
            if level == 0:
                return f"a{p}[0]"
            if level == 1:
                return f"a{p}[b{p}]"
            return f"a{p}[b{p} + j]"
        return load

    lvl0 = _body_lines(g, regs, 0, load_at(0), "    ")
    row = []
    for p in range(nin):
        if "F" in spec.pattern[p]:
            row.append(f"            b{p} = {_base(spec, p, outer)}")
    lvl1 = _body_lines(g, regs, 1, load_at(1), "            ")
    lvl2 = _body_lines(g, regs, 2, load_at(2), "                ")
    stores = [f"                o{q}[ob + j] = {g.store(r, q)}"
              for q, r in enumerate(spec.results)]
    rows_expr = "*".join(f"n{d}" for d in outer) or "1"
    body = [
        f"    L = n{k - 1}",
        f"    R = {rows_expr}",
        *lvl0,
        f"    rpt = max(1, {BLOCK} // L)",
        f"    nch = (L + {BLOCK - 1}) // {BLOCK}",
        "    ngrp = (R + rpt - 1) // rpt",
        "    for t in RANGE(ngrp * nch):",
        "        g = t // nch",
        "        c = t - g * nch",
        f"        j0 = c * {BLOCK}",
        f"        j1 = min(L, j0 + {BLOCK})",
        "        r1 = min(R, (g + 1) * rpt)",
        "        for r in range(g * rpt, r1):",
        *_unravel("r", outer, "            "),
        *row,
        *lvl1,
        "            ob = r * L",
        "            for j in range(j0, j1):",
        *lvl2,
        *stores,
    ]
    return _assemble(spec, g, args, body, _FM_ELEM)


def _assemble(spec, g, args, body, fm):
    lines = _header(spec, g)
    src_body = "\n".join(body)
    for name, par, rng in (("kernel_par", "True", "prange"), ("kernel_ser", "False", "range")):
        lines += ["", "",
                  f"@njit(parallel={par}, cache=True, fastmath={fm}, error_model='numpy', "
                  "nogil=True)",
                  f"def {name}({', '.join(args)}):",
                  src_body.replace("RANGE(", rng + "(")]
    return "\n".join(lines) + "\n"


def _gen_reduction(spec: _Spec) -> str:
    g = _Gen(spec)
    k = len(spec.sizes)
    nin = len(spec.shapes)
    regs = g.needed()
    (res,) = spec.results
    op = spec.reduce
    kinds = spec.dimkinds
    R = [d for d in range(k) if kinds[d] == "R"]
    K = [d for d in range(k) if kinds[d] == "K"]
    args = [f"n{d}" for d in range(k)] + [f"a{p}" for p in range(nin)] + ["o0", "count"]
    outer = list(range(k - 1))
    inner = k - 1
    val = g.f(res)
    odt = spec.out_dtypes[0]
    cast = (lambda v: v) if odt == np.dtype(np.float64) else (lambda v: f"{_npname(odt)}({v})")
    if op in ("sum", "mean"):
        fin = (lambda v: cast(v)) if op == "sum" else (lambda v: cast(f"{v} / count"))
    else:
        fin = cast
    load0 = lambda p: f"a{p}[0]"            # noqa: E731
    load1 = lambda p: f"a{p}[b{p}]"         # noqa: E731
    load2 = lambda p: f"a{p}[b{p} + j]"     # noqa: E731
    lvl0 = _body_lines(g, regs, 0, load0, "    ")
    rtot = "*".join(f"n{d}" for d in R) or "1"
    body = [*lvl0, f"    Rtot = {rtot}"]
    if kinds[inner] == "R":
        # trailing reduction: each output reduces Rtot elements, in fixed chunks
        kexpr = "*".join(f"n{d}" for d in K) or "1"
        router = [d for d in R if d != inner]
        rows = [f"                b{p} = {_base(spec, p, outer)}"
                for p in range(nin) if "F" in spec.pattern[p]]
        lvl1 = _body_lines(g, regs, 1, load1, "                ")
        lvl2 = _body_lines(g, regs, 2, load2, "                    ")
        if op in ("sum", "mean"):
            init = ["        acc = 0.0"]
            upd = [f"                    acc += np.float64({val})"]
            part_store = "            part[t] = acc"
            comb_init = "            acc = 0.0"
            comb = "                acc += part[o * nch + c]"
            red_fin = "acc"
        else:
            cmpop = ">" if op == "max" else "<"
            init = [f"        acc = {'-' if op == 'max' else ''}INF", "        nanf = False"]
            upd = [f"                    v = {val}",
                   "                    nanf |= v != v",
                   f"                    acc = v if v {cmpop} acc else acc"]
            part_store = "            part[t] = NAN if nanf else acc"
            comb_init = f"            acc = {'-' if op == 'max' else ''}INF\n            nanf = False"
            comb = ("                v = part[o * nch + c]\n"
                    "                nanf |= v != v\n"
                    f"                acc = v if v {cmpop} acc else acc")
            red_fin = "(NAN if nanf else acc)"
        pdt = "np.float64" if op in ("sum", "mean") else "T"
        body += [
            f"    nout = {kexpr}",
            f"    L = n{inner}",
            f"    nch = (Rtot + {CHUNK - 1}) // {CHUNK} if Rtot > {CHUNK} else 1",
            f"    part = np.empty(nout * nch if nch > 1 else 1, {pdt})",
            "    for t in RANGE(nout * nch):",
            "        o = t // nch",
            "        c = t - o * nch",
            *_unravel("o", K, "        "),
            *init,
            f"        p0 = c * {CHUNK}",
            f"        p1 = min(Rtot, p0 + {CHUNK})",
            "        rr = p0 // L",
            "        jj = p0 - rr * L",
            "        pos = p0",
            "        while pos < p1:",
            "            cnt = min(L - jj, p1 - pos)",
            *_unravel("rr", router, "            "),
            "            if True:",
            *rows,
            *lvl1,
            "                for j in range(jj, jj + cnt):",
            *lvl2,
            *upd,
            "            pos += cnt",
            "            rr += 1",
            "            jj = 0",
            "        if nch == 1:",
            f"            o0[o] = {fin(red_fin)}",
            "        else:",
            part_store,
            "    if nch > 1:",
            "        for o in RANGE(nout):",
            comb_init,
            "            for c in range(nch):",
            comb,
            f"            o0[o] = {fin(red_fin)}",
        ]
    else:
        # the innermost dim is kept: a thread owns TN output columns of one outer
        # kept index and walks the reduced rows in order
        kouter = [d for d in K if d != inner]
        koexpr = "*".join(f"n{d}" for d in kouter) or "1"
        rows = [f"            b{p} = {_base(spec, p, outer)}"
                + (" + j0" if spec.pattern[p][-1] == "F" else "")
                for p in range(nin) if "F" in spec.pattern[p]]
        lvl1 = _body_lines(g, regs, 1, load1, "            ")
        lvl2 = _body_lines(g, regs, 2, load2, "                ")
        if op in ("sum", "mean"):
            init = [f"        acc = np.zeros({TN}, np.float64)"]
            upd = [f"                acc[j] += np.float64({val})"]
            red_fin = "acc[j]"
        else:
            cmpop = ">" if op == "max" else "<"
            init = [f"        acc = np.full({TN}, {'-' if op == 'max' else ''}INF, T)"]
            # NaN sticks: once acc[j] is NaN no comparison replaces it
            upd = [f"                v = {val}",
                   "                w = acc[j]",
                   f"                acc[j] = v if (v {cmpop} w) | (v != v) else w"]
            red_fin = "acc[j]"
        body += [
            f"    L = n{inner}",
            f"    nko = {koexpr}",
            f"    ntile = (L + {TN - 1}) // {TN}",
            "    for t in RANGE(nko * ntile):",
            "        ko = t // ntile",
            "        c = t - ko * ntile",
            f"        j0 = c * {TN}",
            f"        w_ = min(L, j0 + {TN}) - j0",
            *_unravel("ko", kouter, "        "),
            *init,
            "        for rr in range(Rtot):",
            *_unravel("rr", R, "            "),
            *rows,
            *lvl1,
            "            for j in range(w_):",
            *lvl2,
            *upd,
            "        ob = ko * L + j0",
            "        for j in range(w_):",
            f"            o0[ob + j] = {fin(red_fin)}",
        ]
    return _assemble(spec, g, args, body, _FM_RED)


def _generate(spec: _Spec) -> str:
    return _gen_elementwise(spec) if spec.kind == "elementwise" else _gen_reduction(spec)


# ---- modules on disk ----------------------------------------------------------------------

def cache_dir() -> str:
    d = os.environ.get("PYINFER_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "pyinfer", "fused")
    os.makedirs(d, exist_ok=True)
    return d


def _digest(k) -> str:
    return hashlib.sha256(repr(k).encode()).hexdigest()[:24]


class _Module:
    """One generated source file, imported; its two dispatchers compile lazily, once."""

    def __init__(self, k, src, spec):
        self.key = k
        self.source = src
        self.digest = _digest(k)
        self.path = None
        self.mod = None
        self.sig = self._signature(spec)
        self.fns = {}

    @staticmethod
    def _signature(spec):
        from numba import types
        from numba.np.numpy_support import from_dtype
        arr = lambda dt: types.Array(from_dtype(dt), 1, "C")   # noqa: E731
        sig = [types.int64] * len(spec.sizes) + [arr(d) for d in spec.in_dtypes]
        if spec.kind == "elementwise":
            sig += [arr(d) for d in spec.out_dtypes]
        else:
            sig += [arr(spec.out_dtypes[0]), types.float64]
        return tuple(sig)

    def _load(self):
        if self.mod is not None:
            return self.mod
        d = cache_dir()
        name = f"fused_{self.digest}"
        path = os.path.join(d, name + ".py")
        try:
            with open(path) as f:
                same = f.read() == self.source
        except OSError:
            same = False
        if not same:
            # atomic: another process may be importing the same file right now
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w") as f:
                f.write(self.source)
            os.replace(tmp, path)
        modname = f"pyinfer_fused_{self.digest}"
        mod = sys.modules.get(modname)
        if mod is None:
            spec = importlib.util.spec_from_file_location(modname, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)
        self.path, self.mod = path, mod
        return mod

    def function(self, parallel: bool):
        """The compiled dispatcher (compiling or loading it from disk now if needed)."""
        global _count, _compile_seconds
        fn = self.fns.get(parallel)
        if fn is not None:
            return fn
        with _lock:
            fn = self.fns.get(parallel)
            if fn is not None:
                return fn
            mod = self._load()
            disp = mod.kernel_par if parallel else mod.kernel_ser
            t0 = time.perf_counter()
            disp.compile(self.sig)
            disp.disable_compile()      # a wrong argument type raises, never JITs
            _compile_seconds += time.perf_counter() - t0
            _count += 1
            self.fns[parallel] = disp
            return disp


# ---- the public surface -------------------------------------------------------------------

class FusedKernel:
    """A generated kernel bound to concrete input shapes.

    ``kernel(inputs, outputs)``: ``inputs`` are NumPy arrays of the shapes and
    dtypes given to ``compile_fused`` (any strides: a non-C-contiguous input is
    copied, the only allocation the call may make); ``outputs`` are C-contiguous
    arrays of ``out_shapes``/``out_dtypes`` that receive the results.
    """

    def __init__(self, module: _Module, spec: _Spec, parallel: Optional[bool]):
        self._module = module
        self.key = module.key
        self.source = module.source
        self.kind = spec.kind
        self.in_shapes = spec.shapes
        self.in_dtypes = spec.in_dtypes
        self.out_shapes = (spec.out_shape,) * len(spec.out_dtypes)
        self.out_dtypes = spec.out_dtypes
        self.canonical = (spec.sizes, spec.dimkinds, spec.pattern)
        total = int(np.prod(spec.iter_shape, dtype=np.int64))
        out_size = int(np.prod(spec.out_shape, dtype=np.int64))
        self._empty = total == 0 or out_size == 0
        self._fill = None        # an empty reduction: NumPy's value for it
        if spec.kind == "reduction" and total == 0 and out_size > 0:
            if spec.reduce in ("max", "min"):
                raise ValueError(f"fused {spec.reduce}: zero-size reduction has no identity")
            self._fill = 0.0 if spec.reduce == "sum" else float("nan")
        self.parallel = (total >= SERIAL_BELOW) if parallel is None else bool(parallel)
        self._head = tuple(int(s) for s in spec.sizes)
        self._tail = (float(spec.n_reduced),) if spec.kind == "reduction" else ()
        self._fn = None
        self._in = tuple(zip(spec.shapes, spec.in_dtypes))
        self._out = tuple(zip(self.out_shapes, spec.out_dtypes))
        self._nin, self._nout = len(self._in), len(self._out)

    @property
    def path(self) -> Optional[str]:
        return self._module.path

    def warm(self) -> "FusedKernel":
        """Compile (or load from Numba's disk cache) now, at plan time."""
        if self._fn is None:
            self._fn = self._module.function(self.parallel)
        return self

    def __call__(self, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> None:
        fn = self._fn
        if fn is None:
            fn = self.warm()._fn
        if len(inputs) != self._nin or len(outputs) != self._nout:
            self._bad(inputs, outputs)
        args = list(self._head)
        for x, (shp, dt) in zip(inputs, self._in):
            if x.shape != shp or (x.dtype is not dt and x.dtype != dt):
                self._bad(inputs, outputs)
            if not x.flags.c_contiguous:
                x = np.ascontiguousarray(x)     # the one copy: a strided input
            args.append(x.reshape(-1))
        for o, (shp, dt) in zip(outputs, self._out):
            if o.shape != shp or (o.dtype is not dt and o.dtype != dt) \
                    or not o.flags.c_contiguous:
                self._bad(inputs, outputs)
            args.append(o.reshape(-1))
        if self._empty:
            if self._fill is not None:
                outputs[0].fill(self._fill)
            return
        if self._tail:
            args.extend(self._tail)
        if self.parallel:
            _sync()
        fn(*args)

    def _bad(self, inputs, outputs):
        """Raise the error that names the first bad argument (the slow path)."""
        from pyinfer.errors import dtype_error, shape_error
        op = "fused kernel"
        if len(inputs) != self._nin or len(outputs) != self._nout:
            raise shape_error("inputs/outputs", f"{self._nin}/{self._nout} arrays",
                              f"{len(inputs)}/{len(outputs)}", op)
        for what, arrs, specs in (("inputs", inputs, self._in), ("outputs", outputs, self._out)):
            for i, (x, (shp, dt)) in enumerate(zip(arrs, specs)):
                if x.shape != shp:
                    raise shape_error(f"{what}[{i}]", shp, x.shape, op)
                if x.dtype != dt:
                    raise dtype_error(f"{what}[{i}]", dt, x.dtype, op)
                if what == "outputs" and not x.flags.c_contiguous:
                    raise shape_error(f"{what}[{i}]", "a C-contiguous array",
                                      "a strided view", op)


_sync_fn = None


def _sync():
    global _sync_fn
    if _sync_fn is None:
        from pyinfer.threads import sync_numba
        _sync_fn = sync_numba
    _sync_fn()


def key(node_or_attrs, input_shapes=None, input_dtypes=None) -> tuple:
    """The cache key of the kernel for this node/attrs and input shapes/dtypes:
    (kind, program, results, compute dtype, input dtypes, output dtypes,
    canonical R/K dims, canonical broadcast pattern per input[, reduce], salt)."""
    return _Spec(node_or_attrs, input_shapes, input_dtypes).key()


def source(node_or_attrs, input_shapes=None, input_dtypes=None) -> str:
    """The generated Python source (for debugging and ``explain``)."""
    return _generate(_Spec(node_or_attrs, input_shapes, input_dtypes))


def compile_fused(node_or_attrs, input_shapes=None, input_dtypes=None, *,
                  parallel: Optional[bool] = None, warm: bool = True) -> FusedKernel:
    """Generate, cache and (``warm=True``) compile the kernel of a FUSED_ELEMENTWISE
    or FUSED_REDUCTION node (or its attrs dict).  ``input_shapes``/``input_dtypes``
    default to the node's input values.  ``parallel`` forces a variant (tests);
    None picks by size (``SERIAL_BELOW``)."""
    spec = _Spec(node_or_attrs, input_shapes, input_dtypes)
    k = spec.key()
    ck = (k, spec.shapes, spec.iter_shape, spec.out_shape, parallel)
    fk = _kernels.get(ck)
    if fk is None:
        with _lock:
            mod = _modules.get(k)
            if mod is None:
                mod = _modules[k] = _Module(k, _generate(spec), spec)
            fk = _kernels.setdefault(ck, FusedKernel(mod, spec, parallel))
    if warm:
        fk.warm()
    return fk


def compile_count() -> int:
    """How many kernel variants this module compiled or loaded from disk (pyinfer.stats())."""
    return _count


def compile_seconds() -> float:
    """Seconds spent compiling/loading generated kernels in this process."""
    return _compile_seconds


__all__ = ["compile_fused", "FusedKernel", "key", "source", "compile_count",
           "compile_seconds", "cache_dir", "BLOCK", "SERIAL_BELOW"]
