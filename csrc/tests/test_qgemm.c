/* Standalone differential test of the int8 kernels (no Python).
 *
 * For every u8 x s8 micro-kernel this CPU runs (pi_u8s8_gemm_ukernel_runs):
 * m, n, k equal to / below / above MR, NR, KU and a multi-block size, 1 and
 * primes; strided and transposed A, strided C; per-column B zero points; all
 * three outputs (s32, f32 with bias and relu, u8 requantized).  Kernels for
 * 7-bit weights get weights with |b - b_zero| <= 64, the boundary values
 * +-64 included; a weight 65 away from its zero point must be refused by them
 * and packed for an exact kernel by the automatic choice.  The reference
 * is a naive loop in 64-bit integers with the same float32 epilogue, so every
 * result must match bit for bit.  Outputs are poisoned first.  Also quantize
 * (round half to even, saturation) and dequantize on fixed cases; float A
 * quantized per tensor and per row inside the GEMM.
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyinfer.h"

static int passed, failed;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static unsigned rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 32);
}

static void expect(int ok, const char *what, int uk, long m, long n, long k, int kind)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        if (failed < 20)
            fprintf(stderr, "FAIL %s: ukernel %d m=%ld n=%ld k=%ld kind=%d\n", what, uk, m, n, k,
                    kind);
    }
}

static int quant_ref(float x, float s, int z, int lo, int hi)
{
    float q = x / s;
    q = q > -1073741824.0f ? q : -1073741824.0f;
    q = q < 1073741824.0f ? q : 1073741824.0f;
    int v = (int)rintf(q) + z;
    return v < lo ? lo : v > hi ? hi : v;
}

static void one(int uk, long m, long n, long k, int transposed_a, int kind)
{
    const long lda = transposed_a ? m + 3 : k + 5; /* padded leading dims */
    unsigned char *a = malloc((size_t)(lda * (transposed_a ? k : m) + 1));
    signed char *b = malloc((size_t)(k * n + 1));
    int *bz = malloc(sizeof(int) * (size_t)n);
    float *scale = malloc(sizeof(float) * (size_t)n), *bias = malloc(sizeof(float) * (size_t)n);
    for (long x = 0; x < lda * (transposed_a ? k : m); x++) a[x] = (unsigned char)rnd();
    const int w7 = pi_u8s8_gemm_ukernel_weight_bits(uk) == 7;
    for (long j = 0; j < n; j++) {
        bz[j] = w7 ? (int)(rnd() % 128) - 64 : (int)(rnd() % 256) - 128;
        scale[j] = (float)(rnd() % 1000 + 1) * 1e-5f;
        bias[j] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    }
    for (long x = 0; x < k * n; x++) {
        const unsigned r = rnd();
        /* w7: b - bz in [-64, 64], one in 8 on the boundary */
        b[x] = w7 ? (signed char)(bz[x % n] + ((r & 7) == 0 ? ((r & 8) ? 64 : -64)
                                                           : (int)((r >> 4) % 129) - 64))
                  : (signed char)r;
    }
    const int az = (int)(rnd() % 256);
    const pi_index a_rs = transposed_a ? 1 : lda, a_cs = transposed_a ? lda : 1;
    pi_index pb = pi_u8s8_packed_b_bytes(uk, k, n);
    void *packed = aligned_alloc(64, (size_t)((pb + 63) / 64 * 64));
    int st = pi_u8s8_pack_b(uk, k, n, b, n, 1, bz, packed, pb);
    expect(st == PI_OK && pi_u8s8_packed_b_ukernel(packed) == uk, "pack", uk, m, n, k, kind);
    pi_index wsb = pi_u8s8_gemm_workspace_bytes(packed, m);
    void *ws = aligned_alloc(64, (size_t)((wsb + 64) / 64 * 64));
    const int es = kind == PI_QOUT_U8 ? 1 : 4;
    const long ldc = n + 2; /* strided rows: the padding must stay untouched */
    unsigned char *c = malloc((size_t)(m * ldc * es));
    memset(c, 0xA5, (size_t)(m * ldc * es));
    const float out_scale = 0.37f;
    const int out_zero = 17;
    st = pi_u8s8_gemm(m, n, k, a, a_rs, a_cs, az, packed, kind, scale,
                      kind == PI_QOUT_S32 ? NULL : bias, kind == PI_QOUT_S32 ? PI_ACT_NONE : PI_ACT_RELU,
                      out_scale, out_zero, c, ldc * es, es, ws, wsb);
    expect(st == PI_OK, "status", uk, m, n, k, kind);
    int ok = 1;
    for (long i = 0; i < m && ok; i++) {
        for (long j = 0; j < n; j++) {
            long long acc = 0;
            for (long p = 0; p < k; p++)
                acc += ((long long)a[i * a_rs + p * a_cs] - az) * ((long long)b[p * n + j] - bz[j]);
            const unsigned char *cp = c + (i * ldc + j) * es;
            if (kind == PI_QOUT_S32) {
                int got;
                memcpy(&got, cp, 4);
                ok &= got == (int)acc;
            } else {
                volatile float f = (float)(int)acc * scale[j];
                f = f + bias[j];
                f = f > 0.0f ? f : 0.0f;
                if (kind == PI_QOUT_F32) {
                    float got;
                    memcpy(&got, cp, 4);
                    ok &= memcmp(&got, (const void *)&f, 4) == 0;
                } else {
                    ok &= *cp == (unsigned char)quant_ref(f, out_scale, out_zero, 0, 255);
                }
            }
        }
        for (long x = n * es; x < ldc * es; x++) ok &= c[i * ldc * es + x] == 0xA5;
    }
    expect(ok, "values", uk, m, n, k, kind);
    free(a); free(b); free(bz); free(scale); free(bias); free(packed); free(ws); free(c);
}

