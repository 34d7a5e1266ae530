/* Standalone differential test of the int8 convolutions (no Python).
 *
 * pi_u8s8_dwconv2d and pi_u8s8_conv2d against a naive NCHW loop in 64-bit
 * integers with the float32 epilogue of pyinfer.h (scale, bias, relu, and
 * QuantizeLinear for u8), on every ISA level this CPU runs (pi_set_isa) and,
 * for the implicit GEMM, every u8 x s8 micro-kernel that runs: shapes with 1,
 * primes and SIMD-width edges (channels 1..33, widths 1..40), strides 1..3,
 * dilations, asymmetric pads, groups, channel multipliers, full-range and
 * 7-bit weights, per-channel zero points, all three output kinds, padded
 * (strided) input and output.  Outputs are poisoned first; every element must
 * match bit for bit.  Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyinfer.h"

static int passed, failed;
static uint64_t rng = 0x2545F4914F6CDD1Dull;

static unsigned rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 32);
}

static int quant_ref(float x, float s, int z)
{
    float q = x / s;
    q = q > -1073741824.0f ? q : -1073741824.0f;
    q = q < 1073741824.0f ? q : 1073741824.0f;
    int v = (int)rintf(q) + z;
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

typedef struct {
    pi_conv2d_shape s;
    int bits, kind, relu, with_bias;
} qcase;

/* Runs one case through the kernel `dw` (1: depthwise, 0: implicit GEMM with
 * micro-kernel uk, -1 for the automatic choice); compares with the loop. */
