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

    med = {k: float(np.median(v)) for k, v in rows.items()}
    spread = {k: (min(v), max(v)) for k, v in rows.items()}
    cffi_ratio = med["gemm_c"] / med["gemm_cffi"]
    gemm_ratio = med["gemm_c"] / med["gemm_py"]
    run_ratio = med["run_c"] / med["run_py"]

    def cell(key):
        return f"{med[key]:.1f} us ({spread[key][0]:.0f}-{spread[key][1]:.0f})"

    lines = [
        f"threads {threads}, {args.rounds} alternating rounds; medians of per-round medians "
        f"(min-max over rounds)",
        "",
        "| case | from C | from Python | C / Python | target |",
        "| --- | --- | --- | --- | --- |",
        f"| f32 GEMM 256^3: kernel_demo vs cffi lib.pi_f32_gemm | {cell('gemm_c')} | "
        f"{cell('gemm_cffi')} | {cffi_ratio:.3f} | 0.95-1.05: "
        f"{'met' if 0.95 <= cffi_ratio <= 1.05 else 'MISSED'} |",
        f"| f32 GEMM 256^3: kernel_demo vs ops.gemm(backend='c') | {cell('gemm_c')} | "
        f"{cell('gemm_py')} | {gemm_ratio:.3f} | 0.95-1.05: "
        f"{'met' if 0.95 <= gemm_ratio <= 1.05 else 'MISSED'} |",
        f"| tiny.onnx: pi_model_run vs Interpreter.run(outputs=) | {cell('run_c')} | "
        f"{cell('run_py')} | {run_ratio:.3f} | <= 1.5: {'met' if run_ratio <= 1.5 else 'MISSED'} |",
    ]
    print("\n".join(lines if args.markdown else [ln for ln in lines if ln]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
