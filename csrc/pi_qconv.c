/* Int8 convolution, NCHW u8 in, NCHW out, one C call per convolution:
 * conv(x - x_zero, w - w_zero) accumulated exactly in s32, then qgemm's
 * epilogue (pyinfer.h, "int8 GEMM": float32 scale, bias, activation, and
 * QuantizeLinear for a u8 result, the same operations in the same order).
 *
 * Depthwise-like (one input channel per group), pi_u8s8_dwconv2d: direct.
 * Each thread takes one (image, input channel) plane at a time and builds a
 * row-pair buffer from it: word (r, j) of phase p holds the two u16 values
 * x[r][j*sw + p] and x[r + dh][j*sw + p] of the input padded with x_zero.
 * A tap pair (ky, ky + 1) at column offset kx is then one vpmaddwd of 8
 * consecutive words with the broadcast pair (w[ky][kx] - wz, w[ky+1][kx] - wz):
 * no shuffle in the inner loop, stride and dilation folded into the phases,
 * exact for any s8 weight (|pair sum| <= 2 * 255 * 255).  An odd kh pairs its
 * last row with a zero weight.  The padded value x_zero is taken out once per
 * output: sum (x - xz) w' = sum x w' - xz * sum w'.
 *
 * Everything else, pi_u8s8_conv2d: implicit GEMM through qgemm's packed
 * weights and micro-kernels (pi_qgemm_ukernels.h, read only; one packed B per
 * group from pi_u8s8_pack_b, rows ordered (ky, kx, c)).  The input is copied
 * once to NHWC padded with x_zero; A panels are packed straight from the
 * windows (C_g contiguous bytes per tap) in the layout of the packed B's
 * kernel, the micro-kernel runs its epilogue in registers, and each tile
 * (MR pixels x NR channels) is stored into the NCHW planes.  The loops are
 * qgemm's: (image, group, MC-pixel block) x (chunk of NR-column slivers)
 * items split over threads in contiguous runs, so a thread packs a block once.
 */
#include <omp.h>
#include <string.h>
#include "pi_internal.h"
#include "pi_qgemm_ukernels.h"
#include "pi_vmath.h"
#if PI_X86
#include <immintrin.h>
#endif

static pi_index cdiv(pi_index a, pi_index b) { return (a + b - 1) / b; }
static pi_index round64(pi_index x) { return (x + 63) / 64 * 64; }
static int out_size(int kind) { return kind == PI_QOUT_U8 ? 1 : 4; }

/* One corrected accumulator -> output element: epi_portable's arithmetic. */
static inline void epi_one(unsigned v, int kind, float scale, float bias, int has_bias, int act,
                           float out_scale, int out_zero, char *dst)
{
    if (kind == PI_QOUT_S32) {
        int iv = (int)v;
        memcpy(dst, &iv, 4);
        return;
    }
    float f = (float)(int)v * scale;
    if (has_bias)
        f = f + bias;
    if (act == PI_ACT_RELU)
        f = f > 0.0f ? f : 0.0f;
    else if (act != PI_ACT_NONE)
        f = pi_act_f32(f, act);
    if (kind == PI_QOUT_F32)
        memcpy(dst, &f, 4);
    else
        *(unsigned char *)dst = (unsigned char)pi_quantize_one(f, out_scale, out_zero, 0, 255);
}

/* ======================= depthwise: direct =================================== */

PI_EXPORT pi_index pi_u8s8_dwconv2d_packed_bytes(pi_index k, pi_index kh, pi_index kw)
{
    if (k < 0 || kh < 1 || kw < 1)
        return 0;
    return 4 * k * (1 + cdiv(kh, 2) * kw);
}

PI_EXPORT int pi_u8s8_dwconv2d_pack(pi_index k, pi_index kh, pi_index kw, const signed char *w,
                                    const int *w_zero, void *packed, pi_index packed_bytes)
{
    if (k < 0 || kh < 1 || kw < 1)
        return PI_ERR_ARG;
    if (packed_bytes < pi_u8s8_dwconv2d_packed_bytes(k, kh, kw))
        return PI_ERR_WORKSPACE;
    const pi_index np = cdiv(kh, 2), taps = np * kw;
    int *wsum = (int *)packed;
    unsigned *pairs = (unsigned *)packed + k;
    for (pi_index o = 0; o < k; o++) {
        const signed char *wk = w + o * kh * kw;
        const int z = w_zero ? w_zero[o] : 0;
        int sum = 0;
        for (pi_index q = 0; q < np; q++)
            for (pi_index j = 0; j < kw; j++) {
                const int lo = wk[2 * q * kw + j] - z;
                const int hi = 2 * q + 1 < kh ? wk[(2 * q + 1) * kw + j] - z : 0;
                sum += lo + hi;
                pairs[o * taps + q * kw + j] =
                    (unsigned)(unsigned short)lo | ((unsigned)(unsigned short)hi << 16);
            }
        wsum[o] = sum;
    }
    return PI_OK;
}

/* Geometry of the row-pair buffer, the same for every plane of a call. */
typedef struct {
    const pi_conv2d_shape *s;
    pi_index hp, wb, np;   /* padded rows, words per buffer row, ceil(kh/2) */
    pi_index plane;        /* words per phase: hp * wb */
    const pi_index *kxoff; /* kw: phase * plane + (kx*dw) / sw */
    const unsigned char *need; /* hp: 1 where a row starts a tap pair */
    int x_zero, kind, act, out_zero;
    float out_scale;
    pi_index y_hs, y_ws;
} dw_geom;

static void dw_geometry(const pi_conv2d_shape *s, dw_geom *g)
{
    g->s = s;
    g->hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1; /* rows windows reach */
    g->np = cdiv(s->kh, 2);
    g->wb = cdiv(s->ow, 8) * 8 + (s->kw - 1) * s->dw / s->sw;
    g->plane = g->hp * g->wb;
}

PI_EXPORT pi_index pi_u8s8_dwconv2d_workspace_bytes(const pi_conv2d_shape *s)
{
    if (s->oh < 1 || s->ow < 1 || s->sh < 1 || s->sw < 1)
        return 0;
    dw_geom g;
    dw_geometry(s, &g);
    const int nt = pi_num_threads < 1 ? 1 : pi_num_threads;
    return round64(g.hp) + round64(8 * s->kw) + nt * round64(4 * s->sw * g.plane);
}