static void one(const qcase *qc, int dw, int uk)
{
    const pi_conv2d_shape *s = &qc->s;
    const pi_index cg = s->c / s->groups, kg = s->k / s->groups;
    const pi_index xw = s->w + 3; /* padded rows: x_hs > w */
    const pi_index xn = s->n * s->c * s->h * xw, wn = s->k * cg * s->kh * s->kw;
    unsigned char *x = malloc((size_t)xn + 1);
    signed char *w = malloc((size_t)wn + 1);
    int *wz = malloc(sizeof(int) * (size_t)s->k);
    float *scale = malloc(sizeof(float) * (size_t)s->k), *bias = malloc(sizeof(float) * (size_t)s->k);
    for (pi_index i = 0; i < xn; i++) x[i] = (unsigned char)rnd();
    for (pi_index o = 0; o < s->k; o++) {
        wz[o] = (int)(rnd() % 41) - 20;
        scale[o] = 0.001f + (float)(rnd() % 1000) * 1e-5f;
        bias[o] = (float)((int)(rnd() % 2001) - 1000) * 0.01f;
    }
    for (pi_index i = 0; i < wn; i++) {
        const pi_index o = i / (cg * s->kh * s->kw);
        w[i] = qc->bits == 7 ? (signed char)(wz[o] + (int)(rnd() % 129) - 64)
                             : (signed char)(int)(rnd() % 256 - 128);
    }
    const int xz = (int)(rnd() % 256), oz = (int)(rnd() % 256);
    const float os = 0.05f;
    const int es = qc->kind == PI_QOUT_U8 ? 1 : 4;
    const pi_index yw = s->ow + 2; /* padded output rows */
    const pi_index yn = s->n * s->k * s->oh * yw;
    unsigned char *y = malloc((size_t)(yn * es) + 1);
    memset(y, 0x7f, (size_t)(yn * es));
    const pi_index x_ws = 1, x_hs = xw, x_cs = s->h * xw, x_ns = s->c * x_cs;
    const pi_index y_ws = es, y_hs = yw * es, y_cs = s->oh * y_hs, y_ns = s->k * y_cs;
    int status;
    void *ws = NULL, *packed = NULL;
    void **groups = NULL;
    if (dw) {
        const pi_index pb = pi_u8s8_dwconv2d_packed_bytes(s->k, s->kh, s->kw);
        packed = malloc((size_t)pb);
        status = pi_u8s8_dwconv2d_pack(s->k, s->kh, s->kw, w, wz, packed, pb);
        const pi_index wsb = pi_u8s8_dwconv2d_workspace_bytes(s);
        ws = malloc((size_t)wsb + 1);
        if (status == PI_OK)
            status = pi_u8s8_dwconv2d(s, x, x_ns, x_cs, x_hs, x_ws, xz, packed, qc->kind, scale,
                                      qc->with_bias ? bias : NULL, qc->relu ? PI_ACT_RELU : PI_ACT_NONE,
                                      os, oz, y, y_ns, y_cs, y_hs, y_ws, ws, wsb);
    } else {
        /* group g's (kh*kw*cg) x kg matrix, rows (ky, kx, c): element (row, j) of
         * w[g*kg + j][c][ky][kx] */
        groups = calloc((size_t)s->groups, sizeof(void *));
        const pi_index kd = s->kh * s->kw * cg;
        signed char *b = malloc((size_t)(kd * kg) + 1);
        status = PI_OK;
        for (pi_index g = 0; g < s->groups && status == PI_OK; g++) {
            for (pi_index ky = 0; ky < s->kh; ky++)
                for (pi_index kx = 0; kx < s->kw; kx++)
                    for (pi_index c = 0; c < cg; c++)
                        for (pi_index j = 0; j < kg; j++)
                            b[((ky * s->kw + kx) * cg + c) * kg + j] =
                                w[(((g * kg + j) * cg + c) * s->kh + ky) * s->kw + kx];
            const pi_index pb = pi_u8s8_packed_b_bytes(uk, kd, kg);
            groups[g] = malloc((size_t)pb);
            status = pi_u8s8_pack_b(uk, kd, kg, b, kg, 1, wz + g * kg, groups[g], pb);
        }
        free(b);
        if (status == PI_OK) {
            const pi_index wsb = pi_u8s8_conv2d_workspace_bytes(s, (const void *const *)groups);
            ws = malloc((size_t)wsb + 1);
            status = pi_u8s8_conv2d(s, x, x_ns, x_cs, x_hs, x_ws, xz, (const void *const *)groups,
                                    qc->kind, scale, qc->with_bias ? bias : NULL,
                                    qc->relu ? PI_ACT_RELU : PI_ACT_NONE, os, oz, y, y_ns, y_cs,
                                    y_hs, y_ws, ws, wsb);
        }
    }
    int ok = status == PI_OK;
    for (pi_index n = 0; n < s->n && ok; n++)
        for (pi_index o = 0; o < s->k && ok; o++) {
            const pi_index g = o / kg;
            for (pi_index oy = 0; oy < s->oh && ok; oy++)
                for (pi_index ox = 0; ox < s->ow && ok; ox++) {
                    long long acc = 0;
                    for (pi_index c = 0; c < cg; c++)
                        for (pi_index ky = 0; ky < s->kh; ky++)
                            for (pi_index kx = 0; kx < s->kw; kx++) {
                                const pi_index iy = oy * s->sh + ky * s->dh - s->pad_t;
                                const pi_index ix = ox * s->sw + kx * s->dw - s->pad_l;
                                const int xv = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w
                                                   ? x[n * x_ns + (g * cg + c) * x_cs + iy * x_hs + ix]
                                                   : xz;
                                acc += (long long)(xv - xz) *
                                       (w[((o * cg + c) * s->kh + ky) * s->kw + kx] - wz[o]);
                            }
                    const unsigned char *got = y + n * y_ns + o * y_cs + oy * y_hs + ox * y_ws;
                    if (qc->kind == PI_QOUT_S32) {
                        int v;
                        memcpy(&v, got, 4);
                        ok = v == (int)acc;
                        continue;
                    }
                    float f = (float)(int)acc * scale[o];
                    if (qc->with_bias)
                        f = f + bias[o];
                    if (qc->relu)
                        f = f > 0.0f ? f : 0.0f;
                    if (qc->kind == PI_QOUT_F32) {
                        float v;
                        memcpy(&v, got, 4);
                        ok = v == f;
                    } else {
                        ok = *got == quant_ref(f, os, oz);
                    }
                }
        }
    /* nothing written between the rows' padding columns */
    for (pi_index r = 0; r < s->n * s->k * s->oh && ok; r++)
        for (pi_index b = s->ow * es; b < yw * es; b++)
            ok &= y[r * yw * es + b] == 0x7f;
    if (ok) {
        passed++;
    } else {
        failed++;
        if (failed < 20)
            fprintf(stderr,
                    "FAIL %s uk=%d isa=%d status=%d: n=%lld c=%lld k=%lld h=%lld w=%lld g=%lld "
                    "k=%lldx%lld s=%lldx%lld d=%lldx%lld pad=%lld,%lld bits=%d kind=%d\n",
                    dw ? "dwconv" : "conv", uk, pi_isa(), status, s->n, s->c, s->k, s->h, s->w,
                    s->groups, s->kh, s->kw, s->sh, s->sw, s->dh, s->dw, s->pad_t, s->pad_l,
                    qc->bits, qc->kind);
    }
    if (groups)
        for (pi_index g = 0; g < s->groups; g++) free(groups[g]);
    free(groups);
    free(packed);
    free(ws);
    free(x);
    free(w);
    free(wz);
    free(scale);
    free(bias);
    free(y);
}

