#pragma once
/*
 * pyinfer.h -- the public C interface of pyinfer's kernels.
 *
 * This file is read unchanged by cffi's cdef(), so it holds no #include and no
 * conditional directives: only integer #defines, typedefs and prototypes.
 *
 * Contract shared by every entry point (STYLE.md 7):
 *   - sizes are element counts, strides are in BYTES (pi_index, signed 64-bit,
 *     so negative and zero strides are allowed where stated);
 *   - the return value is a status: PI_OK or one of PI_ERR_*;
 *   - no entry point allocates heap memory, keeps state between calls or checks
 *     what the Python layer has already validated (debug builds assert);
 *   - buffers are aligned to their element size.
 * Threads: kernels run on OpenMP with up to pi_get_num_threads() threads, as
 * many as a call's work pays for (pi_set_fork_ns).
 */

typedef long long pi_index;

#define PI_OK 0
#define PI_ERR_ARG 1
#define PI_ERR_UNSUPPORTED 2
#define PI_ERR_WORKSPACE 3

/* Instruction-set paths, best last. */
#define PI_ISA_PORTABLE 0
#define PI_ISA_AVX2 1
#define PI_ISA_AVX512 2

/* Activations: GEMM epilogues and the unary ops share these codes. */
#define PI_ACT_NONE 0
#define PI_ACT_RELU 1
#define PI_ACT_GELU 2
#define PI_ACT_GELU_TANH 3
#define PI_ACT_SILU 4
#define PI_ACT_SIGMOID 5
#define PI_ACT_TANH 6

/* Unary elementwise ops (activations above keep their codes). */
#define PI_UNARY_EXP 16
#define PI_UNARY_LOG 17
#define PI_UNARY_SQRT 18
#define PI_UNARY_RSQRT 19
#define PI_UNARY_ABS 20
#define PI_UNARY_NEG 21
#define PI_UNARY_ERF 22

/* Binary elementwise ops. */
#define PI_BINARY_ADD 0
#define PI_BINARY_SUB 1
#define PI_BINARY_MUL 2
#define PI_BINARY_DIV 3
#define PI_BINARY_POW 4
#define PI_BINARY_MAX 5
#define PI_BINARY_MIN 6

/* ---- runtime: status, ISA dispatch, threads ------------------------------ */

const char *pi_status_string(int status);
/* The ISA the kernels run on now: one of PI_ISA_*. */
int pi_isa(void);
/* The best ISA this CPU supports (what pi_isa() is at load). */
int pi_isa_detected(void);
const char *pi_isa_name(int isa);
/* Force a lower ISA (tests use it to reach every micro-kernel on one machine).
   Returns PI_ERR_UNSUPPORTED if the CPU lacks it. Not thread-safe: call while
   no kernel runs. */
int pi_set_isa(int isa);
void pi_set_num_threads(int n);
int pi_get_num_threads(void);
/* The cost of waking a sleeping thread, in ns, that a kernel weighs its work
   against: a call gets t threads when its estimated single-thread time is at
   least t times this (default 25000, a 2-core VM; PYINFER_FORK_US at load).
   0: every call uses every thread.  Not thread-safe: call while no kernel runs. */
void pi_set_fork_ns(double ns);
double pi_get_fork_ns(void);

/* ---- GEMM ---------------------------------------------------------------
 * For each batch index t < batch:
 *   C[t] = act(alpha * A[t] @ B[t] + bias + R[t])
 * A[t] is m x k, B[t] is k x n, C[t] and R[t] are m x n. Element (i, j) of X[t]
 * lives at  (char *)x + t*x_bs + i*x_rs + j*x_cs.  Any strides (transposes are
 * just swapped strides); zero strides are allowed for A, B, R (broadcast) but
 * not for C, and C must not overlap A, B or R.  bias: n contiguous values or
 * NULL; r: NULL for no residual.  ws: workspace of at least
 * pi_gemm_workspace_bytes(...) bytes, aligned to 64 bytes.
 */
pi_index pi_gemm_workspace_bytes(int elem_size, pi_index m, pi_index n, pi_index k);
/* The GEMM micro-kernel list (csrc/pi_gemm_ukernels.h), for tests and tools:
 * entry `index` (0 <= index < count; PI_ERR_ARG past the end): its element
 * size, PI_ISA_* level, register tile MR x NR, cache blocking KC, MC, NC and
 * name.  For each (elem_size, isa) the first entry is the one GEMM uses. */
int pi_gemm_ukernel_info(int index, int *elem_size, int *isa, int *mr, int *nr,
                         int *kc, int *mc, int *nc, const char **name);

