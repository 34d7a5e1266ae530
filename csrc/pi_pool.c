/*
 * pi_pool.c -- 2-d max/avg pooling, global pooling, per-channel affine (batch
 * norm with folded parameters) and nearest/linear resize over NCHW planes
 * (pyinfer.h).
 *
 * Pooling is separable: for each output row, pass 1 reduces the window's input
 * rows into one padded row buffer (contiguous along W, so it vectorizes for any
 * stride), pass 2 reduces kw taps of that buffer per output column (strides 1
 * and 2 get loops with a constant stride, which vectorize too).  The padding
 * around the buffer holds -inf (max) or 0 (sum), so pass 2 has no edge cases;
 * that makes a max over a window with no input element -inf, the reference's
 * rule.  Max keeps NaN (once the running max is NaN it stays, and a NaN input
 * replaces it), like NumPy's max.
 *
 * The loops are plain C written once (PI_POOL_BODY, self-included) and
 * compiled three times: portable, AVX2+FMA and AVX-512 by target attributes,
 * so the compiler vectorizes each for its ISA; pi_current_isa picks one at run
 * time.  Planes (n*c of them) are split among OpenMP threads; each thread owns
 * one slot of the caller's workspace (no allocation here).
 */
#ifndef PI_POOL_BODY

#include <math.h>
#include <string.h>
#include <omp.h>
#include "pi_internal.h"

/* One thread's time per value a kernel reads or writes (pi_threads_for),
 * from 1-thread timings of f32 64x56x56 planes: a global average reads
 * 0.19 ns a value; a 3x3 max pool takes 0.45 ns per window value, twice
 * that (PI_POOL_DRIVER).  Plane values, outputs and a linear resize's 4
 * reads an output count at the streaming rate. */
#define PI_POOL_NS_PER_VALUE(T) (2.0 * sizeof(T) * PI_NS_PER_BYTE)
#define PI_POOL_ALIGN 64

typedef struct {
    pi_index h, w, x_hs;            /* input plane: h rows of w values, rows x_hs bytes apart */
    pi_index kh, kw, sh, sw, dh, dw;
    pi_index pt, pl, pb, pr;        /* pads: top, left, bottom, right */
    pi_index oh, ow, y_hs;
    pi_index row_len;               /* elements of the padded row buffer */
    int count_include_pad;
} pool_geom;

static pi_index pool_row_len(pi_index w, pi_index ow, pi_index kw, pi_index sw, pi_index dw,
                             pi_index pl, pi_index pr)
{
    pi_index need = (ow - 1) * sw + (kw - 1) * dw + 1;   /* what pass 2 reads */
    pi_index have = pl + w + pr;
    return need > have ? need : have;
}

static pi_index round_up(pi_index v, pi_index a) { return (v + a - 1) / a * a; }

/* One thread's slot: the row buffer, then (avg) one divisor factor per output column. */
static pi_index pool_slot_bytes(int elem_size, pi_index row_len, pi_index ow)
{
    return round_up((row_len + ow) * (pi_index)elem_size, PI_POOL_ALIGN);
}

PI_EXPORT pi_index pi_pool2d_workspace_bytes(int elem_size, pi_index w, pi_index ow, pi_index kw,
                                             pi_index sw, pi_index dw, pi_index pad_left,
                                             pi_index pad_right, int threads)
{
    if (threads < 1)
        threads = 1;
    return PI_POOL_ALIGN +
           threads * pool_slot_bytes(elem_size, pool_row_len(w, ow, kw, sw, dw, pad_left, pad_right), ow);
}

#define PI_CAT3_(a, b, c) a##_##b##_##c
#define PI_CAT3(a, b, c) PI_CAT3_(a, b, c)
#define PI_MAXNAN(acc, v) (((v) > (acc) || (v) != (v)) ? (v) : (acc))

/* ---- the bodies, once per (dtype, ISA) --------------------------------------- */
#define PI_POOL_BODY 1

#define T float
#define TN f32
#include "pi_pool_isa.inc"
#undef T
#undef TN

#define T double
#define TN f64
#include "pi_pool_isa.inc"
#undef T
#undef TN

#undef PI_POOL_BODY

/* ---- dispatch ----------------------------------------------------------------- */