/* 7-bit selection: weights within 64 of their zero points get a WB 7 kernel
 * where one runs; one weight 65 away is refused by it and gets an exact one. */
static void test_weight_bits(void)
{
    enum { K = 9, N = 5 };
    signed char b[K * N];
    int bz[N] = {-64, 0, 63, 10, -1};
    for (int x = 0; x < K * N; x++) b[x] = (signed char)(bz[x % N] + (x % 3 == 0 ? 64 : -64));
    expect(pi_u8s8_weight_bits(K, N, b, N, 1, bz) == 7, "7-bit weights", -1, 0, N, K, 0);
    int uk = pi_u8s8_gemm_ukernel_for(K, N, b, N, 1, bz);
    int w7_runs = 0;
    for (int i = 0; pi_u8s8_gemm_ukernel_weight_bits(i) != 0; i++)
        w7_runs |= pi_u8s8_gemm_ukernel_weight_bits(i) == 7 && pi_u8s8_gemm_ukernel_runs(i);
    expect(uk >= 0 && pi_u8s8_gemm_ukernel_weight_bits(uk) == (w7_runs ? 7 : 8),
           "7-bit weights get a WB 7 kernel", uk, 0, N, K, 0);
    b[4 * N + 3] = (signed char)(bz[3] + 65);
    expect(pi_u8s8_weight_bits(K, N, b, N, 1, bz) == 8, "65 is 8-bit", -1, 0, N, K, 0);
    int exact = pi_u8s8_gemm_ukernel_for(K, N, b, N, 1, bz);
    expect(exact >= 0 && pi_u8s8_gemm_ukernel_weight_bits(exact) == 8, "65 gets an exact kernel",
           exact, 0, N, K, 0);
    {   /* the -1 size fits the -1 choice for 7-bit weights at the smallest size too */
        char auto_packed[1024] __attribute__((aligned(64)));
        const signed char one_w = 64;
        const pi_index ab = pi_u8s8_packed_b_bytes(-1, 1, 1);
        expect(ab > 0 && ab <= (pi_index)sizeof auto_packed &&
                   pi_u8s8_pack_b(-1, 1, 1, &one_w, 1, 1, NULL, auto_packed, ab) == PI_OK,
               "pack_b(-1) fits packed_b_bytes(-1)", -1, 0, 1, 1, 0);
    }
    if (w7_runs) {
        char packed[4096] __attribute__((aligned(64)));
        pi_index pb = pi_u8s8_packed_b_bytes(uk, K, N);
        expect(pb <= (pi_index)sizeof packed &&
                   pi_u8s8_pack_b(uk, K, N, b, N, 1, bz, packed, pb) == PI_ERR_ARG,
               "WB 7 kernel refuses a weight 65 away", uk, 0, N, K, 0);
        b[4 * N + 3] = (signed char)(bz[3] - 65);
        expect(pi_u8s8_pack_b(uk, K, N, b, N, 1, bz, packed, pb) == PI_ERR_ARG,
               "WB 7 kernel refuses a weight -65 away", uk, 0, N, K, 0);
    }
}

