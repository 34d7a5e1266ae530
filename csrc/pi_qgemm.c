/* int8 GEMM driver, B packing, and the quantize / dequantize / min-max kernels.
 *
 * u8 x s8 -> s32 GEMM the BLIS way (STYLE.md 6), with one difference from the
 * float GEMM (pi_gemm.c): B is a weight, packed once (pi_u8s8_pack_b, at plan
 * time) over its whole k, so there is no k blocking and the micro-kernel sums
 * all of k in registers before its epilogue runs.  The loops:
 *
 *   items: (MC-row block of A) x (chunk of NR slivers of B), split over threads
 *     pack the A block (mc x k, widened to the kernel's element; row sums)
 *      for each B sliver of the chunk (ceil(k/KU) x NR, streams from L2/L3)
 *       for each MR-row panel: micro-kernel + epilogue -> C
 *
 * MC is sized so the packed A block stays in L2 (~160 KiB of Zen 3's 512);
 * the B sliver (k x NR, 12 KiB for k = 384 on AVX2) stays in L1 across the
 * panels of a block.  Zero points never enter the inner loop:
 *   sum_k (a - za)(b - zb) = sum_k a*b - zb*rowsum(a) + za*(k*zb - colsum(b))
 * with rowsum from packing A and (k*zb - colsum) stored in the packed B.
 * Threads: items are dealt out in contiguous runs, so a thread packs each A
 * block once; small M splits N into more chunks so every thread has work.
 */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "pi_internal.h"
#include "pi_qgemm_ukernels.h"
#if PI_X86
#include <immintrin.h>
#endif

