"""``python -m pyinfer`` (or ``pyinfer``): what this install can do, and how fast.

    pyinfer info                      version, ISA, threads, BLAS, backends and their ops
    pyinfer bench [--quick] [--threads N] [--peers numpy,onnxruntime,...]
                  [--cases gemm,softmax] [--markdown] [--json PATH]

``bench`` times pyinfer.testing.BENCH_CASES against NumPy and ONNX Runtime in
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyinfer", description="pyinfer: inference kernels in C and Numba.")
    sub = p.add_subparsers(dest="command", metavar="{info,bench}", required=True)
    sub.add_parser("info", help="version, ISA, threads, BLAS and backends",
                   description="Print what this install of pyinfer can use and why not.")
    b = sub.add_parser(
        "bench", help="time the main kernels against NumPy and ONNX Runtime",
        description="Time pyinfer.testing.BENCH_CASES against NumPy and the peers, in one run. "
                    "Ratios are peer time / pyinfer time: above 1 means pyinfer is faster.")
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
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from_command_line = argv is None
    args = _parser().parse_args(argv)
    if args.command == "info":
        return cmd_info()
    if args.command == "bench":
        if from_command_line and not (args.smoke or args.keep_openblas_env):
            _reexec_without_openblas_env()
        return cmd_bench(args)
    return 2  # unreachable: argparse exits 2 on an unknown command


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


if __name__ == "__main__":
    sys.exit(main())