static const int CH[] = {1, 2, 3, 7, 8, 9, 16, 17, 31, 32, 33};

static qcase random_case(int depthwise)
{
    qcase qc;
    pi_conv2d_shape *s = &qc.s;
    memset(&qc, 0, sizeof qc);
    s->n = 1 + rnd() % 2;
    if (depthwise) {
        s->groups = s->c = CH[rnd() % 11];
        s->k = s->c * (1 + rnd() % 3);
    } else {
        s->groups = rnd() % 3 == 0 ? 1 + rnd() % 3 : 1;
        s->c = s->groups * CH[rnd() % 11];
        s->k = s->groups * CH[rnd() % 11];
    }
    static const int KS[][2] = {{1, 1}, {3, 3}, {3, 3}, {5, 5}, {2, 3}, {1, 5}, {3, 1}};
    const int ki = (int)(rnd() % 7);
    s->kh = KS[ki][0];
    s->kw = KS[ki][1];
    s->sh = 1 + rnd() % 3;
    s->sw = 1 + rnd() % 3;
    s->dh = 1 + rnd() % 2;
    s->dw = 1 + rnd() % 2;
    s->pad_t = rnd() % 3;
    s->pad_l = rnd() % 3;
    const pi_index pad_b = rnd() % 3, pad_r = rnd() % 3;
    const pi_index reach_h = (s->kh - 1) * s->dh + 1, reach_w = (s->kw - 1) * s->dw + 1;
    s->h = reach_h + rnd() % 10;
    s->w = rnd() % 4 == 0 ? 33 + rnd() % 8 : reach_w + rnd() % 18;
    s->oh = (s->h + s->pad_t + pad_b - reach_h) / s->sh + 1;
    s->ow = (s->w + s->pad_l + pad_r - reach_w) / s->sw + 1;
    qc.bits = rnd() % 2 ? 7 : 8;
    qc.kind = (int)(rnd() % 3);
    qc.relu = rnd() % 2;
    qc.with_bias = rnd() % 2;
    return qc;
}

int main(void)
{
    const int top = pi_isa();
    for (int isa = 0; isa <= top; isa++) {
        if (pi_set_isa(isa) != PI_OK)
            continue;
        for (int t = 0; t < 60; t++) {
            qcase qc = random_case(1);
            one(&qc, 1, -1);
        }
        int count = 0, v[5];
        const char *name;
        while (pi_u8s8_gemm_ukernel_info(count, v, v + 1, v + 2, v + 3, v + 4, &name) == PI_OK)
            count++;
        for (int uk = -1; uk < count; uk++) {
            if (uk >= 0 && !pi_u8s8_gemm_ukernel_runs(uk))
                continue;
            for (int t = 0; t < 25; t++) {
                qcase qc = random_case(rnd() % 4 == 0);
                if (uk >= 0 && pi_u8s8_gemm_ukernel_weight_bits(uk) == 7)
                    qc.bits = 7;
                one(&qc, 0, uk);
            }
        }
    }
    pi_set_isa(top);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