static void test_quantize(void)
{
    const float x[12] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 300.0f, -300.0f, 3.49f, 127.5f,
                         -128.5f, 0.0f};
    const int want_u8[12] = {0, 2, 2, 0, 0, 0, 255, 0, 3, 128, 0, 0};
    const int want_s8[12] = {0, 2, 2, 0, -2, -2, 127, -128, 3, 127, -128, 0};
    unsigned char yu[12];
    signed char ys[12];
    float s = 1.0f;
    int z = 0;
    pi_f32_quantize(1, 1, 12, x, &s, &z, 0, yu);
    pi_f32_quantize(1, 1, 12, x, &s, NULL, 1, ys);
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= yu[i] == want_u8[i] && ys[i] == want_s8[i];
    expect(ok, "quantize ties/saturation", -1, 12, 0, 0, 0);
    /* per-channel on a (2, 3, 5) array vs the scalar rule, long enough for vector tails */
    float xs[30], sc[3] = {0.1f, 0.25f, 2.0f};
    int zp[3] = {3, 128, 250};
    unsigned char y[30];
    for (int i = 0; i < 30; i++) xs[i] = (float)((int)(rnd() % 2001) - 1000) * 0.05f;
    pi_f32_quantize(2, 3, 5, xs, sc, zp, 0, y);
    ok = 1;
    for (int i = 0; i < 30; i++) {
        int ch = (i / 5) % 3;
        ok &= y[i] == quant_ref(xs[i], sc[ch], zp[ch], 0, 255);
    }
    expect(ok, "quantize per-channel", -1, 30, 0, 0, 0);
    float d[30];
    pi_dequantize_f32(0, 2, 3, 5, y, sc, zp, d);
    ok = 1;
    for (int i = 0; i < 30; i++) {
        int ch = (i / 5) % 3;
        ok &= d[i] == (float)((int)y[i] - zp[ch]) * sc[ch];
    }
    expect(ok, "dequantize per-channel", -1, 30, 0, 0, 0);
    float lo, hi;
    pi_f32_minmax(30, xs, &lo, &hi);
    float l = xs[0], h = xs[0];
    for (int i = 1; i < 30; i++) { l = xs[i] < l ? xs[i] : l; h = xs[i] > h ? xs[i] : h; }
    expect(lo == l && hi == h, "minmax", -1, 30, 0, 0, 0);
}

/* Random weights for micro-kernel uk (within 64 of 0 for a 7-bit one), per-column
 * scales and float bias. */
static void random_weights(int uk, long k, long n, signed char *b, float *w_scale, float *bias)
{
    const int w7 = pi_u8s8_gemm_ukernel_weight_bits(uk) == 7;
    for (long q = 0; q < k * n; q++) b[q] = w7 ? (signed char)((int)(rnd() % 129) - 64) : (signed char)rnd();
    for (long j = 0; j < n; j++) {
        w_scale[j] = (float)(rnd() % 1000 + 1) * 1e-5f;
        bias[j] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    }
}

/* b (k x n, row-major, zero points 0) packed for uk; *st |= the packing status. */
static void *packed_b(int uk, long k, long n, const signed char *b, int *st)
{
    pi_index pb = pi_u8s8_packed_b_bytes(uk, k, n);
    void *packed = aligned_alloc(64, (size_t)((pb + 63) / 64 * 64));
    *st |= pi_u8s8_pack_b(uk, k, n, b, n, 1, NULL, packed, pb);
    return packed;
}

/* DynamicQuantizeLinear's parameters for rows [0, rows) of x (k values each, ldx
 * apart): the range, NaN ignored, widened to hold 0; scale range / 255 (1 for a
 * zero range); zero point rint(-lo / scale) saturated, NaN (an infinite range) 0. */
