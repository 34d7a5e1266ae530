/* Standalone differential test of the conv2d kernels (csrc/pi_conv.c), no Python.
 *
 * pi_{f32,f64}_conv2d_gemm (implicit GEMM over packed weights, with and without
 * the packed bias), pi_{f32,f64}_conv2d_depthwise and (f32, AVX2, groups 1)
 * pi_f32_conv2d_nchwc on blocked copies, on every ISA this CPU runs
 * and on 1 and 2 threads: shapes off the register tile (MR, NR), K above KC
 * (several k blocks), several pixel chunks, groups, strides, dilations,
 * asymmetric pads, a strided input (every other column of a wider buffer);
 * residual, activations and clip; the output poisoned with NaN; every buffer
 * (input, packed weights, workspace, output) allocated at exactly the size the
 * kernel is promised, so ASan sees any read or write past it.
 *
 * Tolerance per element (Higham's dot-product bound, as tests/test_gemm.c):
 * (K + 4) * eps * S * 1.2 + 16 eps (1 + |ref|), S = sum |x||w| + |bias| + |r|.
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pi_internal.h"

static int passed, failed;
static unsigned long long rng = 0x9E3779B97F4A7C15ull;

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double ref_act(double v, int act, int clip, double lo, double hi)
{
    switch (act) {
    case PI_ACT_RELU: v = v > 0 ? v : 0; break;
    case PI_ACT_SILU: v = v / (1.0 + exp(-v)); break;
    case PI_ACT_SIGMOID: v = 1.0 / (1.0 + exp(-v)); break;
    default: break;
    }
    if (clip) v = v < lo ? lo : (v > hi ? hi : v);
    return v;
}

typedef struct {
    pi_index n, c, h, w, k, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, groups;
} cfg;

/* One call of one kernel ("gemm" or "dw") in one dtype; xstride 1 or 2 (columns). */
static void run_case(const cfg *q, int es, int depthwise, int with_bias, int with_res, int act,
                     int clip, int xstride)
{
    pi_conv2d_shape s;
    s.n = q->n; s.c = q->c; s.h = q->h; s.w = q->w; s.k = q->k;
    s.kh = q->kh; s.kw = q->kw; s.sh = q->sh; s.sw = q->sw; s.dh = q->dh; s.dw = q->dw;
    s.pad_t = q->pt; s.pad_l = q->pl; s.groups = q->groups;
    s.oh = (q->h + q->pt + q->pb - q->dh * (q->kh - 1) - 1) / q->sh + 1;
    s.ow = (q->w + q->pl + q->pr - q->dw * (q->kw - 1) - 1) / q->sw + 1;
    const pi_index cg = q->c / q->groups, kg = q->k / q->groups;
    const pi_index kk = cg * q->kh * q->kw;
    const pi_index xn = q->n * q->c * q->h * q->w * xstride;
    const pi_index wn = q->k * kk, yn = q->n * q->k * s.oh * s.ow;
    double *xd = malloc(sizeof(double) * xn), *wd = malloc(sizeof(double) * wn);
    double *bd = malloc(sizeof(double) * q->k), *rd = malloc(sizeof(double) * yn);
    for (pi_index i = 0; i < xn; i++) xd[i] = urand();
    for (pi_index i = 0; i < wn; i++) wd[i] = urand();
    for (pi_index i = 0; i < q->k; i++) bd[i] = urand();
    for (pi_index i = 0; i < yn; i++) rd[i] = urand();
    void *x = malloc((size_t)(es * xn)), *w = malloc((size_t)(es * wn));
    void *b = malloc((size_t)(es * q->k)), *r = malloc((size_t)(es * yn));
    void *y = malloc((size_t)(es * yn));
    for (pi_index i = 0; i < xn; i++)
        if (es == 4) ((float *)x)[i] = (float)xd[i]; else ((double *)x)[i] = xd[i];
    for (pi_index i = 0; i < wn; i++)
        if (es == 4) ((float *)w)[i] = (float)wd[i]; else ((double *)w)[i] = wd[i];
    for (pi_index i = 0; i < q->k; i++)
        if (es == 4) ((float *)b)[i] = (float)bd[i]; else ((double *)b)[i] = bd[i];
    for (pi_index i = 0; i < yn; i++) {
        if (es == 4) ((float *)r)[i] = (float)rd[i]; else ((double *)r)[i] = rd[i];
        if (es == 4) ((float *)y)[i] = NAN; else ((double *)y)[i] = NAN;
    }
    /* Strides in bytes of the (possibly column-strided) input. */
    const pi_index x_ws = es * xstride, x_hs = x_ws * q->w, x_cs = x_hs * q->h,
                   x_ns = x_cs * q->c;
    const double lo = -0.25, hi = 0.5;
    int status;
    void *ws, *wp = NULL;
    if (depthwise) {
        pi_index wsb = pi_conv2d_depthwise_workspace_bytes(es, &s);
        ws = aligned_alloc(64, (size_t)((wsb + 63) / 64 * 64));
        if (es == 4)
            status = pi_f32_conv2d_depthwise(&s, x, x_ns, x_cs, x_hs, x_ws, w,
                                             with_bias ? b : NULL, with_res ? r : NULL, act,
                                             clip, (float)lo, (float)hi, y, ws, wsb);
        else
            status = pi_f64_conv2d_depthwise(&s, x, x_ns, x_cs, x_hs, x_ws, w,
                                             with_bias ? b : NULL, with_res ? r : NULL, act,
                                             clip, lo, hi, y, ws, wsb);
    } else {
        int mr = pi_conv2d_gemm_mr(es);
        pi_index wpn = pi_conv2d_packed_weights_size(&s, mr, with_bias);
        wp = malloc((size_t)(es * wpn));
        pi_index wsb = pi_conv2d_gemm_workspace_bytes(es, &s, with_bias);
        ws = aligned_alloc(64, (size_t)((wsb + 63) / 64 * 64));
        if (es == 4) {
            pi_f32_conv2d_pack_weights(&s, mr, w, with_bias ? b : NULL, wp);
            status = pi_f32_conv2d_gemm(&s, mr, x, x_ns, x_cs, x_hs, x_ws, wp, with_bias,
                                        with_res ? r : NULL, act, clip, (float)lo, (float)hi,
                                        y, ws, wsb);
        } else {
            pi_f64_conv2d_pack_weights(&s, mr, w, with_bias ? b : NULL, wp);
            status = pi_f64_conv2d_gemm(&s, mr, x, x_ns, x_cs, x_hs, x_ws, wp, with_bias,
                                        with_res ? r : NULL, act, clip, lo, hi, y, ws, wsb);
        }
    }
    const double eps = es == 4 ? 5.96e-8 : 1.11e-16;
    int bad = status != PI_OK;
    for (pi_index n = 0; n < q->n && !bad; n++)
        for (pi_index ko = 0; ko < q->k && !bad; ko++) {
            const pi_index g = ko / kg;
            for (pi_index oy = 0; oy < s.oh && !bad; oy++)
                for (pi_index ox = 0; ox < s.ow && !bad; ox++) {
                    double acc = 0, mag = 0;
                    for (pi_index ci = 0; ci < cg; ci++)
                        for (pi_index ky = 0; ky < q->kh; ky++)
                            for (pi_index kx = 0; kx < q->kw; kx++) {
                                pi_index iy = oy * q->sh - q->pt + ky * q->dh;
                                pi_index ix = ox * q->sw - q->pl + kx * q->dw;
                                if (iy < 0 || iy >= q->h || ix < 0 || ix >= q->w) continue;
                                pi_index xi = (((n * q->c + g * cg + ci) * q->h + iy) * q->w +
                                               ix) * xstride;
                                double xv = es == 4 ? (double)((float *)x)[xi] : xd[xi];
                                pi_index wi = ((ko * cg + ci) * q->kh + ky) * q->kw + kx;
                                double wv = es == 4 ? (double)((float *)w)[wi] : wd[wi];
                                acc += xv * wv;
                                mag += fabs(xv * wv);
                            }
                    pi_index yi = ((n * q->k + ko) * s.oh + oy) * s.ow + ox;
                    if (with_bias) {
                        double bv = es == 4 ? (double)((float *)b)[ko] : bd[ko];
                        acc += bv;
                        mag += fabs(bv);
                    }
                    if (with_res) {
                        double rv = es == 4 ? (double)((float *)r)[yi] : rd[yi];
                        acc += rv;
                        mag += fabs(rv);
                    }
                    double want = ref_act(acc, act, clip, lo, hi);
                    double got = es == 4 ? (double)((float *)y)[yi] : ((double *)y)[yi];
                    double tol = (double)(kk + 4) * eps * mag * 1.2 + 16 * eps * (1 + fabs(want));
                    if (!(fabs(got - want) <= tol)) {
                        fprintf(stderr,
                                "FAIL %s f%d isa=%d thr=%d n=%lld c=%lld %lldx%lld k=%lld "
                                "%lldx%lld s=%lld,%lld d=%lld,%lld g=%lld bias=%d res=%d act=%d "
                                "clip=%d xstride=%d at (%lld,%lld,%lld,%lld): got %g want %g\n",
                                depthwise ? "dw" : "gemm", es * 8, pi_isa(), pi_get_num_threads(),
                                q->n, q->c, q->h, q->w, q->k, q->kh, q->kw, q->sh, q->sw, q->dh,
                                q->dw, q->groups, with_bias, with_res, act, clip, xstride, n, ko,
                                oy, ox, got, want);
                        bad = 1;
                    }
                }
        }
    if (status != PI_OK)
        fprintf(stderr, "FAIL status %d\n", status);
    if (bad) failed++; else passed++;
    free(xd); free(wd); free(bd); free(rd); free(x); free(w); free(b); free(r); free(y);
    free(ws); free(wp);
}

