/*
 * test_vmath_norm.c -- standalone check of pi_vmath.h and the softmax, norm,
 * unary and binary kernels, on every ISA this CPU supports (pi_set_isa).
 *
 * Build it together with every kernel source of csrc/ (all the .c files there)
 * and link libm, e.g. from the repository root:
 *   gcc -O2 -fopenmp -std=c11 -fno-math-errno -Icsrc csrc/pi_*.c
 *       csrc/tests/test_vmath_norm.c -lm -o /tmp/test_vmath_norm
 * Prints one line per failure, the measured max ulp per function and ISA, and
 * "N passed, N failed"; exits non-zero on any failure.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../pi_vmath.h"

static long n_pass, n_fail;

#define CHECK(cond, ...)                                                                \
    do {                                                                                \
        if (cond) {                                                                     \
            n_pass++;                                                                   \
        } else {                                                                        \
            n_fail++;                                                                   \
            if (n_fail <= 60) {                                                         \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                             \
                printf(__VA_ARGS__);                                                    \
                printf("\n");                                                           \
            }                                                                           \
        }                                                                               \
    } while (0)

/* ---- the functions under test ------------------------------------------------ */

enum { F_EXP, F_TANH, F_ERF, F_SIGMOID, F_LOG, F_GELU, F_GELU_TANH, F_SILU, F_RELU, F_COUNT };
static const char *fname[F_COUNT] = {"exp", "tanh", "erf", "sigmoid", "log",
                                     "gelu", "gelu_tanh", "silu", "relu"};
/* max ulp allowed where the result is normal; see pi_vmath.h for the figures */
static const double fulp[F_COUNT] = {2, 3, 3, 3, 2, 8, 5, 4, 0};

static double ref_f(int f, double x)
{
    switch (f) {
    case F_EXP: return exp(x);
    case F_TANH: return tanh(x);
    case F_ERF: return erf(x);
    case F_SIGMOID: return pi_act_f64(x, PI_ACT_SIGMOID);
    case F_LOG: return log(x);
    case F_GELU: return pi_act_f64(x, PI_ACT_GELU);
    case F_GELU_TANH: return pi_act_f64(x, PI_ACT_GELU_TANH);
    case F_SILU: return pi_act_f64(x, PI_ACT_SILU);
    default: return pi_act_f64(x, PI_ACT_RELU);
    }
}

#if PI_X86
#define PI_TEST_APPLY(SUF, VT, W, LOAD, STORE)                                          \
    PI_TARGET_##SUF static void apply_##SUF(int f, long n, const float *x, float *y)    \
    {                                                                                   \
        for (long i = 0; i < n; i += W) {                                               \
            float in[W], out[W];                                                        \
            for (int j = 0; j < W; j++)                                                 \
                in[j] = i + j < n ? x[i + j] : 0.0f;                                    \
            VT v = LOAD(in), r;                                                         \
            switch (f) {                                                                \
            case F_EXP: r = pi_exp_ps_##SUF##_l(v); break;                              \
            case F_TANH: r = pi_tanh_ps_##SUF##_l(v); break;                            \
            case F_ERF: r = pi_erf_ps_##SUF##_l(v); break;                              \
            case F_SIGMOID: r = pi_sigmoid_ps_##SUF##_l(v); break;                      \
            case F_LOG: r = pi_log_ps_##SUF##_l(v); break;                              \
            case F_GELU: r = pi_act_ps_##SUF##_l(v, PI_ACT_GELU); break;                \
            case F_GELU_TANH: r = pi_act_ps_##SUF##_l(v, PI_ACT_GELU_TANH); break;      \
            case F_SILU: r = pi_act_ps_##SUF##_l(v, PI_ACT_SILU); break;                \
            default: r = pi_act_ps_##SUF##_l(v, PI_ACT_RELU); break;                    \
            }                                                                           \
            STORE(out, r);                                                              \
            for (int j = 0; j < W && i + j < n; j++)                                    \
                y[i + j] = out[j];                                                      \
        }                                                                               \
    }