#define PI_QGEMM_ENTRY_(name, isa, MR, NR, KU, ES, WB) \
    {#name, PI_QGEMM_ISA_##isa, MR, NR, KU, ES, WB, name},
static const pi_qgemm_ukernel qtable[] = {PI_QGEMM_UKERNELS(PI_QGEMM_ENTRY_)};
#define QCOUNT ((int)(sizeof(qtable) / sizeof(qtable[0])))


const pi_qgemm_ukernel *pi_qgemm_ukernel_at(int i) { return &qtable[i]; }

static int vnni_cpu(void)
{
#if PI_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512vnni") ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

PI_EXPORT int pi_u8s8_gemm_ukernel_runs(int index)
{
    if (index < 0 || index >= QCOUNT)
        return 0;
    int isa = qtable[index].isa;
    if (isa == PI_QGEMM_ISA_avx512vnni)
        return pi_current_isa >= PI_ISA_AVX512 && vnni_cpu();
    return isa <= pi_current_isa;
}

/* Best kernel for the current ISA and weights of `wbits` bits: the highest
 * ISA that runs, first in list order among those exact for such weights. */
static int qselect(int wbits)
{
    int best = -1;
    for (int i = 0; i < QCOUNT; i++)
        if (pi_u8s8_gemm_ukernel_runs(i) && qtable[i].wb >= wbits &&
            (best < 0 || qtable[i].isa > qtable[best].isa))
            best = i;
    return best;
}

PI_EXPORT int pi_u8s8_gemm_ukernel_weight_bits(int index)
{
    return index >= 0 && index < QCOUNT ? qtable[index].wb : 0;
}

/* 7 if every |b[p][j] - b_zero[j]| <= 64 (what WB 7 kernels need), else 8. */
PI_EXPORT int pi_u8s8_weight_bits(pi_index k, pi_index n, const signed char *b, pi_index b_rs,
                                  pi_index b_cs, const int *b_zero)
{
    for (pi_index j = 0; j < n; j++) {
        const int z = b_zero ? b_zero[j] : 0;
        const signed char *col = (const signed char *)PI_CPTR_ADD(b, j * b_cs);
        for (pi_index p = 0; p < k; p++) {
            const int d = *(const signed char *)PI_CPTR_ADD(col, p * b_rs) - z;
            if (d < -64 || d > 64)
                return 8;
        }
    }
    return 7;
}

PI_EXPORT int pi_u8s8_gemm_ukernel_for(pi_index k, pi_index n, const signed char *b,
                                       pi_index b_rs, pi_index b_cs, const int *b_zero)
{
    if (k < 0 || n < 0)
        return -1;
    return qselect(pi_u8s8_weight_bits(k, n, b, b_rs, b_cs, b_zero));
}

PI_EXPORT int pi_u8s8_gemm_ukernel_info(int index, int *isa, int *mr, int *nr, int *ku, int *es,
                                        const char **name)
{
    if (index < 0 || index >= QCOUNT)
        return PI_ERR_ARG;
    const pi_qgemm_ukernel *u = &qtable[index];
    *isa = u->isa;
    *mr = u->mr;
    *nr = u->nr;
    *ku = u->ku;
    *es = u->es;
    *name = u->name;
    return PI_OK;
}

static pi_index cdiv(pi_index a, pi_index b) { return (a + b - 1) / b; }
static pi_index round64(pi_index x) { return (x + 63) / 64 * 64; }


PI_EXPORT pi_index pi_u8s8_packed_b_bytes(int ukernel, pi_index k, pi_index n)
{
    if (ukernel < 0) { /* enough for whichever pack_b(-1) picks: the 7- or the 8-bit choice */
        const pi_index b7 = qselect(7) >= 0 ? pi_u8s8_packed_b_bytes(qselect(7), k, n) : 0;
        const pi_index b8 = qselect(8) >= 0 ? pi_u8s8_packed_b_bytes(qselect(8), k, n) : 0;
        return b7 > b8 ? b7 : b8;
    }
    if (ukernel >= QCOUNT || k < 0 || n < 0)
        return 0;
    const pi_qgemm_ukernel *u = &qtable[ukernel];
    return PI_QGEMM_PACKED_HEADER + cdiv(n, u->nr) * pi_qgemm_sliver_bytes(u, k);
}

PI_EXPORT int pi_u8s8_pack_b(int ukernel, pi_index k, pi_index n,
                             const signed char *b, pi_index b_rs, pi_index b_cs, const int *b_zero,
                             void *packed, pi_index packed_bytes)
{
    if (k < 0 || n < 0)
        return PI_ERR_ARG;
    if (ukernel < 0)
        ukernel = pi_u8s8_gemm_ukernel_for(k, n, b, b_rs, b_cs, b_zero);
    if (ukernel < 0 || ukernel >= QCOUNT)
        return PI_ERR_ARG;
    if (packed_bytes < pi_u8s8_packed_b_bytes(ukernel, k, n))
        return PI_ERR_WORKSPACE;
    const pi_qgemm_ukernel *u = &qtable[ukernel];
    if (u->wb < 8 && pi_u8s8_weight_bits(k, n, b, b_rs, b_cs, b_zero) > u->wb)
        return PI_ERR_ARG;
    const int NR = u->nr, KU = u->ku, fold = u->wb < 8;
    const pi_index kg = cdiv(k, KU), nsl = cdiv(n, NR), sb = pi_qgemm_sliver_bytes(u, k);
    pi_qgemm_packed_hdr *h = (pi_qgemm_packed_hdr *)packed;
    memset(packed, 0, PI_QGEMM_PACKED_HEADER);
    h->magic = PI_QGEMM_PACKED_MAGIC;
    h->index = ukernel;
    h->k = k;
    h->n = n;
#pragma omp parallel for schedule(static) num_threads(pi_num_threads) if (k * n > 65536)
    for (pi_index s = 0; s < nsl; s++) {
        char *blk = (char *)packed + PI_QGEMM_PACKED_HEADER + s * sb;
        int *bz = (int *)blk, *bc = bz + NR;
        char *data = blk + (pi_index)NR * 8;
        memset(blk, 0, (size_t)sb);
        for (int j = 0; j < NR; j++) {
            pi_index col = s * NR + j;
            if (col >= n)
                continue;
            const signed char *src = (const signed char *)PI_CPTR_ADD(b, col * b_cs);
            const int z0 = b_zero ? b_zero[col] : 0;
            unsigned int colsum = 0; /* wraps like the s32 arithmetic of the kernels */
            for (pi_index p = 0; p < k; p++) {
                int v = *(const signed char *)PI_CPTR_ADD(src, p * b_rs);
                if (fold)
                    v -= z0; /* in [-64, 64]: checked above */
                colsum += (unsigned int)v;
                pi_index e = ((p / KU) * NR + j) * KU + p % KU;
                if (u->es == 2)
                    ((short *)data)[e] = (short)v;
                else
                    ((signed char *)data)[e] = (signed char)v;
            }
            const int z = fold ? 0 : z0;
            bz[j] = z;
            bc[j] = (int)((unsigned int)k * (unsigned int)z - colsum);
        }
        (void)kg;
    }
    return PI_OK;
}

PI_EXPORT int pi_u8s8_packed_b_ukernel(const void *packed)
{
    const pi_qgemm_packed_hdr *h = (const pi_qgemm_packed_hdr *)packed;
    return h && h->magic == PI_QGEMM_PACKED_MAGIC && h->index >= 0 && h->index < QCOUNT ? h->index : -1;
}


static pi_index qslot_bytes(const pi_qgemm_ukernel *u, pi_index k, pi_index mc)
{
    return round64(mc * cdiv(k, u->ku) * u->ku * u->es) + round64(mc * 4);
}

/* One MR-row panel of A (mr live rows, the rest zero) -> KU-groups of ES-byte
 * elements, a[i][g*KU + u] at (g*MR + i)*KU + u; rowsum[i] for live rows.
 * Inlined with constant KU/ES so the inner loops have no division. */
static inline __attribute__((always_inline)) void
qpack_panel(int MR, int KU, int ES, int mr, pi_index k, const unsigned char *a, pi_index a_rs,
            pi_index a_cs, void *dst, int *rowsum)
{
    const pi_index kg = cdiv(k, KU);
    for (int i = 0; i < MR; i++) {
        unsigned int sum = 0;
        const unsigned char *src = i < mr ? a + i * a_rs : a; /* no pointer past the rows */
        for (pi_index g = 0; g < kg; g++) {
            const pi_index e = (g * MR + i) * KU;
            for (int u = 0; u < KU; u++) {
                const pi_index p = g * KU + u;
                const unsigned v = (i < mr && p < k) ? src[p * a_cs] : 0;
                sum += v;
                if (ES == 2)
                    ((unsigned short *)dst)[e + u] = (unsigned short)v;
                else
                    ((unsigned char *)dst)[e + u] = (unsigned char)v;
            }
        }
        if (i < mr)
            rowsum[i] = (int)sum;
    }
}

#if PI_X86
/* The w7 kernel's panel (MR 4, KU 4, bytes) from rows with unit column
 * stride: 16 bytes (4 quads) of each of the 4 rows, a 4x4 transpose of
 * 32-bit quads, row sums by psadbw.  Returns how many k it packed (a multiple
 * of 16); the caller packs the rest. */
PI_TARGET_AVX2 static pi_index qpack_panel_4x4b_avx2(int mr, pi_index k, const unsigned char *a,
                                                     pi_index a_rs, unsigned char *dst,
                                                     long long *sums)
{
    if (mr != 4)
        return 0;
    __m128i s0 = _mm_setzero_si128(), s1 = s0, s2 = s0, s3 = s0;
    const __m128i zero = _mm_setzero_si128();
    pi_index p = 0;
    for (; p + 16 <= k; p += 16) {
        __m128i r0 = _mm_loadu_si128((const __m128i *)(a + p));
        __m128i r1 = _mm_loadu_si128((const __m128i *)(a + a_rs + p));
        __m128i r2 = _mm_loadu_si128((const __m128i *)(a + 2 * a_rs + p));
        __m128i r3 = _mm_loadu_si128((const __m128i *)(a + 3 * a_rs + p));
        s0 = _mm_add_epi64(s0, _mm_sad_epu8(r0, zero));
        s1 = _mm_add_epi64(s1, _mm_sad_epu8(r1, zero));
        s2 = _mm_add_epi64(s2, _mm_sad_epu8(r2, zero));
        s3 = _mm_add_epi64(s3, _mm_sad_epu8(r3, zero));
        __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
        __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);
        unsigned char *d = dst + p * 4; /* group p/4 starts at (p/4)*16 bytes */
        _mm_storeu_si128((__m128i *)d, _mm_unpacklo_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(d + 16), _mm_unpackhi_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(d + 32), _mm_unpacklo_epi64(t1, t3));
        _mm_storeu_si128((__m128i *)(d + 48), _mm_unpackhi_epi64(t1, t3));
    }
    sums[0] = _mm_cvtsi128_si64(s0) + _mm_extract_epi64(s0, 1);
    sums[1] = _mm_cvtsi128_si64(s1) + _mm_extract_epi64(s1, 1);
    sums[2] = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1);
    sums[3] = _mm_cvtsi128_si64(s3) + _mm_extract_epi64(s3, 1);
    return p;
}
#endif

