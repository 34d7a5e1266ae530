"""The CuPy backend.

On a machine without a GPU (CI) this checks what can be checked on the host:
the guards (clear errors without CuPy or a device, host/device mix-ups,
arrays on different devices) and the generated CUDA expressions, which are
compiled with the host C compiler (their device helpers are written in the
common subset of C99 and CUDA) and compared with the NumPy reference.  The
tests marked ``gpu`` run the eager ops on CuPy arrays and are skipped, with
the reason, where no CUDA device is usable.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

import pyinfer
from pyinfer import ops
from pyinfer.backends import cupy_backend
from pyinfer.graph.reference import run_program
from pyinfer.kernels import cuda_codegen
from pyinfer.testing import BASE_TOL


def tolerance(dt):
    return BASE_TOL[np.dtype(dt)]

GPU_REASON = cupy_backend.status()
gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"no usable CUDA device: {GPU_REASON}")


# ---- guards (no GPU needed) ----------------------------------------------------------------

class FakeDeviceArray:
    """Anything exposing __cuda_array_interface__ counts as device memory."""

    def __init__(self, shape, device_id=0):
        self.shape = shape
        self.dtype = np.dtype(np.float32)
        self.device = type("Device", (), {"id": device_id})()
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4",
                                         "data": (0, False), "version": 3}


def test_host_device_mixup_names_the_argument():
    with pytest.raises(pyinfer.ShapeError, match=r"argument 1 is a NumPy \(host\) array"):
        ops.add(FakeDeviceArray((3,)), np.ones(3, np.float32))


def test_arrays_on_different_devices_are_refused():
    with pytest.raises(pyinfer.ShapeError, match="different devices"):
        ops.add(FakeDeviceArray((3,), 0), FakeDeviceArray((3,), 1))


def test_host_out_for_device_inputs_is_refused():
    with pytest.raises(pyinfer.ShapeError, match="'out' is a host array"):
        ops.exp(FakeDeviceArray((3,)), out=np.empty(3, np.float32))


@pytest.mark.skipif(GPU_REASON is None, reason="a CUDA device is present")
def test_without_a_device_backend_cupy_says_why():
    with pytest.raises(pyinfer.BackendUnavailableError, match="backend 'cupy' is unavailable: "):
        ops.add(np.ones(3, np.float32), np.ones(3, np.float32), backend="cupy")
    with pytest.raises(pyinfer.BackendUnavailableError, match="unavailable"):
        ops.exp(FakeDeviceArray((3,)))
    g = pyinfer.Graph()
    x = g.input("x", (2,), np.float32)
    g.output(g.add(pyinfer.Op.EXP, [x]))
    with pytest.raises(pyinfer.BackendUnavailableError, match="unavailable"):
        pyinfer.Interpreter(g, backend="cupy")
    assert pyinfer.registry.unavailable_reason("cupy") == GPU_REASON


def test_host_work_never_imports_cupy():
    import sys
    code = ("import sys, numpy as np, pyinfer\n"
            "pyinfer.ops.add(np.ones(3, np.float32), np.ones(3, np.float32))\n"
            "g = pyinfer.Graph(); x = g.input('x', (2,), np.float32)\n"
            "g.output(g.add(pyinfer.Op.EXP, [x])); pyinfer.Interpreter(g).run([np.ones(2, np.float32)])\n"
            "assert 'cupy' not in sys.modules, 'cupy was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ---- generated CUDA expressions, checked on the host -------------------------------------

CC = shutil.which("gcc") or shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler to check the generated source")


def _build(tmp_path, source):
    c = tmp_path / "k.c"
    so = tmp_path / "k.so"
    c.write_text(source)
    subprocess.run([CC, "-O1", "-std=c99", "-shared", "-fPIC", "-o", str(so), str(c), "-lm"],
                   check=True, capture_output=True)
    return ctypes.CDLL(str(so))


def _host_run(tmp_path, kernel, inputs, out_dtypes):
    lib = _build(tmp_path, cuda_codegen.host_check_source(kernel))
    n = inputs[0].size
    outs = [np.full(n, np.nan, dt) if dt.kind == "f" else np.zeros(n, dt) for dt in out_dtypes]
    args = [ctypes.c_longlong(n)] + [a.ctypes.data_as(ctypes.c_void_p) for a in inputs] + \
        [o.ctypes.data_as(ctypes.c_void_p) for o in outs]
    lib.run(*args)
    return outs


UNARY = ["exp", "log", "sqrt", "rsqrt", "abs", "neg", "tanh", "sigmoid", "relu", "gelu",
         "gelu_tanh", "silu", "erf", "reciprocal"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]


def _inputs(op, dtype, n, rng, k=1):
    if op in ("log", "sqrt", "rsqrt", "pow"):
        return [rng.uniform(0.1, 4.0, n).astype(dtype) for _ in range(k)]
    xs = [rng.standard_normal(n).astype(dtype) * 3 for _ in range(k)]
    if op in ("maximum", "minimum", "relu"):
        xs[0][::7] = np.nan  # NaN propagates as in NumPy
    return xs


@needs_cc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generated_unary_and_binary_expressions_match_numpy(tmp_path, dtype):
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    for i, op in enumerate(UNARY + BINARY):
        k = 1 if op in UNARY else 2
        program = tuple(("in", j) for j in range(k)) + ((op,) + tuple(range(k)),)
        attrs = {"program": program, "results": (k,), "dtype": dt}
        xs = _inputs(op, dt, 257, rng, k)
        kern = cuda_codegen.elementwise(attrs, [dt] * k)
        d = tmp_path / f"{op}"
        d.mkdir()
        (got,) = _host_run(d, kern, xs, [dt])
        (want,) = run_program(program, (k,), xs, dt)
        rtol, atol = tolerance(dt)
        # libm and NumPy may differ by a few ulp in transcendental functions
        np.testing.assert_allclose(got, want, rtol=4 * rtol, atol=atol, err_msg=op)


@needs_cc
def test_generated_fused_program_with_compare_where_cast_and_constants(tmp_path):
    # y = where(x > 0.5, tanh(x * 2 + b), -inf) ; m = x > 0.5 (a bool result)
    program = (("in", 0), ("in", 1), ("const", 2.0), ("mul", 0, 2), ("add", 3, 1), ("tanh", 4),
               ("const", 0.5), ("greater", 0, 6), ("const", float("-inf")), ("where", 7, 5, 8),
               ("cast", 9, "float64"))
    attrs = {"program": program, "results": (10, 7), "dtype": np.dtype(np.float32),
             "dtypes": (np.dtype(np.float32), np.dtype(np.bool_))}
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(100).astype(np.float32) for _ in range(2)]
    kern = cuda_codegen.elementwise(attrs, [np.float32, np.float32])
    got_y, got_m = _host_run(tmp_path, kern, xs, [np.dtype(np.float32), np.dtype(np.bool_)])
    want_y, want_m = run_program(program, (10, 7), xs, np.float32)
    np.testing.assert_allclose(got_y, want_y.astype(np.float32), rtol=4e-6, atol=1e-6)
    np.testing.assert_array_equal(got_m, want_m)


def test_kernel_names_key_the_program():
    a = {"program": (("in", 0), ("exp", 0)), "results": (1,), "dtype": np.dtype(np.float32)}
    b = {"program": (("in", 0), ("tanh", 0)), "results": (1,), "dtype": np.dtype(np.float32)}
    ka, kb = (cuda_codegen.elementwise(x, [np.float32]) for x in (a, b))
    assert ka.name != kb.name
    assert ka == cuda_codegen.elementwise(a, [np.float32])


@needs_cc
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_generated_reduction_map_expression(tmp_path, reduce):
    program = (("in", 0), ("in", 1), ("mul", 0, 1), ("exp", 2))
    attrs = {"program": program, "results": (3,), "dtype": np.dtype(np.float32),
             "reduce": reduce}
    red = cuda_codegen.reduction(attrs, [np.float32, np.float32])
    # Evaluate map_expr and the reduce on the host, as ReductionKernel would.
    src = (red.preamble + "\ndouble run(long long n, const float *in0_p, const float *in1_p) {\n"
           f"  {red.reduce_type} a = ({red.reduce_type})({red.identity});\n"
           "  for (long long i = 0; i < n; i++) {\n"
           "    float in0 = in0_p[i], in1 = in1_p[i];\n"
           f"    {red.reduce_type} b = {red.map_expr};\n"
           f"    a = {red.reduce_expr};\n  }}\n  return (double)a;\n}}\n")
    lib = _build(tmp_path, src)
    lib.run.restype = ctypes.c_double
    rng = np.random.default_rng(2)
    x, y = (rng.standard_normal(301).astype(np.float32) for _ in range(2))
    got = lib.run(ctypes.c_longlong(301), x.ctypes.data_as(ctypes.c_void_p),
                  y.ctypes.data_as(ctypes.c_void_p))
    vals = np.exp(x.astype(np.float64) * y)
    want = {"sum": vals.sum(), "mean": vals.sum(), "max": vals.max(), "min": vals.min()}[reduce]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert ("_in_ind.size()" in red.post_map_expr) == (reduce == "mean")


# ---- on a GPU ----------------------------------------------------------------------------

@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("op", UNARY[:-1] + BINARY)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_elementwise_matches_numpy(op, dtype):
    import cupy as cp
    rng = np.random.default_rng(3)
    k = 1 if op in UNARY else 2
    xs = [x.reshape(33, 65) for x in _inputs(op, np.dtype(dtype), 33 * 65, rng, k)]
    if k == 2:
        xs[1] = xs[1][:1]  # broadcast a row
    got = getattr(ops, op)(*[cp.asarray(x) for x in xs])
    assert isinstance(got, cp.ndarray)
    want = getattr(ops, op)(*xs, backend="numpy")
    rtol, atol = tolerance(np.dtype(dtype))
    np.testing.assert_allclose(cp.asnumpy(got), want, rtol=8 * rtol, atol=atol)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_gemm_epilogue_softmax_layer_norm(dtype):
    import cupy as cp
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((37, 70)).astype(dtype), rng.standard_normal((70, 19)).astype(dtype)
    bias, res = rng.standard_normal(19).astype(dtype), rng.standard_normal((37, 19)).astype(dtype)
    got = ops.gemm(cp.asarray(a), cp.asarray(b), bias=cp.asarray(bias),
                   residual=cp.asarray(res), activation="gelu")
    want = ops.gemm(a, b, bias=bias, residual=res, activation="gelu", backend="numpy")
    np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)
    x = rng.standard_normal((5, 300)).astype(dtype)
    for name in ("softmax", "log_softmax", "layer_norm", "rms_norm"):
        got = getattr(ops, name)(cp.asarray(x))
        want = getattr(ops, name)(x, backend="numpy")
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-5, atol=1e-5, err_msg=name)


@gpu
@pytest.mark.gpu
def test_gpu_numpy_inputs_with_backend_cupy_round_trip():
    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    out = np.full_like(x, np.nan)
    ops.tanh(x, backend="cupy", out=out)
    np.testing.assert_allclose(out, np.tanh(x), rtol=1e-5, atol=1e-6)


@gpu
@pytest.mark.gpu
def test_gpu_torch_tensors_are_taken_without_a_copy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    t = torch.arange(12, dtype=torch.float32, device="cuda")
    y = ops.relu(t)
    import cupy as cp
    assert isinstance(y, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(y), np.arange(12, dtype=np.float32))
