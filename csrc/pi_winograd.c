/*
 * pi_winograd.c -- 3x3, stride-1 convolution by Winograd's minimal filtering
 * algorithms F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2016), NCHW float32
 * (pyinfer.h).
 *
 * Why: a direct or im2col 3x3 convolution already runs near the FMA peak, so
 * the only way past it is fewer multiplies.  F(m x m, 3x3) computes an m x m
 * output tile from an (m+2)^2 input tile with (m+2)^2 products per channel
 * pair instead of 9 m^2: 2.25x fewer for F(2), 4x fewer for F(4).  Those
 * products are alpha^2 (alpha = m+2) independent GEMMs over the channels:
 *
 *     M[xi] (K x T) = U[xi] (K x C) @ V[xi] (C x T),   xi < alpha^2
 *
 * with U = G w G^T (the weights, transformed and packed once at plan time by
 * pyinfer/backends/winograd.py), V = B^T d B (input tiles) and the output
 * Y = A^T M A with the epilogue (bias, residual, activation, clip) fused in.
 *
 * Blocking: tiles are taken TB at a time (a "block", TB a multiple of the
 * 16-tile GEMM panel, sized so that the block's V and M stay in L2); each
 * thread owns a block at a time: input transform of TB tiles x C channels
 * -> V (alpha^2 x C x TB), alpha^2 GEMMs -> M (alpha^2 x K x TB), output
 * transform -> y.  Tiles are numbered over (n, tile row, tile column), so a
 * block may cross rows and images and no lane is wasted except in the very
 * last block.  Vector code puts 8 tiles in the 8 lanes of a ymm: a tile's
 * input rows are loaded with masked loads (the mask is the padding, so no
 * padded copy of the input is made) and transposed 8x8 in registers; the
 * output goes back the same way.
 *
 * The GEMM micro-kernel is 6 (output channels, broadcast from the packed U)
 * x 16 (tiles, two vectors of V): 12 accumulators, 8 loads per 12 FMAs.
 * U is packed in panels of PI_WINOGRAD_MR output channels: panel p (channels
 * 6p .. 6p+mr-1, mr = min(6, K - 6p)) starts at element 6p*C of U[xi] and
 * holds, for each input channel c, its mr weights contiguously.
 *
 * ISA: the vector body is written once (PI_WG_BODY) over 8-lane AVX types
 * and instantiated with the AVX2+FMA target and with the AVX-512 target (the
 * same algorithm, EVEX-encoded with 32 registers; selected only when
 * pi_isa() reports AVX-512).  The portable path is plain C over the same
 * layouts.
 *
 * Error: F(4)'s transforms have entries up to 8 and 1/24, so its float32
 * error is about 10x F(2)'s; tests/test_winograd.py bounds both (normwise
 * relative error < 1e-4 against a float64 direct convolution).
 */
#ifndef PI_WG_BODY

#include <math.h>
#include <omp.h>
#include <string.h>
#include "pi_vmath.h"

#define WG_LANES 8   /* tiles per vector group */
#define WG_NR 16     /* tiles per GEMM column panel */
#define WG_MR PI_WINOGRAD_MR
#define WG_MAX_TB 64
/* Bytes of V + M a block may use: half of the 512 KiB L2 of a Zen 3 core,
 * the rest being U's current slices and the input/output lines. */
#define WG_L2_BUDGET (256 * 1024)

/* One tile of a block: where its input patch and output tile live. */
typedef struct {
    pi_index in_off;  /* element offset of the patch origin (may point into padding) */
    pi_index out_off; /* element offset of the output tile origin, channel 0 */
    int rows;         /* bit r set: patch row r lies inside the image */
    int hv, wv;       /* valid output rows / columns (0 for a padding lane) */
    int inner;        /* all patch rows inside and 8 columns from the origin inside */
    int32_t cm[8];    /* -1 where patch column j lies inside the image */
} wg_tile;

typedef struct {
    int m, alpha, act, clip;
    float lo, hi;
    pi_index n, c, h, w, k, ho, wo, pt, pl, th, tw, tiles, tb;
    const float *x, *u, *bias, *r;
    float *y;
} wg_job;

