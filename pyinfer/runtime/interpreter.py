"""``pyinfer.Interpreter``: prepare a graph once, run it many times.

Preparing optimizes the graph (pyinfer.graph.passes), picks a kernel per node,
JIT-compiles what needs compiling and lays out one arena for intermediates.
A graph whose inputs have symbolic dims gets one plan per concrete input
shape, kept in a small LRU cache (bounded: input shapes that keep changing
cannot grow memory without limit).  ``run`` is safe to call from many
threads: each concurrent call borrows its own arena from the plan's pool.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import DTypeError, ShapeError, UnsupportedError
from ..graph.ir import Graph, Value
from ..plan.plan import Plan, specialize
from ..threads import budget, cpu_count, get_num_threads
from . import stats as _stats

MAX_PLANS = 8


class TensorInfo(collections.namedtuple("TensorInfo", "name shape dtype")):
    """Name, shape (ints, or strings for symbolic dims) and dtype of an input/output."""


def _fused_compiler(backend):
    """How FUSED_* nodes become steps: a generated Numba kernel, or under the
    numpy backend the reference evaluation of the same program."""
    from ..plan.select import Step
    if backend == "numpy":
        from ..plan.select import reference_step
        return lambda node, sample: reference_step(node)

    def generated_step(node, sample):
        from ..kernels import codegen
        shapes = [v.shape for v in node.inputs]
        dtypes = [v.dtype for v in node.inputs]
        kernel = codegen.compile_fused(node, shapes, dtypes)
        kernel.warm()  # compile at plan time, never in run
        # Generated kernels are compiled for writable arrays; graph constants are
        # read-only, so the plan keeps its own (private) copy of each.
        args = [np.array(v.data) if v.is_constant else v for v in node.inputs]
        return Step(node, kernel, args, {}, "numba", f"numba.generated[{node.name}]",
                    out_mode="list",
                    in_place_ok=node.op.value == "fused_elementwise" and all(
                        v.shape == node.outputs[0].shape for v in node.inputs))
    return generated_step


class Interpreter:
    """Run a ``Graph``.

    backend: "auto" (pick per node), or "numpy" / "c" / "numba" to prefer one
    (nodes it cannot run fall back to auto, and ``explain()`` says so).
    threads: the thread budget while this interpreter runs (None: the global one).
    passes: None (all), a list of pass names, or "none".
    """

    def __init__(self, graph: Graph, backend: str = "auto", threads: Optional[int] = None,
                 passes=None):
        from .. import registry
        if backend != "auto" and backend not in registry.BACKENDS:
            from ..errors import BackendUnavailableError
            raise BackendUnavailableError(
                f"Interpreter: argument 'backend' expected 'auto' or one of "
                f"{registry.BACKENDS}, received {backend!r}")
        if backend == "cupy":
            from ..errors import BackendUnavailableError
            why = registry.unavailable_reason("cupy")
            if why is not None:
                raise BackendUnavailableError(f"Interpreter: backend 'cupy' is unavailable: {why}")
            raise UnsupportedError("Interpreter: whole plans on the GPU (backend='cupy') are not "
                                   "built yet; the eager ops accept CuPy arrays")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ShapeError(f"Interpreter: argument 'threads' expected an int >= 1 or None, "
                             f"received {threads!r}")
        self.graph = graph
        self.backend = backend
        self.threads = threads
        # what budget(threads) sets: no more threads than usable cores
        self._budget_threads = None if threads is None else min(threads, cpu_count())
        self.passes = passes
        self._plans: "collections.OrderedDict" = collections.OrderedDict()
        self._lock = threading.Lock()
        _stats._install()
        self.inputs = [TensorInfo(v.name, v.shape, v.dtype) for v in graph.inputs]
        self._input_names = tuple(v.name for v in graph.inputs)
        self._input_dtypes = tuple(v.dtype for v in graph.inputs)
        # (input shapes, plan) of the last run: a run with the same shapes skips
        # the general checks and the plan cache (see _fast_inputs).
        self._last: Optional[tuple] = None
        self.outputs = [TensorInfo(v.output_name or v.name, v.shape, v.dtype)
                        for v in graph.outputs]
        if all(isinstance(d, int) for v in graph.inputs for d in v.shape):
            self.prepare([v.shape for v in graph.inputs])

    # ---- preparing -------------------------------------------------------------------------

    def prepare(self, shapes: Sequence[tuple]) -> Plan:
        """The plan for these concrete input shapes (built and cached on first use)."""
        key = tuple(tuple(s) for s in shapes)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
            else:
                plan = self._build(key)
                self._plans[key] = plan
                while len(self._plans) > MAX_PLANS:
                    self._plans.popitem(last=False)
            self._last = (key, plan)
            return plan

    def _build(self, shapes) -> Plan:
        from ..graph import passes as graph_passes
        g = self.graph
        if any(v.shape != s for v, s in zip(g.inputs, shapes)):
            g = specialize(g, shapes)
        g = graph_passes.optimize(g, self.passes)
        plan = Plan(g, None if self.backend == "auto" else self.backend,
                    _fused_compiler(self.backend))
        _stats.bump("plans_prepared")
        return plan

    @property
    def plan(self) -> Plan:
        """The most recently used plan."""
        if not self._plans:
            raise ShapeError("Interpreter: no plan yet: the graph has symbolic input dims; "
                             "call run() or prepare(shapes) first")
        return next(reversed(self._plans.values()))

    # ---- running ---------------------------------------------------------------------------

    def _check_inputs(self, inputs) -> list:
        specs = self.graph.inputs
        if isinstance(inputs, dict):
            names = [v.name for v in specs]
            unknown = sorted(set(inputs) - set(names))
            missing = [n for n in names if n not in inputs]
            if unknown or missing:
                raise ShapeError(f"run: inputs expected names {names}, received {sorted(inputs)}"
                                 + (f"; unknown {unknown}" if unknown else "")
                                 + (f"; missing {missing}" if missing else ""))
            inputs = [inputs[n] for n in names]
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        inputs = list(inputs)
        if len(inputs) != len(specs):
            raise ShapeError(f"run: expected {len(specs)} inputs "
                             f"({', '.join(v.name for v in specs)}), received {len(inputs)}")
        checked = []
        for v, x in zip(specs, inputs):
            if not isinstance(x, np.ndarray):
                x = np.asarray(x)
            if x.dtype != v.dtype:
                raise DTypeError(f"run: input '{v.name}' expected dtype {v.dtype}, "
                                 f"received {x.dtype}")
            if x.ndim != len(v.shape) or any(isinstance(d, int) and d != s
                                            for d, s in zip(v.shape, x.shape)):
                raise ShapeError(f"run: input '{v.name}' expected shape {v.shape}, "
                                 f"received {x.shape}")
            if not x.flags.c_contiguous or not x.flags.aligned:
                x = np.ascontiguousarray(x)
            checked.append(x)
        self._check_symbols(checked)
        return checked

    def _check_symbols(self, inputs):
        seen = {}
        for v, x in zip(self.graph.inputs, inputs):
            for d, s in zip(v.shape, x.shape):
                if isinstance(d, str):
                    if seen.setdefault(d, (s, v.name))[0] != s:
                        raise ShapeError(
                            f"run: input '{v.name}' dim '{d}' is {s}, but input "
                            f"'{seen[d][1]}' gave '{d}' = {seen[d][0]}")

    def _fast_inputs(self, inputs):
        """(inputs as a list, plan) when ``inputs`` are exactly what the last run
        had -- C-contiguous, aligned ndarrays of the same dtypes and shapes --
        else None, and ``run`` takes the general path.  The general checks
        (names, conversions, symbolic dims) and the plan lookup cost more than a
        small kernel; an online-serving loop repeats one shape, so they are done
        once per shape rather than once per request."""
        last = self._last
        if last is None:
            return None
        shapes, plan = last
        names = self._input_names
        if type(inputs) is dict:
            if len(inputs) != len(names):
                return None
            try:
                xs = [inputs[n] for n in names]
            except KeyError:
                return None
        elif type(inputs) is np.ndarray:
            xs = [inputs]
        elif type(inputs) in (list, tuple):
            xs = list(inputs)
        else:
            return None
        if len(xs) != len(names):
            return None
        for x, shape, dtype in zip(xs, shapes, self._input_dtypes):
            if type(x) is not np.ndarray or x.shape != shape or x.dtype != dtype:
                return None
            flags = x.flags
            if not (flags.c_contiguous and flags.aligned):
                return None
        return xs, plan

    def run(self, inputs: Union[dict, Sequence, np.ndarray], outputs: Optional[Sequence] = None):
        """Run the graph.  ``inputs``: a dict by input name or a list in input
        order.  Returns the list of outputs; with ``outputs=`` (arrays of the
        outputs' shapes and dtypes) writes into them and returns them, and the
        call allocates nothing."""
        fast = self._fast_inputs(inputs)
        if fast is not None:
            xs, plan = fast
        else:
            xs = self._check_inputs(inputs)
            plan = self.prepare([x.shape for x in xs])
        outs = plan.graph.outputs
        if outputs is None:
            result = [np.empty(shape, dtype) for shape, dtype in plan.output_specs]
        else:
            result = list(outputs)
            if len(result) != len(outs):
                raise ShapeError(f"run: argument 'outputs' expected {len(outs)} arrays, "
                                 f"received {len(result)}")
            for i, (v, o) in enumerate(zip(outs, result)):
                name = v.output_name or v.name
                if not isinstance(o, np.ndarray) or o.dtype != v.dtype:
                    raise DTypeError(f"run: output '{name}' expected a {v.dtype} array, received "
                                     f"{getattr(o, 'dtype', type(o).__name__)}")
                if o.shape != tuple(v.shape):
                    raise ShapeError(f"run: output '{name}' expected shape {v.shape}, "
                                     f"received {o.shape}")
                if not o.flags.writeable:
                    raise ShapeError(f"run: output '{name}' is read-only")
        if self.threads is None or self._budget_threads == get_num_threads():
            plan.execute(xs, result)  # the budget holds already: no context to enter
        else:
            with self._thread_budget():
                plan.execute(xs, result)
        return result

    def _thread_budget(self):
        """The interpreter's thread budget for the duration of a run (or profile)."""
        return budget(self.threads)

    __call__ = run

    # ---- looking inside ----------------------------------------------------------------------

    def explain(self) -> str:
        """Each kernel of the current plan (what it fused, which backend ran it),
        then every fusion or backend choice not made and why."""
        plan = self.plan
        lines = [f"plan for {self.graph.name}: {plan.kernel_count} kernels, arena "
                 f"{plan.arena_bytes} bytes (naive {plan.naive_bytes})"]
        for i, step in enumerate(plan.steps):
            node = step.node
            fused = f" fused {list(node.fused_from)}" if node.fused_from else ""
            kind = "view " if step.is_view else ""
            shape = "x".join(map(str, node.outputs[0].shape)) or "scalar"
            lines.append(f"  [{i}] {kind}{step.kernel} <- {node.op.value} '{node.name}' "
                         f"-> {shape}{fused}")
        if plan.notes:
            lines.append("not done:")
            for names, reason in plan.notes:
                lines.append(f"  {', '.join(names)}: {reason}")
        return "\n".join(lines)

    def profile(self, inputs, repeat: int = 20) -> str:
        """Time each kernel of the plan over ``repeat`` runs; a table of median
        time, GFLOP/s (GEMM-like kernels), GB/s (bytes read + written) and share."""
        xs = self._check_inputs(inputs)
        plan = self.prepare([x.shape for x in xs])
        outs = [np.empty(v.shape, v.dtype) for v in plan.graph.outputs]
        times = [[] for _ in plan.steps]
        ctx = plan._acquire()
        try:
            with self._thread_budget():
                for _ in range(max(1, repeat)):
                    env, copies = plan.bind_run(ctx, xs, outs)
                    for i, call, takes_env in ctx.calls:
                        t = time.perf_counter()
                        call(env) if takes_env else call()
                        times[i].append(time.perf_counter() - t)
                    plan.finish(ctx, env, copies)
        finally:
            plan._release(ctx)
        # Views taken when the arena was bound are never called: they cost nothing.
        med = [float(np.median(t)) if t else 0.0 for t in times]
        total = sum(med) or 1e-12
        rows = [f"{'#':>3} {'kernel':40} {'time us':>10} {'GFLOP/s':>9} {'GB/s':>8} {'share':>6}"]
        for i, (step, t) in enumerate(zip(plan.steps, med)):
            nbytes = sum(v.nbytes or 0 for v in step.node.inputs if isinstance(v, Value)) + \
                sum(v.nbytes or 0 for v in step.node.outputs)
            gflops = f"{step.flops / t / 1e9:9.1f}" if step.flops and t > 0 else f"{'':9}"
            gbs = f"{nbytes / t / 1e9:8.1f}" if t > 0 and not step.is_view else f"{'':8}"
            rows.append(f"{i:>3} {step.kernel[:40]:40} {t * 1e6:10.1f} {gflops} {gbs} "
                        f"{t / total:6.1%}")
        rows.append(f"    {'total':40} {total * 1e6:10.1f}")
        return "\n".join(rows)

    def to_dot(self) -> str:
        """The optimized graph in Graphviz dot syntax."""
        g = self.plan.graph
        lines = [f'digraph "{g.name}" {{', "  rankdir=TB;"]
        ids = {}

        def vid(v):
            return ids.setdefault(v, f"v{len(ids)}")

        for v in g.inputs:
            lines.append(f'  {vid(v)} [shape=ellipse,label="{v.name}\\n{v.shape}"];')
        for i, node in enumerate(g.nodes):
            label = node.op.value + (f"\\n({len(node.fused_from)} fused)" if node.fused_from else "")
            lines.append(f'  n{i} [shape=box,label="{label}"];')
            for v in node.inputs:
                if v is None:
                    continue
                if v.is_constant and v not in ids:
                    lines.append(f'  {vid(v)} [shape=note,label="const {v.shape}"];')
                lines.append(f"  {vid(v)} -> n{i};")
            for v in node.outputs:
                lines.append(f'  {vid(v)} [shape=ellipse,label="{v.name}\\n{v.shape}"];')
                lines.append(f"  n{i} -> {vid(v)};")
        lines.append("}")
        return "\n".join(lines)