#if PI_X86
/* n words (lo[i], hi[i]) as u16 pairs; NULL rows read as x_zero. */
PI_TARGET_AVX2 static void pairs_avx2(pi_index n, const unsigned char *lo,
                               const unsigned char *hi, int x_zero, unsigned *dst)
{
    const __m128i vz = _mm_set1_epi8((char)x_zero);
    pi_index i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a = lo ? _mm_loadu_si128((const __m128i *)(lo + i)) : vz;
        const __m128i b = hi ? _mm_loadu_si128((const __m128i *)(hi + i)) : vz;
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)));
        _mm256_storeu_si256((__m256i *)(dst + i + 8),
                            _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)));
    }
    const unsigned zz = (unsigned)x_zero;
    for (; i < n; i++)
        dst[i] = (lo ? lo[i] : zz) | (unsigned)(hi ? hi[i] : zz) << 16;
}
#endif

#if PI_X86
/* Stride 2: words j of phase p read columns 2j + p; n words from lo/hi rows
 * already offset to the first column, 16 at a time while 32 bytes can be
 * read.  Returns the words done. */
PI_TARGET_AVX2 static pi_index pairs_s2_avx2(pi_index n, pi_index avail,
                                             const unsigned char *lo, const unsigned char *hi,
                                             int x_zero, unsigned *dst)
{
    const __m128i even = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i vz = _mm_set1_epi8((char)x_zero);
    pi_index i = 0;
    for (; i + 16 <= n && 2 * i + 32 <= avail; i += 16) {
        __m128i a = vz, b = vz;
        if (lo) {
            const __m128i l0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(lo + 2 * i)), even);
            const __m128i l1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(lo + 2 * i + 16)), even);
            a = _mm_unpacklo_epi64(l0, l1);
        }
        if (hi) {
            const __m128i h0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(hi + 2 * i)), even);
            const __m128i h1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(hi + 2 * i + 16)), even);
            b = _mm_unpacklo_epi64(h0, h1);
        }
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)));
        _mm256_storeu_si256((__m256i *)(dst + i + 8),
                            _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)));
    }
    return i;
}
#endif

/* Buffer row of phase p from padded rows r (lo) and r + dh (hi): lo and hi
 * point at the input rows, NULL where the row is padding. */
static void dw_build_row(const dw_geom *g, int p, pi_index j0, pi_index j1,
                         const unsigned char *lo, const unsigned char *hi, pi_index x_ws,
                         unsigned *dst)
{
    const pi_conv2d_shape *s = g->s;
    const unsigned zz = (unsigned)g->x_zero;
    const unsigned pad = zz | zz << 16;
    pi_index j = 0;
    for (; j < j0; j++) dst[j] = pad;
#if PI_X86
    if (s->sw == 1 && x_ws == 1 && pi_current_isa >= PI_ISA_AVX2 && (lo || hi)) {
        const pi_index ix0 = j0 - s->pad_l + p;
        pairs_avx2(j1 - j0, lo ? lo + ix0 : NULL, hi ? hi + ix0 : NULL, g->x_zero,
                            dst + j0);
        j = j1;
    }
    if (s->sw == 2 && x_ws == 1 && pi_current_isa >= PI_ISA_AVX2 && (lo || hi)) {
        const pi_index ix0 = 2 * j0 + p - s->pad_l; /* >= 0 */
        j += pairs_s2_avx2(j1 - j0, s->w - ix0, lo ? lo + ix0 : NULL, hi ? hi + ix0 : NULL,
                           g->x_zero, dst + j0);
    }
#endif
    for (; j < j1; j++) {
        const pi_index ix = j * s->sw + p - s->pad_l;
        const unsigned a = lo ? lo[ix * x_ws] : zz, b = hi ? hi[ix * x_ws] : zz;
        dst[j] = a | b << 16;
    }
    for (; j < g->wb; j++) dst[j] = pad;
}


static void dw_build(const dw_geom *g, const unsigned char *xp, pi_index x_hs, pi_index x_ws,
                     unsigned *buf)
{
    const pi_conv2d_shape *s = g->s;
    for (int p = 0; p < s->sw; p++) {
        /* columns j*sw + p - pad_l inside [0, w): j in [j0, j1) */
        pi_index j0 = s->pad_l - p > 0 ? cdiv(s->pad_l - p, s->sw) : 0;
        pi_index j1 = s->w + s->pad_l - p > 0 ? cdiv(s->w + s->pad_l - p, s->sw) : 0;
        if (j0 > g->wb) j0 = g->wb;
        if (j1 > g->wb) j1 = g->wb;
        if (j1 < j0) j1 = j0;
        for (pi_index r = 0; r < g->hp; r++) {
            if (!g->need[r])
                continue;
            const pi_index ya = r - s->pad_t, yb = r + s->dh - s->pad_t;
            const unsigned char *lo = ya >= 0 && ya < s->h ? xp + ya * x_hs : NULL;
            const unsigned char *hi = yb >= 0 && yb < s->h ? xp + yb * x_hs : NULL;
            dw_build_row(g, p, j0, j1, lo, hi, x_ws, buf + p * g->plane + r * g->wb);
        }
    }
}

/* One output plane from the buffer, portable. */
static void dw_plane_portable(const dw_geom *g, const unsigned *buf, const unsigned *wp,
                              unsigned corr, float scale, float bias, int has_bias, char *y)
{
    const pi_conv2d_shape *s = g->s;
    const int es = out_size(g->kind);
    for (pi_index oy = 0; oy < s->oh; oy++)
        for (pi_index ox = 0; ox < s->ow; ox++) {
            unsigned acc = 0;
            for (pi_index q = 0; q < g->np; q++) {
                const unsigned *row = buf + (oy * s->sh + 2 * q * s->dh) * g->wb + ox;
                for (pi_index kx = 0; kx < s->kw; kx++) {
                    const unsigned v = row[g->kxoff[kx]], w = wp[q * s->kw + kx];
                    acc += (unsigned)((int)(v & 0xffff) * (int)(short)(w & 0xffff) +
                                      (int)(v >> 16) * (int)(short)(w >> 16));
                }
            }
            (void)es;
            epi_one(acc - corr, g->kind, scale, bias, has_bias, g->act, g->out_scale,
                    g->out_zero, y + oy * g->y_hs + ox * g->y_ws);
        }
}