#if PI_X86
#define PI_PICK(base, tn)                                                          \
    (pi_current_isa >= PI_ISA_AVX512 ? PI_CAT3(base, tn, avx512)                   \
     : pi_current_isa >= PI_ISA_AVX2 ? PI_CAT3(base, tn, avx2)                     \
                                     : PI_CAT3(base, tn, portable))
#else
#define PI_PICK(base, tn) PI_CAT3(base, tn, portable)
#endif

/* Threads for `planes` planes that take `single_ns` on one thread. */
static int pool_threads(pi_index planes, double single_ns)
{
    return pi_threads_for(single_ns, (double)planes);
}

#define PI_PLANE_X(T, p, base, ns, cs) \
    ((const T *)PI_CPTR_ADD((base), ((p) / c) * (ns) + ((p) % c) * (cs)))
#define PI_PLANE_Y(T, p, base, ns, cs) ((T *)PI_PTR_ADD((base), ((p) / c) * (ns) + ((p) % c) * (cs)))

/* Runs PLANE(geom, x_plane, y_plane, slot) for every plane, one workspace slot per thread. */
#define PI_POOL_DRIVER(T, PLANE)                                                      \
    do {                                                                              \
        pool_geom g = {h, w, x_hs, kh, kw, sh, sw, dh, dw, pad_top, pad_left,         \
                       pad_bottom, pad_right, oh, ow, y_hs,                           \
                       pool_row_len(w, ow, kw, sw, dw, pad_left, pad_right), cip};    \
        pi_index slot = pool_slot_bytes((int)sizeof(T), g.row_len, ow);               \
        char *base = (char *)round_up((pi_index)(uintptr_t)ws, PI_POOL_ALIGN);       \
        pi_index usable = ws_bytes - (pi_index)(base - (char *)ws);                   \
        if (usable < slot)                                                            \
            return PI_ERR_WORKSPACE;                                                  \
        pi_index planes = n * c;                                                      \
        double ns = 2.0 * planes * oh * ow * kh * kw * PI_POOL_NS_PER_VALUE(T);        \
        int nt = pool_threads(planes, ns);                                            \
        if ((pi_index)nt > usable / slot)                                             \
            nt = (int)(usable / slot);                                                \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                  \
        for (pi_index p = 0; p < planes; p++) {                                       \
            T *buf = (T *)(base + (pi_index)omp_get_thread_num() * slot);             \
            PLANE(&g, PI_PLANE_X(T, p, x, x_ns, x_cs), PI_PLANE_Y(T, p, y, y_ns, y_cs), buf); \
        }                                                                             \
        return PI_OK;                                                                 \
    } while (0)

static int pool_check(pi_index n, pi_index c, pi_index h, pi_index w, pi_index kh, pi_index kw,
                      pi_index sh, pi_index sw, pi_index dh, pi_index dw, pi_index pt,
                      pi_index pl, pi_index pb, pi_index pr, pi_index oh, pi_index ow,
                      const void *ws)
{
    if (n < 0 || c < 0 || h < 1 || w < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || dh < 1 ||
        dw < 1 || pt < 0 || pl < 0 || pb < 0 || pr < 0 || oh < 1 || ow < 1 || !ws)
        return PI_ERR_ARG;
    return PI_OK;
}

/* Both pools share one driver; the exported entry points differ only in the
 * attributes that apply (dilation for max, count_include_pad for avg). */