/* name shims: AVX2 -> _avx2, AVX512 -> _avx512 */
#define pi_exp_ps_AVX2_l pi_exp_ps_avx2
#define pi_tanh_ps_AVX2_l pi_tanh_ps_avx2
#define pi_erf_ps_AVX2_l pi_erf_ps_avx2
#define pi_sigmoid_ps_AVX2_l pi_sigmoid_ps_avx2
#define pi_log_ps_AVX2_l pi_log_ps_avx2
#define pi_act_ps_AVX2_l pi_act_ps_avx2
#define pi_exp_ps_AVX512_l pi_exp_ps_avx512
#define pi_tanh_ps_AVX512_l pi_tanh_ps_avx512
#define pi_erf_ps_AVX512_l pi_erf_ps_avx512
#define pi_sigmoid_ps_AVX512_l pi_sigmoid_ps_avx512
#define pi_log_ps_AVX512_l pi_log_ps_avx512
#define pi_act_ps_AVX512_l pi_act_ps_avx512
PI_TEST_APPLY(AVX2, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps)
PI_TEST_APPLY(AVX512, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps)

PI_TARGET_AVX2 static void apply_pd_avx2(int act, long n, const double *x, double *y)
{
    for (long i = 0; i + 4 <= n; i += 4)
        _mm256_storeu_pd(y + i, pi_act_pd_avx2(_mm256_loadu_pd(x + i), act));
}
PI_TARGET_AVX512 static void apply_pd_avx512(int act, long n, const double *x, double *y)
{
    for (long i = 0; i + 8 <= n; i += 8)
        _mm512_storeu_pd(y + i, pi_act_pd_avx512(_mm512_loadu_pd(x + i), act));
}
#endif

static void apply(int isa, int f, long n, const float *x, float *y)
{
#if PI_X86
    if (isa == PI_ISA_AVX512) { apply_AVX512(f, n, x, y); return; }
    if (isa == PI_ISA_AVX2) { apply_AVX2(f, n, x, y); return; }
#endif
    for (long i = 0; i < n; i++) {
        switch (f) {
        case F_EXP: y[i] = (float)exp(x[i]); break;
        case F_TANH: y[i] = pi_act_f32(x[i], PI_ACT_TANH); break;
        case F_ERF: y[i] = (float)erf(x[i]); break;
        case F_SIGMOID: y[i] = pi_act_f32(x[i], PI_ACT_SIGMOID); break;
        case F_LOG: y[i] = (float)log(x[i]); break;
        case F_GELU: y[i] = pi_act_f32(x[i], PI_ACT_GELU); break;
        case F_GELU_TANH: y[i] = pi_act_f32(x[i], PI_ACT_GELU_TANH); break;
        case F_SILU: y[i] = pi_act_f32(x[i], PI_ACT_SILU); break;
        default: y[i] = pi_act_f32(x[i], PI_ACT_RELU); break;
        }
    }
}

/* error of got in ulp of the float nearest ref (subnormal spacing below FLT_MIN) */
static double ulp_err(float got, double ref)
{
    if (isnan(ref) || isnan(got))
        return (isnan(ref) && isnan(got)) ? 0 : INFINITY;
    if ((double)got == (double)(float)ref)
        return 0;
    if (isinf(got) || isinf(ref))
        return INFINITY;
    double a = fabs(ref);
    double u = a < FLT_MIN ? ldexp(1.0, -149) : ldexp(1.0, ilogb(a) - 23);
    return fabs((double)got - ref) / u;
}

static double worst_ulp[3][F_COUNT];

/* allowed ulp for f at x (a hook for x-dependent bounds; none needed now) */
static double allowed_ulp(int f, float x)
{
    (void)x;
    return fulp[f];
}

/* got acceptable for f(x) = r?  ulp bound where the result is a normal float
 * (and, for the activations, its magnitude is above 1e-30: their far negative
 * tails go through subnormal intermediates), an absolute bound below. */
static int value_ok(int f, float x, float got, double r, double *ulp)
{
    *ulp = 0;
    if (isnan(r))
        return isnan(got);
    if (isinf(r) || isinf(got))
        return (double)got == r || (float)r == got;
    int tail = fabs(r) < (f >= F_GELU ? 1e-30 : FLT_MIN);
    if (tail)
        return fabs((double)got - r) <= (f >= F_GELU ? 2e-5 * fabs(r) + ldexp(1.0, -140)
                                                     : ldexp(1.0, -149));
    *ulp = ulp_err(got, r);
    return *ulp <= allowed_ulp(f, x);
}

/* one batch of inputs for f on isa: ulp bound where the result is a normal
 * float (and, for the activations, its magnitude is above 1e-30: their far
 * negative tails are computed through subnormal intermediates), absolute
 * error bound below. */
