/*
 * pi_norm.c -- layer_norm and rms_norm over rows of contiguous values (pyinfer.h).
 *
 * Two-pass statistics (mean, then sum((x-mean)^2)), never E[x^2]-E[x]^2, so a
 * large common offset does not cancel the variance away.  f32 sums run in
 * vector float accumulators over blocks of PI_NORM_BLOCK values and are carried
 * across blocks in double: cheap, and the error no longer grows with the row
 * length.  1/sqrt(var+eps) is formed in double.
 *
 * The f32 vector code is written once (PI_NORM_BODY) and instantiated for AVX2
 * and AVX-512; f64 and the portable f32 path are plain C with double sums.
 * Rows are split among threads as pi_threads_for says.  y may equal x.
 */
#ifndef PI_NORM_BODY

#include <math.h>
#include <omp.h>
#include "pi_vmath.h"

#define PI_NORM_BLOCK 1024
/* One thread's time per element (pi_threads_for): three passes over a
 * cache-resident row (mean, variance, normalize) and the weights; f32
 * 128x768 took 0.36 ns an element at 1 thread. */
#define PI_NORM_NS(T) (3.5 * sizeof(T) * PI_NS_PER_BYTE)

/* ---- scalar paths ------------------------------------------------------------- */

#define PI_NORM_SCALAR(T, NAME)                                                         \
    static void NAME##_ln_row(pi_index n, const T *x, const T *w, const T *b, T eps, T *y) \
    {                                                                                   \
        double s = 0.0;                                                                 \
        for (pi_index i = 0; i < n; i++)                                                \
            s += x[i];                                                                  \
        double mean = s / (double)n, v = 0.0, c = 0.0;                                  \
        for (pi_index i = 0; i < n; i++) {                                              \
            double d = (double)x[i] - mean;                                             \
            c += d;                                                                     \
            v += d * d;                                                                 \
        }                                                                               \
        /* c/n corrects the rounding of the first sum (shift formula, exact) */        \
        double dm = c / (double)n;                                                      \
        mean += dm;                                                                     \
        v = v / (double)n - dm * dm;                                                    \
        double rstd = 1.0 / sqrt((v < 0 ? 0.0 : v) + (double)eps);                      \
        for (pi_index i = 0; i < n; i++) {                                              \
            double t = ((double)x[i] - mean) * rstd;                                    \
            if (w)                                                                      \
                t *= w[i];                                                              \
            if (b)                                                                      \
                t += b[i];                                                              \
            y[i] = (T)t;                                                                \
        }                                                                               \
    }                                                                                   \
    static void NAME##_rms_row(pi_index n, const T *x, const T *w, T eps, T *y)         \
    {                                                                                   \
        double s = 0.0;                                                                 \
        for (pi_index i = 0; i < n; i++)                                                \
            s += (double)x[i] * (double)x[i];                                           \
        double r = 1.0 / sqrt(s / (double)n + (double)eps);                             \
        for (pi_index i = 0; i < n; i++)                                                \
            y[i] = (T)(w ? (double)x[i] * r * w[i] : (double)x[i] * r);                 \
    }
PI_NORM_SCALAR(float, norm_f32_portable)
PI_NORM_SCALAR(double, norm_f64)

/* ---- f32 vector paths --------------------------------------------------------- */
#if PI_X86
#define PI_VMATH_MACROS 256
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_NORM_BODY 1
#include "pi_norm.c"
#undef PI_NORM_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define PI_VMATH_MACROS 512
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_NORM_BODY 1
#include "pi_norm.c"
#undef PI_NORM_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#endif

typedef void (*ln_f32_fn)(pi_index, const float *, const float *, const float *, float, float *);
typedef void (*rms_f32_fn)(pi_index, const float *, const float *, float, float *);

#define PI_NORM_ROWS(CALL)                                                              \
    do {                                                                                \
        int nt_ = pi_threads_for((double)rows * cols * PI_NORM_NS(*x), (double)rows);  \
        if (nt_ < 2) {                                                                  \
            for (pi_index r = 0; r < rows; r++)                                         \
                CALL;                                                                   \
        } else {                                                                        \
            _Pragma("omp parallel for num_threads(nt_) schedule(static)")               \
            for (pi_index r = 0; r < rows; r++)                                         \
                CALL;                                                                   \
        }                                                                               \
    } while (0)

#define PI_ROW(T, p, rs) ((const T *)PI_CPTR_ADD((p), r * (rs)))
#define PI_YROW(T, p, rs) ((T *)PI_PTR_ADD((p), r * (rs)))

