/*
 * test_attention.c -- pi_f32_attention / pi_f64_attention against a double
 * reference, on every ISA this CPU supports (pi_set_isa), 1 and 3 threads:
 * tile edges of the 6 x NR micro-kernel (sizes 1, primes, 15..17, 31..33),
 * more keys than one block (the online-softmax path), q/k/v as strided views
 * of (B, S, H, D) projections, output through strides, masks broadcast by zero
 * strides with -inf and large negative entries, fully masked rows (NaN, as
 * the reference), outputs poisoned with NaN beforehand, bad arguments.
 *
 * Build with every kernel source of csrc/ (run_sanitized.sh does, under ASan/UBSan):
 *   gcc -O2 -fopenmp -std=c11 -Icsrc csrc/pi_*.c csrc/tests/test_attention.c -lm
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../pi_internal.h"

static long n_pass, n_fail;

#define CHECK(cond, ...)                                                                \
    do {                                                                                \
        if (cond) {                                                                     \
            n_pass++;                                                                   \
        } else {                                                                        \
            n_fail++;                                                                   \
            if (n_fail <= 40) {                                                         \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                             \
                printf(__VA_ARGS__);                                                    \
                printf("\n");                                                           \
            }                                                                           \
        }                                                                               \
    } while (0)

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) /* [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / (double)(1ull << 52) - 1.0;
}

/* One case: sizes, layout choice, mask kind. */
typedef struct {
    pi_index nb, nh, sq, sk, d, dv;
    int proj;      /* q, k, v, out as (B, S, H, D) buffers seen through strides */
    int mask_kind; /* 0 none, 1 (B,1,1,Sk) with -inf, 2 full (B,H,Sq,Sk), 3 per-row
                      scalar (B,H,Sq,1) broadcast along keys, 4 causal (Sq,Sk) with
                      fully masked rows, 5 (Sq,Sk) hiding the first keys (whole key
                      blocks at -inf before finite ones) */
} acase;

/* Element (b, h, i, j) strides (in elements) of a 4-d tensor of dims
 * (nb, nh, rows, cols), stored contiguous as (b, h, i, j), or as (b, i, h, j)
 * when proj. */
static void strides4(const acase *c, pi_index rows, pi_index cols, int proj, pi_index *s)
{
    if (proj) {
        s[3] = 1;
        s[1] = cols;
        s[2] = c->nh * cols;
        s[0] = rows * c->nh * cols;
    } else {
        s[3] = 1;
        s[2] = cols;
        s[1] = rows * cols;
        s[0] = c->nh * rows * cols;
    }
}

#define IDX(s, b, h, i, j) ((b) * (s)[0] + (h) * (s)[1] + (i) * (s)[2] + (j) * (s)[3])

static void reference(const acase *c, double scale, const double *q, const pi_index *qs,
                      const double *k, const pi_index *ks, const double *v,
                      const pi_index *vs, const double *m, const pi_index *ms, double *ref)
{
    double *s = malloc(sizeof(double) * (size_t)c->sk);
    for (pi_index b = 0; b < c->nb; b++)
        for (pi_index h = 0; h < c->nh; h++)
            for (pi_index i = 0; i < c->sq; i++) {
                double mx = -INFINITY;
                for (pi_index j = 0; j < c->sk; j++) {
                    double t = 0;
                    for (pi_index e = 0; e < c->d; e++)
                        t += q[IDX(qs, b, h, i, e)] * k[IDX(ks, b, h, j, e)];
                    t *= scale;
                    if (m)
                        t += m[IDX(ms, b, h, i, j)];
                    s[j] = t;
                    mx = t > mx ? t : mx;
                }
                double sum = 0;
                for (pi_index j = 0; j < c->sk; j++) {
                    s[j] = exp(s[j] - mx); /* all -inf: NaN, as the reference */
                    sum += s[j];
                }
                for (pi_index e = 0; e < c->dv; e++) {
                    double acc = 0;
                    for (pi_index j = 0; j < c->sk; j++)
                        acc += s[j] / sum * v[IDX(vs, b, h, j, e)];
                    ref[((b * c->nh + h) * c->sq + i) * c->dv + e] = acc;
                }
            }
    free(s);
}