typedef void (*wg_in_fn)(const wg_job *J, const wg_tile *t, pi_index ch, float *v, pi_index xs);
typedef void (*wg_gemm_fn)(const wg_job *J, const float *u, const float *v, float *mm);
typedef void (*wg_out_fn)(const wg_job *J, const wg_tile *t, pi_index kk, const float *mm,
                          pi_index xs);

/* ---- portable path: scalar C over the same layouts --------------------------- */

static const float wg_bt2[4][4] = {
    {1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const float wg_at2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const float wg_bt4[6][6] = {
    {4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const float wg_at4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

static void wg_in_portable(const wg_job *J, const wg_tile *t, pi_index ch, float *v,
                           pi_index xs)
{
    const int a = J->alpha;
    const float *bt = a == 4 ? &wg_bt2[0][0] : &wg_bt4[0][0];
    const float *xc = J->x + ch * J->h * J->w;
    for (int l = 0; l < WG_LANES; l++) {
        float d[6][6], hr[6][6];
        for (int r = 0; r < a; r++)
            for (int j = 0; j < a; j++)
                d[r][j] = ((t[l].rows >> r) & 1) && t[l].cm[j] ? xc[t[l].in_off + r * J->w + j]
                                                                : 0.0f;
        for (int r = 0; r < a; r++)
            for (int i = 0; i < a; i++) {
                float s = 0;
                for (int j = 0; j < a; j++) s += bt[i * a + j] * d[r][j];
                hr[r][i] = s;
            }
        for (int i2 = 0; i2 < a; i2++)
            for (int i = 0; i < a; i++) {
                float s = 0;
                for (int r = 0; r < a; r++) s += bt[i2 * a + r] * hr[r][i];
                v[(i2 * a + i) * xs + l] = s;
            }
    }
}

static void wg_gemm_portable(const wg_job *J, const float *u, const float *v, float *mm)
{
    const pi_index C = J->c, K = J->k, TB = J->tb;
    for (pi_index k0 = 0; k0 < K; k0 += WG_MR) {
        const int mr = K - k0 < WG_MR ? (int)(K - k0) : WG_MR;
        const float *a = u + k0 * C;
        for (int i = 0; i < mr; i++)
            for (pi_index t = 0; t < TB; t++) mm[(k0 + i) * TB + t] = 0;
        for (pi_index c = 0; c < C; c++)
            for (int i = 0; i < mr; i++) {
                const float w = a[c * mr + i];
                float *row = mm + (k0 + i) * TB;
                const float *vr = v + c * TB;
                for (pi_index t = 0; t < TB; t++) row[t] += w * vr[t];
            }
    }
}

static inline float wg_epi_f32(const wg_job *J, float s)
{
    s = pi_act_f32(s, J->act);
    if (J->clip) {
        s = s < J->lo ? J->lo : s; /* NaN stays NaN */
        s = s > J->hi ? J->hi : s;
    }
    return s;
}

static void wg_out_portable(const wg_job *J, const wg_tile *t, pi_index kk, const float *mm,
                            pi_index xs)
{
    const int a = J->alpha, m = J->m;
    const float *at = a == 4 ? &wg_at2[0][0] : &wg_at4[0][0];
    const float b = J->bias ? J->bias[kk] : 0.0f;
    const pi_index plane = kk * J->ho * J->wo;
    for (int l = 0; l < WG_LANES; l++) {
        if (t[l].hv == 0) continue;
        float hq[6][4];
        for (int i2 = 0; i2 < a; i2++)
            for (int q = 0; q < m; q++) {
                float s = 0;
                for (int i = 0; i < a; i++) s += at[q * a + i] * mm[(i2 * a + i) * xs + l];
                hq[i2][q] = s;
            }
        for (int p = 0; p < t[l].hv; p++)
            for (int q = 0; q < t[l].wv; q++) {
                float s = 0;
                for (int i2 = 0; i2 < a; i2++) s += at[p * a + i2] * hq[i2][q];
                pi_index o = t[l].out_off + plane + p * J->wo + q;
                s += b;
                if (J->r) s += J->r[o];
                J->y[o] = wg_epi_f32(J, s);
            }
    }
}

/* ---- vector paths ------------------------------------------------------------- */
#if PI_X86
#define PI_WG_BODY 1
#define WG_TARGET PI_TARGET_AVX2
#define WGF(name) wg_##name##_avx2
#include "pi_winograd.c"
#undef WG_TARGET
#undef WGF
#define WG_TARGET PI_TARGET_AVX512
#define WGF(name) wg_##name##_avx512
#include "pi_winograd.c"
#undef WG_TARGET
#undef WGF
#undef PI_WG_BODY
#endif

/* ---- driver ------------------------------------------------------------------- */

static pi_index wg_cdiv(pi_index a, pi_index b) { return (a + b - 1) / b; }

/* Tiles per block: V and M of a block within WG_L2_BUDGET, a multiple of the
 * GEMM panel, and no more than an even share per thread (small images still
 * keep every thread busy). */
static pi_index wg_block_tiles(int m, pi_index c, pi_index k, pi_index tiles, int nth)
{
    const pi_index a2 = (pi_index)(m + 2) * (m + 2);
    pi_index tb = WG_L2_BUDGET / (a2 * (c + k) * (pi_index)sizeof(float)) / WG_NR * WG_NR;
    if (tb < WG_NR) tb = WG_NR;
    if (tb > WG_MAX_TB) tb = WG_MAX_TB;
    pi_index share = wg_cdiv(wg_cdiv(tiles, nth), WG_NR) * WG_NR;
    if (share < tb) tb = share;
    return tb;
}

/* Floats between consecutive xi planes of V (rows = c) or M (rows = k): one
 * cache line more than the plane, so that the alpha^2 accesses of one tile
 * group (a transform reads or writes one vector per plane) fall in different
 * L1 sets instead of all aliasing at a multiple of 4 KiB. */
static pi_index wg_plane(pi_index rows, pi_index tb) { return rows * tb + 16; }

static pi_index wg_thread_bytes(int m, pi_index c, pi_index k, pi_index tb)
{
    const pi_index a2 = (pi_index)(m + 2) * (m + 2);
    pi_index vm = a2 * (wg_plane(c, tb) + wg_plane(k, tb)) * (pi_index)sizeof(float);
    pi_index ti = wg_cdiv(tb * (pi_index)sizeof(wg_tile), 64) * 64;
    return vm + ti;
}

static int wg_shape_ok(int tile, pi_index n, pi_index c, pi_index k, pi_index ho, pi_index wo)
{
    return (tile == 2 || tile == 4) && n >= 1 && c >= 1 && k >= 1 && ho >= 1 && wo >= 1;
}

PI_EXPORT pi_index pi_winograd_workspace_bytes(int tile, pi_index n, pi_index c, pi_index k,
                                               pi_index ho, pi_index wo)
{
    if (!wg_shape_ok(tile, n, c, k, ho, wo))
        return 0;
    const pi_index tiles = n * wg_cdiv(ho, tile) * wg_cdiv(wo, tile);
    const int nth = pi_num_threads;
    const pi_index tb = wg_block_tiles(tile, c, k, tiles, nth);
    return (pi_index)nth * wg_thread_bytes(tile, c, k, tb);
}

static void wg_fill_tiles(const wg_job *J, pi_index first, wg_tile *ti)
{
    const int m = J->m, a = J->alpha;
    const pi_index per_image = J->th * J->tw;
    for (pi_index l = 0; l < J->tb; l++) {
        wg_tile *t = ti + l;
        const pi_index g = first + l;
        memset(t, 0, sizeof(*t));
        if (g >= J->tiles)
            continue;
        const pi_index n = g / per_image, rem = g % per_image;
        const pi_index y0 = rem / J->tw * m, x0 = rem % J->tw * m;
        const pi_index iy = y0 - J->pt, ix = x0 - J->pl;
        t->in_off = n * J->c * J->h * J->w + iy * J->w + ix;
        t->out_off = n * J->k * J->ho * J->wo + y0 * J->wo + x0;
        for (int r = 0; r < a; r++)
            if (iy + r >= 0 && iy + r < J->h) t->rows |= 1 << r;
        for (int j = 0; j < a; j++)
            t->cm[j] = (ix + j >= 0 && ix + j < J->w) ? -1 : 0;
        t->inner = t->rows == (1 << a) - 1 && ix >= 0 && ix + 8 <= J->w;
        t->hv = (int)(J->ho - y0 < m ? J->ho - y0 : m);
        t->wv = (int)(J->wo - x0 < m ? J->wo - x0 : m);
    }
}

PI_EXPORT int pi_f32_winograd_conv3x3(int tile, pi_index n, pi_index c, pi_index h, pi_index w,
                                      pi_index k, pi_index pad_top, pi_index pad_left,
                                      pi_index ho, pi_index wo, const float *x, const float *wt,
                                      const float *bias, const float *r, int activation,
                                      int clip, float clip_lo, float clip_hi, float *y,
                                      void *ws, pi_index ws_bytes)
{
    if (!wg_shape_ok(tile, n, c, k, ho, wo) || h < 1 || w < 1 || pad_top < 0 || pad_left < 0 ||
        ho > h + pad_top || wo > w + pad_left)
        return PI_ERR_ARG;
    wg_job J;
    J.m = tile;
    J.alpha = tile + 2;
    J.act = activation;
    J.clip = clip;
    J.lo = clip_lo;
    J.hi = clip_hi;
    J.n = n; J.c = c; J.h = h; J.w = w; J.k = k; J.ho = ho; J.wo = wo;
    J.pt = pad_top; J.pl = pad_left;
    J.th = wg_cdiv(ho, tile);
    J.tw = wg_cdiv(wo, tile);
    J.tiles = n * J.th * J.tw;
    J.x = x; J.u = wt; J.bias = bias; J.r = r; J.y = y;
    /* One thread's time (pi_threads_for): alpha^2 products of c x k per tile
     * at micro-kernel speed, and the transforms' streaming of V and M; at
     * most a thread per WG_NR tiles. */
    const pi_index a2 = (pi_index)J.alpha * J.alpha;
    const double wg_ns = (double)J.tiles * (double)a2 *
                         (2.0 * (double)c * (double)k * PI_NS_PER_FLOP +
                          2.0 * (double)(c + k) * sizeof(float) * PI_NS_PER_BYTE);
    int nth = pi_threads_for(wg_ns, (double)wg_cdiv(J.tiles, WG_NR));
    /* Blocks of tiles sized for the threads that run, unless the workspace
     * (sized for pi_num_threads' blocks) is too small for them. */
    J.tb = wg_block_tiles(tile, c, k, J.tiles, nth);
    pi_index per = wg_thread_bytes(tile, c, k, J.tb);
    if (ws_bytes / per < nth) {
        nth = pi_num_threads;
        J.tb = wg_block_tiles(tile, c, k, J.tiles, nth);
        per = wg_thread_bytes(tile, c, k, J.tb);
        if (ws_bytes / per < nth)
            nth = (int)(ws_bytes / per);
    }
    if (nth < 1 || ((uintptr_t)ws & 63) != 0)
        return PI_ERR_WORKSPACE;

    wg_in_fn in_fn = wg_in_portable;
    wg_gemm_fn gemm_fn = wg_gemm_portable;
    wg_out_fn out_fn = wg_out_portable;
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512) {
        in_fn = tile == 2 ? wg_in2_avx512 : wg_in4_avx512;
        gemm_fn = wg_gemm_avx512;
        out_fn = tile == 2 ? wg_out2_avx512 : wg_out4_avx512;
    } else if (pi_current_isa >= PI_ISA_AVX2) {
        in_fn = tile == 2 ? wg_in2_avx2 : wg_in4_avx2;
        gemm_fn = wg_gemm_avx2;
        out_fn = tile == 2 ? wg_out2_avx2 : wg_out4_avx2;
    }
#endif
    const pi_index TB = J.tb;
    const pi_index vs = wg_plane(c, TB), ms = wg_plane(k, TB);
    const pi_index nblocks = wg_cdiv(J.tiles, TB);
    if (nth > nblocks)
        nth = (int)nblocks;

#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        char *base = (char *)ws + (pi_index)omp_get_thread_num() * per;
        float *V = (float *)base;
        float *M = V + a2 * vs;
        wg_tile *ti = (wg_tile *)(M + a2 * ms);
#pragma omp for schedule(dynamic, 1)
        for (pi_index b = 0; b < nblocks; b++) {
            wg_fill_tiles(&J, b * TB, ti);
            for (pi_index ch = 0; ch < c; ch++)
                for (pi_index g = 0; g < TB; g += WG_LANES)
                    in_fn(&J, ti + g, ch, V + ch * TB + g, vs);
            for (pi_index xi = 0; xi < a2; xi++)
                gemm_fn(&J, wt + xi * k * c, V + xi * vs, M + xi * ms);
            for (pi_index kk = 0; kk < k; kk++)
                for (pi_index g = 0; g < TB; g += WG_LANES)
                    out_fn(&J, ti + g, kk, M + kk * TB + g, ms);
        }
    }
    return PI_OK;
}

#else /* PI_WG_BODY: the 8-lane vector body, instantiated per target above */

/* ---- input transforms: 8 tiles of one channel -> alpha^2 vectors of V ---------- */

WG_TARGET static void WGF(in2)(const wg_job *J, const wg_tile *t, pi_index ch, float *v,
                               pi_index xs)
{
    const pi_index W = J->w;
    const float *xc = J->x + ch * J->h * W;
    __m128i cm[8];
    for (int l = 0; l < 8; l++) cm[l] = _mm_loadu_si128((const __m128i *)t[l].cm);
    __m256 hr[4][4];
    for (int r = 0; r < 4; r++) {
        __m128 q[8];
        for (int l = 0; l < 8; l++)
            q[l] = t[l].inner ? _mm_loadu_ps(xc + t[l].in_off + r * W)
                   : ((t[l].rows >> r) & 1) ? _mm_maskload_ps(xc + t[l].in_off + r * W, cm[l])
                                            : _mm_setzero_ps();
        __m256 a0 = _mm256_set_m128(q[4], q[0]), a1 = _mm256_set_m128(q[5], q[1]);
        __m256 a2 = _mm256_set_m128(q[6], q[2]), a3 = _mm256_set_m128(q[7], q[3]);
        __m256 u0 = _mm256_unpacklo_ps(a0, a1), u1 = _mm256_unpackhi_ps(a0, a1);
        __m256 u2 = _mm256_unpacklo_ps(a2, a3), u3 = _mm256_unpackhi_ps(a2, a3);
        __m256 d0 = _mm256_shuffle_ps(u0, u2, 0x44), d1 = _mm256_shuffle_ps(u0, u2, 0xEE);
        __m256 d2 = _mm256_shuffle_ps(u1, u3, 0x44), d3 = _mm256_shuffle_ps(u1, u3, 0xEE);
        hr[r][0] = _mm256_sub_ps(d0, d2);
        hr[r][1] = _mm256_add_ps(d1, d2);
        hr[r][2] = _mm256_sub_ps(d2, d1);
        hr[r][3] = _mm256_sub_ps(d1, d3);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_store_ps(v + (0 * 4 + i) * xs, _mm256_sub_ps(hr[0][i], hr[2][i]));
        _mm256_store_ps(v + (1 * 4 + i) * xs, _mm256_add_ps(hr[1][i], hr[2][i]));
        _mm256_store_ps(v + (2 * 4 + i) * xs, _mm256_sub_ps(hr[2][i], hr[1][i]));
        _mm256_store_ps(v + (3 * 4 + i) * xs, _mm256_sub_ps(hr[1][i], hr[3][i]));
    }
}

/* The 6-point B^T of F(4x4,3x3): 12 vector ops. */
#define WG_BT6(d0, d1, d2, d3, d4, d5, o)                                            \
    do {                                                                             \
        __m256 four_ = _mm256_set1_ps(4.0f), five_ = _mm256_set1_ps(5.0f);           \
        __m256 t0_ = _mm256_fnmadd_ps(four_, d2, d4); /* d4 - 4 d2 */                \
        __m256 t1_ = _mm256_fnmadd_ps(four_, d1, d3); /* d3 - 4 d1 */                \
        __m256 t2_ = _mm256_sub_ps(d4, d2);                                          \
        __m256 t3_ = _mm256_sub_ps(d3, d1);                                          \
        t3_ = _mm256_add_ps(t3_, t3_); /* 2 (d3 - d1) */                             \
        (o)[0] = _mm256_fmadd_ps(four_, d0, _mm256_fnmadd_ps(five_, d2, d4));        \
        (o)[1] = _mm256_add_ps(t0_, t1_);                                            \
        (o)[2] = _mm256_sub_ps(t0_, t1_);                                            \
        (o)[3] = _mm256_add_ps(t2_, t3_);                                            \
        (o)[4] = _mm256_sub_ps(t2_, t3_);                                            \
        (o)[5] = _mm256_fmadd_ps(four_, d1, _mm256_fnmadd_ps(five_, d3, d5));        \
    } while (0)

WG_TARGET static void WGF(in4)(const wg_job *J, const wg_tile *t, pi_index ch, float *v,
                               pi_index xs)
{
    const pi_index W = J->w;
    const float *xc = J->x + ch * J->h * W;
    __m256i cm[8];
    for (int l = 0; l < 8; l++) cm[l] = _mm256_loadu_si256((const __m256i *)t[l].cm);
    __m256 hr[6][6];
    for (int r = 0; r < 6; r++) {
        __m256 q[8];
        for (int l = 0; l < 8; l++)
            q[l] = t[l].inner ? _mm256_loadu_ps(xc + t[l].in_off + r * W)
                   : ((t[l].rows >> r) & 1) ? _mm256_maskload_ps(xc + t[l].in_off + r * W, cm[l])
                                            : _mm256_setzero_ps();
        /* 8x8 transpose; columns 6 and 7 are never formed */
        __m256 t0 = _mm256_unpacklo_ps(q[0], q[1]), t1 = _mm256_unpackhi_ps(q[0], q[1]);
        __m256 t2 = _mm256_unpacklo_ps(q[2], q[3]), t3 = _mm256_unpackhi_ps(q[2], q[3]);
        __m256 t4 = _mm256_unpacklo_ps(q[4], q[5]), t5 = _mm256_unpackhi_ps(q[4], q[5]);
        __m256 t6 = _mm256_unpacklo_ps(q[6], q[7]), t7 = _mm256_unpackhi_ps(q[6], q[7]);
        __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        __m256 d0 = _mm256_permute2f128_ps(s0, s4, 0x20);
        __m256 d1 = _mm256_permute2f128_ps(s1, s5, 0x20);
        __m256 d2 = _mm256_permute2f128_ps(s2, s6, 0x20);
        __m256 d3 = _mm256_permute2f128_ps(s3, s7, 0x20);
        __m256 d4 = _mm256_permute2f128_ps(s0, s4, 0x31);
        __m256 d5 = _mm256_permute2f128_ps(s1, s5, 0x31);
        WG_BT6(d0, d1, d2, d3, d4, d5, hr[r]);
    }
    for (int i = 0; i < 6; i++) {
        __m256 o[6];
        WG_BT6(hr[0][i], hr[1][i], hr[2][i], hr[3][i], hr[4][i], hr[5][i], o);
        for (int i2 = 0; i2 < 6; i2++) _mm256_store_ps(v + (i2 * 6 + i) * xs, o[i2]);
    }
}

/* ---- the alpha^2 GEMMs: M[xi] (K x TB) = U[xi] (K x C) @ V[xi] (C x TB) --------- */

WG_TARGET static inline __attribute__((always_inline)) void
WGF(ukernel)(const int MR, pi_index C, const float *a, const float *b, pi_index ldb, float *c,
             pi_index ldc)
{
    __m256 acc0[WG_MR], acc1[WG_MR];
    for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (pi_index p = 0; p < C; p++) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        for (int i = 0; i < MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
        a += MR;
        b += ldb;
    }
    for (int i = 0; i < MR; i++) {
        _mm256_store_ps(c + i * ldc, acc0[i]);
        _mm256_store_ps(c + i * ldc + 8, acc1[i]);
    }
}

WG_TARGET static void WGF(gemm)(const wg_job *J, const float *u, const float *v, float *mm)
{
    const pi_index C = J->c, K = J->k, TB = J->tb;
    for (pi_index t0 = 0; t0 < TB; t0 += WG_NR)
        for (pi_index k0 = 0; k0 < K; k0 += WG_MR) {
            const float *a = u + k0 * C;
            float *c = mm + k0 * TB + t0;
            switch (K - k0 < WG_MR ? (int)(K - k0) : WG_MR) {
            case 6: WGF(ukernel)(6, C, a, v + t0, TB, c, TB); break;
            case 5: WGF(ukernel)(5, C, a, v + t0, TB, c, TB); break;
            case 4: WGF(ukernel)(4, C, a, v + t0, TB, c, TB); break;
            case 3: WGF(ukernel)(3, C, a, v + t0, TB, c, TB); break;
            case 2: WGF(ukernel)(2, C, a, v + t0, TB, c, TB); break;
            default: WGF(ukernel)(1, C, a, v + t0, TB, c, TB); break;
            }
        }
}

/* ---- output transforms + epilogue: alpha^2 vectors of M -> 8 tiles of y -------- */

WG_TARGET static inline __m256 WGF(epilogue)(const wg_job *J, __m256 s)
{
    if (J->act != PI_ACT_NONE)
        s = pi_act_ps_avx2(s, J->act);
    if (J->clip) /* max/min return the second operand for NaN: NaN passes */
        s = _mm256_min_ps(_mm256_set1_ps(J->hi), _mm256_max_ps(_mm256_set1_ps(J->lo), s));
    return s;
}

/* Epilogue and store of output row p of 8 tiles: s holds 8/n pieces of n
 * floats (n = 4: two, n = 2: four), piece `sl` belonging to tile ids[sl].
 * Complete pieces move as whole 128-bit halves or 64-bit quarters; the right
 * edge and missing rows go through a bounded copy. */
WG_TARGET static inline void WGF(finish_row)(const wg_job *J, const wg_tile *t, pi_index plane,
                                             int p, __m256 s, __m256 bias, int n,
                                             const int *ids)
{
    const int slots = 8 / n;
    int full = 1;
    for (int sl = 0; sl < slots; sl++)
        full &= p < t[ids[sl]].hv && t[ids[sl]].wv == n;
    s = _mm256_add_ps(s, bias);
    if (full) {
        if (J->r) {
            const float *r0 = J->r + plane + p * J->wo;
            __m128 lo, hi;
            if (n == 4) {
                lo = _mm_loadu_ps(r0 + t[ids[0]].out_off);
                hi = _mm_loadu_ps(r0 + t[ids[1]].out_off);
            } else {
                lo = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(r0 + t[ids[0]].out_off));
                lo = _mm_loadh_pi(lo, (const __m64 *)(r0 + t[ids[1]].out_off));
                hi = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(r0 + t[ids[2]].out_off));
                hi = _mm_loadh_pi(hi, (const __m64 *)(r0 + t[ids[3]].out_off));
            }
            s = _mm256_add_ps(s, _mm256_set_m128(hi, lo));
        }
        s = WGF(epilogue)(J, s);
        float *y0 = J->y + plane + p * J->wo;
        const __m128 lo = _mm256_castps256_ps128(s), hi = _mm256_extractf128_ps(s, 1);
        if (n == 4) {
            _mm_storeu_ps(y0 + t[ids[0]].out_off, lo);
            _mm_storeu_ps(y0 + t[ids[1]].out_off, hi);
        } else {
            _mm_storel_pi((__m64 *)(y0 + t[ids[0]].out_off), lo);
            _mm_storeh_pi((__m64 *)(y0 + t[ids[1]].out_off), lo);
            _mm_storel_pi((__m64 *)(y0 + t[ids[2]].out_off), hi);
            _mm_storeh_pi((__m64 *)(y0 + t[ids[3]].out_off), hi);
        }
        return;
    }
    float buf[8];
    if (J->r) {
        for (int sl = 0; sl < slots; sl++) {
            const wg_tile *tt = t + ids[sl];
            for (int i = 0; i < n; i++)
                buf[sl * n + i] = p < tt->hv && i < tt->wv
                                      ? J->r[tt->out_off + plane + p * J->wo + i] : 0.0f;
        }
        s = _mm256_add_ps(s, _mm256_loadu_ps(buf));
    }
    _mm256_storeu_ps(buf, WGF(epilogue)(J, s));
    for (int sl = 0; sl < slots; sl++) {
        const wg_tile *tt = t + ids[sl];
        if (p >= tt->hv) continue;
        float *dst = J->y + tt->out_off + plane + p * J->wo;
        for (int i = 0; i < tt->wv; i++) dst[i] = buf[sl * n + i];
    }
}

