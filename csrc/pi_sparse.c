/*
 * pi_sparse.c -- block-sparse (BSR) float32 GEMM: Y = act(X @ W + bias).
 *
 * W (k x n) is cut into blocks of br rows (along k) by bc columns (along n)
 * and only the blocks holding a nonzero are kept, grouped by column panel
 * (the layout of pyinfer.h's pi_f32_bsr_gemm).  Grouping by panel is what
 * makes the kernel simple and parallel: a panel of Y (m x bc) is owned by one
 * thread, its accumulators stay in registers while every stored block of
 * that panel streams past, and the epilogue (bias, activation) runs on them
 * before the one store -- the dense GEMM's design, minus the zero blocks.
 *
 * Paths: bc == PI_VW or 2*PI_VW (8 or 16 on AVX2, 16 on AVX-512), written
 * once over pi_vmath.h's width-neutral macros and instantiated per ISA by
 * including this file into itself (PI_SP_BODY); any other block width, and
 * the portable ISA, take a plain C loop.  Register tile: MR rows x bc columns
 * with MR * bc / PI_VW <= 8 accumulators, so with the weight vectors and the
 * broadcast x the tile fits AVX2's 16 registers.
 *
 * Threads: panels are split into contiguous ranges of about equal stored
 * blocks (the work), one per thread, and only when the product is large
 * enough to pay for the fork.
 */
#ifndef PI_SP_BODY

#include <string.h>
#include <omp.h>
#include "pi_vmath.h"

/* Multiply-adds per thread below which a region is not worth forking. */
#define PI_SP_GRAIN ((pi_index)1 << 16)

typedef struct {
    pi_index m, n, k;
    const char *x;
    pi_index x_rs, x_cs;
    pi_index br, bc;
    const int *indptr, *indices;
    const float *values, *bias;
    int act;
    char *y;
    pi_index y_rs;
} sp_args;

static inline float sp_x(const sp_args *s, pi_index i, pi_index p)
{
    return *(const float *)(s->x + i * s->x_rs + p * s->x_cs);
}

/* Panels [p0, p1) in plain C: any block shape; accumulates in y's row. */
static void sp_panels_portable(const sp_args *s, pi_index p0, pi_index p1)
{
    const pi_index br = s->br, bc = s->bc;
    for (pi_index p = p0; p < p1; p++) {
        pi_index c0 = p * bc;
        pi_index nc = s->n - c0 < bc ? s->n - c0 : bc;
        for (pi_index i = 0; i < s->m; i++) {
            float *yr = (float *)(s->y + i * s->y_rs) + c0;
            for (pi_index c = 0; c < nc; c++)
                yr[c] = 0.0f;
            for (int e = s->indptr[p]; e < s->indptr[p + 1]; e++) {
                pi_index r0 = (pi_index)s->indices[e] * br;
                pi_index kr = s->k - r0 < br ? s->k - r0 : br;
                const float *w = s->values + (pi_index)e * br * bc;
                for (pi_index kk = 0; kk < kr; kk++) {
                    float xv = sp_x(s, i, r0 + kk);
                    for (pi_index c = 0; c < nc; c++)
                        yr[c] += xv * w[kk * bc + c];
                }
            }
            for (pi_index c = 0; c < nc; c++) {
                float v = yr[c] + (s->bias ? s->bias[c0 + c] : 0.0f);
                yr[c] = pi_act_f32(v, s->act);
            }
        }
    }
}

typedef void (*sp_panels_fn)(const sp_args *, pi_index, pi_index);

#if PI_X86
#define PI_VMATH_MACROS 256
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_SP_BODY 1
#include "pi_sparse.c"
#undef PI_SP_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define PI_VMATH_MACROS 512
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_SP_BODY 1
#include "pi_sparse.c"
#undef PI_SP_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#endif

