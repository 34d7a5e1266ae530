/*
 * pi_elementwise.c -- unary and binary elementwise kernels (pyinfer.h).
 *
 * f32: one vector implementation written over pi_vmath.h's width-neutral
 * macros, instantiated for AVX2 and AVX-512 by including this file into itself
 * (the PI_EW_BODY section), plus a portable scalar path.  f64: plain C (GCC
 * vectorises the simple loops; the transcendental ones call libm for accuracy).
 *
 * Threads: the flat index range is split into one contiguous, vector-aligned
 * piece per thread (at most one thread per 16 elements), as many
 * threads as pi_threads_for gives the call's estimated time (ew_threads).  Large
 * non-aliased f32 outputs are written with non-temporal stores: the output is
 * never read back by this kernel, so skipping the read-for-ownership saves a
 * quarter of the memory traffic of a+b.
 */
#ifndef PI_EW_BODY

#include <math.h>
#include <stdint.h>
#include <omp.h>
#include "pi_vmath.h"

/* Outputs at least this large (bytes) and not aliasing an input are streamed. */
#define PI_EW_STREAM_BYTES ((pi_index)8 << 20)

static int unary_op_known(int op)
{
    switch (op) {
    case PI_ACT_NONE: case PI_ACT_RELU: case PI_ACT_GELU: case PI_ACT_GELU_TANH:
    case PI_ACT_SILU: case PI_ACT_SIGMOID: case PI_ACT_TANH:
    case PI_UNARY_EXP: case PI_UNARY_LOG: case PI_UNARY_SQRT: case PI_UNARY_RSQRT:
    case PI_UNARY_ABS: case PI_UNARY_NEG: case PI_UNARY_ERF:
        return 1;
    default:
        return 0;
    }
}

/* One thread's time per element beyond moving its bytes (pi_threads_for), in
 * units of PI_NS_PER_TRANSC, measured at 1 thread on 64K elements
 * (f32 vector code / f64 libm): exp 0.5 / 6 ns, sqrt 0.2 / 1.5, log, sigmoid
 * and silu 0.7-0.8 / 13, tanh, erf and the GELUs 1.0-2.0 / 15-48. */
static double unary_op_cost(int op, int f64)
{
    switch (op) {
    case PI_ACT_NONE: case PI_ACT_RELU: case PI_UNARY_ABS: case PI_UNARY_NEG:
        return 0.0;
    case PI_UNARY_SQRT: case PI_UNARY_RSQRT:
        return f64 ? 6.0 : 1.0;
    case PI_UNARY_EXP:
        return f64 ? 24.0 : 2.0;
    case PI_UNARY_LOG: case PI_ACT_SIGMOID: case PI_ACT_SILU:
        return f64 ? 50.0 : 3.0;
    default: /* tanh, erf, the GELUs */
        return f64 ? 70.0 : 6.0;
    }
}

/* Threads for n elements of `bytes` bytes moved each (inputs and output)
 * and `cost` more (unary_op_cost). */
static int ew_threads(pi_index n, double bytes, double cost)
{
    double per = bytes * PI_NS_PER_BYTE + cost * PI_NS_PER_TRANSC;
    return pi_threads_for((double)n * per, (double)((n + 15) / 16));
}

/* ---- scalar paths ------------------------------------------------------------ */

static inline double unary_f64_1(int op, double v)
{
    switch (op) {
    case PI_UNARY_EXP: return exp(v);
    case PI_UNARY_LOG: return log(v);
    case PI_UNARY_SQRT: return sqrt(v);
    case PI_UNARY_RSQRT: return 1.0 / sqrt(v);
    case PI_UNARY_ABS: return fabs(v);
    case PI_UNARY_NEG: return -v;
    case PI_UNARY_ERF: return erf(v);
    default: return pi_act_f64(v, op);
    }
}

