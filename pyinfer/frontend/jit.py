"""``pyinfer.jit``: trace a NumPy-like function once per signature, then run its plan.

    @pyinfer.jit
    def mlp(x, w1, b1, w2):
        return pi.relu(x @ w1 + b1) @ w2

The first call with a new signature — the (shape, dtype) of every array argument
plus the values of the scalar arguments — traces ``fn`` into a ``Graph`` (one
graph input per array argument, named after its parameter) and prepares an
``Interpreter`` for it; later calls with that signature only run it.  Array
arguments must be float32/float64 NumPy arrays; Python scalars (and other
hashable non-array values: None, str, tuples) are compile-time constants.

The wrapper is thread-safe: concurrent first calls with one signature trace once.
"""
from __future__ import annotations

import collections
import functools
import inspect
import threading
from typing import Any, Callable, Optional

import numpy as np

from ..errors import DTypeError, dtype_error
from ..graph.ir import Graph, Value
from . import trace as _t

FLOAT_DTYPES = _t.FLOAT_DTYPES
MAX_SIGNATURES = 64

_P = inspect.Parameter


def _make_interpreter(graph: Graph, backend, threads, passes):
    from ..runtime.interpreter import Interpreter
    return Interpreter(graph, backend=backend, threads=threads, passes=passes)


class _Entry:
    __slots__ = ("graph", "interpreter", "out_tree")

    def __init__(self, graph, interpreter, out_tree):
        self.graph = graph
        self.interpreter = interpreter
        self.out_tree = out_tree