/* The direct NCHWc kernel (f32, groups 1, AVX2) on the same reference: x, y, r
 * converted to 8-channel blocks, channels past c / k zero. */
static void run_nchwc(const cfg *q, int with_bias, int with_res, int act, int clip)
{
    pi_conv2d_shape s;
    s.n = q->n; s.c = q->c; s.h = q->h; s.w = q->w; s.k = q->k;
    s.kh = q->kh; s.kw = q->kw; s.sh = q->sh; s.sw = q->sw; s.dh = q->dh; s.dw = q->dw;
    s.pad_t = q->pt; s.pad_l = q->pl; s.groups = 1;
    s.oh = (q->h + q->pt + q->pb - q->dh * (q->kh - 1) - 1) / q->sh + 1;
    s.ow = (q->w + q->pl + q->pr - q->dw * (q->kw - 1) - 1) / q->sw + 1;
    const pi_index cb = (q->c + 7) / 8, kb = (q->k + 7) / 8, hw = q->h * q->w,
                   ohw = s.oh * s.ow;
    float *x = calloc((size_t)(q->n * cb * hw * 8), sizeof(float));
    float *w = malloc(sizeof(float) * (size_t)(q->k * q->c * q->kh * q->kw));
    float *b = calloc((size_t)(kb * 8), sizeof(float));
    float *r = calloc((size_t)(q->n * kb * ohw * 8), sizeof(float));
    float *y = malloc(sizeof(float) * (size_t)(q->n * kb * ohw * 8));
    float *wp = malloc(sizeof(float) * (size_t)pi_conv2d_nchwc_packed_size(&s));
    for (pi_index n = 0; n < q->n; n++)
        for (pi_index c = 0; c < q->c; c++)
            for (pi_index i = 0; i < hw; i++)
                x[((n * cb + c / 8) * hw + i) * 8 + c % 8] = (float)urand();
    for (pi_index i = 0; i < q->k * q->c * q->kh * q->kw; i++) w[i] = (float)urand();
    for (pi_index k = 0; k < q->k; k++) b[k] = (float)urand();
    for (pi_index n = 0; n < q->n; n++)
        for (pi_index k = 0; k < q->k; k++)
            for (pi_index i = 0; i < ohw; i++)
                r[((n * kb + k / 8) * ohw + i) * 8 + k % 8] = (float)urand();
    for (pi_index i = 0; i < q->n * kb * ohw * 8; i++) y[i] = NAN;
    const double lo = -0.25, hi = 0.5, eps = 5.96e-8;
    if (!with_bias) memset(b, 0, sizeof(float) * (size_t)(kb * 8)); /* bias is required */
    int bad = pi_f32_conv2d_nchwc_pack(&s, w, wp) != PI_OK;
    bad |= pi_f32_conv2d_nchwc(&s, x, wp, b, with_res ? r : NULL, act, clip, (float)lo,
                               (float)hi, y) != PI_OK;
    for (pi_index n = 0; n < q->n && !bad; n++)
        for (pi_index k = 0; k < q->k && !bad; k++)
            for (pi_index oy = 0; oy < s.oh; oy++)
                for (pi_index ox = 0; ox < s.ow; ox++) {
                    double acc = b[k], mag = fabs(b[k]);
                    for (pi_index c = 0; c < q->c; c++)
                        for (pi_index ky = 0; ky < q->kh; ky++)
                            for (pi_index kx = 0; kx < q->kw; kx++) {
                                pi_index iy = oy * q->sh - q->pt + ky * q->dh;
                                pi_index ix = ox * q->sw - q->pl + kx * q->dw;
                                if (iy < 0 || iy >= q->h || ix < 0 || ix >= q->w) continue;
                                double v = (double)x[((n * cb + c / 8) * hw + iy * q->w + ix) * 8 +
                                                     c % 8] *
                                           w[((k * q->c + c) * q->kh + ky) * q->kw + kx];
                                acc += v;
                                mag += fabs(v);
                            }
                    pi_index yi = ((n * kb + k / 8) * ohw + oy * s.ow + ox) * 8 + k % 8;
                    if (with_res) { acc += r[yi]; mag += fabs(r[yi]); }
                    double want = ref_act(acc, act, clip, lo, hi);
                    double tol = (double)(q->c * q->kh * q->kw + 4) * eps * mag * 1.2 +
                                 16 * eps * (1 + fabs(want));
                    if (!(fabs(y[yi] - want) <= tol)) {
                        fprintf(stderr, "FAIL nchwc c=%lld k=%lld at (%lld,%lld,%lld,%lld): got %g "
                                "want %g\n", q->c, q->k, n, k, oy, ox, y[yi], want);
                        bad = 1;
                        break;
                    }
                }
    if (bad) failed++; else passed++;
    free(x); free(w); free(b); free(r); free(y); free(wp);
}