WG_TARGET static void WGF(out4)(const wg_job *J, const wg_tile *t, pi_index kk, const float *mm,
                                pi_index xs)
{
    __m256 hq[6][4];
    for (int i2 = 0; i2 < 6; i2++) {
        const float *row = mm + i2 * 6 * xs;
        __m256 m0 = _mm256_load_ps(row), m1 = _mm256_load_ps(row + xs);
        __m256 m2 = _mm256_load_ps(row + 2 * xs), m3 = _mm256_load_ps(row + 3 * xs);
        __m256 m4 = _mm256_load_ps(row + 4 * xs), m5 = _mm256_load_ps(row + 5 * xs);
        __m256 a = _mm256_add_ps(m1, m2), b = _mm256_sub_ps(m1, m2);
        __m256 c = _mm256_add_ps(m3, m4), d = _mm256_sub_ps(m3, m4);
        hq[i2][0] = _mm256_add_ps(_mm256_add_ps(m0, a), c);
        hq[i2][1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d, b);
        hq[i2][2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
        hq[i2][3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d, b), m5);
    }
    const __m256 bias = _mm256_set1_ps(J->bias ? J->bias[kk] : 0.0f);
    const pi_index plane = kk * J->ho * J->wo;
    static const int ids[4][2] = {{0, 4}, {1, 5}, {2, 6}, {3, 7}};
    __m256 y4[4][4];
    for (int q = 0; q < 4; q++) {
        __m256 a = _mm256_add_ps(hq[1][q], hq[2][q]), b = _mm256_sub_ps(hq[1][q], hq[2][q]);
        __m256 c = _mm256_add_ps(hq[3][q], hq[4][q]), d = _mm256_sub_ps(hq[3][q], hq[4][q]);
        y4[0][q] = _mm256_add_ps(_mm256_add_ps(hq[0][q], a), c);
        y4[1][q] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d, b);
        y4[2][q] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
        y4[3][q] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d, b), hq[5][q]);
    }
    for (int p = 0; p < 4; p++) {
        const __m256 *o = y4[p];
        /* lanes are tiles; transpose to one 4-float row per tile: e[j] = tile j | tile j+4 */
        __m256 u0 = _mm256_unpacklo_ps(o[0], o[1]), u1 = _mm256_unpackhi_ps(o[0], o[1]);
        __m256 u2 = _mm256_unpacklo_ps(o[2], o[3]), u3 = _mm256_unpackhi_ps(o[2], o[3]);
        __m256 e[4];
        e[0] = _mm256_shuffle_ps(u0, u2, 0x44);
        e[1] = _mm256_shuffle_ps(u0, u2, 0xEE);
        e[2] = _mm256_shuffle_ps(u1, u3, 0x44);
        e[3] = _mm256_shuffle_ps(u1, u3, 0xEE);
        for (int j = 0; j < 4; j++) WGF(finish_row)(J, t, plane, p, e[j], bias, 4, ids[j]);
    }
}

