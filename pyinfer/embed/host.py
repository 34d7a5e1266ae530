"""The Python side of libpyinfer_embed.so: what each entry point of
``pyinfer_embed.h`` does once the C wrapper has checked its pointers.

``install(ffi, lib)`` attaches these functions to the library's
``extern "Python"`` declarations (see ``pyinfer/embed/build.py``).  Each one
returns ``status + 1``: cffi answers 0 for a call that never reached Python,
and the C side must tell that apart from success.

Models live in a handle table keyed by never-reused integers, so a stale or
made-up handle is found missing instead of being dereferenced.  Every error
becomes a status and a message for ``pi_last_error()``; nothing reaches stderr.
"""
from __future__ import annotations

import itertools
import os
import threading

import numpy as np

# Status codes (pyinfer_embed.h).
OK, ERR_ARG, ERR_UNSUPPORTED = 0, 1, 2
ERR_SHAPE, ERR_DTYPE, ERR_MODEL, ERR_HANDLE, ERR_INTERNAL = 32, 33, 34, 35, 36
MAX_RANK = 8

# PI_DTYPE_* codes are ONNX's TensorProto.DataType values.
DTYPES = {1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8),
          5: np.dtype(np.int16), 6: np.dtype(np.int32), 7: np.dtype(np.int64),
          9: np.dtype(np.bool_), 10: np.dtype(np.float16), 11: np.dtype(np.float64)}
CODES = {dt: code for code, dt in DTYPES.items()}
NAMES = {1: "PI_DTYPE_FLOAT32", 2: "PI_DTYPE_UINT8", 3: "PI_DTYPE_INT8", 5: "PI_DTYPE_INT16",
         6: "PI_DTYPE_INT32", 7: "PI_DTYPE_INT64", 9: "PI_DTYPE_BOOL",
         10: "PI_DTYPE_FLOAT16", 11: "PI_DTYPE_FLOAT64"}