#define PI_POOL_IMPL(T, tn)                                                                      \
    static int pool2d_##tn(int is_max, pi_index n, pi_index c, pi_index h, pi_index w,          \
                           const T *x, pi_index x_ns, pi_index x_cs, pi_index x_hs, pi_index kh, \
                           pi_index kw, pi_index sh, pi_index sw, pi_index dh, pi_index dw,      \
                           pi_index pad_top, pi_index pad_left, pi_index pad_bottom,             \
                           pi_index pad_right, int cip, pi_index oh, pi_index ow, T *y,          \
                           pi_index y_ns, pi_index y_cs, pi_index y_hs, void *ws,                \
                           pi_index ws_bytes)                                                    \
    {                                                                                            \
        int st = pool_check(n, c, h, w, kh, kw, sh, sw, dh, dw, pad_top, pad_left, pad_bottom,   \
                            pad_right, oh, ow, ws);                                              \
        if (st != PI_OK)                                                                         \
            return st;                                                                           \
        if (n == 0 || c == 0)                                                                    \
            return PI_OK;                                                                        \
        void (*plane)(const pool_geom *, const T *, T *, T *) =                                  \
            is_max ? PI_PICK(max_plane, tn) : PI_PICK(avg_plane, tn);                            \
        PI_POOL_DRIVER(T, plane);                                                                \
    }                                                                                            \
    PI_EXPORT int pi_##tn##_max_pool2d(                                                          \
        pi_index n, pi_index c, pi_index h, pi_index w, const T *x, pi_index x_ns,               \
        pi_index x_cs, pi_index x_hs, pi_index kh, pi_index kw, pi_index sh, pi_index sw,        \
        pi_index dh, pi_index dw, pi_index pad_top, pi_index pad_left, pi_index pad_bottom,      \
        pi_index pad_right, pi_index oh, pi_index ow, T *y, pi_index y_ns, pi_index y_cs,        \
        pi_index y_hs, void *ws, pi_index ws_bytes)                                              \
    {                                                                                            \
        return pool2d_##tn(1, n, c, h, w, x, x_ns, x_cs, x_hs, kh, kw, sh, sw, dh, dw, pad_top,  \
                           pad_left, pad_bottom, pad_right, 0, oh, ow, y, y_ns, y_cs, y_hs, ws,  \
                           ws_bytes);                                                            \
    }                                                                                            \
    PI_EXPORT int pi_##tn##_avg_pool2d(                                                          \
        pi_index n, pi_index c, pi_index h, pi_index w, const T *x, pi_index x_ns,               \
        pi_index x_cs, pi_index x_hs, pi_index kh, pi_index kw, pi_index sh, pi_index sw,        \
        pi_index pad_top, pi_index pad_left, pi_index pad_bottom, pi_index pad_right,            \
        int count_include_pad, pi_index oh, pi_index ow, T *y, pi_index y_ns, pi_index y_cs,     \
        pi_index y_hs, void *ws, pi_index ws_bytes)                                              \
    {                                                                                            \
        return pool2d_##tn(0, n, c, h, w, x, x_ns, x_cs, x_hs, kh, kw, sh, sw, 1, 1, pad_top,    \
                           pad_left, pad_bottom, pad_right, count_include_pad != 0, oh, ow, y,   \
                           y_ns, y_cs, y_hs, ws, ws_bytes);                                      \
    }

PI_POOL_IMPL(float, f32)
PI_POOL_IMPL(double, f64)

/* ---- global pooling: y[n, c] = reduce(plane), planes of hw contiguous values ---- */

#define PI_GLOBAL_ENTRY(T, tn, kind)                                                          \
    PI_EXPORT int pi_##tn##_global_##kind##_pool(pi_index n, pi_index c, pi_index hw,         \
                                                 const T *x, pi_index x_ns, pi_index x_cs,    \
                                                 T *y, pi_index y_ns, pi_index y_cs)          \
    {                                                                                         \
        if (n < 0 || c < 0 || hw < 1)                                                         \
            return PI_ERR_ARG;                                                                \
        T (*fn)(pi_index, const T *) = PI_PICK(global_##kind, tn);                           \
        pi_index planes = n * c;                                                              \
        int nt = pool_threads(planes, (double)planes * hw * PI_POOL_NS_PER_VALUE(T));         \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                          \
        for (pi_index p = 0; p < planes; p++)                                                 \
            *PI_PLANE_Y(T, p, y, y_ns, y_cs) = fn(hw, PI_PLANE_X(T, p, x, x_ns, x_cs));       \
        return PI_OK;                                                                         \
    }

PI_GLOBAL_ENTRY(float, f32, avg)
PI_GLOBAL_ENTRY(double, f64, avg)
PI_GLOBAL_ENTRY(float, f32, max)
PI_GLOBAL_ENTRY(double, f64, max)

/* ---- per-channel affine: y = x * scale[c] + shift[c] over planes of `inner` values ---- */

#define PI_AFFINE_ENTRY(T, tn)                                                                \
    PI_EXPORT int pi_##tn##_channel_affine(pi_index n, pi_index c, pi_index inner,            \
                                           const T *x, pi_index x_ns, pi_index x_cs,          \
                                           const T *scale, const T *shift,                    \
                                           T *y, pi_index y_ns, pi_index y_cs)                \
    {                                                                                         \
        if (n < 0 || c < 0 || inner < 0 || !scale || !shift)                                  \
            return PI_ERR_ARG;                                                                \
        void (*fn)(pi_index, const T *, T, T, T *) = PI_PICK(affine_row, tn);                 \
        pi_index planes = n * c;                                                              \
        int nt = pool_threads(planes, 2.0 * planes * inner * PI_POOL_NS_PER_VALUE(T));        \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                          \
        for (pi_index p = 0; p < planes; p++)                                                 \
            fn(inner, PI_PLANE_X(T, p, x, x_ns, x_cs), scale[p % c], shift[p % c],            \
               PI_PLANE_Y(T, p, y, y_ns, y_cs));                                              \
        return PI_OK;                                                                         \
    }

