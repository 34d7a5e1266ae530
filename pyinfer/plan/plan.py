"""The plan: an optimized graph lowered to steps, a memory layout, and the
bound programs that ``run`` executes.

Everything that can happen once happens here, when the plan is prepared:
passes, kernel selection, JIT compilation of generated kernels, arena layout,
plan-time conversion of constants.  ``run`` binds the inputs and outputs,
then calls one function per step with arguments it looks up in a small
environment — no allocation except the outputs it returns (none when the
caller passes ``outputs=``).
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ..graph.ir import Graph, Op, Value
from .memory import ALIGN, Buffer, assign_offsets
from .select import DERIVED_REFS, Step, lower


def _root(v: Value, view_base: dict) -> Value:
    while v in view_base:
        v = view_base[v]
    return v


class _Context:
    """One arena, and every step bound to it.

    A plan keeps a pool of contexts so that concurrent ``run`` calls never
    share intermediates.  Binding happens once, when the context is made:
    a step whose arguments all live in the arena or are constants becomes a
    ``functools.partial`` with nothing left to look up; a view of such a
    value is taken here, once; only steps touching the run's inputs or
    outputs look values up in the per-run environment.
    """

    def __init__(self, plan: "Plan"):
        raw = np.empty(plan.arena_bytes + ALIGN, dtype=np.uint8)
        start = (-raw.ctypes.data) % ALIGN
        self.arena = raw[start:start + plan.arena_bytes]
        static = {}
        for buf in plan.buffers:
            for v in buf.values:
                static[v] = self.arena[buf.offset:buf.offset + v.nbytes].view(v.dtype) \
                    .reshape(v.shape)
        for v in plan.constants:
            static[v] = v.data
        self.static = static
        # (step index, callable, takes_env) in schedule order
        self.calls = []
        for i, step in enumerate(plan.steps):
            bound = _bind(step, static)
            if bound is not None:
                self.calls.append((i,) + bound)


def _bind(step: Step, static: dict):
    """(callable, takes_env) for one step, or None if it was done at bind time."""
    template, dynamic = [], []
    for i, a in enumerate(step.args):
        if isinstance(a, Value):
            if a in static:
                template.append(static[a])
            else:
                template.append(None)
                dynamic.append((i, a, None))
        elif isinstance(a, DERIVED_REFS):
            if a.value in static:
                template.append(a.resolve(static[a.value]))
            else:
                template.append(None)
                dynamic.append((i, a.value, a.resolve))
        else:
            template.append(a)
    fn, kw, outs, mode = step.fn, step.kwargs, step.node.outputs, step.out_mode
    if step.scratch:
        kw = dict(kw, scratch=[static[t] for t in step.scratch])
    out_static = all(o in static for o in outs)
    if mode == "return" and not dynamic:
        static[outs[0]] = fn(*template, **kw)  # a view of arena data: take it once
        return None
    if not dynamic and out_static:
        if mode == "kw":
            return functools.partial(fn, *template, out=static[outs[0]], **kw), False
        return functools.partial(fn, template, [static[o] for o in outs], **kw), False
    o0 = outs[0]

    def call(env):
        args = list(template)
        for i, key, resolve in dynamic:
            args[i] = env[key] if resolve is None else resolve(env[key])
        if mode == "kw":
            fn(*args, out=static[o0] if o0 in static else env[o0], **kw)
        elif mode == "return":
            env[o0] = fn(*args, **kw)
        else:
            fn(args, [static[o] if o in static else env[o] for o in outs], **kw)
    return call, True


class Plan:
    """``graph`` must have concrete shapes (see ``specialize``) and be optimized."""

    def __init__(self, graph: Graph, backend: Optional[str] = "auto", fused_compiler=None):
        self.graph = graph
        self.backend = backend
        self.notes: list = list(graph.notes)
        self._samples: dict = {}
        self._view_base: dict = {}
        self.steps: list[Step] = []
        for node in graph.nodes:
            step = lower(node, backend, self._sample, self.notes, fused_compiler)
            self.steps.append(step)
            if step.is_view:
                self._view_base[node.outputs[0]] = node.inputs[0]
        self._plan_memory()
        self._samples.clear()  # plan-time arrays are not needed any more
        self.output_specs = [(tuple(v.shape), v.dtype) for v in graph.outputs]
        self._pool = [_Context(self)]

    # ---- plan-time samples ---------------------------------------------------------

    def _sample(self, v: Value):
        """An array with v's shape, dtype and (for views) strides."""
        if v is None:
            return None
        if not isinstance(v, Value):
            if isinstance(v, DERIVED_REFS):
                return v.resolve(self._sample(v.value))
            return v
        if v.is_constant:
            return v.data
        if v not in self._samples:
            node = v.producer
            if node is not None and node.op in (Op.RESHAPE, Op.TRANSPOSE, Op.SLICE):
                step = next(s for s in self.steps if s.node is node)
                self._samples[v] = step.fn(self._sample(node.inputs[0]), **step.kwargs)
            else:
                self._samples[v] = np.zeros(v.shape, v.dtype)
        return self._samples[v]

    # ---- memory ----------------------------------------------------------------------

    def _plan_memory(self):
        graph = self.graph
        outputs = set(graph.outputs)
        last_read: dict = {}
        for i, step in enumerate(self.steps):
            for a in step.args:
                v = a.value if isinstance(a, DERIVED_REFS) else a
                if isinstance(v, Value):
                    last_read[_root(v, self._view_base)] = i
        buffers: dict = {}
        self.constants = set()
        for v in graph.outputs:
            if v.is_constant:
                self.constants.add(v)
        for i, step in enumerate(self.steps):
            for a in step.args:
                v = a.value if isinstance(a, DERIVED_REFS) else a
                if isinstance(v, Value) and v.is_constant:
                    self.constants.add(v)
            for t in step.scratch:
                buffers[t] = Buffer(t.nbytes, i, i, [t])
            if step.is_view:
                continue
            for o in step.node.outputs:
                if o in outputs:
                    continue
                shared = self._in_place_partner(i, step, o, buffers, last_read, outputs)
                if shared is not None:
                    shared.values.append(o)
                    shared.last = max(shared.last, last_read.get(o, i))
                    buffers[o] = shared
                else:
                    buffers[o] = Buffer(o.nbytes, i, last_read.get(o, i), [o])
        unique = list({id(b): b for b in buffers.values()}.values())
        self.arena_bytes = assign_offsets(unique)
        self.buffers = unique
        self.naive_bytes = sum(v.nbytes for b in unique for v in b.values)

    def _in_place_partner(self, i, step, o, buffers, last_read, outputs):
        if not step.in_place_ok or len(step.node.outputs) != 1:
            return None
        for a in step.args:
            if not isinstance(a, Value) or a.is_constant or a in outputs:
                continue
            buf = buffers.get(a)
            if buf is None or a.shape != o.shape or a.dtype != o.dtype or \
                    last_read.get(a) != i or a in self._view_base:
                continue
            # Another value sharing this buffer must be dead by now too.
            if all(last_read.get(v, -1) <= i for v in buf.values):
                return buf
        return None

    # ---- reporting ----------------------------------------------------------------------

    @property
    def kernel_count(self) -> int:
        return sum(1 for s in self.steps if not s.is_view)

    # ---- running ------------------------------------------------------------------------

    def _acquire(self) -> _Context:
        # list.pop and list.append are atomic: the pool needs no lock of its own
        # (a lock pair was a tenth of a small plan's run time).
        try:
            return self._pool.pop()
        except IndexError:
            return _Context(self)  # a concurrent run: one more arena, kept for next time

    def _release(self, ctx: _Context):
        self._pool.append(ctx)

    def bind_run(self, ctx: _Context, inputs: list, outputs: list) -> tuple:
        """The per-run environment (inputs, outputs written in place) and the
        outputs that need a copy at the end (inputs, constants, views, repeats)."""
        graph = self.graph
        env = dict(zip(graph.inputs, inputs))
        copies = []
        for v, o in zip(graph.outputs, outputs):
            if v in env or v in ctx.static or v.producer is None or v in self._view_base:
                copies.append((v, o))
            else:
                env[v] = o
        return env, copies

    @staticmethod
    def finish(ctx: _Context, env: dict, copies: list) -> None:
        for v, o in copies:
            src = env[v] if v in env else ctx.static[v]
            if src is not o:
                np.copyto(o, src)

    def execute(self, inputs: list, outputs: list) -> None:
        """Run with validated, contiguous ``inputs`` into ``outputs`` (arrays of
        the graph outputs' shapes and dtypes)."""
        ctx = self._acquire()
        try:
            env, copies = self.bind_run(ctx, inputs, outputs)
            for _, call, takes_env in ctx.calls:
                if takes_env:
                    call(env)
                else:
                    call()
            self.finish(ctx, env, copies)
        finally:
            self._release(ctx)


