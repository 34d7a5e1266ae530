/* Standalone differential test of pi_f32_gemm / pi_f64_gemm (no Python).
 *
 * For every micro-kernel in the list (pi_gemm_ukernels.h) whose ISA this CPU
 * runs: sizes equal to / below / above MR, NR, KC and MC (and NC for N), 1 and
 * primes; transposed, strided, negative-stride and zero-stride (broadcast)
 * operands; every epilogue; batch > 1; C poisoned with NaN (and its padding
 * checked untouched) -- against a naive triple loop in double.
 *
 * Tolerance (per element): Higham's dot-product bound |fl(a.b) - a.b| <=
 * gamma_k |a|.|b| with gamma_k ~ k*eps, here (k + 4) * eps * S where
 * S = |alpha| sum_p |a_ip||b_pj| + |bias_j| + |r_ij| (the +4 covers alpha,
 * the accumulation across k blocks, bias and R), times 1.2 for the
 * activations' slope (max |act'| < 1.13), plus 16 eps (1 + |ref|) for the
 * vector activations' own approximation error.
 *
 * Every single-item case runs a second time through the pre-packed B entry
 * points (pi_<dtype>_gemm_pack_b, then pi_<dtype>_gemm_packed).
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pi_internal.h"
#include "pi_gemm_ukernels.h"

static int passed, failed;
static uint64_t rng = 88172645463325252ull;

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double ref_act(double x, int act)
{
    switch (act) {
    case PI_ACT_RELU: return x > 0 ? x : 0;
    case PI_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case PI_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case PI_ACT_SILU: return x / (1.0 + exp(-x));
    case PI_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case PI_ACT_TANH: return tanh(x);
    default: return x;
    }
}

/* A strided operand: element (t, i, j) at base + t*bs + i*rs + j*cs (elements). */
typedef struct {
    pi_index bs, rs, cs;
} lay;

typedef struct {
    char *mem, *base;
    pi_index lo, count; /* element offsets [lo, lo + count) */
} buf;

static buf make_buf(int es, pi_index batch, pi_index rows, pi_index cols, lay l)
{
    pi_index lo = 0, hi = 0;
    pi_index ext[3] = {(batch - 1) * l.bs, (rows - 1) * l.rs, (cols - 1) * l.cs};
    for (int d = 0; d < 3; d++) {
        if (ext[d] < 0) lo += ext[d]; else hi += ext[d];
    }
    buf b;
    b.lo = lo;
    b.count = hi - lo + 1;
    b.mem = aligned_alloc(64, (size_t)((b.count * es + 63) / 64 * 64));
    for (pi_index x = 0; x < b.count; x++) {
        if (es == 4) ((float *)b.mem)[x] = NAN; else ((double *)b.mem)[x] = NAN;
    }
    b.base = b.mem - lo * es;
    return b;
}

static double get(const buf *b, int es, pi_index off)
{
    return es == 4 ? ((const float *)b->base)[off] : ((const double *)b->base)[off];
}

static void set(buf *b, int es, pi_index off, double v)
{
    if (es == 4) ((float *)b->base)[off] = (float)v; else ((double *)b->base)[off] = v;
}

static void fill(buf *b, int es, pi_index batch, pi_index rows, pi_index cols, lay l)
{
    for (pi_index t = 0; t < batch; t++)
        for (pi_index i = 0; i < rows; i++)
            for (pi_index j = 0; j < cols; j++)
                set(b, es, t * l.bs + i * l.rs + j * l.cs, urand());
}

static const char *cur_kernel = "";
static int use_packed; /* run single-item cases through pack_b + gemm_packed */