static void dql_params(const float *x, long rows, long ldx, long k, float *scale, int *zero)
{
    float lo = INFINITY, hi = -INFINITY;
    for (long i = 0; i < rows; i++)
        for (long p = 0; p < k; p++) {
            const float v = x[i * ldx + p];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    *scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    const float z = rintf(0.0f - lo / *scale);
    *zero = z > 0.0f ? (z < 255.0f ? (int)z : 255) : 0;
}

/* pi_f32u8s8_gemm (float A quantized inside the GEMM) against quantizing A
 * here (QuantizeLinear's rule; dynamic: DynamicQuantizeLinear's parameters
 * from the range, NaN ignored) and running pi_u8s8_gemm, checked above: the
 * results and the reported parameters must be the same bits. */
static void float_a(int uk, long m, long n, long k, int dynamic, int kind)
{
    const long ldx = k + 3;
    float *x = malloc(sizeof(float) * (size_t)(m * ldx));
    unsigned char *a = malloc((size_t)(m * k));
    signed char *b = malloc((size_t)(k * n));
    float *ws_ = malloc(sizeof(float) * (size_t)n), *scale = malloc(sizeof(float) * (size_t)n);
    float *bias = malloc(sizeof(float) * (size_t)n);
    for (long q = 0; q < m * ldx; q++) {
        const unsigned r = rnd();
        x[q] = (r & 63) == 0 ? NAN : (float)((int)(r % 4001) - 1500) * 1e-3f;
    }
    random_weights(uk, k, n, b, ws_, bias);
    float xs = 0.0137f;
    int xz = 91;
    if (dynamic)
        dql_params(x, m, ldx, k, &xs, &xz);
    for (long i = 0; i < m; i++)
        for (long p = 0; p < k; p++) a[i * k + p] = (unsigned char)quant_ref(x[i * ldx + p], xs, xz, 0, 255);
    for (long j = 0; j < n; j++) scale[j] = xs * ws_[j];
    int st = PI_OK;
    void *packed = packed_b(uk, k, n, b, &st);
    pi_index wsb = pi_f32u8s8_gemm_workspace_bytes(packed, m);
    void *wsp = aligned_alloc(64, (size_t)((wsb + 64) / 64 * 64));
    const int es = kind == PI_QOUT_U8 ? 1 : 4;
    unsigned char *c = malloc((size_t)(m * n * es)), *want = malloc((size_t)(m * n * es));
    memset(c, 0xA5, (size_t)(m * n * es));
    const int act = kind == PI_QOUT_S32 ? PI_ACT_NONE : PI_ACT_RELU;
    float params[2] = {-1.0f, -1.0f};
    st |= pi_f32u8s8_gemm(m, n, k, x, ldx * 4, dynamic ? 0.0f : xs, dynamic ? 0 : xz, packed, kind,
                          kind == PI_QOUT_S32 ? NULL : ws_, kind == PI_QOUT_S32 ? NULL : bias, act,
                          0.37f, 17, c, n * es, es, params, wsp, wsb);
    pi_index wsu = pi_u8s8_gemm_workspace_bytes(packed, m);
    void *wsp2 = aligned_alloc(64, (size_t)((wsu + 64) / 64 * 64));
    st |= pi_u8s8_gemm(m, n, k, a, k, 1, xz, packed, kind, scale,
                       kind == PI_QOUT_S32 ? NULL : bias, act, 0.37f, 17, want, n * es, es,
                       wsp2, wsu);
    expect(st == PI_OK && params[0] == xs && params[1] == (float)xz, "float A params", uk, m, n,
           k, kind);
    expect(memcmp(c, want, (size_t)(m * n * es)) == 0, "float A values", uk, m, n, k, kind);
    free(x); free(a); free(b); free(ws_); free(scale); free(bias); free(packed); free(wsp);
    free(wsp2); free(c); free(want);
}

/* pi_f32u8s8_gemm_rows (A quantized per row) against, for each row i alone,
 * DynamicQuantizeLinear's parameters from that row's range, the row quantized
 * here and pi_u8s8_gemm on it (m = 1, a_zero z[i], scale[j] = s[i] * w_scale[j]
 * in float32: the per-row epilogue's definition): the same bits.  Some rows
 * are all zero (zero range), positive only, or hold NaN or an infinity. */
static void float_a_rows(int uk, long m, long n, long k, int kind)
{
    const long ldx = k + 3;
    float *x = malloc(sizeof(float) * (size_t)(m * ldx));
    unsigned char *a = malloc((size_t)k);
    signed char *b = malloc((size_t)(k * n));
    float *ws_ = malloc(sizeof(float) * (size_t)n), *scale = malloc(sizeof(float) * (size_t)n);
    float *bias = malloc(sizeof(float) * (size_t)n), *rs = malloc(sizeof(float) * (size_t)m);
    int *rz = malloc(sizeof(int) * (size_t)m);
    for (long i = 0; i < m; i++) {
        const int shape = (int)(rnd() % 8); /* 0 zeros, 1 positive, 2 NaN, 3 inf, else wide */
        const float mag = (float)(rnd() % 3000 + 1) * 1e-3f;
        for (long p = 0; p < ldx; p++) {
            const unsigned r = rnd();
            float v = (float)((int)(r % 4001) - 1500) * 1e-3f * mag;
            x[i * ldx + p] = shape == 0 ? 0.0f : shape == 1 ? fabsf(v) + 1.0f : v;
        }
        if (shape == 2)
            x[i * ldx + rnd() % k] = NAN;
        if (shape == 3)
            x[i * ldx + rnd() % k] = -INFINITY;
    }
    random_weights(uk, k, n, b, ws_, bias);
    int st = PI_OK;
    void *packed = packed_b(uk, k, n, b, &st);
    pi_index wsb = pi_f32u8s8_gemm_workspace_bytes(packed, m);
    void *wsp = aligned_alloc(64, (size_t)((wsb + 64) / 64 * 64));
    const int es = kind == PI_QOUT_U8 ? 1 : 4;
    unsigned char *c = malloc((size_t)(m * n * es)), *want = malloc((size_t)(m * n * es));
    memset(c, 0xA5, (size_t)(m * n * es));
    for (long i = 0; i < m; i++) rs[i] = -1.0f, rz[i] = -1;
    const int act = kind == PI_QOUT_S32 ? PI_ACT_NONE : (m % 2 ? PI_ACT_RELU : PI_ACT_NONE);
    st |= pi_f32u8s8_gemm_rows(m, n, k, x, ldx * 4, packed, kind,
                               kind == PI_QOUT_S32 ? NULL : ws_, kind == PI_QOUT_S32 ? NULL : bias,
                               act, 0.37f, 17, c, n * es, es, rs, rz, wsp, wsb);
    pi_index wsu = pi_u8s8_gemm_workspace_bytes(packed, 1);
    void *wsp2 = aligned_alloc(64, (size_t)((wsu + 64) / 64 * 64));
    int params_ok = 1;
    for (long i = 0; i < m; i++) {
        float xs;
        int xz;
        dql_params(x + i * ldx, 1, ldx, k, &xs, &xz);
        params_ok &= rs[i] == xs && rz[i] == xz;
        for (long p = 0; p < k; p++) a[p] = (unsigned char)quant_ref(x[i * ldx + p], xs, xz, 0, 255);
        for (long j = 0; j < n; j++) scale[j] = xs * ws_[j];
        st |= pi_u8s8_gemm(1, n, k, a, k, 1, xz, packed, kind, scale,
                           kind == PI_QOUT_S32 ? NULL : bias, act, 0.37f, 17, want + i * n * es,
                           n * es, es, wsp2, wsu);
    }
    expect(st == PI_OK && params_ok, "per-row params", uk, m, n, k, kind);
    expect(memcmp(c, want, (size_t)(m * n * es)) == 0, "per-row values", uk, m, n, k, kind);
    free(x); free(a); free(b); free(ws_); free(scale); free(bias); free(rs); free(rz);
    free(packed); free(wsp); free(wsp2); free(c); free(want);
}

int main(void)
{
    for (int uk = 0;; uk++) {
        int isa, mr, nr, ku, es;
        const char *name;
        if (pi_u8s8_gemm_ukernel_info(uk, &isa, &mr, &nr, &ku, &es, &name) != PI_OK)
            break;
        if (!pi_u8s8_gemm_ukernel_runs(uk)) {
            printf("skip %s (this CPU cannot run it)\n", name);
            continue;
        }
        const long ms[] = {1, mr - 1 > 0 ? mr - 1 : 1, mr, mr + 1, 2 * mr + 3, 101};
        const long ns[] = {1, nr - 1, nr, nr + 1, 3 * nr + 5};
        const long ks[] = {1, 2, ku + 1, 13, 67};
        for (int kind = PI_QOUT_S32; kind <= PI_QOUT_U8; kind++)
            for (int t = 0; t < 2; t++)
                for (size_t im = 0; im < sizeof ms / sizeof *ms; im++)
                    for (size_t in = 0; in < sizeof ns / sizeof *ns; in++)
                        for (size_t ik = 0; ik < sizeof ks / sizeof *ks; ik++)
                            one(uk, ms[im], ns[in], ks[ik], t, kind);
        one(uk, 300, 70, 600, 0, PI_QOUT_U8); /* several A blocks, both threads */
        for (int kind = PI_QOUT_S32; kind <= PI_QOUT_U8; kind++)
            for (int dyn = 0; dyn < 2; dyn++) {
                float_a(uk, 1, 1, 1, dyn, kind);
                float_a(uk, mr + 1, nr - 1, 2 * ku + 1, dyn, kind);
                float_a(uk, 2 * mr + 3, 3 * nr + 5, 67, dyn, kind);
                float_a(uk, 300, 70, 600, dyn, kind); /* several blocks, both threads */
            }
        for (int kind = PI_QOUT_S32; kind <= PI_QOUT_U8; kind++) {
            float_a_rows(uk, 1, 1, 1, kind);
            float_a_rows(uk, mr + 1, nr - 1, 2 * ku + 1, kind);
            float_a_rows(uk, 2 * mr + 3, 3 * nr + 5, 67, kind);
            float_a_rows(uk, 300, 70, 600, kind); /* several blocks, both threads */
        }
        printf("%s checked\n", name);
    }
    test_weight_bits();
    test_quantize();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
