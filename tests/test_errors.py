"""Bad input gets a pyinfer error naming the argument, expected and received,
before anything reaches a kernel; edge sizes get NumPy's answer."""
import numpy as np
import pytest

import pyinfer
from pyinfer.testing import assert_close
from pyinfer import ops
from pyinfer.errors import (BackendUnavailableError, DTypeError, PyinferError, ShapeError,
                            UnsupportedError)

X = np.ones((3, 4), np.float32)
BACKENDS = [None, "numpy", "c", "numba"]


def test_error_hierarchy():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, PyinferError)
    assert issubclass(DTypeError, TypeError) and issubclass(DTypeError, PyinferError)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call, error, words", [
    (lambda b: ops.exp(np.arange(3), backend=b), DTypeError, ["'x'", "int64"]),
    (lambda b: ops.exp(np.ones(3, np.float16), backend=b), DTypeError, ["'x'", "float16"]),
    (lambda b: ops.exp(np.ones(3, np.complex64), backend=b), DTypeError, ["'x'"]),
    (lambda b: ops.add(X, np.ones(3, np.int32), backend=b), DTypeError, ["'b'", "int32"]),
    (lambda b: ops.add(np.ones(3), np.ones(4), backend=b), ShapeError, ["(3,)", "(4,)"]),
    (lambda b: ops.exp(X, out=np.empty((4, 3), np.float32), backend=b), ShapeError,
     ["'out'", "(3, 4)", "(4, 3)"]),
    (lambda b: ops.exp(X, out=np.empty((3, 4), np.float64), backend=b), DTypeError,
     ["'out'", "float32", "float64"]),
    (lambda b: ops.exp(X, out=[0.0], backend=b), DTypeError, ["'out'", "list"]),
    (lambda b: ops.exp(X, out=np.broadcast_to(np.float32(0), (3, 4)), backend=b), ShapeError,
     ["'out'", "read-only"]),
    (lambda b: ops.softmax(X, axis=2, backend=b), ShapeError, ["'axis'", "2"]),
    (lambda b: ops.softmax(np.float32(1), backend=b), ShapeError, ["'x'", "0-d"]),
    (lambda b: ops.sum(X, axis=(0, 0), backend=b), ShapeError, ["'axis'"]),
    (lambda b: ops.sum(X, axis=1.5, backend=b), ShapeError, ["'axis'"]),
    (lambda b: ops.layer_norm(X, eps=float("nan"), backend=b), ShapeError, ["'eps'", "nan"]),
    (lambda b: ops.layer_norm(X, eps=float("inf"), backend=b), ShapeError, ["'eps'"]),
    (lambda b: ops.rms_norm(X, eps=-1.0, backend=b), ShapeError, ["'eps'"]),
    (lambda b: ops.layer_norm(X, np.ones(3), backend=b), ShapeError, ["'weight'", "(4,)", "(3,)"]),
    (lambda b: ops.layer_norm(X, None, np.ones(5), backend=b), ShapeError, ["'bias'"]),
    (lambda b: ops.gemm(X, X, backend=b), ShapeError, ["'b'", "(3, 4)"]),
    (lambda b: ops.gemm(X, X.T, activation="swish", backend=b), ShapeError,
     ["'activation'", "swish"]),
    (lambda b: ops.gemm(X, X.T, bias=np.ones(4), backend=b), ShapeError, ["'bias'", "(4,)"]),
    (lambda b: ops.gemm(X, X.T, residual=np.ones((2, 3)), backend=b), ShapeError,
     ["'residual'"]),
    (lambda b: ops.gemm(X[0], X.T, backend=b), ShapeError, ["'a'", "2-d"]),
    (lambda b: ops.gemm(X, X.T, alpha="2", backend=b), ShapeError, ["'alpha'"]),
    (lambda b: ops.matmul(X, X, backend=b), ShapeError, ["'b'", "(3, 4)"]),
    (lambda b: ops.matmul(np.float32(2), X, backend=b), ShapeError, ["'a'", "0-d"]),
    (lambda b: ops.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 5)), backend=b), ShapeError,
     ["broadcast"]),
    (lambda b: ops.max(np.ones((0, 3)), axis=0, backend=b), ShapeError, ["'x'", "zero-size"]),
    (lambda b: ops.argmax(np.ones((0,)), backend=b), ShapeError, ["'x'"]),
    (lambda b: ops.where(np.array(["a"]), X, X, backend=b), DTypeError, ["'cond'"]),
])
def test_bad_input(call, error, words, backend):
    with pytest.raises(error) as info:
        call(backend)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_unknown_backend():
    with pytest.raises(BackendUnavailableError, match="'backend'.*'cuda'"):
        ops.exp(X, backend="cuda")


