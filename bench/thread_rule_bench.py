"""How many threads a C kernel call is worth: the data behind ``pi_threads_for``
(csrc/pi_internal.h).

    python bench/thread_rule_bench.py fork [--busy]      # cost of one parallel region
    python bench/thread_rule_bench.py kernels [--rounds 31] [--busy] [--eager]

``fork`` builds bench/omp_fork_cost.c with the system compiler and runs it under the
wait policy pyinfer uses (OMP_WAIT_POLICY=PASSIVE) and under a few short bounded
spins (GOMP_SPINCOUNT), printing the median, p10 and p90 of an empty 2-thread
region after the worker slept ~1 ms, back-to-back, and of a region splitting
5..160 us of arithmetic; ``--busy`` runs a competing busy process beside it (one
``while 1: pass``, the situation that made spinning 2-3x slower).

``kernels`` times C kernel calls at small and medium shapes under three thread
choices, interleaved round by round (the order rotating), medians per call:

- ``1t``: one thread (``pyinfer.set_num_threads(1)``);
- ``2t``: two threads whatever the size (the fork threshold set to 0);
- ``rule``: two threads allowed, ``pi_threads_for`` deciding (the default).

The kernel is called as the registry holds it (what an eager op calls once
validation and selection are done, and what a plan step calls), so the Python
overhead around the call (about 50 us for an eager op here) does not drown
the difference; ``--eager`` times the whole eager op instead.  ``rule/best`` is
the rule's median over the better fixed choice's: 1.00 is the best any fixed
choice could do; above 1 by more than noise is a miss.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import pyinfer
from pyinfer import ops, registry, threads

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- fork cost ------------------------------------------------------------------

def _busy():
    return subprocess.Popen([sys.executable, "-c", "while 1: pass"])


def fork_costs(busy: bool) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("fork: no C compiler on PATH")
    exe = os.path.join(tempfile.mkdtemp(prefix="pyinfer_fork_"), "fork")
    subprocess.run([cc, "-O2", "-fopenmp", "-o", exe, os.path.join(HERE, "omp_fork_cost.c")],
                   check=True)
    policies = [("PASSIVE (pyinfer)", {"OMP_WAIT_POLICY": "PASSIVE"})]
    for spins in (1000, 3000, 10000, 30000):
        policies.append((f"GOMP_SPINCOUNT={spins}", {"GOMP_SPINCOUNT": str(spins)}))
    rows, names = {}, []
    competitor = _busy() if busy else None
    try:
        for label, env in policies:
            base = {k: v for k, v in os.environ.items()
                    if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            out = subprocess.run([exe], env={**base, **env}, check=True, capture_output=True,
                                 text=True, timeout=300).stdout
            for line in out.splitlines():
                case, med, p10, p90 = line.split()
                if case not in names:
                    names.append(case)
                rows.setdefault(case, {})[label] = f"{float(med):.1f} ({float(p10):.1f}-{float(p90):.1f})"
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    labels = [p[0] for p in policies]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{'one busy competitor' if busy else 'no competitor'}, load {os.getloadavg()[0]:.1f}")
    print("median us (p10-p90), 2 threads unless _1t")
    print("| case | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for case in names:
        print(f"| {case} | " + " | ".join(rows[case].get(l, "-") for l in labels) + " |")


# ---- kernels ----------------------------------------------------------------------

def _direct(eager):
    """The registry kernel call that ``eager()`` makes, ready to repeat without
    the eager op's validation and selection."""
    seen = []
    select = registry.select

    def spy(op, backend, *args, **attrs):
        kern = select(op, backend, *args, **attrs)
        seen.append((kern, args, attrs))
        return kern

    registry.select = spy
    try:
        eager()
    finally:
        registry.select = select
    kern, args, attrs = seen[-1]
    return lambda: kern.fn(*args, **attrs)