/* The panel loop for this block width on the current ISA. */
static sp_panels_fn sp_pick(pi_index bc)
{
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512 && (bc == 16 || bc == 32))
        return pi_sp_panels_avx512;
    if (pi_current_isa >= PI_ISA_AVX2 && (bc == 8 || bc == 16))
        return pi_sp_panels_avx2;
#endif
    return sp_panels_portable;
}

/* First panel whose stored blocks start at or after `target` (indptr is
 * non-decreasing): the split points that give threads equal work. */
static pi_index sp_split(const int *indptr, pi_index panels, pi_index target)
{
    pi_index lo = 0, hi = panels;
    while (lo < hi) {
        pi_index mid = lo + (hi - lo) / 2;
        if ((pi_index)indptr[mid] < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

PI_EXPORT int pi_f32_bsr_gemm(pi_index m, pi_index n, pi_index k,
                              const float *x, pi_index x_rs, pi_index x_cs,
                              pi_index br, pi_index bc, const int *indptr, const int *indices,
                              const float *values, const float *bias, int activation,
                              float *y, pi_index y_rs)
{
    if (m < 0 || n < 0 || k < 0 || br < 1 || bc < 1 || activation < PI_ACT_NONE ||
        activation > PI_ACT_TANH)
        return PI_ERR_ARG;
    if (m == 0 || n == 0)
        return PI_OK;
    pi_index panels = (n + bc - 1) / bc;
    pi_index nnzb = indptr[panels];
    PI_ASSERT(indptr[0] == 0 && nnzb >= 0);
    sp_args s = {m, n, k, (const char *)x, x_rs, x_cs, br, bc, indptr, indices, values,
                 bias, activation, (char *)y, y_rs};
    sp_panels_fn fn = sp_pick(bc);
    /* work: the stored multiply-adds plus the epilogue over Y */
    pi_index work = m * (nnzb * br * bc + n);
    int nt = pi_num_threads;
    if (work / PI_SP_GRAIN + 1 < nt)
        nt = (int)(work / PI_SP_GRAIN + 1);
    if (nt > panels)
        nt = (int)panels;
    if (nt <= 1) {
        fn(&s, 0, panels);
        return PI_OK;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        /* equal shares of stored blocks; ties of empty panels go to the left */
        pi_index p0 = t == 0 ? 0 : sp_split(indptr, panels, nnzb * t / T);
        pi_index p1 = t == T - 1 ? panels : sp_split(indptr, panels, nnzb * (t + 1) / T);
        if (p1 > p0)
            fn(&s, p0, p1);
    }
    return PI_OK;
}

#else /* PI_SP_BODY: the vector panel loop, once per width */

/* acc += the block-row products of stored block e (rows past k skipped). */
PI_VTARGET static inline __attribute__((always_inline)) void
PI_VFN(sp_block)(const sp_args *s, const char *xi, int e, VF acc[8][2], const int MR, const int NV)
{
    const pi_index br = s->br, bc = NV * PI_VW, x_rs = s->x_rs, x_cs = s->x_cs;
    pi_index r0 = (pi_index)s->indices[e] * br;
    pi_index kr = s->k - r0 < br ? s->k - r0 : br;
    const float *w = s->values + (pi_index)e * br * bc;
    const char *xk = xi + r0 * x_cs;
    for (pi_index kk = 0; kk < kr; kk++, w += bc, xk += x_cs) {
        VF w0 = V_LOAD(w), w1 = NV > 1 ? V_LOAD(w + PI_VW) : w0;
        for (int r = 0; r < MR; r++) {
            VF xv = V_SET1(*(const float *)(xk + r * x_rs));
            acc[r][0] = V_FMA(xv, w0, acc[r][0]);
            if (NV > 1)
                acc[r][1] = V_FMA(xv, w1, acc[r][1]);
        }
    }
}

/* One MR x (NV*PI_VW) tile of Y at rows i0.., panel p.  MR and NV are
 * constants at every call site, so the accumulator arrays live in registers
 * and the row loops unroll.  Small tiles (<= 4 accumulators) alternate two
 * accumulator sets between blocks: two FMA chains per register instead of
 * one, so the FMA latency (4 cycles) is not what bounds m = 1 and 2. */
PI_VTARGET static inline __attribute__((always_inline)) void
PI_VFN(sp_tile)(const sp_args *s, pi_index p, pi_index i0, const int MR, const int NV)
{
    VF acc[8][2], acc2[8][2];
    const int two = MR * NV <= 4;
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = acc2[r][v] = V_ZERO();
    const pi_index bc = NV * PI_VW;
    const char *xi = s->x + i0 * s->x_rs;
    int e = s->indptr[p], e1 = s->indptr[p + 1];
    if (two) {
        for (; e + 1 < e1; e += 2) {
            PI_VFN(sp_block)(s, xi, e, acc, MR, NV);
            PI_VFN(sp_block)(s, xi, e + 1, acc2, MR, NV);
        }
    }
    for (; e < e1; e++)
        PI_VFN(sp_block)(s, xi, e, acc, MR, NV);
    if (two)
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < NV; v++)
                acc[r][v] = V_ADD(acc[r][v], acc2[r][v]);
    /* epilogue in registers; a partial last panel goes through a buffer so
     * neither bias nor y is touched past column n */
    pi_index c0 = p * bc;
    pi_index nc = s->n - c0 < bc ? s->n - c0 : bc;
    float bbuf[2 * PI_VW], ybuf[2 * PI_VW];
    const float *b = NULL;
    if (s->bias) {
        b = s->bias + c0;
        if (nc < bc) {
            memset(bbuf, 0, sizeof bbuf);
            memcpy(bbuf, b, (size_t)nc * sizeof(float));
            b = bbuf;
        }
    }
    for (int r = 0; r < MR; r++) {
        float *yr = (float *)(s->y + (i0 + r) * s->y_rs) + c0;
        float *dst = nc < bc ? ybuf : yr;
        for (int v = 0; v < NV; v++) {
            VF t = acc[r][v];
            if (b)
                t = V_ADD(t, V_LOAD(b + v * PI_VW));
            V_STORE(dst + v * PI_VW, PI_VFN(act_ps)(t, s->act));
        }
        if (nc < bc)
            memcpy(yr, ybuf, (size_t)nc * sizeof(float));
    }
}

/* Rows in tiles of MR (the largest that keeps <= 8 accumulators), the
 * remainder by a smaller constant tile. */
#define PI_SP_ROWS(NV, MRMAX)                                                            \
    do {                                                                                \
        pi_index i = 0;                                                                 \
        for (; i + MRMAX <= s->m; i += MRMAX)                                           \
            PI_VFN(sp_tile)(s, p, i, MRMAX, NV);                                        \
        switch (s->m - i) {                                                             \
        case 7: PI_VFN(sp_tile)(s, p, i, 7, NV); break;                                 \
        case 6: PI_VFN(sp_tile)(s, p, i, 6, NV); break;                                 \
        case 5: PI_VFN(sp_tile)(s, p, i, 5, NV); break;                                 \
        case 4: PI_VFN(sp_tile)(s, p, i, 4, NV); break;                                 \
        case 3: PI_VFN(sp_tile)(s, p, i, 3, NV); break;                                 \
        case 2: PI_VFN(sp_tile)(s, p, i, 2, NV); break;                                 \
        case 1: PI_VFN(sp_tile)(s, p, i, 1, NV); break;                                 \
        default: break;                                                                 \
        }                                                                               \
    } while (0)

PI_VTARGET static void PI_VFN(sp_panels)(const sp_args *s, pi_index p0, pi_index p1)
{
    if (s->bc == PI_VW) {
        for (pi_index p = p0; p < p1; p++)
            PI_SP_ROWS(1, 8);
    } else {
        PI_ASSERT(s->bc == 2 * PI_VW);
        for (pi_index p = p0; p < p1; p++)
            PI_SP_ROWS(2, 4);
    }
}

#undef PI_SP_ROWS

#endif /* PI_SP_BODY */