def _qual(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _is_constant_arg(v) -> bool:
    """A value that may be a compile-time constant of the trace: hashable, not an array."""
    if isinstance(v, (bool, int, float, str, type(None), np.generic)):
        return True
    if isinstance(v, tuple):
        return all(_is_constant_arg(x) for x in v)
    return False


def _const_key(v):
    if isinstance(v, tuple):
        return (tuple, tuple(_const_key(x) for x in v))
    return (type(v), v)


class JitFunction:
    """The callable ``pyinfer.jit`` returns; see the module docstring."""

    def __init__(self, fn: Callable, backend="auto", threads=None, passes=None,
                 max_signatures: int = MAX_SIGNATURES):
        self.fn = fn
        self.backend = backend
        self.threads = threads
        self.passes = passes
        self.max_signatures = max_signatures
        self.trace_count = 0  # how many times fn was traced (tests count retraces)
        self._cache: "collections.OrderedDict[Any, _Entry]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._building: dict = {}  # signature -> lock held while it is traced and prepared
        self._sig = inspect.signature(fn)
        params = list(self._sig.parameters.values())
        self._names = [p.name for p in params]
        # Fast path: plain positional-or-keyword parameters called positionally.
        self._simple = all(p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
                           for p in params)
        functools.update_wrapper(self, fn)

    def __repr__(self):
        return f"<pyinfer.jit {_qual(self.fn)}>"

    def __get__(self, obj, objtype=None):  # usable on methods
        return self if obj is None else functools.partial(self, obj)

    # ---- arguments -> (signature key, arrays, how to call fn) --------------------------

    def _bind(self, args, kwargs):
        """[(name, value, parameter kind)] for every parameter, defaults applied."""
        if self._simple and not kwargs and len(args) == len(self._names):
            return [(n, v, None) for n, v in zip(self._names, args)]
        bound = self._sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return [(n, v, self._sig.parameters[n].kind) for n, v in bound.arguments.items()]

    def _leaves(self, items):
        """(graph-input name, value, path) for each leaf; *args/**kwargs are expanded."""
        for name, value, kind in items:
            if kind is _P.VAR_POSITIONAL:
                for i, v in enumerate(value):
                    yield f"{name}_{i}", v, (name, i)
            elif kind is _P.VAR_KEYWORD:
                for k, v in value.items():
                    yield k, v, (name, k)
            else:
                yield name, value, (name, None)

    def _signature(self, args, kwargs):
        items = self._bind(args, kwargs)
        key, arrays = [], []
        qual = _qual(self.fn)
        for name, v, _ in self._leaves(items):
            if isinstance(v, np.ndarray):
                if v.dtype not in FLOAT_DTYPES:
                    if v.dtype.kind == "f" and v.dtype.itemsize in (4, 8):
                        v = v.astype(v.dtype.newbyteorder("="))  # non-native byte order
                    else:
                        raise dtype_error(name, "float32 or float64 (a NumPy array) or a "
                                          "Python scalar", v.dtype, f"jit({qual})")
                key.append((v.shape, v.dtype.char))
                arrays.append(v)
            elif _is_constant_arg(v):
                key.append(_const_key(v))
            elif isinstance(v, _t.Tensor):
                return None, items, None  # called inside another trace: inline
            else:
                raise DTypeError(f"jit({qual}): argument '{name}' expected a float32/float64 "
                                 f"NumPy array or a Python scalar, received "
                                 f"{type(v).__name__}")
        return tuple(key), items, arrays

    # ---- tracing -----------------------------------------------------------------------

    def _call_fn(self, items, replace):
        args, kwargs = [], {}
        for name, value, kind in items:
            if kind is _P.VAR_POSITIONAL:
                args.extend(replace.get((name, i), v) for i, v in enumerate(value))
            elif kind is _P.VAR_KEYWORD:
                kwargs.update({k: replace.get((name, k), v) for k, v in value.items()})
            elif kind is _P.KEYWORD_ONLY:
                kwargs[name] = replace.get((name, None), value)
            else:
                args.append(replace.get((name, None), value))
        return self.fn(*args, **kwargs)

    def _trace(self, items) -> tuple:
        graph = Graph(getattr(self.fn, "__name__", "jit"))
        with _t.tracing(graph) as ctx:
            replace = {}
            for name, v, path in self._leaves(items):
                if isinstance(v, np.ndarray):
                    value = graph.input(name, v.shape, v.dtype.newbyteorder("="))
                    replace[path] = _t.input_tensor(ctx, value)
            result = self._call_fn(items, replace)
            out_tree = self._mark_outputs(graph, ctx, result)
        return graph, out_tree

    def _mark_outputs(self, graph, ctx, result):
        def one(r, name):
            if isinstance(r, _t.Tensor):
                if r._ctx is not ctx:
                    raise _t.TraceError(f"jit({_qual(self.fn)}): returned a Tensor "
                                        f"from another trace")
                graph.output(r.value, name)
            elif isinstance(r, Value):
                graph.output(r, name)
            elif isinstance(r, (np.ndarray, np.generic, bool, int, float)):
                graph.output(ctx.constant(r), name)
            else:
                raise DTypeError(f"jit({_qual(self.fn)}): the function must return a "
                                 f"Tensor/array or a tuple, list or dict of them; output "
                                 f"{name!r} is {type(r).__name__}")

        if isinstance(result, (tuple, list)):
            for i, r in enumerate(result):
                one(r, f"output_{i}")
            return (type(result), len(result))
        if isinstance(result, dict):
            for k, r in result.items():
                one(r, str(k))
            return (dict, tuple(result))
        one(result, "output")
        return None

    def _prepare(self, key, items) -> _Entry:
        # One lock per signature being prepared: concurrent first calls with that
        # signature trace once, while calls with other (cached) signatures never wait
        # behind a trace or a plan's compilation.  self._lock guards only the dicts.
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                return entry
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._cache.get(key)
            if entry is not None:
                return entry
            try:
                graph, out_tree = self._trace(items)
                with self._lock:
                    self.trace_count += 1
                interp = _make_interpreter(graph, self.backend, self.threads, self.passes)
                entry = _Entry(graph, interp, out_tree)
                with self._lock:
                    self._cache[key] = entry
                    while len(self._cache) > self.max_signatures:
                        self._cache.popitem(last=False)
            finally:
                with self._lock:
                    self._building.pop(key, None)
            return entry

    def _entry(self, args, kwargs):
        key, items, arrays = self._signature(args, kwargs)
        if key is None:
            return None, items, None
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
        if entry is None:
            entry = self._prepare(key, items)
        return entry, items, arrays

    # ---- calling -----------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        entry, items, arrays = self._entry(args, kwargs)
        if entry is None:  # Tensors given: we are inside another jit's trace, inline fn
            return self._call_fn(items, {})
        outs = entry.interpreter.run(arrays)
        tree = entry.out_tree
        if tree is None:
            return outs[0]
        if tree[0] is dict:
            return dict(zip(tree[1], outs))
        return tree[0](outs)

    # ---- introspection -----------------------------------------------------------------

    def interpreter(self, *args, **kwargs):
        """The interpreter (or plan) for these arguments' signature, prepared if new."""
        entry, _, _ = self._entry(args, kwargs)
        return None if entry is None else entry.interpreter

    def graph(self, *args, **kwargs) -> Optional[Graph]:
        """The traced graph for these arguments' signature (traced if new)."""
        entry, _, _ = self._entry(args, kwargs)
        return None if entry is None else entry.graph

    def trace(self, *args, **kwargs) -> Graph:
        """A fresh trace of ``fn`` for these arguments, without preparing an interpreter
        or touching the signature cache (for tests and for looking at the IR)."""
        key, items, _ = self._signature(args, kwargs)
        if key is None:
            raise _t.TraceError(f"jit({_qual(self.fn)}).trace: called with Tensors")
        return self._trace(items)[0]

    def graphs(self) -> list:
        """The traced graphs of the cached signatures, least recently used first."""
        with self._lock:
            return [e.graph for e in self._cache.values()]

    def explain(self, *args, **kwargs) -> str:
        """What the plan for these arguments does (the interpreter's explain())."""
        interp = self.interpreter(*args, **kwargs)
        if hasattr(interp, "explain"):
            return interp.explain()
        return repr(self.graph(*args, **kwargs))

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()


def jit(fn: Optional[Callable] = None, *, backend: str = "auto", threads: Optional[int] = None,
        passes=None):
    """Trace ``fn`` (written against the ``pyinfer`` namespace / NumPy operators) into a
    graph per signature and run it with an Interpreter.  Usable bare (``@jit``) or
    with options (``@jit(backend="c", threads=4)``)."""
    if fn is None:
        return lambda f: JitFunction(f, backend=backend, threads=threads, passes=passes)
    return JitFunction(fn, backend=backend, threads=threads, passes=passes)


__all__ = ["jit", "JitFunction"]
