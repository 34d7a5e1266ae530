"""The peers pyinfer is measured against, each turned into a callable for one
``OpCase`` (pyinfer.testing): NumPy (the formulas a NumPy user would write),
ONNX Runtime (a one-node or small graph built with ``onnx.helper``), PyTorch
and numexpr.

Every builder takes ``(case, inputs, threads)`` and returns a no-argument
callable that computes the case on the prepared ``inputs`` and returns its
result.  All preparation (graph building, session creation, tensor wrapping)
happens in the builder, never in the callable, so timing the callable times
only the work.  A peer that is not installed raises ``PeerUnavailable`` with a
message that says what to install; a peer that has no sensible formulation of
a case raises ``PeerUnsupported``.  Both are ``PeerError``, caught by callers
that want to print "n/a" instead of failing.

Fairness rules (bench/README.md): every contender allocates its result, as a
user's call would; ONNX graphs take every operand (weights included) as a
graph *input*, so ONNX Runtime cannot pre-pack a constant B that pyinfer's
eager call cannot pre-pack either; ONNX Runtime runs sequentially with
``intra_op_num_threads`` equal to pyinfer's thread count.
"""
from __future__ import annotations

import importlib
from typing import Callable, Optional, Sequence

import numpy as np

from .testing import BINARY, REDUCE, UNARY, OpCase

PEERS = ("numpy", "onnxruntime", "torch", "numexpr")
# pip names, for the messages.
_PIP = {"onnxruntime": "onnxruntime onnx", "torch": "torch", "numexpr": "numexpr"}
_MODULES = {"onnxruntime": ("onnxruntime", "onnx"), "torch": ("torch",), "numexpr": ("numexpr",)}

GELU_TANH_C = 0.7978845608  # sqrt(2/pi), as written in the NumPy comparison formula


class PeerError(Exception):
    """A peer cannot run this case; ``str()`` says why, in one line."""


class PeerUnavailable(PeerError):
    """The peer's package is not installed (or fails to import)."""


class PeerUnsupported(PeerError):
    """The peer has no formulation of this case."""


def why_unavailable(peer: str) -> Optional[str]:
    """None when ``peer`` can be used, else a one-line reason with the fix."""
    if peer not in PEERS:
        return f"unknown peer {peer!r}; known: {', '.join(PEERS)}"
    for mod in _MODULES.get(peer, ()):
        try:
            importlib.import_module(mod)
        except Exception as exc:  # ImportError, or a broken install raising anything
            return (f"{peer} is not available ({type(exc).__name__}: {exc}); "
                    f"install it with 'pip install {_PIP[peer]}' (or pip install 'pyinfer[bench]')")
    return None


def _require(peer: str):
    reason = why_unavailable(peer)
    if reason is not None:
        raise PeerUnavailable(reason)


def version(peer: str) -> Optional[str]:
    if why_unavailable(peer) is not None:
        return None
    return importlib.import_module(_MODULES.get(peer, (peer,))[0]).__version__


def make(peer: str, case: OpCase, inputs: Sequence[np.ndarray], threads: int) -> Callable:
    """A no-argument callable running ``case`` on ``inputs`` with ``peer``."""
    builders = {"numpy": numpy_fn, "onnxruntime": onnxruntime_fn, "torch": torch_fn,
                "numexpr": numexpr_fn}
    if peer not in builders:
        raise PeerUnavailable(why_unavailable(peer))
    return builders[peer](case, inputs, threads)


def _attr(case: OpCase, name: str, default):
    return case.attrs.get(name, default)


def _last_axis(case: OpCase, ndim: int, default=-1) -> int:
    """The (single) axis of a softmax/norm/reduce case, as a non-negative int."""
    axis = _attr(case, "axis", default)
    if isinstance(axis, (tuple, list)):
        if len(axis) != 1:
            raise PeerUnsupported(f"{case}: more than one axis")
        axis = axis[0]
    return int(axis) % ndim


# ---- NumPy: what a NumPy user writes ---------------------------------------