/* A[0:mc, 0:k] -> MR-row panels of KU-groups, widened to ES bytes; rowsum[i]. */
static void qpack_a(const pi_qgemm_ukernel *u, pi_index mc, pi_index k, const unsigned char *a,
                    pi_index a_rs, pi_index a_cs, void *dst, int *rowsum)
{
    const int MR = u->mr, KU = u->ku;
    const pi_index kp = cdiv(k, KU) * KU;
    for (pi_index i0 = 0; i0 < mc; i0 += MR) {
        const int mr = (int)(mc - i0 < MR ? mc - i0 : MR);
        const unsigned char *src = a + i0 * a_rs;
        char *pd = (char *)dst + i0 * kp * u->es; /* panel start */
        int *rs = rowsum + i0;
        if (KU == 4 && u->es == 1 && MR == 4) {
            pi_index done = 0;
#if PI_X86
            long long sums[4];
            if (a_cs == 1 && pi_current_isa >= PI_ISA_AVX2)
                done = qpack_panel_4x4b_avx2(mr, k, src, a_rs, (unsigned char *)pd, sums);
#endif
            /* the rest of k (all of it without the fast path): a panel of its own layout */
            qpack_panel(4, 4, 1, mr, k - done, src + done * a_cs, a_rs, a_cs, pd + done * 4, rs);
#if PI_X86
            if (done)
                for (int i = 0; i < 4; i++) rs[i] = (int)((unsigned int)rs[i] + (unsigned int)sums[i]);
#endif
        } else if (KU == 4 && u->es == 1) {
            qpack_panel(MR, 4, 1, mr, k, src, a_rs, a_cs, pd, rs);
        } else if (KU == 2 && u->es == 2) {
            qpack_panel(MR, 2, 2, mr, k, src, a_rs, a_cs, pd, rs);
        } else {
            qpack_panel(MR, KU, u->es, mr, k, src, a_rs, a_cs, pd, rs);
        }
    }
}

static int out_size(int kind) { return kind == PI_QOUT_U8 ? 1 : 4; }