int pi_f32_gemm(pi_index batch, pi_index m, pi_index n, pi_index k, float alpha,
                const float *a, pi_index a_bs, pi_index a_rs, pi_index a_cs,
                const float *b, pi_index b_bs, pi_index b_rs, pi_index b_cs,
                const float *bias,
                const float *r, pi_index r_bs, pi_index r_rs, pi_index r_cs,
                int activation,
                float *c, pi_index c_bs, pi_index c_rs, pi_index c_cs,
                void *ws, pi_index ws_bytes);

int pi_f64_gemm(pi_index batch, pi_index m, pi_index n, pi_index k, double alpha,
                const double *a, pi_index a_bs, pi_index a_rs, pi_index a_cs,
                const double *b, pi_index b_bs, pi_index b_rs, pi_index b_cs,
                const double *bias,
                const double *r, pi_index r_bs, pi_index r_rs, pi_index r_cs,
                int activation,
                double *c, pi_index c_bs, pi_index c_rs, pi_index c_cs,
                void *ws, pi_index ws_bytes);

/* Pre-packed B (weights that stay fixed across calls): pack once, then each
 * call packs only A and its threads share nothing (no barrier).
 * pi_<dtype>_gemm_pack_b lays B (k x n, any byte strides) out for the
 * micro-kernel that suits calls of about m rows (the shape is recorded in
 * the packed buffer, of pi_gemm_packed_b_bytes(elem_size, m, k, n) bytes,
 * 64-byte aligned).  pi_<dtype>_gemm_packed computes, for any m,
 *   C = act(alpha * A @ B + bias + R)
 * with A m x k, C and R m x n (byte strides; R may be broadcast, NULL for
 * none), bias n contiguous values or NULL, and a workspace of
 * pi_gemm_packed_workspace_bytes(packed_b, m) bytes (64-byte aligned).  It
 * returns PI_ERR_UNSUPPORTED for a B packed on an ISA not in force now
 * (repack it).  pi_gemm_packed_b_ukernel: the micro-kernel list index the
 * packing is for, -1 if the buffer is not a packed B. */
pi_index pi_gemm_packed_b_bytes(int elem_size, pi_index m, pi_index k, pi_index n);
int pi_gemm_packed_b_ukernel(const void *packed_b);
pi_index pi_gemm_packed_workspace_bytes(const void *packed_b, pi_index m);
int pi_f32_gemm_pack_b(pi_index m, pi_index k, pi_index n, const float *b,
                       pi_index b_rs, pi_index b_cs, void *packed, pi_index packed_bytes);
int pi_f64_gemm_pack_b(pi_index m, pi_index k, pi_index n, const double *b,
                       pi_index b_rs, pi_index b_cs, void *packed, pi_index packed_bytes);
int pi_f32_gemm_packed(pi_index m, float alpha, const float *a, pi_index a_rs, pi_index a_cs,
                       const void *packed_b, const float *bias,
                       const float *r, pi_index r_rs, pi_index r_cs, int activation,
                       float *c, pi_index c_rs, pi_index c_cs, void *ws, pi_index ws_bytes);
int pi_f64_gemm_packed(pi_index m, double alpha, const double *a, pi_index a_rs, pi_index a_cs,
                       const void *packed_b, const double *bias,
                       const double *r, pi_index r_rs, pi_index r_cs, int activation,
                       double *c, pi_index c_rs, pi_index c_cs, void *ws, pi_index ws_bytes);

/* ---- softmax over the middle axis of an (outer, n, inner) C-contiguous
 * array; log != 0 gives log_softmax.  y may equal x (in place). ----------- */
int pi_f32_softmax(pi_index outer, pi_index n, pi_index inner,
                   const float *x, float *y, int log);
int pi_f64_softmax(pi_index outer, pi_index n, pi_index inner,
                   const double *x, double *y, int log);

/* ---- attention (csrc/pi_attention.c) ---------------------------------------
 * For every (b, h) < (nb, nh):  out = softmax(q k^T * scale + mask) v, the
 * softmax over the sk keys, with q sq x d, k sk x d, v sk x dv, mask sq x sk
 * (additive; NULL for none) and out sq x dv.  Element (i, j) of X at (b, h) is
 * at (char *)x + b*s[0] + h*s[1] + i*s[2] + j*s[3], s = x_strides: any byte
 * strides that are whole elements, zero (broadcast) allowed except for out;
 * out must not overlap an input.  sk >= 1.  A row whose scores are all -inf
 * comes out NaN, as in the formula exp(s - max) / sum.  ws: workspace of at
 * least pi_attention_workspace_bytes(sizeof(T), sq, sk, d, dv, threads)
 * bytes, 64-byte aligned; the kernel uses at most as many threads as it has
 * room for (PI_ERR_WORKSPACE below one). */
