"""The ``c`` backend's ``conv2d``: one registry kernel that picks a path by shape
(docs/conv.md), and ``ConvKernel``, the same thing with its weights packed once
(what the graph's ``lower`` builds at plan time, so ``run`` never repacks).

Paths (``PATHS``; ``force_path`` pins one, for tests and benchmarks):

* ``depthwise`` -- groups == C == K: csrc/pi_conv.c's plane kernel.
* ``winograd``  -- 3x3, stride 1, dilation 1, groups 1, float32, when
  ``winograd.supports`` says so (pyinfer/backends/winograd.py).
* ``gemm1x1``   -- 1x1, stride 1, no padding, groups 1, at most 16 output
  channels: the packed C GEMM itself, ``Y[n] = W @ X[n]`` with X[n] read in place
  (its rows are the channel planes); bias goes in as a zero-stride residual, so
  bias *and* residual, or clip, send the call to ``implicit`` instead.
* ``implicit``  -- everything else: implicit GEMM over the GEMM micro-kernels,
  im2col-packing each B block on the fly, bias packed into the weights.

Kernel contract (docs/kernel-contract.md): x (N, C, H, W) any aligned strides;
w (K, C/groups, KH, KW); bias None or (K,); residual None or an (N, K, OH, OW)
view (may be broadcast); stride, dilation pairs >= 1; pads (top, left, bottom,
right) >= 0; activation None, relu, gelu, gelu_tanh, silu, sigmoid, tanh or
"clip" with ``clip = (lo, hi)``; out (N, K, OH, OW), never overlapping an input.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Optional

import numpy as np

from ..registry import register
from . import winograd
from ._native import Scratch, check, ffi, lib
from .c_gemm import ACTIVATION_CODES, _call as _gemm_call

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
PATHS = ("depthwise", "winograd", "gemm1x1", "implicit")
PRIORITY = 20
# Below this many multiply-adds the cffi call and packing cost more than the
# NumPy reference's einsum over a handful of taps.
_TINY_MACS = 2048

_forced = threading.local()


@contextlib.contextmanager
def force_path(path: Optional[str]):
    """Make every C conv2d in this thread take ``path`` (None: choose by shape).
    A forced path that cannot run the call raises, so tests cannot pass by
    silently running another path."""
    if path is not None and path not in PATHS:
        raise ValueError(f"force_path: unknown path {path!r}; known: {PATHS}")
    previous = getattr(_forced, "path", None)
    _forced.path = path
    try:
        yield
    finally:
        _forced.path = previous


# ---- geometry and workspace ---------------------------------------------------------

def out_hw(x_shape, w_shape, stride, pads, dilation):
    h, w = x_shape[2:]
    kh, kw = w_shape[2:]
    oh = (h + pads[0] + pads[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return oh, ow


def _shape_struct(x_shape, w_shape, stride, pads, dilation, groups):
    n, c, h, w = x_shape
    k, _, kh, kw = w_shape
    oh, ow = out_hw(x_shape, w_shape, stride, pads, dilation)
    return ffi.new("pi_conv2d_shape *", {
        "n": n, "c": c, "h": h, "w": w, "k": k, "oh": oh, "ow": ow, "kh": kh, "kw": kw,
        "sh": stride[0], "sw": stride[1], "dh": dilation[0], "dw": dilation[1],
        "pad_t": pads[0], "pad_l": pads[1], "groups": groups})


_workspace = Scratch()  # this family's per-thread C scratch


def _ptr(x: Optional[np.ndarray]):
    if x is None:
        return ffi.NULL
    return ffi.cast("float *" if x.dtype == _F32 else "double *", x.ctypes.data)


# ---- choosing a path ------------------------------------------------------------------

def path_reason(path, x_shape, w_shape, stride, pads, dilation, groups, dtype, bias,
                residual, activation) -> Optional[str]:
    """None if ``path`` can run this call, else why not."""
    n, c, h, w = x_shape
    k, cg, kh, kw = w_shape
    if path == "depthwise":
        if not (groups == c == k and cg == 1):
            return "not depthwise (groups == C == K)"
        return None
    if path == "winograd":
        return winograd.supports(tuple(x_shape), tuple(w_shape), tuple(stride),
                                 tuple(dilation), groups, np.dtype(dtype), tuple(pads))
    if path == "gemm1x1":
        if (kh, kw) != (1, 1) or tuple(stride) != (1, 1) or any(pads) or groups != 1:
            return "not a 1x1, stride 1, unpadded, ungrouped conv"
        if bias is not None and residual is not None:
            return "bias and residual together (the GEMM's bias runs along pixels)"
        if activation == "clip":
            return "the GEMM has no clip epilogue"
        return None
    if path == "implicit":
        return None
    return f"unknown path {path!r}"


# An eager call transforms the Winograd weights every time: ~2 us per (K, C) pair
# (winograd.transform_weights, measured 8.7 ms for 64x64), against a saving of
# ~9.5e-12 s per direct FLOP (65 -> 170 GFLOP/s, 1 thread): it pays from about
# 12k output pixels (N*OH*OW) on, whatever K and C.
_WINOGRAD_PER_CALL_MIN_PIXELS = 16384
# Few output pixels (N*OH*OW) with many channels: the transformed weights (36
# K x C slices, 4x the raw ones) are streamed for little work.  512 -> 512 at
# 7x7 measured Winograd 6.7 / 5.4 / 6.4 ms against the implicit GEMM's 3.3 /
# 5.5 / 32 ms at batch 1 / 2 / 8 (2 threads).
_WINOGRAD_MIN_PIXELS = 100


def choose_path(x_shape, w_shape, stride, pads, dilation, groups, dtype, bias, residual,
                activation, per_call: bool = False) -> str:
    """The path for this call: the forced one, else the first of the preference
    order (bench/RESULTS.md, conv section) that supports it.  ``per_call``: the
    weights are prepared for this one call (eager), not once at plan time."""
    args = (x_shape, w_shape, stride, pads, dilation, groups, dtype, bias, residual, activation)
    forced = getattr(_forced, "path", None)
    if forced is not None:
        why = path_reason(forced, *args)
        if why is not None:
            raise ValueError(f"conv2d: forced path '{forced}' cannot run this call: {why}")
        return forced
    for path in _PREFERENCE:
        if path == "gemm1x1" and w_shape[0] > _GEMM1X1_MAX_COUT:
            continue
        if path == "winograd":
            oh, ow = out_hw(x_shape, w_shape, stride, pads, dilation)
            if x_shape[0] * oh * ow < _WINOGRAD_MIN_PIXELS:
                continue
            if per_call and x_shape[0] * oh * ow < _WINOGRAD_PER_CALL_MIN_PIXELS:
                continue
        if path_reason(path, *args) is None:
            return path
    return "implicit"


# Measured order (bench/test_bench_conv.py, RESULTS.md): depthwise where it
# applies; Winograd for 3x3 stride 1 (2-3x the implicit GEMM at 64 channels);
# the GEMM itself for a 1x1 with few output channels (<= 16: it streams X
# unpacked, 1.2-2x the implicit path); the implicit GEMM for the rest, 1x1
# included (its L2-sized B chunks beat the GEMM's L3-sized B panel by 10-40%).
_PREFERENCE = ("depthwise", "winograd", "gemm1x1", "implicit")
_GEMM1X1_MAX_COUT = 16


# ---- the kernel with its weights prepared ------------------------------------------------

class ConvKernel:
    """A conv2d for one (x shape, weights, attributes) with everything that does
    not depend on x done once: the path chosen and its weights packed.  Calling
    it runs the convolution: ``kernel(x, residual, out)``."""

    def __init__(self, x_shape, w, bias, *, stride, pads, dilation, groups, activation, clip,
                 dtype, path: Optional[str] = None, has_residual: bool = False,
                 per_call: bool = False):
        self.dtype = np.dtype(dtype)
        self.x_shape = tuple(x_shape)
        self.w_shape = tuple(w.shape)
        self.stride, self.pads, self.dilation = tuple(stride), tuple(pads), tuple(dilation)
        self.groups = groups
        self.activation = activation
        self.clip = clip
        w = np.ascontiguousarray(w, self.dtype)
        bias = None if bias is None else np.ascontiguousarray(bias, self.dtype)
        self.w, self.bias = w, bias
        if path is None:
            path = choose_path(self.x_shape, self.w_shape, self.stride, self.pads,
                               self.dilation, groups, self.dtype, bias,
                               True if has_residual else None, activation, per_call)
        self.path = path
        self.shape = _shape_struct(self.x_shape, self.w_shape, self.stride, self.pads,
                                   self.dilation, groups)
        self.out_shape = (self.x_shape[0], self.w_shape[0]) + out_hw(
            self.x_shape, self.w_shape, self.stride, self.pads, self.dilation)
        self.f32 = self.dtype == _F32
        self.act_code = 0 if activation == "clip" else ACTIVATION_CODES[activation]
        self.clip_on = int(activation == "clip")
        self.lo, self.hi = clip if activation == "clip" else (0.0, 0.0)
        self.mr = None
        if path == "implicit":
            self._pack()
        elif path == "gemm1x1":
            self.w2 = w.reshape(w.shape[0], w.shape[1])
        elif path == "winograd":
            self.tile = 4
            self.wt = winograd.transform_weights(w, self.tile)

    def _pack(self):
        """W into the micro-kernel's MR-row panels, bias as the extra K column."""
        es = self.dtype.itemsize
        self.mr = lib.pi_conv2d_gemm_mr(es)
        with_bias = self.bias is not None
        size = lib.pi_conv2d_packed_weights_size(self.shape, self.mr, with_bias)
        self.wp = np.empty(max(size, 1), self.dtype)
        fn = lib.pi_f32_conv2d_pack_weights if self.f32 else lib.pi_f64_conv2d_pack_weights
        check(fn(self.shape, self.mr, _ptr(self.w), _ptr(self.bias), _ptr(self.wp)),
              "conv2d pack")

    def __call__(self, x, residual, out):
        target = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
        if residual is not None and not residual.flags.c_contiguous:
            residual = np.ascontiguousarray(residual)
        getattr(self, "_run_" + self.path)(x, residual, target)
        if target is not out:
            np.copyto(out, target)

    def _run_implicit(self, x, residual, y):
        es = self.dtype.itemsize
        if lib.pi_conv2d_gemm_mr(es) != self.mr:
            self._pack()  # the ISA was changed (tests): the tile height with it
        with_bias = int(self.bias is not None)
        ws, size = _workspace(lib.pi_conv2d_gemm_workspace_bytes(es, self.shape, with_bias))
        fn = lib.pi_f32_conv2d_gemm if self.f32 else lib.pi_f64_conv2d_gemm
        st = x.strides
        check(fn(self.shape, self.mr, _ptr(x), st[0], st[1], st[2], st[3], _ptr(self.wp),
                 with_bias, _ptr(residual), self.act_code, self.clip_on, self.lo, self.hi,
                 _ptr(y), ws, size), "conv2d")

    def _run_depthwise(self, x, residual, y):
        es = self.dtype.itemsize
        ws, size = _workspace(lib.pi_conv2d_depthwise_workspace_bytes(es, self.shape))
        fn = lib.pi_f32_conv2d_depthwise if self.f32 else lib.pi_f64_conv2d_depthwise
        st = x.strides
        check(fn(self.shape, _ptr(x), st[0], st[1], st[2], st[3], _ptr(self.w),
                 _ptr(self.bias), _ptr(residual), self.act_code, self.clip_on, self.lo,
                 self.hi, _ptr(y), ws, size), "conv2d")

    def _run_gemm1x1(self, x, residual, y):
        n, c, h, w = x.shape
        k, p = self.w_shape[0], h * w
        if x.strides[2] != w * x.strides[3]:
            x = np.ascontiguousarray(x)  # rows not one plane: the GEMM needs (C, H*W)
        b = np.lib.stride_tricks.as_strided(x, (n, c, p), (x.strides[0], x.strides[1],
                                                           x.strides[3]))
        y3 = y.reshape(n, k, p)
        r = None
        if residual is not None:
            r = residual.reshape(n, k, p)
        elif self.bias is not None:
            # bias[i] along the rows (output channels): a residual with zero strides.
            r = np.lib.stride_tricks.as_strided(self.bias, (n, k, p), (0, self.dtype.itemsize, 0))
        _gemm_call(n, k, p, c, 1.0, self.w2, 0, b, b.strides[0], None, r, self.act_code,
                   y3, y3.strides[0], "conv2d")

    def _run_winograd(self, x, residual, y):
        x = np.ascontiguousarray(x)
        if self.clip_on:
            winograd.conv3x3(x, self.wt, self.tile, self.pads, self.bias, "clip",
                                      residual, y, clip_min=self.lo, clip_max=self.hi)
        else:
            winograd.conv3x3(x, self.wt, self.tile, self.pads, self.bias,
                                      self.act_code, residual, y)