static void run_case(int es, pi_index batch, pi_index m, pi_index n, pi_index k, double alpha,
                     int has_bias, int act, lay la, lay lb, int has_r, lay lr, lay lc,
                     const char *what)
{
    buf A = make_buf(es, batch, m, k, la), B = make_buf(es, batch, k, n, lb);
    buf R = make_buf(es, batch, m, n, lr), C = make_buf(es, batch, m, n, lc);
    buf bias = make_buf(es, 1, 1, n, (lay){0, 0, 1});
    fill(&A, es, batch, m, k, la);
    fill(&B, es, batch, k, n, lb);
    fill(&R, es, batch, m, n, lr);
    fill(&bias, es, 1, 1, n, (lay){0, 0, 1});

    void *packed = NULL;
    pi_index wsb;
    if (use_packed) {
        if (batch != 1)
            goto done;
        pi_index pbytes = pi_gemm_packed_b_bytes(es, m, k, n);
        packed = aligned_alloc(64, (size_t)((pbytes + 63) / 64 * 64));
        int ps = es == 4 ? pi_f32_gemm_pack_b(m, k, n, (const float *)B.base, lb.rs * es,
                                              lb.cs * es, packed, pbytes)
                         : pi_f64_gemm_pack_b(m, k, n, (const double *)B.base, lb.rs * es,
                                              lb.cs * es, packed, pbytes);
        if (ps != PI_OK || pi_gemm_packed_b_ukernel(packed) != pi_gemm_forced_ukernel) {
            failed++;
            fprintf(stderr, "FAIL %s [%s] pack_b status %d, kernel %d\n", cur_kernel, what, ps,
                    pi_gemm_packed_b_ukernel(packed));
            goto done;
        }
        wsb = pi_gemm_packed_workspace_bytes(packed, m);
    } else {
        wsb = pi_gemm_workspace_bytes(es, m, n, k);
    }
    void *ws = wsb ? aligned_alloc(64, (size_t)((wsb + 63) / 64 * 64)) : NULL;
    int st;
    if (use_packed && es == 4)
        st = pi_f32_gemm_packed(m, (float)alpha, (const float *)A.base, la.rs * es, la.cs * es,
                                packed, has_bias ? (const float *)bias.base : NULL,
                                has_r ? (const float *)R.base : NULL, lr.rs * es, lr.cs * es,
                                act, (float *)C.base, lc.rs * es, lc.cs * es, ws, wsb);
    else if (use_packed)
        st = pi_f64_gemm_packed(m, alpha, (const double *)A.base, la.rs * es, la.cs * es,
                                packed, has_bias ? (const double *)bias.base : NULL,
                                has_r ? (const double *)R.base : NULL, lr.rs * es, lr.cs * es,
                                act, (double *)C.base, lc.rs * es, lc.cs * es, ws, wsb);
    else if (es == 4)
        st = pi_f32_gemm(batch, m, n, k, (float)alpha, (const float *)A.base, la.bs * es,
                         la.rs * es, la.cs * es, (const float *)B.base, lb.bs * es, lb.rs * es,
                         lb.cs * es, has_bias ? (const float *)bias.base : NULL,
                         has_r ? (const float *)R.base : NULL, lr.bs * es, lr.rs * es,
                         lr.cs * es, act, (float *)C.base, lc.bs * es, lc.rs * es, lc.cs * es,
                         ws, wsb);
    else
        st = pi_f64_gemm(batch, m, n, k, alpha, (const double *)A.base, la.bs * es, la.rs * es,
                         la.cs * es, (const double *)B.base, lb.bs * es, lb.rs * es, lb.cs * es,
                         has_bias ? (const double *)bias.base : NULL,
                         has_r ? (const double *)R.base : NULL, lr.bs * es, lr.rs * es,
                         lr.cs * es, act, (double *)C.base, lc.bs * es, lc.rs * es, lc.cs * es,
                         ws, wsb);
    const double eps = es == 4 ? 1.1920929e-07 : 2.220446049250313e-16;
    int bad = st != PI_OK;
    double worst = 0;
    pi_index wi = 0, wj = 0, wt = 0;
    double wgot = 0, wref = 0;
    for (pi_index t = 0; t < batch && !bad; t++)
        for (pi_index i = 0; i < m; i++)
            for (pi_index j = 0; j < n; j++) {
                double s = 0, sa = 0;
                for (pi_index p = 0; p < k; p++) {
                    double x = get(&A, es, t * la.bs + i * la.rs + p * la.cs);
                    double y = get(&B, es, t * lb.bs + p * lb.rs + j * lb.cs);
                    s += x * y;
                    sa += fabs(x * y);
                }
                double v = alpha * s, S = fabs(alpha) * sa;
                if (has_bias) {
                    double bj = get(&bias, es, j);
                    v += bj;
                    S += fabs(bj);
                }
                if (has_r) {
                    double rv = get(&R, es, t * lr.bs + i * lr.rs + j * lr.cs);
                    v += rv;
                    S += fabs(rv);
                }
                double ref = ref_act(v, act);
                double got = get(&C, es, t * lc.bs + i * lc.rs + j * lc.cs);
                double tol = 1.2 * (double)(k + 4) * eps * S + 16 * eps * (1 + fabs(ref));
                double err = fabs(got - ref);
                if (!(err <= tol)) { /* NaN fails too */
                    if (!(err <= worst)) {
                        worst = err;
                        wt = t, wi = i, wj = j, wgot = got, wref = ref;
                    }
                    bad = 1;
                }
            }
    /* Nothing outside the m x n views of C was written. */
    pi_index touched = 0;
    for (pi_index x = 0; x < C.count; x++)
        touched += !isnan(es == 4 ? (double)((float *)C.mem)[x] : ((double *)C.mem)[x]);
    const pi_index live = batch * m * n; /* C's views never overlap (contract) */
    if (!bad && touched > live) {
        bad = 1;
        fprintf(stderr, "  stray writes: %lld non-NaN elements, %lld expected\n", touched, live);
    }
    if (bad) {
        failed++;
        fprintf(stderr,
                "FAIL %s%s [%s] f%d batch=%lld m=%lld n=%lld k=%lld alpha=%g bias=%d act=%d r=%d "
                "status=%d at (%lld,%lld,%lld) got %.9g ref %.9g\n",
                cur_kernel, use_packed ? " packed" : "", what, es * 8, batch, m, n, k, alpha,
                has_bias, act, has_r, st, wt, wi, wj, wgot, wref);
    } else {
        passed++;
    }
    free(ws);
done:
    free(packed);
    free(A.mem);
    free(B.mem);
    free(R.mem);
    free(C.mem);
    free(bias.mem);
}