#if PI_X86
/* Eight corrected accumulators -> lanes outputs at dst (element stride y_ws). */
static inline __attribute__((always_inline)) PI_TARGET_AVX2 void
dw_epi_avx2(const dw_geom *g, __m256i v, __m256 vs, __m256 vb, int has_bias, int lanes, char *dst)
{
    const int es = out_size(g->kind);
    union { __m256i i; __m256 f; unsigned char b[32]; } t;
    if (g->kind == PI_QOUT_S32) {
        t.i = v;
    } else {
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), vs);
        if (has_bias)
            f = _mm256_add_ps(f, vb);
        if (g->act == PI_ACT_RELU)
            f = _mm256_max_ps(_mm256_setzero_ps(), f); /* NaN passes, as qgemm's */
        else if (g->act != PI_ACT_NONE)
            f = pi_act_ps_avx2(f, g->act);
        if (g->kind == PI_QOUT_F32) {
            t.f = f;
        } else {
            __m256 q = _mm256_div_ps(f, _mm256_set1_ps(g->out_scale));
            q = _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(-1073741824.0f)),
                              _mm256_set1_ps(1073741824.0f));
            __m256i qi = _mm256_add_epi32(_mm256_cvtps_epi32(q), _mm256_set1_epi32(g->out_zero));
            qi = _mm256_min_epi32(_mm256_max_epi32(qi, _mm256_setzero_si256()),
                                  _mm256_set1_epi32(255));
            __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(qi),
                                        _mm256_extracti128_si256(qi, 1));
            w = _mm_packus_epi16(w, w);
            if (lanes == 8 && g->y_ws == 1) {
                _mm_storel_epi64((__m128i *)dst, w);
                return;
            }
            _mm_storel_epi64((__m128i *)t.b, w);
            for (int i = 0; i < lanes; i++) dst[i * g->y_ws] = (char)t.b[i];
            return;
        }
    }
    if (lanes == 8 && g->y_ws == 4) {
        _mm256_storeu_si256((__m256i *)dst, t.i);
        return;
    }
    for (int i = 0; i < lanes; i++) memcpy(dst + i * g->y_ws, t.b + 4 * i, (size_t)es);
}

/* NV vectors (8 outputs each) of output row oy from column ox0. */
static inline __attribute__((always_inline)) PI_TARGET_AVX2 void
dw_chunk_avx2(const int NV, const dw_geom *g, const unsigned *buf, const unsigned *wp,
              pi_index oy, pi_index ox0, __m256i vcorr, __m256 vs, __m256 vb, int has_bias,
              char *yrow)
{
    const pi_conv2d_shape *s = g->s;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (pi_index q = 0; q < g->np; q++) {
        const unsigned *row = buf + (oy * s->sh + 2 * q * s->dh) * g->wb + ox0;
        const unsigned *wq = wp + q * s->kw;
        for (pi_index kx = 0; kx < s->kw; kx++) {
            const __m256i *src = (const __m256i *)(row + g->kxoff[kx]);
            const __m256i w = _mm256_set1_epi32((int)wq[kx]);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_loadu_si256(src), w));
            if (NV > 1) a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_loadu_si256(src + 1), w));
            if (NV > 2) a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_loadu_si256(src + 2), w));
            if (NV > 3) a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_loadu_si256(src + 3), w));
        }
    }
    const pi_index rem = s->ow - ox0;
#define DW_EPI(v, acc)                                                                       \
    if (NV > v) {                                                                            \
        const pi_index l = rem - 8 * v;                                                      \
        dw_epi_avx2(g, _mm256_sub_epi32(acc, vcorr), vs, vb, has_bias, l < 8 ? (int)l : 8,   \
                    yrow + (ox0 + 8 * v) * g->y_ws);                                         \
    }
    DW_EPI(0, a0) DW_EPI(1, a1) DW_EPI(2, a2) DW_EPI(3, a3)
#undef DW_EPI
}

PI_TARGET_AVX2 static void dw_plane_avx2(const dw_geom *g, const unsigned *buf,
                                         const unsigned *wp, unsigned corr, float scale,
                                         float bias, int has_bias, char *y)
{
    const pi_conv2d_shape *s = g->s;
    const __m256i vcorr = _mm256_set1_epi32((int)corr);
    const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(bias);
    for (pi_index oy = 0; oy < s->oh; oy++) {
        char *yrow = y + oy * g->y_hs;
        for (pi_index ox0 = 0; ox0 < s->ow; ox0 += 32) {
            const pi_index nv = cdiv(s->ow - ox0, 8);
            if (nv >= 4)
                dw_chunk_avx2(4, g, buf, wp, oy, ox0, vcorr, vs, vb, has_bias, yrow);
            else if (nv == 3)
                dw_chunk_avx2(3, g, buf, wp, oy, ox0, vcorr, vs, vb, has_bias, yrow);
            else if (nv == 2)
                dw_chunk_avx2(2, g, buf, wp, oy, ox0, vcorr, vs, vb, has_bias, yrow);
            else
                dw_chunk_avx2(1, g, buf, wp, oy, ox0, vcorr, vs, vb, has_bias, yrow);
        }
    }
}
#endif