static void check_batch(int isa, int f, long n, const float *x)
{
    float *y = malloc(sizeof(float) * n);
    apply(isa, f, n, x, y);
    int reported = 0;
    for (long i = 0; i < n; i++) {
        double r = ref_f(f, x[i]), e;
        int ok = value_ok(f, x[i], y[i], r, &e);
        if (e > worst_ulp[isa][f] && !isinf(e))
            worst_ulp[isa][f] = e;
        if (!ok && reported < 3) {
            reported++;
            CHECK(0, "%s isa=%s x=%.9g got=%.9g ref=%.12g (%.2f ulp)", fname[f],
                  pi_isa_name(isa), (double)x[i], (double)y[i], r, e);
        }
    }
    if (!reported)
        n_pass++;
    free(y);
}

static float randf(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 16777216.0));
}

static void test_vmath(int isa)
{
    /* dense uniform sweeps over each function's interesting range */
    static const float lo[F_COUNT] = {-104.5f, -12, -12, -110, 0, -15, -15, -110, -4};
    static const float hi[F_COUNT] = {89.5f, 12, 12, 110, 300, 15, 15, 110, 4};
    const long N = 1L << 19;
    float *x = malloc(sizeof(float) * N);
    for (int f = 0; f < F_COUNT; f++) {
        for (long i = 0; i < N; i++)
            x[i] = lo[f] + (hi[f] - lo[f]) * (float)((double)i / (double)N);
        check_batch(isa, f, N, x);
        /* near zero and the branch switches: every float in [-2, 2] at 2^-16 steps */
        for (long i = 0; i < N; i++)
            x[i] = (float)(-2.0 + 4.0 * (double)i / (double)N);
        check_batch(isa, f, N, x);
        /* log-spaced magnitudes of both signs, 2^-149 .. 2^127 */
        for (long i = 0; i < N; i++) {
            float m = ldexpf(1.0f + (float)(i % 1024) / 1024.0f, (int)(i / 1024 % 277) - 149);
            x[i] = (i & 1) ? -m : m;
            if (f == F_LOG)
                x[i] = m;
        }
        check_batch(isa, f, N, x);
    }
    free(x);

    /* specials: NaN, +-Inf, +-0, denormals, large magnitudes */
    const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-45f, -1e-45f,
                              1e-40f, -1e-40f, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX, 1e30f,
                              -1e30f, 88.72283f, 88.72284f, 89.0f, 100.0f, -87.33655f, -103.0f,
                              -103.972f, -104.0f, -200.0f, 3.9f, -3.9f, 10.0f, -10.0f, 0.5f,
                              0.625f, -0.625f, 1.0f, -1.0f, 0.70710677f, -0.70710677f};
    const int ns = (int)(sizeof(specials) / sizeof(specials[0]));
    float out[64];
    for (int f = 0; f < F_COUNT; f++) {
        apply(isa, f, ns, specials, out);
        for (int i = 0; i < ns; i++) {
            double r = ref_f(f, specials[i]), e;
            int ok = value_ok(f, specials[i], out[i], r, &e);
            CHECK(ok, "special %s(%.9g) isa=%s: got %.9g want %.9g", fname[f],
                  (double)specials[i], pi_isa_name(isa), (double)out[i], r);
        }
    }
    /* the limits spelled out */
    float in4[4] = {-INFINITY, INFINITY, NAN, -INFINITY}, o[4];
    apply(isa, F_EXP, 4, in4, o);
    CHECK(o[0] == 0 && o[1] == INFINITY && isnan(o[2]), "exp limits isa=%s", pi_isa_name(isa));
    apply(isa, F_TANH, 4, in4, o);
    CHECK(o[0] == -1 && o[1] == 1 && isnan(o[2]), "tanh limits isa=%s", pi_isa_name(isa));
    apply(isa, F_SIGMOID, 4, in4, o);
    CHECK(o[0] == 0 && o[1] == 1 && isnan(o[2]), "sigmoid limits isa=%s", pi_isa_name(isa));
    apply(isa, F_ERF, 4, in4, o);
    CHECK(o[0] == -1 && o[1] == 1 && isnan(o[2]), "erf limits isa=%s", pi_isa_name(isa));
    apply(isa, F_GELU, 4, in4, o);
    CHECK(o[0] == 0 && o[1] == INFINITY && isnan(o[2]), "gelu limits isa=%s", pi_isa_name(isa));
    apply(isa, F_GELU_TANH, 4, in4, o);
    CHECK(o[0] == 0 && o[1] == INFINITY && isnan(o[2]), "gelu_tanh limits isa=%s",
          pi_isa_name(isa));
    apply(isa, F_SILU, 4, in4, o);
    CHECK(o[0] == 0 && o[1] == INFINITY && isnan(o[2]), "silu limits isa=%s", pi_isa_name(isa));
    apply(isa, F_RELU, 4, in4, o);
    CHECK(o[0] == 0 && o[1] == INFINITY && isnan(o[2]), "relu limits isa=%s", pi_isa_name(isa));