pi_index pi_attention_workspace_bytes(int elem_size, pi_index sq, pi_index sk, pi_index d,
                                      pi_index dv, int threads);
int pi_f32_attention(pi_index nb, pi_index nh, pi_index sq, pi_index sk, pi_index d,
                     pi_index dv, float scale,
                     const float *q, const pi_index *q_strides,
                     const float *k, const pi_index *k_strides,
                     const float *v, const pi_index *v_strides,
                     const float *mask, const pi_index *mask_strides,
                     float *out, const pi_index *out_strides, void *ws, pi_index ws_bytes);
int pi_f64_attention(pi_index nb, pi_index nh, pi_index sq, pi_index sk, pi_index d,
                     pi_index dv, double scale,
                     const double *q, const pi_index *q_strides,
                     const double *k, const pi_index *k_strides,
                     const double *v, const pi_index *v_strides,
                     const double *mask, const pi_index *mask_strides,
                     double *out, const pi_index *out_strides, void *ws, pi_index ws_bytes);

/* ---- normalisation over the last `cols` elements of each of `rows` rows:
 * row i starts at (char *)x + i*x_rs and its cols values are contiguous.
 * layer_norm: y = (x - mean) / sqrt(var + eps) * w + b   (w, b: cols values or NULL)
 * rms_norm:   y = x / sqrt(mean(x*x) + eps) * w           (w: cols values or NULL)
 * y may equal x. ------------------------------------------------------- */
int pi_f32_layer_norm(pi_index rows, pi_index cols, const float *x, pi_index x_rs,
                      const float *w, const float *b, float eps,
                      float *y, pi_index y_rs);
int pi_f64_layer_norm(pi_index rows, pi_index cols, const double *x, pi_index x_rs,
                      const double *w, const double *b, double eps,
                      double *y, pi_index y_rs);
int pi_f32_rms_norm(pi_index rows, pi_index cols, const float *x, pi_index x_rs,
                    const float *w, float eps, float *y, pi_index y_rs);
int pi_f64_rms_norm(pi_index rows, pi_index cols, const double *x, pi_index x_rs,
                    const double *w, double eps, double *y, pi_index y_rs);

/* ---- elementwise ---------------------------------------------------------
 * unary: y[i] = op(x[i]) over n contiguous values; y may equal x.
 * binary: a 2-D view (outer, inner) of each operand; element (i, j) of a is at
 *   (char *)a + i*a_os + j*a_is, with a_is either 0 (broadcast) or the element
 *   size; same for b; y is C-contiguous (outer*inner values) and may equal a
 *   or b when that operand is not broadcast. */
int pi_f32_unary(int op, pi_index n, const float *x, float *y);
int pi_f64_unary(int op, pi_index n, const double *x, double *y);
int pi_f32_binary(int op, pi_index outer, pi_index inner,
                  const float *a, pi_index a_os, pi_index a_is,
                  const float *b, pi_index b_os, pi_index b_is, float *y);
int pi_f64_binary(int op, pi_index outer, pi_index inner,
                  const double *a, pi_index a_os, pi_index a_is,
                  const double *b, pi_index b_os, pi_index b_is, double *y);

/* ---- convolution (csrc/pi_conv*.c) ---------------------------------------
 * 2-D convolution over NCHW planes, y = act(conv(x, w) + bias + r), with the
 * geometry in one struct: input n x c x h x w, k output channels of oh x ow,
 * a kh x kw kernel, strides sh, sw, dilations dh, dw, leading pads pad_t,
 * pad_l (the trailing ones follow from oh, ow), c and k divisible by groups.
 * x may have any (aligned) byte strides x_ns, x_cs, x_hs, x_ws; y and r (NULL:
 * none) are C-contiguous n x k x oh x ow and never overlap x.  act is a
 * PI_ACT_* code; clip != 0 then clamps the activated value to [clip_lo,
 * clip_hi] (ReLU6: PI_ACT_NONE, 0, 6).  ws: workspace of at least the matching *_workspace_bytes,
 * computed with the thread count of the call.
 *
 * Implicit GEMM (any groups): weights packed once by *_conv2d_pack_weights
 * (w: C-contiguous k x c/groups x kh x kw; bias NULL, or packed in as a column
 * against a row of ones when with_bias) into pi_conv2d_packed_weights_size
 * values for the register tile height mr = pi_conv2d_gemm_mr(elem_size) of the
 * current ISA; *_conv2d_gemm returns PI_ERR_ARG if the ISA's mr differs.
 * Depthwise: groups == c == k, w C-contiguous c x kh x kw, bias c values or NULL. */