static void unary_f32_portable(int op, pi_index n, const float *x, float *y, int stream)
{
    (void)stream;
    for (pi_index i = 0; i < n; i++) {
        float v = x[i];
        switch (op) {
        case PI_UNARY_SQRT: y[i] = sqrtf(v); break;
        case PI_UNARY_RSQRT: y[i] = 1.0f / sqrtf(v); break;
        case PI_UNARY_ABS: y[i] = fabsf(v); break;
        case PI_UNARY_NEG: y[i] = -v; break;
        default: y[i] = (float)unary_f64_1(op, (double)v); break; /* round once */
        }
    }
}

static void unary_f64_range(int op, pi_index n, const double *x, double *y)
{
    /* op-specialised loops so the cheap ones vectorise */
    switch (op) {
    case PI_UNARY_SQRT: for (pi_index i = 0; i < n; i++) y[i] = sqrt(x[i]); break;
    case PI_UNARY_RSQRT: for (pi_index i = 0; i < n; i++) y[i] = 1.0 / sqrt(x[i]); break;
    case PI_UNARY_ABS: for (pi_index i = 0; i < n; i++) y[i] = fabs(x[i]); break;
    case PI_UNARY_NEG: for (pi_index i = 0; i < n; i++) y[i] = -x[i]; break;
    case PI_ACT_RELU: for (pi_index i = 0; i < n; i++) y[i] = x[i] < 0 ? 0.0 : x[i]; break;
    case PI_ACT_NONE: for (pi_index i = 0; i < n; i++) y[i] = x[i]; break;
    default: for (pi_index i = 0; i < n; i++) y[i] = unary_f64_1(op, x[i]); break;
    }
}

/* NumPy's maximum/minimum: NaN if either operand is NaN. */
#define PI_SMAX(p, q) (((p) != (p) || (p) > (q)) ? (p) : (q))
#define PI_SMIN(p, q) (((p) != (p) || (p) < (q)) ? (p) : (q))

#define PI_BIN_SCALAR_ROW(T, POW)                                                       \
    static void binary_row_##T##_scalar(int op, pi_index len, const T *a, int as,      \
                                        const T *b, int bs, T *y)                       \
    {                                                                                   \
        switch (op) {                                                                   \
        case PI_BINARY_ADD: for (pi_index i = 0; i < len; i++) y[i] = a[i * as] + b[i * bs]; break; \
        case PI_BINARY_SUB: for (pi_index i = 0; i < len; i++) y[i] = a[i * as] - b[i * bs]; break; \
        case PI_BINARY_MUL: for (pi_index i = 0; i < len; i++) y[i] = a[i * as] * b[i * bs]; break; \
        case PI_BINARY_DIV: for (pi_index i = 0; i < len; i++) y[i] = a[i * as] / b[i * bs]; break; \
        case PI_BINARY_POW: for (pi_index i = 0; i < len; i++) y[i] = POW(a[i * as], b[i * bs]); break; \
        case PI_BINARY_MAX:                                                             \
            for (pi_index i = 0; i < len; i++) { T p = a[i * as], q = b[i * bs]; y[i] = PI_SMAX(p, q); } \
            break;                                                                      \
        default:                                                                        \
            for (pi_index i = 0; i < len; i++) { T p = a[i * as], q = b[i * bs]; y[i] = PI_SMIN(p, q); } \
            break;                                                                      \
        }                                                                               \
    }
PI_BIN_SCALAR_ROW(float, powf)
PI_BIN_SCALAR_ROW(double, pow)

/* ---- f32 vector paths: PI_EW_BODY instantiated per ISA ------------------------ */
#if PI_X86
#define PI_VMATH_MACROS 256
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_EW_BODY 1
#include "pi_elementwise.c"
#undef PI_EW_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS

#define PI_VMATH_MACROS 512
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#define PI_EW_BODY 1
#include "pi_elementwise.c"
#undef PI_EW_BODY
#define PI_VMATH_MACROS 0
#include "pi_vmath.h"
#undef PI_VMATH_MACROS
#endif