#if PI_X86
    /* f64 vectors equal the scalar double path lane by lane */
    if (isa >= PI_ISA_AVX2) {
        double xd[64], yd[64];
        unsigned s = 7;
        for (int i = 0; i < 64; i++)
            xd[i] = (randf(&s) - 0.5) * 20.0;
        xd[0] = NAN; xd[1] = INFINITY; xd[2] = -INFINITY; xd[3] = -0.0;
        for (int act = 0; act <= PI_ACT_TANH; act++) {
            if (isa == PI_ISA_AVX512)
                apply_pd_avx512(act, 64, xd, yd);
            else
                apply_pd_avx2(act, 64, xd, yd);
            int ok = 1;
            for (int i = 0; i < 64; i++) {
                double r = pi_act_f64(xd[i], act);
                ok &= (isnan(r) && isnan(yd[i])) || r == yd[i];
            }
            CHECK(ok, "pi_act_pd act=%d isa=%s differs from pi_act_f64", act, pi_isa_name(isa));
        }
    }
#endif
}

/* ---- kernels against naive C in long double ----------------------------------- */

static const long sizes[] = {1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 257, 1031};
#define NSIZES ((int)(sizeof(sizes) / sizeof(sizes[0])))

static int close_f(double got, long double ref, int f64)
{
    double rtol = f64 ? 1e-12 : 1e-5, atol = f64 ? 1e-14 : 1e-6;
    if (isnan((double)ref))
        return isnan(got);
    if (isinf((double)ref))
        return got == (double)ref;
    return fabsl((long double)got - ref) <= atol + rtol * fabsl(ref);
}

static void fill(unsigned *s, long n, float *xf, double *xd, double scale, double offset)
{
    for (long i = 0; i < n; i++) {
        double v = offset + scale * (2.0 * randf(s) - 1.0);
        xf[i] = (float)v;
        xd[i] = (double)xf[i]; /* same values in both precisions */
    }
}

static void ref_softmax(long outer, long n, long inner, const double *x, long double *r, int lg)
{
    for (long o = 0; o < outer; o++)
        for (long j = 0; j < inner; j++) {
            const double *xs = x + o * n * inner + j;
            long double m = xs[0], s = 0;
            for (long k = 1; k < n; k++)
                if (xs[k * inner] > m || isnan(xs[k * inner]))
                    m = xs[k * inner];
            for (long k = 0; k < n; k++)
                s += expl(xs[k * inner] - m);
            for (long k = 0; k < n; k++)
                r[o * n * inner + j + k * inner] =
                    lg ? (xs[k * inner] - m) - logl(s) : expl(xs[k * inner] - m) / s;
        }
}