typedef struct {
    pi_index n, c, h, w;
    pi_index k, oh, ow;
    pi_index kh, kw, sh, sw, dh, dw;
    pi_index pad_t, pad_l;
    pi_index groups;
} pi_conv2d_shape;

int pi_conv2d_gemm_mr(int elem_size);
pi_index pi_conv2d_packed_weights_size(const pi_conv2d_shape *s, int mr, int with_bias);
pi_index pi_conv2d_gemm_workspace_bytes(int elem_size, const pi_conv2d_shape *s, int with_bias);
pi_index pi_conv2d_depthwise_workspace_bytes(int elem_size, const pi_conv2d_shape *s);
int pi_f32_conv2d_pack_weights(const pi_conv2d_shape *s, int mr, const float *w,
                               const float *bias, float *wp);
int pi_f64_conv2d_pack_weights(const pi_conv2d_shape *s, int mr, const double *w,
                               const double *bias, double *wp);
int pi_f32_conv2d_gemm(const pi_conv2d_shape *s, int mr, const float *x, pi_index x_ns,
                       pi_index x_cs, pi_index x_hs, pi_index x_ws, const float *wp,
                       int packed_bias, const float *r, int act, int clip, float clip_lo,
                       float clip_hi, float *y, void *ws, pi_index ws_bytes);
int pi_f64_conv2d_gemm(const pi_conv2d_shape *s, int mr, const double *x, pi_index x_ns,
                       pi_index x_cs, pi_index x_hs, pi_index x_ws, const double *wp,
                       int packed_bias, const double *r, int act, int clip, double clip_lo,
                       double clip_hi, double *y, void *ws, pi_index ws_bytes);
int pi_f32_conv2d_depthwise(const pi_conv2d_shape *s, const float *x, pi_index x_ns,
                            pi_index x_cs, pi_index x_hs, pi_index x_ws, const float *w,
                            const float *bias, const float *r, int act, int clip,
                            float clip_lo, float clip_hi, float *y, void *ws,
                            pi_index ws_bytes);
int pi_f64_conv2d_depthwise(const pi_conv2d_shape *s, const double *x, pi_index x_ns,
                            pi_index x_cs, pi_index x_hs, pi_index x_ws, const double *w,
                            const double *bias, const double *r, int act, int clip,
                            double clip_lo, double clip_hi, double *y, void *ws,
                            pi_index ws_bytes);
/* Direct conv in NCHWc (8-channel blocks; csrc/pi_conv_nchwc.c), float32, groups 1,
 * AVX2 (PI_ERR_UNSUPPORTED below it): x (n, ceil(c/8), h, w, 8), y and r (NULL:
 * none) (n, ceil(k/8), oh, ow, 8), all C-contiguous; wp of
 * pi_conv2d_nchwc_packed_size values from pi_f32_conv2d_nchwc_pack (w as for the
 * implicit GEMM); bias (never NULL) ceil(k/8)*8 values, zero past k.  Channels past c must be
 * zero in x; those past k come out as act(0) clipped. */
pi_index pi_conv2d_nchwc_packed_size(const pi_conv2d_shape *s);
int pi_f32_conv2d_nchwc_pack(const pi_conv2d_shape *s, const float *w, float *wp);
int pi_f32_conv2d_nchwc(const pi_conv2d_shape *s, const float *x, const float *wp,
                        const float *bias, const float *r, int act, int clip, float clip_lo,
                        float clip_hi, float *y);

/* ---- Winograd 3x3 convolution (csrc/pi_winograd.c) ----------------------- */
/* y = clip(act(conv3x3(x, w) + bias + r)) for NCHW float32 x (n, c, h, w),
 * stride 1, dilation 1, zero padding pad_top/pad_left (bottom/right padding
 * is implied by ho, wo: ho <= h + pad_top, wo <= w + pad_left), output y and
 * residual r (n, k, ho, wo), all C-contiguous.  tile: 2 for F(2x2,3x3) or 4
 * for F(4x4,3x3).  wt: the transformed weights packed by
 * pyinfer/backends/winograd.py, (tile+2)^2 slices of k*c floats, each in
 * panels of PI_WINOGRAD_MR output channels (see csrc/pi_winograd.c).
 * bias: k floats or NULL; r: NULL for no residual (r may equal y);
 * activation: PI_ACT_*; clip != 0 then clamps to [clip_lo, clip_hi] (NaN
 * passes).  ws: pi_winograd_workspace_bytes(...) bytes (for the current
 * thread count), aligned to 64 bytes; y must not overlap x. */
