/* Shared by the kernel sources, never by hosts: debug asserts, the current
 * ISA and thread count, and the target attributes that let one portable build
 * carry AVX2 and AVX-512 code (chosen at run time, never -march=native). */
#ifndef PI_INTERNAL_H
#define PI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "pyinfer.h"

#ifdef PI_DEBUG
#include <assert.h>
#define PI_ASSERT(cond) assert(cond)
#else
#define PI_ASSERT(cond) ((void)0)
#endif

#define PI_EXPORT __attribute__((visibility("default")))

#if defined(__x86_64__) || defined(__i386__)
#define PI_X86 1
#define PI_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PI_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#else
#define PI_X86 0
#define PI_TARGET_AVX2
#define PI_TARGET_AVX512
#endif

/* The ISA kernels dispatch on; set at load from cpuid, lowered by pi_set_isa. */
extern int pi_current_isa;
/* Threads for OpenMP regions: one global so every host thread agrees. */
extern int pi_num_threads;

/* ---- how many threads a parallel region is worth (every kernel that forks) ----
 *
 * pyinfer's OpenMP workers sleep between regions (OMP_WAIT_POLICY=PASSIVE, set
 * in pyinfer/backends/_native.py: spinning workers made everything 2-3x slower
 * when one other busy process shared the cores), so every region with more
 * than one thread pays a futex wake of each worker and a join.  Measured by
 * bench/omp_fork_cost.c (bench/thread_rule_bench.py fork) on the 2-vCPU Zen 3
 * KVM guest, 2 threads, medians: an empty region 11-16 us (the worker starts
 * its body 4-10 us after the fork), and a region splitting W us of arithmetic
 * takes W/2 + 16..23 us; a real kernel's halves are less even (memory-bound
 * ones share the cache and memory bandwidth): the block-sparse GEMM at 1 and
 * 2 threads (m = 1, 4, 8: 28 / 39-44, 43 / 44-59, 86-98 / 67-72 us) puts
 * the overhead at 24-30 us.  Two threads therefore win only above about twice
 * that overhead of single-thread work, and a region is worth t threads when
 * each gets at least one fork cost of work:
 *
 *     threads = min(pi_num_threads, units, single_ns / pi_fork_ns), at least 1
 *
 * single_ns is the call's estimated single-thread time from the throughput
 * classes below; units is how many pieces the kernel can split into.  Near
 * the break-even point (single_ns = 2 * fork) both choices take about the
 * same time, so an estimate off by a factor of 1.5 costs at most about a
 * quarter of such a call.
 *
 * pi_fork_ns is PI_FORK_NS unless the environment variable PYINFER_FORK_US
 * says otherwise at load; pi_set_fork_ns changes it (0: always every thread,
 * which the tests use to check that results do not depend on the split). */
#define PI_FORK_NS 25000.0
extern double pi_fork_ns;

/* Single-thread throughput classes (ns per unit, one Zen 3 core with AVX2+FMA,
 * bench/thread_rule_bench.py kernels, the "1t" column): */
/* a packed GEMM-like micro-kernel: per flop (2 per multiply-add), ~50 GFLOP/s */
#define PI_NS_PER_FLOP 0.02
/* streaming loads and stores out of L2/L3: per byte moved, ~40 GB/s */
#define PI_NS_PER_BYTE 0.025
/* a vector exp/erf/tanh (pi_vmath.h) with its loads and stores: per element */
#define PI_NS_PER_TRANSC 0.25

static inline int pi_threads_for(double single_ns, double units)
{
    int nt = pi_num_threads;
    if (units < nt)
        nt = (int)units;
    if (pi_fork_ns > 0 && single_ns < nt * pi_fork_ns)
        nt = (int)(single_ns / pi_fork_ns);
    return nt < 1 ? 1 : nt;
}

#define PI_PTR_ADD(p, bytes) ((void *)((char *)(p) + (bytes)))
#define PI_CPTR_ADD(p, bytes) ((const void *)((const char *)(p) + (bytes)))

#endif