typedef void (*unary_f32_fn)(int, pi_index, const float *, float *, int);
typedef void (*binary_f32_fn)(int, pi_index, const float *, int, const float *, int, float *, int);

static void binary_row_f32_portable(int op, pi_index len, const float *a, int as,
                                    const float *b, int bs, float *y, int stream)
{
    (void)stream;
    binary_row_float_scalar(op, len, a, as, b, bs, y);
}

static void binary_row_f64(int op, pi_index len, const double *a, int as,
                           const double *b, int bs, double *y, int stream)
{
    (void)stream;
    binary_row_double_scalar(op, len, a, as, b, bs, y);
}

static unary_f32_fn pick_unary_f32(void)
{
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512) return pi_unary_f32_avx512;
    if (pi_current_isa >= PI_ISA_AVX2) return pi_unary_f32_avx2;
#endif
    return unary_f32_portable;
}

static binary_f32_fn pick_binary_f32(void)
{
#if PI_X86
    if (pi_current_isa >= PI_ISA_AVX512) return pi_binary_row_f32_avx512;
    if (pi_current_isa >= PI_ISA_AVX2) return pi_binary_row_f32_avx2;
#endif
    return binary_row_f32_portable;
}

/* [lo, hi) of thread t among nt, boundaries rounded to 16 elements (64 bytes
 * of f32) so neighbouring threads never share a cache line of the output. */
static inline void ew_split(pi_index n, int t, int nt, pi_index *lo, pi_index *hi)
{
    pi_index per = (n + nt - 1) / nt;
    per = (per + 15) & ~(pi_index)15;
    *lo = per * t < n ? per * t : n;
    *hi = per * (t + 1) < n ? per * (t + 1) : n;
}