# ---- the registry kernel ------------------------------------------------------------------

def _supports(x, w, bias, residual, *, stride, pads, dilation, groups, activation, clip,
              out) -> Optional[str]:
    dt = out.dtype
    if dt != _F32 and dt != _F64:
        return f"dtype {dt} is not float32/float64"
    for a in (x, w, bias, residual):
        if a is not None and a.dtype != dt:
            return f"input dtype {a.dtype} differs from the result dtype {dt}"
    if activation != "clip" and activation not in ACTIVATION_CODES:
        return f"activation {activation!r} has no C epilogue"
    if w.shape[1] * w.shape[2] * w.shape[3] == 0:
        return "empty reduction (C/groups * KH * KW == 0)"
    forced = getattr(_forced, "path", None)
    if forced is not None:
        return path_reason(forced, x.shape, w.shape, stride, pads, dilation, groups, dt, bias,
                           residual, activation)
    return None


def _priority(x, w, bias, residual, *, out, **attrs) -> int:
    macs = out.size * w.shape[1] * w.shape[2] * w.shape[3]
    return PRIORITY if macs >= _TINY_MACS or getattr(_forced, "path", None) else -1


@register("conv2d", "c", supports=_supports, priority=_priority)
def conv2d(x, w, bias, residual, *, stride, pads, dilation, groups, activation, clip, out):
    """out = act(conv(x, w) + bias + residual): the path chosen by shape, the
    weights packed for this one call (the graph packs them once: ConvKernel)."""
    kernel = ConvKernel(x.shape, w, bias, stride=stride, pads=pads, dilation=dilation,
                        groups=groups, activation=activation, clip=clip, dtype=out.dtype,
                        has_residual=residual is not None, per_call=True)
    kernel(x, residual, out)