WG_TARGET static void WGF(out2)(const wg_job *J, const wg_tile *t, pi_index kk, const float *mm,
                                pi_index xs)
{
    __m256 hq[4][2];
    for (int i2 = 0; i2 < 4; i2++) {
        const float *row = mm + i2 * 4 * xs;
        __m256 m0 = _mm256_load_ps(row), m1 = _mm256_load_ps(row + xs);
        __m256 m2 = _mm256_load_ps(row + 2 * xs), m3 = _mm256_load_ps(row + 3 * xs);
        hq[i2][0] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        hq[i2][1] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
    }
    const __m256 bias = _mm256_set1_ps(J->bias ? J->bias[kk] : 0.0f);
    const pi_index plane = kk * J->ho * J->wo;
    static const int ids[2][4] = {{0, 1, 4, 5}, {2, 3, 6, 7}};
    for (int p = 0; p < 2; p++) {
        __m256 o0, o1;
        if (p == 0) {
            o0 = _mm256_add_ps(_mm256_add_ps(hq[0][0], hq[1][0]), hq[2][0]);
            o1 = _mm256_add_ps(_mm256_add_ps(hq[0][1], hq[1][1]), hq[2][1]);
        } else {
            o0 = _mm256_sub_ps(_mm256_sub_ps(hq[1][0], hq[2][0]), hq[3][0]);
            o1 = _mm256_sub_ps(_mm256_sub_ps(hq[1][1], hq[2][1]), hq[3][1]);
        }
        /* e0 = tiles 0,1 | 4,5 and e1 = tiles 2,3 | 6,7, two floats each */
        WGF(finish_row)(J, t, plane, p, _mm256_unpacklo_ps(o0, o1), bias, 2, ids[0]);
        WGF(finish_row)(J, t, plane, p, _mm256_unpackhi_ps(o0, o1), bias, 2, ids[1]);
    }
}

#endif /* PI_WG_BODY */
