"""The ``c`` backend's ``gemm`` and ``matmul``: csrc/pi_gemm.c, the BLIS-style
packed GEMM with its epilogue (alpha, bias, residual, activation) fused into
the micro-kernel.  Kernel signatures: docs/kernel-contract.md.

The C entry point takes byte strides, so transposes, slices and broadcast
(zero-stride) operands go through without copies.  Only what C must not see is
fixed here: an operand whose data or strides are not aligned to its item size
is copied, and an unaligned ``out`` is computed into a temporary.  The
workspace is a per-thread buffer grown on demand (``_workspace``), so a call
allocates nothing but what those fixes need.

Weights that stay fixed (a plan's constant B) are packed once into a
``PackedB`` (``pack_b``) and multiplied by ``gemm_packed``: the call then packs
only A and its threads share nothing, so no barrier runs inside it.

``ukernels()`` lists the micro-kernels (csrc/pi_gemm_ukernels.h) with their
register tiles and cache blocking, for tests and tuning.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..registry import register
from ._native import Scratch, check, ffi, lib

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

PRIORITY = 20
# Below this many multiply-adds the cffi call and stride handling (~2-3 us)
# cost more than NumPy's whole matmul: step aside.
_TINY_MACS = 4096

ACTIVATION_CODES = {
    None: lib.PI_ACT_NONE,
    "relu": lib.PI_ACT_RELU,
    "gelu": lib.PI_ACT_GELU,
    "gelu_tanh": lib.PI_ACT_GELU_TANH,
    "silu": lib.PI_ACT_SILU,
    "sigmoid": lib.PI_ACT_SIGMOID,
    "tanh": lib.PI_ACT_TANH,
}


class UKernel(NamedTuple):
    """One entry of the micro-kernel list."""
    name: str
    dtype: np.dtype
    isa: int
    mr: int
    nr: int
    kc: int
    mc: int
    nc: int


def ukernels() -> list[UKernel]:
    """Every GEMM micro-kernel in csrc/pi_gemm_ukernels.h, in list order (the
    first per (isa, dtype) is the one GEMM dispatches to)."""
    out = []
    vals = ffi.new("int[7]")
    name = ffi.new("const char **")
    i = 0
    while lib.pi_gemm_ukernel_info(i, vals, vals + 1, vals + 2, vals + 3, vals + 4, vals + 5,
                                   vals + 6, name) == 0:
        es, isa, mr, nr, kc, mc, nc = list(vals)
        out.append(UKernel(ffi.string(name[0]).decode(), _F32 if es == 4 else _F64,
                           isa, mr, nr, kc, mc, nc))
        i += 1
    return out


_workspace = Scratch()  # this family's per-thread C scratch


def _ptr(x: np.ndarray, f32: bool):
    """A typed pointer to x's first element: from_buffer for C-contiguous
    arrays (~0.3 us), the slower ctypes address otherwise (~1.5 us)."""
    if x.flags.c_contiguous:
        return ffi.from_buffer("float[]" if f32 else "double[]", x)
    return ffi.cast("float *" if f32 else "double *", x.ctypes.data)


def _fit(x: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """x, or an aligned copy when its data or strides are not multiples of the
    item size (NumPy's ALIGNED flag checks both; zero strides pass)."""
    if x is None or x.flags.aligned:
        return x
    return np.ascontiguousarray(x)


def _dtype_reason(out, *arrays) -> Optional[str]:
    dt = out.dtype
    if dt != _F32 and dt != _F64:
        return f"dtype {dt} is not float32/float64"
    for x in arrays:
        if x is not None and x.dtype != dt:
            return f"input dtype {x.dtype} differs from the result dtype {dt}"
    return None


def _call(batch, m, n, k, alpha, a, a_bs, b, b_bs, bias, r, act, c, c_bs, name):
    """One pi_<dtype>_gemm call.  a, b, r, c are 2-D (batch == 1, *_bs = 0) or
    3-D with their batch strides passed; bias (n,) contiguous or None."""
    f32 = c.dtype == _F32
    fn = lib.pi_f32_gemm if f32 else lib.pi_f64_gemm
    target = c if c.flags.aligned else np.empty(c.shape, c.dtype)
    ws, ws_size = _workspace(lib.pi_gemm_workspace_bytes(c.itemsize, m, n, k))
    sa, sb, sc = a.strides[-2:], b.strides[-2:], target.strides[-2:]
    if r is None:
        rp, r_bs, sr = ffi.NULL, 0, (0, 0)
    else:
        rp, sr = _ptr(r, f32), r.strides[-2:]
        r_bs = r.strides[0] if r.ndim == 3 else 0
    status = fn(batch, m, n, k, alpha,
                _ptr(a, f32), a_bs, sa[0], sa[1],
                _ptr(b, f32), b_bs, sb[0], sb[1],
                ffi.NULL if bias is None else _ptr(bias, f32),
                rp, r_bs, sr[0], sr[1],
                act,
                _ptr(target, f32), c_bs if target is c else target.strides[0] * (target.ndim == 3),
                sc[0], sc[1],
                ws, ws_size)
    if status:
        check(status, name)
    if target is not c:
        np.copyto(c, target)


def _gemm_supports(a, b, bias, residual, *, alpha, activation, out) -> Optional[str]:
    why = _dtype_reason(out, a, b, bias, residual)
    if why is not None:
        return why
    if activation not in ACTIVATION_CODES:
        return f"activation {activation!r} has no C epilogue"
    return None


def _gemm_priority(a, b, bias, residual, *, alpha, activation, out) -> int:
    return PRIORITY if a.shape[0] * a.shape[1] * b.shape[1] >= _TINY_MACS else -1


@register("gemm", "c", supports=_gemm_supports, priority=_gemm_priority)
def gemm(a, b, bias, residual, *, alpha, activation, out):
    """out (M, N) = act(alpha * a (M, K) @ b (K, N) + bias (N,) + residual (M, N));
    float32 or float64, any strides (residual may be broadcast)."""
    a, b, residual = _fit(a), _fit(b), _fit(residual)
    if bias is not None and not (bias.flags.aligned and bias.flags.c_contiguous):
        bias = np.ascontiguousarray(bias)
    m, k = a.shape
    _call(1, m, b.shape[1], k, alpha, a, 0, b, 0, bias, residual, ACTIVATION_CODES[activation],
          out, 0, "gemm")


def _matmul_supports(a, b, *, out) -> Optional[str]:
    return _dtype_reason(out, a, b)


def _matmul_priority(a, b, *, out) -> int:
    return PRIORITY if out.size * a.shape[-1] >= _TINY_MACS else -1


@register("matmul", "c", supports=_matmul_supports, priority=_matmul_priority)
def matmul(a, b, *, out):
    """out (B, M, N) = a (B, M, K) @ b (B, K, N); float32 or float64, any strides
    (batch broadcasting as zero strides)."""
    a, b = _fit(a), _fit(b)
    batch, m, k = a.shape
    _call(batch, m, b.shape[2], k, 1.0, a, a.strides[0], b, b.strides[0], None, None, 0, out,
          out.strides[0], "matmul")


class PackedB:
    """B (K, N) float32/float64 laid out once for ``gemm_packed`` (the
    micro-kernel's NR-column slivers over all of K), for calls of about ``m``
    rows (any m works; m picks the register tile).  Keeps B itself, to pack
    it again if the ISA in force changes (tests lower it)."""

    __slots__ = ("b", "m", "dtype", "_buf", "ptr", "_ws")

    def __init__(self, b: np.ndarray, m: int):
        if b.ndim != 2 or b.dtype not in (_F32, _F64):
            raise ValueError(f"pack_b: B must be a 2-d float32/float64 array, got "
                             f"{b.dtype} {b.shape}")
        self.b = _fit(b)
        self.m = int(m)
        self.dtype = b.dtype
        self._pack()

    @property
    def shape(self) -> tuple:
        return self.b.shape

    def _pack(self) -> None:
        b, f32 = self.b, self.b.dtype == _F32
        k, n = b.shape
        nbytes = lib.pi_gemm_packed_b_bytes(b.itemsize, self.m, k, n)
        buf = np.empty(nbytes + 64, np.uint8)
        ptr = ffi.cast("void *", buf.ctypes.data + (-buf.ctypes.data) % 64)
        pack = lib.pi_f32_gemm_pack_b if f32 else lib.pi_f64_gemm_pack_b
        check(pack(self.m, k, n, _ptr(b, f32), b.strides[0], b.strides[1], ptr, nbytes),
              "pack_b")
        self._buf, self.ptr, self._ws = buf, ptr, {}

    def workspace_bytes(self, m: int) -> int:
        """Workspace a call of m rows needs at the thread count in force; kept
        per m (a call that finds it short, threads raised since, asks again)."""
        nbytes = lib.pi_gemm_packed_workspace_bytes(self.ptr, m)
        self._ws[m] = nbytes
        return nbytes

    @property
    def ukernel(self) -> str:
        """The name of the micro-kernel the slivers are laid out for."""
        return ukernels()[lib.pi_gemm_packed_b_ukernel(self.ptr)].name


def pack_b(b: np.ndarray, m: int) -> PackedB:
    """B (K, N) packed for ``gemm_packed`` calls of about m rows."""
    return PackedB(b, m)


def gemm_packed(a, b: PackedB, bias, residual, *, alpha, activation, out):
    """out (M, N) = act(alpha * a (M, K) @ b + bias (N,) + residual (M, N)) with b
    packed by ``pack_b``; the plan's form of ``gemm`` for constant weights.
    Trusts its caller (the plan checked shapes and dtypes when it chose the c
    gemm): a and residual any strides, bias contiguous or None.  Per call it
    does only what the arrays of this run need: pointers, strides and the
    workspace (its size is kept per m)."""
    f32 = out.dtype == _F32
    if not a.flags.aligned:
        a = np.ascontiguousarray(a)
    target = out if out.flags.aligned else np.empty(out.shape, out.dtype)
    m = a.shape[0]
    if residual is None:
        rp, r_rs, r_cs = ffi.NULL, 0, 0
    else:
        residual = _fit(residual)
        rp, (r_rs, r_cs) = _ptr(residual, f32), residual.strides
    args = (m, alpha, _ptr(a, f32), a.strides[0], a.strides[1], b.ptr,
            ffi.NULL if bias is None else _ptr(bias, f32), rp, r_rs, r_cs,
            ACTIVATION_CODES[activation], _ptr(target, f32), target.strides[0],
            target.strides[1])
    fn = lib.pi_f32_gemm_packed if f32 else lib.pi_f64_gemm_packed
    ws_bytes = b._ws.get(m)
    if ws_bytes is None:
        ws_bytes = b.workspace_bytes(m)
    status = fn(*args, *_workspace(ws_bytes))
    if status == lib.PI_ERR_WORKSPACE:  # more threads than when ws_bytes was asked
        status = fn(*args, *_workspace(b.workspace_bytes(m)))
    elif status == lib.PI_ERR_UNSUPPORTED:  # packed for an ISA no longer in force
        b._pack()
        args = args[:5] + (b.ptr,) + args[6:]
        status = fn(*args, *_workspace(b.workspace_bytes(m)))
    if status:
        check(status, "gemm")
    if target is not out:
        np.copyto(out, target)