PI_AFFINE_ENTRY(float, f32)
PI_AFFINE_ENTRY(double, f64)

/* ---- resize over the last two axes --------------------------------------------- */

#define PI_RESIZE_ENTRY(T, tn)                                                                \
    PI_EXPORT int pi_##tn##_resize_nearest(pi_index n, pi_index c, const T *x, pi_index x_ns,  \
                                           pi_index x_cs, pi_index x_hs, pi_index oh,          \
                                           pi_index ow, const pi_index *ih, const pi_index *iw, \
                                           T *y, pi_index y_ns, pi_index y_cs, pi_index y_hs)  \
    {                                                                                         \
        if (n < 0 || c < 0 || oh < 1 || ow < 1 || !ih || !iw)                                 \
            return PI_ERR_ARG;                                                                \
        void (*fn)(const T *, pi_index, pi_index, pi_index, const pi_index *,                 \
                   const pi_index *, T *, pi_index, int) = PI_PICK(nearest_plane, tn);        \
        int rep2 = ow % 2 == 0; /* columns repeated twice each (2x upsampling)? */             \
        for (pi_index o = 0; o < ow && rep2; o++)                                             \
            rep2 = iw[o] == o / 2;                                                            \
        pi_index planes = n * c;                                                              \
        int nt = pool_threads(planes, 2.0 * planes * oh * ow * PI_POOL_NS_PER_VALUE(T));      \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                          \
        for (pi_index p = 0; p < planes; p++)                                                 \
            fn(PI_PLANE_X(T, p, x, x_ns, x_cs), x_hs, oh, ow, ih, iw,                         \
               PI_PLANE_Y(T, p, y, y_ns, y_cs), y_hs, rep2);                                  \
        return PI_OK;                                                                         \
    }                                                                                         \
    PI_EXPORT int pi_##tn##_resize_linear(pi_index n, pi_index c, const T *x, pi_index x_ns,   \
                                          pi_index x_cs, pi_index x_hs, pi_index oh,           \
                                          pi_index ow, const pi_index *h0, const pi_index *h1, \
                                          const T *lh, const pi_index *w0, const pi_index *w1, \
                                          const T *lw, T *y, pi_index y_ns, pi_index y_cs,     \
                                          pi_index y_hs)                                       \
    {                                                                                         \
        if (n < 0 || c < 0 || oh < 1 || ow < 1 || !h0 || !h1 || !lh || !w0 || !w1 || !lw)     \
            return PI_ERR_ARG;                                                                \
        void (*fn)(const T *, pi_index, pi_index, pi_index, const pi_index *,                 \
                   const pi_index *, const T *, const pi_index *, const pi_index *,           \
                   const T *, T *, pi_index) = PI_PICK(linear_plane, tn);                     \
        pi_index planes = n * c;                                                              \
        int nt = pool_threads(planes, 5.0 * planes * oh * ow * PI_POOL_NS_PER_VALUE(T));      \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                          \
        for (pi_index p = 0; p < planes; p++)                                                 \
            fn(PI_PLANE_X(T, p, x, x_ns, x_cs), x_hs, oh, ow, h0, h1, lh, w0, w1, lw,         \
               PI_PLANE_Y(T, p, y, y_ns, y_cs), y_hs);                                        \
        return PI_OK;                                                                         \
    }

PI_RESIZE_ENTRY(float, f32)
PI_RESIZE_ENTRY(double, f64)

#else /* PI_POOL_BODY: the kernels for one (T, TN, ISA, TARGET) */