#define PI_WINOGRAD_MR 6
pi_index pi_winograd_workspace_bytes(int tile, pi_index n, pi_index c, pi_index k,
                                     pi_index ho, pi_index wo);
int pi_f32_winograd_conv3x3(int tile, pi_index n, pi_index c, pi_index h, pi_index w,
                            pi_index k, pi_index pad_top, pi_index pad_left,
                            pi_index ho, pi_index wo, const float *x, const float *wt,
                            const float *bias, const float *r, int activation,
                            int clip, float clip_lo, float clip_hi, float *y,
                            void *ws, pi_index ws_bytes);

/* ---- pooling, batch norm, pad, resize (csrc/pi_pool.c) ------------------- */
/* 2-d pooling over the planes of an NCHW array: plane p = (i, j) of x starts at
 * (char *)x + i*x_ns + j*x_cs and holds h rows x_hs bytes apart, each of w
 * contiguous values; y likewise (oh x ow).  Window (r, o) covers rows
 * r*sh - pad_top + a*dh (a < kh) and columns o*sw - pad_left + b*dw (b < kw);
 * taps outside the input are skipped.  max: a window with no input element
 * gives -inf; NaN propagates.  avg (no dilation: dh = dw = 1): the divisor counts the taps
 * inside [-pad_top, h+pad_bottom) x [-pad_left, w+pad_right) when
 * count_include_pad, else inside the input.  ws: a workspace of at least
 * pi_pool2d_workspace_bytes(sizeof(T), w, ow, kw, sw, dw, pad_left, pad_right,
 * threads) bytes; the kernel uses at most as many threads as it has slots for. */
pi_index pi_pool2d_workspace_bytes(int elem_size, pi_index w, pi_index ow, pi_index kw,
                                   pi_index sw, pi_index dw, pi_index pad_left,
                                   pi_index pad_right, int threads);
int pi_f32_max_pool2d(pi_index n, pi_index c, pi_index h, pi_index w, const float *x,
                      pi_index x_ns, pi_index x_cs, pi_index x_hs, pi_index kh, pi_index kw,
                      pi_index sh, pi_index sw, pi_index dh, pi_index dw, pi_index pad_top,
                      pi_index pad_left, pi_index pad_bottom, pi_index pad_right,
                      pi_index oh, pi_index ow, float *y, pi_index y_ns,
                      pi_index y_cs, pi_index y_hs, void *ws, pi_index ws_bytes);
int pi_f64_max_pool2d(pi_index n, pi_index c, pi_index h, pi_index w, const double *x,
                      pi_index x_ns, pi_index x_cs, pi_index x_hs, pi_index kh, pi_index kw,
                      pi_index sh, pi_index sw, pi_index dh, pi_index dw, pi_index pad_top,
                      pi_index pad_left, pi_index pad_bottom, pi_index pad_right,
                      pi_index oh, pi_index ow, double *y, pi_index y_ns,
                      pi_index y_cs, pi_index y_hs, void *ws, pi_index ws_bytes);
int pi_f32_avg_pool2d(pi_index n, pi_index c, pi_index h, pi_index w, const float *x,
                      pi_index x_ns, pi_index x_cs, pi_index x_hs, pi_index kh, pi_index kw,
                      pi_index sh, pi_index sw, pi_index pad_top,
                      pi_index pad_left, pi_index pad_bottom, pi_index pad_right,
                      int count_include_pad, pi_index oh, pi_index ow, float *y, pi_index y_ns,
                      pi_index y_cs, pi_index y_hs, void *ws, pi_index ws_bytes);
int pi_f64_avg_pool2d(pi_index n, pi_index c, pi_index h, pi_index w, const double *x,
                      pi_index x_ns, pi_index x_cs, pi_index x_hs, pi_index kh, pi_index kw,
                      pi_index sh, pi_index sw, pi_index pad_top,
                      pi_index pad_left, pi_index pad_bottom, pi_index pad_right,
                      int count_include_pad, pi_index oh, pi_index ow, double *y, pi_index y_ns,
                      pi_index y_cs, pi_index y_hs, void *ws, pi_index ws_bytes);
/* Global pooling: y[i, j] = mean (or max, NaN propagating) of the hw
 * contiguous values of plane (i, j); planes addressed as above. */
int pi_f32_global_avg_pool(pi_index n, pi_index c, pi_index hw, const float *x, pi_index x_ns,
                           pi_index x_cs, float *y, pi_index y_ns, pi_index y_cs);
int pi_f64_global_avg_pool(pi_index n, pi_index c, pi_index hw, const double *x, pi_index x_ns,
                           pi_index x_cs, double *y, pi_index y_ns, pi_index y_cs);
