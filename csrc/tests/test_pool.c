/*
 * test_pool.c -- standalone check of csrc/pi_pool.c (pooling, global pooling,
 * channel affine, resize) against naive loops, on every ISA this CPU supports
 * and on 1 and 2 threads.  Every buffer is malloc'ed at its exact size so
 * AddressSanitizer sees any read or write past a plane, a row or the workspace
 * (csrc/tests/run_sanitized.sh).  Prints failures and "N passed, N failed";
 * exits non-zero on any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../pyinfer.h"

static long n_pass, n_fail;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (cond) {                                                       \
            n_pass++;                                                     \
        } else if (++n_fail <= 40) {                                      \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                   \
            printf(__VA_ARGS__);                                          \
            printf("\n");                                                 \
        }                                                                 \
    } while (0)

static unsigned rng_state = 12345u;
static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Naive pooling of one plane (contiguous h x w) into double. */
static double naive_pool(const float *x, long h, long w, long r, long o, const long *g, int is_max,
                         int cip)
{
    long kh = g[0], kw = g[1], sh = g[2], sw = g[3], dh = g[4], dw = g[5];
    long pt = g[6], pl = g[7], pb = g[8], pr = g[9];
    double acc = is_max ? -INFINITY : 0.0;
    long cnt_h = 0, cnt_w = 0;
    for (long i = 0; i < kh; i++) {
        long ih = r * sh - pt + i * dh;
        if (cip ? (ih >= -pt && ih < h + pb) : (ih >= 0 && ih < h))
            cnt_h++;
        for (long j = 0; j < kw; j++) {
            long iw = o * sw - pl + j * dw;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w)
                continue;
            double v = x[ih * w + iw];
            acc = is_max ? (v > acc ? v : acc) : acc + v;
        }
    }
    for (long j = 0; j < kw; j++) {
        long iw = o * sw - pl + j * dw;
        if (cip ? (iw >= -pl && iw < w + pr) : (iw >= 0 && iw < w))
            cnt_w++;
    }
    return is_max ? acc : acc / (double)(cnt_h * cnt_w);
}

static long out_len(long n, long k, long s, long d, long p0, long p1, int ceil_mode)
{
    long ek = (k - 1) * d + 1, span = n + p0 + p1 - ek;
    long o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= n + p0)
        o--;
    return o;
}

static void test_pool_case(long n, long c, long h, long w, const long *g, int ceil_mode,
                           int is_max, int cip)
{
    long oh = out_len(h, g[0], g[2], g[4], g[6], g[8], ceil_mode);
    long ow = out_len(w, g[1], g[3], g[5], g[7], g[9], ceil_mode);
    long planes = n * c;
    float *x = malloc(sizeof(float) * planes * h * w);
    float *y = malloc(sizeof(float) * planes * oh * ow);
    for (long i = 0; i < planes * h * w; i++)
        x[i] = frand();
    int threads = pi_get_num_threads();
    pi_index wsb = pi_pool2d_workspace_bytes(4, w, ow, g[1], g[3], g[5], g[7], g[9], threads);
    void *ws = malloc((size_t)wsb);
    for (long i = 0; i < planes * oh * ow; i++)
        y[i] = NAN;
    pi_index es = sizeof(float);
    int st = is_max
        ? pi_f32_max_pool2d(n, c, h, w, x, c * h * w * es, h * w * es, w * es, g[0], g[1], g[2],
                            g[3], g[4], g[5], g[6], g[7], g[8], g[9], oh, ow, y,
                            c * oh * ow * es, oh * ow * es, ow * es, ws, wsb)
        : pi_f32_avg_pool2d(n, c, h, w, x, c * h * w * es, h * w * es, w * es, g[0], g[1], g[2],
                            g[3], g[6], g[7], g[8], g[9], cip, oh, ow, y, c * oh * ow * es,
                            oh * ow * es, ow * es, ws, wsb);
    CHECK(st == PI_OK, "pool status %d", st);
    long bad = 0;
    for (long p = 0; p < planes; p++)
        for (long r = 0; r < oh; r++)
            for (long o = 0; o < ow; o++) {
                double want = naive_pool(x + p * h * w, h, w, r, o, g, is_max, cip);
                double got = y[(p * oh + r) * ow + o];
                if (!(fabs(got - want) <= 1e-5 * (1 + fabs(want))) && !(got == want))
                    bad++;
            }
    CHECK(bad == 0, "%s pool n%ld c%ld %ldx%ld k%ldx%ld s%ldx%ld d%ldx%ld p%ld,%ld,%ld,%ld ceil%d "
          "cip%d: %ld wrong", is_max ? "max" : "avg", n, c, h, w, g[0], g[1], g[2], g[3], g[4],
          g[5], g[6], g[7], g[8], g[9], ceil_mode, cip, bad);
    /* A workspace one byte short of one slot is refused, not overrun. */
    st = pi_f32_max_pool2d(n, c, h, w, x, c * h * w * es, h * w * es, w * es, g[0], g[1], g[2],
                           g[3], g[4], g[5], g[6], g[7], g[8], g[9], oh, ow, y,
                           c * oh * ow * es, oh * ow * es, ow * es, ws, 16);
    CHECK(st == PI_ERR_WORKSPACE, "short workspace status %d", st);
    free(ws);
    free(x);
    free(y);
}

