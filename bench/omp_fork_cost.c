/* The cost of one OpenMP parallel region on this machine, for the thread rule
 * in csrc/pi_internal.h (pi_threads_for).  Built and run by
 * bench/omp_fork_bench.py under each wait policy; prints one line per case:
 *
 *   <case> <median us> <p10 us> <p90 us>
 *
 * Cases, each 2 threads and timed from before the region to after it:
 *   empty_slept    an empty region after the caller sleeps ~1 ms (the worker
 *                  sleeps too: the first region of an online request)
 *   empty_b2b      an empty region right after the previous one (back-to-back
 *                  kernels of a plan)
 *   work_1t_<us>   <us> of arithmetic on the calling thread alone
 *   work_2t_<us>   the same arithmetic split in half over 2 threads, back-to-back
 *   start_slept    when the worker starts its half after the fork, slept case
 *   start_b2b      the same, back-to-back
 * so work_2t - work_1t/2 is the whole overhead of forking a region of that size.
 */
#define _POSIX_C_SOURCE 199309L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *v, int n)
{
    qsort(v, n, sizeof(double), cmp);
    printf("%s %.2f %.2f %.2f\n", name, v[n / 2], v[n / 10], v[n - 1 - n / 10]);
}

/* A dependent chain of multiply-adds: iters * ~1 ns, the same on any thread. */
static volatile double sink;
static double spin(long iters)
{
    double x = 1.0;
    for (long i = 0; i < iters; i++)
        x = x * 0.9999999 + 1e-9;
    return x;
}

#define N 400

int main(void)
{
    static double t[N], s[N];
    /* calibrate spin(): iterations per us, the best of 5 (a competitor may
     * share the core during any one of them) */
    double per_us = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_us();
        sink = spin(2000000);
        double rate = 2000000 / (now_us() - t0);
        if (rate > per_us)
            per_us = rate;
    }

    for (int r = 0; r < 50; r++) {
#pragma omp parallel num_threads(2)
        sink = 0;
    }
    for (int i = 0; i < N; i++) {
        nap_us(1000);
        double a = now_us(), w = 0;
#pragma omp parallel num_threads(2)
        {
            if (omp_get_thread_num() == 1)
                w = now_us();
        }
        double b = now_us();
        t[i] = b - a;
        s[i] = w - a;
    }
    report("empty_slept", t, N);
    report("start_slept", s, N);
    for (int i = 0; i < N; i++) {
        double a = now_us(), w = 0;
#pragma omp parallel num_threads(2)
        {
            if (omp_get_thread_num() == 1)
                w = now_us();
        }
        double b = now_us();
        t[i] = b - a;
        s[i] = w - a;
    }
    report("empty_b2b", t, N);
    report("start_b2b", s, N);

    static const int sizes[] = {5, 10, 20, 40, 80, 160};
    for (unsigned z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        long iters = (long)(sizes[z] * per_us);
        char name[32];
        for (int i = 0; i < N; i++) {
            double a = now_us();
            sink = spin(iters);
            t[i] = now_us() - a;
        }
        snprintf(name, sizeof name, "work_1t_%d", sizes[z]);
        report(name, t, N);
        for (int i = 0; i < N; i++) {
            double a = now_us();
#pragma omp parallel num_threads(2)
            sink = spin(iters / 2);
            t[i] = now_us() - a;
        }
        snprintf(name, sizeof name, "work_2t_%d", sizes[z]);
        report(name, t, N);
    }
    return 0;
}