int pi_f32_global_max_pool(pi_index n, pi_index c, pi_index hw, const float *x, pi_index x_ns,
                           pi_index x_cs, float *y, pi_index y_ns, pi_index y_cs);
int pi_f64_global_max_pool(pi_index n, pi_index c, pi_index hw, const double *x, pi_index x_ns,
                           pi_index x_cs, double *y, pi_index y_ns, pi_index y_cs);
/* Batch norm with folded parameters: y = x * scale[j] + shift[j] over the
 * `inner` contiguous values of plane (i, j); y may equal x. */
int pi_f32_channel_affine(pi_index n, pi_index c, pi_index inner, const float *x, pi_index x_ns,
                          pi_index x_cs, const float *scale, const float *shift, float *y,
                          pi_index y_ns, pi_index y_cs);
int pi_f64_channel_affine(pi_index n, pi_index c, pi_index inner, const double *x, pi_index x_ns,
                          pi_index x_cs, const double *scale, const double *shift, double *y,
                          pi_index y_ns, pi_index y_cs);
/* Resize of the last two axes by source tables (rows ih[oh], columns iw[ow],
 * all in range): nearest y[r][o] = x[ih[r]][iw[o]]; linear blends rows h0/h1
 * with weight lh[r] on h1 and columns w0/w1 with weight lw[o] on w1. */
int pi_f32_resize_nearest(pi_index n, pi_index c, const float *x, pi_index x_ns, pi_index x_cs,
                          pi_index x_hs, pi_index oh, pi_index ow, const pi_index *ih,
                          const pi_index *iw, float *y, pi_index y_ns, pi_index y_cs,
                          pi_index y_hs);
int pi_f64_resize_nearest(pi_index n, pi_index c, const double *x, pi_index x_ns, pi_index x_cs,
                          pi_index x_hs, pi_index oh, pi_index ow, const pi_index *ih,
                          const pi_index *iw, double *y, pi_index y_ns, pi_index y_cs,
                          pi_index y_hs);
int pi_f32_resize_linear(pi_index n, pi_index c, const float *x, pi_index x_ns, pi_index x_cs,
                         pi_index x_hs, pi_index oh, pi_index ow, const pi_index *h0,
                         const pi_index *h1, const float *lh, const pi_index *w0,
                         const pi_index *w1, const float *lw, float *y, pi_index y_ns,
                         pi_index y_cs, pi_index y_hs);
int pi_f64_resize_linear(pi_index n, pi_index c, const double *x, pi_index x_ns, pi_index x_cs,
                         pi_index x_hs, pi_index oh, pi_index ow, const pi_index *h0,
                         const pi_index *h1, const double *lh, const pi_index *w0,
                         const pi_index *w1, const double *lw, double *y, pi_index y_ns,
                         pi_index y_cs, pi_index y_hs);

/* ---- int8 GEMM, quantize / dequantize (csrc/pi_qgemm*.c) ----------------- */
/* C = epilogue((A - a_zero) @ (B - b_zero)) with A u8 (m x k, any byte
 * strides), B s8 (k x n) packed once by pi_u8s8_pack_b (per-column b_zero),
 * s32 accumulation (exact for k <= 32768).  Epilogue, per output kind:
 *   PI_QOUT_S32: C (int)   = acc
 *   PI_QOUT_F32: C (float) = act(float(acc) * scale[j] + bias[j])
 *   PI_QOUT_U8:  C (u8)    = saturate(rint(f / out_scale) + out_zero), f the F32 value
 * scale: n floats (a_scale * b_scale[j]), bias: n floats or NULL.  C's element
 * (i, j) is at (char *)c + i*c_rs + j*c_cs and must not overlap A or B.
 * ukernel: an index into the micro-kernel list, or -1 for the best on the
 * current ISA for these weights (7-bit weights get a faster AVX2 kernel); the
 * choice is recorded in the packed B, and pi_u8s8_gemm returns
 * PI_ERR_UNSUPPORTED for one packed on an ISA not available now. */
#define PI_QOUT_S32 0
#define PI_QOUT_F32 1
#define PI_QOUT_U8 2
int pi_u8s8_gemm_ukernel_info(int index, int *isa, int *mr, int *nr, int *ku, int *es,
                              const char **name);
/* 1 if this CPU runs micro-kernel `index` at the current ISA setting, else 0. */
int pi_u8s8_gemm_ukernel_runs(int index);
/* Weight bits micro-kernel `index` is exact for: 8 (any s8 weight) or 7 (only
 * weights with every |b - b_zero| <= 64; pi_u8s8_pack_b refuses others). */
