/*
 * embed_demo.c -- load an ONNX model and run it from C through libpyinfer_embed.so.
 *
 *   embed_demo MODEL.onnx                 describe the model, run it once, print the outputs
 *   embed_demo MODEL.onnx THREADS RUNS    THREADS host threads share the one model; thread t
 *                                         runs it RUNS times on its own input and checks every
 *                                         run gives the same bytes; outputs printed per thread
 *   embed_demo MODEL.onnx bench REPS      median microseconds per pi_model_run (one thread)
 *
 * Inputs must be float32; a symbolic input dimension is taken as 1 and the
 * outputs are sized by pi_model_output_dims.  Thread t's
 * input is a fixed formula of the element index and t (exactly representable
 * values), so tests can rebuild it in NumPy; "%.9g" prints floats that read
 * back bit for bit.
 *
 * Build: see the Makefile (cc embed_demo.c $(python -m pyinfer config --embed --cflags --libs)).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pyinfer_embed.h"

#define MAX_TENSORS 16

/* The tensors of one thread: buffers it owns, described for pi_model_run. */
typedef struct {
    pi_model *model;
    int thread;
    int runs;
    int n_in, n_out;
    pi_tensor in[MAX_TENSORS], out[MAX_TENSORS];
    int status;
    char error[512];
} job;

static long long element_count(const pi_tensor *t)
{
    long long n = 1;
    for (int d = 0; d < t->rank; d++)
        n *= t->dims[d];
    return n;
}

static float input_value(long long i, int thread)
{
    return (float)((i * 7 + thread * 5) % 17 - 8) / 16.0f;
}

static void fail(job *j, int status)
{
    j->status = status;
    snprintf(j->error, sizeof j->error, "%s", pi_last_error());
}

/* Describe tensor `index` and give it a buffer.  An input's symbolic dims
 * are taken as 1; an output's dims are what the model makes of the inputs
 * already set up in j (pi_model_output_dims). */
static int setup_tensor(job *j, int output, int index, pi_tensor *t, int thread)
{
    int status = output ? pi_model_output_info(j->model, index, NULL, &t->dtype, NULL, NULL)
                        : pi_model_input_info(j->model, index, NULL, &t->dtype, &t->rank, t->dims);
    if (status == PI_OK && output)
        status = pi_model_output_dims(j->model, j->n_in, j->in, index, &t->rank, t->dims);
    if (status != PI_OK)
        return status;
    if (t->dtype != PI_DTYPE_FLOAT32) {
        fprintf(stderr, "embed_demo: only float32 tensors are handled here\n");
        return PI_ERR_UNSUPPORTED;
    }
    for (int d = 0; d < t->rank; d++)
        if (t->dims[d] < 0)
            t->dims[d] = 1;  /* a symbolic input dim: pick 1 */
    t->data = calloc((size_t)(element_count(t) ? element_count(t) : 1), sizeof(float));
    if (t->data == NULL)
        return PI_ERR_INTERNAL;
    if (!output)
        for (long long i = 0; i < element_count(t); i++)
            ((float *)t->data)[i] = input_value(i, thread);
    return PI_OK;
}

static int setup_job(job *j, pi_model *model, int thread, int runs)
{
    memset(j, 0, sizeof *j);
    j->model = model;
    j->thread = thread;
    j->runs = runs;
    j->n_in = pi_model_num_inputs(model);
    j->n_out = pi_model_num_outputs(model);
    if (j->n_in < 0 || j->n_out < 0)
        return fail(j, PI_ERR_HANDLE), j->status;
    if (j->n_in > MAX_TENSORS || j->n_out > MAX_TENSORS) {
        snprintf(j->error, sizeof j->error, "more than %d inputs or outputs", MAX_TENSORS);
        return j->status = PI_ERR_UNSUPPORTED;
    }
    for (int i = 0; i < j->n_in; i++)
        if ((j->status = setup_tensor(j, 0, i, &j->in[i], thread)) != PI_OK)
            return fail(j, j->status), j->status;
    for (int i = 0; i < j->n_out; i++)
        if ((j->status = setup_tensor(j, 1, i, &j->out[i], thread)) != PI_OK)
            return fail(j, j->status), j->status;
    return PI_OK;
}

static void free_job(job *j)
{
    for (int i = 0; i < j->n_in; i++)
        free(j->in[i].data);
    for (int i = 0; i < j->n_out; i++)
        free(j->out[i].data);
}

/* Run RUNS times; every run must reproduce the first run's bytes. */
static void *run_job(void *arg)
{
    job *j = arg;
    void *first[MAX_TENSORS] = {0};
    for (int r = 0; r < j->runs && j->status == PI_OK; r++) {
        int status = pi_model_run(j->model, j->n_in, j->in, j->n_out, j->out);
        if (status != PI_OK) {
            fail(j, status);
            break;
        }
        for (int i = 0; i < j->n_out; i++) {
            size_t bytes = (size_t)element_count(&j->out[i]) * sizeof(float);
            if (r == 0) {
                first[i] = malloc(bytes ? bytes : 1);
                if (first[i])
                    memcpy(first[i], j->out[i].data, bytes);
            } else if (first[i] && memcmp(first[i], j->out[i].data, bytes) != 0) {
                j->status = PI_ERR_INTERNAL;
                snprintf(j->error, sizeof j->error, "thread %d run %d: output %d changed",
                         j->thread, r, i);
            }
        }
    }
    for (int i = 0; i < j->n_out; i++)
        free(first[i]);
    return NULL;
}