/* Where the rows of A come from.  u8 A is packed as it is; float A (the
 * activation of a quantized layer) is quantized block by block into a small
 * u8 buffer of the packing thread (one L2-resident block, then packed from
 * there), with per-tensor parameters given (static) or computed from A's
 * range inside the same parallel region (dynamic: ONNX DynamicQuantizeLinear),
 * or per row (per_row: each row's own DynamicQuantizeLinear parameters, found
 * as the row is quantized for packing; the epilogue then takes per-row zero
 * points and scales).
 * One C call, one fork/join: the separate min/max, quantize and GEMM calls it
 * replaces cost three thread wake-ups, a pass writing A as u8 to memory and
 * the Python between them. */
typedef struct {
    const unsigned char *a;
    pi_index a_rs, a_cs;
    const float *x; /* NULL: u8 A */
    pi_index x_rs;  /* bytes between rows; columns contiguous */
    int dynamic;
    int per_row;          /* dynamic, one scale and zero point a row (pi_f32u8s8_gemm_rows) */
    float x_scale;
    int x_zero;
    const float *w_scale; /* float A with a float/u8 result: scale[j] = x_scale * w_scale[j] */
    float *row_scale_out; /* per_row: m of each, or NULL */
    int *row_zero_out;
} qsrc;

/* Block rows and workspace of one thread: the packed A block, its row sums,
 * for float A the block as u8 and its rows' scales and zero points (per-row
 * mode); then (once) the per-thread min/max pairs. */
static pi_index qblock_rows(const pi_qgemm_ukernel *u, pi_index m, pi_index k, pi_index *nmb)
{
    pi_index mcb = pi_qgemm_block_rows(u, k);
    *nmb = cdiv(m, mcb);
    return cdiv(cdiv(m, *nmb), u->mr) * u->mr; /* even blocks, no runt */
}

static pi_index qslot_bytes_for(const pi_qgemm_ukernel *u, pi_index k, pi_index mc, int float_a)
{
    return qslot_bytes(u, k, mc) + (float_a ? round64(mc * k) + 2 * round64(mc * 4) : 0);
}

static pi_index qworkspace(const void *packed_b, pi_index m, int float_a)
{
    int idx = pi_u8s8_packed_b_ukernel(packed_b);
    if (idx < 0 || m < 0)
        return 0;
    const pi_qgemm_ukernel *u = &qtable[idx];
    pi_index k = ((const pi_qgemm_packed_hdr *)packed_b)->k;
    pi_index mc = pi_qgemm_block_rows(u, k);
    pi_index mr = cdiv(m, u->mr) * u->mr;
    if (mr < mc) mc = mr;
    const pi_index nt = pi_num_threads < 1 ? 1 : pi_num_threads;
    return nt * qslot_bytes_for(u, k, mc, float_a) + (float_a ? round64(nt * 2 * 4) : 0) +
           round64(nt * 64);
}

PI_EXPORT pi_index pi_u8s8_gemm_workspace_bytes(const void *packed_b, pi_index m)
{
    return qworkspace(packed_b, m, 0);
}

PI_EXPORT pi_index pi_f32u8s8_gemm_workspace_bytes(const void *packed_b, pi_index m)
{
    return qworkspace(packed_b, m, 1);
}

static void quantize_run(pi_index n, const float *x, float scale, int zero, int is_signed,
                         void *y);
static void minmax_run(pi_index n, const float *x, float *lo, float *hi);

/* ONNX DynamicQuantizeLinear's parameters for the range [lo, hi], in float32
 * as ops.quant.dynamic_params computes them (the range widened to hold 0,
 * scale = range / 255, zero = saturate(rint(-lo / scale)); a zero range gives
 * scale 1).  A NaN zero point (infinite range) becomes 0, as NumPy's cast does. */
static void dynamic_params(float lo, float hi, float *scale, int *zero)
{
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    const float s = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    const float z = __builtin_rintf(0.0f - lo / s);
    *scale = s;
    *zero = z > 0.0f ? (z < 255.0f ? (int)z : 255) : 0; /* NaN: 0 */
}

/* What every thread of one GEMM call shares. */
typedef struct {
    const pi_qgemm_ukernel *u;
    const qsrc *src;
    pi_index m, n, k, kg, nsl, sb, mcb, nch;
    const char *bpk; /* the packed B's slivers */
    int out_kind, activation, out_zero, az, xz, es;
    float out_scale, xs;
    const float *scale, *bias;
    char *c;
    pi_index c_rs, c_cs;
} qctx;

/* One thread's packed A block (the one it packed last) and buffers. */
typedef struct {
    void *ap;
    int *rowsum;
    unsigned char *aq;
    float *row_scale; /* per-row mode: the packed block's rows' parameters */
    int *row_zero;
    pi_index packed_mb;
} qthread;

/* Item `it`: the A block it / nch (packed unless this thread has it packed
 * already) times the it % nch-th chunk of B's slivers. */