class CallError(Exception):
    """A failure with the status it maps to."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _dtype_name(code) -> str:
    return f"{NAMES[code]} ({DTYPES[code].name})" if code in NAMES else f"code {code}"


def _status_of(exc: BaseException) -> int:
    from .. import errors
    if isinstance(exc, CallError):
        return exc.status
    if isinstance(exc, (errors.ModelError, OSError)):
        return ERR_MODEL
    if isinstance(exc, (errors.UnsupportedError, errors.BackendUnavailableError, ImportError)):
        return ERR_UNSUPPORTED
    if isinstance(exc, errors.DTypeError):
        return ERR_DTYPE
    if isinstance(exc, errors.ShapeError):
        return ERR_SHAPE
    return ERR_INTERNAL


class Spec:
    """One input or output as C sees it, with what checking a tensor against it needs."""

    __slots__ = ("cname", "name", "code", "dims", "dtype", "views")

    def __init__(self, info, ffi):
        self.name = str(info.name)
        self.cname = ffi.new("char[]", self.name.encode())  # handed out by *_info
        self.dtype = np.dtype(info.dtype)
        self.code = CODES.get(self.dtype, 0)
        self.dims = tuple(d if isinstance(d, int) else -1 for d in info.shape)
        # NumPy views of caller buffers by (address, dims): hosts reuse their
        # buffers, and a view of the same address and shape is the same view.
        self.views: dict = {}


class Model:
    """One loaded model: its interpreter and the specs of its inputs and outputs."""

    __slots__ = ("interp", "inputs", "outputs", "n_in", "n_out", "plan")

    def __init__(self, interp, ffi):
        self.interp = interp
        self.inputs = [Spec(t, ffi) for t in interp.inputs]
        self.outputs = [Spec(t, ffi) for t in interp.outputs]
        self.n_in, self.n_out = len(self.inputs), len(self.outputs)
        self.plan = self._static_plan()

    def _static_plan(self):
        """The one plan of a model whose every input and output shape is fixed:
        pi_model_run has then checked all that Interpreter.run would check
        (dtype, exact dims, contiguity, alignment), so it calls Plan.execute
        directly.  None where Interpreter.run must decide (symbolic dims, a
        thread budget to apply)."""
        specs = self.inputs + self.outputs
        if self.interp.threads is not None or any(d < 0 for s in specs for d in s.dims):
            return None
        plan = self.interp.prepare([s.dims for s in self.inputs])
        produced = [(tuple(v.shape), np.dtype(v.dtype)) for v in plan.graph.outputs]
        if produced != [(s.dims, s.dtype) for s in self.outputs]:
            return None
        return plan


def _parse_options(options: str) -> dict:
    kwargs = {}
    for item in filter(None, (p.strip() for p in options.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise CallError(ERR_ARG, f"pi_model_load: argument 'options' expected comma-separated "
                                     f"key=value pairs, received {item!r}")
        if key == "backend":
            from .. import registry
            if value != "auto" and value not in registry.BACKENDS:
                raise CallError(ERR_ARG, f"pi_model_load: option 'backend' expected auto or one "
                                         f"of {', '.join(registry.BACKENDS)}, received {value!r}")
            kwargs["backend"] = value
        elif key == "threads":
            if not value.isdigit() or int(value) < 1:
                raise CallError(ERR_ARG, f"pi_model_load: option 'threads' expected an integer "
                                         f">= 1, received {value!r}")
            kwargs["threads"] = int(value)
        else:
            raise CallError(ERR_ARG, f"pi_model_load: unknown option {key!r} (expected backend "
                                     f"or threads)")
    return kwargs


class Host:
    """The handle table and the entry points; one per embedded library."""

    def __init__(self, ffi, lib):
        self.ffi, self.lib = ffi, lib
        self.models: dict[int, Model] = {}
        self._ids = itertools.count(1)  # never reused: a freed handle stays invalid
        self._lock = threading.Lock()

    # ---- helpers -------------------------------------------------------------------------

    def fail(self, status: int, message: str) -> int:
        self.lib.pi_embed_set_error(message.encode("utf-8", "replace"))
        return status + 1

    def model(self, handle, fn: str) -> Model:
        key = int(self.ffi.cast("uintptr_t", handle))
        m = self.models.get(key)
        if m is None:
            raise CallError(ERR_HANDLE, f"{fn}: argument 'model' is not a live model handle "
                                        f"(freed, or never returned by pi_model_load)")
        return m

    def tensor_array(self, t, spec: Spec, what: str, index: int):
        """A NumPy view of the caller's buffer, after checking the tensor
        against ``spec`` (dims -1: any size)."""
        rank = t.rank
        if t.dtype == spec.code and rank == len(spec.dims):
            dims = tuple(t.dims[0:rank]) if rank else ()
            view = spec.views.get((t.data, dims))
            if view is not None:
                return view
        return self._new_view(t, spec, what, index)

    def _new_view(self, t, spec: Spec, what: str, index: int):
        label = f"pi_model_run: {what}[{index}] ('{spec.name}')"
        want = spec.dims
        if t.dtype != spec.code:
            raise CallError(ERR_DTYPE, f"{label} expected dtype {_dtype_name(spec.code)}, "
                                       f"received {_dtype_name(t.dtype)}")
        rank = t.rank
        if rank != len(want):
            raise CallError(ERR_SHAPE, f"{label} expected rank {len(want)}, received {rank}")
        dims = tuple(t.dims[0:rank]) if rank else ()
        for d, w in zip(dims, want):
            if d < 0 or (w >= 0 and d != w):
                raise CallError(ERR_SHAPE, f"{label} expected dims {list(want)} (-1: any), "
                                           f"received {list(dims)}")
        count = 1
        for d in dims:
            count *= d
        if count == 0:
            return np.empty(dims, spec.dtype)
        if t.data == self.ffi.NULL:
            raise CallError(ERR_ARG, f"{label}: data is NULL")
        if int(self.ffi.cast("uintptr_t", t.data)) % spec.dtype.itemsize:
            raise CallError(ERR_ARG, f"{label}: data is not aligned to its element size "
                                     f"({spec.dtype.itemsize} bytes)")
        view = np.frombuffer(self.ffi.buffer(t.data, count * spec.dtype.itemsize),
                             spec.dtype).reshape(dims)
        if len(spec.views) >= 64:  # bounded: hosts that keep new buffers cannot grow it
            spec.views.clear()
        spec.views[(t.data, dims)] = view
        return view

    # ---- entry points (each returns status + 1) ------------------------------------------

    def load(self, path, options, out) -> int:
        import pyinfer
        opts = _parse_options(self.ffi.string(options).decode() if options != self.ffi.NULL else "")
        p = os.fsdecode(self.ffi.string(path))
        try:
            interp = pyinfer.Interpreter(pyinfer.load(p), **opts)
        except CallError:
            raise
        except Exception as exc:  # noqa: BLE001  (every failure becomes a status)
            raise CallError(_status_of(exc), f"pi_model_load: cannot load '{p}': "
                                             f"{type(exc).__name__}: {exc}") from None
        model = Model(interp, self.ffi)
        with self._lock:
            key = next(self._ids)
            self.models[key] = model
        out[0] = self.ffi.cast("pi_model *", key)
        return OK + 1

    def free(self, handle) -> int:
        key = int(self.ffi.cast("uintptr_t", handle))
        with self._lock:
            if self.models.pop(key, None) is None:
                raise CallError(ERR_HANDLE, "pi_model_free: argument 'model' is not a live model "
                                            "handle (already freed, or never returned by "
                                            "pi_model_load)")
        return OK + 1

    def count(self, handle, which, out) -> int:
        m = self.model(handle, "pi_model_num_outputs" if which else "pi_model_num_inputs")
        out[0] = m.n_out if which else m.n_in
        return OK + 1

    def info(self, handle, which, index, name, dtype, rank, dims) -> int:
        fn = "pi_model_output_info" if which else "pi_model_input_info"
        m = self.model(handle, fn)
        specs = m.outputs if which else m.inputs
        if not 0 <= index < len(specs):
            raise CallError(ERR_ARG, f"{fn}: argument 'index' expected 0 <= index < "
                                     f"{len(specs)}, received {index}")
        spec = specs[index]
        cname, code, shape = spec.cname, spec.code, spec.dims
        if len(shape) > MAX_RANK:
            raise CallError(ERR_UNSUPPORTED, f"{fn}: rank {len(shape)} exceeds PI_MAX_RANK")
        null = self.ffi.NULL
        if name != null:
            name[0] = cname
        if dtype != null:
            dtype[0] = code
        if rank != null:
            rank[0] = len(shape)
        if dims != null:
            for i, d in enumerate(shape):
                dims[i] = d
        return OK + 1

    def input_shapes(self, m: Model, n_in, inputs, fn: str) -> list:
        """The input dims, each checked against its spec (data is not read)."""
        if n_in != m.n_in:
            raise CallError(ERR_ARG, f"{fn}: argument 'n_inputs' expected {m.n_in}, "
                                     f"received {n_in}")
        shapes = []
        for i, spec in enumerate(m.inputs):
            t = inputs[i]
            label = f"{fn}: inputs[{i}] ('{spec.name}')"
            if t.dtype != spec.code:
                raise CallError(ERR_DTYPE, f"{label} expected dtype {_dtype_name(spec.code)}, "
                                           f"received {_dtype_name(t.dtype)}")
            if t.rank != len(spec.dims):
                raise CallError(ERR_SHAPE, f"{label} expected rank {len(spec.dims)}, "
                                           f"received {t.rank}")
            dims = tuple(t.dims[0:t.rank]) if t.rank else ()
            if any(d < 0 or (w >= 0 and d != w) for d, w in zip(dims, spec.dims)):
                raise CallError(ERR_SHAPE, f"{label} expected dims {list(spec.dims)} (-1: any), "
                                           f"received {list(dims)}")
            shapes.append(dims)
        return shapes

    def output_dims(self, handle, n_in, inputs, index, rank, dims) -> int:
        fn = "pi_model_output_dims"
        m = self.model(handle, fn)
        shapes = self.input_shapes(m, n_in, inputs, fn)
        if not 0 <= index < m.n_out:
            raise CallError(ERR_ARG, f"{fn}: argument 'index' expected 0 <= index < "
                                     f"{m.n_out}, received {index}")
        try:
            plan = m.interp.prepare(shapes)
        except Exception as exc:  # noqa: BLE001
            raise CallError(_status_of(exc), f"{fn}: {type(exc).__name__}: {exc}") from None
        shape = tuple(plan.graph.outputs[index].shape)
        if len(shape) > MAX_RANK:
            raise CallError(ERR_UNSUPPORTED, f"{fn}: rank {len(shape)} exceeds PI_MAX_RANK")
        rank[0] = len(shape)
        for i, d in enumerate(shape):
            dims[i] = int(d)
        return OK + 1

    def run(self, handle, n_in, inputs, n_out, outputs) -> int:
        m = self.model(handle, "pi_model_run")
        if n_in != m.n_in:
            raise CallError(ERR_ARG, f"pi_model_run: argument 'n_inputs' expected {m.n_in}, "
                                     f"received {n_in}")
        if n_out != m.n_out:
            raise CallError(ERR_ARG, f"pi_model_run: argument 'n_outputs' expected {m.n_out}, "
                                     f"received {n_out}")
        xs = [self.tensor_array(inputs[i], m.inputs[i], "inputs", i) for i in range(n_in)]
        ys = [self.tensor_array(outputs[i], m.outputs[i], "outputs", i) for i in range(n_out)]
        try:
            if m.plan is not None:
                m.plan.execute(xs, ys)
            else:
                m.interp.run(xs, outputs=ys)
        except Exception as exc:  # noqa: BLE001
            raise CallError(_status_of(exc), f"pi_model_run: {type(exc).__name__}: {exc}") from None
        return OK + 1


def install(ffi, lib) -> Host:
    """Attach the entry points to the library's ``extern "Python"`` functions."""
    host = Host(ffi, lib)

    def guarded(fn):
        def call(*args):
            try:
                return fn(*args)
            except CallError as exc:
                return host.fail(exc.status, str(exc))
        return call

    def on_error(exc_type, exc, tb):  # anything unexpected: a status, never a traceback
        return host.fail(ERR_INTERNAL, f"pyinfer internal error: {exc_type.__name__}: {exc}")

    for name, fn in (("pi_py_load", host.load), ("pi_py_free", host.free),
                     ("pi_py_count", host.count), ("pi_py_info", host.info),
                     ("pi_py_run", host.run), ("pi_py_output_dims", host.output_dims)):
        ffi.def_extern(name=name, onerror=on_error)(guarded(fn))
    return host
