/* How close the AVX2 7-bit u8 x s8 GEMM runs to what its instructions allow
 * (issue 9): three measurements in one process, in rotating blocks, each
 * quoted against the first.
 *
 *   probe        12 x (vpmaddubsw, vpmaddwd by ones, vpaddd) on registers, no
 *                loads: the instruction mix of one k-group of the 4x24 tile,
 *                with nothing else (Zen 3: 2 multiply pipes, 2 multiplies per
 *                32 MACs, so at best 32 MACs a cycle)
 *   ukernel      pi_u8s8_gemm_4x24k4w7__avx2 alone on one L1-resident packed
 *                panel pair, called as often as the GEMM calls it (S32 and F32
 *                epilogues), and its cost per call against k (the intercept
 *                is the per-tile cost: epilogue, call, loop fill and drain)
 *   whole call   pi_u8s8_gemm, one thread, S32 out (A packing, the driver,
 *                B slivers from L2/L3, C to memory)
 *
 * Build and run from the repository root (not part of the extension build):
 *   gcc -O3 -fopenmp -Icsrc bench/qgemm_peak.c csrc/pi_qgemm.c csrc/pi_qgemm_avx2.c \
 *       csrc/pi_qgemm_avx512.c csrc/pi_qgemm_portable.c csrc/pi_dispatch.c -lm -o /tmp/qgemm_peak
 *   /tmp/qgemm_peak 128 384 1536
 * On the shared 2-core machine other processes move every number: compare
 * the percentages of one run, and run it more than once.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "pyinfer.h"
#include "pi_internal.h"
#include "pi_qgemm_ukernels.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds for n iterations of one 4x24 k-group's instructions (384 MACs). */
__attribute__((target("avx2"))) static double probe(long n)
{
    double t0 = now();
    __asm__ volatile(
        "vpcmpeqw %%ymm15, %%ymm15, %%ymm15\n\t"
        "vpsrlw $15, %%ymm15, %%ymm15\n\t"
        "vpxor %%ymm13, %%ymm13, %%ymm13\n\t"
        "vpxor %%ymm12, %%ymm12, %%ymm12\n\t"
        "1:\n\t"
#define P_(x) "vpmaddubsw %%ymm12, %%ymm13, %%ymm14\n\t" \
              "vpmaddwd %%ymm15, %%ymm14, %%ymm14\n\t"   \
              "vpaddd %%ymm14, %%ymm" #x ", %%ymm" #x "\n\t"
        P_(0) P_(1) P_(2) P_(3) P_(4) P_(5) P_(6) P_(7) P_(8) P_(9) P_(10) P_(11)
#undef P_
        "decq %0\n\t"
        "jnz 1b\n\t"
        "vzeroupper\n\t"
        : "+r"(n)
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
    return now() - t0;
}

enum { ROUNDS = 30, BLOCKS = 6 };

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s M K N\n", argv[0]);
        return 2;
    }
    const long m = atol(argv[1]), k = atol(argv[2]), n = atol(argv[3]);
    if (m < 4 || k < 4 || n < 24) {
        fprintf(stderr, "M >= 4, K >= 4, N >= 24\n");
        return 2;
    }
    if (pi_isa() < PI_ISA_AVX2) {
        fprintf(stderr, "needs AVX2\n");
        return 2;
    }
    pi_set_num_threads(1);
    int uk = -1;
    for (int i = 0;; i++) {
        int isa, mr, nr, ku, es;
        const char *name;
        if (pi_u8s8_gemm_ukernel_info(i, &isa, &mr, &nr, &ku, &es, &name) != PI_OK)
            break;
        if (pi_u8s8_gemm_ukernel_weight_bits(i) == 7 && isa == 1 && mr == 4 && nr == 24)
            uk = i;
    }
    if (uk < 0) {
        fprintf(stderr, "no 4x24 w7 AVX2 kernel in the list\n");
        return 1;
    }
    const double mac = (double)m * n * k;
    const long kg = (k + 3) / 4;
    unsigned char *a = malloc((size_t)(m * k));
    signed char *b = malloc((size_t)(k * n));
    srand(1);
    for (long i = 0; i < m * k; i++) a[i] = (unsigned char)(rand() & 255);
    for (long i = 0; i < k * n; i++) b[i] = (signed char)(rand() % 129 - 64);
    const pi_index pbytes = pi_u8s8_packed_b_bytes(uk, k, n);
    char *pb = aligned_alloc(64, (size_t)((pbytes + 63) / 64 * 64));
    if (pi_u8s8_pack_b(uk, k, n, b, n, 1, NULL, pb, pbytes) != PI_OK) {
        fprintf(stderr, "packing failed\n");
        return 1;
    }
    const pi_index wsb = pi_u8s8_gemm_workspace_bytes(pb, m);
    void *ws = aligned_alloc(64, (size_t)((wsb + 63) / 64 * 64));
    int *c = aligned_alloc(64, (size_t)((m * n * 4 + 63) / 64 * 64));

    /* One packed A panel and the first B sliver, reused by every call. */
    unsigned char *ap = aligned_alloc(64, (size_t)((16 * kg + 63) / 64 * 64));
    for (long i = 0; i < 16 * kg; i++) ap[i] = (unsigned char)rand();
    const int *sliver = (const int *)(pb + PI_QGEMM_PACKED_HEADER);
    int rowsum[4] = {1, 2, 3, 4};
    float scale[24];
    for (int j = 0; j < 24; j++) scale[j] = 1e-3f;
    pi_qgemm_epi ep = {0};
    ep.a_zero = 7;
    ep.rowsum = rowsum;
    ep.b_zero = sliver;
    ep.b_corr = sliver + 24;
    ep.scale = scale;
    float tile[4 * 24];
    const long tiles = m * ((n + 23) / 24) / 4;

    enum { NC = 4 };
    const char *names[NC] = {"probe", "ukernel S32", "ukernel F32", "whole call S32"};
    static double t[NC][BLOCKS * ROUNDS];
    int cnt[NC] = {0};
    for (int blk = 0; blk < BLOCKS; blk++)
        for (int w = 0; w < NC; w++)
            for (int r = -2; r < ROUNDS; r++) {
                const double t0 = now();
                if (w == 0) {
                    probe((long)(mac / 384));
                } else if (w < 3) {
                    ep.kind = w == 1 ? PI_QOUT_S32 : PI_QOUT_F32;
                    for (long i = 0; i < tiles; i++)
                        pi_u8s8_gemm_4x24k4w7__avx2(4, kg, ap, sliver + 48, tile, 96, &ep);
                } else if (pi_u8s8_gemm(m, n, k, a, k, 1, 7, pb, PI_QOUT_S32, NULL, NULL, 0, 1.0f,
                                        0, c, n * 4, 4, ws, wsb) != PI_OK) {
                    fprintf(stderr, "gemm failed\n");
                    return 1;
                }
                const double d = now() - t0;
                if (r >= 0)
                    t[w][cnt[w]++] = d;
            }
    double probe_med = 0;
    for (int w = 0; w < NC; w++) {
        qsort(t[w], (size_t)cnt[w], sizeof(double), cmp);
        const double med = t[w][cnt[w] / 2];
        if (w == 0)
            probe_med = med;
        printf("%ldx%ldx%ld %-15s median %.3f ms  %5.1f GMAC/s  %3.0f%% of the probe  (best %.3f ms)\n",
               m, k, n, names[w], med * 1e3, mac / med / 1e9, 100 * probe_med / med, t[w][0] * 1e3);
    }

    /* Per-call cost against k: best of 15 rotating repetitions. */
    const long kgs[] = {8, 24, 48, 96, 192, 384};
    enum { NK = sizeof kgs / sizeof kgs[0] };
    long maxkg = kgs[NK - 1];
    unsigned char *ap2 = aligned_alloc(64, (size_t)(16 * maxkg));
    signed char *bp2 = aligned_alloc(64, (size_t)(96 * maxkg));
    for (long i = 0; i < 16 * maxkg; i++) ap2[i] = (unsigned char)rand();
    for (long i = 0; i < 96 * maxkg; i++) bp2[i] = (signed char)(rand() % 129 - 64);
    int zeros[24] = {0};
    ep.kind = PI_QOUT_F32;
    ep.b_zero = zeros;
    ep.b_corr = zeros;
    double best[NK], pbest = 1e9;
    for (int i = 0; i < NK; i++) best[i] = 1e9;
    for (int rep = 0; rep < 15; rep++) {
        const double d = probe(100000);
        pbest = d < pbest ? d : pbest;
        for (int i = 0; i < NK; i++) {
            const long calls = 2000000 / kgs[i];
            const double t0 = now();
            for (long r = 0; r < calls; r++)
                pi_u8s8_gemm_4x24k4w7__avx2(4, kgs[i], ap2, bp2, tile, 96, &ep);
            const double e = (now() - t0) / calls;
            best[i] = e < best[i] ? e : best[i];
        }
    }
    const double group = pbest / 100000; /* one k-group at the probe's rate */
    printf("ukernel F32 per call (best of 15) against the probe's %.2f ns per k-group:\n", group * 1e9);
    for (int i = 0; i < NK; i++)
        printf("  k %4ld: %7.1f ns, %+6.1f ns over the probe (%+.0f%%)\n", kgs[i] * 4,
               best[i] * 1e9, (best[i] - kgs[i] * group) * 1e9, 100 * (best[i] / (kgs[i] * group) - 1));
    free(a), free(b), free(pb), free(ws), free(c), free(ap), free(ap2), free(bp2);
    return 0;
}