PI_EXPORT int pi_u8s8_dwconv2d(const pi_conv2d_shape *s, const unsigned char *x, pi_index x_ns,
                               pi_index x_cs, pi_index x_hs, pi_index x_ws, int x_zero,
                               const void *packed_w, int out_kind, const float *scale,
                               const float *bias, int activation, float out_scale, int out_zero,
                               void *y, pi_index y_ns, pi_index y_cs, pi_index y_hs,
                               pi_index y_ws, void *ws, pi_index ws_bytes)
{
    if (s->groups != s->c || s->groups < 1 || s->k % s->groups || s->kh < 1 || s->kw < 1 ||
        s->sh < 1 || s->sw < 1 || s->dh < 1 || s->dw < 1 || s->n < 0 || s->oh < 0 || s->ow < 0)
        return PI_ERR_ARG;
    if (out_kind < PI_QOUT_S32 || out_kind > PI_QOUT_U8 || (out_kind != PI_QOUT_S32 && !scale))
        return PI_ERR_ARG;
    if (s->n == 0 || s->oh == 0 || s->ow == 0 || s->k == 0)
        return PI_OK;
    if (ws == NULL || ws_bytes < pi_u8s8_dwconv2d_workspace_bytes(s))
        return PI_ERR_WORKSPACE;
    dw_geom g;
    dw_geometry(s, &g);
    g.x_zero = x_zero;
    g.kind = out_kind;
    g.act = activation;
    g.out_zero = out_zero;
    g.out_scale = out_scale;
    g.y_hs = y_hs;
    g.y_ws = y_ws;
    unsigned char *need = (unsigned char *)ws;
    pi_index *kxoff = (pi_index *)((char *)ws + round64(g.hp));
    char *slots = (char *)ws + round64(g.hp) + round64(8 * s->kw);
    const pi_index slot = round64(4 * s->sw * g.plane);
    memset(need, 0, (size_t)g.hp);
    for (pi_index oy = 0; oy < s->oh; oy++)
        for (pi_index q = 0; q < g.np; q++)
            need[oy * s->sh + 2 * q * s->dh] = 1;
    for (pi_index kx = 0; kx < s->kw; kx++)
        kxoff[kx] = (kx * s->dw) % s->sw * g.plane + kx * s->dw / s->sw;
    g.need = need;
    g.kxoff = kxoff;

    const pi_index mult = s->k / s->c, items = s->n * s->c;
    const pi_index taps = g.np * s->kw;
    const int *wsum = (const int *)packed_w;
    const unsigned *pairs = (const unsigned *)packed_w + s->k;
    /* 0.3 ns a tap (the fp32 depthwise kernel's measured rate; this one is no slower) */
    const int nt = pi_threads_for(0.3 * (double)s->n * s->k * s->oh * s->ow * s->kh * s->kw,
                                  (double)items);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        unsigned *buf = (unsigned *)(slots + tid * slot);
        const pi_index i0 = items * tid / nth, i1 = items * (tid + 1) / nth;
        for (pi_index it = i0; it < i1; it++) {
            const pi_index n = it / s->c, c = it % s->c;
            dw_build(&g, x + n * x_ns + c * x_cs, x_hs, x_ws, buf);
            for (pi_index m = 0; m < mult; m++) {
                const pi_index o = c * mult + m;
                const unsigned corr = (unsigned)x_zero * (unsigned)wsum[o];
                const float sc = scale ? scale[o] : 1.0f, bi = bias ? bias[o] : 0.0f;
                char *yp = (char *)y + n * y_ns + o * y_cs;
#if PI_X86
                if (pi_current_isa >= PI_ISA_AVX2) {
                    dw_plane_avx2(&g, buf, pairs + o * taps, corr, sc, bi, bias != NULL, yp);
                    continue;
                }
#endif
                dw_plane_portable(&g, buf, pairs + o * taps, corr, sc, bi, bias != NULL, yp);
            }
        }
    }
    return PI_OK;
}

/* ======================= general: implicit GEMM over qgemm's kernels ========= */




/* What a call needs to know about its groups' packed weights. */
typedef struct {
    pi_index hp, wp, kd, taps; /* NHWC padded rows/cols reached, k = taps * C_g */
    pi_index mcb, slot;        /* pixels per block, bytes per thread */
    int mr_lcm, max_mr;
    pi_index min_slivers;
} cv_plan;

static int gcd_int(int a, int b) { return b ? gcd_int(b, a % b) : a; }

/* -1 on a packed B that is not one, or of another k / n than the geometry. */
static int cv_make_plan(const pi_conv2d_shape *s, const void *const *packed_b, cv_plan *pl)
{
    const pi_index cg = s->c / s->groups, kg = s->k / s->groups;
    pl->hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    pl->wp = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
    pl->taps = s->kh * s->kw;
    pl->kd = pl->taps * cg;
    pl->mcb = -1;
    pl->mr_lcm = 1;
    pl->max_mr = 1;
    pl->min_slivers = -1;
    pi_index abytes = 0;
    for (pi_index g = 0; g < s->groups; g++) {
        const int idx = pi_u8s8_packed_b_ukernel(packed_b[g]);
        const pi_qgemm_packed_hdr *h = (const pi_qgemm_packed_hdr *)packed_b[g];
        if (idx < 0 || h->k != pl->kd || h->n != kg)
            return -1;
        const pi_qgemm_ukernel *u = pi_qgemm_ukernel_at(idx);
        const pi_index mc = pi_qgemm_block_rows(u, pl->kd);
        if (pl->mcb < 0 || mc < pl->mcb) pl->mcb = mc;
        pl->mr_lcm = pl->mr_lcm / gcd_int(pl->mr_lcm, u->mr) * u->mr;
        if (u->mr > pl->max_mr) pl->max_mr = u->mr;
        const pi_index ns = cdiv(kg, u->nr);
        if (pl->min_slivers < 0 || ns < pl->min_slivers) pl->min_slivers = ns;
        const pi_index ab = cdiv(pl->kd, u->ku) * u->ku * u->es;
        if (ab > abytes) abytes = ab;
    }
    /* even blocks, no runt: the same count of blocks, sized up to a multiple of every MR */
    const pi_index pix = s->oh * s->ow;
    const pi_index nmb = cdiv(pix, pl->mcb);
    pl->mcb = cdiv(cdiv(pix, nmb), pl->mr_lcm) * pl->mr_lcm;
    pl->slot = round64(pl->mcb * abytes) + round64(pl->mcb * 4) + round64(pl->mcb * 8) +
               round64((pi_index)pl->max_mr * pl->kd);
    return 0;
}

PI_EXPORT pi_index pi_u8s8_conv2d_workspace_bytes(const pi_conv2d_shape *s,
                                                  const void *const *packed_b)
{
    if (s->groups < 1 || s->c % s->groups || s->k % s->groups || s->oh < 1 || s->ow < 1)
        return 0;
    cv_plan pl;
    if (cv_make_plan(s, packed_b, &pl))
        return 0;
    const int nt = pi_num_threads < 1 ? 1 : pi_num_threads;
    return round64(s->n * pl.hp * pl.wp * s->c) + round64(8 * pl.taps) + nt * pl.slot;
}