/* Mask values and strides for mask_kind; returns the buffer (NULL for none). */
static double *make_mask(const acase *c, pi_index *ms)
{
    pi_index n;
    switch (c->mask_kind) {
    case 1: /* (B, 1, 1, Sk): padding keys at -inf, one key at a large negative */
        n = c->nb * c->sk;
        ms[0] = c->sk, ms[1] = 0, ms[2] = 0, ms[3] = 1;
        break;
    case 2:
        n = c->nb * c->nh * c->sq * c->sk;
        ms[3] = 1, ms[2] = c->sk, ms[1] = c->sq * c->sk, ms[0] = c->nh * c->sq * c->sk;
        break;
    case 3:
        n = c->nb * c->nh * c->sq;
        ms[3] = 0, ms[2] = 1, ms[1] = c->sq, ms[0] = c->nh * c->sq;
        break;
    case 4: /* causal, shifted so that the first rows see no key at all */
    case 5:
        n = c->sq * c->sk;
        ms[0] = 0, ms[1] = 0, ms[2] = c->sk, ms[3] = 1;
        break;
    default:
        return NULL;
    }
    double *m = malloc(sizeof(double) * (size_t)n);
    for (pi_index t = 0; t < n; t++)
        m[t] = urand();
    if (c->mask_kind == 1) {
        for (pi_index b = 0; b < c->nb; b++) {
            pi_index valid = 1 + (b * 7) % c->sk;
            for (pi_index j = valid; j < c->sk; j++)
                m[b * c->sk + j] = -INFINITY;
            m[b * c->sk] = -10000.0;
        }
    } else if (c->mask_kind == 2) {
        for (pi_index t = 0; t < n; t += 3)
            m[t] = -INFINITY;
    } else if (c->mask_kind == 4) {
        for (pi_index i = 0; i < c->sq; i++)
            for (pi_index j = 0; j < c->sk; j++)
                if (j > i - 2)
                    m[i * c->sk + j] = -INFINITY;
    } else if (c->mask_kind == 5) {
        for (pi_index i = 0; i < c->sq; i++)
            for (pi_index j = 0; j < c->sk; j++)
                if (j < c->sk / 2 + i * 37 % (c->sk / 2))
                    m[i * c->sk + j] = -INFINITY;
    }
    return m;
}

static pi_index extent(const acase *c, pi_index rows, pi_index cols)
{
    return c->nb * c->nh * rows * cols;
}

static void run_case(const acase *c, int isa, int threads)
{
    pi_index qs[4], ks[4], vs[4], os[4], ms[4] = {0, 0, 0, 0};
    strides4(c, c->sq, c->d, c->proj, qs);
    strides4(c, c->sk, c->d, c->proj, ks);
    strides4(c, c->sk, c->dv, c->proj, vs);
    strides4(c, c->sq, c->dv, c->proj, os);
    pi_index nq = extent(c, c->sq, c->d), nk = extent(c, c->sk, c->d);
    pi_index nv = extent(c, c->sk, c->dv), no = extent(c, c->sq, c->dv);
    double *q = malloc(sizeof(double) * (size_t)(nq + 1));
    double *k = malloc(sizeof(double) * (size_t)(nk + 1));
    double *v = malloc(sizeof(double) * (size_t)(nv + 1));
    double *ref = malloc(sizeof(double) * (size_t)(no + 1));
    for (pi_index t = 0; t < nq; t++)
        q[t] = 2 * urand();
    for (pi_index t = 0; t < nk; t++)
        k[t] = 2 * urand();
    for (pi_index t = 0; t < nv; t++)
        v[t] = urand();
    double *m = make_mask(c, ms);
    pi_index nm = c->mask_kind == 1 ? c->nb * c->sk
                  : c->mask_kind == 2 ? c->nb * c->nh * c->sq * c->sk
                  : c->mask_kind == 3 ? c->nb * c->nh * c->sq : c->sq * c->sk;
    const double scale = 1.0 / sqrt((double)(c->d > 0 ? c->d : 1));
    /* the f32 inputs are the f64 ones rounded: the reference takes those */
    float *q32 = malloc(sizeof(float) * (size_t)(nq + 1)), *k32 = malloc(sizeof(float) * (size_t)(nk + 1));
    float *v32 = malloc(sizeof(float) * (size_t)(nv + 1)), *m32 = m ? malloc(sizeof(float) * (size_t)nm) : NULL;
    for (pi_index t = 0; t < nq; t++)
        q[t] = q32[t] = (float)q[t];
    for (pi_index t = 0; t < nk; t++)
        k[t] = k32[t] = (float)k[t];
    for (pi_index t = 0; t < nv; t++)
        v[t] = v32[t] = (float)v[t];
    for (pi_index t = 0; m && t < nm; t++)
        m[t] = m32[t] = (float)m[t];
    reference(c, (double)(float)scale, q, qs, k, ks, v, vs, m, ms, ref);

    pi_index qb[4], kb[4], vb[4], ob[4], mb[4];
    for (int e = 0; e < 2; e++) {
        const int es = e == 0 ? 4 : 8;
        for (int a = 0; a < 4; a++) {
            qb[a] = qs[a] * es, kb[a] = ks[a] * es, vb[a] = vs[a] * es;
            ob[a] = os[a] * es, mb[a] = ms[a] * es;
        }
        pi_index wsb = pi_attention_workspace_bytes(es, c->sq, c->sk, c->d, c->dv, threads);
        void *ws = aligned_alloc(64, (size_t)((wsb + 63) / 64 * 64));
        double *out64 = malloc(sizeof(double) * (size_t)(no + 1));
        float *out32 = malloc(sizeof(float) * (size_t)(no + 1));
        for (pi_index t = 0; t < no; t++)
            out64[t] = NAN, out32[t] = NAN;
        int st = e == 0 ? pi_f32_attention(c->nb, c->nh, c->sq, c->sk, c->d, c->dv, (float)scale,
                                           q32, qb, k32, kb, v32, vb, m32, mb, out32, ob, ws, wsb)
                        : pi_f64_attention(c->nb, c->nh, c->sq, c->sk, c->d, c->dv,
                                           (double)(float)scale, q, qb, k, kb, v, vb, m, mb,
                                           out64, ob, ws, wsb);
        CHECK(st == PI_OK, "status %d", st);
        double worst = 0;
        long bad = 0;
        for (pi_index b = 0; b < c->nb; b++)
            for (pi_index h = 0; h < c->nh; h++)
                for (pi_index i = 0; i < c->sq; i++)
                    for (pi_index j = 0; j < c->dv; j++) {
                        double r = ref[((b * c->nh + h) * c->sq + i) * c->dv + j];
                        double g = e == 0 ? out32[IDX(os, b, h, i, j)] : out64[IDX(os, b, h, i, j)];
                        if (isnan(r) || isnan(g)) {
                            bad += isnan(r) != isnan(g);
                            continue;
                        }
                        double err = fabs(g - r) / (1.0 + fabs(r));
                        worst = err > worst ? err : worst;
                    }
        const double tol = e == 0 ? 2e-6 : 1e-13;
        CHECK(bad == 0 && worst <= tol,
              "%s isa %d threads %d: b%lld h%lld sq%lld sk%lld d%lld dv%lld proj%d mask%d: "
              "err %.3g, %ld NaN mismatches",
              e == 0 ? "f32" : "f64", isa, threads, c->nb, c->nh, c->sq, c->sk, c->d, c->dv,
              c->proj, c->mask_kind, worst, bad);
        free(ws);
        free(out64);
        free(out32);
    }
    free(q), free(k), free(v), free(m), free(ref);
    free(q32), free(k32), free(v32), free(m32);
}