static void test_softmax(int isa)
{
    unsigned s = 1234u + (unsigned)isa;
    const long shapes[][3] = {{1, 1, 1}, {3, 1, 1}, {1, 1, 5}, {2, 3, 4}, {5, 17, 1}, {4, 31, 1},
                              {2, 8, 9}, {3, 33, 16}, {2, 5, 257}, {1, 1031, 1}, {64, 127, 1},
                              {8, 64, 65}, {7, 9, 300}, {130, 200, 1}};
    const int nsh = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int k = -1; k < nsh; k++) {
        for (int si = 0; si < (k < 0 ? NSIZES : 1); si++) {
            long outer = k < 0 ? 2 : shapes[k][0], n = k < 0 ? sizes[si] : shapes[k][1];
            long inner = k < 0 ? 1 : shapes[k][2];
            long tot = outer * n * inner;
            float *xf = malloc(4 * tot), *yf = malloc(4 * tot);
            double *xd = malloc(8 * tot), *yd = malloc(8 * tot);
            long double *r = malloc(sizeof(long double) * tot);
            fill(&s, tot, xf, xd, 8.0, 0.0);
            if (tot > 4 && k % 3 == 0) { /* a NaN poisons its slice only */
                xf[2] = NAN;
                xd[2] = NAN;
            }
            for (int lg = 0; lg < 2; lg++)
                for (int inplace = 0; inplace < 2; inplace++) {
                    ref_softmax(outer, n, inner, xd, r, lg);
                    float *of = inplace ? yf : yf;
                    double *od = yd;
                    if (inplace) {
                        memcpy(yf, xf, 4 * tot);
                        memcpy(yd, xd, 8 * tot);
                    } else {
                        for (long i = 0; i < tot; i++) {
                            yf[i] = NAN;
                            yd[i] = NAN;
                        }
                    }
                    int st = pi_f32_softmax(outer, n, inner, inplace ? yf : xf, of, lg);
                    int st2 = pi_f64_softmax(outer, n, inner, inplace ? yd : xd, od, lg);
                    int okf = st == PI_OK, okd = st2 == PI_OK;
                    long bad = -1;
                    for (long i = 0; i < tot; i++) {
                        if (!close_f(of[i], r[i], 0)) { okf = 0; bad = i; }
                        if (!close_f(od[i], r[i], 1)) { okd = 0; bad = i; }
                    }
                    CHECK(okf && okd, "softmax isa=%s (%ld,%ld,%ld) log=%d inplace=%d f32ok=%d f64ok=%d at %ld: %.9g %.17g ref %.17Lg",
                          pi_isa_name(isa), outer, n, inner, lg, inplace, okf, okd, bad,
                          bad >= 0 ? (double)of[bad] : 0.0, bad >= 0 ? od[bad] : 0.0,
                          bad >= 0 ? r[bad] : 0.0L);
                }
            free(xf); free(yf); free(xd); free(yd); free(r);
        }
    }
}

static void ref_norm(long rows, long cols, const double *x, const double *w, const double *b,
                     double eps, int rms, long double *r)
{
    for (long i = 0; i < rows; i++) {
        const double *xr = x + i * cols;
        long double m = 0, v = 0;
        if (!rms) {
            for (long j = 0; j < cols; j++) m += xr[j];
            m /= cols;
        }
        for (long j = 0; j < cols; j++) v += (xr[j] - m) * (xr[j] - m);
        v /= cols;
        long double rs = 1.0L / sqrtl(v + eps);
        for (long j = 0; j < cols; j++) {
            long double t = (xr[j] - m) * rs;
            if (w) t *= w[j];
            if (b && !rms) t += b[j];
            r[i * cols + j] = t;
        }
    }
}

