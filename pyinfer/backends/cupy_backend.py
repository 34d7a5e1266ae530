"""The CuPy backend: pyinfer's eager ops on CUDA arrays.

Nothing here imports CuPy until a CUDA array or ``backend="cupy"`` is seen, so
the rest of the library never pays for (or depends on) CuPy.  ``status()``
says whether the backend can run and, if not, why (no CuPy, no driver, no
device); ``python -m pyinfer info`` prints it.

Arrays: a ``cupy.ndarray`` is used as is; any other ``__cuda_array_interface__``
producer (torch CUDA tensors, Numba device arrays) is wrapped by
``cupy.asarray`` without a copy.  NumPy inputs with ``backend="cupy"`` are
uploaded, the op runs on the device and the result is copied back (into
``out`` when given).  Mixing host and device arrays in one call, or arrays on
different devices, is an error that names the argument: moving data behind the
caller's back would hide the slowest part of the program.

Kernels: elementwise ops become ``cupy.ElementwiseKernel`` s generated from the
fused-expression IR by ``pyinfer.kernels.cuda_codegen`` (the same IR the Numba
generator compiles), reductions ``cupy.ReductionKernel`` s from the same IR,
softmax / log_softmax / layer_norm / rms_norm RawKernels
(``kernels/cuda/rowwise.cu``: one block per row, warp shuffles), and
gemm/matmul cuBLAS (``cupy.matmul``) followed by one generated epilogue kernel
(alpha, bias, activation, residual).  Kernels are cached per source by CuPy.

Status: written against CuPy 13's API; it has not yet run on a GPU (see the
CuPy backend issue), so it is exercised here only through its guards.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import threading
from typing import Optional

import numpy as np

from ..errors import BackendUnavailableError, DTypeError, ShapeError, UnsupportedError

_lock = threading.Lock()
_state: dict = {}


def _probe():
    """(cupy module or None, reason or None), computed once."""
    with _lock:
        if "cupy" in _state:
            return _state["cupy"], _state["reason"]
        cp, reason = None, None
        if os.environ.get("PYINFER_DISABLE_CUPY"):
            reason = "disabled by PYINFER_DISABLE_CUPY"
        elif importlib.util.find_spec("cupy") is None:
            reason = ("CuPy is not installed (pip install 'pyinfer[cuda12]' or "
                      "'pyinfer[cuda13]' on a machine with an NVIDIA GPU)")
        else:
            try:
                import cupy
                n = cupy.cuda.runtime.getDeviceCount()
                if n < 1:
                    reason = "CuPy is installed but no CUDA device is visible"
                else:
                    cp = cupy
            except Exception as e:  # driver missing, CUDA init failure, ...
                reason = f"CuPy is installed but CUDA is unusable: {type(e).__name__}: {e}"
        _state["cupy"], _state["reason"] = cp, reason
        return cp, reason


def status() -> Optional[str]:
    """None when the backend can run, else why not (cheap after the first call)."""
    return _probe()[1]


def cupy_or_raise(op: str):
    cp, reason = _probe()
    if cp is None:
        raise BackendUnavailableError(f"{op}: backend 'cupy' is unavailable: {reason}")
    return cp


def is_device_array(x) -> bool:
    return type(x) is not np.ndarray and hasattr(x, "__cuda_array_interface__")


def _device_id(x) -> Optional[int]:
    dev = getattr(x, "device", None)
    return getattr(dev, "id", None)


# ---- argument movement and checks ---------------------------------------------------

def _gather_arrays(args, kwargs):
    """[(name, value)] of the array-like arguments of a call (positional first)."""
    named = [(f"argument {i}", a) for i, a in enumerate(args)]
    named += [(k, v) for k, v in kwargs.items() if k not in ("backend", "out")]
    return named


def check_placement(op: str, args, kwargs) -> bool:
    """True when the call has device arrays.  Raises on host/device mix-ups and
    on arrays from different devices."""
    named = _gather_arrays(args, kwargs)
    device = [(n, a) for n, a in named if is_device_array(a)]
    host = [(n, a) for n, a in named
            if isinstance(a, np.ndarray) and a.ndim > 0]
    out = kwargs.get("out")
    if device:
        if host:
            n, a = host[0]
            raise ShapeError(
                f"{op}: {n} is a NumPy (host) array while {device[0][0]} is on a CUDA device; "
                f"move it first (cupy.asarray) — pyinfer does not copy between host and "
                f"device behind your back")
        if out is not None and not is_device_array(out):
            raise ShapeError(f"{op}: argument 'out' is a host array but the inputs are on a "
                             f"CUDA device")
        ids = {_device_id(a) for _, a in device} - {None}
        if out is not None and _device_id(out) is not None:
            ids.add(_device_id(out))
        if len(ids) > 1:
            raise ShapeError(f"{op}: arrays on different devices {sorted(ids)}: "
                             + ", ".join(f"{n} on cuda:{_device_id(a)}" for n, a in device))
        return True
    if out is not None and is_device_array(out):
        raise ShapeError(f"{op}: argument 'out' is on a CUDA device but the inputs are host "
                         f"arrays")
    return False


def eager(op: str, args, kwargs):
    """Run eager op ``op`` on the device (called by pyinfer.ops for CUDA arrays
    or ``backend="cupy"``)."""
    on_device = check_placement(op, args, kwargs)
    cp = cupy_or_raise(op)
    impl = _IMPLS.get(op)
    if impl is None:
        raise UnsupportedError(f"{op}: backend 'cupy' has no kernel for this op yet")
    kwargs = dict(kwargs)
    kwargs.pop("backend", None)
    out = kwargs.pop("out", None)
    try:
        if on_device:
            dargs = [cp.asarray(a) if is_device_array(a) else a for a in args]
            dkw = {k: cp.asarray(v) if is_device_array(v) else v for k, v in kwargs.items()}
            res = impl(cp, *dargs, **dkw)
            if out is not None:
                _check_out(op, cp.asarray(out), res)
                cp.asarray(out)[...] = res
                return out
            return res
        # backend="cupy" on host arrays: upload, run, download.
        dargs = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        dkw = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        res = cp.asnumpy(impl(cp, *dargs, **dkw))
        if out is not None:
            _check_out(op, out, res)
            np.copyto(out, res)
            return out
        return res
    except cp.cuda.memory.OutOfMemoryError as e:
        raise BackendUnavailableError(f"{op}: the CUDA device is out of memory: {e}") from None


def _check_out(op, out, res):
    if out.shape != res.shape or out.dtype != res.dtype:
        raise ShapeError(f"{op}: argument 'out' expected shape {res.shape} and dtype "
                         f"{res.dtype}, received {out.shape} {out.dtype}")


# ---- kernels ----------------------------------------------------------------------------

_kernel_cache: dict = {}


def _float(cp, x, name, op, dtype=None):
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return x
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise DTypeError(f"{op}: argument '{name}' expected float32 or float64, "
                         f"received {x.dtype}")
    return x if dtype is None or x.dtype == dtype else x.astype(dtype)


def _result_dtype(*xs):
    dts = [x.dtype for x in xs if hasattr(x, "dtype")]
    return np.result_type(*dts) if dts else np.dtype(np.float64)


def _ew_kernel(cp, program, results, in_dtypes, dtype, dtypes=None):
    from ..kernels import cuda_codegen
    attrs = {"program": program, "results": results, "dtype": dtype}
    if dtypes:
        attrs["dtypes"] = dtypes
    src = cuda_codegen.elementwise(attrs, in_dtypes)
    k = _kernel_cache.get(src.name)
    if k is None:
        k = cp.ElementwiseKernel(src.in_params, src.out_params, src.operation, src.name,
                                 preamble=src.preamble)
        _kernel_cache[src.name] = k
    return k


def _unary(name):
    def impl(cp, x):
        x = _float(cp, x, "x", name)
        return _ew_kernel(cp, (("in", 0), (name, 0)), (1,), (x.dtype,), x.dtype)(x)
    return impl


def _binary(name):
    def impl(cp, a, b):
        dt = _result_dtype(a, b)
        a, b = (cp.asarray(v, dtype=dt) if isinstance(v, (int, float)) else _float(cp, v, n, name, dt)
                for v, n in ((a, "a"), (b, "b")))
        return _ew_kernel(cp, (("in", 0), ("in", 1), (name, 0, 1)), (2,), (dt, dt), dt)(a, b)
    return impl


def _where(cp, cond, a, b):
    dt = _result_dtype(a, b)
    a, b = (cp.asarray(v, dtype=dt) for v in (a, b))
    return _ew_kernel(cp, (("in", 0), ("in", 1), ("in", 2), ("where", 0, 1, 2)), (3,),
                      (np.dtype(bool), dt, dt), dt)(cond.astype(bool), a, b)


def _reduce(name):
    def impl(cp, x, axis=None, keepdims=False):
        x = _float(cp, x, "x", name)
        if name == "sum":
            return cp.sum(x, axis=axis, keepdims=keepdims, dtype=np.float64).astype(x.dtype)
        if name == "mean":
            return cp.mean(x, axis=axis, keepdims=keepdims, dtype=np.float64).astype(x.dtype)
        return getattr(cp, "amax" if name == "max" else "amin")(x, axis=axis, keepdims=keepdims)
    return impl


def _argmax(cp, x, axis=None, keepdims=False):
    return cp.argmax(x, axis=axis, keepdims=keepdims)


@functools.lru_cache(maxsize=None)
def _rowwise_module(cp):
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels",
                        "cuda", "rowwise.cu")
    with open(here) as f:
        code = f.read()
    names = [f"{k}<{t}>" for k in ("softmax_rows", "norm_rows") for t in ("float", "double")]
    return cp.RawModule(code=code, name_expressions=names, options=("-std=c++14",))


def _rows(cp, x, axis):
    """x moved so that ``axis`` and everything after it form contiguous rows."""
    axis = axis % x.ndim
    return cp.ascontiguousarray(x), int(np.prod(x.shape[:axis], dtype=np.int64)), \
        int(np.prod(x.shape[axis:], dtype=np.int64))


def _threads(cols):
    return int(min(1024, max(32, 1 << (max(cols, 1) - 1).bit_length())))


def _softmax_like(log):
    def impl(cp, x, axis=-1):
        x = _float(cp, x, "x", "softmax")
        axis = axis % x.ndim
        xm = cp.ascontiguousarray(cp.moveaxis(x, axis, -1))
        rows, cols = int(np.prod(xm.shape[:-1], dtype=np.int64)), xm.shape[-1]
        y = cp.empty_like(xm)
        t = "float" if x.dtype == np.float32 else "double"
        k = _rowwise_module(cp).get_function(f"softmax_rows<{t}>")
        k((max(rows, 1),), (_threads(cols),), (xm, y, np.int64(cols), np.int32(log)))
        return cp.moveaxis(y, -1, axis)
    return impl


def _norm(rms):
    def impl(cp, x, weight=None, bias=None, eps=1e-5, axis=-1):
        x = _float(cp, x, "x", "layer_norm")
        xc, rows, cols = _rows(cp, x, axis)
        norm_shape = x.shape[axis % x.ndim:]
        w = None if weight is None else cp.ascontiguousarray(
            cp.broadcast_to(cp.asarray(weight, dtype=x.dtype), norm_shape))
        b = None if bias is None or rms else cp.ascontiguousarray(
            cp.broadcast_to(cp.asarray(bias, dtype=x.dtype), norm_shape))
        y = cp.empty_like(xc)
        t = "float" if x.dtype == np.float32 else "double"
        k = _rowwise_module(cp).get_function(f"norm_rows<{t}>")
        null = np.uintp(0)
        k((max(rows, 1),), (_threads(cols),),
          (xc, null if w is None else w, null if b is None else b, y, np.int64(cols),
           x.dtype.type(eps), np.int32(rms)))
        return y
    return impl


def _matmul(cp, a, b):
    dt = _result_dtype(a, b)
    a, b = _float(cp, a, "a", "matmul", dt), _float(cp, b, "b", "matmul", dt)
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ShapeError(f"matmul: argument 'b' expected {a.shape[-1]} rows to match 'a' "
                         f"{a.shape}, received {b.shape}")
    return cp.matmul(a, b)


_ACT_PROGRAM = {None: (), "relu": ("relu",), "gelu": ("gelu",), "gelu_tanh": ("gelu_tanh",),
                "sigmoid": ("sigmoid",), "tanh": ("tanh",), "silu": ("silu",)}


def _gemm(cp, a, b, bias=None, residual=None, alpha=1.0, activation=None):
    """alpha * a @ b (+ bias) -> activation (+ residual): cuBLAS, then one
    generated epilogue kernel over the product."""
    y = _matmul(cp, a, b)
    dt = y.dtype
    if activation not in _ACT_PROGRAM:
        raise ShapeError(f"gemm: argument 'activation' expected one of "
                         f"{sorted(k for k in _ACT_PROGRAM if k)} or None, received {activation!r}")
    program = [("in", 0)]
    ins, dts = [y], [dt]
    if alpha != 1.0:
        program += [("const", float(alpha)), ("mul", len(program) - 1, len(program))]
    if bias is not None:
        ins.append(cp.asarray(bias, dtype=dt))
        dts.append(dt)
        program += [("in", len(ins) - 1), ("add", len(program) - 1, len(program))]
    for act in _ACT_PROGRAM[activation]:
        program.append((act, len(program) - 1))
    if residual is not None:
        ins.append(cp.asarray(residual, dtype=dt))
        dts.append(dt)
        program += [("in", len(ins) - 1), ("add", len(program) - 1, len(program))]
    if len(program) == 1:
        return y
    k = _ew_kernel(cp, tuple(program), (len(program) - 1,), tuple(dts), dt)
    return k(*ins, y)  # written in place over the product: no extra buffer


_IMPLS = {}
for _n in ("exp", "log", "sqrt", "rsqrt", "abs", "neg", "tanh", "sigmoid", "relu", "gelu",
           "gelu_tanh", "silu", "erf"):
    _IMPLS[_n] = _unary(_n)
for _n in ("add", "sub", "mul", "div", "pow", "maximum", "minimum"):
    _IMPLS[_n] = _binary(_n)
for _n in ("sum", "mean", "max", "min"):
    _IMPLS[_n] = _reduce(_n)
_IMPLS.update({"where": _where, "argmax": _argmax, "softmax": _softmax_like(0),
               "log_softmax": _softmax_like(1), "layer_norm": _norm(0),
               "rms_norm": lambda cp, x, weight=None, eps=1e-5, axis=-1:
               _norm(1)(cp, x, weight, None, eps, axis),
               "matmul": _matmul, "gemm": _gemm})


def supported_ops() -> list:
    return sorted(_IMPLS)
