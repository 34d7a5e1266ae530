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
 * broadcast x the tile fits AVX2's 16 registers.  Small tiles (m = 1, 2)
 * spread consecutive block rows over several accumulator sets: at m = 1 the
 * kernel is a GEMV that must stream the stored blocks at memory speed, and
 * one set would make it wait on the FMA latency instead.  Block heights 1, 2,
 * 4 and 8 have their row loop unrolled.
 *
 * Threads: panels are split into contiguous ranges of about equal stored
 * blocks (the work), one per thread, as many as pi_threads_for gives the
 * call's estimated time (sp_single_ns).
 */
#ifndef PI_SP_BODY

#include <string.h>
#include <omp.h>
#include "pi_vmath.h"

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

/* One thread's time for the call (pi_threads_for): the stored values stream
 * through once per register tile of rows (MR = 64 / bc on AVX2: 4 rows for
 * 16-wide blocks) and each row of X adds one multiply-add per stored value,
 * plus the epilogue's pass over Y.  Fits 768x3072 at 90% zero 1x16 blocks
 * at 1 thread: m = 1, 2, 4, 8, 16 took 26, 35, 40, 72, 147 us. */
static double sp_single_ns(pi_index m, pi_index n, pi_index bc, pi_index stored)
{
    pi_index rows = bc < 64 ? 64 / bc : 1;
    double passes = (double)((m + rows - 1) / rows);
    return passes * 4.0 * (double)stored * PI_NS_PER_BYTE +
           (double)m * (double)stored * PI_NS_PER_FLOP +
           4.0 * (double)m * (double)n * PI_NS_PER_BYTE;
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
    int nt = pi_threads_for(sp_single_ns(m, n, bc, nnzb * br * bc), (double)panels);
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

/* Accumulator sets for an MR x NV tile: enough that the FMAs of consecutive
 * block rows go to about 8 independent registers.  With one set a tile of
 * m = 1 would be NV dependent chains paced by the FMA latency (4 cycles on
 * Zen 3 and Skylake) while the loads could feed 2 FMAs a cycle. */
#define PI_SP_SETS(MR, NV) ((MR) * (NV) >= 5 ? 1 : (MR) * (NV) >= 3 ? 2 : (MR) * (NV) == 2 ? 4 : 8)

/* Loops over accumulators unroll completely, so every acc[] index is a
 * constant and the array becomes registers. */
#define PI_SP_UNROLL _Pragma("GCC unroll 16")
#define PI_SP_NO_UNROLL _Pragma("GCC unroll 1")

/* acc[set] += block row kk of the block at w, whose first row is x column xk */
#define PI_SP_ROW(set, kk)                                                               \
    do {                                                                                \
        VF w0 = V_LOAD(w + (kk) * bc), w1 = NV > 1 ? V_LOAD(w + (kk) * bc + PI_VW) : w0; \
        PI_SP_UNROLL for (int r = 0; r < MR; r++) {                                     \
            VF xv = V_SET1(*(const float *)(xk + r * x_rs + (kk) * x_cs));              \
            const int j = ((set) * MR + r) * NV;                                        \
            acc[j] = V_FMA(xv, w0, acc[j]);                                             \
            if (NV > 1)                                                                 \
                acc[j + 1] = V_FMA(xv, w1, acc[j + 1]);                                 \
        }                                                                               \
    } while (0)

/* One MR x (NV*PI_VW) tile of Y at rows i0.., panel p.  MR, NV and BR are
 * constants at every call site, so the accumulator arrays live in registers
 * and every loop over them unrolls.  BR > 0: blocks of exactly BR rows (the
 * caller checked that k is a multiple of it), the row loop unrolled and
 * consecutive block rows -- across blocks when BR < SETS -- rotating through
 * the accumulator sets.  BR == 0: any block height, the last block row
 * possibly cut by k, each block into one set. */
PI_VTARGET static inline __attribute__((always_inline)) void
PI_VFN(sp_tile)(const sp_args *s, pi_index p, pi_index i0, const int MR, const int NV,
                const int BR)
{
    const int SETS = PI_SP_SETS(MR, NV);
    /* blocks per step: every set gets at least one block row */
    const int U = BR == 0 ? SETS : BR >= SETS ? 1 : SETS / BR;
    /* a block's rows stay a loop when one set suffices and unrolled they
     * would need more x offsets (MR x BR) than there are registers: 8x8
     * blocks at m = 8 ran 15% slower unrolled, 4x16 at m = 4 7% faster */
    const int ROLLED = SETS == 1 && MR * BR > 16;
    /* set q, row r, vector v at acc[(q * MR + r) * NV + v] */
    VF acc[8];
    PI_SP_UNROLL for (int j = 0; j < SETS * MR * NV; j++)
        acc[j] = V_ZERO();
    const pi_index bc = NV * PI_VW, x_rs = s->x_rs, x_cs = s->x_cs;
    const pi_index br = BR ? BR : s->br, bsize = br * bc;
    const char *xi = s->x + i0 * x_rs;
    const int *idx = s->indices;
    int e = s->indptr[p], e1 = s->indptr[p + 1];
    const float *wp = s->values + (pi_index)e * bsize;
    for (; e + U <= e1; e += U, wp += U * bsize) {
        PI_SP_UNROLL for (int u = 0; u < U; u++) {
            pi_index r0 = (pi_index)idx[e + u] * br;
            const float *w = wp + u * bsize;
            const char *xk = xi + r0 * x_cs;
            if (BR && ROLLED) {
                PI_SP_NO_UNROLL for (int kk = 0; kk < BR; kk++)
                    PI_SP_ROW(0, kk);
            } else if (BR) {
                PI_SP_UNROLL for (int kk = 0; kk < BR; kk++)
                    PI_SP_ROW((u * BR + kk) % SETS, kk);
            } else {
                pi_index kr = s->k - r0 < br ? s->k - r0 : br;
                for (pi_index kk = 0; kk < kr; kk++)
                    PI_SP_ROW(u, kk);
            }
        }
    }
    for (; e < e1; e++, wp += bsize) {
        pi_index r0 = (pi_index)idx[e] * br;
        const float *w = wp;
        const char *xk = xi + r0 * x_cs;
        if (BR && ROLLED) {
            PI_SP_NO_UNROLL for (int kk = 0; kk < BR; kk++)
                PI_SP_ROW(0, kk);
        } else if (BR) {
            PI_SP_UNROLL for (int kk = 0; kk < BR; kk++)
                PI_SP_ROW(kk % SETS, kk);
        } else {
            pi_index kr = s->k - r0 < br ? s->k - r0 : br;
            for (pi_index kk = 0; kk < kr; kk++)
                PI_SP_ROW(0, kk);
        }
    }
    /* The sums leave the registers before the epilogue: its activation is a
     * call, across which every vector register is clobbered, and accumulators
     * live across it were spilled for the whole loop (an m = 3 or 4 tile
     * then ran at the speed of a store-to-load chain). */
    PI_SP_UNROLL for (int j = 0; j < MR * NV; j++) {
        PI_SP_UNROLL for (int q = 1; q < SETS; q++)
            acc[j] = V_ADD(acc[j], acc[q * MR * NV + j]);
    }
    /* epilogue; a partial last panel goes through a buffer so neither bias
     * nor y is touched past column n */
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
            VF t = acc[r * NV + v];
            if (b)
                t = V_ADD(t, V_LOAD(b + v * PI_VW));
            V_STORE(dst + v * PI_VW, PI_VFN(act_ps)(t, s->act));
        }
        if (nc < bc)
            memcpy(yr, ybuf, (size_t)nc * sizeof(float));
    }
}