static void test_norm(int isa)
{
    unsigned s = 99u + (unsigned)isa;
    for (int si = 0; si < NSIZES; si++) {
        for (int variant = 0; variant < 4; variant++) {
            long cols = sizes[si], rows = variant == 3 ? 37 : 3;
            long pad = 5; /* rows are strided: row stride = cols + pad elements */
            long tot = rows * (cols + pad);
            float *xf = malloc(4 * tot), *yf = malloc(4 * tot), *wf = malloc(4 * cols), *bf = malloc(4 * cols);
            double *xd = malloc(8 * tot), *yd = malloc(8 * tot), *wd = malloc(8 * cols), *bd = malloc(8 * cols);
            long double *r = malloc(sizeof(long double) * rows * cols);
            double *xc = malloc(8 * rows * cols);
            /* offsets: unit scale, then |mean| >> std to exercise the two-pass centring */
            fill(&s, tot, xf, xd, 1.0, variant == 2 ? 30.0 : 0.25);
            fill(&s, cols, wf, wd, 1.0, 0.0);
            fill(&s, cols, bf, bd, 1.0, 0.0);
            for (long i = 0; i < rows; i++)
                memcpy(xc + i * cols, xd + i * (cols + pad), 8 * cols);
            for (int rms = 0; rms < 2; rms++)
                for (int wb = 0; wb < 4; wb++) {
                    const float *w32 = (wb & 1) ? wf : NULL, *b32 = (wb & 2) ? bf : NULL;
                    const double *w64 = (wb & 1) ? wd : NULL, *b64 = (wb & 2) ? bd : NULL;
                    ref_norm(rows, cols, xc, w64, b64, 1e-5, rms, r);
                    for (long i = 0; i < tot; i++) { yf[i] = NAN; yd[i] = NAN; }
                    int inplace = variant == 1;
                    if (inplace) { memcpy(yf, xf, 4 * tot); memcpy(yd, xd, 8 * tot); }
                    const float *xin = inplace ? yf : xf;
                    const double *xin64 = inplace ? yd : xd;
                    pi_index rs32 = 4 * (cols + pad), rs64 = 8 * (cols + pad);
                    int st, st2;
                    if (rms) {
                        st = pi_f32_rms_norm(rows, cols, xin, rs32, w32, 1e-5f, yf, rs32);
                        st2 = pi_f64_rms_norm(rows, cols, xin64, rs64, w64, 1e-5, yd, rs64);
                    } else {
                        st = pi_f32_layer_norm(rows, cols, xin, rs32, w32, b32, 1e-5f, yf, rs32);
                        st2 = pi_f64_layer_norm(rows, cols, xin64, rs64, w64, b64, 1e-5, yd, rs64);
                    }
                    int okf = st == PI_OK, okd = st2 == PI_OK, pad_ok = 1;
                    /* scale the tolerance by |mean|/std: the input's own representation error */
                    double cond = variant == 2 ? 30.0 * 1.8 : 1.0;
                    long bad = 0;
                    for (long i = 0; i < rows; i++)
                        for (long j = 0; j < cols; j++) {
                            long double ref = r[i * cols + j];
                            long double ef = fabsl((long double)yf[i * (cols + pad) + j] - ref);
                            long double ed = fabsl((long double)yd[i * (cols + pad) + j] - ref);
                            if (!(ef <= cond * (1e-6 + 1e-5 * fabsl(ref)))) { okf = 0; bad = i * cols + j; }
                            if (!(ed <= cond * (1e-14 + 1e-12 * fabsl(ref)))) { okd = 0; bad = i * cols + j; }
                        }
                    if (!inplace)
                        for (long i = 0; i < rows; i++)
                            for (long j = cols; j < cols + pad; j++)
                                pad_ok &= isnan(yf[i * (cols + pad) + j]) && isnan(yd[i * (cols + pad) + j]);
                    CHECK(okf && okd && pad_ok, "%s isa=%s rows=%ld cols=%ld wb=%d variant=%d f32ok=%d f64ok=%d pad_ok=%d at %ld",
                          rms ? "rms_norm" : "layer_norm", pi_isa_name(isa), rows, cols, wb, variant,
                          okf, okd, pad_ok, bad);
                }
            free(xf); free(yf); free(wf); free(bf); free(xd); free(yd); free(wd); free(bd);
            free(r); free(xc);
        }
    }
    /* a NaN or an Inf poisons its row only */
    float x[2][9], y[2][9];
    for (int j = 0; j < 9; j++) { x[0][j] = (float)j; x[1][j] = (float)(j * j); }
    x[0][4] = NAN;
    pi_f32_layer_norm(2, 9, &x[0][0], 36, NULL, NULL, 1e-5f, &y[0][0], 36);
    int ok = 1;
    for (int j = 0; j < 9; j++) ok &= isnan(y[0][j]) && !isnan(y[1][j]);
    CHECK(ok, "layer_norm NaN row isolation isa=%s", pi_isa_name(isa));
    x[0][4] = INFINITY;
    pi_f32_rms_norm(2, 9, &x[0][0], 36, NULL, 1e-5f, &y[0][0], 36);
    ok = 1;
    for (int j = 0; j < 9; j++) ok &= !isnan(y[1][j]);
    CHECK(ok, "rms_norm Inf row isolation isa=%s", pi_isa_name(isa));
}

static long double ref_unary(int op, double v)
{
    switch (op) {
    case PI_UNARY_EXP: return expl(v);
    case PI_UNARY_LOG: return logl(v);
    case PI_UNARY_SQRT: return sqrtl(v);
    case PI_UNARY_RSQRT: return 1.0L / sqrtl(v);
    case PI_UNARY_ABS: return fabsl(v);
    case PI_UNARY_NEG: return -(long double)v;
    case PI_UNARY_ERF: return erfl(v);
    case PI_ACT_TANH: return tanhl(v);
    default: return pi_act_f64(v, op);
    }
}