PI_EXPORT int pi_f32_layer_norm(pi_index rows, pi_index cols, const float *x, pi_index x_rs,
                                const float *w, const float *b, float eps,
                                float *y, pi_index y_rs)
{
    if (rows < 0 || cols < 0)
        return PI_ERR_ARG;
    if (rows == 0 || cols == 0)
        return PI_OK;
    ln_f32_fn fn = norm_f32_portable_ln_row;
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512)
        fn = pi_ln_row_f32_avx512;
    else if (pi_current_isa >= PI_ISA_AVX2)
        fn = pi_ln_row_f32_avx2;
#endif
    PI_NORM_ROWS(fn(cols, PI_ROW(float, x, x_rs), w, b, eps, PI_YROW(float, y, y_rs)));
    return PI_OK;
}

PI_EXPORT int pi_f64_layer_norm(pi_index rows, pi_index cols, const double *x, pi_index x_rs,
                                const double *w, const double *b, double eps,
                                double *y, pi_index y_rs)
{
    if (rows < 0 || cols < 0)
        return PI_ERR_ARG;
    if (rows == 0 || cols == 0)
        return PI_OK;
    PI_NORM_ROWS(norm_f64_ln_row(cols, PI_ROW(double, x, x_rs), w, b, eps,
                                 PI_YROW(double, y, y_rs)));
    return PI_OK;
}

PI_EXPORT int pi_f32_rms_norm(pi_index rows, pi_index cols, const float *x, pi_index x_rs,
                              const float *w, float eps, float *y, pi_index y_rs)
{
    if (rows < 0 || cols < 0)
        return PI_ERR_ARG;
    if (rows == 0 || cols == 0)
        return PI_OK;
    rms_f32_fn fn = norm_f32_portable_rms_row;
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512)
        fn = pi_rms_row_f32_avx512;
    else if (pi_current_isa >= PI_ISA_AVX2)
        fn = pi_rms_row_f32_avx2;
#endif
    PI_NORM_ROWS(fn(cols, PI_ROW(float, x, x_rs), w, eps, PI_YROW(float, y, y_rs)));
    return PI_OK;
}

PI_EXPORT int pi_f64_rms_norm(pi_index rows, pi_index cols, const double *x, pi_index x_rs,
                              const double *w, double eps, double *y, pi_index y_rs)
{
    if (rows < 0 || cols < 0)
        return PI_ERR_ARG;
    if (rows == 0 || cols == 0)
        return PI_OK;
    PI_NORM_ROWS(norm_f64_rms_row(cols, PI_ROW(double, x, x_rs), w, eps,
                                  PI_YROW(double, y, y_rs)));
    return PI_OK;
}

#else /* PI_NORM_BODY: f32 vector kernels, once per width */

/* RA = sum over x[0:n] of FA(d), RB = sum of FB(d), where d = PRE(v) for the
 * vector v of values; masked-off tail lanes are zeroed after FA/FB.  Float
 * vector accumulators within a block of PI_NORM_BLOCK values, double across. */
#define PI_NORM_SUM2(RA, RB, PRE, FA, FB)                                               \
    do {                                                                                \
        double accA_ = 0.0, accB_ = 0.0;                                                \
        for (pi_index b0_ = 0; b0_ < n; b0_ += PI_NORM_BLOCK) {                         \
            pi_index e_ = n - b0_ < PI_NORM_BLOCK ? n : b0_ + PI_NORM_BLOCK;            \
            VF a0_ = V_ZERO(), a1_ = V_ZERO(), c0_ = V_ZERO(), c1_ = V_ZERO();          \
            pi_index i_ = b0_;                                                          \
            for (; i_ + 2 * PI_VW <= e_; i_ += 2 * PI_VW) {                             \
                VF v, d;                                                                \
                v = V_LOAD(x + i_); d = PRE;                                            \
                a0_ = V_ADD(a0_, FA); c0_ = V_ADD(c0_, FB);                             \
                v = V_LOAD(x + i_ + PI_VW); d = PRE;                                    \
                a1_ = V_ADD(a1_, FA); c1_ = V_ADD(c1_, FB);                             \
            }                                                                           \
            for (; i_ + PI_VW <= e_; i_ += PI_VW) {                                     \
                VF v = V_LOAD(x + i_), d = PRE;                                         \
                a0_ = V_ADD(a0_, FA); c0_ = V_ADD(c0_, FB);                             \
            }                                                                           \
            if (i_ < e_) {                                                              \
                VTM t_ = V_TAIL((int)(e_ - i_));                                        \
                VF v = V_MLOAD(x + i_, t_), d = PRE;                                    \
                a1_ = V_ADD(a1_, V_SEL(V_TAIL_VM(t_), V_ZERO(), FA));                   \
                c1_ = V_ADD(c1_, V_SEL(V_TAIL_VM(t_), V_ZERO(), FB));                   \
            }                                                                           \
            accA_ += (double)V_HSUM(V_ADD(a0_, a1_));                                   \
            accB_ += (double)V_HSUM(V_ADD(c0_, c1_));                                   \
        }                                                                               \
        RA = accA_;                                                                     \
        RB = accB_;                                                                     \
    } while (0)