static void qgemm_item(const qctx *cx, qthread *th, pi_index it)
{
    const pi_qgemm_ukernel *u = cx->u;
    const qsrc *src = cx->src;
    const int MR = u->mr, NR = u->nr, es = cx->es, float_a = src->x != NULL;
    const pi_index m = cx->m, n = cx->n, k = cx->k, nch = cx->nch, nsl = cx->nsl;
    const pi_index mb = it / nch, ch = it % nch;
    const pi_index i0 = mb * cx->mcb;
    const pi_index mc = m - i0 < cx->mcb ? m - i0 : cx->mcb;
    if (mc <= 0)
        return;
    if (mb != th->packed_mb) {
        if (float_a && src->per_row) {
            /* each row's range, then the row quantized by its own parameters
             * while it is still in L1: no pass over all of A before the GEMM */
            for (pi_index i = 0; i < mc; i++) {
                const float *xr = (const float *)PI_CPTR_ADD(src->x, (i0 + i) * src->x_rs);
                float lo = INFINITY, hi = -INFINITY;
                minmax_run(k, xr, &lo, &hi);
                dynamic_params(lo, hi, &th->row_scale[i], &th->row_zero[i]);
                quantize_run(k, xr, th->row_scale[i], th->row_zero[i], 0, th->aq + i * k);
            }
            qpack_a(u, mc, k, th->aq, k, 1, th->ap, th->rowsum);
        } else if (float_a) {
            for (pi_index i = 0; i < mc; i++)
                quantize_run(k, (const float *)PI_CPTR_ADD(src->x, (i0 + i) * src->x_rs), cx->xs,
                             cx->xz, 0, th->aq + i * k);
            qpack_a(u, mc, k, th->aq, k, 1, th->ap, th->rowsum);
        } else {
            qpack_a(u, mc, k, src->a + i0 * src->a_rs, src->a_rs, src->a_cs, th->ap, th->rowsum);
        }
        th->packed_mb = mb;
    }
    if (src->per_row && ch == 0 && src->row_scale_out) { /* one item a block reports them */
        memcpy(src->row_scale_out + i0, th->row_scale, (size_t)mc * sizeof(float));
        memcpy(src->row_zero_out + i0, th->row_zero, (size_t)mc * sizeof(int));
    }
    float spad[PI_QGEMM_MAX_NR], bpad[PI_QGEMM_MAX_NR];
    int rpad[PI_QGEMM_MAX_MR];
    unsigned char tile[PI_QGEMM_MAX_MR * PI_QGEMM_MAX_NR * 4];
    const pi_index s0 = nsl * ch / nch, s1 = nsl * (ch + 1) / nch;
    for (pi_index s = s0; s < s1; s++) {
        const char *blk = cx->bpk + s * cx->sb;
        const pi_index j0 = s * NR;
        const int nr = (int)(n - j0 < NR ? n - j0 : NR);
        pi_qgemm_epi ep;
        ep.kind = cx->out_kind;
        ep.act = cx->activation;
        ep.a_zero = cx->az;
        ep.out_zero = cx->out_zero;
        ep.out_scale = cx->out_scale;
        /* a 7-bit kernel's B holds b - b_zero: no b_zero term to apply */
        ep.b_zero = u->wb < 8 ? NULL : (const int *)blk;
        ep.b_corr = (const int *)blk + NR;
        ep.scale = NULL;
        ep.bias = NULL;
        ep.row_scale = NULL;
        ep.row_zero = NULL;
        if (cx->out_kind != PI_QOUT_S32) {
            const float *bias = cx->bias;
            /* per row, the epilogue multiplies w_scale by each row's scale */
            const float *whole = src->per_row ? src->w_scale : float_a ? NULL : cx->scale;
            if (nr == NR && whole) {
                ep.scale = whole + j0;
                ep.bias = bias ? bias + j0 : NULL;
            } else {
                for (int j = 0; j < NR; j++) {
                    spad[j] = j >= nr ? 0.0f
                              : whole ? whole[j0 + j] : cx->xs * src->w_scale[j0 + j];
                    bpad[j] = j < nr && bias ? bias[j0 + j] : 0.0f;
                }
                ep.scale = spad;
                ep.bias = bias ? (nr == NR ? bias + j0 : bpad) : NULL;
            }
        }
        const void *bs = blk + (pi_index)NR * 8;
        for (pi_index ir = 0; ir < mc; ir += MR) {
            const int mr = (int)(mc - ir < MR ? mc - ir : MR);
            const void *apanel = (const char *)th->ap + ir * cx->kg * u->ku * u->es;
            for (int i = 0; i < mr; i++) rpad[i] = th->rowsum[ir + i];
            ep.rowsum = rpad;
            if (src->per_row) { /* s32 results too: the zero points are per row */
                ep.row_scale = th->row_scale + ir;
                ep.row_zero = th->row_zero + ir;
            }
            char *cp = cx->c + (i0 + ir) * cx->c_rs + j0 * cx->c_cs;
            if (nr == NR && cx->c_cs == es) {
                u->fn(mr, cx->kg, apanel, bs, cp, cx->c_rs, &ep);
            } else {
                u->fn(mr, cx->kg, apanel, bs, tile, (pi_index)NR * es, &ep);
                for (int i = 0; i < mr; i++)
                    for (int j = 0; j < nr; j++)
                        memcpy(cp + i * cx->c_rs + j * cx->c_cs, tile + (i * NR + j) * es,
                               (size_t)es);
            }
        }
    }
}

