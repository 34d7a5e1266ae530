/*
 * pi_softmax.c -- softmax / log_softmax over the middle axis of a C-contiguous
 * (outer, n, inner) array (pyinfer.h).
 *
 * inner == 1 (rows, the hot case): three passes over a row that stays in L1/L2
 * for the usual n -- vector max; exp(x - max) stored and summed; scale by
 * 1/sum (log: y = (x - max) - log(sum), nothing stored in pass 2).  One exp
 * per element: a fused "online" pass would need two per element or a rescale,
 * and the row is cache-resident anyway, so the extra reads are nearly free.
 * inner > 1: blocks of up to PI_SM_COLS columns are reduced across the n rows
 * with per-column vector accumulators on the stack, reading each row's block
 * contiguously.
 *
 * NaN anywhere in a softmax slice makes the whole slice NaN, as does +inf
 * (inf - inf); an all -inf slice is NaN -- exactly NumPy's
 * exp(x - max) / sum formula.  In place (y == x) is supported.
 *
 * f32 vector code is written once (PI_SM_BODY) and instantiated for AVX2 and
 * AVX-512; f64 and the portable f32 path are scalar C with libm exp in double.
 */
#ifndef PI_SM_BODY

#include <math.h>
#include <omp.h>
#include "pi_vmath.h"

/* Columns of one inner block: two stack arrays of this many floats. */
#define PI_SM_COLS 256
/* One thread's time per element (pi_threads_for): an exp plus three passes
 * over a cache-resident row (f32 12x128x128: 0.8 ns an element at 1 thread);
 * the f64 path calls libm's exp (6 ns). */
#define PI_SM_NS_F32 (2 * PI_NS_PER_TRANSC + 12 * PI_NS_PER_BYTE)
#define PI_SM_NS_F64 (24 * PI_NS_PER_TRANSC + 24 * PI_NS_PER_BYTE)

/* ---- scalar paths (portable f32, f64) -------------------------------------- */

#define PI_SM_SCALAR(T, NAME)                                                           \
    static void NAME##_rows(pi_index n, const T *x, T *y, int log_)                     \
    {                                                                                   \
        T mx = x[0];                                                                    \
        for (pi_index i = 1; i < n; i++)                                                \
            mx = (x[i] > mx || x[i] != x[i]) ? x[i] : mx;                               \
        double s = 0.0;                                                                 \
        if (log_) {                                                                     \
            for (pi_index i = 0; i < n; i++)                                            \
                s += exp((double)x[i] - (double)mx);                                    \
            double ls = log(s);                                                         \
            for (pi_index i = 0; i < n; i++)                                            \
                y[i] = (T)(((double)x[i] - (double)mx) - ls);                           \
        } else {                                                                        \
            for (pi_index i = 0; i < n; i++) {                                          \
                double e = exp((double)x[i] - (double)mx);                              \
                y[i] = (T)e;                                                            \
                s += e;                                                                 \
            }                                                                           \
            for (pi_index i = 0; i < n; i++)                                            \
                y[i] = (T)((double)y[i] / s);                                           \
        }                                                                               \
    }                                                                                   \
    /* columns [0, w) of one (n, inner) slice */                                        \
    static void NAME##_cols(pi_index n, pi_index inner, pi_index w, const T *x, T *y,   \
                            int log_)                                                   \
    {                                                                                   \
        T mx[PI_SM_COLS];                                                               \
        double s[PI_SM_COLS];                                                           \
        for (pi_index j = 0; j < w; j++) {                                              \
            mx[j] = x[j];                                                               \
            s[j] = 0.0;                                                                 \
        }                                                                               \
        for (pi_index r = 1; r < n; r++) {                                              \
            const T *xr = x + r * inner;                                                \
            for (pi_index j = 0; j < w; j++)                                            \
                mx[j] = (xr[j] > mx[j] || xr[j] != xr[j]) ? xr[j] : mx[j];              \
        }                                                                               \
        for (pi_index r = 0; r < n; r++) {                                              \
            const T *xr = x + r * inner;                                                \
            T *yr = y + r * inner;                                                      \
            for (pi_index j = 0; j < w; j++) {                                          \
                double e = exp((double)xr[j] - (double)mx[j]);                          \
                s[j] += e;                                                              \
                if (!log_)                                                              \
                    yr[j] = (T)e;                                                       \
            }                                                                           \
        }                                                                               \
        for (pi_index j = 0; j < w; j++)                                                \
            s[j] = log_ ? log(s[j]) : s[j];                                             \
        for (pi_index r = 0; r < n; r++) {                                              \
            const T *xr = x + r * inner;                                                \
            T *yr = y + r * inner;                                                      \
            for (pi_index j = 0; j < w; j++)                                            \
                yr[j] = log_ ? (T)(((double)xr[j] - (double)mx[j]) - s[j])              \
                             : (T)((double)yr[j] / s[j]);                               \
        }                                                                               \
    }
