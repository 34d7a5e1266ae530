/* Standalone differential test of pi_f32_bsr_gemm (no Python).
 *
 * For every ISA this CPU runs (vector paths for 8- and 16-wide blocks, the
 * portable path for the rest), 1 and 2 threads: block shapes 1x8, 1x16, 2x8,
 * 2x16, 4x8, 4x16, 8x8, 8x16 (every unrolled block height with both widths),
 * 3x8, 1x32, 3x5; m = 1..9 and 13 (every register-tile remainder); k and n on,
 * below and above block edges and primes, k up to 64 so that a panel holds
 * more blocks than one unrolled step takes; block densities 1, 0.5, 0.05
 * and 0 (no stored block: Y = act(bias)); strided and transposed x; every
 * activation, with and without bias -- against a naive loop in double over
 * the dense matrix the blocks describe.  Y is poisoned with NaN and the
 * padding of each row (past column n) is checked untouched.
 *
 * Tolerance: as test_gemm.c, (k + 2) * eps * S * 1.2 + 16 eps (1 + |ref|),
 * S = sum |x w| + |bias| (Higham's dot-product bound with the activation's
 * slope and the vector activations' own error).
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pi_internal.h"

static int passed, failed;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double urand(void) /* [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
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

static void run_case(pi_index m, pi_index n, pi_index k, pi_index br, pi_index bc,
                     double density, int has_bias, int act, int x_trans, int x_gap)
{
    pi_index kb = (k + br - 1) / br, panels = (n + bc - 1) / bc;
    /* dense W (k x n) and its BSR form: a block is kept with probability density */
    float *w = calloc((size_t)(k * n + 1), sizeof(float));
    int *indptr = malloc((size_t)(panels + 1) * sizeof(int));
    int *indices = malloc((size_t)(kb * panels + 1) * sizeof(int));
    float *values = malloc((size_t)(kb * panels * br * bc + 1) * sizeof(float));
    int nnzb = 0;
    indptr[0] = 0;
    for (pi_index p = 0; p < panels; p++) {
        for (pi_index b = 0; b < kb; b++) {
            if (!(urand() < density))
                continue;
            indices[nnzb] = (int)b;
            float *blk = values + (pi_index)nnzb * br * bc;
            for (pi_index r = 0; r < br; r++)
                for (pi_index c = 0; c < bc; c++) {
                    pi_index i = b * br + r, j = p * bc + c;
                    float v = (i < k && j < n) ? (float)(2 * urand() - 1) : 0.0f;
                    blk[r * bc + c] = v;
                    if (i < k && j < n)
                        w[i * n + j] = v;
                }
            nnzb++;
        }
        indptr[p + 1] = nnzb;
    }
    /* x: m x k, row-major with a gap after each row, or stored transposed */
    pi_index ld = (x_trans ? m : k) + x_gap;
    float *xm = malloc((size_t)((x_trans ? k : m) * ld + 1) * sizeof(float));
    for (pi_index i = 0; i < (x_trans ? k : m) * ld; i++)
        xm[i] = (float)(2 * urand() - 1);
    pi_index x_rs = (x_trans ? 1 : ld) * 4, x_cs = (x_trans ? ld : 1) * 4;
    float *bias = malloc((size_t)(n + 1) * sizeof(float));
    for (pi_index j = 0; j < n; j++)
        bias[j] = (float)(2 * urand() - 1);
    pi_index y_ld = n + 3;
    float *y = malloc((size_t)(m * y_ld + 1) * sizeof(float));
    for (pi_index i = 0; i < m * y_ld; i++)
        y[i] = NAN;

    int st = pi_f32_bsr_gemm(m, n, k, xm, x_rs, x_cs, br, bc, indptr, indices, values,
                             has_bias ? bias : NULL, act, y, y_ld * 4);
    const double eps = 1.1920929e-07;
    int bad = st != PI_OK;
    for (pi_index i = 0; i < m && !bad; i++) {
        for (pi_index j = 0; j < n && !bad; j++) {
            double s = 0, sa = 0;
            for (pi_index p = 0; p < k; p++) {
                double xv = *(float *)((char *)xm + i * x_rs + p * x_cs);
                s += xv * w[p * n + j];
                sa += fabs(xv * w[p * n + j]);
            }
            if (has_bias) {
                s += bias[j];
                sa += fabs(bias[j]);
            }
            double ref = ref_act(s, act), got = y[i * y_ld + j];
            double tol = 1.2 * (double)(k + 2) * eps * sa + 16 * eps * (1 + fabs(ref));
            if (!(fabs(got - ref) <= tol)) {
                printf("FAIL isa=%s m=%lld n=%lld k=%lld block=%lldx%lld density=%.2f bias=%d "
                       "act=%d trans=%d: y[%lld,%lld] = %.9g, expected %.9g\n",
                       pi_isa_name(pi_isa()), m, n, k, br, bc, density, has_bias, act, x_trans,
                       i, j, got, ref);
                bad = 1;
            }
        }
        for (pi_index j = n; j < y_ld && !bad; j++)
            if (!isnan(y[i * y_ld + j])) {
                printf("FAIL m=%lld n=%lld block=%lldx%lld: wrote padding y[%lld,%lld]\n", m, n,
                       br, bc, i, j);
                bad = 1;
            }
    }
    if (st != PI_OK)
        printf("FAIL status %d\n", st);
    bad ? failed++ : passed++;
    free(w);
    free(indptr);
    free(indices);
    free(values);
    free(xm);
    free(bias);
    free(y);
}

int main(void)
{
    static const pi_index blocks[][2] = {{1, 8}, {1, 16}, {2, 8}, {2, 16}, {4, 8}, {4, 16},
                                         {8, 8}, {8, 16}, {3, 8}, {1, 32}, {3, 5}};
    static const pi_index ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13};
    static const pi_index ks[] = {1, 7, 8, 16, 17, 40, 64};
    static const pi_index ns[] = {1, 8, 15, 16, 33};
    static const double dens[] = {1.0, 0.5, 0.05, 0.0};
    int detected = pi_isa_detected();
    for (int isa = PI_ISA_PORTABLE; isa <= detected; isa++) {
        pi_set_isa(isa);
        for (int t = 1; t <= 2; t++) {
            pi_set_num_threads(t);
            int before = failed, c = 0;
            for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
                for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
                    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++, c++)
                            run_case(ms[mi], ns[ni], ks[ki], blocks[b][0], blocks[b][1],
                                     dens[c % 4], c % 3 != 0, c % 7, c % 5 == 0, c % 2);
            /* large enough to fork: threads split panels by stored blocks */
            run_case(9, 200, 100, 4, 16, 0.5, 1, PI_ACT_GELU, 0, 0);
            run_case(13, 333, 97, 1, 8, 0.3, 1, PI_ACT_RELU, 1, 1);
            run_case(5, 301, 129, 3, 5, 0.7, 0, PI_ACT_NONE, 0, 0);
            printf("isa=%s threads=%d: %s\n", pi_isa_name(isa), t,
                   failed == before ? "ok" : "FAILED");
        }
    }
    pi_set_isa(detected);
    /* bad arguments are refused */
    int z = 0;
    if (pi_f32_bsr_gemm(1, 1, 1, NULL, 4, 4, 0, 8, &z, &z, NULL, NULL, 0, NULL, 4) != PI_ERR_ARG ||
        pi_f32_bsr_gemm(1, 1, 1, NULL, 4, 4, 1, 8, &z, &z, NULL, NULL, 99, NULL, 4) != PI_ERR_ARG) {
        printf("FAIL: bad arguments accepted\n");
        failed++;
    } else {
        passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
