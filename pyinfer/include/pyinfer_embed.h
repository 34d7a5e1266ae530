#pragma once
/*
 * pyinfer_embed.h -- load an ONNX model and run it from any C host.
 *
 * libpyinfer_embed.so carries a Python interpreter (through cffi's embedding
 * API) that runs pyinfer itself: pyinfer.load(path) and pyinfer.Interpreter.
 * The host needs no Python code; it needs the Python installation pyinfer was
 * installed into.  Build the library and get the flags with
 *
 *     python -m pyinfer config --embed --cflags --libs
 *
 * This file is also handed to cffi's cdef() unchanged: plain declarations only.
 *
 * Contract
 *   - Every function but pi_last_error() returns a status: PI_OK (0) or one
 *     of PI_ERR_* below; pi_model_num_inputs/outputs return a count or -1.
 *     On failure pi_last_error() says what was wrong, naming the argument,
 *     what was expected and what was received.  Nothing is printed.
 *   - Tensors are caller-owned, C-contiguous (row-major) buffers described by
 *     pi_tensor.  pi_model_run reads the inputs and writes the outputs in
 *     place; it never keeps a pointer after it returns.  The output tensors'
 *     dtype, rank and dims must be those of the model's outputs (see
 *     pi_model_output_info); they are checked before anything is written.
 *   - A pi_model is an opaque handle (not an address): a handle that was
 *     never returned by pi_model_load, or was freed, is rejected with
 *     PI_ERR_HANDLE rather than dereferenced.
 *
 * Threads
 *   Every function may be called from any thread.  Many threads may run the
 *   same model at once: each call borrows its own arena from the model's pool
 *   (pyinfer.Interpreter is thread-safe), the Python parts of a call are
 *   serialised by the GIL and the kernels run outside it.  pi_last_error() is
 *   per thread.  Freeing a model while other threads run it is allowed: those
 *   calls finish; calls made after the free fail with PI_ERR_HANDLE.
 */

/* Status codes.  0..3 are shared with pyinfer.h (the same values). */
#define PI_OK 0
#define PI_ERR_ARG 1
#define PI_ERR_UNSUPPORTED 2
#define PI_ERR_SHAPE 32
#define PI_ERR_DTYPE 33
#define PI_ERR_MODEL 34
#define PI_ERR_HANDLE 35
#define PI_ERR_INTERNAL 36

/* Element types: the codes of ONNX's TensorProto.DataType. */
#define PI_DTYPE_FLOAT32 1
#define PI_DTYPE_UINT8 2
#define PI_DTYPE_INT8 3
#define PI_DTYPE_INT16 5
#define PI_DTYPE_INT32 6
#define PI_DTYPE_INT64 7
#define PI_DTYPE_BOOL 9
#define PI_DTYPE_FLOAT16 10
#define PI_DTYPE_FLOAT64 11

#define PI_MAX_RANK 8

/* A dense C-contiguous tensor owned by the caller.  dims[0..rank) are the
 * sizes; the buffer holds their product times the element size bytes. */
typedef struct pi_tensor {
    void *data;
    int dtype;              /* PI_DTYPE_* */
    int rank;               /* 0 <= rank <= PI_MAX_RANK */
    long long dims[8];      /* PI_MAX_RANK entries; only the first rank are read */
} pi_tensor;

typedef struct pi_model pi_model;

/* The message of the most recent failed call on this thread ("" if none).
 * Valid until the next failing call on the same thread. */
const char *pi_last_error(void);

/* A short fixed description of a status code. */
const char *pi_embed_status_string(int status);

/* Load an ONNX model and prepare it to run.  options: NULL or "" for the
 * defaults, else comma-separated key=value pairs:
 *   backend=auto|c|numba|numpy   kernel preference (default auto)
 *   threads=N                    thread budget while this model runs
 * On success *model is a new handle; on failure *model is set to NULL. */
int pi_model_load(const char *path, const char *options, pi_model **model);

/* Release the model.  pi_model_free(NULL) does nothing and returns PI_OK;
 * a second free of the same handle returns PI_ERR_HANDLE. */
int pi_model_free(pi_model *model);

/* Number of graph inputs / outputs, or -1 on error (see pi_last_error). */
int pi_model_num_inputs(const pi_model *model);
int pi_model_num_outputs(const pi_model *model);

/* Input or output `index`: its name (owned by the model, valid until
 * pi_model_free), dtype (PI_DTYPE_*), rank and dims (room for PI_MAX_RANK
 * values; a dimension the model leaves symbolic is -1).  Any of the result
 * pointers may be NULL to skip it. */
int pi_model_input_info(const pi_model *model, int index, const char **name,
                        int *dtype, int *rank, long long *dims);
int pi_model_output_info(const pi_model *model, int index, const char **name,
                         int *dtype, int *rank, long long *dims);

/* The dims output `index` will have when the model runs on these inputs
 * (only their dtype, rank and dims are read, not their data): for models
 * with symbolic dims, to size the output buffers.  Prepares (and caches) the
 * plan for those input shapes, so the first call per shape costs a plan. */
int pi_model_output_dims(pi_model *model, int n_inputs, const pi_tensor *inputs, int index,
                         int *rank, long long *dims);

/* Run the model: n_inputs tensors in input order, n_outputs caller-owned
 * output tensors in output order, filled in place.  Buffers are aligned to
 * their element size (as malloc gives) and outputs do not overlap inputs. */
int pi_model_run(pi_model *model, int n_inputs, const pi_tensor *inputs,
                 int n_outputs, pi_tensor *outputs);