/* ---- A panels from the NHWC windows --------------------------------------------- */

/* k values [0, kseg) of each of the MR rows -> the panel's KU-groups g0 ...,
 * widened to ES bytes; rows past mr are zero; sums[i] += the row's sum. */
static inline __attribute__((always_inline)) void
seg_generic(int MR, int KU, int ES, int mr, const unsigned char *const *rows, pi_index kseg,
            void *panel, pi_index g0, unsigned *sums)
{
    const pi_index ng = cdiv(kseg, KU);
    for (int i = 0; i < MR; i++) {
        unsigned sum = 0;
        for (pi_index g = 0; g < ng; g++) {
            const pi_index e = ((g0 + g) * MR + i) * KU;
            for (int u = 0; u < KU; u++) {
                const pi_index p = g * KU + u;
                const unsigned v = (i < mr && p < kseg) ? rows[i][p] : 0;
                sum += v;
                if (ES == 2)
                    ((unsigned short *)panel)[e + u] = (unsigned short)v;
                else
                    ((unsigned char *)panel)[e + u] = (unsigned char)v;
            }
        }
        sums[i] += sum;
    }
}

#if PI_X86
/* MR 4, KU 4, bytes (the w7 / VNNI-layout panel), 4 live rows: 16 bytes of
 * each row, a 4x4 transpose of 32-bit quads, row sums by psadbw.  Returns the
 * k packed (a multiple of 16). */
PI_TARGET_AVX2 static pi_index seg_4x4b_avx2(const unsigned char *const *rows, pi_index kseg,
                                             unsigned char *panel, pi_index g0, unsigned *sums)
{
    __m128i s0 = _mm_setzero_si128(), s1 = s0, s2 = s0, s3 = s0;
    const __m128i zero = _mm_setzero_si128();
    unsigned char *d = panel + g0 * 16;
    pi_index p = 0;
    for (; p + 16 <= kseg; p += 16, d += 64) {
        __m128i r0 = _mm_loadu_si128((const __m128i *)(rows[0] + p));
        __m128i r1 = _mm_loadu_si128((const __m128i *)(rows[1] + p));
        __m128i r2 = _mm_loadu_si128((const __m128i *)(rows[2] + p));
        __m128i r3 = _mm_loadu_si128((const __m128i *)(rows[3] + p));
        s0 = _mm_add_epi64(s0, _mm_sad_epu8(r0, zero));
        s1 = _mm_add_epi64(s1, _mm_sad_epu8(r1, zero));
        s2 = _mm_add_epi64(s2, _mm_sad_epu8(r2, zero));
        s3 = _mm_add_epi64(s3, _mm_sad_epu8(r3, zero));
        __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
        __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);
        _mm_storeu_si128((__m128i *)d, _mm_unpacklo_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(d + 16), _mm_unpackhi_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(d + 32), _mm_unpacklo_epi64(t1, t3));
        _mm_storeu_si128((__m128i *)(d + 48), _mm_unpackhi_epi64(t1, t3));
    }
    sums[0] += (unsigned)(_mm_cvtsi128_si64(s0) + _mm_extract_epi64(s0, 1));
    sums[1] += (unsigned)(_mm_cvtsi128_si64(s1) + _mm_extract_epi64(s1, 1));
    sums[2] += (unsigned)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1));
    sums[3] += (unsigned)(_mm_cvtsi128_si64(s3) + _mm_extract_epi64(s3, 1));
    return p;
}

/* MR 6, KU 2, 16-bit (the exact AVX2 panel): 8 bytes of a row widened to 4
 * u16 pairs, each pair stored at its group's slot (24 bytes apart). */
PI_TARGET_AVX2 static pi_index seg_6x2w_avx2(int mr, const unsigned char *const *rows,
                                             pi_index kseg, unsigned char *panel, pi_index g0,
                                             unsigned *sums)
{
    const pi_index done = kseg / 8 * 8;
    if (done == 0)
        return 0;
    const __m128i zero = _mm_setzero_si128();
    for (int i = 0; i < 6; i++) {
        unsigned *d = (unsigned *)panel + g0 * 6 + i; /* u32 pair of group g0 */
        if (i >= mr) {
            for (pi_index g = 0; g < done / 2; g++) d[g * 6] = 0;
            continue;
        }
        __m128i acc = zero;
        for (pi_index p = 0; p < done; p += 8, d += 24) {
            const __m128i b = _mm_loadl_epi64((const __m128i *)(rows[i] + p));
            acc = _mm_add_epi64(acc, _mm_sad_epu8(b, zero));
            const __m128i w = _mm_cvtepu8_epi16(b);
            d[0] = (unsigned)_mm_cvtsi128_si32(w);
            d[6] = (unsigned)_mm_extract_epi32(w, 1);
            d[12] = (unsigned)_mm_extract_epi32(w, 2);
            d[18] = (unsigned)_mm_extract_epi32(w, 3);
        }
        sums[i] += (unsigned)_mm_cvtsi128_si64(acc);
    }
    return done;
}
#endif

/* One segment of every row into the panel, by the kernel's layout. */
static void pack_seg(const pi_qgemm_ukernel *u, int mr, const unsigned char **rows,
                     pi_index kseg, void *panel, pi_index g0, unsigned *sums)
{
    const int MR = u->mr, KU = u->ku, ES = u->es;
    if (MR == 4 && KU == 4 && ES == 1) {
        pi_index done = 0;
#if PI_X86
        if (mr == 4 && pi_current_isa >= PI_ISA_AVX2)
            done = seg_4x4b_avx2(rows, kseg, (unsigned char *)panel, g0, sums);
#endif
        if (done < kseg) {
            const unsigned char *rest[4];
            for (int i = 0; i < 4; i++) rest[i] = rows[i] + done;
            seg_generic(4, 4, 1, mr, rest, kseg - done, panel, g0 + done / 4, sums);
        }
    } else if (MR == 6 && KU == 2 && ES == 2) {
        pi_index done = 0;
#if PI_X86
        if (pi_current_isa >= PI_ISA_AVX2)
            done = seg_6x2w_avx2(mr, rows, kseg, (unsigned char *)panel, g0, sums);
#endif
        if (done < kseg) {
            const unsigned char *rest[6];
            for (int i = 0; i < 6; i++) rest[i] = rows[i] + done;
            seg_generic(6, 2, 2, mr, rest, kseg - done, panel, g0 + done / 2, sums);
        }
    } else if (MR == 4 && KU == 2 && ES == 2) {
        seg_generic(4, 2, 2, mr, rows, kseg, panel, g0, sums);
    } else if (MR == 8 && KU == 4 && ES == 1) {
        seg_generic(8, 4, 1, mr, rows, kseg, panel, g0, sums);
    } else {
        seg_generic(MR, KU, ES, mr, rows, kseg, panel, g0, sums);
    }
}