static void print_outputs(const job *j)
{
    for (int i = 0; i < j->n_out; i++) {
        const pi_tensor *t = &j->out[i];
        long long n = element_count(t), last = t->rank ? t->dims[t->rank - 1] : 1;
        const char *name = "?";
        pi_model_output_info(j->model, i, &name, NULL, NULL, NULL);
        printf("thread %d output %s", j->thread, name);
        for (int d = 0; d < t->rank; d++)
            printf(" %lld", t->dims[d]);
        printf("\n");
        for (long long e = 0; e < n; e++)
            printf("%.9g%c", ((const float *)t->data)[e], (e + 1) % last == 0 ? '\n' : ' ');
    }
}

static void describe(pi_model *model)
{
    int n_in = pi_model_num_inputs(model), n_out = pi_model_num_outputs(model);
    for (int io = 0; io < 2; io++) {
        for (int i = 0; i < (io ? n_out : n_in); i++) {
            const char *name;
            int dtype, rank;
            long long dims[PI_MAX_RANK];
            if ((io ? pi_model_output_info : pi_model_input_info)(model, i, &name, &dtype, &rank,
                                                                  dims) != PI_OK)
                continue;
            printf("%s %d: %s dtype %d dims", io ? "output" : "input", i, name, dtype);
            for (int d = 0; d < rank; d++)
                printf(" %lld", dims[d]);
            printf("\n");
        }
    }
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

static int bench(pi_model *model, int reps)
{
    job j;
    double *times = malloc(sizeof(double) * (size_t)reps);
    int status = setup_job(&j, model, 0, 1);
    for (int r = -20; status == PI_OK && times && r < reps; r++) {  /* 20 warm-up calls */
        double t0 = now_us();
        status = pi_model_run(model, j.n_in, j.in, j.n_out, j.out);
        if (r >= 0)
            times[r] = now_us() - t0;
    }
    if (status == PI_OK && times) {
        qsort(times, (size_t)reps, sizeof(double), compare_double);
        printf("bench pi_model_run median_us %.3f\n", times[reps / 2]);
    } else {
        fprintf(stderr, "embed_demo: %s\n", pi_last_error());
    }
    free_job(&j);
    free(times);
    return status;
}

int main(int argc, char **argv)
{
    pi_model *model = NULL;
    int threads = 1, runs = 1, status;
    if (argc < 2) {
        fprintf(stderr, "usage: embed_demo MODEL.onnx [THREADS RUNS | bench REPS]\n");
        return 2;
    }
    if (pi_model_load(argv[1], NULL, &model) != PI_OK) {
        fprintf(stderr, "embed_demo: %s\n", pi_last_error());
        return 1;
    }
    if (argc >= 4 && strcmp(argv[2], "bench") == 0) {
        status = bench(model, atoi(argv[3]) > 0 ? atoi(argv[3]) : 1);
        pi_model_free(model);
        return status == PI_OK ? 0 : 1;
    }
    if (argc >= 4) {
        threads = atoi(argv[2]);
        runs = atoi(argv[3]);
        if (threads < 1 || threads > 64 || runs < 1) {
            fprintf(stderr, "embed_demo: THREADS must be 1..64 and RUNS >= 1\n");
            pi_model_free(model);
            return 2;
        }
    } else {
        describe(model);
    }

    job *jobs = calloc((size_t)threads, sizeof(job));
    pthread_t *ids = calloc((size_t)threads, sizeof(pthread_t));
    status = jobs && ids ? PI_OK : PI_ERR_INTERNAL;
    int started = 0;
    for (int t = 0; t < threads && status == PI_OK; t++) {
        status = setup_job(&jobs[t], model, t, runs);
        if (status == PI_OK && pthread_create(&ids[t], NULL, run_job, &jobs[t]) == 0)
            started++;
        else if (status == PI_OK)
            status = PI_ERR_INTERNAL;
    }
    for (int t = 0; t < started; t++)
        pthread_join(ids[t], NULL);
    for (int t = 0; t < started; t++) {
        if (jobs[t].status != PI_OK) {
            fprintf(stderr, "embed_demo: thread %d: %s\n", t, jobs[t].error);
            status = jobs[t].status;
        } else {
            print_outputs(&jobs[t]);
        }
    }
    if (status != PI_OK && started == 0 && jobs)
        fprintf(stderr, "embed_demo: %s\n", jobs[0].error);
    for (int t = 0; jobs && t < threads; t++)
        free_job(&jobs[t]);
    free(jobs);
    free(ids);
    if (pi_model_free(model) != PI_OK) {
        fprintf(stderr, "embed_demo: %s\n", pi_last_error());
        return 1;
    }
    return status == PI_OK ? 0 : 1;
}
