"""What the model commands of ``python -m pyinfer`` share: resolving a MODEL
argument, making its inputs, timing (latency percentiles, throughput) against
ONNX Runtime, progress display, and the roofline (measured ceilings + plot).

Kept apart from ``pyinfer/cli.py`` so the command line stays argument parsing
and printing, and so tests can call these directly.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "all-MiniLM-L6-v2")
DEFAULT_SEQ = 128


# ---- progress -------------------------------------------------------------------------------

class Progress:
    """A progress bar on stderr: tqdm when installed (the ``cli`` extra), else a
    plain counter on a terminal, else nothing."""

    def __init__(self, total: int, desc: str, enabled: Optional[bool] = None):
        self.total, self.desc, self.n = total, desc, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        if self.enabled:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False,
                                 dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, n: int = 1, note: str = "") -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if note:
                self._bar.set_postfix_str(note[:40], refresh=False)
        elif self.enabled:
            print(f"\r\033[K{self.desc}: {self.n}/{self.total} {note[:40]}", end="",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Ticker:
    """While a long call runs (compiling kernels), say so: elapsed seconds and
    the JIT compilations so far, every second on a terminal, every 10 s otherwise."""

    def __init__(self, what: str, stream=None, quiet_below: float = 1.0):
        self.what, self.stream, self.quiet_below = what, stream or sys.stderr, quiet_below
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.printed = False

    def _loop(self):
        from ..runtime.stats import stats
        tty = self.stream.isatty()
        t0 = time.perf_counter()
        start = stats().get("numba_compiles", 0)
        every = 1.0 if tty else 10.0
        wait = self.quiet_below
        while not self._stop.wait(wait):
            n = stats().get("numba_compiles", 0) - start
            msg = (f"{self.what}: {time.perf_counter() - t0:.0f} s, {n} kernels compiled so far "
                   f"(a cold Numba cache: once; they are cached for the next run)")
            if tty:
                print(f"\r\033[K{msg}", end="", file=self.stream, flush=True)
            else:
                print(msg, file=self.stream, flush=True)
            self.printed = True
            wait = every

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.printed and self.stream.isatty():
            print("\r\033[K", end="", file=self.stream, flush=True)


# ---- models and inputs ----------------------------------------------------------------------

@dataclass
class LoadedModel:
    path: str                     # the ONNX file
    graph: object                 # pyinfer.Graph
    is_minilm: bool = False
    seconds: dict = field(default_factory=dict)


def is_minilm(model: Optional[str]) -> bool:
    return model is None or model in MINILM_ALIASES


def resolve(model: Optional[str], progress: Optional[Callable[[str], None]] = None) -> str:
    """The ONNX file a MODEL argument names: a path, or "minilm" (or nothing)
    for the cached all-MiniLM-L6-v2 graph (built on first use)."""
    if is_minilm(model):
        from . import minilm
        return str(minilm.onnx_path(progress))
    if not os.path.isfile(model):
        raise FileNotFoundError(f"model '{model}': no such file (a path to an .onnx file, or "
                                f"'minilm' for the built-in all-MiniLM-L6-v2)")
    return model


def load(model: Optional[str], progress=None) -> LoadedModel:
    import pyinfer
    t0 = time.perf_counter()
    path = resolve(model, progress)
    t1 = time.perf_counter()
    graph = pyinfer.load(path)
    t2 = time.perf_counter()
    return LoadedModel(path, graph, is_minilm(model),
                       {"resolve": t1 - t0, "import": t2 - t1})


def parse_input_args(items) -> dict:
    """``["name=file.npy", ...]`` -> {name: array}."""
    out = {}
    for item in items or ():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--input expected NAME=FILE.npy, received {item!r}")
        out[name] = np.load(path, allow_pickle=False)
    return out


def symbol_dims(graph, batch: int, seq: int) -> dict:
    """Values for the graph inputs' symbolic dims: one met first on axis 0 is
    the batch, any other one the sequence."""
    dims = {}
    for v in graph.inputs:
        for axis, d in enumerate(v.shape):
            if isinstance(d, str) and d not in dims:
                dims[d] = batch if axis == 0 else seq
    return dims


def make_inputs(loaded: LoadedModel, given: dict, batch: int, seq: int, seed: int = 0) -> dict:
    """The inputs to run with: ``given`` ones, the rest random of the model's
    shapes (``pyinfer.check.random_inputs``); MiniLM gets real sentences,
    tokenized and padded to ``seq``."""
    from ..check import random_inputs
    from ..errors import ShapeError
    names = [v.name for v in loaded.graph.inputs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ShapeError(f"--input: the model has inputs {names}, received unknown {unknown}")
    specs = [(v.name, v.shape, v.dtype) for v in loaded.graph.inputs if v.name not in given]
    feeds = dict(given)
    if loaded.is_minilm and specs:
        from . import minilm
        text = [minilm.SENTENCES[i % len(minilm.SENTENCES)] for i in range(batch)]
        tokens = minilm.tokenize(text, pad_to=seq)
        feeds.update({n: tokens[n] for n, _, _ in specs if n in tokens})
        specs = [s for s in specs if s[0] not in feeds]
    feeds.update(random_inputs(specs, symbol_dims(loaded.graph, batch, seq), seed))
    for v in loaded.graph.inputs:
        if feeds[v.name].dtype != v.dtype:
            feeds[v.name] = feeds[v.name].astype(v.dtype)
    return {n: feeds[n] for n in names}


def describe(arrays: dict) -> str:
    return ", ".join(f"{k} {'x'.join(map(str, np.shape(v))) or 'scalar'} {np.asarray(v).dtype}"
                     for k, v in arrays.items())


# ---- timing ---------------------------------------------------------------------------------

def ort_unavailable() -> Optional[str]:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime not installed (pip install onnxruntime)"
    return None


def time_rotating(fns: dict, rounds: int, warmup: int = 2, progress: Optional[Progress] = None,
                  budget_s: Optional[float] = None) -> dict:
    """Per-call seconds of each function, the contenders interleaved in rotating
    order each round (so drift and noise from neighbours hit all alike).
    Stops early after ``budget_s`` if given (at least 3 rounds)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    t_start = time.perf_counter()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t)
        if progress is not None:
            progress.update(1)
        if budget_s is not None and r >= 2 and time.perf_counter() - t_start > budget_s:
            break
    return {n: np.asarray(t) for n, t in times.items()}