static void test_pools(void)
{
    static const long geoms[][10] = {
        /* kh kw sh sw dh dw pt pl pb pr */
        {3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 1, 1, 0, 0, 0, 0},
        {3, 2, 1, 3, 1, 1, 1, 0, 2, 1}, {1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
        {3, 3, 1, 1, 2, 2, 2, 1, 0, 3}, {4, 3, 3, 2, 1, 3, 3, 0, 1, 5},
    };
    /* the last shape is large enough to run on two threads */
    static const long shapes[][4] = {{1, 1, 7, 9}, {2, 3, 8, 5}, {1, 2, 13, 33}, {3, 1, 5, 17},
                                     {4, 16, 40, 64}};
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
                const long *g = geoms[gi], *s = shapes[si];
                long ekh = (g[0] - 1) * g[4] + 1, ekw = (g[1] - 1) * g[5] + 1;
                if (ekh > s[2] + g[6] + g[8] || ekw > s[3] + g[7] + g[9])
                    continue;
                test_pool_case(s[0], s[1], s[2], s[3], g, ceil_mode, 1, 0);
                if (g[4] == 1 && g[5] == 1)
                    for (int cip = 0; cip < 2; cip++)
                        test_pool_case(s[0], s[1], s[2], s[3], g, ceil_mode, 0, cip);
            }
}

static void test_global_affine(void)
{
    static const long shapes[][3] = {{1, 1, 1}, {2, 3, 49}, {1, 5, 17}, {3, 2, 100}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        long n = shapes[si][0], c = shapes[si][1], hw = shapes[si][2];
        double *x = malloc(sizeof(double) * n * c * hw);
        double *y = malloc(sizeof(double) * n * c);
        double *z = malloc(sizeof(double) * n * c * hw);
        double *a = malloc(sizeof(double) * c), *b = malloc(sizeof(double) * c);
        for (long i = 0; i < n * c * hw; i++)
            x[i] = frand();
        for (long i = 0; i < c; i++) {
            a[i] = frand();
            b[i] = frand();
        }
        pi_index es = sizeof(double);
        CHECK(pi_f64_global_avg_pool(n, c, hw, x, c * hw * es, hw * es, y, c * es, es) == PI_OK,
              "global avg status");
        long bad = 0;
        for (long p = 0; p < n * c; p++) {
            double s = 0;
            for (long i = 0; i < hw; i++)
                s += x[p * hw + i];
            bad += fabs(y[p] - s / hw) > 1e-13;
        }
        CHECK(bad == 0, "global avg %ld wrong", bad);
        CHECK(pi_f64_global_max_pool(n, c, hw, x, c * hw * es, hw * es, y, c * es, es) == PI_OK,
              "global max status");
        bad = 0;
        for (long p = 0; p < n * c; p++) {
            double m = -INFINITY;
            for (long i = 0; i < hw; i++)
                m = x[p * hw + i] > m ? x[p * hw + i] : m;
            bad += y[p] != m;
        }
        CHECK(bad == 0, "global max %ld wrong", bad);
        CHECK(pi_f64_channel_affine(n, c, hw, x, c * hw * es, hw * es, a, b, z, c * hw * es,
                                    hw * es) == PI_OK, "affine status");
        bad = 0;
        for (long p = 0; p < n * c; p++)
            for (long i = 0; i < hw; i++)
                bad += z[p * hw + i] != x[p * hw + i] * a[p % c] + b[p % c];
        CHECK(bad == 0, "affine %ld wrong", bad);
        free(x), free(y), free(z), free(a), free(b);
    }
}