# ---- NCHWc (8-channel blocks) ----------------------------------------------------------

NCHWC_BLOCK = 8


def nchwc_reason(x_shape, w_shape, groups, dtype) -> Optional[str]:
    """None if the direct NCHWc kernel can run this conv (given in NCHW terms)."""
    if np.dtype(dtype) != _F32:
        return f"dtype {np.dtype(dtype)} is not float32"
    if groups != 1:
        return "groups != 1"
    if lib.pi_isa() < 1:
        return "needs AVX2"
    return None


class NchwcConvKernel:
    """conv2d on NCHWc tensors with its weights packed once: ``kernel(x5, r5, out5)``
    with x5 (N, ceil(C/8), H, W, 8), r5 and out5 (N, ceil(K/8), OH, OW, 8), all
    C-contiguous float32.  x_shape and w are given in NCHW terms."""

    def __init__(self, x_shape, w, bias, *, stride, pads, dilation, activation, clip):
        self.shape = _shape_struct(tuple(x_shape), w.shape, stride, pads, dilation, 1)
        k = w.shape[0]
        kb = -(-k // NCHWC_BLOCK)
        self.wp = np.empty(max(lib.pi_conv2d_nchwc_packed_size(self.shape), 1), _F32)
        w = np.ascontiguousarray(w, _F32)
        check(lib.pi_f32_conv2d_nchwc_pack(self.shape, _ptr(w), _ptr(self.wp)), "conv2d pack")
        self.bias = np.zeros(kb * NCHWC_BLOCK, _F32)
        if bias is not None:
            self.bias[:k] = bias
        self.act_code = 0 if activation == "clip" else ACTIVATION_CODES[activation]
        self.clip_on = int(activation == "clip")
        self.lo, self.hi = clip if activation == "clip" else (0.0, 0.0)
        self.path = "nchwc"

    def __call__(self, x, residual, out):
        check(lib.pi_f32_conv2d_nchwc(self.shape, _ptr(x), _ptr(self.wp), _ptr(self.bias),
                                      _ptr(residual), self.act_code, self.clip_on, self.lo,
                                      self.hi, _ptr(out)), "conv2d nchwc")
