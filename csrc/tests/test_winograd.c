/* Standalone differential test of pi_f32_winograd_conv3x3 (no Python).
 *
 * For F(2x2,3x3) and F(4x4,3x3), on every ISA this CPU runs: small shapes
 * with odd sizes, an image smaller than one tile, asymmetric padding, batch
 * > 1, channel counts that are not multiples of the micro-kernel's 6 or the
 * 8 lanes, enough tiles for several blocks, bias + residual + each
 * activation, and clip; y poisoned with NaN -- against a direct convolution
 * in double.  Weights are transformed (U = G g G^T) in double and packed in
 * panels of PI_WINOGRAD_MR output channels, as pyinfer/backends/winograd.py
 * does.
 *
 * Tolerance: normwise, max|y - ref| <= 1e-4 * max|ref| (+1e-6 absolute), the
 * bound tests/test_winograd.py uses (F(4)'s transforms amplify float32
 * rounding by up to ~10x; measured errors are printed).
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pi_internal.h"
#include "pi_vmath.h"

static int passed, failed;
static uint64_t rng = 88172645463325252ull;

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static const double G2[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

/* w (k, c, 3, 3) -> packed U: alpha^2 slices of k*c, panels of MR channels. */
static void pack_weights(int tile, int k, int c, const float *w, float *u)
{
    const int a = tile + 2;
    const double *g = tile == 2 ? &G2[0][0] : &G4[0][0];
    for (int kk = 0; kk < k; kk++)
        for (int cc = 0; cc < c; cc++) {
            const float *f = w + (kk * c + cc) * 9;
            double t[6][3], uu[6][6];
            for (int i = 0; i < a; i++)
                for (int j = 0; j < 3; j++) {
                    double s = 0;
                    for (int r = 0; r < 3; r++) s += g[i * 3 + r] * f[r * 3 + j];
                    t[i][j] = s;
                }
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++) {
                    double s = 0;
                    for (int r = 0; r < 3; r++) s += t[i][r] * g[j * 3 + r];
                    uu[i][j] = s;
                }
            const int p0 = kk / PI_WINOGRAD_MR * PI_WINOGRAD_MR;
            const int mr = k - p0 < PI_WINOGRAD_MR ? k - p0 : PI_WINOGRAD_MR;
            for (int xi = 0; xi < a * a; xi++)
                u[(size_t)xi * k * c + (size_t)p0 * c + (size_t)cc * mr + (kk - p0)] =
                    (float)uu[xi / a][xi % a];
        }
}

static double ref_act(double x, int act) { return pi_act_f64(x, act); }

static void run_case(int tile, int n, int c, int h, int w, int k, int pt, int pl, int pb,
                     int pr, int use_bias, int use_res, int act, int clip)
{
    const int ho = h + pt + pb - 2, wo = w + pl + pr - 2;
    const int a = tile + 2;
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * 9, ny = (size_t)n * k * ho * wo;
    float *x = malloc(nx * sizeof(float)), *wt = malloc(nw * sizeof(float));
    float *u = malloc((size_t)a * a * k * c * sizeof(float));
    float *bias = malloc(k * sizeof(float)), *r = malloc(ny * sizeof(float));
    float *y = malloc(ny * sizeof(float));
    double *ref = malloc(ny * sizeof(double));
    for (size_t i = 0; i < nx; i++) x[i] = (float)urand();
    for (size_t i = 0; i < nw; i++) wt[i] = (float)urand();
    for (int i = 0; i < k; i++) bias[i] = (float)urand();
    for (size_t i = 0; i < ny; i++) r[i] = (float)urand();
    pack_weights(tile, k, c, wt, u);
    const float lo = -0.5f, hi = 0.75f;
    double refmax = 0;
    for (int in = 0; in < n; in++)
        for (int kk = 0; kk < k; kk++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double s = use_bias ? bias[kk] : 0.0;
                    for (int cc = 0; cc < c; cc++)
                        for (int dy = 0; dy < 3; dy++)
                            for (int dx = 0; dx < 3; dx++) {
                                int iy = oy + dy - pt, ix = ox + dx - pl;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                s += (double)x[((size_t)(in * c + cc) * h + iy) * w + ix] *
                                     wt[(size_t)(kk * c + cc) * 9 + dy * 3 + dx];
                            }
                    size_t o = ((size_t)(in * k + kk) * ho + oy) * wo + ox;
                    if (use_res) s += r[o];
                    s = ref_act(s, act);
                    if (clip) s = s < lo ? lo : (s > hi ? hi : s);
                    ref[o] = s;
                    if (fabs(s) > refmax) refmax = fabs(s);
                }
    for (int isa = PI_ISA_PORTABLE; isa <= pi_isa_detected(); isa++) {
        pi_set_isa(isa);
        for (size_t i = 0; i < ny; i++) y[i] = NAN;
        pi_index wsb = pi_winograd_workspace_bytes(tile, n, c, k, ho, wo);
        void *ws = aligned_alloc(64, (size_t)(wsb + 63) / 64 * 64);
        int st = pi_f32_winograd_conv3x3(tile, n, c, h, w, k, pt, pl, ho, wo, x, u,
                                         use_bias ? bias : NULL, use_res ? r : NULL, act, clip,
                                         lo, hi, y, ws, wsb);
        double err = 0;
        int nan = 0;
        for (size_t i = 0; i < ny; i++) {
            if (isnan(y[i])) nan = 1;
            double e = fabs(y[i] - ref[i]);
            if (e > err) err = e;
        }
        int ok = st == PI_OK && !nan && err <= 1e-4 * refmax + 1e-6;
        if (ok) {
            passed++;
        } else {
            failed++;
            printf("FAIL F(%d) isa=%s n=%d c=%d h=%d w=%d k=%d pads=%d,%d,%d,%d bias=%d res=%d "
                   "act=%d clip=%d: status %d nan %d err %.3g (max|ref| %.3g)\n",
                   tile, pi_isa_name(isa), n, c, h, w, k, pt, pl, pb, pr, use_bias, use_res, act,
                   clip, st, nan, err, refmax);
        }
        free(ws);
    }
    pi_set_isa(pi_isa_detected());
    free(x); free(wt); free(u); free(bias); free(r); free(y); free(ref);
}

int main(void)
{
    for (int tile = 2; tile <= 4; tile += 2) {
        run_case(tile, 1, 3, 5, 7, 5, 1, 1, 1, 1, 0, 0, PI_ACT_NONE, 0);
        run_case(tile, 2, 7, 9, 6, 13, 0, 2, 1, 0, 1, 1, PI_ACT_RELU, 0);
        run_case(tile, 1, 1, 3, 3, 1, 0, 0, 0, 0, 1, 0, PI_ACT_NONE, 0); /* smaller than a tile */
        run_case(tile, 1, 4, 2, 1, 2, 1, 1, 1, 1, 0, 1, PI_ACT_SILU, 0);
        run_case(tile, 3, 9, 11, 10, 8, 1, 0, 2, 1, 1, 0, PI_ACT_SIGMOID, 1);
        run_case(tile, 1, 16, 23, 21, 17, 1, 1, 1, 1, 1, 1, PI_ACT_GELU, 0); /* several blocks */
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