int pi_u8s8_gemm_ukernel_weight_bits(int index);
/* 7 if every |b[p][j] - b_zero[j]| <= 64 (b_zero NULL: 0), else 8. */
int pi_u8s8_weight_bits(pi_index k, pi_index n, const signed char *b, pi_index b_rs,
                        pi_index b_cs, const int *b_zero);
/* The micro-kernel pi_u8s8_pack_b picks for these weights with ukernel -1:
 * the best on the current ISA that is exact for them (-1 if none). */
int pi_u8s8_gemm_ukernel_for(pi_index k, pi_index n, const signed char *b, pi_index b_rs,
                             pi_index b_cs, const int *b_zero);
/* Bytes of a packed B for micro-kernel `ukernel`; with -1, enough for any
 * kernel pi_u8s8_pack_b(-1, ...) may pick (0 for bad arguments). */
pi_index pi_u8s8_packed_b_bytes(int ukernel, pi_index k, pi_index n);
int pi_u8s8_pack_b(int ukernel, pi_index k, pi_index n,
                   const signed char *b, pi_index b_rs, pi_index b_cs, const int *b_zero,
                   void *packed, pi_index packed_bytes);
/* The list index recorded in a packed B (or -1 if it is not one). */
int pi_u8s8_packed_b_ukernel(const void *packed);
pi_index pi_u8s8_gemm_workspace_bytes(const void *packed_b, pi_index m);
int pi_u8s8_gemm(pi_index m, pi_index n, pi_index k,
                 const unsigned char *a, pi_index a_rs, pi_index a_cs, int a_zero,
                 const void *packed_b,
                 int out_kind, const float *scale, const float *bias, int activation,
                 float out_scale, int out_zero,
                 void *c, pi_index c_rs, pi_index c_cs,
                 void *ws, pi_index ws_bytes);
/* Quantize (ONNX QuantizeLinear) a C-contiguous (outer, channels, inner) float
 * array: y = saturate(rint(x / scale[c]) + zero[c]) to u8 (is_signed 0) or s8;
 * zero NULL means 0.  Per-tensor is channels == 1. */
int pi_f32_quantize(pi_index outer, pi_index channels, pi_index inner, const float *x,
                    const float *scale, const int *zero, int is_signed, void *y);
/* Dequantize (ONNX DequantizeLinear): y = float(x - zero[c]) * scale[c] for a
 * C-contiguous (outer, channels, inner) array of u8 (kind 0), s8 (1) or s32 (2). */
int pi_dequantize_f32(int kind, pi_index outer, pi_index channels, pi_index inner,
                      const void *x, const float *scale, const int *zero, float *y);
/* Minimum and maximum of n contiguous floats (n >= 1; NaN is ignored unless
 * all are NaN). */
int pi_f32_minmax(pi_index n, const float *x, float *lo, float *hi);
/* pi_u8s8_gemm with a float A (m x k, row stride x_rs bytes, columns
 * contiguous) quantized to u8 on the way into the packed panels, per tensor:
 * with x_scale > 0 by (x_scale, x_zero in [0, 255]) (QuantizeLinear), else by
 * the scale and zero point DynamicQuantizeLinear computes from A's range (NaN
 * ignored).  The epilogue's scale is x_scale * w_scale[j] (float32; w_scale:
 * n floats, NULL for PI_QOUT_S32).  x_params (or NULL) receives the scale and
 * zero point used.  Workspace: pi_f32u8s8_gemm_workspace_bytes. */
pi_index pi_f32u8s8_gemm_workspace_bytes(const void *packed_b, pi_index m);
int pi_f32u8s8_gemm(pi_index m, pi_index n, pi_index k,
                    const float *x, pi_index x_rs, float x_scale, int x_zero,
                    const void *packed_b,
                    int out_kind, const float *w_scale, const float *bias, int activation,
                    float out_scale, int out_zero,
                    void *c, pi_index c_rs, pi_index c_cs, float *x_params,
                    void *ws, pi_index ws_bytes);
/* pi_f32u8s8_gemm with A quantized per row (per token), each row i by the
 * scale s[i] and zero point z[i] DynamicQuantizeLinear computes from that
 * row's range alone (widened to hold 0, NaN ignored; a zero range gives
 * scale 1).  Epilogue as pi_u8s8_gemm's with, for row i, a_zero = z[i] and
 * scale float32(s[i] * w_scale[j]) (that product rounded once, then times
 * the float of the corrected accumulator); PI_QOUT_U8 requantizes that float
 * with out_scale, out_zero as ever; PI_QOUT_S32 is the accumulator
 * corrected with z[i] (w_scale may be NULL).  row_scale, row_zero (both or
 * neither): m values each receive s and z.  Workspace:
 * pi_f32u8s8_gemm_workspace_bytes. */