typedef struct {
    const pi_conv2d_shape *s;
    const cv_plan *pl;
    const unsigned char *xh; /* NHWC, padded */
    const pi_index *tapoff;  /* taps: byte offset of tap (ky, kx) from the window's corner */
} cv_ctx;

/* The panel of pixels p0 .. p0 + mr - 1 of image n, group g. */
static void cv_pack_panel(const cv_ctx *cx, const pi_qgemm_ukernel *u, pi_index n, pi_index g,
                          pi_index p0, int mr, void *panel, int *rowsum, unsigned char *tmp)
{
    const pi_conv2d_shape *s = cx->s;
    const cv_plan *pl = cx->pl;
    const pi_index cg = s->c / s->groups;
    const unsigned char *base[PI_QGEMM_MAX_MR], *rows[PI_QGEMM_MAX_MR];
    unsigned sums[PI_QGEMM_MAX_MR] = {0};
    for (int i = 0; i < u->mr; i++) {
        const pi_index p = p0 + (i < mr ? i : 0), oy = p / s->ow, ox = p % s->ow;
        base[i] = cx->xh + ((n * pl->hp + oy * s->sh) * pl->wp + ox * s->sw) * s->c + g * cg;
    }
    if (cg % u->ku == 0 || pl->taps == 1) {
        for (pi_index t = 0; t < pl->taps; t++) {
            for (int i = 0; i < u->mr; i++) rows[i] = base[i] + cx->tapoff[t];
            pack_seg(u, mr, rows, cg, panel, t * cg / u->ku, sums);
        }
    } else { /* k groups straddle taps: the im2col rows first */
        for (int i = 0; i < mr; i++) {
            for (pi_index t = 0; t < pl->taps; t++)
                memcpy(tmp + i * pl->kd + t * cg, base[i] + cx->tapoff[t], (size_t)cg);
            rows[i] = tmp + i * pl->kd;
        }
        for (int i = mr; i < u->mr; i++) rows[i] = rows[0];
        pack_seg(u, mr, rows, pl->kd, panel, 0, sums);
    }
    for (int i = 0; i < mr; i++) rowsum[i] = (int)sums[i];
}

#if PI_X86
/* dst[j * c + ch] = src[ch * src_cs + j] for c, w >= 16 (returns 0 otherwise):
 * blocks of 16 channels x 16 columns transposed in registers (4 rounds of
 * unpacks).  The scalar byte loop storing at stride c took several cycles a
 * byte (1x1 256->64 56x56: 30% of the convolution). */
PI_TARGET_AVX2 static int transpose_16x16_avx2(pi_index c, pi_index w,
                                               const unsigned char *src, pi_index src_cs,
                                               unsigned char *dst)
{
    if (c < 16 || w < 16)
        return 0;
    /* the last block of each axis overlaps the one before: same values written twice */
    for (pi_index cb = 0; cb < c; cb += 16)
        for (pi_index jb = 0; jb < w; jb += 16) {
            const pi_index ch = cb + 16 <= c ? cb : c - 16, j = jb + 16 <= w ? jb : w - 16;
            __m128i r[16], t[16];
            for (int i = 0; i < 16; i++)
                r[i] = _mm_loadu_si128((const __m128i *)(src + (ch + i) * src_cs + j));
            for (int i = 0; i < 8; i++) {
                t[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
                t[i + 8] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
            }
            /* t[i]: columns 0-7 of channels 2i, 2i+1; t[i+8]: columns 8-15 */
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 4; i++) {
                    r[h * 8 + i] = _mm_unpacklo_epi16(t[h * 8 + 2 * i], t[h * 8 + 2 * i + 1]);
                    r[h * 8 + i + 4] = _mm_unpackhi_epi16(t[h * 8 + 2 * i], t[h * 8 + 2 * i + 1]);
                }
            /* r[h*8 + i]: columns h*8 + 0-3 (i < 4) or 4-7 (i >= 4), channels 4(i%4) .. +3 */
            for (int q = 0; q < 4; q++) {
                const int b = (q / 2) * 8 + (q % 2) * 4; /* column quad q: 4 channel-quads */
                const __m128i a0 = _mm_unpacklo_epi32(r[b], r[b + 1]);
                const __m128i a1 = _mm_unpackhi_epi32(r[b], r[b + 1]);
                const __m128i a2 = _mm_unpacklo_epi32(r[b + 2], r[b + 3]);
                const __m128i a3 = _mm_unpackhi_epi32(r[b + 2], r[b + 3]);
                unsigned char *d = dst + (j + 4 * q) * c + ch;
                _mm_storeu_si128((__m128i *)d, _mm_unpacklo_epi64(a0, a2));
                _mm_storeu_si128((__m128i *)(d + c), _mm_unpackhi_epi64(a0, a2));
                _mm_storeu_si128((__m128i *)(d + 2 * c), _mm_unpacklo_epi64(a1, a3));
                _mm_storeu_si128((__m128i *)(d + 3 * c), _mm_unpackhi_epi64(a1, a3));
            }
        }
    return 1;
}
#endif