def test_cupy_backend_says_why():
    with pytest.raises(BackendUnavailableError, match="cupy"):
        ops.exp(X, backend="cupy")


def test_set_num_threads_rejects_nonsense():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ShapeError, match="'n'"):
            pyinfer.set_num_threads(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_size_zero_and_0d(backend):
    e = np.ones((0, 5), np.float32)
    assert ops.exp(e, backend=backend).shape == (0, 5)
    assert ops.add(e, np.ones(5, np.float32), backend=backend).shape == (0, 5)
    np.testing.assert_array_equal(ops.sum(e, axis=0, backend=backend), np.zeros(5, np.float32))
    assert np.isnan(ops.mean(e, axis=0, backend=backend)).all()
    assert ops.sum(e, axis=1, backend=backend).shape == (0,)
    assert ops.softmax(e, backend=backend).shape == (0, 5)
    assert ops.layer_norm(e, backend=backend).shape == (0, 5)
    np.testing.assert_array_equal(ops.matmul(np.ones((3, 0)), np.ones((0, 4)), backend=backend),
                                  np.zeros((3, 4)))
    assert ops.gemm(np.ones((0, 3)), np.ones((3, 4)), backend=backend).shape == (0, 4)
    g = ops.gemm(np.ones((2, 0)), np.ones((0, 3)), bias=np.arange(3.0), activation="relu",
                 backend=backend)
    np.testing.assert_array_equal(g, np.broadcast_to(np.arange(3.0), (2, 3)))
    s = np.float32(2.0)
    assert ops.exp(s, backend=backend).shape == ()
    np.testing.assert_allclose(ops.exp(s, backend=backend), np.exp(s), rtol=1e-6)
    assert ops.sum(np.float64(3.0), backend=backend) == 3.0
    assert ops.sum(X, axis=(), backend=backend).shape == (3, 4)
    np.testing.assert_array_equal(ops.matmul(np.ones(4), np.ones(4), backend=backend), 4.0)


def test_dtype_promotion_follows_numpy():
    f32, f64 = np.ones(3, np.float32), np.ones(3, np.float64)
    assert ops.add(f32, 2.0).dtype == np.float32  # Python scalars are weak
    assert ops.add(f32, f64).dtype == np.float64
    assert ops.gemm(np.ones((2, 2), np.float32), np.ones((2, 2))).dtype == np.float64
    big_endian = np.ones(3, ">f4")
    assert ops.exp(big_endian).dtype == np.float32


def test_unaligned_and_overlapping_inputs_are_safe():
    buf = np.zeros(4 * 65 + 1, np.uint8)[1:]
    x = buf.view(np.float32)  # misaligned by one byte
    assert not x.flags.aligned
    x[:] = np.arange(65, dtype=np.float32)
    for backend in ("c", "numba"):
        assert_close(ops.exp(x, backend=backend), np.exp(x.astype(np.float64)), np.float32)
        y = np.arange(10, dtype=np.float32)
        ops.add(y[:-1], y[1:], out=y[1:], backend=backend)  # partial overlap
        np.testing.assert_array_equal(y, np.r_[0, np.arange(9) + np.arange(1, 10)])
        a = np.arange(16, dtype=np.float32).reshape(4, 4)
        expected = a @ a
        ops.matmul(a, a, out=a, backend=backend)  # out aliases both inputs
        np.testing.assert_allclose(a, expected)