#define PI_FN(base) PI_CAT3(base, TN, ISA)

/* pass 2 for max: yr[o] = max over j of t[o*sw + j*dw]; constant strides vectorize. */
TARGET static inline void PI_FN(max_cols_s)(T *restrict yr, const T *restrict t, pi_index ow,
                                            pi_index kw, pi_index dw, const pi_index sw)
{
    for (pi_index o = 0; o < ow; o++)
        yr[o] = t[o * sw];
    for (pi_index j = 1; j < kw; j++) {
        const T *tj = t + j * dw;
        for (pi_index o = 0; o < ow; o++)
            yr[o] = PI_MAXNAN(yr[o], tj[o * sw]);
    }
}

TARGET static inline void PI_FN(sum_cols_s)(T *restrict yr, const T *restrict t, pi_index ow,
                                            pi_index kw, const pi_index sw)
{
    for (pi_index o = 0; o < ow; o++)
        yr[o] = t[o * sw];
    for (pi_index j = 1; j < kw; j++) {
        const T *tj = t + j;
        for (pi_index o = 0; o < ow; o++)
            yr[o] += tj[o * sw];
    }
}

TARGET static void PI_FN(max_plane)(const pool_geom *g, const T *x, T *y, T *buf)
{
    const pi_index w = g->w, pl = g->pl, L = g->row_len;
    const T ninf = (T)-INFINITY;
    for (pi_index i = 0; i < pl; i++)
        buf[i] = ninf;
    for (pi_index i = pl + w; i < L; i++)
        buf[i] = ninf;
    T *restrict t = buf + pl;
    for (pi_index r = 0; r < g->oh; r++) {
        pi_index h0 = r * g->sh - g->pt;
        int first = 1;
        for (pi_index i = 0; i < g->kh; i++) {
            pi_index ih = h0 + i * g->dh;
            if (ih < 0 || ih >= g->h)
                continue;
            const T *restrict xr = (const T *)PI_CPTR_ADD(x, ih * g->x_hs);
            if (first) {
                memcpy(t, xr, (size_t)w * sizeof(T));
                first = 0;
            } else {
                for (pi_index k = 0; k < w; k++)
                    t[k] = PI_MAXNAN(t[k], xr[k]);
            }
        }
        if (first)
            for (pi_index k = 0; k < w; k++)
                t[k] = ninf;
        T *yr = (T *)PI_PTR_ADD(y, r * g->y_hs);
        if (g->sw == 1)
            PI_FN(max_cols_s)(yr, buf, g->ow, g->kw, g->dw, 1);
        else if (g->sw == 2)
            PI_FN(max_cols_s)(yr, buf, g->ow, g->kw, g->dw, 2);
        else
            PI_FN(max_cols_s)(yr, buf, g->ow, g->kw, g->dw, g->sw);
    }
}

TARGET static void PI_FN(avg_plane)(const pool_geom *g, const T *x, T *y, T *buf)
{
    const pi_index w = g->w, pl = g->pl, L = g->row_len, ow = g->ow;
    /* The column and row ranges a divisor counts. */
    const pi_index lo_w = g->count_include_pad ? -g->pl : 0;
    const pi_index hi_w = g->count_include_pad ? w + g->pr : w;
    const pi_index lo_h = g->count_include_pad ? -g->pt : 0;
    const pi_index hi_h = g->count_include_pad ? g->h + g->pb : g->h;
    T *restrict cw = buf + L;
    for (pi_index o = 0; o < ow; o++) {
        pi_index s = o * g->sw - g->pl, e = s + g->kw;
        cw[o] = (T)((e < hi_w ? e : hi_w) - (s > lo_w ? s : lo_w));
    }
    for (pi_index i = 0; i < pl; i++)
        buf[i] = 0;
    for (pi_index i = pl + w; i < L; i++)
        buf[i] = 0;
    T *restrict t = buf + pl;
    for (pi_index r = 0; r < g->oh; r++) {
        pi_index h0 = r * g->sh - g->pt, first = 1;
        for (pi_index i = 0; i < g->kh; i++) {
            pi_index ih = h0 + i;
            if (ih < 0 || ih >= g->h)
                continue;
            const T *restrict xr = (const T *)PI_CPTR_ADD(x, ih * g->x_hs);
            if (first) {
                memcpy(t, xr, (size_t)w * sizeof(T));
                first = 0;
            } else {
                for (pi_index k = 0; k < w; k++)
                    t[k] += xr[k];
            }
        }
        if (first)
            for (pi_index k = 0; k < w; k++)
                t[k] = 0;
        pi_index e = h0 + g->kh;
        const T ch = (T)((e < hi_h ? e : hi_h) - (h0 > lo_h ? h0 : lo_h));
        T *restrict yr = (T *)PI_PTR_ADD(y, r * g->y_hs);
        if (g->sw == 1)
            PI_FN(sum_cols_s)(yr, buf, ow, g->kw, 1);
        else if (g->sw == 2)
            PI_FN(sum_cols_s)(yr, buf, ow, g->kw, 2);
        else
            PI_FN(sum_cols_s)(yr, buf, ow, g->kw, g->sw);
        for (pi_index o = 0; o < ow; o++)
            yr[o] = yr[o] / (ch * cw[o]);
    }
}