/* Row-major layouts with a little padding so row strides are not m or n. */
static lay rowmajor(pi_index rows, pi_index cols) { return (lay){rows * (cols + 3), cols + 3, 1}; }
static lay colmajor(pi_index rows, pi_index cols) { return (lay){cols * (rows + 1), 1, rows + 1}; }

static void simple(int es, pi_index m, pi_index n, pi_index k, const char *what)
{
    run_case(es, 1, m, n, k, 1.0, 0, PI_ACT_NONE, rowmajor(m, k), rowmajor(k, n), 0,
             rowmajor(m, n), rowmajor(m, n), what);
}

static void test_kernel(const pi_gemm_ukernel *u)
{
    const int es = u->elem_size;
    const pi_index MR = u->mr, NR = u->nr, KC = u->kc, MC = u->mc;
    pi_index ms[] = {1, 2, MR - 1, MR, MR + 1, 2 * MR + 1, 13, 17, 31};
    pi_index ns[] = {1, 2, NR - 1, NR, NR + 1, 2 * NR + 3, 13, 37};
    pi_index ks[] = {0, 1, 2, 7, KC - 1, KC, KC + 1, 2 * KC + 3};
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            if (ms[a] >= 1 && ns[b] >= 1)
                simple(es, ms[a], ns[b], 11, "m x n edges");
    for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
        simple(es, MR + 1, NR + 1, ks[c], "k edges");
        simple(es, 3, 2 * NR + 1, ks[c], "k edges small m");
        simple(es, 4 * MR + 5, NR - 1 > 0 ? NR - 1 : 1, ks[c], "k edges big m");
    }
    /* MC edges (the M-split, packed-A path) and an NC edge. */
    simple(es, MC - 1, NR + 3, 29, "mc-1");
    simple(es, MC, 2 * NR, 29, "mc");
    simple(es, MC + 1, 2 * NR + 5, KC + 3, "mc+1");
    simple(es, 2 * MC + 7, 3 * NR + 1, 17, "2mc+7");
    simple(es, 2, u->nc + 5, 5, "nc+5 small m");
    simple(es, 3 * MR + 40, u->nc + 1, 3, "nc+1");

    /* Layouts: transposes, strides, negative and zero strides. */
    const pi_index m = 2 * MR + 3, n = 2 * NR + 5, k = 23;
    lay ra = rowmajor(m, k), ca = colmajor(m, k), rb = rowmajor(k, n), cb = colmajor(k, n);
    lay rc = rowmajor(m, n), cc = colmajor(m, n), sc = {0, 2 * n + 1, 2};
    lay neg_a = {0, -(k + 2), 1}, neg_b = {0, n, -1};
    lay zb_row = {0, 0, 1};  /* every row of B the same */
    lay za_col = {0, k + 1, 0};  /* every column of A the same */
    for (int small = 0; small < 2; small++) {
        pi_index mm = small ? 3 : m;
        lay ram = rowmajor(mm, k), cam = colmajor(mm, k), rcm = rowmajor(mm, n),
            ccm = colmajor(mm, n), scm = {0, 2 * n + 1, 2};
        run_case(es, 1, mm, n, k, 1, 0, 0, cam, rb, 0, rcm, rcm, "A transposed");
        run_case(es, 1, mm, n, k, 1, 0, 0, ram, cb, 0, rcm, rcm, "B transposed");
        run_case(es, 1, mm, n, k, 1, 0, 0, cam, cb, 0, rcm, ccm, "all transposed");
        run_case(es, 1, mm, n, k, 1, 0, 0, ram, rb, 0, rcm, scm, "C col stride 2");
        run_case(es, 1, mm, n, k, 1, 0, 0, neg_a, neg_b, 0, rcm, rcm, "negative strides");
        run_case(es, 1, mm, n, k, 1, 0, 0, ram, zb_row, 0, rcm, rcm, "B zero row stride");
        run_case(es, 1, mm, n, k, 1, 0, 0, za_col, rb, 0, rcm, rcm, "A zero col stride");
        run_case(es, 1, mm, n, k, 1, 0, 0, ram, (lay){0, n + 1, 0}, 0, rcm, rcm, "B zero col stride");
        run_case(es, 1, mm, n, 300, 1, 1, PI_ACT_GELU, cam, cb, 1, ccm, scm, "k blocks, strided C");
    }
    (void)ra, (void)ca, (void)rc, (void)cc, (void)sc;

    /* Every epilogue, on a full and an edge-only tile, with both k=0 and k blocks. */
    for (int act = PI_ACT_NONE; act <= PI_ACT_TANH; act++)
        for (int hb = 0; hb < 2; hb++)
            for (int hr = 0; hr < 2; hr++) {
                run_case(es, 1, m, n, k, 0.75, hb, act, ra, rb, hr, rc, rc, "epilogue");
                run_case(es, 1, MR - 1 > 0 ? MR - 1 : 1, NR + 1, KC + 9, -1.5, hb, act, ra, rb, hr,
                         (lay){0, 0, 1}, rc, "epilogue, R row broadcast, k blocks");
                run_case(es, 1, 5, 7, 0, 2.0, hb, act, rowmajor(5, 1), rowmajor(1, 7), hr,
                         (lay){0, 1, 0}, rowmajor(5, 7), "epilogue k=0, R col broadcast");
            }

    /* Batches: small items (one per thread), broadcast A / B / R, large items. */
    run_case(es, 12, 16, 17, 8, 1, 0, 0, (lay){16 * 8, 8, 1}, (lay){8 * 17, 17, 1}, 0, rc,
             (lay){16 * 17, 17, 1}, "batch 12 small");
    run_case(es, 5, m, n, k, 0.5, 1, PI_ACT_RELU, (lay){0, k, 1}, (lay){k * n + 1, n, 1}, 1,
             (lay){0, n, 1}, (lay){m * n + 2, n, 1}, "batch, A and R broadcast");
    run_case(es, 3, 2 * MC + 1, NR + 2, 40, 1, 1, PI_ACT_SILU, (lay){(2 * MC + 1) * 40, 40, 1},
             (lay){0, NR + 2, 1}, 0, rc, (lay){(2 * MC + 1) * (NR + 2), NR + 2, 1},
             "batch 3, B broadcast, M split");
    run_case(es, 2, 1, 3 * NR + 1, KC + 1, 1, 1, 0, (lay){0, 0, 1}, (lay){0, 3 * NR + 1, 1}, 0,
             rc, (lay){3 * NR + 1, 3 * NR + 1, 1}, "batch 2, m=1 gemv-like");
}

int main(void)
{
    int detected = pi_isa_detected();
    for (int t = 1; t <= 2; t++) {
        pi_set_num_threads(t);
        for (int i = 0; i < pi_gemm_ukernel_count; i++) {
            const pi_gemm_ukernel *u = &pi_gemm_ukernel_table[i];
            if (u->isa > detected) {
                printf("skip %s (CPU lacks %s)\n", u->name, pi_isa_name(u->isa));
                continue;
            }
            pi_set_isa(u->isa);
            pi_gemm_forced_ukernel = i;
            cur_kernel = u->name;
            for (use_packed = 0; use_packed < 2; use_packed++) {
                int before = failed;
                test_kernel(u);
                printf("%s%s threads=%d: %s\n", u->name, use_packed ? " packed B" : "", t,
                       failed == before ? "ok" : "FAILED");
            }
        }
    }
    pi_gemm_forced_ukernel = -1;
    pi_set_isa(detected);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
