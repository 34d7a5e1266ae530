"""Measure pyinfer's kernels against NumPy and the peers, in one process and run.

Used by ``python -m pyinfer bench`` (a table) and by the pytest-benchmark
suites in ``bench/`` (the same cases and contenders, timed by pytest-benchmark).

The cases are ``pyinfer.testing.BENCH_CASES`` (STYLE.md 12: the one list the
tests use too) plus ``EXTRA_BENCH_CASES``.  A *contender* is a no-argument
callable computing a case: pyinfer under ``backend=None`` ("pyinfer"), pyinfer
on one named backend ("pyinfer[c]"), or a peer from ``pyinfer.peers``.

Timing (STYLE.md 14): the first call is timed and reported on its own (it may
compile or load a Numba cache); then warm-up calls; then many rounds, each of
enough calls to last ``min_round_s``; the median per-call time is the result
and the interquartile range / median its spread.  The garbage collector is
off while a contender is timed.
"""
from __future__ import annotations

import datetime
import gc
import math
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from . import peers as _peers
from . import registry
from .testing import BENCH_CASES, EXTRA_BENCH_CASES, OpCase, random_input

CPU_BACKENDS = tuple(b for b in registry.BACKENDS if b != "cupy")
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---- cases -----------------------------------------------------------------

def _dim(d: int) -> str:
    if d >= 1 << 20 and d % (1 << 20) == 0:
        return f"{d >> 20}M"
    return str(d)


def _shape(s) -> str:
    return "x".join(_dim(d) for d in s) or "()"


def case_label(case: OpCase) -> str:
    """A short human name: 'gemm 8x768x3072', 'gemm+bias+gelu 128x384x1536', 'add 16M'."""
    if case.label:
        return case.label
    if case.op == "gemm":
        (m, k), (_, n) = case.shapes[0], case.shapes[1]
        name = "gemm" + ("+bias" if len(case.shapes) > 2 else "") + \
            ("+residual" if len(case.shapes) > 3 else "")
        act = case.attrs.get("activation")
        return f"{name}{'+' + act if act else ''} {m}x{k}x{n}"
    if case.op == "matmul":
        return f"matmul {_shape(case.shapes[0])}@{_shape(case.shapes[1])}"
    extra = ""
    if case.op in ("sum", "mean", "max", "min") and "axis" in case.attrs:
        extra = f"(axis={case.attrs['axis']})"
    return f"{case.op}{extra} {_shape(case.shapes[0])}"


def all_cases() -> tuple:
    return tuple(BENCH_CASES) + tuple(EXTRA_BENCH_CASES)


def shrink(case: OpCase, limit: int = 16) -> OpCase:
    """The same case on tiny shapes (every dim capped at ``limit``; equal dims
    stay equal, so the shapes still agree).  For smoke runs."""
    shapes = tuple(tuple(min(d, limit) for d in s) for s in case.shapes)
    return OpCase(case.op, shapes, dict(case.attrs), case.dtype, case.label)


def select_cases(cases: Sequence[OpCase], wanted: Optional[str]) -> list:
    """Filter by a comma-separated list matched against op names and labels."""
    if not wanted:
        return list(cases)
    keys = [w.strip().lower() for w in wanted.split(",") if w.strip()]
    return [c for c in cases
            if any(k == c.op or k in case_label(c).lower() or k in str(c).lower() for k in keys)]