static int qgemm_drive(pi_index m, pi_index n, pi_index k, const qsrc *src, int a_zero,
                       const void *packed_b, int out_kind, const float *scale, const float *bias,
                       int activation, float out_scale, int out_zero, void *c, pi_index c_rs,
                       pi_index c_cs, float *x_params, void *ws, pi_index ws_bytes)
{
    const int idx = pi_u8s8_packed_b_ukernel(packed_b);
    if (idx < 0 || out_kind < PI_QOUT_S32 || out_kind > PI_QOUT_U8)
        return PI_ERR_ARG;
    const pi_qgemm_packed_hdr *h = (const pi_qgemm_packed_hdr *)packed_b;
    if (h->k != k || h->n != n || m < 0)
        return PI_ERR_ARG;
    const int float_a = src->x != NULL;
    if (out_kind != PI_QOUT_S32 && (float_a ? src->w_scale : scale) == NULL)
        return PI_ERR_ARG;
    if (!pi_u8s8_gemm_ukernel_runs(idx))
        return PI_ERR_UNSUPPORTED;
    if (m == 0 || n == 0)
        return PI_OK;
    const pi_qgemm_ukernel *u = &qtable[idx];
    qctx cx = {0};
    cx.u = u;
    cx.src = src;
    cx.m = m;
    cx.n = n;
    cx.k = k;
    cx.kg = cdiv(k, u->ku);
    cx.nsl = cdiv(n, u->nr);
    cx.sb = pi_qgemm_sliver_bytes(u, k);
    cx.bpk = (const char *)packed_b + PI_QGEMM_PACKED_HEADER;
    cx.out_kind = out_kind;
    cx.activation = activation;
    cx.out_zero = out_zero;
    cx.out_scale = out_scale;
    cx.es = out_size(out_kind);
    cx.scale = scale;
    cx.bias = bias;
    cx.c = (char *)c;
    cx.c_rs = c_rs;
    cx.c_cs = c_cs;

    pi_index nmb;
    cx.mcb = qblock_rows(u, m, k, &nmb);
    /* float A adds its quantize pass (and per row its range): a few bytes moved a value */
    const int nt = pi_threads_for((double)m * (double)n * (double)k * PI_NS_PER_MAC_I8 +
                                      (float_a ? 12.0 * PI_NS_PER_BYTE * (double)m * (double)k : 0.0),
                                  (double)nmb * (double)cx.nsl);
    const pi_index slot = qslot_bytes_for(u, k, cx.mcb, float_a);
    const pi_index mm_bytes = float_a ? round64((pi_index)nt * 2 * 4) : 0;
    if (ws_bytes < (pi_index)nt * slot + mm_bytes + round64((pi_index)nt * 64) || ws == NULL)
        return PI_ERR_WORKSPACE;
    float *mm = (float *)((char *)ws + (pi_index)nt * slot); /* per-thread lo, hi */
    /* one claim counter a thread, a cache line apart */
    pi_index *next = (pi_index *)((char *)ws + (pi_index)nt * slot + mm_bytes);
    /* A few items a thread (split N when there are few row blocks), so that a
     * thread the OS runs late has its items taken by the others. */
    cx.nch = nmb >= 4 * nt ? 1 : cdiv(4 * nt, nmb);
    if (cx.nch > cx.nsl) cx.nch = cx.nsl;
    const pi_index items = nmb * cx.nch;
    for (int t = 0; t < nt; t++) next[t * 8] = items * t / nt;

    cx.xs = src->x_scale;
    cx.xz = src->x_zero;
    if (float_a && src->dynamic && !src->per_row) {
        /* The range before the GEMM's region, not inside it behind a barrier
         * where every thread would wait for the last one to be scheduled. */
        const int mt = pi_threads_for(4.0 * PI_NS_PER_BYTE * (double)m * (double)k, (double)m);
#pragma omp parallel num_threads(mt) if (mt > 1)
        {
            const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
            float lo = INFINITY, hi = -INFINITY;
            for (pi_index i = m * tid / nth; i < m * (tid + 1) / nth; i++)
                minmax_run(k, (const float *)PI_CPTR_ADD(src->x, i * src->x_rs), &lo, &hi);
            mm[2 * tid] = lo;
            mm[2 * tid + 1] = hi;
            if (tid == 0)
                for (int t = nth; t < mt; t++) mm[2 * t] = INFINITY, mm[2 * t + 1] = -INFINITY;
        }
        float lo = INFINITY, hi = -INFINITY;
        for (int t = 0; t < mt; t++) {
            lo = mm[2 * t] < lo ? mm[2 * t] : lo;
            hi = mm[2 * t + 1] > hi ? mm[2 * t + 1] : hi;
        }
        dynamic_params(lo, hi, &cx.xs, &cx.xz);
    }
    cx.az = float_a ? cx.xz : a_zero;

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int tid = omp_get_thread_num();
        char *wslot = (char *)ws + (pi_index)tid * slot;
        qthread th;
        th.ap = wslot;
        th.rowsum = (int *)(wslot + round64(cx.mcb * cx.kg * u->ku * u->es));
        th.aq = (unsigned char *)wslot + qslot_bytes(u, k, cx.mcb);
        th.row_scale = (float *)(wslot + qslot_bytes(u, k, cx.mcb) + round64(cx.mcb * k));
        th.row_zero = (int *)((char *)th.row_scale + round64(cx.mcb * 4));
        th.packed_mb = -1;
        /* Its own run of items first (consecutive items share an A block,
         * packed once), then whatever is left of the others' runs. */
        for (int r = 0; r < nt; r++) {
            const int owner = (tid + r) % nt;
            const pi_index end = items * (owner + 1) / nt;
            for (;;) {
                const pi_index it = __atomic_fetch_add(&next[owner * 8], 1, __ATOMIC_RELAXED);
                if (it >= end)
                    break;
                qgemm_item(&cx, &th, it);
            }
        }
    }
    if (x_params) {
        x_params[0] = cx.xs;
        x_params[1] = (float)cx.xz;
    }
    return PI_OK;
}