/* 16 independent partial sums: vectorizable without reassociating a single chain. */
TARGET static T PI_FN(global_avg)(pi_index n, const T *restrict x)
{
    T acc[16] = {0};
    pi_index i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += x[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += x[i];
    T s = 0;
    for (int j = 0; j < 16; j++)
        s += acc[j];
    return s / (T)n;
}

TARGET static T PI_FN(global_max)(pi_index n, const T *restrict x)
{
    T acc[16];
    for (int j = 0; j < 16; j++)
        acc[j] = (T)-INFINITY;
    pi_index i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] = PI_MAXNAN(acc[j], x[i + j]);
    for (int j = 0; i < n; i++, j++)
        acc[j] = PI_MAXNAN(acc[j], x[i]);
    T m = acc[0];
    for (int j = 1; j < 16; j++)
        m = PI_MAXNAN(m, acc[j]);
    return m;
}

TARGET static void PI_FN(affine_row)(pi_index n, const T *restrict x, T a, T b, T *restrict y)
{
    for (pi_index i = 0; i < n; i++)
        y[i] = x[i] * a + b;
}

TARGET static void PI_FN(nearest_plane)(const T *x, pi_index x_hs, pi_index oh, pi_index ow,
                                         const pi_index *ih, const pi_index *iw, T *y,
                                         pi_index y_hs, int rep2)
{
    for (pi_index r = 0; r < oh; r++) {
        T *restrict yr = (T *)PI_PTR_ADD(y, r * y_hs);
        if (r > 0 && ih[r] == ih[r - 1]) {   /* upsampling repeats rows: copy the last one */
            memcpy(yr, PI_PTR_ADD(y, (r - 1) * y_hs), (size_t)ow * sizeof(T));
            continue;
        }
        const T *restrict xr = (const T *)PI_CPTR_ADD(x, ih[r] * x_hs);
        if (rep2) {   /* iw[o] == o / 2: a constant pattern the compiler vectorizes */
            for (pi_index o = 0; o < ow / 2; o++) {
                yr[2 * o] = xr[o];
                yr[2 * o + 1] = xr[o];
            }
            continue;
        }
        for (pi_index o = 0; o < ow; o++)
            yr[o] = xr[iw[o]];
    }
}

TARGET static void PI_FN(linear_plane)(const T *x, pi_index x_hs, pi_index oh, pi_index ow,
                                        const pi_index *h0, const pi_index *h1, const T *lh,
                                        const pi_index *w0, const pi_index *w1, const T *lw,
                                        T *y, pi_index y_hs)
{
    for (pi_index r = 0; r < oh; r++) {
        const T *restrict a = (const T *)PI_CPTR_ADD(x, h0[r] * x_hs);
        const T *restrict b = (const T *)PI_CPTR_ADD(x, h1[r] * x_hs);
        const T l = lh[r], m = (T)1 - lh[r];
        T *restrict yr = (T *)PI_PTR_ADD(y, r * y_hs);
        for (pi_index o = 0; o < ow; o++) {
            const T v = lw[o], u = (T)1 - lw[o];
            T top = a[w0[o]] * u + a[w1[o]] * v;
            T bot = b[w0[o]] * u + b[w1[o]] * v;
            yr[o] = top * m + bot * l;
        }
    }
}

#undef PI_FN
#endif /* PI_POOL_BODY */