#undef PI_SP_ROW

/* Every tile shape its own function: with several sharing one, GCC's
 * register allocator kept some accumulators of the small tiles in memory
 * (a load and a store per FMA: m = 3 ran 2.5x slower than m = 4). */
typedef void (*PI_VFN(sp_tile_fn))(const sp_args *, pi_index, pi_index);
#define PI_SP_TILE(MR, NV, BR)                                                           \
    PI_VTARGET static void PI_VFN(sp_tile_##MR##_##NV##_##BR)(const sp_args *s, pi_index p, \
                                                              pi_index i0)              \
    {                                                                                   \
        PI_VFN(sp_tile)(s, p, i0, MR, NV, BR);                                          \
    }
/* tiles of 1..8 rows by one vector, 1..4 rows by two: <= 8 accumulators */
#define PI_SP_TILES(BR)                                                                  \
    PI_SP_TILE(1, 1, BR) PI_SP_TILE(2, 1, BR) PI_SP_TILE(3, 1, BR) PI_SP_TILE(4, 1, BR)  \
    PI_SP_TILE(5, 1, BR) PI_SP_TILE(6, 1, BR) PI_SP_TILE(7, 1, BR) PI_SP_TILE(8, 1, BR)  \
    PI_SP_TILE(1, 2, BR) PI_SP_TILE(2, 2, BR) PI_SP_TILE(3, 2, BR) PI_SP_TILE(4, 2, BR)