int main(void)
{
    static const cfg gemm_cases[] = {
        /* n  c   h   w   k kh kw sh sw dh dw pt pl pb pr groups */
        {1, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {2, 40, 20, 17, 13, 3, 3, 1, 1, 1, 1, 1, 0, 2, 1, 1},  /* K = 360 > KC, P = 340 */
        {1, 64, 6, 6, 19, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},    /* K = 576, rows split */
        {1, 6, 11, 13, 12, 2, 4, 2, 3, 2, 1, 0, 3, 1, 0, 3},   /* groups, asymmetric */
        {3, 7, 5, 4, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},      /* 1x1 */
        {1, 2, 1, 1, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},      /* 1x1 image, all padding */
    };
    static const cfg dw_cases[] = {
        {1, 9, 11, 13, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9},
        {2, 5, 15, 40, 5, 3, 3, 2, 2, 1, 1, 1, 0, 1, 2, 5},    /* ow > 32: two row blocks */
        {1, 4, 9, 9, 4, 5, 3, 1, 3, 2, 1, 2, 1, 0, 1, 4},
    };
    const int acts[] = {PI_ACT_NONE, PI_ACT_RELU, PI_ACT_SILU, PI_ACT_SIGMOID};
    const int top = pi_isa_detected();
    for (int isa = PI_ISA_PORTABLE; isa <= top; isa++) {
        pi_set_isa(isa);
        for (int thr = 1; thr <= 2; thr++) {
            pi_set_num_threads(thr);
            for (int es = 4; es <= 8; es += 4) {
                for (size_t i = 0; i < sizeof(gemm_cases) / sizeof(gemm_cases[0]); i++)
                    for (int v = 0; v < 4; v++)
                        run_case(&gemm_cases[i], es, 0, v & 1, v >> 1, acts[(i + v) % 4],
                                 v == 3, 1 + (int)(i % 2));
                for (size_t i = 0; i < sizeof(dw_cases) / sizeof(dw_cases[0]); i++)
                    for (int v = 0; v < 4; v++)
                        run_case(&dw_cases[i], es, 1, v & 1, v >> 1, acts[(i + v) % 4], v == 3,
                                 1 + v % 2);
            }
        }
    }
    pi_set_isa(top);
    if (top >= PI_ISA_AVX2)
        for (int thr = 1; thr <= 2; thr++) {
            pi_set_num_threads(thr);
            for (size_t i = 0; i < sizeof(gemm_cases) / sizeof(gemm_cases[0]); i++)
                if (gemm_cases[i].groups == 1)
                    for (int v = 0; v < 4; v++)
                        run_nchwc(&gemm_cases[i], v & 1, v >> 1, acts[(i + v) % 4], v == 3);
        }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
