"""The C ABI's cost: the same work called from C and from Python, in one run.

    python bench/cabi_bench.py [--rounds 7] [--threads N] [--markdown]

1. Kernel: a float32 256^3 GEMM timed in a C loop (examples/c/kernel_demo.c,
   ``bench`` mode, through libpyinfer_kernels.so) against the same kernel timed
   in this process through pyinfer._native: called directly through cffi
   (``lib.pi_f32_gemm``, what the C ABI itself costs) and through
   ``pyinfer.ops.gemm(a, b, out=c, backend="c")`` (adding the ops layer's
   validation and dispatch).  Both libraries link the same object files;
   target: within +-5%.
2. Embedding: ``pi_model_run`` on tiny.onnx (MatMul + Add + Relu, 2x4 -> 2x3)
   timed in C (examples/c/embed_demo.c, ``bench`` mode, through
   libpyinfer_embed.so) against ``Interpreter.run(x, outputs=[y])`` here.
   Target: pi_model_run / Interpreter.run <= 1.5.

Each round runs the C program (which reports the median of its own calls) and
then the Python loop (median of as many calls); rounds alternate so load from
elsewhere hits both alike, and the table gives the median over rounds.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "c")


def _compile(src: str, out: str, flags: list[str]) -> str:
    cmd = [shutil.which("gcc") or "cc", "-std=c99", "-O2", src, "-o", out, *flags, "-pthread"]
    subprocess.run(cmd, check=True)
    return out


def _c_median(cmd: list[str], threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return float(re.search(r"median_us ([0-9.]+)", out).group(1))


def _py_median(fn, reps: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = np.empty(reps)
    for i in range(reps):
        t = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t
    return float(np.median(times)) * 1e6


def main() -> int:
    import onnx

    import pyinfer
    from pyinfer import config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--gemm-reps", type=int, default=200)
    p.add_argument("--run-reps", type=int, default=5000)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    if args.threads:
        pyinfer.set_num_threads(args.threads)
    threads = pyinfer.get_num_threads()

    sys.path.insert(0, EXAMPLES)
    from make_model import tiny_model

    with tempfile.TemporaryDirectory(prefix="pyinfer-cabi-bench-") as tmp:
        kdemo = _compile(os.path.join(EXAMPLES, "kernel_demo.c"), os.path.join(tmp, "kernel_demo"),
                         config.cflags() + config.libs())
        edemo = _compile(os.path.join(EXAMPLES, "embed_demo.c"), os.path.join(tmp, "embed_demo"),
                         config.cflags() + config.libs(embed=True))
        model = os.path.join(tmp, "tiny.onnx")
        onnx.save(tiny_model(), model)

        n = 256
        i = np.arange(n)[:, None]
        j = np.arange(n)[None, :]
        a = ((i * 7 + j * 3) % 17 - 8).astype(np.float32) / np.float32(16)
        b = ((i * 5 + j * 11) % 13 - 6).astype(np.float32) / np.float32(8)
        c = np.empty((n, n), np.float32)
        from pyinfer.backends._native import ffi, lib
        ws_bytes = lib.pi_gemm_workspace_bytes(4, n, n, n)
        ws_buf = np.empty(ws_bytes + 64, np.uint8)
        ws = ffi.cast("void *", ws_buf.ctypes.data + (-ws_buf.ctypes.data) % 64)
        pa, pb, pc = (ffi.cast("float *", x.ctypes.data) for x in (a, b, c))

        def gemm_cffi():
            lib.pi_f32_gemm(1, n, n, n, 1.0, pa, 0, 4 * n, 4, pb, 0, 4 * n, 4, ffi.NULL,
                            ffi.NULL, 0, 0, 0, lib.PI_ACT_NONE, pc, 0, 4 * n, 4, ws, ws_bytes)
        interp = pyinfer.Interpreter(pyinfer.load(model))
        x = ((np.arange(8) * 7 % 17 - 8).astype(np.float32) / np.float32(16)).reshape(2, 4)
        y = np.empty((2, 3), np.float32)

        rows = {"gemm_c": [], "gemm_cffi": [], "gemm_py": [], "run_c": [], "run_py": []}
        for _ in range(args.rounds):
            rows["gemm_c"].append(_c_median([kdemo, "bench", str(n), str(args.gemm_reps)],
                                            threads))
            rows["gemm_cffi"].append(_py_median(gemm_cffi, args.gemm_reps, 3))
            rows["gemm_py"].append(_py_median(
                lambda: pyinfer.ops.gemm(a, b, out=c, backend="c"), args.gemm_reps, 3))
            rows["run_c"].append(_c_median([edemo, model, "bench", str(args.run_reps)], threads))
            rows["run_py"].append(_py_median(lambda: interp.run([x], outputs=[y]),
                                             args.run_reps))
        same_process = _same_process(config, a, b, n, args.gemm_reps * 2)

    rows = {k: np.array(v) for k, v in rows.items()}
    lines = [f"threads {threads}; {args.rounds} rounds, each C then Python back to back; a "
             f"cell is the median over rounds of each side's median (min-max over rounds); "
             f"the ratio is the median of the per-round ratios (interquartile range)", "",
             "| case | from C | from Python | C / Python | target |",
             "| --- | --- | --- | --- | --- |"]

    def row(label, c_key, py_key, lo, hi):
        r = rows[c_key] / rows[py_key]
        q1, q2, q3 = np.percentile(r, [25, 50, 75])
        ok = lo <= q2 <= hi
        cells = [f"{np.median(rows[k]):.1f} us ({rows[k].min():.0f}-{rows[k].max():.0f})"
                 for k in (c_key, py_key)]
        target = f"{lo}-{hi}" if lo > 0 else f"<= {hi}"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {q2:.3f} ({q1:.2f}-{q3:.2f}) | "
                     f"{target}: {'met' if ok else 'MISSED'} |")

    row("f32 GEMM 256^3: kernel_demo vs cffi lib.pi_f32_gemm", "gemm_c", "gemm_cffi", 0.95, 1.05)
    row("f32 GEMM 256^3: kernel_demo vs ops.gemm(backend='c')", "gemm_c", "gemm_py", 0.95, 1.05)
    row("tiny.onnx: pi_model_run vs Interpreter.run(outputs=)", "run_c", "run_py", 0, 1.5)
    so, nat = same_process
    lines += ["", f"Same process, calls alternating one by one ({args.gemm_reps * 2} each): "
                  f"libpyinfer_kernels.so {so:.1f} us, pyinfer._native {nat:.1f} us, "
                  f"ratio {so / nat:.3f}"]
    print("\n".join(lines if args.markdown else [ln for ln in lines if ln]))
    return 0


def _same_process(config, a, b, n, reps):
    """libpyinfer_kernels.so (dlopen'ed through cffi's ABI mode) against
    pyinfer._native on the same buffers, alternating call by call: the two
    libraries without the noise of separate processes."""
    import warnings

    import cffi

    from pyinfer.backends._native import ffi, lib
    kffi = cffi.FFI()
    with open(os.path.join(config.get_include(), "pyinfer.h")) as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        kffi.cdef(f.read())
    klib = kffi.dlopen(os.path.join(config.get_library_dir(), config.KERNELS_LIBRARY))
    klib.pi_set_num_threads(lib.pi_get_num_threads())
    c = np.empty((n, n), np.float32)
    ws_bytes = lib.pi_gemm_workspace_bytes(4, n, n, n)
    ws_buf = np.empty(ws_bytes + 64, np.uint8)
    ws = ws_buf.ctypes.data + (-ws_buf.ctypes.data) % 64
    calls = []
    for f, lb in ((kffi, klib), (ffi, lib)):
        pa, pb, pc = (f.cast("float *", arr.ctypes.data) for arr in (a, b, c))
        w = f.cast("void *", ws)
        calls.append(lambda f=f, lb=lb, pa=pa, pb=pb, pc=pc, w=w: lb.pi_f32_gemm(
            1, n, n, n, 1.0, pa, 0, 4 * n, 4, pb, 0, 4 * n, 4, f.NULL, f.NULL, 0, 0, 0, 0,
            pc, 0, 4 * n, 4, w, ws_bytes))
    times = np.empty((2, reps))
    for r in range(-5, reps):
        for which, call in enumerate(calls):
            t = time.perf_counter()
            call()
            if r >= 0:
                times[which, r] = time.perf_counter() - t
    return tuple(float(np.median(t)) * 1e6 for t in times)


if __name__ == "__main__":
    sys.exit(main())
