/*
 * pi_attention.c -- fused scaled dot-product attention (pyinfer.h):
 *   out = softmax(q k^T * scale + mask) v   for every (batch, head),
 * without a score matrix in memory beyond a few rows.
 *
 * float32 vector path (AVX2 and AVX-512, the same text instantiated per
 * width, as in pi_softmax.c).  A task is (b, h, a chunk of up to
 * PI_ATTN_QC query rows); OpenMP splits the tasks.  Per key block of
 * attn_kb() keys, K^T and V are packed into NR-wide panels (NR = two vector
 * widths: 16 on AVX2, 32 on AVX-512) in the thread's workspace -- strided
 * views such as the (B, S, H*D) projections seen as (B, H, S, D) cost one
 * small copy, never a transpose of the whole tensor.  Then, for every MR = 6
 * query rows: one 6 x NR micro-kernel (12 accumulators) computes their
 * scores against each K panel; each row gets scale, mask, max, exp and sum
 * (the exp of pi_vmath.h, minus what an argument that is never positive
 * does not need: attn_expneg_ps); the same micro-kernel multiplies the rows
 * by each V panel.  The block is sized so that packed K and V stay in L2
 * (PI_ATTN_KV_BYTES); with more keys than one block the online-softmax
 * ("flash") update keeps a running max m, sum l and unnormalised output O
 * per row: m' = max(m, rowmax), O = O exp(m - m') + P V,
 * l = l exp(m - m') + sum(P), out = O / l after the last block.  With one
 * block (BERT-sized sequences) the row of P V is scaled by 1/sum as it is
 * stored, and the K/V panels stay packed across a thread's consecutive
 * chunks of the same head.
 *
 * float64 and the portable float32 path: one query row at a time in double
 * (score row, max, exp, sum, then P v), libm exp; same task split.
 *
 * Special values are those of the NumPy reference exp(s - max) / sum(...):
 * a row whose scores are all -inf (fully masked) comes out NaN, so does a row
 * with a NaN or +inf score; -inf scores in a row with a finite max weigh 0.
 */
#ifndef PI_ATTN_BODY

#include <math.h>
#include <omp.h>
#include <string.h>
#include "pi_vmath.h"

#define PI_ATTN_MR 6
/* Widest panel (AVX-512): workspace sizes use it whatever the ISA. */
#define PI_ATTN_NR_MAX 32
/* Query rows of one task: bounds the O/m/l scratch of the flash path. */
#define PI_ATTN_QC 128
/* Packed K and V of one key block: well inside Zen 3's / Skylake's L2. */
#define PI_ATTN_KV_BYTES (192 * 1024)
/* The fixed part of one head's time at 1 thread (attn_single_ns). */
#define PI_ATTN_HEAD_NS 3000.0
/* A split call loses about twice the fork cost (heads move between the
 * cores' caches from call to call under schedule(dynamic)): 12 heads of
 * 16x16 keys took 101 us on 1 thread and 116 on 2, of 1x128 155 and 143, of
 * 32x32 178 and 166 (load 0.8).  Its work is weighed at 1/PI_ATTN_SPLIT_COST. */
#define PI_ATTN_SPLIT_COST 2.0
/* One thread's time for the call (pi_threads_for): both products at
 * micro-kernel speed, one exp per score, and per head a fixed cost and the
 * packing of K and V (12 heads of 1 x 128 keys x 64 took 94 us at 1 thread,
 * of 16 x 16 keys 54 us, though their products are 8 and 2 us). */
static double attn_single_ns(int elem, pi_index nb, pi_index nh, pi_index sq, pi_index sk,
                             pi_index d, pi_index dv)
{
    double heads = (double)nb * nh, scores = heads * sq * sk;
    double per_head = PI_ATTN_HEAD_NS + (double)sk * (d + dv) * 12 * PI_NS_PER_BYTE;
    return (scores * (2.0 * (d + dv) * PI_NS_PER_FLOP + PI_NS_PER_TRANSC) + heads * per_head) *
           (elem / 4);
}

typedef struct {
    pi_index nb, nh, sq, sk, d, dv;
    pi_index kb, nkb;   /* keys per block, blocks */
    pi_index qc, nc;    /* query rows per task, tasks per head */
    float scale32;
    double scale64;
    const void *q, *k, *v, *m;
    void *o;
    pi_index qs[4], ks[4], vs[4], ms[4], os[4]; /* element strides (b, h, row, col) */
} attn_args;