static void test_unary(int isa)
{
    const int ops[] = {PI_ACT_NONE, PI_ACT_RELU, PI_ACT_GELU, PI_ACT_GELU_TANH, PI_ACT_SILU,
                       PI_ACT_SIGMOID, PI_ACT_TANH, PI_UNARY_EXP, PI_UNARY_LOG, PI_UNARY_SQRT,
                       PI_UNARY_RSQRT, PI_UNARY_ABS, PI_UNARY_NEG, PI_UNARY_ERF};
    unsigned s = 5u;
    for (int k = 0; k < (int)(sizeof(ops) / sizeof(ops[0])); k++) {
        int op = ops[k];
        int pos = op == PI_UNARY_LOG || op == PI_UNARY_SQRT || op == PI_UNARY_RSQRT;
        for (int si = 0; si <= NSIZES + 1; si++) {
            /* the last two are threaded; the very last streams its stores */
            long n = si < NSIZES ? sizes[si] : si == NSIZES ? 200003 : 2100003;
            if (si == NSIZES + 1 && op != PI_UNARY_EXP && op != PI_UNARY_ABS && op != PI_ACT_GELU)
                continue;
            float *xf = malloc(4 * n), *yf = malloc(4 * n);
            double *xd = malloc(8 * n), *yd = malloc(8 * n);
            fill(&s, n, xf, xd, 6.0, pos ? 6.0 : 0.0);
            for (int inplace = 0; inplace < 2; inplace++) {
                if (inplace) { memcpy(yf, xf, 4 * n); memcpy(yd, xd, 8 * n); }
                else for (long i = 0; i < n; i++) { yf[i] = NAN; yd[i] = NAN; }
                int st = pi_f32_unary(op, n, inplace ? yf : xf, yf);
                int st2 = pi_f64_unary(op, n, inplace ? yd : xd, yd);
                int okf = st == PI_OK, okd = st2 == PI_OK;
                long bad = 0;
                for (long i = 0; i < n; i++) {
                    long double r = ref_unary(op, xd[i]);
                    if (!close_f(yf[i], r, 0)) { okf = 0; bad = i; }
                    if (!close_f(yd[i], r, 1)) { okd = 0; bad = i; }
                }
                CHECK(okf && okd, "unary op=%d isa=%s n=%ld inplace=%d f32ok=%d f64ok=%d x=%.9g got %.9g / %.17g",
                      op, pi_isa_name(isa), n, inplace, okf, okd, xd[bad], (double)yf[bad], yd[bad]);
            }
            free(xf); free(yf); free(xd); free(yd);
        }
    }
    /* domain and specials */
    float sx[6] = {0.0f, -1.0f, INFINITY, NAN, -0.0f, 1e-40f}, sy[6];
    pi_f32_unary(PI_UNARY_LOG, 6, sx, sy);
    CHECK(sy[0] == -INFINITY && isnan(sy[1]) && sy[2] == INFINITY && isnan(sy[3]) &&
              sy[4] == -INFINITY && fabs(sy[5] - log(1e-40)) < 1e-5,
          "log domain isa=%s: %g %g %g %g %g %g", pi_isa_name(isa), sy[0], sy[1], sy[2], sy[3],
          sy[4], sy[5]);
    pi_f32_unary(PI_UNARY_SQRT, 6, sx, sy);
    CHECK(sy[0] == 0 && isnan(sy[1]) && sy[2] == INFINITY && isnan(sy[3]), "sqrt domain isa=%s",
          pi_isa_name(isa));
    pi_f32_unary(PI_UNARY_RSQRT, 6, sx, sy);
    CHECK(sy[0] == INFINITY && isnan(sy[1]) && sy[2] == 0 && isnan(sy[3]) && sy[4] == -INFINITY,
          "rsqrt domain isa=%s", pi_isa_name(isa));
    CHECK(pi_f32_unary(99, 6, sx, sy) == PI_ERR_ARG && pi_f64_unary(-1, 1, NULL, NULL) == PI_ERR_ARG,
          "unknown unary op");
}

static long double ref_binary(int op, double a, double b)
{
    switch (op) {
    case PI_BINARY_ADD: return (long double)a + b;
    case PI_BINARY_SUB: return (long double)a - b;
    case PI_BINARY_MUL: return (long double)a * b;
    case PI_BINARY_DIV: return (long double)a / b;
    case PI_BINARY_POW: return powl(a, b);
    case PI_BINARY_MAX: return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b);
    default: return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b);
    }
}