def _np_gelu_tanh(y):
    return 0.5 * y * (1 + np.tanh(GELU_TANH_C * (y + 0.044715 * y ** 3)))


def _np_sigmoid(y):
    return 1 / (1 + np.exp(-y))


# NumPy has no erf ufunc: both GELUs use the tanh form a NumPy user would write.
_NP_ACT = {
    None: None,
    "relu": lambda y: np.maximum(y, 0),
    "gelu": _np_gelu_tanh,
    "gelu_tanh": _np_gelu_tanh,
    "silu": lambda y: y * _np_sigmoid(y),
    "sigmoid": _np_sigmoid,
    "tanh": np.tanh,
}
_NP_UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "abs": np.abs, "neg": np.negative, "tanh": np.tanh, "sigmoid": _np_sigmoid,
    "relu": _NP_ACT["relu"], "gelu": _np_gelu_tanh, "gelu_tanh": _np_gelu_tanh,
    "silu": _NP_ACT["silu"],
}
_NP_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "pow": np.power, "maximum": np.maximum, "minimum": np.minimum}


def numpy_fn(case: OpCase, inputs, threads: int) -> Callable:
    """NumPy formulas (threads: OpenBLAS is limited by the caller, via threadpoolctl)."""
    op, x = case.op, inputs
    if op == "gemm":
        a, b = x[0], x[1]
        bias = x[2] if len(x) > 2 else None
        if len(x) > 3 or _attr(case, "alpha", 1.0) != 1.0:
            raise PeerUnsupported(f"{case}: residual/alpha not in the NumPy formula")
        act = _NP_ACT[_attr(case, "activation", None)]
        if bias is None and act is None:
            return lambda: a @ b
        if act is None:
            return lambda: a @ b + bias
        if bias is None:
            return lambda: act(a @ b)
        return lambda: act(a @ b + bias)
    if op == "matmul":
        a, b = x
        return lambda: a @ b
    if op == "softmax":
        (v,) = x
        ax = _last_axis(case, v.ndim)

        def softmax():
            e = np.exp(v - v.max(ax, keepdims=True))
            return e / e.sum(ax, keepdims=True)
        return softmax
    if op in ("layer_norm", "rms_norm"):
        v = x[0]
        ax = _last_axis(case, v.ndim)
        axes = tuple(range(ax, v.ndim))
        eps = _attr(case, "eps", 1e-5)
        w = x[1] if len(x) > 1 else None
        if op == "layer_norm":
            b = x[2] if len(x) > 2 else None

            def layer_norm():
                m = v.mean(axes, keepdims=True)
                var = v.var(axes, keepdims=True)
                y = (v - m) / np.sqrt(var + eps)
                if w is not None:
                    y = y * w
                return y if b is None else y + b
            return layer_norm

        def rms_norm():
            y = v / np.sqrt((v * v).mean(axes, keepdims=True) + eps)
            return y if w is None else y * w
        return rms_norm
    if op in _NP_UNARY:
        f, (v,) = _NP_UNARY[op], x
        return lambda: f(v)
    if op in _NP_BINARY:
        f, (a, b) = _NP_BINARY[op], x
        return lambda: f(a, b)
    if op in REDUCE:
        (v,) = x
        f = getattr(np, op)
        axis, keepdims = _attr(case, "axis", None), _attr(case, "keepdims", False)
        return lambda: f(v, axis=axis, keepdims=keepdims)
    raise PeerUnsupported(f"numpy: no formula for op '{op}'")


# ---- ONNX Runtime ----------------------------------------------------------

_ORT_OPSET = 20          # Gelu (erf form) is ONNX from opset 20
_ORT_RMS_OPSET = 23      # RMSNormalization is ONNX from opset 23
_ONNX_UNARY = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "neg": "Neg",
               "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "erf": "Erf"}
_ONNX_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
                "maximum": "Max", "minimum": "Min"}
_ONNX_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin"}
_ONNX_DTYPE = {"float32": 1, "float64": 11}   # TensorProto.FLOAT, DOUBLE
_gelu_choice: Optional[tuple] = None