PI_EXPORT int pi_u8s8_gemm(pi_index m, pi_index n, pi_index k,
                           const unsigned char *a, pi_index a_rs, pi_index a_cs, int a_zero,
                           const void *packed_b,
                           int out_kind, const float *scale, const float *bias, int activation,
                           float out_scale, int out_zero,
                           void *c, pi_index c_rs, pi_index c_cs,
                           void *ws, pi_index ws_bytes)
{
    qsrc src = {0};
    src.a = a;
    src.a_rs = a_rs;
    src.a_cs = a_cs;
    return qgemm_drive(m, n, k, &src, a_zero, packed_b, out_kind, scale, bias, activation,
                       out_scale, out_zero, c, c_rs, c_cs, NULL, ws, ws_bytes);
}

PI_EXPORT int pi_f32u8s8_gemm(pi_index m, pi_index n, pi_index k,
                              const float *x, pi_index x_rs, float x_scale, int x_zero,
                              const void *packed_b,
                              int out_kind, const float *w_scale, const float *bias,
                              int activation, float out_scale, int out_zero,
                              void *c, pi_index c_rs, pi_index c_cs, float *x_params,
                              void *ws, pi_index ws_bytes)
{
    if (x == NULL || (x_scale > 0.0f && (x_zero < 0 || x_zero > 255)))
        return PI_ERR_ARG;
    qsrc src = {0};
    src.x = x;
    src.x_rs = x_rs;
    src.dynamic = !(x_scale > 0.0f); /* NaN too */
    src.x_scale = src.dynamic ? 1.0f : x_scale;
    src.x_zero = src.dynamic ? 0 : x_zero;
    src.w_scale = w_scale;
    return qgemm_drive(m, n, k, &src, 0, packed_b, out_kind, NULL, bias, activation, out_scale,
                       out_zero, c, c_rs, c_cs, x_params, ws, ws_bytes);
}

PI_EXPORT int pi_f32u8s8_gemm_rows(pi_index m, pi_index n, pi_index k,
                                   const float *x, pi_index x_rs, const void *packed_b,
                                   int out_kind, const float *w_scale, const float *bias,
                                   int activation, float out_scale, int out_zero,
                                   void *c, pi_index c_rs, pi_index c_cs,
                                   float *row_scale, int *row_zero, void *ws, pi_index ws_bytes)
{
    if (x == NULL || (row_scale == NULL) != (row_zero == NULL))
        return PI_ERR_ARG;
    qsrc src = {0};
    src.x = x;
    src.x_rs = x_rs;
    src.dynamic = 1;
    src.per_row = 1;
    src.x_scale = 1.0f;
    src.w_scale = w_scale;
    src.row_scale_out = row_scale;
    src.row_zero_out = row_zero;
    return qgemm_drive(m, n, k, &src, 0, packed_b, out_kind, NULL, bias, activation, out_scale,
                       out_zero, c, c_rs, c_cs, NULL, ws, ws_bytes);
}

/* ---- quantize, dequantize, min/max --------------------------------------------- */

#if PI_X86
/* n contiguous floats -> u8/s8 with one scale and zero point: the vector
 * twin of pi_quantize_one (same division, same clamp, cvtps2dq rounds half to
 * even under the default MXCSR). */
PI_TARGET_AVX2 static pi_index quantize_run_avx2(pi_index n, const float *x, float scale,
                                                 int zero, int lo, int hi, void *y, int is_signed)
{
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 flo = _mm256_set1_ps(-1073741824.0f), fhi = _mm256_set1_ps(1073741824.0f);
    const __m256i vz = _mm256_set1_epi32(zero), vlo = _mm256_set1_epi32(lo),
                  vhi = _mm256_set1_epi32(hi);
    pi_index i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i), vs);
        q = _mm256_min_ps(_mm256_max_ps(q, flo), fhi);
        __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(q), vz);
        v = _mm256_min_epi32(_mm256_max_epi32(v, vlo), vhi);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        __m128i b8 = is_signed ? _mm_packs_epi16(w, w) : _mm_packus_epi16(w, w);
        _mm_storel_epi64((__m128i *)((char *)y + i), b8);
    }
    return i;
}