static void test_resize(void)
{
    long n = 2, c = 3, h = 5, w = 7, oh = 11, ow = 4;
    float *x = malloc(sizeof(float) * n * c * h * w), *y = malloc(sizeof(float) * n * c * oh * ow);
    pi_index *ih = malloc(sizeof(pi_index) * oh), *ih1 = malloc(sizeof(pi_index) * oh);
    pi_index *iw = malloc(sizeof(pi_index) * ow), *iw1 = malloc(sizeof(pi_index) * ow);
    float *lh = malloc(sizeof(float) * oh), *lw = malloc(sizeof(float) * ow);
    for (long i = 0; i < n * c * h * w; i++)
        x[i] = frand();
    for (long r = 0; r < oh; r++) {
        ih[r] = r * h / oh;
        ih1[r] = ih[r] + 1 < h ? ih[r] + 1 : h - 1;
        lh[r] = 0.25f;
    }
    for (long o = 0; o < ow; o++) {
        iw[o] = (o * w) / ow;
        iw1[o] = iw[o] + 1 < w ? iw[o] + 1 : w - 1;
        lw[o] = 0.5f;
    }
    pi_index es = sizeof(float);
    CHECK(pi_f32_resize_nearest(n, c, x, c * h * w * es, h * w * es, w * es, oh, ow, ih, iw, y,
                                c * oh * ow * es, oh * ow * es, ow * es) == PI_OK, "nearest status");
    long bad = 0;
    for (long p = 0; p < n * c; p++)
        for (long r = 0; r < oh; r++)
            for (long o = 0; o < ow; o++)
                bad += y[(p * oh + r) * ow + o] != x[(p * h + ih[r]) * w + iw[o]];
    CHECK(bad == 0, "nearest %ld wrong", bad);
    CHECK(pi_f32_resize_linear(n, c, x, c * h * w * es, h * w * es, w * es, oh, ow, ih, ih1, lh,
                               iw, iw1, lw, y, c * oh * ow * es, oh * ow * es, ow * es) == PI_OK,
          "linear status");
    bad = 0;
    for (long p = 0; p < n * c; p++)
        for (long r = 0; r < oh; r++)
            for (long o = 0; o < ow; o++) {
                const float *a = x + (p * h + ih[r]) * w, *b = x + (p * h + ih1[r]) * w;
                double top = a[iw[o]] * 0.5 + a[iw1[o]] * 0.5;
                double bot = b[iw[o]] * 0.5 + b[iw1[o]] * 0.5;
                bad += fabs(y[(p * oh + r) * ow + o] - (top * 0.75 + bot * 0.25)) > 1e-6;
            }
    CHECK(bad == 0, "linear %ld wrong", bad);
    free(x), free(y), free(ih), free(ih1), free(iw), free(iw1), free(lh), free(lw);
}

int main(void)
{
    for (int isa = 0; isa <= pi_isa_detected(); isa++) {
        if (pi_set_isa(isa) != PI_OK)
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            pi_set_num_threads(threads);
            test_pools();
            test_global_affine();
            test_resize();
        }
    }
    printf("test_pool: %ld passed, %ld failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