def ort_session(model, threads: int):
    """An ONNX Runtime session as every comparison in pyinfer makes one: ``model``
    a ModelProto, serialized bytes or a path; sequential, ``threads`` intra-op
    threads, and workers that sleep after a run (``allow_spinning=0``).

    Why not spin: ORT's workers busy-wait after each run by default and keep the
    cores the next contender needs, so in a rotating comparison whoever runs
    after ORT looks up to 2x slower.  Measured on the 2-core development machine
    (MiniLM, batch 1, blocks of 15 runs, same process): 45 ms without spinning,
    77 ms with it under background load; the two are equal on an idle machine.
    """
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                providers=["CPUExecutionProvider"])


def _model(nodes, names, inputs, output: str, extra_domains=(), opset=_ORT_OPSET):
    from onnx import helper
    elem = _ONNX_DTYPE[str(inputs[0].dtype)]
    graph = helper.make_graph(
        nodes, "pyinfer_bench",
        [helper.make_tensor_value_info(n, elem, list(v.shape)) for n, v in zip(names, inputs)],
        [helper.make_tensor_value_info(output, elem, None)],
        initializer=[])
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in extra_domains]
    # IR 9 goes with opset 20 (IR 10 with 21-22, IR 11 with 23+): the oldest that works.
    ir = 9 if opset <= 20 else (10 if opset <= 22 else 11)
    return helper.make_model(graph, opset_imports=imports, ir_version=ir,
                             producer_name="pyinfer.peers")


def _gelu_node(inp: str, out: str):
    """(node, extra domains): ONNX Gelu (opset 20) if this onnxruntime runs it,
    else com.microsoft Gelu; both are the erf form."""
    global _gelu_choice
    from onnx import helper
    if _gelu_choice is None:
        probe = np.zeros((4,), np.float32)
        for domain in ("", "com.microsoft"):
            node = helper.make_node("Gelu", ["x"], ["y"], domain=domain)
            try:
                ort_session(_model([node], ["x"], [probe], "y", (domain,) if domain else ()), 1)
            except Exception:
                continue
            _gelu_choice = (domain,)
            break
        else:
            raise PeerUnsupported("onnxruntime: neither ONNX Gelu (opset 20) nor com.microsoft Gelu loads")
    (domain,) = _gelu_choice
    return helper.make_node("Gelu", [inp], [out], domain=domain), ((domain,) if domain else ())


