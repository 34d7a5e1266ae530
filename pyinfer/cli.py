"""``python -m pyinfer`` (or ``pyinfer``): run, time, profile, draw and check models;
what this install can do.

    pyinfer run [MODEL.onnx] [--input NAME=FILE.npy ...] [--batch N] [--seq N]
                [--backend B] [--threads N] [--text SENTENCE ...]
                                      no MODEL: embed sentences with all-MiniLM-L6-v2
                                      (the 'models' extra) and print their similarities
    pyinfer bench MODEL [--batch N] [--seq N] [--rounds N] [--threads N]
                                      online (batch 1: p50/p90/p99) and batch (throughput)
                                      latency, ONNX Runtime side by side when installed
    pyinfer bench [--quick] [--threads N] [--peers numpy,onnxruntime,...]
                  [--cases gemm,softmax] [--markdown] [--json PATH]
                                      no MODEL: the kernel table (pyinfer.bench)
    pyinfer profile MODEL [--plot roofline.png]   per-kernel times, GFLOP/s, GB/s, roofline
    pyinfer graph MODEL [--dot out.dot] [--svg out.svg] [--raw]
    pyinfer check MODEL [--reference onnx|numpy] [--rtol R] [--atol A]
                                      first node where pyinfer departs from the reference
    pyinfer info                      version, ISA, threads, BLAS, backends and their ops

MODEL is an ONNX file, or ``minilm`` for the built-in all-MiniLM-L6-v2 graph.
Inputs not given with ``--input`` are random, of the model's shapes: a symbolic
dim on axis 0 takes ``--batch``, any other ``--seq``.

``bench`` (no MODEL) times pyinfer.testing.BENCH_CASES against NumPy and ONNX Runtime in
one run (pyinfer.bench).  Current NumPy is slowed by OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE, so when either is set ``bench`` re-executes itself once
without them (this process only; ``--keep-openblas-env`` opts out) and the
header says which OpenBLAS kernel ran.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional, Sequence

_REEXEC_FLAG = "PYINFER_BENCH_REEXEC"


_BACKENDS = ("auto", "c", "numba", "numpy", "blas")


def _model_options(p: argparse.ArgumentParser, seq_default: Optional[int] = 128,
                   batch_default: int = 1, inputs: bool = True, backend: bool = True) -> None:
    if inputs:
        p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                       help="an input from a .npy file (repeat for several); the others are random")
    p.add_argument("--batch", type=int, default=batch_default, metavar="N",
                   help=f"value of a symbolic batch dim (axis 0) (default {batch_default})")
    p.add_argument("--seq", type=int, default=seq_default, metavar="N",
                   help=f"value of any other symbolic dim (default {seq_default or 128}; "
                        f"MiniLM job: the longest sentence)")
    if backend:
        p.add_argument("--backend", default="auto", choices=_BACKENDS,
                       help="pyinfer backend preferred per node (default auto)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for pyinfer (and ONNX Runtime beside it)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyinfer", description="pyinfer: inference kernels in C and Numba.")
    sub = p.add_subparsers(dest="command", required=True)   # lists every command added below
    r = sub.add_parser(
        "run", help="run a model (none: embed sentences with all-MiniLM-L6-v2)",
        description="Run MODEL.onnx once on the given (or random) inputs and print its outputs "
                    "and latency.  Without MODEL: embed sentences with all-MiniLM-L6-v2 (needs "
                    "the 'models' extra), print their cosine similarities and the latency.")
    r.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="an ONNX file, or 'minilm' (default: the MiniLM sentence-embedding job)")
    _model_options(r, seq_default=None)
    r.add_argument("--text", action="append", default=[], metavar="SENTENCE",
                   help="MiniLM job: a sentence to embed (repeat; default: six built-in ones)")
    r.add_argument("--repeat", type=int, default=20, metavar="N",
                   help="runs after the first, for the median latency (default 20)")
    r.add_argument("--compare", action="store_true",
                   help="also run ONNX Runtime on the same inputs and print the largest difference")
    r.add_argument("--save", metavar="OUT.npz", default=None, help="write the outputs to a .npz file")

    b = sub.add_parser(
        "bench", help="time a model (online and batch) against ONNX Runtime; no MODEL: the kernels",
        description="With MODEL: online mode (batch 1; p50/p90/p99 latency) and batch mode "
                    "(throughput at --batch), ONNX Runtime side by side in the same run.  "
                    "Without MODEL: time pyinfer.testing.BENCH_CASES against NumPy and the peers, "
                    "in one run. Ratios are peer time / pyinfer time: above 1 means pyinfer is faster.")
    b.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="an ONNX file or 'minilm' (omit for the kernel table)")
    b.add_argument("--batch", type=int, default=8, metavar="N",
                   help="MODEL: batch size of the batch mode (default 8)")
    b.add_argument("--seq", type=int, default=128, metavar="N",
                   help="MODEL: value of non-batch symbolic dims (default 128)")
    b.add_argument("--rounds", type=int, default=100, metavar="N",
                   help="MODEL: timed rounds in online mode (batch mode: a fifth, at least 3)")
    b.add_argument("--backend", default="auto", choices=_BACKENDS,
                   help="MODEL: pyinfer backend preferred per node (default auto)")
    b.add_argument("--no-onnxruntime", dest="ort", action="store_false",
                   help="MODEL: do not time ONNX Runtime")
    b.add_argument("--quick", action="store_true", help="fewer rounds (under a minute)")
    b.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for pyinfer and every peer (default: pyinfer's current budget)")
    b.add_argument("--peers", default="numpy,onnxruntime",
                   help="comma-separated peers to compare with: numpy, onnxruntime, torch, numexpr "
                        "(default: numpy,onnxruntime)")
    b.add_argument("--cases", default=None,
                   help="only the cases whose op or label contains one of these comma-separated words")
    b.add_argument("--extra", action="store_true",
                   help="also time pyinfer.testing.EXTRA_BENCH_CASES (gelu, sum, batched matmul, rms_norm)")
    b.add_argument("--backends", dest="per_backend", action="store_true", default=None,
                   help="also time each pyinfer backend separately (default: on unless --quick)")
    b.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    b.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    b.add_argument("--keep-openblas-env", action="store_true",
                   help="do not re-run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    # Tiny shapes, a few rounds: the table's smoke test (tests/test_cli.py).
    b.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)

    pr = sub.add_parser(
        "profile", help="time each kernel of a model; roofline",
        description="Time each kernel of MODEL's plan (Interpreter.profile): median time, GFLOP/s, "
                    "GB/s, share; then each GEMM-like kernel against the ceilings measured here "
                    "(pyinfer's own GEMM and add), and with --plot the roofline picture.")
    pr.add_argument("model", metavar="MODEL", help="an ONNX file, or 'minilm'")
    _model_options(pr, seq_default=128)
    pr.add_argument("--repeat", type=int, default=20, metavar="N", help="timed runs (default 20)")
    pr.add_argument("--plot", metavar="ROOFLINE.png", default=None,
                    help="draw the roofline (needs matplotlib: the 'cli' extra)")

    g = sub.add_parser(
        "graph", help="draw a model's optimized graph (Graphviz dot / svg)",
        description="Write MODEL's graph, as pyinfer runs it (after passes and fusion), in "
                    "Graphviz dot syntax; --svg renders it when Graphviz's 'dot' is installed.")
    g.add_argument("model", metavar="MODEL", help="an ONNX file, or 'minilm'")
    g.add_argument("--dot", metavar="OUT.dot", default=None, help="write dot here (default: stdout)")
    g.add_argument("--svg", metavar="OUT.svg", default=None, help="also render an SVG with 'dot'")
    g.add_argument("--raw", action="store_true", help="the graph as imported, before passes")
    _model_options(g, seq_default=128, inputs=False)

    c = sub.add_parser(
        "check", help="find the first node where pyinfer departs from the reference",
        description="Run MODEL on pyinfer and on a reference (onnx.reference.ReferenceEvaluator, "
                    "or pyinfer's NumPy reference) on the same inputs: the imported graph, each "
                    "node alone on pyinfer's kernels, and the whole optimized plan (pyinfer.check). "
                    "Exit status 1 when anything diverges.")
    c.add_argument("model", metavar="MODEL", help="an ONNX file, or 'minilm'")
    _model_options(c, seq_default=16)
    c.add_argument("--reference", default="onnx", choices=("onnx", "numpy"),
                   help="the golden answer (default onnx)")
    c.add_argument("--rtol", type=float, default=None, help="norm-wise relative tolerance "
                   "(default by dtype: float32 1e-4)")
    c.add_argument("--atol", type=float, default=None, help="absolute tolerance (float32 1e-6)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random inputs")

    sub.add_parser("info", help="version, ISA, threads, BLAS and backends",
                   description="Print what this install of pyinfer can use and why not.")
    from .config import add_cli as add_config_cli  # 'config': flags for C hosts
    add_config_cli(sub)
    from .compress.cli import add_parser as add_compress_cli; add_compress_cli(sub)  # noqa: E702  'compress'
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from_command_line = argv is None
    args = _parser().parse_args(argv)
    if getattr(args, "run_command", None):  # subcommands that bring their own runner
        return args.run_command(args)
    if args.command == "info":
        return cmd_info()
    if args.command == "bench" and args.model is None:
        if from_command_line and not (args.smoke or args.keep_openblas_env):
            _reexec_without_openblas_env()
        return cmd_bench(args)
    commands = {"run": cmd_run, "bench": cmd_bench_model, "profile": cmd_profile,
                "graph": cmd_graph, "check": cmd_check}
    return _guarded(args.command, commands[args.command], args)


def _guarded(name: str, fn, args) -> int:
    """Errors a user can fix (a missing file or extra, a bad input) as one line, status 1/2."""
    from .errors import MissingDependencyError, PyinferError
    for key in ("threads", "batch", "seq", "repeat", "rounds"):
        value = getattr(args, key, None)
        if value is not None and value < 1:
            print(f"pyinfer {name}: --{key} expected an int >= 1, received {value}", file=sys.stderr)
            return 2
    limits = None
    try:
        if getattr(args, "threads", None):
            import pyinfer
            pyinfer.set_num_threads(args.threads)
            # pyinfer's blas backend calls OpenBLAS (through NumPy): the same budget.
            try:
                from threadpoolctl import threadpool_limits
                limits = threadpool_limits(limits=args.threads, user_api="blas")
            except ImportError:
                pass
        return fn(args)
    except MissingDependencyError as exc:
        print(f"pyinfer {name}: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, PyinferError, ValueError) as exc:
        print(f"pyinfer {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:   # onnx itself, for reading a model
        print(f"pyinfer {name}: {exc}; ONNX models need the 'onnx' package "
              f"(pip install onnx, or the 'models' extra)", file=sys.stderr)
        return 1
    finally:
        if limits is not None:
            limits.restore_original_limits()


# ---- info --------------------------------------------------------------------

def cmd_info() -> int:
    import numpy as np

    import pyinfer
    from pyinfer import bench, registry
    from pyinfer.threads import cpu_count

    out = print
    out(f"pyinfer {pyinfer.__version__}  (python {sys.version.split()[0]}, numpy {np.__version__})")
    out(f"machine: {bench.cpu_model()}, {os.cpu_count()} cores ({cpu_count()} usable)")
    chosen, detected = bench.isa_info()
    if chosen is None:
        out(f"ISA: none, the C kernels are not loaded: {detected}")
    else:
        out(f"ISA: {chosen} (C kernels' choice; detected: {detected})")
    out(f"threads: {pyinfer.get_num_threads()} (of {cpu_count()} usable cores)")
    try:
        import numba
        out(f"numba: {numba.__version__}, pool of {numba.config.NUMBA_NUM_THREADS} threads "
            f"(threading layer: {numba.config.THREADING_LAYER})")
    except Exception as exc:
        out(f"numba: not importable ({type(exc).__name__}: {exc})")
    try:
        import threadpoolctl
        out(f"threadpoolctl {threadpoolctl.__version__}:")
        for i in threadpoolctl.threadpool_info():
            extra = f" kernel={i['architecture']}" if i.get("architecture") else ""
            out(f"  {i.get('user_api')}/{i.get('internal_api')} {i.get('version') or ''}{extra} "
                f"threads={i.get('num_threads')}  {i.get('filepath')}")
    except ImportError:
        out("threadpoolctl: not installed (pip install threadpoolctl)")
    env = [f"{k}={os.environ[k]}" for k in bench.OPENBLAS_ENV if k in os.environ]
    if env:
        out(f"  note: {', '.join(env)} set; this slows NumPy's OpenBLAS ('bench' runs without them)")
    out("backends:")
    for backend in registry.BACKENDS:
        why = registry.unavailable_reason(backend)
        ops = [op for op in registry.ops() if backend in registry.kernels(op)]
        state = "available" if why is None else f"unavailable: {why}"
        out(f"  {backend:<6} {state}")
        out(f"         {len(ops)} ops" + (f": {', '.join(ops)}" if ops else ""))
    return 0


# ---- bench -------------------------------------------------------------------

def _reexec_without_openblas_env() -> None:
    """Run this command again without the OpenBLAS overrides (once)."""
    from pyinfer.bench import OPENBLAS_ENV
    present = [k for k in OPENBLAS_ENV if k in os.environ]
    if not present or os.environ.get(_REEXEC_FLAG):
        return
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_ENV}
    env[_REEXEC_FLAG] = ",".join(f"{k}={os.environ[k]}" for k in present)
    print(f"pyinfer bench: re-running without {', '.join(present)} "
          f"(they slow NumPy's OpenBLAS; --keep-openblas-env keeps them)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pyinfer"] + sys.argv[1:], env)


def cmd_bench(args) -> int:
    import pyinfer
    from pyinfer import bench, peers as _peers

    if args.threads is not None:
        if args.threads < 1:
            print(f"pyinfer bench: --threads expected an int >= 1, received {args.threads}",
                  file=sys.stderr)
            return 2
        pyinfer.set_num_threads(args.threads)
    threads = pyinfer.get_num_threads()
    peer_names = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peer_names if p not in _peers.PEERS]
    if unknown:
        print(f"pyinfer bench: unknown peer(s) {unknown}; known: {', '.join(_peers.PEERS)}",
              file=sys.stderr)
        return 2
    cases = bench.all_cases() if args.extra else bench.BENCH_CASES
    cases = bench.select_cases(cases, args.cases)
    if not cases:
        print(f"pyinfer bench: no case matches --cases {args.cases!r}", file=sys.stderr)
        return 2
    if args.smoke:
        cases = [bench.shrink(c) for c in cases]
        timer = bench.SMOKE
    else:
        timer = bench.QUICK if args.quick else bench.FULL
    per_backend = (not args.quick and not args.smoke) if args.per_backend is None else args.per_backend

    # Peers get the same thread budget: OpenBLAS (NumPy) through threadpoolctl,
    # ONNX Runtime through intra_op_num_threads, torch/numexpr through their setters.
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        limits = None
    missing = {p: _peers.why_unavailable(p) for p in peer_names}
    info = bench.machine_info(threads)
    started = time.perf_counter()
    progress = None
    if sys.stderr.isatty():
        def progress(msg):
            print(f"\r\033[K  measuring {msg}", end="", file=sys.stderr, flush=True)
    try:
        rows = bench.run_table(cases, peer_names, timer, threads, per_backend, progress)
    finally:
        if progress:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
        if limits is not None:
            limits.restore_original_limits()
    elapsed = time.perf_counter() - started

    reexec = os.environ.get(_REEXEC_FLAG)
    mode = "smoke (tiny shapes)" if args.smoke else ("quick" if args.quick else "full")
    say = print
    say(f"pyinfer {info['pyinfer']} bench ({mode}), {info['date']}")
    say(f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable); "
        f"{info['platform']}; python {info['python']}, numpy {info['numpy']}")
    isa = info["isa"] or "none (C kernels not loaded)"
    say(f"pyinfer: C ISA {isa} (detected {info['isa_detected'] if info['isa'] else '-'}), "
        f"threads {threads}")
    say(f"BLAS: {info['blas']}" + (f"  [re-run without {reexec}]" if reexec else ""))
    for p in peer_names:
        if p == "numpy":
            continue
        if missing[p]:
            say(f"{p}: {missing[p]}")
        else:
            detail = ", intra_op_num_threads=%d, sequential" % threads if p == "onnxruntime" else \
                f", {threads} threads"
            say(f"{p} {_peers.version(p)}{detail}")
    say(f"timing: median per call over {timer.min_rounds}+ rounds after warm-up (3+ for a very "
        f"slow call), contenders in rotating sweeps; ± = interquartile range / median; "
        f"1st call timed separately")
    say("")
    say(bench.format_table(rows, peer_names, args.markdown))
    if per_backend:
        say("")
        say(bench.format_backend_table(rows, args.markdown))
    say("")
    say("xPEER = PEER time / pyinfer time (above 1: pyinfer is faster). pyinfer = backend=None, "
        "'via' = the backend it chose. check = pyinfer's result against NumPy's formula.")
    if "numpy" in peer_names:
        say("NumPy formulas: gemm a@b (+bias, +GELU in tanh form), softmax via exp(x-max)/sum, "
            "layer_norm (x-mean)/sqrt(var+eps)*w+b, add a+b.")
    if "onnxruntime" in peer_names and not missing["onnxruntime"]:
        say("ONNX Runtime: one-node graphs (MatMul+Add+Gelu for the fused GEMM, erf-form Gelu), "
            "every operand a graph input.")
    for line in bench.notes(rows):
        say(f"  n/a: {line}")
    say(f"({len(rows)} cases in {elapsed:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(bench.to_json(rows, info, peer_names), f, indent=1, default=str)
    failed = [r.label for r in rows if "pyinfer" not in r.results or r.check.startswith("WRONG")]
    if failed:
        print(f"pyinfer bench: pyinfer failed or disagreed with NumPy on: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


# ---- run / bench MODEL / profile / graph / check ----------------------------------------------

def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _prepare(loaded, feeds: dict, backend: str):
    """An Interpreter with its plan for these inputs built (kernels compiled)."""
    import pyinfer
    from .models.tools import Ticker
    interp = pyinfer.Interpreter(loaded.graph, backend=backend)
    t = time.perf_counter()
    with Ticker("preparing the plan (first use compiles kernels)"):
        interp.prepare([feeds[v.name].shape for v in loaded.graph.inputs])
    loaded.seconds["plan"] = time.perf_counter() - t
    return interp


def _load(model):
    from .models import tools
    return tools.load(model, progress=_say)


def _latency(run, repeat: int) -> tuple:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t)
    import numpy as np
    return float(np.median(ts)), float(np.percentile(ts, 90))


def cmd_run(args) -> int:
    from .models import tools
    if tools.is_minilm(args.model) and not args.input:
        return _run_minilm(args)
    import numpy as np
    import pyinfer
    loaded = _load(args.model)
    feeds = tools.make_inputs(loaded, tools.parse_input_args(args.input), args.batch,
                              args.seq or tools.DEFAULT_SEQ)
    interp = _prepare(loaded, feeds, args.backend)
    t = time.perf_counter()
    outs = interp.run(feeds)
    first = time.perf_counter() - t
    med, p90 = _latency(lambda: interp.run(feeds), args.repeat)
    sec = loaded.seconds
    print(f"model: {loaded.path} ({len(loaded.graph.nodes)} nodes imported, "
          f"{interp.plan.kernel_count} kernels planned), backend {args.backend}, "
          f"{pyinfer.get_num_threads()} threads")
    print(f"inputs: {tools.describe(feeds)}" + ("" if args.input else "  (random)"))
    print(f"time to first inference {sec['import'] + sec['plan'] + first:.3f} s: import "
          f"{sec['import']:.3f} s, plan+compile {sec['plan']:.3f} s, first run {first:.4f} s")
    print(f"latency: median {_ms(med)}, p90 {_ms(p90)} over {args.repeat} runs")
    print("outputs:")
    named = {}
    for info, o in zip(interp.outputs, outs):
        named[info.name] = o
        flat = np.asarray(o).reshape(-1)
        head = np.array2string(flat[:6], precision=4, separator=", ")
        stats = (f"min {flat.min():.4g}, max {flat.max():.4g}, mean {flat.mean():.4g}"
                 if flat.size and o.dtype.kind in "fiub" else "")
        print(f"  {info.name} {'x'.join(map(str, o.shape)) or 'scalar'} {o.dtype}: {stats}  "
              f"first {head}")
    if args.compare:
        _compare_with_ort(loaded.path, feeds, named, pyinfer.get_num_threads())
    if args.save:
        np.savez(args.save, **named)
        print(f"wrote {args.save}")
    return 0


def _compare_with_ort(path, feeds, named, threads) -> None:
    import numpy as np
    from . import peers
    from .models import tools
    why = tools.ort_unavailable()
    if why:
        print(f"ONNX Runtime: {why}")
        return
    sess = peers.ort_session(path, threads)
    ref = sess.run(list(named), feeds)
    diffs = [float(np.max(np.abs(np.asarray(a, np.float64) - b))) if np.size(b) else 0.0
             for a, b in zip(named.values(), ref)]
    print(f"ONNX Runtime on the same inputs: max abs difference {max(diffs):.3g}")


def _run_minilm(args) -> int:
    import numpy as np
    import pyinfer
    from .models import minilm
    sentences = args.text or list(minilm.SENTENCES)
    t0 = time.perf_counter()
    loaded = _load(None)
    feeds = minilm.tokenize(sentences, pad_to=args.seq)
    interp = _prepare(loaded, feeds, args.backend)
    t = time.perf_counter()
    hidden, vectors = interp.run(feeds)
    first = time.perf_counter() - t
    total = time.perf_counter() - t0
    med, p90 = _latency(lambda: interp.run(feeds), args.repeat)
    sec = loaded.seconds
    b, n = feeds["input_ids"].shape
    print(f"all-MiniLM-L6-v2 on pyinfer (backend {args.backend}, {pyinfer.get_num_threads()} "
          f"threads): {b} sentences, {n} tokens each after padding")
    print(f"time to first inference {total:.3f} s: ONNX graph {sec['resolve']:.3f} s "
          f"({loaded.path}), import {sec['import']:.3f} s, plan+compile {sec['plan']:.3f} s, "
          f"first run {first:.4f} s")
    print(f"latency: median {_ms(med)}, p90 {_ms(p90)} over {args.repeat} runs "
          f"(the batch of {b})")
    print("sentences:")
    for i, text in enumerate(sentences):
        print(f"  [{i}] {text}")
    sim = minilm.similarity(np.asarray(vectors))
    print("cosine similarity:")
    print("      " + "".join(f"{f'[{j}]':>7}" for j in range(b)))
    for i in range(b):
        print(f"  [{i}] " + "".join(f"{sim[i, j]:7.3f}" for j in range(b)))
    if args.compare:
        _compare_with_ort(loaded.path, feeds, {"last_hidden_state": hidden,
                                                "sentence_embedding": vectors},
                          pyinfer.get_num_threads())
    if args.save:
        np.savez(args.save, last_hidden_state=hidden, sentence_embedding=vectors)
        print(f"wrote {args.save}")
    return 0


def cmd_bench_model(args) -> int:
    import numpy as np
    import pyinfer
    from . import peers
    from .models import tools
    threads = pyinfer.get_num_threads()
    loaded = _load(args.model)
    ort_why = tools.ort_unavailable() if args.ort else "not asked for (--no-onnxruntime)"
    modes = [("online", 1, args.rounds), ("batch", args.batch, max(3, args.rounds // 5))]
    if args.batch == 1:
        modes = modes[:1]
    sess = None if ort_why else peers.ort_session(loaded.path, threads)
    rows = []
    started = time.perf_counter()
    for mode, batch, rounds in modes:
        feeds = tools.make_inputs(loaded, {}, batch, args.seq)
        interp = _prepare(loaded, feeds, args.backend)
        fns = {"pyinfer": lambda: interp.run(feeds)}
        check = ""
        if sess is not None:
            names = [o.name for o in interp.outputs]
            fns["onnxruntime"] = lambda: sess.run(names, feeds)
            ours, theirs = interp.run(feeds), sess.run(names, feeds)
            diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - b))) if np.size(b) else 0.0
                       for a, b in zip(ours, theirs))
            check = f"{diff:.1e}"
        with tools.Progress(rounds, f"{mode} batch {batch}") as bar:
            times = tools.time_rotating(fns, rounds, warmup=2, progress=bar)
        stats = {k: tools.percentiles(v) for k, v in times.items()}
        for engine, st in stats.items():
            ratio = (stats["onnxruntime"]["p50"] / st["p50"]) if engine == "pyinfer" and \
                "onnxruntime" in stats else None
            rows.append((mode, batch, engine, st, batch / st["p50"], ratio,
                         check if engine == "pyinfer" else ""))
    elapsed = time.perf_counter() - started
    say = print
    shapes = tools.describe(tools.make_inputs(loaded, {}, 1, args.seq))
    say(f"pyinfer {pyinfer.__version__} bench {loaded.path}, {time.strftime('%Y-%m-%d')}")
    from . import bench as _bench
    say(f"machine: {_bench.cpu_model()}, {os.cpu_count()} cores; pyinfer backend {args.backend}, "
        f"{threads} threads")
    if ort_why:
        say(f"onnxruntime: {ort_why}")
    else:
        import onnxruntime
        say(f"onnxruntime {onnxruntime.__version__}: intra_op_num_threads={threads}, sequential, "
            f"no spinning after a run, same ONNX file")
    say(f"inputs at batch 1: {shapes}")
    say("timing: the engines interleaved in rotating order each round after 2 warm-up runs; "
        "ms per call")
    say("")
    head = ("mode", "batch", "engine", "p50 ms", "p90 ms", "p99 ms", "items/s", "xORT", "max|diff|")
    lines = [head] + [(m, str(bt), e, f"{st['p50'] * 1e3:.2f}", f"{st['p90'] * 1e3:.2f}",
                       f"{st['p99'] * 1e3:.2f}", f"{thr:.1f}",
                       f"{r:.2f}x" if r is not None else "", chk)
                      for m, bt, e, st, thr, r, chk in rows]
    if getattr(args, "markdown", False):
        say("| " + " | ".join(head) + " |")
        say("|" + "---|" * len(head))
        for ln in lines[1:]:
            say("| " + " | ".join(ln) + " |")
    else:
        widths = [max(len(ln[i]) for ln in lines) for i in range(len(head))]
        for ln in lines:
            say("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(ln, widths))).rstrip())
    say("")
    say("xORT = ONNX Runtime p50 / pyinfer p50 (above 1: pyinfer is faster); items/s = batch / p50; "
        "max|diff| = pyinfer vs ONNX Runtime outputs")
    say(f"({len(rows)} rows in {elapsed:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": loaded.path, "threads": threads, "rows": [
                {"mode": m, "batch": bt, "engine": e, **st, "items_per_s": thr, "x_ort": r,
                 "max_diff": chk} for m, bt, e, st, thr, r, chk in rows]}, f, indent=1)
    return 0


def cmd_profile(args) -> int:
    import pyinfer
    from .models import tools
    loaded = _load(args.model)
    feeds = tools.make_inputs(loaded, tools.parse_input_args(args.input), args.batch, args.seq)
    interp = _prepare(loaded, feeds, args.backend)
    table = interp.profile(feeds, repeat=args.repeat)
    threads = pyinfer.get_num_threads()
    print(f"profile of {loaded.path}: {tools.describe(feeds)}; backend {args.backend}, "
          f"{threads} threads, median of {args.repeat} runs per kernel")
    print(table)
    ceilings = tools.measure_ceilings(threads)
    points = tools.roofline_points(tools.parse_profile(table), ceilings)
    print("")
    print(f"measured ceilings ({threads} threads): {ceilings['gflops']:.1f} GFLOP/s "
          f"(pyinfer 512^3 float32 GEMM), {ceilings['gbs']:.1f} GB/s (pyinfer add, 3 x 32 MiB)")
    if points:
        print(f"{'#':>3} {'kernel':40} {'FLOP/byte':>9} {'GFLOP/s':>9} {'roof':>9} {'of roof':>8}")
        for p in sorted(points, key=lambda p: -p["share"]):
            print(f"{p['index']:>3} {p['kernel'][:40]:40} {p['intensity']:9.2f} {p['gflops']:9.1f} "
                  f"{p['roof']:9.1f} {p['of_roof']:8.0%}")
    else:
        print("no kernel reports FLOPs (only GEMM-like kernels do): no roofline points")
    if args.plot:
        tools.plot_roofline(points, ceilings, args.plot,
                            f"{os.path.basename(loaded.path)}, {threads} threads")
        print(f"wrote {args.plot}")
    return 0


def cmd_graph(args) -> int:
    import pyinfer
    import shutil
    import subprocess
    from .models import tools
    loaded = _load(args.model)
    feeds = tools.make_inputs(loaded, {}, args.batch, args.seq)
    interp = pyinfer.Interpreter(loaded.graph, backend=args.backend,
                                 passes="none" if args.raw else None)
    with tools.Ticker("preparing the plan"):
        interp.prepare([feeds[v.name].shape for v in loaded.graph.inputs])
    dot = interp.to_dot()
    if args.dot:
        with open(args.dot, "w") as f:
            f.write(dot + "\n")
        print(f"wrote {args.dot}: {interp.plan.kernel_count} kernels"
              f"{' (before passes)' if args.raw else ''}, {len(interp.plan.graph.nodes)} nodes")
    elif not args.svg:
        print(dot)
    if args.svg:
        exe = shutil.which("dot")
        if exe is None:
            print("pyinfer graph: --svg needs Graphviz's 'dot' on PATH (apt-get install graphviz); "
                  "write --dot and render it elsewhere", file=sys.stderr)
            return 1
        subprocess.run([exe, "-Tsvg", "-o", args.svg], input=dot, text=True, check=True)
        print(f"wrote {args.svg}")
    return 0


def cmd_check(args) -> int:
    from .check import check
    from .models import tools
    loaded = _load(args.model)
    feeds = tools.make_inputs(loaded, tools.parse_input_args(args.input), args.batch, args.seq,
                              seed=args.seed)
    model = loaded.path if args.reference == "onnx" else loaded.graph
    bars = []

    def progress(done, total, name):
        if not bars:
            bars.append(tools.Progress(total, "checking each node on pyinfer's kernels"))
        bars[0].update(done - bars[0].n, name)
    try:
        result = check(model, feeds, backend=args.backend, reference=args.reference,
                       rtol=args.rtol, atol=args.atol, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    print(f"check {loaded.path}")
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