/* y[0:n] = EXPR(v, i) for v = x[i:i+W] */
#define PI_NORM_MAP(EXPR)                                                               \
    do {                                                                                \
        pi_index i = 0;                                                                 \
        for (; i + PI_VW <= n; i += PI_VW) {                                            \
            VF v = V_LOAD(x + i);                                                       \
            V_STORE(y + i, EXPR);                                                       \
        }                                                                               \
        if (i < n) {                                                                    \
            VTM t = V_TAIL((int)(n - i));                                               \
            VF v = V_MLOAD(x + i, t);                                                   \
            V_MSTORE(y + i, t, EXPR);                                                   \
        }                                                                               \
    } while (0)

/* w/b read with the same tail mask as x (off lanes 0, never stored) */
#define PI_NORM_W (i + PI_VW <= n ? V_LOAD(w + i) : V_MLOAD(w + i, V_TAIL((int)(n - i))))
#define PI_NORM_B (i + PI_VW <= n ? V_LOAD(b + i) : V_MLOAD(b + i, V_TAIL((int)(n - i))))

PI_VTARGET static void PI_VFN(ln_row_f32)(pi_index n, const float *x, const float *w,
                                          const float *b, float eps, float *y)
{
    double s, c, ss, unused;
    PI_NORM_SUM2(s, unused, v, d, d);
    (void)unused;
    /* The float partial sums leave the mean off by ~1e-7 relative to |x|: pass 2
     * sums the deviations from it too and corrects (mean0 + c/n), and both
     * passes subtract the mean as hi + lo so x - mean keeps its precision even
     * when |mean| >> std. */
    double mean0 = s / (double)n;
    VF mh = V_SET1((float)mean0), ml = V_SET1((float)(mean0 - (double)(float)mean0));
    PI_NORM_SUM2(c, ss, V_SUB(V_SUB(v, mh), ml), d, V_MUL(d, d));
    double dm = c / (double)n, mean = mean0 + dm;
    double var = ss / (double)n - dm * dm;
    var = var < 0 ? 0.0 : var; /* NaN stays NaN */
    mh = V_SET1((float)mean);
    ml = V_SET1((float)(mean - (double)(float)mean));
    const VF rstd = V_SET1((float)(1.0 / sqrt(var + (double)eps)));
#define PI_NORM_D V_SUB(V_SUB(v, mh), ml)
    if (w && b)
        PI_NORM_MAP(V_FMA(V_MUL(PI_NORM_D, rstd), PI_NORM_W, PI_NORM_B));
    else if (w)
        PI_NORM_MAP(V_MUL(V_MUL(PI_NORM_D, rstd), PI_NORM_W));
    else if (b)
        PI_NORM_MAP(V_ADD(V_MUL(PI_NORM_D, rstd), PI_NORM_B));
    else
        PI_NORM_MAP(V_MUL(PI_NORM_D, rstd));
#undef PI_NORM_D
}

PI_VTARGET static void PI_VFN(rms_row_f32)(pi_index n, const float *x, const float *w,
                                           float eps, float *y)
{
    double ss, unused;
    PI_NORM_SUM2(ss, unused, v, V_MUL(d, d), d);
    (void)unused;
    const VF r = V_SET1((float)(1.0 / sqrt(ss / (double)n + (double)eps)));
    if (w)
        PI_NORM_MAP(V_MUL(V_MUL(v, r), PI_NORM_W));
    else
        PI_NORM_MAP(V_MUL(v, r));
}

#undef PI_NORM_SUM2
#undef PI_NORM_MAP
#undef PI_NORM_W
#undef PI_NORM_B

#endif /* PI_NORM_BODY */