/* Input NCHW -> NHWC rows [r0, r1) of all images, padded with x_zero. */
static void cv_nhwc_rows(const pi_conv2d_shape *s, const cv_plan *pl, const unsigned char *x,
                         pi_index x_ns, pi_index x_cs, pi_index x_hs, pi_index x_ws, int x_zero,
                         unsigned char *xh, pi_index rr)
{
    const pi_index n = rr / pl->hp, r = rr % pl->hp, iy = r - s->pad_t, c = s->c;
    unsigned char *dst = xh + rr * pl->wp * c;
    if (iy < 0 || iy >= s->h) {
        memset(dst, x_zero, (size_t)(pl->wp * c));
        return;
    }
    pi_index j0 = s->pad_l < pl->wp ? s->pad_l : pl->wp;
    pi_index j1 = s->pad_l + s->w < pl->wp ? s->pad_l + s->w : pl->wp;
    if (j1 < j0) j1 = j0;
    memset(dst, x_zero, (size_t)(j0 * c));
    memset(dst + j1 * c, x_zero, (size_t)((pl->wp - j1) * c));
    const unsigned char *src = x + n * x_ns + iy * x_hs + (j0 - s->pad_l) * x_ws;
    dst += j0 * c;
#if PI_X86
    if (x_ws == 1 && pi_current_isa >= PI_ISA_AVX2 && transpose_16x16_avx2(c, j1 - j0, src, x_cs, dst))
        return;
#endif
    for (pi_index ch = 0; ch < c; ch++) {
        const unsigned char *sc = src + ch * x_cs;
        for (pi_index j = 0; j < j1 - j0; j++)
            dst[j * c + ch] = sc[j * x_ws];
    }
}

#if PI_X86
/* A 4-row tile whose 4 pixels are consecutive in their output row: each
 * channel's 4 values are one store (4 bytes, or 16 for float/int32), the
 * tile transposed in registers. */
PI_TARGET_AVX2 static void store_4rows_avx2(const unsigned char *tile, int es, int NR, int nr,
                                            char *y0, pi_index y_cs)
{
    if (es == 1) {
        unsigned col[PI_QGEMM_MAX_NR];
        for (int j = 0; j < NR; j += 16) {
            const __m128i r0 = _mm_loadu_si128((const __m128i *)(tile + j));
            const __m128i r1 = _mm_loadu_si128((const __m128i *)(tile + NR + j));
            const __m128i r2 = _mm_loadu_si128((const __m128i *)(tile + 2 * NR + j));
            const __m128i r3 = _mm_loadu_si128((const __m128i *)(tile + 3 * NR + j));
            const __m128i a = _mm_unpacklo_epi8(r0, r1), b = _mm_unpacklo_epi8(r2, r3);
            const __m128i c = _mm_unpackhi_epi8(r0, r1), d = _mm_unpackhi_epi8(r2, r3);
            _mm_storeu_si128((__m128i *)(col + j), _mm_unpacklo_epi16(a, b));
            _mm_storeu_si128((__m128i *)(col + j + 4), _mm_unpackhi_epi16(a, b));
            if (j + 8 < NR) {
                _mm_storeu_si128((__m128i *)(col + j + 8), _mm_unpacklo_epi16(c, d));
                _mm_storeu_si128((__m128i *)(col + j + 12), _mm_unpackhi_epi16(c, d));
            }
        }
        for (int j = 0; j < nr; j++) memcpy(y0 + j * y_cs, col + j, 4);
        return;
    }
    const float *t = (const float *)tile;
    for (int j = 0; j < nr; j += 4) {
        __m128 r0 = _mm_loadu_ps(t + j), r1 = _mm_loadu_ps(t + NR + j);
        __m128 r2 = _mm_loadu_ps(t + 2 * NR + j), r3 = _mm_loadu_ps(t + 3 * NR + j);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        const __m128 cols[4] = {r0, r1, r2, r3};
        for (int q = 0; q < 4 && j + q < nr; q++)
            _mm_storeu_ps((float *)(y0 + (j + q) * y_cs), cols[q]);
    }
}
#endif

/* The tile (mr x nr, row stride NR elements) into the NCHW output; poff: the
 * mr pixels' byte offsets in a channel plane. */
static void cv_store_tile(const unsigned char *tile, int es, int NR, int mr, int nr,
                          const pi_index *poff, char *y0, pi_index y_cs)
{
    int consecutive = 1;
    for (int i = 1; i < mr; i++) consecutive &= poff[i] == poff[0] + i * es;
#if PI_X86
    if (consecutive && mr == 4 && NR % 8 == 0 && pi_current_isa >= PI_ISA_AVX2) {
        store_4rows_avx2(tile, es, NR, nr, y0 + poff[0], y_cs);
        return;
    }
#endif
    if (consecutive) {
        unsigned char col[PI_QGEMM_MAX_MR * 4];
        for (int j = 0; j < nr; j++) {
            for (int i = 0; i < mr; i++) memcpy(col + i * es, tile + (i * NR + j) * es, (size_t)es);
            memcpy(y0 + j * y_cs + poff[0], col, (size_t)(mr * es));
        }
        return;
    }
    for (int j = 0; j < nr; j++) {
        char *yc = y0 + j * y_cs;
        for (int i = 0; i < mr; i++) memcpy(yc + poff[i], tile + (i * NR + j) * es, (size_t)es);
    }
}

