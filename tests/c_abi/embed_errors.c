/*
 * embed_errors.c -- feed libpyinfer_embed.so every kind of bad input a C host
 * can produce and report what came back; tests/test_c_abi.py checks each line.
 *
 *   embed_errors MODEL.onnx CORRUPT.onnx MISSING.onnx
 *
 * The model is tiny.onnx (examples/c/make_model.py): x float32 (2, 4) -> y float32 (2, 3).
 * Each case prints one line:   case <name> status <int> | <pi_last_error()>
 * A case that returns a count prints the count as its status.
 * Outputs of failed runs are poisoned beforehand; "untouched" lines say
 * whether a failed run left the caller's output buffer as it was.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyinfer_embed.h"

static void report(const char *name, int status)
{
    printf("case %s status %d | %s\n", name, status, pi_last_error());
    fflush(stdout);
}

static float x_buf[8], y_buf[6];

static void tensor(pi_tensor *t, void *data, int dtype, int rank, long long d0, long long d1)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dtype;
    t->rank = rank;
    t->dims[0] = d0;
    t->dims[1] = d1;
}

static int poisoned(void)
{
    for (int i = 0; i < 6; i++)
        if (y_buf[i] != -12345.0f)
            return 0;
    return 1;
}

static void poison(void)
{
    for (int i = 0; i < 6; i++)
        y_buf[i] = -12345.0f;
}

/* Run with one changed input or output description; the output must stay poisoned. */
static void bad_run(const char *name, pi_model *m, int n_in, const pi_tensor *in, int n_out,
                    pi_tensor *out)
{
    poison();
    report(name, pi_model_run(m, n_in, in, n_out, out));
    printf("untouched %s %d\n", name, poisoned());
}

static char thread_message[512];
static int thread_status;

static void *other_thread(void *arg)
{
    thread_status = pi_model_num_inputs((const pi_model *)arg);  /* a stale handle */
    snprintf(thread_message, sizeof thread_message, "%s", pi_last_error());
    return NULL;
}