def specialize(graph: Graph, shapes: list) -> Graph:
    """A copy of ``graph`` with concrete input shapes and every shape re-inferred
    (how a graph with symbolic dims gets a plan per input shape).

    As it re-infers it also does what only concrete shapes allow: symbolic dims
    in attributes (a RESHAPE to ``("batch", "seq", 12, 64)``) take their values,
    ``SHAPE`` of a concrete value and every small node whose inputs are all
    constants (ONNX's ``Shape -> Gather -> Concat`` chains) fold into constants,
    and ops whose operands became constant take their core form
    (``DYNAMIC_RESHAPE`` -> RESHAPE, ``DYNAMIC_SLICE`` -> SLICE, ...; see
    ``graph.families.onnx_ops.static_form``), so that passes and kernel
    selection see plain ops with constant operands.  ``shapes`` may still hold
    symbols (the importer calls it so): then only what is known folds."""
    from ..graph.families.onnx_ops import static_form
    from ..graph.passes.fold import FOLD_LIMIT_BYTES, NEVER_FOLD
    from ..graph.reference import eval_node
    from ..graph.shapes import infer
    g = graph.copy()
    binding = {}
    for v, shape in zip(g.inputs, shapes):
        for d, s in zip(v.shape, shape):
            if isinstance(d, str) and not isinstance(s, str):
                binding[d] = int(s)
        v.shape = tuple(shape)

    def bind(a):
        if isinstance(a, tuple) and any(isinstance(d, str) for d in a):
            return tuple(binding.get(d, d) if isinstance(d, str) else d for d in a)
        return a

    subst: dict = {}
    nodes, g.nodes = g.nodes, []
    for node in nodes:
        node.inputs = [subst.get(v, v) if v is not None else None for v in node.inputs]
        for k in ("shape", "shape_hint"):
            if k in node.attrs:
                node.attrs[k] = bind(node.attrs[k])
        form = static_form(node)
        if form is not None:
            node.op, node.inputs, node.attrs = form[0], form[1], form[2]
        for v, (shape, dtype) in zip(node.outputs, infer(node)):
            v.shape, v.dtype = tuple(shape), np.dtype(dtype)
        folded = _fold_small(node, eval_node, FOLD_LIMIT_BYTES, NEVER_FOLD)
        if folded is None:
            g.nodes.append(node)
            continue
        for v, r in zip(node.outputs, folded):
            c = g.constant(np.asarray(r).astype(v.dtype, copy=False), name=f"{v.name}_folded")
            c.output_name = v.output_name
            subst[v] = c
    g.outputs = [subst.get(v, v) for v in g.outputs]
    return g


def _fold_small(node, eval_node, limit, never):
    """The node's results when it can be computed now (a SHAPE of a concrete value, or
    all inputs constant and the results small), else None."""
    from ..graph.ir import Op
    if node.op is Op.SHAPE and all(isinstance(d, int) for d in node.inputs[0].shape):
        return eval_node(node, [np.empty(node.inputs[0].shape, np.uint8)])
    if node.op in never or not node.inputs or \
            not all(v is None or v.is_constant for v in node.inputs):
        return None
    if any(v.size is None for v in node.outputs) or \
            sum(v.nbytes for v in node.outputs) > limit:
        return None  # the fold pass decides about large results (and notes them)
    try:
        return eval_node(node, [None if v is None else v.data for v in node.inputs])
    except Exception:   # the fold pass notes what the reference cannot evaluate
        return None