PI_EXPORT int pi_u8s8_conv2d(const pi_conv2d_shape *s, const unsigned char *x, pi_index x_ns,
                             pi_index x_cs, pi_index x_hs, pi_index x_ws, int x_zero,
                             const void *const *packed_b, int out_kind, const float *scale,
                             const float *bias, int activation, float out_scale, int out_zero,
                             void *y, pi_index y_ns, pi_index y_cs, pi_index y_hs, pi_index y_ws,
                             void *ws, pi_index ws_bytes)
{
    if (s->groups < 1 || s->c % s->groups || s->k % s->groups || s->kh < 1 || s->kw < 1 ||
        s->sh < 1 || s->sw < 1 || s->dh < 1 || s->dw < 1 || s->n < 0 || s->oh < 0 || s->ow < 0)
        return PI_ERR_ARG;
    if (out_kind < PI_QOUT_S32 || out_kind > PI_QOUT_U8 || (out_kind != PI_QOUT_S32 && !scale))
        return PI_ERR_ARG;
    if (s->n == 0 || s->oh == 0 || s->ow == 0 || s->k == 0)
        return PI_OK;
    cv_plan pl;
    if (cv_make_plan(s, packed_b, &pl))
        return PI_ERR_ARG;
    for (pi_index g = 0; g < s->groups; g++)
        if (!pi_u8s8_gemm_ukernel_runs(pi_u8s8_packed_b_ukernel(packed_b[g])))
            return PI_ERR_UNSUPPORTED;
    if (ws == NULL || ws_bytes < pi_u8s8_conv2d_workspace_bytes(s, packed_b))
        return PI_ERR_WORKSPACE;
    unsigned char *xh = (unsigned char *)ws;
    pi_index *tapoff = (pi_index *)((char *)ws + round64(s->n * pl.hp * pl.wp * s->c));
    char *slots = (char *)tapoff + round64(8 * pl.taps);
    for (pi_index ky = 0; ky < s->kh; ky++)
        for (pi_index kx = 0; kx < s->kw; kx++)
            tapoff[ky * s->kw + kx] = (ky * s->dh * pl.wp + kx * s->dw) * s->c;
    cv_ctx cx = {s, &pl, xh, tapoff};

    const pi_index kg = s->k / s->groups, pix = s->oh * s->ow;
    const int es = out_size(out_kind);
    const pi_index nmb = cdiv(pix, pl.mcb);
    const pi_index blocks = s->n * s->groups * nmb;
    const int nt = pi_threads_for((double)s->n * pix * s->k * pl.kd * PI_NS_PER_MAC_I8,
                                  (double)blocks * pl.min_slivers);
    /* Enough items for every thread: split N when there are few pixel blocks. */
    pi_index nch = blocks >= 2 * nt ? 1 : cdiv(2 * nt, blocks);
    if (nch > pl.min_slivers) nch = pl.min_slivers;
    const pi_index items = blocks * nch, rows_nhwc = s->n * pl.hp;

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(static)
        for (pi_index rr = 0; rr < rows_nhwc; rr++)
            cv_nhwc_rows(s, &pl, x, x_ns, x_cs, x_hs, x_ws, x_zero, xh, rr);

        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        char *wslot = slots + (pi_index)tid * pl.slot;
        const pi_index abytes = pl.slot - round64(pl.mcb * 4) - round64(pl.mcb * 8) -
                                round64((pi_index)pl.max_mr * pl.kd);
        void *ap = wslot;
        int *rowsum = (int *)(wslot + abytes);
        pi_index *poff = (pi_index *)((char *)rowsum + round64(pl.mcb * 4));
        unsigned char *tmp = (unsigned char *)poff + round64(pl.mcb * 8);
        pi_index packed_blk = -1;
        float spad[PI_QGEMM_MAX_NR], bpad[PI_QGEMM_MAX_NR];
        unsigned char tile[PI_QGEMM_MAX_MR * PI_QGEMM_MAX_NR * 4];
        const pi_index it0 = items * tid / nth, it1 = items * (tid + 1) / nth;
        for (pi_index it = it0; it < it1; it++) {
            const pi_index blk = it / nch, ch = it % nch;
            const pi_index mb = blk % nmb, g = blk / nmb % s->groups, n = blk / nmb / s->groups;
            const void *pb = packed_b[g];
            const pi_qgemm_ukernel *u = pi_qgemm_ukernel_at(pi_u8s8_packed_b_ukernel(pb));
            const int MR = u->mr, NR = u->nr;
            const pi_index kgrp = cdiv(pl.kd, u->ku), panel_bytes = kgrp * u->ku * u->es * MR;
            const pi_index p0 = mb * pl.mcb;
            const pi_index mc = pix - p0 < pl.mcb ? pix - p0 : pl.mcb;
            if (mc <= 0)
                continue;
            if (blk != packed_blk) {
                for (pi_index ir = 0; ir < mc; ir += MR) {
                    const int mr = (int)(mc - ir < MR ? mc - ir : MR);
                    cv_pack_panel(&cx, u, n, g, p0 + ir, mr, (char *)ap + ir / MR * panel_bytes,
                                  rowsum + ir, tmp);
                }
                for (pi_index i = 0; i < mc; i++) {
                    const pi_index p = p0 + i;
                    poff[i] = p / s->ow * y_hs + p % s->ow * y_ws;
                }
                packed_blk = blk;
            }
            const pi_index nsl = cdiv(kg, NR), sb = pi_qgemm_sliver_bytes(u, pl.kd);
            const pi_index s0 = nsl * ch / nch, s1 = nsl * (ch + 1) / nch;
            const char *bpk = (const char *)pb + PI_QGEMM_PACKED_HEADER;
            for (pi_index sl = s0; sl < s1; sl++) {
                const char *bb = bpk + sl * sb;
                const pi_index j0 = sl * NR, o0 = g * kg + j0;
                const int nr = (int)(kg - j0 < NR ? kg - j0 : NR);
                pi_qgemm_epi ep = {0}; /* row_scale NULL: one input zero point */
                ep.kind = out_kind;
                ep.act = activation;
                ep.a_zero = x_zero;
                ep.out_zero = out_zero;
                ep.out_scale = out_scale;
                ep.b_zero = u->wb < 8 ? NULL : (const int *)bb; /* 7-bit: folded into B */
                ep.b_corr = (const int *)bb + NR;
                ep.scale = NULL;
                ep.bias = NULL;
                if (out_kind != PI_QOUT_S32) {
                    if (nr == NR) {
                        ep.scale = scale + o0;
                        ep.bias = bias ? bias + o0 : NULL;
                    } else {
                        for (int j = 0; j < NR; j++) {
                            spad[j] = j < nr ? scale[o0 + j] : 0.0f;
                            bpad[j] = j < nr && bias ? bias[o0 + j] : 0.0f;
                        }
                        ep.scale = spad;
                        ep.bias = bias ? bpad : NULL;
                    }
                }
                const void *bs = bb + (pi_index)NR * 8;
                char *y0 = (char *)y + n * y_ns + o0 * y_cs;
                for (pi_index ir = 0; ir < mc; ir += MR) {
                    const int mr = (int)(mc - ir < MR ? mc - ir : MR);
                    ep.rowsum = rowsum + ir;
                    u->fn(mr, kgrp, (const char *)ap + ir / MR * panel_bytes, bs, tile,
                          (pi_index)NR * es, &ep);
                    cv_store_tile(tile, es, NR, mr, nr, poff + ir, y0, y_cs);
                }
            }
        }
    }
    return PI_OK;
}