int pi_f32u8s8_gemm_rows(pi_index m, pi_index n, pi_index k,
                         const float *x, pi_index x_rs, const void *packed_b,
                         int out_kind, const float *w_scale, const float *bias, int activation,
                         float out_scale, int out_zero,
                         void *c, pi_index c_rs, pi_index c_cs,
                         float *row_scale, int *row_zero, void *ws, pi_index ws_bytes);
/* Int8 convolution (csrc/pi_qconv.c): y = epilogue(conv(x - x_zero, w - w_zero)),
 * NCHW u8 x (any byte strides x_ns, x_cs, x_hs, x_ws), s32 accumulation (exact
 * for c/groups*kh*kw <= 32768), the epilogue and out_kind of pi_u8s8_gemm per
 * output channel (scale: k floats, bias: k floats or NULL), y of any byte
 * strides y_ns, y_cs, y_hs, y_ws, not overlapping x.  Trailing pads follow from
 * oh, ow.  ws: at least the matching *_workspace_bytes, computed with the
 * thread count of the call.
 * Depthwise-like (groups == c, k a multiple of c): weights w (k x kh x kw,
 * C-contiguous s8) with zero points w_zero (k; NULL: 0) packed once by
 * pi_u8s8_dwconv2d_pack into pi_u8s8_dwconv2d_packed_bytes.
 * Any groups: packed_b[g] is group g's weight packed by pi_u8s8_pack_b as the
 * (kh*kw*c/groups) x (k/groups) matrix with rows ordered (ky, kx, c) (the
 * micro-kernel may differ per group); PI_ERR_ARG if its k or n do not match. */
pi_index pi_u8s8_dwconv2d_packed_bytes(pi_index k, pi_index kh, pi_index kw);
int pi_u8s8_dwconv2d_pack(pi_index k, pi_index kh, pi_index kw, const signed char *w,
                          const int *w_zero, void *packed, pi_index packed_bytes);
pi_index pi_u8s8_dwconv2d_workspace_bytes(const pi_conv2d_shape *s);
int pi_u8s8_dwconv2d(const pi_conv2d_shape *s, const unsigned char *x, pi_index x_ns,
                     pi_index x_cs, pi_index x_hs, pi_index x_ws, int x_zero,
                     const void *packed_w, int out_kind, const float *scale, const float *bias,
                     int activation, float out_scale, int out_zero, void *y, pi_index y_ns,
                     pi_index y_cs, pi_index y_hs, pi_index y_ws, void *ws, pi_index ws_bytes);
pi_index pi_u8s8_conv2d_workspace_bytes(const pi_conv2d_shape *s, const void *const *packed_b);
int pi_u8s8_conv2d(const pi_conv2d_shape *s, const unsigned char *x, pi_index x_ns,
                   pi_index x_cs, pi_index x_hs, pi_index x_ws, int x_zero,
                   const void *const *packed_b, int out_kind, const float *scale,
                   const float *bias, int activation, float out_scale, int out_zero, void *y,
                   pi_index y_ns, pi_index y_cs, pi_index y_hs, pi_index y_ws, void *ws,
                   pi_index ws_bytes);

/* ---- block-sparse GEMM (csrc/pi_sparse.c) -------------------------------- */
/* Y (m x n) = act(X (m x k) @ W (k x n) + bias), W block-sparse.  W is cut
 * into blocks of br rows (along k) by bc columns (along n); only stored blocks
 * are multiplied.  Blocks are grouped by column panel: panel p (columns
 * p*bc .. p*bc+bc-1) owns entries indptr[p] .. indptr[p+1]-1, there are
 * ceil(n / bc) panels (indptr has one more value, indptr[0] == 0); entry e is
 * the block at block row indices[e] (rows indices[e]*br ..), its br*bc values
 * row-major at values + e*br*bc.  Rows past k and columns past n of the last
 * blocks are padding: never read from x, never written to y.  Element (i, p)
 * of X is at (char *)x + i*x_rs + p*x_cs; row i of Y starts at
 * (char *)y + i*y_rs and its n values are contiguous; y must not overlap x.
 * bias: n values or NULL; activation: PI_ACT_*.  Vector paths for bc == 8 or
 * 16 (AVX2) and 16 or 32 (AVX-512); any other block shape runs portable C. */
int pi_f32_bsr_gemm(pi_index m, pi_index n, pi_index k,
                    const float *x, pi_index x_rs, pi_index x_cs,
                    pi_index br, pi_index bc, const int *indptr, const int *indices,
                    const float *values, const float *bias, int activation,
                    float *y, pi_index y_rs);