PI_EXPORT int pi_f32_unary(int op, pi_index n, const float *x, float *y)
{
    if (!unary_op_known(op))
        return PI_ERR_ARG;
    if (n <= 0)
        return PI_OK;
    unary_f32_fn fn = pick_unary_f32();
    int stream = n * 4 >= PI_EW_STREAM_BYTES && (const float *)y != x;
    int nt = ew_threads(n, 8.0, unary_op_cost(op, 0));
    if (nt <= 1) {
        fn(op, n, x, y, stream);
        return PI_OK;
    }
#pragma omp parallel num_threads(nt)
    {
        pi_index lo, hi;
        ew_split(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        if (hi > lo)
            fn(op, hi - lo, x + lo, y + lo, stream);
    }
    return PI_OK;
}

PI_EXPORT int pi_f64_unary(int op, pi_index n, const double *x, double *y)
{
    if (!unary_op_known(op))
        return PI_ERR_ARG;
    if (n <= 0)
        return PI_OK;
    int nt = ew_threads(n, 16.0, unary_op_cost(op, 1));
    if (nt <= 1) {
        unary_f64_range(op, n, x, y);
        return PI_OK;
    }
#pragma omp parallel num_threads(nt)
    {
        pi_index lo, hi;
        ew_split(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        if (hi > lo)
            unary_f64_range(op, hi - lo, x + lo, y + lo);
    }
    return PI_OK;
}

/* Walk the flat range [lo, hi) of the (outer, inner) output row piece by row
 * piece, calling the row kernel ROW on each. */
#define PI_BIN_RANGE(T, ROW)                                                     \
    do {                                                                                \
        pi_index i_ = lo / inner, j_ = lo % inner, k_ = lo;                             \
        while (k_ < hi) {                                                               \
            pi_index len_ = inner - j_ < hi - k_ ? inner - j_ : hi - k_;                \
            const T *pa_ = (const T *)PI_CPTR_ADD(a, i_ * a_os + j_ * a_is);            \
            const T *pb_ = (const T *)PI_CPTR_ADD(b, i_ * b_os + j_ * b_is);            \
            ROW(op, len_, pa_, a_is != 0, pb_, b_is != 0, y + k_, stream);                \
            k_ += len_;                                                                 \
            i_++;                                                                       \
            j_ = 0;                                                                     \
        }                                                                               \
    } while (0)

static int binary_op_known(int op) { return op >= PI_BINARY_ADD && op <= PI_BINARY_MIN; }

PI_EXPORT int pi_f32_binary(int op, pi_index outer, pi_index inner,
                            const float *a, pi_index a_os, pi_index a_is,
                            const float *b, pi_index b_os, pi_index b_is, float *y)
{
    if (!binary_op_known(op) || (a_is != 0 && a_is != 4) || (b_is != 0 && b_is != 4))
        return PI_ERR_ARG;
    pi_index n = outer * inner;
    if (n <= 0)
        return PI_OK;
    binary_f32_fn fn = pick_binary_f32();
    int stream = n * 4 >= PI_EW_STREAM_BYTES && (const float *)y != a && (const float *)y != b;
    int nt = ew_threads(n, 12.0, op == PI_BINARY_POW ? 6.0 : 0.0);
    if (nt <= 1) {
        pi_index lo = 0, hi = n;
        PI_BIN_RANGE(float, fn);
        return PI_OK;
    }
#pragma omp parallel num_threads(nt)
    {
        pi_index lo, hi;
        ew_split(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        if (hi > lo)
            PI_BIN_RANGE(float, fn);
    }
    return PI_OK;
}

PI_EXPORT int pi_f64_binary(int op, pi_index outer, pi_index inner,
                            const double *a, pi_index a_os, pi_index a_is,
                            const double *b, pi_index b_os, pi_index b_is, double *y)
{
    if (!binary_op_known(op) || (a_is != 0 && a_is != 8) || (b_is != 0 && b_is != 8))
        return PI_ERR_ARG;
    pi_index n = outer * inner;
    if (n <= 0)
        return PI_OK;
    const int stream = 0;
    int nt = ew_threads(n, 24.0, op == PI_BINARY_POW ? 70.0 : 0.0);
    if (nt <= 1) {
        pi_index lo = 0, hi = n;
        PI_BIN_RANGE(double, binary_row_f64);
        return PI_OK;
    }
#pragma omp parallel num_threads(nt)
    {
        pi_index lo, hi;
        ew_split(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        if (hi > lo)
            PI_BIN_RANGE(double, binary_row_f64);
    }
    return PI_OK;
}

#else /* PI_EW_BODY: the f32 vector kernels, once per width */

/* y[0:n] = op(x[0:n]); the loop is instantiated per op so the op switch stays
 * out of it.  The tail is one masked vector (masked-off lanes read 0 and are
 * never stored). */
#define PI_EW_UNARY_LOOP(EXPR, STORE)                                                   \
    do {                                                                                \
        pi_index i = 0;                                                                 \
        for (; i + 2 * PI_VW <= n; i += 2 * PI_VW) {                                    \
            VF v0 = V_LOAD(x + i), v1 = V_LOAD(x + i + PI_VW), v;                       \
            v = v0; v0 = (EXPR);                                                        \
            v = v1; v1 = (EXPR);                                                        \
            STORE(y + i, v0);                                                           \
            STORE(y + i + PI_VW, v1);                                                   \
        }                                                                               \
        for (; i + PI_VW <= n; i += PI_VW) {                                            \
            VF v = V_LOAD(x + i);                                                       \
            STORE(y + i, (EXPR));                                                       \
        }                                                                               \
        if (i < n) {                                                                    \
            VTM t = V_TAIL((int)(n - i));                                               \
            VF v = V_MLOAD(x + i, t);                                                   \
            V_MSTORE(y + i, t, (EXPR));                                                 \
        }                                                                               \
    } while (0)

#define PI_EW_UNARY_SWITCH(STORE)                                                       \
    switch (op) {                                                                       \
    case PI_UNARY_EXP: PI_EW_UNARY_LOOP(PI_VFN(exp_ps)(v), STORE); break;               \
    case PI_UNARY_LOG: PI_EW_UNARY_LOOP(PI_VFN(log_ps)(v), STORE); break;               \
    case PI_UNARY_SQRT: PI_EW_UNARY_LOOP(V_SQRT(v), STORE); break;                      \
    case PI_UNARY_RSQRT: PI_EW_UNARY_LOOP(V_DIV(one, V_SQRT(v)), STORE); break;         \
    case PI_UNARY_ABS: PI_EW_UNARY_LOOP(V_ANDNOT(sign, v), STORE); break;               \
    case PI_UNARY_NEG: PI_EW_UNARY_LOOP(V_XOR(sign, v), STORE); break;                  \
    case PI_UNARY_ERF: PI_EW_UNARY_LOOP(PI_VFN(erf_ps)(v), STORE); break;               \
    case PI_ACT_RELU: PI_EW_UNARY_LOOP(V_MAX(V_ZERO(), v), STORE); break;               \
    case PI_ACT_GELU: PI_EW_UNARY_LOOP(PI_VFN(gelu_ps)(v), STORE); break;               \
    case PI_ACT_GELU_TANH: PI_EW_UNARY_LOOP(PI_VFN(gelu_tanh_ps)(v), STORE); break;     \
    case PI_ACT_SILU: PI_EW_UNARY_LOOP(PI_VFN(silu_ps)(v), STORE); break;               \
    case PI_ACT_SIGMOID: PI_EW_UNARY_LOOP(PI_VFN(sigmoid_ps)(v), STORE); break;         \
    case PI_ACT_TANH: PI_EW_UNARY_LOOP(PI_VFN(tanh_ps)(v), STORE); break;               \
    default: PI_EW_UNARY_LOOP(v, STORE); break;                                         \
    }

PI_VTARGET static void PI_VFN(unary_f32)(int op, pi_index n, const float *x, float *y,
                                         int stream)
{
    const VF sign = V_SET1(-0.0f), one = V_SET1(1.0f);
    if (stream) {
        /* peel up to the output's vector alignment, then stream the rest */
        pi_index head = (pi_index)(((0u - (uintptr_t)y) & (PI_VW * 4 - 1)) / 4);
        if (head >= n) {
            stream = 0;
        } else if (head > 0) {
            PI_VFN(unary_f32)(op, head, x, y, 0);
            x += head;
            y += head;
            n -= head;
        }
    }
    if (stream) {
        PI_EW_UNARY_SWITCH(V_STREAM);
        _mm_sfence();
    } else {
        PI_EW_UNARY_SWITCH(V_STORE);
    }
}

/* NumPy maximum/minimum: V_MAX/V_MIN already return b when b is NaN; a NaN a
 * is put back explicitly. */
#define PI_EW_VMAX(p, q) V_SEL(V_UNORD((p), (p)), V_MAX((p), (q)), (p))
#define PI_EW_VMIN(p, q) V_SEL(V_UNORD((p), (p)), V_MIN((p), (q)), (p))

/* One row piece of len elements, a and b either contiguous (as/bs = 1) or one
 * broadcast value (0).  STORE is V_STORE or V_STREAM. */
#define PI_EW_BIN_LOOP(OPV, STORE, LA, LB)                                              \
    do {                                                                                \
        for (; i + 2 * PI_VW <= len; i += 2 * PI_VW) {                                  \
            VF r0 = OPV(LA(i), LB(i));                                                  \
            VF r1 = OPV(LA(i + PI_VW), LB(i + PI_VW));                                  \
            STORE(y + i, r0);                                                           \
            STORE(y + i + PI_VW, r1);                                                   \
        }                                                                               \
        for (; i + PI_VW <= len; i += PI_VW)                                            \
            STORE(y + i, OPV(LA(i), LB(i)));                                            \
    } while (0)

#define PI_EW_LA_V(i) V_LOAD(a + (i))
#define PI_EW_LA_S(i) va
#define PI_EW_LB_V(i) V_LOAD(b + (i))
#define PI_EW_LB_S(i) vb

#define PI_EW_BIN_ALL(OPV)                                                              \
    do {                                                                                \
        if (stream) {                                                                   \
            if (as && bs) PI_EW_BIN_LOOP(OPV, V_STREAM, PI_EW_LA_V, PI_EW_LB_V);        \
            else if (as) PI_EW_BIN_LOOP(OPV, V_STREAM, PI_EW_LA_V, PI_EW_LB_S);         \
            else if (bs) PI_EW_BIN_LOOP(OPV, V_STREAM, PI_EW_LA_S, PI_EW_LB_V);         \
            else PI_EW_BIN_LOOP(OPV, V_STREAM, PI_EW_LA_S, PI_EW_LB_S);                 \
        } else {                                                                        \
            if (as && bs) PI_EW_BIN_LOOP(OPV, V_STORE, PI_EW_LA_V, PI_EW_LB_V);         \
            else if (as) PI_EW_BIN_LOOP(OPV, V_STORE, PI_EW_LA_V, PI_EW_LB_S);          \
            else if (bs) PI_EW_BIN_LOOP(OPV, V_STORE, PI_EW_LA_S, PI_EW_LB_V);          \
            else PI_EW_BIN_LOOP(OPV, V_STORE, PI_EW_LA_S, PI_EW_LB_S);                  \
        }                                                                               \
        if (i < len) {                                                                  \
            VTM t = V_TAIL((int)(len - i));                                             \
            VF ta = as ? V_MLOAD(a + i, t) : va, tb = bs ? V_MLOAD(b + i, t) : vb;       \
            V_MSTORE(y + i, t, OPV(ta, tb));                                            \
        }                                                                               \
    } while (0)

PI_VTARGET static void PI_VFN(binary_row_f32)(int op, pi_index len, const float *a, int as,
                                              const float *b, int bs, float *y, int stream)
{
    if (op == PI_BINARY_POW) {
        binary_row_float_scalar(op, len, a, as, b, bs, y);
        return;
    }
    pi_index i = 0;
    const VF va = V_SET1(a[0]), vb = V_SET1(b[0]);
    if (stream) {
        /* peel up to the output's vector alignment so the main loop can stream */
        pi_index head = (pi_index)(((0u - (uintptr_t)y) & (PI_VW * 4 - 1)) / 4);
        if (head >= len)
            stream = 0;
        else if (head > 0) {
            binary_row_float_scalar(op, head, a, as, b, bs, y);
            i = head;
        }
    }
    switch (op) {
    case PI_BINARY_ADD: PI_EW_BIN_ALL(V_ADD); break;
    case PI_BINARY_SUB: PI_EW_BIN_ALL(V_SUB); break;
    case PI_BINARY_MUL: PI_EW_BIN_ALL(V_MUL); break;
    case PI_BINARY_DIV: PI_EW_BIN_ALL(V_DIV); break;
    case PI_BINARY_MAX: PI_EW_BIN_ALL(PI_EW_VMAX); break;
    default: PI_EW_BIN_ALL(PI_EW_VMIN); break;
    }
    if (stream)
        _mm_sfence(); /* streamed lines are visible before the region ends */
}

#undef PI_EW_UNARY_LOOP
#undef PI_EW_UNARY_SWITCH
#undef PI_EW_VMAX
#undef PI_EW_VMIN
#undef PI_EW_BIN_LOOP
#undef PI_EW_LA_V
#undef PI_EW_LA_S
#undef PI_EW_LB_V
#undef PI_EW_LB_S
#undef PI_EW_BIN_ALL

#endif /* PI_EW_BODY */