PI_SP_TILES(0)
PI_SP_TILES(1)
PI_SP_TILES(2)
PI_SP_TILES(4)
PI_SP_TILES(8)
#define PI_SP_ROW_OF(BR)                                                                 \
    {NULL, PI_VFN(sp_tile_1_1_##BR), PI_VFN(sp_tile_2_1_##BR), PI_VFN(sp_tile_3_1_##BR),   \
     PI_VFN(sp_tile_4_1_##BR), PI_VFN(sp_tile_5_1_##BR), PI_VFN(sp_tile_6_1_##BR),         \
     PI_VFN(sp_tile_7_1_##BR), PI_VFN(sp_tile_8_1_##BR)},                                 \
    {NULL, PI_VFN(sp_tile_1_2_##BR), PI_VFN(sp_tile_2_2_##BR), PI_VFN(sp_tile_3_2_##BR),   \
     PI_VFN(sp_tile_4_2_##BR)}
/* [block height: 0 (any), 1, 2, 4, 8][vectors a panel - 1][rows] */
static const PI_VFN(sp_tile_fn) PI_VFN(sp_tiles)[5][2][9] = {
    {PI_SP_ROW_OF(0)}, {PI_SP_ROW_OF(1)}, {PI_SP_ROW_OF(2)}, {PI_SP_ROW_OF(4)}, {PI_SP_ROW_OF(8)}};

/* Panels [p0, p1): rows in tiles of the largest height with <= 8
 * accumulators, the remainder by one smaller tile.  Blocks of 1, 2, 4 or 8
 * rows with k a multiple of it take the tiles with the row loop unrolled;
 * any other height, or a k that cuts the last block row, the general ones. */
PI_VTARGET static void PI_VFN(sp_panels)(const sp_args *s, pi_index p0, pi_index p1)
{
    PI_ASSERT(s->bc == PI_VW || s->bc == 2 * PI_VW);
    const int nv = s->bc == PI_VW ? 1 : 2, mr = nv == 1 ? 8 : 4;
    int h = 0;
    if (s->k % s->br == 0)
        h = s->br == 1 ? 1 : s->br == 2 ? 2 : s->br == 4 ? 3 : s->br == 8 ? 4 : 0;
    const PI_VFN(sp_tile_fn) *tiles = PI_VFN(sp_tiles)[h][nv - 1];
    PI_VFN(sp_tile_fn) full = tiles[mr], rest = tiles[s->m % mr];
    const pi_index m_full = s->m - s->m % mr;
    for (pi_index p = p0; p < p1; p++) {
        for (pi_index i = 0; i < m_full; i += mr)
            full(s, p, i);
        if (rest)
            rest(s, p, m_full);
    }
}

#undef PI_SP_ROW_OF
#undef PI_SP_TILES
#undef PI_SP_TILE
#undef PI_SP_SETS
#undef PI_SP_UNROLL
#undef PI_SP_NO_UNROLL

#endif /* PI_SP_BODY */