def case_inputs(case: OpCase, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [random_input(rng, s, case.dtype, case.op) for s in case.shapes]


# ---- contenders ------------------------------------------------------------

def pyinfer_fn(case: OpCase, inputs, backend: Optional[str] = None) -> Callable:
    """pyinfer's eager op on ``inputs``; every op takes its operands
    positionally in case.shapes order and its attributes by name."""
    from . import ops
    fn = getattr(ops, case.op)
    attrs = dict(case.attrs)
    return lambda: fn(*inputs, **attrs, backend=backend)


def backends_for(op: str) -> list:
    """The CPU backends with a kernel for ``op`` that are not marked unavailable."""
    table = registry.kernels(op)
    return [b for b in CPU_BACKENDS if b in table and registry.unavailable_reason(b) is None]


def why_no_backend(op: str, backend: str) -> Optional[str]:
    why = registry.unavailable_reason(backend)
    if why:
        return f"backend unavailable: {why}"
    if backend not in registry.kernels(op):
        return f"no '{backend}' kernel for {op}"
    return None


def picked_backend(call: Callable) -> Optional[str]:
    """The backend ``registry.select`` chooses when ``call`` runs (spied, once)."""
    seen = []
    original = registry.select

    def spy(*args, **kwargs):
        kernel = original(*args, **kwargs)
        seen.append(kernel.backend)
        return kernel

    registry.select = spy
    try:
        call()
    finally:
        registry.select = original
    return seen[-1] if seen else None


def make_contender(name: str, case: OpCase, inputs, threads: int) -> Callable:
    """``name``: 'pyinfer', 'pyinfer[<backend>]', or a peer.  Raises
    ``peers.PeerError`` (with the reason) when it cannot run this case."""
    if name == "pyinfer":
        return pyinfer_fn(case, inputs)
    if name.startswith("pyinfer[") and name.endswith("]"):
        backend = name[len("pyinfer["):-1]
        why = why_no_backend(case.op, backend)
        if why:
            raise _peers.PeerUnsupported(why)
        return pyinfer_fn(case, inputs, backend)
    return _peers.make(name, case, inputs, threads)


# ---- timing ----------------------------------------------------------------

@dataclass(frozen=True)
class Timer:
    """How long to measure one contender."""
    min_rounds: int
    max_rounds: int
    budget_s: float        # target time spent in timed rounds
    warmup_s: float        # time spent in warm-up calls (at least two calls)
    min_round_s: float     # a round repeats the call until it lasts this long
    max_case_s: float      # cap on one case's timed rounds, all contenders together
    sweeps: int = 3        # the rounds of each contender are split into this many blocks


QUICK = Timer(min_rounds=7, max_rounds=200, budget_s=0.35, warmup_s=0.1, min_round_s=2e-4,
              max_case_s=4.0)
FULL = Timer(min_rounds=25, max_rounds=2000, budget_s=2.0, warmup_s=0.3, min_round_s=1e-3,
             max_case_s=60.0)
SMOKE = Timer(min_rounds=3, max_rounds=5, budget_s=0.005, warmup_s=0.0, min_round_s=0.0,
              max_case_s=0.5)


@dataclass
class Timing:
    median: float          # seconds per call
    q1: float
    q3: float
    rounds: int
    number: int            # calls per round
    first: float           # the first call, on its own

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else 0.0


def _stats(samples, number: int, first: float) -> Timing:
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return Timing(float(med), float(q1), float(q3), len(samples), number, first)


def _first_and_warmup(fn: Callable, timer: Timer) -> tuple:
    """(first call's time, its result, best warm-up time, calls per round)."""
    clock = time.perf_counter
    t0 = clock()
    result = fn()
    first = clock() - t0
    best = first
    deadline = clock() + timer.warmup_s
    calls = 0
    while calls < 2 or clock() < deadline:
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
        calls += 1
    number = max(1, math.ceil(timer.min_round_s / best)) if best > 0 else 1
    return first, result, best, number


def measure(fn: Callable, timer: Timer) -> tuple:
    """(Timing, the first call's result) for one callable."""
    timing, result = measure_many({"fn": fn}, timer)["fn"]
    return timing, result


def measure_many(fns: dict, timer: Timer) -> dict:
    """Time several callables in *sweeps*: after each one's first call and
    warm-up, every sweep runs a block of rounds of each contender in turn
    (the order rotating from sweep to sweep), and a block starts with one
    untimed call.  Spreading each contender over the whole measurement makes
    load from elsewhere on a shared machine hit them alike, so the ratios
    hold when absolute times move; timing blocks rather than alternating
    single calls lets each library's thread pool settle (several OpenMP
    runtimes spinning on 2 cores would otherwise slow whichever runs next).
    Returns name -> (Timing, first result), or name -> the exception raised."""
    clock = time.perf_counter
    prepared, out = {}, {}
    for name, fn in fns.items():
        try:
            prepared[name] = (fn,) + _first_and_warmup(fn, timer)
        except Exception as exc:  # a broken kernel or peer: report, go on
            out[name] = exc
    if not prepared:
        return out
    # Each contender gets about budget_s of rounds, at least min_rounds of
    # them, unless a very slow one would make the case last beyond max_case_s
    # (then never fewer than 3).
    total = sum(best * number for (_, _, _, best, number) in prepared.values()) or 1e-9
    rounds = max(timer.min_rounds, timer.budget_s * len(prepared) / total)
    rounds = int(max(3, min(rounds, timer.max_rounds, timer.max_case_s / total)))
    sweeps = max(1, min(timer.sweeps, rounds // 3))
    names = list(prepared)
    samples = {n: [] for n in names}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for sweep in range(sweeps):
            block = rounds // sweeps + (1 if sweep < rounds % sweeps else 0)
            for j in range(len(names)):
                name = names[(sweep + j) % len(names)]
                fn, number = prepared[name][0], prepared[name][4]
                fn()  # untimed: wakes this contender's threads and caches
                for _ in range(block):
                    t0 = clock()
                    for _ in range(number):
                        fn()
                    samples[name].append((clock() - t0) / number)
    finally:
        if enabled:
            gc.enable()
    for name, (fn, first, result, best, number) in prepared.items():
        out[name] = (_stats(samples[name], number, first), result)
    return out


# ---- the machine -----------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list:
    """threadpoolctl's view of the loaded BLAS libraries (kernel = 'architecture')."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    return [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]


def describe_blas() -> str:
    infos = blas_info()
    if not infos:
        return "no BLAS seen by threadpoolctl (is threadpoolctl installed?)"
    parts = []
    for i in infos:
        parts.append(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture', '?')} "
                     f"threads={i.get('num_threads')} ({os.path.basename(i.get('filepath', ''))})")
    env = ", ".join(f"{k}={os.environ[k]}" for k in OPENBLAS_ENV if k in os.environ)
    return "; ".join(parts) + (f"  [env: {env}]" if env else "")


def isa_info() -> tuple:
    """(chosen, detected) ISA names of the C kernels, or the reason there are none."""
    from .backends import _native
    if _native.lib is None:
        return None, _native.IMPORT_ERROR
    detected = _native.ISA_NAMES.get(int(_native.lib.pi_isa_detected()), "unknown")
    return _native.isa(), detected


def machine_info(threads: Optional[int] = None) -> dict:
    from . import __version__, get_num_threads
    from .threads import cpu_count
    chosen, detected = isa_info()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyinfer": __version__,
        "isa": chosen,
        "isa_detected": detected,
        "threads": threads if threads is not None else get_num_threads(),
        "blas": describe_blas(),
    }


# ---- the table -------------------------------------------------------------

@dataclass
class Row:
    case: OpCase
    label: str
    picked: Optional[str] = None
    results: dict = field(default_factory=dict)   # contender -> Timing
    notes: dict = field(default_factory=dict)     # contender -> why n/a / error
    check: str = ""


def fmt_time(t: Optional[float]) -> str:
    if t is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def _agree(ours, theirs) -> str:
    """A loose sanity check of pyinfer's answer against NumPy's formula (the
    tests do the real checking; this only stops a wrong kernel being timed
    as a win).  GELU differs by up to ~1e-3 between the erf and tanh forms."""
    try:
        ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    except Exception:
        return "?"
    if ours.shape != theirs.shape:
        return f"WRONG shape {ours.shape} != {theirs.shape}"
    scale = max(1.0, float(np.max(np.abs(theirs))) if theirs.size else 1.0)
    err = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    return "ok" if err <= 3e-3 * scale else f"WRONG (max err {err:.3g})"


def run_table(cases: Sequence[OpCase], peers: Sequence[str], timer: Timer, threads: int,
              per_backend: bool, progress: Optional[Callable[[str], None]] = None) -> list:
    """Measure every case; returns one Row per case."""
    rows = []
    for case in cases:
        row = Row(case, case_label(case))
        inputs = case_inputs(case)
        names = ["pyinfer"]
        if per_backend:
            names += [f"pyinfer[{b}]" for b in CPU_BACKENDS]
        names += list(peers)
        fns = {}
        for name in names:
            try:
                fns[name] = make_contender(name, case, inputs, threads)
            except _peers.PeerError as exc:
                row.notes[name] = str(exc)
        if progress:
            progress(f"{row.label} ({', '.join(fns)})")
        outputs = {}
        for name, res in measure_many(fns, timer).items():
            if isinstance(res, Exception):
                row.notes[name] = f"error: {type(res).__name__}: {res}"
            else:
                row.results[name], outputs[name] = res
        if "pyinfer" in outputs:  # after timing, so that the 1st call above was the first
            row.picked = picked_backend(fns["pyinfer"])
        if "pyinfer" in outputs and "numpy" in outputs:
            row.check = _agree(outputs["pyinfer"], outputs["numpy"])
        rows.append(row)
    return rows


def ratio(row: Row, peer: str) -> Optional[float]:
    ours, theirs = row.results.get("pyinfer"), row.results.get(peer)
    if ours is None or theirs is None or ours.median <= 0:
        return None
    return theirs.median / ours.median


def _short(name: str) -> str:
    return {"onnxruntime": "ort"}.get(name, name)


def format_table(rows: Sequence[Row], peers: Sequence[str], markdown: bool = False) -> str:
    head = ["case", "pyinfer", "±", "via", "1st call"]
    for p in peers:
        head += [p, f"x{_short(p)}"]
    head.append("check")
    body = []
    for r in rows:
        ours = r.results.get("pyinfer")
        line = [r.label, fmt_time(ours.median) if ours else "n/a",
                f"{100 * ours.spread:.0f}%" if ours else "",
                r.picked or "-", fmt_time(ours.first) if ours else ""]
        for p in peers:
            t = r.results.get(p)
            q = ratio(r, p)
            line += [fmt_time(t.median) if t else "n/a", f"{q:.2f}x" if q is not None else "n/a"]
        line.append(r.check or "-")
        body.append(line)
    return _render(head, body, markdown)


def format_backend_table(rows: Sequence[Row], markdown: bool = False) -> str:
    head = ["case"] + [f"pyinfer[{b}]" for b in CPU_BACKENDS]
    body = []
    for r in rows:
        line = [r.label]
        for b in CPU_BACKENDS:
            t = r.results.get(f"pyinfer[{b}]")
            line.append(f"{fmt_time(t.median)} ±{100 * t.spread:.0f}%" if t else "n/a")
        body.append(line)
    return _render(head, body, markdown)


def _render(head, body, markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
        out += ["| " + " | ".join(line) + " |" for line in body]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def fmt(line):
        return "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                         for i, (x, w) in enumerate(zip(line, widths))).rstrip()
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])


def notes(rows: Sequence[Row]) -> list:
    """Why a contender shows n/a: one line per (contender, reason), naming the cases."""
    grouped: dict = {}
    for r in rows:
        for name, why in r.notes.items():
            grouped.setdefault((name, why), []).append(r.label)
    return [f"{name}: {why} [{', '.join(labels)}]" for (name, why), labels in grouped.items()]


def to_json(rows: Sequence[Row], info: dict, peers: Sequence[str]) -> dict:
    return {
        "machine": info,
        "rows": [{
            "case": str(r.case), "label": r.label, "picked": r.picked, "check": r.check,
            "timings": {k: vars(t) for k, t in r.results.items()},
            "ratios": {p: ratio(r, p) for p in peers},
            "notes": r.notes,
        } for r in rows],
    }
