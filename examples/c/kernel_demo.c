/*
 * kernel_demo.c -- call pyinfer's C kernels from C, with no Python at run time.
 *
 *   kernel_demo                   a small GEMM (bias + relu epilogue) and a softmax
 *   kernel_demo gemm M N K        C = relu(A @ B + bias) for M x K and K x N inputs
 *   kernel_demo softmax ROWS COLS softmax over each row
 *   kernel_demo bench N REPS      time an N x N x N float32 GEMM: median us per call
 *
 * Inputs are a fixed formula of the indices (exactly representable values),
 * so tests can rebuild them in NumPy and compare the printed results bit for
 * bit ("%.9g" round-trips a float).  Threads: OMP_NUM_THREADS, or
 * pi_set_num_threads().
 *
 * Build: see the Makefile (cc kernel_demo.c $(python -m pyinfer config --cflags --libs)).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pyinfer.h"

static float a_value(long long i, long long p) { return (float)((i * 7 + p * 3) % 17 - 8) / 16.0f; }
static float b_value(long long p, long long j) { return (float)((p * 5 + j * 11) % 13 - 6) / 8.0f; }
static float bias_value(long long j) { return (float)(j % 5 - 2) / 4.0f; }

/* Memory for the kernels: aligned to 64 bytes (the workspace must be). */
static void *alloc64(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

static int check(int status, const char *what)
{
    if (status != PI_OK)
        fprintf(stderr, "%s failed: %s\n", what, pi_status_string(status));
    return status;
}

/* c = relu(a @ b + bias): every buffer C-contiguous, strides in bytes. */
static int gemm_bias_relu(pi_index m, pi_index n, pi_index k, const float *a, const float *b,
                          const float *bias, float *c)
{
    const pi_index f = (pi_index)sizeof(float);
    pi_index ws_bytes = pi_gemm_workspace_bytes((int)sizeof(float), m, n, k);
    void *ws = alloc64((size_t)ws_bytes);
    int status;
    if (ws == NULL)
        return PI_ERR_WORKSPACE;
    status = pi_f32_gemm(1, m, n, k, 1.0f,
                         a, 0, k * f, f,
                         b, 0, n * f, f,
                         bias,
                         NULL, 0, 0, 0,
                         PI_ACT_RELU,
                         c, 0, n * f, f,
                         ws, ws_bytes);
    free(ws);
    return status;
}

static int demo_gemm(pi_index m, pi_index n, pi_index k)
{
    float *a = alloc64(sizeof(float) * (size_t)(m * k));
    float *b = alloc64(sizeof(float) * (size_t)(k * n));
    float *bias = alloc64(sizeof(float) * (size_t)n);
    float *c = alloc64(sizeof(float) * (size_t)(m * n));
    int status = PI_ERR_WORKSPACE;
    if (a && b && bias && c) {
        for (pi_index i = 0; i < m; i++)
            for (pi_index p = 0; p < k; p++)
                a[i * k + p] = a_value(i, p);
        for (pi_index p = 0; p < k; p++)
            for (pi_index j = 0; j < n; j++)
                b[p * n + j] = b_value(p, j);
        for (pi_index j = 0; j < n; j++)
            bias[j] = bias_value(j);
        status = check(gemm_bias_relu(m, n, k, a, b, bias, c), "pi_f32_gemm");
        if (status == PI_OK) {
            printf("gemm %lld %lld %lld\n", m, n, k);
            for (pi_index i = 0; i < m; i++)
                for (pi_index j = 0; j < n; j++)
                    printf("%.9g%c", c[i * n + j], j + 1 == n ? '\n' : ' ');
        }
    }
    free(a);
    free(b);
    free(bias);
    free(c);
    return status;
}

static int demo_softmax(pi_index rows, pi_index cols)
{
    float *x = alloc64(sizeof(float) * (size_t)(rows * cols));
    float *y = alloc64(sizeof(float) * (size_t)(rows * cols));
    int status = PI_ERR_WORKSPACE;
    if (x && y) {
        for (pi_index i = 0; i < rows * cols; i++)
            x[i] = a_value(i / cols, i % cols) * 4.0f;
        /* softmax over the middle axis of (outer, n, inner) = (rows, cols, 1) */
        status = check(pi_f32_softmax(rows, cols, 1, x, y, 0), "pi_f32_softmax");
        if (status == PI_OK) {
            printf("softmax %lld %lld\n", rows, cols);
            for (pi_index i = 0; i < rows; i++)
                for (pi_index j = 0; j < cols; j++)
                    printf("%.9g%c", y[i * cols + j], j + 1 == cols ? '\n' : ' ');
        }
    }
    free(x);
    free(y);
    return status;
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static int compare_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Median time of one plain n^3 float32 GEMM (no epilogue), workspace reused:
 * the same call pyinfer.ops.gemm(a, b, out=c, backend="c") makes. */
static int bench_gemm(pi_index n, int reps)
{
    const pi_index f = (pi_index)sizeof(float);
    pi_index ws_bytes = pi_gemm_workspace_bytes((int)sizeof(float), n, n, n);
    float *a = alloc64(sizeof(float) * (size_t)(n * n));
    float *b = alloc64(sizeof(float) * (size_t)(n * n));
    float *c = alloc64(sizeof(float) * (size_t)(n * n));
    void *ws = alloc64((size_t)ws_bytes);
    double *times = malloc(sizeof(double) * (size_t)reps);
    int status = PI_ERR_WORKSPACE;
    if (a && b && c && ws && times) {
        for (pi_index i = 0; i < n * n; i++) {
            a[i] = a_value(i / n, i % n);
            b[i] = b_value(i / n, i % n);
        }
        for (int r = -3; r < reps; r++) {  /* 3 warm-up calls */
            double t0 = now_us();
            status = pi_f32_gemm(1, n, n, n, 1.0f, a, 0, n * f, f, b, 0, n * f, f, NULL,
                                 NULL, 0, 0, 0, PI_ACT_NONE, c, 0, n * f, f, ws, ws_bytes);
            if (status != PI_OK)
                break;
            if (r >= 0)
                times[r] = now_us() - t0;
        }
        if (check(status, "pi_f32_gemm") == PI_OK) {
            qsort(times, (size_t)reps, sizeof(double), compare_double);
            printf("bench gemm %lld threads %d isa %s median_us %.3f\n", n,
                   pi_get_num_threads(), pi_isa_name(pi_isa()), times[reps / 2]);
        }
    }
    free(a);
    free(b);
    free(c);
    free(ws);
    free(times);
    return status;
}

static long long arg(int argc, char **argv, int i)
{
    long long v = i < argc ? atoll(argv[i]) : 0;
    if (v < 1) {
        fprintf(stderr, "kernel_demo: argument %d must be an integer >= 1\n", i);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    int status;
    if (argc == 1) {
        printf("pyinfer kernels: isa %s, %d threads\n", pi_isa_name(pi_isa()),
               pi_get_num_threads());
        status = demo_gemm(3, 5, 4);
        if (status == PI_OK)
            status = demo_softmax(2, 6);
    } else if (strcmp(argv[1], "gemm") == 0) {
        status = demo_gemm(arg(argc, argv, 2), arg(argc, argv, 3), arg(argc, argv, 4));
    } else if (strcmp(argv[1], "softmax") == 0) {
        status = demo_softmax(arg(argc, argv, 2), arg(argc, argv, 3));
    } else if (strcmp(argv[1], "bench") == 0) {
        status = bench_gemm(arg(argc, argv, 2), (int)arg(argc, argv, 3));
    } else {
        fprintf(stderr, "usage: kernel_demo [gemm M N K | softmax ROWS COLS | bench N REPS]\n");
        return 2;
    }
    return status == PI_OK ? 0 : 1;
}