def percentiles(t: np.ndarray) -> dict:
    return {"p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "p99": float(np.percentile(t, 99)), "mean": float(t.mean()), "n": int(t.size)}


# ---- roofline -------------------------------------------------------------------------------

_PROFILE_ROW = re.compile(r"^\s*(\d+) (.{40}) +(\S+) (.{9}) (.{8}) +(\S+)%$")


def parse_profile(table: str) -> list:
    """Rows of ``Interpreter.profile``'s table as dicts (kernel, us, gflops, gbs, share)."""
    rows = []
    for line in table.splitlines():
        m = _PROFILE_ROW.match(line)
        if not m:
            continue
        num = [None if not s.strip() else float(s) for s in (m.group(4), m.group(5))]
        rows.append({"index": int(m.group(1)), "kernel": m.group(2).strip(),
                     "us": float(m.group(3)), "gflops": num[0], "gbs": num[1],
                     "share": float(m.group(6)) / 100})
    return rows


def measure_ceilings(threads: int, repeat: int = 5) -> dict:
    """The machine's attainable peaks through pyinfer's own kernels: GFLOP/s of a
    512^3 float32 GEMM and GB/s of a 3 x 32 MiB add (bytes read + written, far
    beyond the caches), best of ``repeat``."""
    from .. import ops
    from ..timing import best_seconds
    rng = np.random.default_rng(0)
    n = 512
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    x = rng.standard_normal(8 << 20, dtype=np.float32)
    y = rng.standard_normal(8 << 20, dtype=np.float32)
    z = np.empty_like(x)

    gemm = best_seconds(lambda: ops.gemm(a, b, out=c), repeat)
    add = best_seconds(lambda: ops.add(x, y, out=z), repeat)
    return {"gflops": 2 * n ** 3 / gemm / 1e9, "gbs": 3 * x.nbytes / add / 1e9,
            "threads": threads}


def roofline_points(rows: list, ceilings: dict) -> list:
    """Each kernel with FLOPs: arithmetic intensity (FLOP/byte = GFLOP/s / GB/s),
    achieved GFLOP/s, and the share of its roof ``min(peak, bandwidth * intensity)``."""
    pts = []
    for r in rows:
        if not r["gflops"] or not r["gbs"]:
            continue
        ai = r["gflops"] / r["gbs"]
        roof = min(ceilings["gflops"], ceilings["gbs"] * ai)
        pts.append({**r, "intensity": ai, "roof": roof, "of_roof": r["gflops"] / roof})
    return pts


def plot_roofline(points: list, ceilings: dict, path: str, title: str) -> None:
    """The roofline picture (needs matplotlib, the ``cli`` extra)."""
    from . import require
    mpl = require("matplotlib", what="the roofline plot (--plot)", extra="cli")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.5))
    peak, bw = ceilings["gflops"], ceilings["gbs"]
    lo = min([p["intensity"] for p in points] + [0.05]) / 2
    hi = max([p["intensity"] for p in points] + [peak / bw * 4]) * 2
    xs = np.geomspace(lo, hi, 200)
    ax.plot(xs, np.minimum(peak, bw * xs), "k-", lw=2,
            label=f"measured roof: {peak:.0f} GFLOP/s, {bw:.1f} GB/s")
    for p in points:
        ax.scatter(p["intensity"], p["gflops"], s=20 + 400 * p["share"], alpha=0.6)
        ax.annotate(f"#{p['index']} {p['kernel'][:24]}", (p["intensity"], p["gflops"]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(title + "  (marker area ~ share of run time)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