static void bad_arguments(void)
{
    float x[64] = {0}, out[64];
    pi_index s[4] = {0, 0, 16, 4}, odd[4] = {0, 0, 16, 2};
    pi_index wsb = pi_attention_workspace_bytes(4, 2, 2, 2, 2, 1);
    void *ws = aligned_alloc(64, (size_t)((wsb + 63) / 64 * 64));
    CHECK(pi_f32_attention(1, 1, 2, 0, 2, 2, 1.0f, x, s, x, s, x, s, NULL, NULL, out, s, ws,
                           wsb) == PI_ERR_ARG, "sk == 0");
    CHECK(pi_f32_attention(1, 1, 2, 2, 2, 2, 1.0f, x, odd, x, s, x, s, NULL, NULL, out, s, ws,
                           wsb) == PI_ERR_ARG, "stride not a whole element");
    CHECK(pi_f32_attention(1, 1, 2, 2, 2, 2, 1.0f, x, s, x, s, x, s, NULL, NULL, out, s, ws,
                           wsb - 1) == PI_ERR_WORKSPACE, "workspace too small");
    CHECK(pi_f32_attention(-1, 1, 2, 2, 2, 2, 1.0f, x, s, x, s, x, s, NULL, NULL, out, s, ws,
                           wsb) == PI_ERR_ARG, "negative size");
    CHECK(pi_f32_attention(1, 1, 0, 2, 2, 2, 1.0f, x, s, x, s, x, s, NULL, NULL, out, s, ws,
                           wsb) == PI_OK, "no query rows");
    CHECK(pi_attention_workspace_bytes(3, 2, 2, 2, 2, 1) == 0, "elem size 3");
    free(ws);
}

int main(void)
{
    static const acase cases[] = {
        {1, 1, 1, 1, 1, 1, 0, 0},
        {1, 1, 1, 1, 1, 1, 0, 2},
        {1, 2, 5, 7, 3, 2, 0, 1},
        {2, 3, 6, 16, 8, 16, 1, 1},
        {1, 2, 7, 17, 16, 17, 1, 2},
        {2, 1, 13, 31, 31, 33, 0, 3},
        {1, 3, 17, 33, 32, 32, 1, 4},
        {1, 2, 64, 65, 65, 31, 1, 1},
        {2, 2, 130, 129, 32, 32, 1, 1}, /* more than one query chunk per head */
        {1, 1, 11, 1000, 64, 64, 0, 4}, /* three key blocks: the flash path */
        {1, 2, 9, 1100, 64, 65, 1, 2},
        {1, 1, 3, 2000, 1, 1, 0, 1},
        {2, 1, 8, 1500, 16, 8, 1, 5},  /* rows whose first key blocks are all -inf */
        {1, 1, 4, 3, 0, 5, 0, 2},      /* d == 0: scores are the mask alone */
    };
    const int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int isa = PI_ISA_PORTABLE; isa <= pi_isa_detected(); isa++) {
        if (pi_set_isa(isa) != PI_OK)
            continue;
        for (int threads = 1; threads <= 3; threads += 2) {
            pi_set_num_threads(threads);
            for (int i = 0; i < nc; i++)
                run_case(&cases[i], isa, threads);
        }
    }
    pi_set_isa(pi_isa_detected());
    bad_arguments();
    printf("%ld passed, %ld failed\n", n_pass, n_fail);
    return n_fail != 0;
}