PI_TARGET_AVX2 static pi_index minmax_avx2(pi_index n, const float *x, float *lo, float *hi)
{
    __m256 vlo = _mm256_set1_ps(*lo), vhi = _mm256_set1_ps(*hi);
    pi_index i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        vlo = _mm256_min_ps(v, vlo); /* NaN in v: keeps vlo */
        vhi = _mm256_max_ps(v, vhi);
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, vlo);
    _mm256_storeu_ps(h, vhi);
    for (int j = 0; j < 8; j++) {
        *lo = l[j] < *lo ? l[j] : *lo;
        *hi = h[j] > *hi ? h[j] : *hi;
    }
    return i;
}
#endif

static void quantize_run(pi_index n, const float *x, float scale, int zero, int is_signed,
                         void *y)
{
    const int lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
    pi_index i = 0;
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX2)
        i = quantize_run_avx2(n, x, scale, zero, lo, hi, y, is_signed);
#endif
    for (; i < n; i++) {
        int v = pi_quantize_one(x[i], scale, zero, lo, hi);
        if (is_signed)
            ((signed char *)y)[i] = (signed char)v;
        else
            ((unsigned char *)y)[i] = (unsigned char)v;
    }
}

PI_EXPORT int pi_f32_quantize(pi_index outer, pi_index channels, pi_index inner, const float *x,
                              const float *scale, const int *zero, int is_signed, void *y)
{
    if (outer < 0 || channels < 0 || inner < 0)
        return PI_ERR_ARG;
    const pi_index rows = outer * channels;
    const pi_index chunk = inner >= 4096 ? 1 : cdiv(4096, inner > 0 ? inner : 1);
    const pi_index nchunks = cdiv(rows, chunk);
#pragma omp parallel for schedule(static) num_threads(pi_num_threads) if (rows * inner > 32768)
    for (pi_index t = 0; t < nchunks; t++) {
        for (pi_index r = t * chunk; r < rows && r < (t + 1) * chunk; r++) {
            pi_index ch = r % channels;
            quantize_run(inner, x + r * inner, scale[ch], zero ? zero[ch] : 0, is_signed,
                         (char *)y + r * inner);
        }
    }
    return PI_OK;
}

PI_EXPORT int pi_dequantize_f32(int kind, pi_index outer, pi_index channels, pi_index inner,
                                const void *x, const float *scale, const int *zero, float *y)
{
    if (kind < 0 || kind > 2 || outer < 0 || channels < 0 || inner < 0)
        return PI_ERR_ARG;
    const pi_index rows = outer * channels;
#pragma omp parallel for schedule(static) num_threads(pi_num_threads) if (rows * inner > 32768)
    for (pi_index r = 0; r < rows; r++) {
        const pi_index ch = r % channels;
        const float s = scale[ch];
        const int z = zero ? zero[ch] : 0;
        float *dst = y + r * inner;
        if (kind == 0) {
            const unsigned char *src = (const unsigned char *)x + r * inner;
            for (pi_index i = 0; i < inner; i++) dst[i] = (float)((int)src[i] - z) * s;
        } else if (kind == 1) {
            const signed char *src = (const signed char *)x + r * inner;
            for (pi_index i = 0; i < inner; i++) dst[i] = (float)((int)src[i] - z) * s;
        } else {
            /* s32: the difference in 64 bits (no overflow), then to float once */
            const int *src = (const int *)x + r * inner;
            for (pi_index i = 0; i < inner; i++)
                dst[i] = (float)((long long)src[i] - z) * s;
        }
    }
    return PI_OK;
}

/* lo, hi updated with the range of n contiguous floats, NaN ignored. */
static void minmax_run(pi_index n, const float *x, float *lo, float *hi)
{
    float tl = *lo, th = *hi;
    pi_index i = 0;
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX2)
        i = minmax_avx2(n, x, &tl, &th);
#endif
    for (; i < n; i++) {
        tl = x[i] < tl ? x[i] : tl;
        th = x[i] > th ? x[i] : th;
    }
    *lo = tl;
    *hi = th;
}

PI_EXPORT int pi_f32_minmax(pi_index n, const float *x, float *lo, float *hi)
{
    if (n < 1)
        return PI_ERR_ARG;
    float l = INFINITY, h = -INFINITY;
    int nt = n > 65536 ? pi_num_threads : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        const pi_index i0 = n * tid / nth, i1 = n * (tid + 1) / nth;
        float tl = INFINITY, th = -INFINITY;
        minmax_run(i1 - i0, x + i0, &tl, &th);
#pragma omp critical(pi_minmax)
        {
            l = tl < l ? tl : l;
            h = th > h ? th : h;
        }
    }
    *lo = l;
    *hi = h;
    return PI_OK;
}