def cases():
    rng = np.random.default_rng(0)

    def f(*s):
        return rng.standard_normal(s).astype(np.float32)

    out = []

    def add(name, units, eager):
        out.append((name, units, eager))

    for m, n, k in ((8, 64, 64), (16, 128, 128), (32, 256, 256), (64, 256, 256),
                    (128, 384, 384), (128, 512, 512)):
        a, b = f(m, k), f(k, n)
        add(f"gemm {m}x{n}x{k}", f"{2*m*n*k/1e6:.2f} Mflop",
            lambda a=a, b=b: ops.gemm(a, b, backend="c"))
    w = f(768, 3072)
    keep = np.kron(rng.random((768, 3072 // 16)) < 0.1, np.ones((1, 16))).astype(np.float32)
    wb = ops.to_bsr(w * keep, (1, 16))
    for m in (1, 2, 4, 8, 16):
        x = f(m, 768)
        add(f"sparse 768x3072 90% 1x16 m={m}", f"{m * wb.data.size / 1e3:.0f} kMAC",
            lambda x=x: ops.sparse_gemm(x, wb, backend="c"))
    for n in (4096, 16384, 65536, 262144, 1 << 20):
        x, y = f(n), f(n)
        add(f"add f32 {n}", f"{12 * n / 1e3:.0f} kB", lambda x=x, y=y: ops.add(x, y, backend="c"))
    for n in (1024, 4096, 16384, 65536):
        x = f(n)
        add(f"exp f32 {n}", f"{n / 1e3:.0f} k", lambda x=x: ops.exp(x, backend="c"))
        add(f"gelu f32 {n}", f"{n / 1e3:.0f} k", lambda x=x: ops.gelu(x, backend="c"))
    for shape in ((12, 1, 128), (12, 32, 32), (12, 128, 128), (128, 512)):
        x = f(*shape)
        add(f"softmax {'x'.join(map(str, shape))}", f"{x.size / 1e3:.0f} k",
            lambda x=x: ops.softmax(x, backend="c"))
    for rows, cols in ((1, 384), (8, 384), (32, 384), (128, 384), (128, 768)):
        x = f(rows, cols)
        add(f"layer_norm {rows}x{cols}", f"{x.size / 1e3:.0f} k",
            lambda x=x: ops.layer_norm(x, backend="c"))
    for sq, sk in ((1, 128), (16, 16), (32, 32), (64, 64), (128, 128)):
        q, kv = f(1, 12, sq, 64), f(1, 12, sk, 64)
        add(f"attention 12 heads {sq}x{sk}x64", f"{12 * sq * sk * 128 / 1e6:.2f} MMAC",
            lambda q=q, kv=kv: ops.attention(q, kv, kv, backend="c"))
    for c, hw in ((16, 14), (64, 28), (64, 56)):
        x = f(1, c, hw, hw)
        add(f"max_pool 3x3/2 {c}x{hw}x{hw}", f"{c * hw * hw / 1e3:.0f} k",
            lambda x=x: ops.max_pool2d(x, (3, 3), (2, 2), 1, backend="c"))
        add(f"global_avg_pool {c}x{hw}x{hw}", f"{c * hw * hw / 1e3:.0f} k",
            lambda x=x: ops.global_avg_pool(x, backend="c"))
    for c, hw in ((16, 14), (32, 28), (64, 28), (64, 56)):
        x, wc = f(1, c, hw, hw), f(c, c, 3, 3)
        add(f"conv 3x3 {c}->{c} {hw}x{hw}", f"{2 * c * c * 9 * hw * hw / 1e6:.1f} Mflop",
            lambda x=x, wc=wc: ops.conv2d(x, wc, padding=1, backend="c"))
        wd = f(c, 1, 3, 3)
        add(f"dwconv 3x3 {c} {hw}x{hw}", f"{c * 9 * hw * hw / 1e3:.0f} kMAC",
            lambda x=x, wd=wd, c=c: ops.conv2d(x, wd, padding=1, groups=c, backend="c"))
    return out


class Choice:
    """One thread choice: a budget and a fork threshold, set around each block."""

    def __init__(self, name, n, fork_ns):
        self.name, self.n, self.fork_ns = name, n, fork_ns

    def __enter__(self):
        self.before = (threads.get_num_threads(), threads.fork_ns())
        threads.set_num_threads(self.n)
        if self.fork_ns is not None:
            threads.set_fork_ns(self.fork_ns)

    def __exit__(self, *exc):
        threads.set_num_threads(self.before[0])
        threads.set_fork_ns(self.before[1])


def time_kernels(rounds: int, eager: bool, busy: bool, only: str | None) -> None:
    default_ns = threads.fork_ns()
    choices = [Choice("1t", 1, None), Choice("2t", 2, 0.0), Choice("rule", 2, default_ns)]
    competitor = _busy() if busy else None
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{'one busy competitor, ' if busy else ''}{'eager op' if eager else 'kernel call'}, "
          f"fork threshold {default_ns / 1e3:.0f} us, {rounds} rounds, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| case | work | 1t us | 2t us | rule us | rule/best |")
    print("|---|---|---:|---:|---:|---:|")
    worst = []
    try:
        for name, units, call in cases():
            if only and only not in name:
                continue
            fn = call if eager else _direct(call)
            # calls per timed block: about 2 ms of work, at least one
            with choices[0]:
                fn()
                t0 = time.perf_counter()
                fn()
                one = time.perf_counter() - t0
            number = max(1, min(200, int(2e-3 / max(one, 1e-7))))
            samples = {c.name: [] for c in choices}
            for r in range(rounds):
                for j in range(len(choices)):
                    c = choices[(r + j) % len(choices)]
                    with c:
                        fn()
                        t0 = time.perf_counter()
                        for _ in range(number):
                            fn()
                        samples[c.name].append((time.perf_counter() - t0) / number)
            med = {k: float(np.median(v)) * 1e6 for k, v in samples.items()}
            ratio = med["rule"] / min(med["1t"], med["2t"])
            worst.append((ratio, name))
            print(f"| {name} | {units} | {med['1t']:.1f} | {med['2t']:.1f} | {med['rule']:.1f} "
                  f"| {ratio:.2f} |", flush=True)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    worst.sort(reverse=True)
    print("worst rule/best: " + ", ".join(f"{r:.2f} {n}" for r, n in worst[:5]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("fork", "kernels"))
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--busy", action="store_true", help="one competing busy process")
    ap.add_argument("--eager", action="store_true", help="time the eager op, not the kernel call")
    ap.add_argument("--only", help="cases whose name contains this")
    opts = ap.parse_args()
    if opts.what == "fork":
        fork_costs(opts.busy)
    else:
        if threads.cpu_count() < 2:
            sys.exit("kernels: needs 2 usable cores")
        time_kernels(opts.rounds, opts.eager, opts.busy, opts.only)


if __name__ == "__main__":
    main()