def onnx_graph(case: OpCase, inputs) -> tuple:
    """(ModelProto, input names) for ``case``, every operand a graph input."""
    _require("onnxruntime")
    from onnx import helper
    op, x = case.op, inputs
    if op in ("gemm", "matmul"):
        if op == "gemm" and (len(x) > 3 or _attr(case, "alpha", 1.0) != 1.0):
            raise PeerUnsupported(f"{case}: residual/alpha not built for onnxruntime")
        names = ["a", "b"] + (["bias"] if len(x) > 2 else [])
        nodes, last, domains = [helper.make_node("MatMul", ["a", "b"], ["mm"])], "mm", ()
        if len(x) > 2:
            nodes.append(helper.make_node("Add", ["mm", "bias"], ["biased"]))
            last = "biased"
        act = _attr(case, "activation", None) if op == "gemm" else None
        if act == "gelu":
            node, domains = _gelu_node(last, "y")
            nodes.append(node)
        elif act == "gelu_tanh":
            nodes.append(helper.make_node("Gelu", [last], ["y"], approximate="tanh"))
        elif act is not None:
            onnx_op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}.get(act)
            if onnx_op is None:
                raise PeerUnsupported(f"{case}: activation {act} not built for onnxruntime")
            nodes.append(helper.make_node(onnx_op, [last], ["y"]))
        else:
            nodes.append(helper.make_node("Identity", [last], ["y"]))
        return _model(nodes, names, x, "y", domains), names
    if op in ("softmax", "log_softmax"):
        ax = _last_axis(case, x[0].ndim)
        node = helper.make_node("Softmax" if op == "softmax" else "LogSoftmax", ["x"], ["y"], axis=ax)
        return _model([node], ["x"], x, "y"), ["x"]
    if op == "layer_norm":
        if len(x) < 2:
            raise PeerUnsupported(f"{case}: LayerNormalization needs a weight")
        names = ["x", "w", "b"][:len(x)]
        node = helper.make_node("LayerNormalization", names, ["y"],
                                axis=_last_axis(case, x[0].ndim), epsilon=_attr(case, "eps", 1e-5))
        return _model([node], names, x, "y", opset=17), names
    if op == "rms_norm":
        if len(x) < 2:
            raise PeerUnsupported(f"{case}: RMSNormalization needs a weight")
        node = helper.make_node("RMSNormalization", ["x", "w"], ["y"],
                                axis=_last_axis(case, x[0].ndim), epsilon=_attr(case, "eps", 1e-5))
        return _model([node], ["x", "w"], x, "y", opset=_ORT_RMS_OPSET), ["x", "w"]
    if op == "gelu":
        node, domains = _gelu_node("x", "y")
        return _model([node], ["x"], x, "y", domains), ["x"]
    if op == "gelu_tanh":
        return _model([helper.make_node("Gelu", ["x"], ["y"], approximate="tanh")], ["x"], x, "y"), ["x"]
    if op in _ONNX_UNARY:
        return _model([helper.make_node(_ONNX_UNARY[op], ["x"], ["y"])], ["x"], x, "y"), ["x"]
    if op in _ONNX_BINARY:
        node = helper.make_node(_ONNX_BINARY[op], ["a", "b"], ["y"])
        return _model([node], ["a", "b"], x, "y"), ["a", "b"]
    if op in _ONNX_REDUCE:
        from onnx import numpy_helper
        axis = _attr(case, "axis", None)
        axes = list(range(x[0].ndim)) if axis is None else (
            list(axis) if isinstance(axis, (tuple, list)) else [axis])
        axes_init = numpy_helper.from_array(np.asarray(axes, np.int64), "axes")
        node = helper.make_node(_ONNX_REDUCE[op], ["x", "axes"], ["y"],
                                keepdims=int(bool(_attr(case, "keepdims", False))))
        model = _model([node], ["x"], x, "y")
        model.graph.initializer.append(axes_init)
        return model, ["x"]
    raise PeerUnsupported(f"onnxruntime: no graph for op '{op}'")


def onnxruntime_fn(case: OpCase, inputs, threads: int) -> Callable:
    model, names = onnx_graph(case, inputs)
    sess = ort_session(model, threads)
    feed = dict(zip(names, inputs))
    run = sess.run
    return lambda: run(None, feed)[0]


# ---- PyTorch ---------------------------------------------------------------