/* One thread's slice of the workspace (f32 vector path). */
typedef struct {
    float *kp, *vp, *qp, *s, *mrow, *tile, *o, *rm, *rl, *alpha;
    pi_index packed_bh; /* head whose only key block is in kp/vp, or -1 */
} attn_ws32;

static pi_index attn_round_up(pi_index x, pi_index a) { return (x + a - 1) / a * a; }
static pi_index attn_min(pi_index a, pi_index b) { return a < b ? a : b; }

static pi_index attn_kb(pi_index sk, pi_index d, pi_index dv)
{
    pi_index per_key = (d + attn_round_up(dv, PI_ATTN_NR_MAX)) * (pi_index)sizeof(float);
    pi_index kb = PI_ATTN_KV_BYTES / (per_key > 0 ? per_key : 1);
    kb = kb / PI_ATTN_NR_MAX * PI_ATTN_NR_MAX;
    if (kb < PI_ATTN_NR_MAX)
        kb = PI_ATTN_NR_MAX;
    return sk < kb ? sk : kb;
}

/* Float counts of the f32 vector workspace regions, each a multiple of 16
 * (64 bytes); `out` (may be NULL) gets the offsets. */
static pi_index attn_layout32(pi_index sk, pi_index d, pi_index dv, pi_index *out)
{
    const pi_index kb = attn_kb(sk, d, dv), kbp = attn_round_up(kb, PI_ATTN_NR_MAX);
    const pi_index dvp = attn_round_up(dv, PI_ATTN_NR_MAX);
    const int flash = sk > kb;
    const pi_index sizes[10] = {
        kbp * d,                            /* kp: K^T panels */
        kb * dvp,                           /* vp: V panels */
        PI_ATTN_MR * d,                     /* qp: Q rows with a non-unit column stride */
        PI_ATTN_MR * kbp,                   /* s: score / probability rows */
        kbp,                                /* mrow: a mask row with a non-unit stride */
        PI_ATTN_MR * PI_ATTN_NR_MAX,        /* tile */
        flash ? PI_ATTN_QC * dvp : 0,       /* o: unnormalised output rows */
        flash ? PI_ATTN_QC : 0,             /* rm: running max */
        flash ? PI_ATTN_QC : 0,             /* rl: running sum */
        PI_ATTN_MR,                         /* alpha: this block's rescale per row */
    };
    pi_index total = 0;
    for (int i = 0; i < 10; i++) {
        if (out)
            out[i] = total;
        total += attn_round_up(sizes[i], 16);
    }
    return total;
}

/* Bytes one thread needs, for every path that may run this call. */
static pi_index attn_thread_bytes(int elem_size, pi_index sk, pi_index d, pi_index dv)
{
    pi_index scalar = attn_round_up((sk + dv) * (pi_index)sizeof(double), 64);
    if (elem_size == 8)
        return scalar;
    pi_index vec = attn_layout32(sk, d, dv, NULL) * (pi_index)sizeof(float);
    return vec > scalar ? vec : scalar;
}

PI_EXPORT pi_index pi_attention_workspace_bytes(int elem_size, pi_index sq, pi_index sk,
                                                pi_index d, pi_index dv, int threads)
{
    if ((elem_size != 4 && elem_size != 8) || sq < 0 || sk < 0 || d < 0 || dv < 0)
        return 0;
    return (threads < 1 ? 1 : threads) * attn_thread_bytes(elem_size, sk, d, dv);
}

/* Tasks: chunks of query rows small enough that every thread gets a few
 * (load balance), large enough that a chunk amortises packing its K and V.
 * Threads take them one by one (schedule(dynamic)): on a shared machine a
 * descheduled thread would otherwise hold its static share while the other
 * waits at the barrier; a thread that takes the next chunk of the head it
 * packed last keeps the panels (w->packed_bh). */
static void attn_split(attn_args *g, int nt)
{
    const pi_index bh = g->nb * g->nh;
    const pi_index want = 4 * (pi_index)nt;
    const pi_index per_head = (want + bh - 1) / bh;
    pi_index qc = (g->sq + per_head - 1) / per_head;
    pi_index lo = attn_min(4 * PI_ATTN_MR, g->sq);
    qc = qc < lo ? lo : qc;
    qc = qc > PI_ATTN_QC ? PI_ATTN_QC : qc;
    g->qc = qc;
    g->nc = (g->sq + qc - 1) / qc;
    g->kb = attn_kb(g->sk, g->d, g->dv);
    g->nkb = (g->sk + g->kb - 1) / g->kb;
}