int main(int argc, char **argv)
{
    pi_model *m = NULL, *m2 = NULL;
    pi_tensor in, out, in2[2];
    long long dims[PI_MAX_RANK];
    const char *name;
    int dtype, rank;

    if (argc < 4) {
        fprintf(stderr, "usage: embed_errors MODEL CORRUPT MISSING\n");
        return 2;
    }
    for (int i = 0; i < 8; i++)
        x_buf[i] = (float)(i % 5) / 4.0f;

    /* ---- loading ---- */
    report("load_null_out", pi_model_load(argv[1], NULL, NULL));
    report("load_null_path", pi_model_load(NULL, NULL, &m));
    printf("handle_after_failed_load %d\n", m == NULL);
    report("load_missing", pi_model_load(argv[3], NULL, &m));
    report("load_corrupt", pi_model_load(argv[2], NULL, &m));
    printf("handle_after_failed_load %d\n", m == NULL);
    report("load_bad_option", pi_model_load(argv[1], "colour=blue", &m));
    report("load_bad_threads", pi_model_load(argv[1], "threads=0", &m));
    report("load_bad_syntax", pi_model_load(argv[1], "threads", &m));
    report("load_bad_backend", pi_model_load(argv[1], "backend=abacus", &m));
    report("load_ok", pi_model_load(argv[1], "backend=auto,threads=1", &m));
    report("load_ok2", pi_model_load(argv[1], "", &m2));

    /* ---- describing ---- */
    report("num_inputs_null", pi_model_num_inputs(NULL));
    report("num_inputs", pi_model_num_inputs(m));
    report("num_outputs", pi_model_num_outputs(m));
    report("input_info_null_model", pi_model_input_info(NULL, 0, &name, &dtype, &rank, dims));
    report("input_info_index_high", pi_model_input_info(m, 1, &name, &dtype, &rank, dims));
    report("input_info_index_negative", pi_model_input_info(m, -1, &name, &dtype, &rank, dims));
    report("output_info_index_high", pi_model_output_info(m, 7, &name, &dtype, &rank, dims));
    report("input_info_null_results", pi_model_input_info(m, 0, NULL, NULL, NULL, NULL));
    report("input_info", pi_model_input_info(m, 0, &name, &dtype, &rank, dims));
    printf("info %s %d %d %lld %lld\n", name, dtype, rank, dims[0], dims[1]);

    /* ---- running ---- */
    tensor(&in, x_buf, PI_DTYPE_FLOAT32, 2, 2, 4);
    tensor(&out, y_buf, PI_DTYPE_FLOAT32, 2, 2, 3);
    in2[0] = in;
    in2[1] = in;
    bad_run("run_null_model", NULL, 1, &in, 1, &out);
    bad_run("run_null_inputs", m, 1, NULL, 1, &out);
    bad_run("run_null_outputs", m, 1, &in, 1, NULL);
    bad_run("run_negative_count", m, -1, &in, 1, &out);
    bad_run("run_too_few_inputs", m, 0, &in, 1, &out);
    bad_run("run_too_many_inputs", m, 2, in2, 1, &out);
    bad_run("run_too_few_outputs", m, 1, &in, 0, &out);
    {
        pi_tensor t = in;
        t.dtype = PI_DTYPE_FLOAT64;
        bad_run("run_input_dtype", m, 1, &t, 1, &out);
        t.dtype = 99;
        bad_run("run_input_dtype_unknown", m, 1, &t, 1, &out);
        t = in;
        t.rank = 3;
        t.dims[2] = 1;
        bad_run("run_input_rank", m, 1, &t, 1, &out);
        t.rank = 99;
        bad_run("run_input_rank_huge", m, 1, &t, 1, &out);
        t = in;
        t.dims[1] = 5;
        bad_run("run_input_dims", m, 1, &t, 1, &out);
        t.dims[1] = -4;
        bad_run("run_input_negative_dim", m, 1, &t, 1, &out);
        t = in;
        t.data = NULL;
        bad_run("run_input_null_data", m, 1, &t, 1, &out);
        t.data = (char *)x_buf + 1;
        bad_run("run_input_unaligned", m, 1, &t, 1, &out);
    }
    {
        pi_tensor t = out;
        t.dims[0] = 3;
        bad_run("run_output_dims", m, 1, &in, 1, &t);
        t = out;
        t.dtype = PI_DTYPE_INT32;
        bad_run("run_output_dtype", m, 1, &in, 1, &t);
        t = out;
        t.data = NULL;
        bad_run("run_output_null_data", m, 1, &in, 1, &t);
    }
    report("output_dims_null_rank", pi_model_output_dims(m, 1, &in, 0, NULL, dims));
    report("output_dims_null_inputs", pi_model_output_dims(m, 1, NULL, 0, &rank, dims));
    report("output_dims_wrong_count", pi_model_output_dims(m, 2, in2, 0, &rank, dims));
    report("output_dims_index_high", pi_model_output_dims(m, 1, &in, 1, &rank, dims));
    {
        pi_tensor t = in;
        t.dims[0] = 3;
        report("output_dims_input_dims", pi_model_output_dims(m, 1, &t, 0, &rank, dims));
    }
    report("output_dims", pi_model_output_dims(m, 1, &in, 0, &rank, dims));
    printf("output_dims %d %lld %lld\n", rank, dims[0], dims[1]);
    bad_run("run_fake_handle", (pi_model *)(uintptr_t)0xdeadbeef0, 1, &in, 1, &out);

    /* a good run after all of that */
    poison();
    report("run_ok", pi_model_run(m, 1, &in, 1, &out));
    printf("output");
    for (int i = 0; i < 6; i++)
        printf(" %.9g", y_buf[i]);
    printf("\n");

    /* ---- freeing ---- */
    report("free_null", pi_model_free(NULL));
    report("free", pi_model_free(m));
    bad_run("run_after_free", m, 1, &in, 1, &out);
    report("num_inputs_after_free", pi_model_num_inputs(m));
    report("input_info_after_free", pi_model_input_info(m, 0, &name, &dtype, &rank, dims));
    report("free_twice", pi_model_free(m));

    /* pi_last_error is per thread: another thread's failure leaves ours alone. */
    report("main_thread_error", pi_model_input_info(m2, 5, &name, &dtype, &rank, dims));
    {
        pthread_t id;
        if (pthread_create(&id, NULL, other_thread, m) == 0 && pthread_join(id, NULL) == 0)
            printf("case other_thread status %d | %s\n", thread_status, thread_message);
    }
    report("main_thread_error_again", PI_ERR_ARG);

    /* the second model is unaffected by the first one's free */
    poison();
    report("run_second_model", pi_model_run(m2, 1, &in, 1, &out));
    report("free_second_model", pi_model_free(m2));
    return 0;
}