def torch_fn(case: OpCase, inputs, threads: int) -> Callable:
    """torch on the same memory (torch.from_numpy), under inference_mode."""
    _require("torch")
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(threads))
    t = [torch.from_numpy(v) for v in inputs]
    op = case.op
    acts = {None: None, "relu": torch.relu, "gelu": F.gelu,
            "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"), "silu": F.silu,
            "sigmoid": torch.sigmoid, "tanh": torch.tanh}
    if op == "gemm":
        if len(t) > 3 or _attr(case, "alpha", 1.0) != 1.0:
            raise PeerUnsupported(f"{case}: residual/alpha not built for torch")
        a, b = t[0], t[1]
        act = acts[_attr(case, "activation", None)]
        if len(t) > 2:
            bias = t[2]
            body = lambda: torch.addmm(bias, a, b)  # noqa: E731
        else:
            body = lambda: a @ b  # noqa: E731
        fn = body if act is None else (lambda: act(body()))
    elif op == "matmul":
        a, b = t
        fn = lambda: torch.matmul(a, b)  # noqa: E731
    elif op in ("softmax", "log_softmax"):
        (v,) = t
        ax = _last_axis(case, v.ndim)
        f = torch.softmax if op == "softmax" else torch.log_softmax
        fn = lambda: f(v, ax)  # noqa: E731
    elif op == "layer_norm":
        v = t[0]
        ax = _last_axis(case, v.ndim)
        w = t[1] if len(t) > 1 else None
        b = t[2] if len(t) > 2 else None
        eps = _attr(case, "eps", 1e-5)
        fn = lambda: F.layer_norm(v, v.shape[ax:], w, b, eps)  # noqa: E731
    elif op == "rms_norm":
        if not hasattr(F, "rms_norm"):
            raise PeerUnsupported("torch: this version has no rms_norm")
        v = t[0]
        ax = _last_axis(case, v.ndim)
        w = t[1] if len(t) > 1 else None
        eps = _attr(case, "eps", 1e-5)
        fn = lambda: F.rms_norm(v, v.shape[ax:], w, eps)  # noqa: E731
    elif op in UNARY:
        unary = {"rsqrt": torch.rsqrt, "neg": torch.neg, "erf": torch.erf, **{
            k: f for k, f in acts.items() if k is not None}}
        f = unary.get(op) or getattr(torch, op)
        (v,) = t
        fn = lambda: f(v)  # noqa: E731
    elif op in BINARY:
        f = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
             "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum}[op]
        a, b = t
        fn = lambda: f(a, b)  # noqa: E731
    elif op in REDUCE:
        (v,) = t
        axis = _attr(case, "axis", None)
        dim = tuple(range(v.ndim)) if axis is None else (
            tuple(axis) if isinstance(axis, (tuple, list)) else (axis,))
        keep = bool(_attr(case, "keepdims", False))
        if op in ("sum", "mean"):
            f = getattr(torch, op)
            fn = lambda: f(v, dim=dim, keepdim=keep)  # noqa: E731
        else:
            f = torch.amax if op == "max" else torch.amin
            fn = lambda: f(v, dim=dim, keepdim=keep)  # noqa: E731
    else:
        raise PeerUnsupported(f"torch: no formulation of op '{op}'")

    def run():
        with torch.inference_mode():
            return fn()
    return run


# ---- numexpr (elementwise only) -------------------------------------------

_NE_UNARY = {
    "exp": "exp(x)", "log": "log(x)", "sqrt": "sqrt(x)", "rsqrt": "1/sqrt(x)", "abs": "abs(x)",
    "neg": "-x", "tanh": "tanh(x)", "sigmoid": "1/(1+exp(-x))", "relu": "where(x>0, x, 0)",
    # numexpr has no erf: both GELUs use the tanh form.  Float constants are
    # named (h, c, k) and passed in the input's dtype: a literal would be a
    # double and turn float32 math into float64.
    "gelu": "h*x*(1+tanh(c*(x+k*x*x*x)))",
    "gelu_tanh": "h*x*(1+tanh(c*(x+k*x*x*x)))",
    "silu": "x/(1+exp(-x))",
}
_NE_BINARY = {"add": "a+b", "sub": "a-b", "mul": "a*b", "div": "a/b", "pow": "a**b",
              "maximum": "where(a>b, a, b)", "minimum": "where(a<b, a, b)"}


def numexpr_fn(case: OpCase, inputs, threads: int) -> Callable:
    """numexpr for elementwise cases (it has no GEMM, softmax or norms)."""
    if case.op not in _NE_UNARY and case.op not in _NE_BINARY:
        raise PeerUnsupported(f"'{case.op}' is not elementwise")
    _require("numexpr")
    import numexpr as ne
    ne.set_num_threads(int(threads))
    if case.op in _NE_UNARY:
        x = inputs[0]
        expr, local = _NE_UNARY[case.op], {"x": x}
        if "h*x" in expr:
            local.update(h=x.dtype.type(0.5), c=x.dtype.type(GELU_TANH_C),
                         k=x.dtype.type(0.044715))
    else:
        expr, local = _NE_BINARY[case.op], {"a": inputs[0], "b": inputs[1]}
    ne.evaluate(expr, local_dict=local)  # compile (cached by expression)
    return lambda: ne.evaluate(expr, local_dict=local)