/* kn keys (rows of k, j0 already applied) as K^T panels: panel p holds keys
 * p*nr .. p*nr+nr-1 as d rows of nr values, zero past kn. */
static void attn_pack_kt(pi_index kn, pi_index d, const float *k, pi_index rs, pi_index cs,
                         int nr, float *kp)
{
    const pi_index np = (kn + nr - 1) / nr;
    for (pi_index j = 0; j < kn; j++) {
        const float *src = k + j * rs;
        float *dst = kp + (j / nr) * d * nr + j % nr;
        for (pi_index c = 0; c < d; c++)
            dst[c * nr] = src[c * cs];
    }
    for (pi_index j = kn; j < np * nr; j++) {
        float *dst = kp + (j / nr) * d * nr + j % nr;
        for (pi_index c = 0; c < d; c++)
            dst[c * nr] = 0.0f;
    }
}

#if PI_X86
/* attn_pack_kt for a unit column stride: 8 keys x 8 features at a time,
 * transposed in registers (the scalar loop's strided stores cost ~10% of a
 * BERT-sized head).  AVX2, so the AVX-512 path uses it too. */
PI_TARGET_AVX2 static void attn_pack_kt_avx2(pi_index kn, pi_index d, const float *k,
                                             pi_index rs, int nr, float *kp)
{
    const pi_index j8 = kn & ~(pi_index)7, d8 = d & ~(pi_index)7;
    for (pi_index j = 0; j < j8; j += 8) {
        float *panel = kp + (j / nr) * d * nr + j % nr;
        const float *src = k + j * rs;
        for (pi_index c = 0; c < d8; c += 8) {
            __m256 r0 = _mm256_loadu_ps(src + c), r1 = _mm256_loadu_ps(src + rs + c);
            __m256 r2 = _mm256_loadu_ps(src + 2 * rs + c), r3 = _mm256_loadu_ps(src + 3 * rs + c);
            __m256 r4 = _mm256_loadu_ps(src + 4 * rs + c), r5 = _mm256_loadu_ps(src + 5 * rs + c);
            __m256 r6 = _mm256_loadu_ps(src + 6 * rs + c), r7 = _mm256_loadu_ps(src + 7 * rs + c);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *dst = panel + c * nr;
            _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(dst + nr, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(dst + 2 * nr, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(dst + 3 * nr, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(dst + 4 * nr, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(dst + 5 * nr, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(dst + 6 * nr, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(dst + 7 * nr, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (pi_index jj = 0; jj < 8; jj++)
            for (pi_index c = d8; c < d; c++)
                panel[c * nr + jj] = src[jj * rs + c];
    }
    const pi_index np = (kn + nr - 1) / nr;
    for (pi_index j = j8; j < np * nr; j++) {
        float *dst = kp + (j / nr) * d * nr + j % nr;
        if (j < kn)
            for (pi_index c = 0; c < d; c++)
                dst[c * nr] = k[j * rs + c];
        else
            for (pi_index c = 0; c < d; c++)
                dst[c * nr] = 0.0f;
    }
}
#endif

/* kn rows of v as panels of nr columns: panel p holds kn rows of columns
 * p*nr .. p*nr+nr-1, zero past dv. */
static void attn_pack_v(pi_index kn, pi_index dv, const float *v, pi_index rs, pi_index cs,
                        int nr, float *vp)
{
    const pi_index np = (dv + nr - 1) / nr;
    for (pi_index p = 0; p < np; p++) {
        const pi_index c0 = p * nr, w = attn_min(nr, dv - c0);
        float *dst = vp + p * kn * nr;
        for (pi_index j = 0; j < kn; j++, dst += nr) {
            const float *src = v + j * rs + c0 * cs;
            pi_index c = 0;
            if (cs == 1)
                for (; c < w; c++)
                    dst[c] = src[c];
            else
                for (; c < w; c++)
                    dst[c] = src[c * cs];
            for (; c < nr; c++)
                dst[c] = 0.0f;
        }
    }
}

/* ---- scalar paths (float64, portable float32) ----------------------------- */

#define PI_ATTN_SCALAR(T, NAME, SCALE)                                                  \
    static void NAME(const attn_args *g, pi_index t, double *ws)                        \
    {                                                                                   \
        const pi_index bhi = t / g->nc, ci = t % g->nc;                                 \
        const pi_index b = bhi / g->nh, h = bhi % g->nh;                                \
        const pi_index i0 = ci * g->qc, i1 = attn_min(g->sq, i0 + g->qc);               \
        const T *q = (const T *)g->q + b * g->qs[0] + h * g->qs[1];                     \
        const T *k = (const T *)g->k + b * g->ks[0] + h * g->ks[1];                     \
        const T *v = (const T *)g->v + b * g->vs[0] + h * g->vs[1];                     \
        const T *m = g->m ? (const T *)g->m + b * g->ms[0] + h * g->ms[1] : NULL;       \
        T *o = (T *)g->o + b * g->os[0] + h * g->os[1];                                 \
        double *s = ws, *acc = ws + g->sk;                                              \
        const double scale = (double)(SCALE);                                           \
        for (pi_index i = i0; i < i1; i++) {                                            \
            const T *qi = q + i * g->qs[2];                                             \
            double mx = -INFINITY;                                                      \
            for (pi_index j = 0; j < g->sk; j++) {                                      \
                const T *kj = k + j * g->ks[2];                                         \
                double dot = 0.0;                                                       \
                for (pi_index c = 0; c < g->d; c++)                                     \
                    dot += (double)qi[c * g->qs[3]] * (double)kj[c * g->ks[3]];         \
                dot *= scale;                                                           \
                if (m)                                                                  \
                    dot += (double)m[i * g->ms[2] + j * g->ms[3]];                      \
                s[j] = dot;                                                             \
                mx = (dot > mx || dot != dot) ? dot : mx;                               \
            }                                                                           \
            double sum = 0.0;                                                           \
            for (pi_index j = 0; j < g->sk; j++) {                                      \
                s[j] = exp(s[j] - mx);                                                  \
                sum += s[j];                                                            \
            }                                                                           \
            for (pi_index c = 0; c < g->dv; c++)                                        \
                acc[c] = 0.0;                                                           \
            for (pi_index j = 0; j < g->sk; j++) {                                      \
                const double p = s[j] / sum;                                            \
                const T *vj = v + j * g->vs[2];                                         \
                for (pi_index c = 0; c < g->dv; c++)                                    \
                    acc[c] += p * (double)vj[c * g->vs[3]];                             \
            }                                                                           \
            T *oi = o + i * g->os[2];                                                   \
            for (pi_index c = 0; c < g->dv; c++)                                        \
                oi[c * g->os[3]] = (T)acc[c];                                           \
        }                                                                               \
    }
PI_ATTN_SCALAR(float, attn_task_f32_portable, g->scale32)
PI_ATTN_SCALAR(double, attn_task_f64, g->scale64)

/* ---- f32 vector paths ----------------------------------------------------- */
#if PI_X86
#define PI_VMATH_MACROS 256
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_ATTN_BODY 1
#include "pi_attention.c"
#undef PI_ATTN_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define PI_VMATH_MACROS 512
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_ATTN_BODY 1
#include "pi_attention.c"
#undef PI_ATTN_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#endif

typedef void (*attn_task32)(const attn_args *, pi_index, attn_ws32 *);

static void attn_ws32_bind(attn_ws32 *w, void *base, pi_index sk, pi_index d, pi_index dv)
{
    pi_index off[10];
    attn_layout32(sk, d, dv, off);
    float *f = (float *)base;
    w->kp = f + off[0];
    w->vp = f + off[1];
    w->qp = f + off[2];
    w->s = f + off[3];
    w->mrow = f + off[4];
    w->tile = f + off[5];
    w->o = f + off[6];
    w->rm = f + off[7];
    w->rl = f + off[8];
    w->alpha = f + off[9];
    w->packed_bh = -1;
}

/* Byte strides to element strides; every one must be a whole number of elements. */
static int attn_strides(const pi_index *bytes, pi_index elem, pi_index *out)
{
    for (int i = 0; i < 4; i++) {
        if (bytes[i] % elem != 0)
            return 0;
        out[i] = bytes[i] / elem;
    }
    return 1;
}

/* Validation shared by both dtypes; returns PI_OK and the number of threads
 * (<= 0 means nothing to do) or an error status. */
static int attn_prepare(attn_args *g, int elem, pi_index nb, pi_index nh, pi_index sq,
                        pi_index sk, pi_index d, pi_index dv, const void *q,
                        const pi_index *q_st, const void *k, const pi_index *k_st,
                        const void *v, const pi_index *v_st, const void *mask,
                        const pi_index *m_st, void *out, const pi_index *o_st,
                        const void *ws, pi_index ws_bytes, int *nt_out)
{
    *nt_out = 0;
    if (nb < 0 || nh < 0 || sq < 0 || sk < 0 || d < 0 || dv < 0)
        return PI_ERR_ARG;
    if (nb == 0 || nh == 0 || sq == 0 || dv == 0)
        return PI_OK;
    if (sk == 0 || !q_st || !k_st || !v_st || !o_st || (mask && !m_st))
        return PI_ERR_ARG;
    if (!attn_strides(q_st, elem, g->qs) || !attn_strides(k_st, elem, g->ks) ||
        !attn_strides(v_st, elem, g->vs) || !attn_strides(o_st, elem, g->os) ||
        (mask && !attn_strides(m_st, elem, g->ms)))
        return PI_ERR_ARG;
    if (!mask)
        memset(g->ms, 0, sizeof g->ms);
    const pi_index per = attn_thread_bytes(elem, sk, d, dv);
    if (!ws || ws_bytes < per)
        return PI_ERR_WORKSPACE;
    g->nb = nb, g->nh = nh, g->sq = sq, g->sk = sk, g->d = d, g->dv = dv;
    g->q = q, g->k = k, g->v = v, g->m = mask, g->o = out;
    pi_index nt = pi_threads_for(attn_single_ns(elem, nb, nh, sq, sk, d, dv) / PI_ATTN_SPLIT_COST,
                                 (double)(ws_bytes / per));
    attn_split(g, (int)nt);
    if (nt > nb * nh * g->nc)
        nt = nb * nh * g->nc;
    *nt_out = (int)nt;
    return PI_OK;
}

typedef void (*attn_scalar_task)(const attn_args *, pi_index, double *);

/* Both entry points: check and split (attn_prepare), then the (b, h, chunk)
 * tasks over the threads, each with its own slice of ws; vec (f32 with
 * AVX2/AVX-512) or else the scalar task per task. */
static int attn_run(int elem, double scale, pi_index nb, pi_index nh, pi_index sq, pi_index sk,
                    pi_index d, pi_index dv, const void *q, const pi_index *q_st,
                    const void *k, const pi_index *k_st, const void *v, const pi_index *v_st,
                    const void *mask, const pi_index *m_st, void *out, const pi_index *o_st,
                    void *ws, pi_index ws_bytes, attn_task32 vec, attn_scalar_task scalar)
{
    attn_args g;
    int nt;
    int st = attn_prepare(&g, elem, nb, nh, sq, sk, d, dv, q, q_st, k, k_st, v, v_st, mask,
                          m_st, out, o_st, ws, ws_bytes, &nt);
    if (st != PI_OK || nt <= 0)
        return st;
    g.scale32 = (float)scale;
    g.scale64 = scale;
    const pi_index per = attn_thread_bytes(elem, sk, d, dv);
    const pi_index tasks = nb * nh * g.nc;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        void *base = (char *)ws + (pi_index)omp_get_thread_num() * per;
        if (vec) {
            attn_ws32 w;
            attn_ws32_bind(&w, base, sk, d, dv);
#pragma omp for schedule(dynamic)
            for (pi_index t = 0; t < tasks; t++)
                vec(&g, t, &w);
        } else {
#pragma omp for schedule(dynamic)
            for (pi_index t = 0; t < tasks; t++)
                scalar(&g, t, (double *)base);
        }
    }
    return PI_OK;
}

PI_EXPORT int pi_f32_attention(pi_index nb, pi_index nh, pi_index sq, pi_index sk,
                               pi_index d, pi_index dv, float scale,
                               const float *q, const pi_index *q_strides,
                               const float *k, const pi_index *k_strides,
                               const float *v, const pi_index *v_strides,
                               const float *mask, const pi_index *mask_strides,
                               float *out, const pi_index *out_strides,
                               void *ws, pi_index ws_bytes)
{
    attn_task32 vec = NULL;
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512)
        vec = pi_attn_task_f32_avx512;
    else if (pi_current_isa >= PI_ISA_AVX2)
        vec = pi_attn_task_f32_avx2;
#endif
    return attn_run((int)sizeof(float), scale, nb, nh, sq, sk, d, dv, q, q_strides, k,
                    k_strides, v, v_strides, mask, mask_strides, out, out_strides, ws, ws_bytes,
                    vec, attn_task_f32_portable);
}

PI_EXPORT int pi_f64_attention(pi_index nb, pi_index nh, pi_index sq, pi_index sk,
                               pi_index d, pi_index dv, double scale,
                               const double *q, const pi_index *q_strides,
                               const double *k, const pi_index *k_strides,
                               const double *v, const pi_index *v_strides,
                               const double *mask, const pi_index *mask_strides,
                               double *out, const pi_index *out_strides,
                               void *ws, pi_index ws_bytes)
{
    return attn_run((int)sizeof(double), scale, nb, nh, sq, sk, d, dv, q, q_strides, k,
                    k_strides, v, v_strides, mask, mask_strides, out, out_strides, ws, ws_bytes,
                    NULL, attn_task_f64);
}

#else /* PI_ATTN_BODY: the f32 vector task, once per width */

#define PI_ATTN_NR (2 * PI_VW)

/* c[r][0..NR) = sum_p a[r][p] * b[p][0..NR) for r < mr: a's rows are lda
 * elements apart with unit column stride, b is kd rows of NR packed values.
 * Rows mr..5 repeat row mr-1 (never stored), so one kernel serves every mr. */
PI_VTARGET static void PI_VFN(attn_tile_f32)(pi_index kd, int mr, const float *a, pi_index lda,
                                             const float *b, float *c, pi_index ldc)
{
    const float *a0 = a;
    const float *a1 = a + (mr > 1 ? 1 : mr - 1) * lda;
    const float *a2 = a + (mr > 2 ? 2 : mr - 1) * lda;
    const float *a3 = a + (mr > 3 ? 3 : mr - 1) * lda;
    const float *a4 = a + (mr > 4 ? 4 : mr - 1) * lda;
    const float *a5 = a + (mr > 5 ? 5 : mr - 1) * lda;
    VF c00 = V_ZERO(), c01 = V_ZERO(), c10 = V_ZERO(), c11 = V_ZERO();
    VF c20 = V_ZERO(), c21 = V_ZERO(), c30 = V_ZERO(), c31 = V_ZERO();
    VF c40 = V_ZERO(), c41 = V_ZERO(), c50 = V_ZERO(), c51 = V_ZERO();
    for (pi_index p = 0; p < kd; p++, b += PI_ATTN_NR) {
        const VF b0 = V_LOAD(b), b1 = V_LOAD(b + PI_VW);
        VF x;
        x = V_SET1(a0[p]);
        c00 = V_FMA(x, b0, c00);
        c01 = V_FMA(x, b1, c01);
        x = V_SET1(a1[p]);
        c10 = V_FMA(x, b0, c10);
        c11 = V_FMA(x, b1, c11);
        x = V_SET1(a2[p]);
        c20 = V_FMA(x, b0, c20);
        c21 = V_FMA(x, b1, c21);
        x = V_SET1(a3[p]);
        c30 = V_FMA(x, b0, c30);
        c31 = V_FMA(x, b1, c31);
        x = V_SET1(a4[p]);
        c40 = V_FMA(x, b0, c40);
        c41 = V_FMA(x, b1, c41);
        x = V_SET1(a5[p]);
        c50 = V_FMA(x, b0, c50);
        c51 = V_FMA(x, b1, c51);
    }
    V_STORE(c, c00);
    V_STORE(c + PI_VW, c01);
    if (mr > 1) {
        V_STORE(c + ldc, c10);
        V_STORE(c + ldc + PI_VW, c11);
    }
    if (mr > 2) {
        V_STORE(c + 2 * ldc, c20);
        V_STORE(c + 2 * ldc + PI_VW, c21);
    }
    if (mr > 3) {
        V_STORE(c + 3 * ldc, c30);
        V_STORE(c + 3 * ldc + PI_VW, c31);
    }
    if (mr > 4) {
        V_STORE(c + 4 * ldc, c40);
        V_STORE(c + 4 * ldc + PI_VW, c41);
    }
    if (mr > 5) {
        V_STORE(c + 5 * ldc, c50);
        V_STORE(c + 5 * ldc + PI_VW, c51);
    }
}

/* s[j] = s[j] * scale + m[j] (m NULL: no mask) for j < n; returns the max
 * (a NaN may be dropped here: it still poisons the sum later). */
PI_VTARGET static float PI_VFN(attn_scores_f32)(pi_index n, float *s, float scale,
                                                const float *m)
{
    const VF vs = V_SET1(scale), ninf = V_SET1(-INFINITY);
    VF mx0 = ninf, mx1 = ninf;
    pi_index j = 0;
    if (m) {
        for (; j + PI_VW <= n; j += PI_VW) {
            VF x = V_FMA(V_LOAD(s + j), vs, V_LOAD(m + j));
            V_STORE(s + j, x);
            mx0 = V_MAX(mx0, x);
        }
    } else {
        for (; j + PI_VW <= n; j += PI_VW) {
            VF x = V_MUL(V_LOAD(s + j), vs);
            V_STORE(s + j, x);
            mx0 = V_MAX(mx0, x);
        }
    }
    if (j < n) {
        const VTM tail = V_TAIL((int)(n - j));
        VF x = V_MUL(V_MLOAD(s + j, tail), vs);
        if (m)
            x = V_ADD(x, V_MLOAD(m + j, tail));
        V_MSTORE(s + j, tail, x);
        mx1 = V_SEL(V_TAIL_VM(tail), ninf, x);
    }
    return V_HMAX(V_MAX(mx0, mx1));
}

/* exp(x) for the softmax's x = s - max <= 0 (or NaN): pi_vmath.h's
 * exp_ps polynomial and range reduction, with 2^n built in one step and no
 * upper clamp -- what an argument that is never positive allows.  Below
 * -87.3 (results under FLT_MIN, 1e-38 of the row's largest term) it returns
 * 0, and so exp(-inf) = 0; NaN stays NaN; a positive x (only a +inf or NaN
 * max, whose row is NaN anyway) is not reduced correctly. */
PI_VTARGET static inline VF PI_VFN(attn_expneg_ps)(VF x)
{
    const VF lo = V_SET1(-87.3365478515625f);
    VM tiny = V_LT(x, lo);
    x = V_MAX(lo, x); /* NaN passes */
    VF n;
    VF p = PI_VFN(exp_reduced_ps)(x, &n);
    VF scale = V_CASTI(VI_SLLI(VI_ADD(V_CVTI(n), VI_SET1(127)), 23));
    return V_SEL(tiny, V_MUL(p, scale), V_ZERO());
}

/* s[j] = exp(s[j] - mu) for j < n; returns their sum. */
PI_VTARGET static float PI_VFN(attn_exp_f32)(pi_index n, float *s, float mu)
{
    const VF vm = V_SET1(mu);
    VF s0 = V_ZERO(), s1 = V_ZERO();
    pi_index j = 0;
    for (; j + 2 * PI_VW <= n; j += 2 * PI_VW) {
        VF e0 = PI_VFN(attn_expneg_ps)(V_SUB(V_LOAD(s + j), vm));
        VF e1 = PI_VFN(attn_expneg_ps)(V_SUB(V_LOAD(s + j + PI_VW), vm));
        V_STORE(s + j, e0);
        V_STORE(s + j + PI_VW, e1);
        s0 = V_ADD(s0, e0);
        s1 = V_ADD(s1, e1);
    }
    for (; j + PI_VW <= n; j += PI_VW) {
        VF e = PI_VFN(attn_expneg_ps)(V_SUB(V_LOAD(s + j), vm));
        V_STORE(s + j, e);
        s0 = V_ADD(s0, e);
    }
    if (j < n) {
        const VTM tail = V_TAIL((int)(n - j));
        VF e = PI_VFN(attn_expneg_ps)(V_SUB(V_MLOAD(s + j, tail), vm));
        e = V_SEL(V_TAIL_VM(tail), V_ZERO(), e);
        V_MSTORE(s + j, tail, e);
        s1 = V_ADD(s1, e);
    }
    return V_HSUM(V_ADD(s0, s1));
}

/* One task: query rows [i0, i1) of head (b, h). */
PI_VTARGET static void PI_VFN(attn_task_f32)(const attn_args *g, pi_index t, attn_ws32 *w)
{
    const int nr = PI_ATTN_NR;
    const pi_index bhi = t / g->nc, ci = t % g->nc;
    const pi_index b = bhi / g->nh, h = bhi % g->nh;
    const pi_index i0 = ci * g->qc, i1 = attn_min(g->sq, i0 + g->qc);
    const float *q = (const float *)g->q + b * g->qs[0] + h * g->qs[1];
    const float *k = (const float *)g->k + b * g->ks[0] + h * g->ks[1];
    const float *v = (const float *)g->v + b * g->vs[0] + h * g->vs[1];
    const float *m = g->m ? (const float *)g->m + b * g->ms[0] + h * g->ms[1] : NULL;
    float *o = (float *)g->o + b * g->os[0] + h * g->os[1];
    const pi_index d = g->d, dv = g->dv, npv = (dv + nr - 1) / nr;
    const pi_index sld = attn_round_up(g->kb, nr), ldo = npv * nr;
    const int single = g->nkb == 1;
    for (pi_index kbi = 0; kbi < g->nkb; kbi++) {
        const pi_index j0 = kbi * g->kb, kn = attn_min(g->kb, g->sk - j0);
        const pi_index npk = (kn + nr - 1) / nr;
        const int first = kbi == 0;
        if (!single || w->packed_bh != bhi) {
            if (g->ks[3] == 1)
                attn_pack_kt_avx2(kn, d, k + j0 * g->ks[2], g->ks[2], nr, w->kp);
            else
                attn_pack_kt(kn, d, k + j0 * g->ks[2], g->ks[2], g->ks[3], nr, w->kp);
            attn_pack_v(kn, dv, v + j0 * g->vs[2], g->vs[2], g->vs[3], nr, w->vp);
            w->packed_bh = single ? bhi : -1;
        }
        for (pi_index i = i0; i < i1; i += PI_ATTN_MR) {
            const int mr = (int)attn_min(PI_ATTN_MR, i1 - i);
            const float *a = q + i * g->qs[2];
            pi_index lda = g->qs[2];
            if (g->qs[3] != 1) {
                for (int r = 0; r < mr; r++)
                    for (pi_index c = 0; c < d; c++)
                        w->qp[r * d + c] = a[r * g->qs[2] + c * g->qs[3]];
                a = w->qp;
                lda = d;
            }
            for (pi_index p = 0; p < npk; p++)
                PI_VFN(attn_tile_f32)(d, mr, a, lda, w->kp + p * d * nr, w->s + p * nr, sld);
            for (int r = 0; r < mr; r++) {
                float *sr = w->s + r * sld;
                const float *mk = NULL;
                if (m) {
                    mk = m + (i + r) * g->ms[2] + j0 * g->ms[3];
                    if (g->ms[3] != 1) {
                        for (pi_index j = 0; j < kn; j++)
                            w->mrow[j] = mk[j * g->ms[3]];
                        mk = w->mrow;
                    }
                }
                const float mx = PI_VFN(attn_scores_f32)(kn, sr, g->scale32, mk);
                if (single) {
                    /* 1/sum scales the row of P v as it is stored (one pass less
                     * than normalising P); all -inf: exp gives zeros, and
                     * 0 * (1/0) is the reference's NaN */
                    float sum = PI_VFN(attn_exp_f32)(kn, sr, mx == -INFINITY ? 0.0f : mx);
                    w->alpha[r] = 1.0f / sum;
                } else {
                    const pi_index ri = i - i0 + r;
                    const float mo = first ? -INFINITY : w->rm[ri];
                    const float mn = mx > mo ? mx : mo;
                    const float al = mo == mn ? 1.0f : expf(mo - mn);
                    float sum = PI_VFN(attn_exp_f32)(kn, sr, mn == -INFINITY ? 0.0f : mn);
                    w->rl[ri] = first ? sum : w->rl[ri] * al + sum;
                    w->rm[ri] = mn;
                    w->alpha[r] = al;
                }
            }
            for (pi_index pv = 0; pv < npv; pv++) {
                const pi_index c0 = pv * nr, cols = attn_min(nr, dv - c0);
                PI_VFN(attn_tile_f32)(kn, mr, w->s, sld, w->vp + pv * kn * nr, w->tile, nr);
                for (int r = 0; r < mr; r++) {
                    const float *tr = w->tile + r * nr;
                    if (single) {
                        float *orow = o + (i + r) * g->os[2] + c0 * g->os[3];
                        const float rs = w->alpha[r];
                        if (g->os[3] == 1)
                            for (pi_index c = 0; c < cols; c++)
                                orow[c] = tr[c] * rs;
                        else
                            for (pi_index c = 0; c < cols; c++)
                                orow[c * g->os[3]] = tr[c] * rs;
                    } else {
                        float *acc = w->o + (i - i0 + r) * ldo + c0;
                        const float al = w->alpha[r];
                        if (first)
                            for (int c = 0; c < nr; c++)
                                acc[c] = tr[c];
                        else
                            for (int c = 0; c < nr; c++)
                                acc[c] = acc[c] * al + tr[c];
                    }
                }
            }
        }
    }
    if (!single) {
        for (pi_index i = i0; i < i1; i++) {
            const float *acc = w->o + (i - i0) * ldo;
            const float r = 1.0f / w->rl[i - i0];
            float *orow = o + i * g->os[2];
            for (pi_index c = 0; c < dv; c++)
                orow[c * g->os[3]] = acc[c] * r;
        }
    }
}

#undef PI_ATTN_NR
#endif /* PI_ATTN_BODY */