PI_SM_SCALAR(float, sm_f32_portable)
PI_SM_SCALAR(double, sm_f64)

/* ---- f32 vector paths ------------------------------------------------------ */
#if PI_X86
#define PI_VMATH_MACROS 256
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_SM_BODY 1
#include "pi_softmax.c"
#undef PI_SM_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define PI_VMATH_MACROS 512
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_SM_BODY 1
#include "pi_softmax.c"
#undef PI_SM_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#endif

typedef void (*sm_rows_f32)(pi_index, const float *, float *, int);
typedef void (*sm_cols_f32)(pi_index, pi_index, pi_index, const float *, float *, int);

/* The shared driver: split (outer, inner blocks) among threads. */
#define PI_SM_DRIVE(T, ROWS, COLS)                                                      \
    do {                                                                                \
        const double ns_ = (double)outer * n * inner *                                  \
                           (sizeof(T) == 8 ? PI_SM_NS_F64 : PI_SM_NS_F32);              \
        if (inner == 1) {                                                               \
            int nt_ = pi_threads_for(ns_, (double)outer);                               \
            if (nt_ < 2) {                                                              \
                for (pi_index o = 0; o < outer; o++)                                    \
                    ROWS(n, x + o * n, y + o * n, log);                                 \
            } else {                                                                    \
                _Pragma("omp parallel for num_threads(nt_) schedule(static)")           \
                for (pi_index o = 0; o < outer; o++)                                    \
                    ROWS(n, x + o * n, y + o * n, log);                                 \
            }                                                                           \
        } else {                                                                        \
            pi_index nb = (inner + PI_SM_COLS - 1) / PI_SM_COLS;                        \
            pi_index tasks = outer * nb;                                                \
            int nt_ = pi_threads_for(ns_, (double)tasks);                               \
            if (nt_ < 2) {                                                              \
                for (pi_index t = 0; t < tasks; t++) {                                  \
                    pi_index o = t / nb, j0 = (t % nb) * PI_SM_COLS;                    \
                    pi_index w = inner - j0 < PI_SM_COLS ? inner - j0 : PI_SM_COLS;     \
                    COLS(n, inner, w, x + o * n * inner + j0, y + o * n * inner + j0, log); \
                }                                                                       \
            } else {                                                                    \
                _Pragma("omp parallel for num_threads(nt_) schedule(static)")           \
                for (pi_index t = 0; t < tasks; t++) {                                  \
                    pi_index o = t / nb, j0 = (t % nb) * PI_SM_COLS;                    \
                    pi_index w = inner - j0 < PI_SM_COLS ? inner - j0 : PI_SM_COLS;     \
                    COLS(n, inner, w, x + o * n * inner + j0, y + o * n * inner + j0, log); \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    } while (0)

PI_EXPORT int pi_f32_softmax(pi_index outer, pi_index n, pi_index inner,
                             const float *x, float *y, int log)
{
    if (outer < 0 || n < 0 || inner < 0)
        return PI_ERR_ARG;
    if (outer == 0 || n == 0 || inner == 0)
        return PI_OK;
    sm_rows_f32 rows = sm_f32_portable_rows;
    sm_cols_f32 cols = sm_f32_portable_cols;
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512) {
        rows = pi_sm_rows_f32_avx512;
        cols = pi_sm_cols_f32_avx512;
    } else if (pi_current_isa >= PI_ISA_AVX2) {
        rows = pi_sm_rows_f32_avx2;
        cols = pi_sm_cols_f32_avx2;
    }
#endif
    PI_SM_DRIVE(float, rows, cols);
    return PI_OK;
}

PI_EXPORT int pi_f64_softmax(pi_index outer, pi_index n, pi_index inner,
                             const double *x, double *y, int log)
{
    if (outer < 0 || n < 0 || inner < 0)
        return PI_ERR_ARG;
    if (outer == 0 || n == 0 || inner == 0)
        return PI_OK;
    PI_SM_DRIVE(double, sm_f64_rows, sm_f64_cols);
    return PI_OK;
}

#else /* PI_SM_BODY: f32 vector kernels, once per width */

PI_VTARGET static void PI_VFN(sm_rows_f32)(pi_index n, const float *x, float *y, int log_)
{
    const VF ninf = V_SET1(-INFINITY);
    pi_index i;
    /* pass 1: max (a NaN may be dropped here; it still poisons the sum below) */
    VF m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    for (i = 0; i + 4 * PI_VW <= n; i += 4 * PI_VW) {
        m0 = V_MAX(m0, V_LOAD(x + i));
        m1 = V_MAX(m1, V_LOAD(x + i + PI_VW));
        m2 = V_MAX(m2, V_LOAD(x + i + 2 * PI_VW));
        m3 = V_MAX(m3, V_LOAD(x + i + 3 * PI_VW));
    }
    for (; i + PI_VW <= n; i += PI_VW)
        m0 = V_MAX(m0, V_LOAD(x + i));
    VTM tail = V_TAIL((int)(n - i) & (PI_VW - 1));
    if (i < n)
        m1 = V_MAX(m1, V_SEL(V_TAIL_VM(tail), ninf, V_MLOAD(x + i, tail)));
    float mx = V_HMAX(V_MAX(V_MAX(m0, m1), V_MAX(m2, m3)));
    const VF vmx = V_SET1(mx);

    /* pass 2: e = exp(x - max), summed (and stored for softmax) */
    VF s0 = V_ZERO(), s1 = V_ZERO(), s2 = V_ZERO(), s3 = V_ZERO();
    if (log_) {
        for (i = 0; i + 2 * PI_VW <= n; i += 2 * PI_VW) {
            s0 = V_ADD(s0, PI_VFN(exp_ps)(V_SUB(V_LOAD(x + i), vmx)));
            s1 = V_ADD(s1, PI_VFN(exp_ps)(V_SUB(V_LOAD(x + i + PI_VW), vmx)));
        }
    } else {
        for (i = 0; i + 2 * PI_VW <= n; i += 2 * PI_VW) {
            VF e0 = PI_VFN(exp_ps)(V_SUB(V_LOAD(x + i), vmx));
            VF e1 = PI_VFN(exp_ps)(V_SUB(V_LOAD(x + i + PI_VW), vmx));
            V_STORE(y + i, e0);
            V_STORE(y + i + PI_VW, e1);
            s0 = V_ADD(s0, e0);
            s1 = V_ADD(s1, e1);
        }
    }
    for (; i + PI_VW <= n; i += PI_VW) {
        VF e = PI_VFN(exp_ps)(V_SUB(V_LOAD(x + i), vmx));
        if (!log_)
            V_STORE(y + i, e);
        s2 = V_ADD(s2, e);
    }
    if (i < n) {
        VF e = PI_VFN(exp_ps)(V_SUB(V_MLOAD(x + i, tail), vmx));
        e = V_SEL(V_TAIL_VM(tail), V_ZERO(), e);
        if (!log_)
            V_MSTORE(y + i, tail, e);
        s3 = V_ADD(s3, e);
    }
    float sum = V_HSUM(V_ADD(V_ADD(s0, s1), V_ADD(s2, s3)));

    /* pass 3 */
    if (log_) {
        const VF ls = V_SET1(logf(sum));
        for (i = 0; i + PI_VW <= n; i += PI_VW)
            V_STORE(y + i, V_SUB(V_SUB(V_LOAD(x + i), vmx), ls));
        if (i < n)
            V_MSTORE(y + i, tail, V_SUB(V_SUB(V_MLOAD(x + i, tail), vmx), ls));
    } else {
        const VF r = V_SET1(1.0f / sum);
        for (i = 0; i + 2 * PI_VW <= n; i += 2 * PI_VW) {
            V_STORE(y + i, V_MUL(V_LOAD(y + i), r));
            V_STORE(y + i + PI_VW, V_MUL(V_LOAD(y + i + PI_VW), r));
        }
        for (; i + PI_VW <= n; i += PI_VW)
            V_STORE(y + i, V_MUL(V_LOAD(y + i), r));
        if (i < n)
            V_MSTORE(y + i, tail, V_MUL(V_MLOAD(y + i, tail), r));
    }
}

/* Columns [0, w) (w <= PI_SM_COLS) of one (n, inner) slice. */
PI_VTARGET static void PI_VFN(sm_cols_f32)(pi_index n, pi_index inner, pi_index w,
                                           const float *x, float *y, int log_)
{
    float mx[PI_SM_COLS] __attribute__((aligned(64)));
    float s[PI_SM_COLS] __attribute__((aligned(64)));
    const pi_index wv = w & ~(pi_index)(PI_VW - 1);
    const VTM tail = V_TAIL((int)(w - wv));
    pi_index j;
    for (j = 0; j < w; j++) {
        mx[j] = -INFINITY;
        s[j] = 0.0f;
    }
    for (pi_index r = 0; r < n; r++) {
        const float *xr = x + r * inner;
        for (j = 0; j < wv; j += PI_VW)
            V_STORE(mx + j, V_MAX(V_LOAD(mx + j), V_LOAD(xr + j)));
        if (j < w)
            V_MSTORE(mx + j, tail, V_MAX(V_MLOAD(mx + j, tail), V_MLOAD(xr + j, tail)));
    }
    for (pi_index r = 0; r < n; r++) {
        const float *xr = x + r * inner;
        float *yr = y + r * inner;
        for (j = 0; j < wv; j += PI_VW) {
            VF e = PI_VFN(exp_ps)(V_SUB(V_LOAD(xr + j), V_LOAD(mx + j)));
            if (!log_)
                V_STORE(yr + j, e);
            V_STORE(s + j, V_ADD(V_LOAD(s + j), e));
        }
        if (j < w) {
            VF e = PI_VFN(exp_ps)(V_SUB(V_MLOAD(xr + j, tail), V_MLOAD(mx + j, tail)));
            if (!log_)
                V_MSTORE(yr + j, tail, e);
            V_MSTORE(s + j, tail, V_ADD(V_MLOAD(s + j, tail), e));
        }
    }
    /* s <- 1/s (softmax) or log(s) (log_softmax) */
    for (j = 0; j < wv; j += PI_VW) {
        VF v = V_LOAD(s + j);
        V_STORE(s + j, log_ ? PI_VFN(log_ps)(v) : V_DIV(V_SET1(1.0f), v));
    }
    if (j < w) {
        VF v = V_MLOAD(s + j, tail);
        V_MSTORE(s + j, tail, log_ ? PI_VFN(log_ps)(v) : V_DIV(V_SET1(1.0f), v));
    }
    for (pi_index r = 0; r < n; r++) {
        const float *xr = x + r * inner;
        float *yr = y + r * inner;
        if (log_) {
            for (j = 0; j < wv; j += PI_VW)
                V_STORE(yr + j, V_SUB(V_SUB(V_LOAD(xr + j), V_LOAD(mx + j)), V_LOAD(s + j)));
            if (j < w)
                V_MSTORE(yr + j, tail, V_SUB(V_SUB(V_MLOAD(xr + j, tail), V_MLOAD(mx + j, tail)),
                                             V_MLOAD(s + j, tail)));
        } else {
            for (j = 0; j < wv; j += PI_VW)
                V_STORE(yr + j, V_MUL(V_LOAD(yr + j), V_LOAD(s + j)));
            if (j < w)
                V_MSTORE(yr + j, tail, V_MUL(V_MLOAD(yr + j, tail), V_MLOAD(s + j, tail)));
        }
    }
}

#endif /* PI_SM_BODY */