static void test_binary(int isa)
{
    unsigned s = 77u;
    const long shapes[][2] = {{1, 1}, {1, 7}, {3, 8}, {2, 9}, {4, 17}, {5, 33}, {1, 1031},
                              {9, 1}, {3, 65}, {2, 100003}, {300, 700}, {2100, 1001}};
    const int nshapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int op = PI_BINARY_ADD; op <= PI_BINARY_MIN; op++)
        for (int k = 0; k < nshapes; k++)
            for (int bc = 0; bc < 6; bc++) {
                /* the last shape (8.4 MB of f32 output: streaming stores, rows
                 * that start unaligned) only for add, to keep the run short */
                if (k == nshapes - 1 && op != PI_BINARY_ADD)
                    continue;
                /* bc: 0 both full, 1 a scalar-per-row, 2 b per-row, 3 a row vector
                 * (outer stride 0), 4 b row vector, 5 in place into a */
                long outer = shapes[k][0], inner = shapes[k][1], tot = outer * inner;
                float *af = malloc(4 * tot), *bf = malloc(4 * tot), *yf = malloc(4 * tot);
                double *ad = malloc(8 * tot), *bd = malloc(8 * tot), *yd = malloc(8 * tot);
                fill(&s, tot, af, ad, 3.0, op == PI_BINARY_POW ? 3.5 : 0.0);
                fill(&s, tot, bf, bd, 3.0, 0.0);
                if (tot > 3) { af[1] = NAN; ad[1] = NAN; bf[2] = NAN; bd[2] = NAN; }
                pi_index a_os = inner, a_is = 1, b_os = inner, b_is = 1;
                if (bc == 1) { a_is = 0; }
                if (bc == 2) { b_is = 0; }
                if (bc == 3) { a_os = 0; }
                if (bc == 4) { b_os = 0; }
                for (long i = 0; i < tot; i++) { yf[i] = NAN; yd[i] = NAN; }
                float *yff = yf;
                double *ydd = yd;
                if (bc == 5) {
                    memcpy(yf, af, 4 * tot); memcpy(yd, ad, 8 * tot);
                }
                int st = pi_f32_binary(op, outer, inner, bc == 5 ? yf : af, a_os * 4, a_is * 4,
                                       bf, b_os * 4, b_is * 4, yff);
                int st2 = pi_f64_binary(op, outer, inner, bc == 5 ? yd : ad, a_os * 8, a_is * 8,
                                        bd, b_os * 8, b_is * 8, ydd);
                int okf = st == PI_OK, okd = st2 == PI_OK;
                long bad = 0;
                for (long i = 0; i < outer; i++)
                    for (long j = 0; j < inner; j++) {
                        long ia = i * a_os + j * a_is, ib = i * b_os + j * b_is;
                        long double r = ref_binary(op, ad[ia], bd[ib]);
                        if (!close_f(yff[i * inner + j], r, 0)) { okf = 0; bad = i * inner + j; }
                        if (!close_f(ydd[i * inner + j], r, 1)) { okd = 0; bad = i * inner + j; }
                    }
                CHECK(okf && okd, "binary op=%d isa=%s (%ld,%ld) bc=%d f32ok=%d f64ok=%d at %ld",
                      op, pi_isa_name(isa), outer, inner, bc, okf, okd, bad);
                free(af); free(bf); free(yf); free(ad); free(bd); free(yd);
            }
    float a = 1, b = 2, y;
    CHECK(pi_f32_binary(7, 1, 1, &a, 0, 0, &b, 0, 0, &y) == PI_ERR_ARG, "unknown binary op");
    CHECK(pi_f32_binary(0, 1, 1, &a, 0, 8, &b, 0, 0, &y) == PI_ERR_ARG, "bad inner stride");
}

int main(void)
{
    int best = pi_isa_detected();
    for (int isa = PI_ISA_PORTABLE; isa <= best; isa++) {
        CHECK(pi_set_isa(isa) == PI_OK, "pi_set_isa(%d)", isa);
        test_vmath(isa);
        test_softmax(isa);
        test_norm(isa);
        test_unary(isa);
        test_binary(isa);
        printf("%-8s max ulp:", pi_isa_name(isa));
        for (int f = 0; f < F_COUNT; f++)
            printf(" %s %.2f", fname[f], worst_ulp[isa][f]);
        printf("\n");
    }
    pi_set_isa(best);
    printf("%ld passed, %ld failed\n", n_pass, n_fail);
    return n_fail != 0;
}
